#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz (clang-14, ASan + UBSan) in
# build-fuzz/ and runs each one: first every committed input of
# tests/fuzz/corpus/<harness>/ once (seeds, and crash-* regression inputs:
# a fixed crash stays fixed), then fuzzing for FUZZ_SECONDS.
#
# Exits non-zero when any input crashes, hangs (FUZZ_TIMEOUT s) or exceeds
# 2 GiB of RSS. A new failing input is copied into the corpus as
# tests/fuzz/corpus/<harness>/crash-<sha1> (timeout-/oom-/leak-<sha1> for the
# other kinds) so that it becomes a regression input once committed, and the
# command that reproduces it is printed.
#
#   bash tests/fuzz/run.sh                       # every harness, 60 s each
#   bash tests/fuzz/run.sh hf_config wire_request  # some of them
#   FUZZ_SECONDS=20 FUZZ_JOBS=1 bash tests/fuzz/run.sh
#   FUZZ_REPLAY_ONLY=1 bash tests/fuzz/run.sh    # only the committed inputs
#
# Environment: FUZZ_SECONDS (60), FUZZ_JOBS (harnesses at once; nproc),
# FUZZ_TIMEOUT (per input, 30 s), FUZZ_CXX (clang++-14), FUZZ_BUILD_DIR (build-fuzz).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-$(nproc)}
timeout=${FUZZ_TIMEOUT:-30}
cxx=${FUZZ_CXX:-clang++-14}
build=${FUZZ_BUILD_DIR:-build-fuzz}
case "$build" in /*) ;; *) build=$root/$build ;; esac
corpus_root=tests/fuzz/corpus
# 1 MiB: the deep-JSON stack overflow of issue 10 needs ~200 KB of input.
max_len=1048576
rss_mb=2048

# Reports with file:line (llvm-14 installs the symbolizer under this name only).
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi

start=$(date +%s)
echo "== fuzz: building the harnesses ($cxx, ${build#"$root"/})"
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
mkdir -p "$build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
  -DCMAKE_CXX_COMPILER="$cxx" "${launcher[@]}" -DMOE_ADAPTER_FUZZ=ON >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target moe_fuzz_all
built=$(date +%s)

if [ $# -gt 0 ]; then
  harnesses=("$@")
else
  harnesses=()
  for bin in "$build"/tests/fuzz/*_fuzz; do
    harnesses+=("$(basename "$bin" _fuzz)")
  done
fi

dict_for() {
  case "$1" in
    safetensors | index_json | hf_config | adapter_config) echo tests/fuzz/dict/json.dict ;;
    *) if [ -f "tests/fuzz/dict/$1.dict" ]; then echo "tests/fuzz/dict/$1.dict"; fi ;;
  esac
}

# run_one HARNESS: writes $work/result ("ok ..." or "FAIL ...") and logs.
run_one() {
  local h=$1
  local bin=$build/tests/fuzz/${h}_fuzz
  local corpus=$root/$corpus_root/$h
  local work=$build/fuzz-work/$h
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  if [ ! -x "$bin" ] || [ ! -d "$corpus" ]; then
    echo "FAIL no harness $bin or no corpus $corpus" >"$work/result"
    return
  fi
  local flags=(-max_len=$max_len -rss_limit_mb=$rss_mb -timeout="$timeout" -print_final_stats=1
    -artifact_prefix="$work/artifacts/")
  local dict
  dict=$(dict_for "$h")
  if [ -n "$dict" ]; then flags+=(-dict="$root/$dict"); fi
  export ASAN_OPTIONS=${ASAN_OPTIONS:-}:abort_on_error=0:detect_leaks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

  # 1. Every committed input once, as files. Seeds go in one process;
  # regression inputs one process each, so that every one still failing is named.
  local seeds=() regressions=() f
  for f in "$corpus"/*; do
    case "$(basename "$f")" in
      crash-* | timeout-* | oom-* | leak-*) regressions+=("$f") ;;
      *) seeds+=("$f") ;;
    esac
  done
  local n=$((${#seeds[@]} + ${#regressions[@]}))
  local failures=()
  if [ ${#seeds[@]} -gt 0 ] && ! "$bin" "${flags[@]}" "${seeds[@]}" >"$work/replay-seeds.log" 2>&1; then
    f=$(grep -o 'Running: .*' "$work/replay-seeds.log" | tail -1 | sed 's/^Running: //')
    failures+=("${f#"$root"/} $work/replay-seeds.log")
  fi
  for f in "${regressions[@]}"; do
    if ! "$bin" "${flags[@]}" "$f" >"$work/replay-$(basename "$f").log" 2>&1; then
      failures+=("${f#"$root"/} $work/replay-$(basename "$f").log")
    fi
  done
  if [ ${#failures[@]} -gt 0 ]; then
    echo "FAIL ${#failures[@]} of $n committed inputs fail (not fuzzed further)" >"$work/result"
    local line
    for line in "${failures[@]}"; do
      echo "  reproduce: ${bin#"$root"/} ${line%% *}" >>"$work/result"
      echo "  log: ${line#* }" >>"$work/result"
    done
    return
  fi
  if [ "${FUZZ_REPLAY_ONLY:-0}" = 1 ]; then
    echo "ok $n committed inputs replayed" >"$work/result"
    return
  fi

  # 2. Fuzz; new inputs go to the scratch corpus (the first directory).
  local rc=0
  "$bin" "${flags[@]}" -max_total_time="$seconds" "$work/corpus" "$corpus" >"$work/fuzz.log" 2>&1 || rc=$?
  local stats
  stats=$(awk '/stat::number_of_executed_units/ {e=$2} /stat::new_units_added/ {u=$2}
               /cov: [0-9]+ ft:/ {for (i=1;i<=NF;i++) if ($i=="cov:") c=$(i+1)}
               END {printf "%s execs, cov %s, %s new units", e, c, u}' "$work/fuzz.log")
  local found=()
  local a
  for a in "$work"/artifacts/crash-* "$work"/artifacts/timeout-* "$work"/artifacts/oom-* "$work"/artifacts/leak-*; do
    [ -e "$a" ] || continue
    cp "$a" "$corpus/"
    found+=("$corpus_root/$h/$(basename "$a")")
  done
  if [ $rc -ne 0 ] || [ ${#found[@]} -gt 0 ]; then
    echo "FAIL exit $rc after $n committed inputs; $stats" >"$work/result"
    for a in "${found[@]}"; do
      echo "  new regression input $a" >>"$work/result"
      echo "  reproduce: ${bin#"$root"/} $a" >>"$work/result"
    done
    echo "  log: $work/fuzz.log" >>"$work/result"
    return
  fi
  echo "ok $n committed inputs, ${seconds}s: $stats" >"$work/result"
}

echo "== fuzz: ${#harnesses[@]} harnesses, ${seconds}s each, $jobs at a time"
running=0
for h in "${harnesses[@]}"; do
  run_one "$h" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

# excerpt LOG: the sanitizer's report up to its SUMMARY, without the
# sanitizer's, libFuzzer's and the standard library's own frames; a recursion
# is folded into one line with its count.
excerpt() {
  awk '/==ERROR|runtime error|invariant failed|exceeds [0-9]+ \(untrusted|ERROR: libFuzzer/ {on = 1} on {print} /^SUMMARY/ {exit}' "$1" |
    grep -vE '__sanitizer|__asan|fuzzer::|/c\+\+/[0-9]+/|libc[.-]|sysdeps|csu/' |
    sed -E 's/^ +#[0-9]+ 0x[0-9a-f]+ in /    /; s/ \(BuildId: [0-9a-f]+\)//' | cut -c1-200 | uniq -c |
    sed -E 's/^ +1 //; s/^ +([0-9]+) (.*)$/\2   [x\1]/' | head -20
}

failed=0
echo "== fuzz summary (build $((built - start)) s, total $(($(date +%s) - start)) s)"
for h in "${harnesses[@]}"; do
  result=$build/fuzz-work/$h/result
  if [ ! -f "$result" ]; then
    echo "FAIL  $h: no result"
    failed=1
    continue
  fi
  first=$(head -1 "$result")
  status=${first%% *}
  printf '%-5s %-16s %s\n' "$([ "$status" = ok ] && echo ok || echo FAIL)" "$h" "${first#* }"
  [ "$status" = ok ] && continue
  failed=1
  tail -n +2 "$result" | while read -r key value; do
    if [ "$key" = log: ]; then
      echo "  log: ${value#"$root"/}"
      excerpt "$value" | sed 's/^/  | /'
    else
      echo "  $key $value"
    fi
  done
done
if [ "$failed" != 0 ]; then
  echo "== fuzz: FAILED. A new crash-/timeout-/oom-/leak- file in tests/fuzz/corpus/ is a regression"
  echo "   input: commit it with the fix. One that is already committed still fails."
  exit 1
fi
echo "== fuzz: no crash"
