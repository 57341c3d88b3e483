#!/usr/bin/env bash
# Sets up and runs every test: installs system packages, builds (Release),
# runs ctest, then builds and runs the unit tests again under AddressSanitizer
# + UndefinedBehaviorSanitizer, then fuzzes the parsers (tests/fuzz/run.sh,
# when clang++-14 is installed; 30 s per harness). Exits non-zero if anything fails.
#   scripts/test.sh            # everything
#   SKIP_DEPS=1 scripts/test.sh  # packages already installed
#   SKIP_ASAN=1 scripts/test.sh  # only the Release run
#   SKIP_FUZZ=1 scripts/test.sh  # no fuzzing stage (tests/fuzz/run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

if [ "${SKIP_DEPS:-0}" != 1 ]; then
  bash scripts/install-deps.sh
fi

echo "== Release build and tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 600

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  echo "== AddressSanitizer + UBSan build and unit tests"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOE_ADAPTER_SANITIZE=ON \
    -DMOE_ADAPTER_BUILD_BENCH=OFF
  cmake --build build-asan -j "$jobs"
  # libtorch and glog keep process-lifetime allocations that LeakSanitizer
  # would report; memory errors and UB still abort the test.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" --timeout 900 -L unit
fi
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  if command -v clang++-14 >/dev/null; then
    # 30 s per harness keeps the whole script within CI's 45-minute target;
    # longer runs: FUZZ_SECONDS=600 bash tests/fuzz/run.sh
    echo "== libFuzzer harnesses (tests/fuzz): committed inputs, then ${FUZZ_SECONDS:-30} s each"
    FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash tests/fuzz/run.sh
  else
    echo "== fuzzing skipped: clang++-14 not found (scripts/install-deps.sh installs it)"
  fi
fi
echo "== deployment files (offline validation)"
bash scripts/validate-deploy.sh
echo "== all tests passed"
