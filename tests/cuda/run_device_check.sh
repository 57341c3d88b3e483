#!/bin/bash
# Runs cuda_kernels_check on a GPU host (issue 7): GPU info, the full check +
# benchmark run, then a compute-sanitizer memcheck pass over the small-shape
# checks. Usage: run_device_check.sh [path/to/cuda_kernels_check] [out_dir]
# If the prebuilt binary cannot load there (e.g. an older glibc), it is
# rebuilt with nvcc from the sources (no CMake or project libraries needed).
set -o pipefail
B=${1:-./.devbin/cuda_kernels_check}
OUT=${2:-${OUT:-.}}
nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current,clocks.sm,clocks.max.sm,clocks.mem --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
if ! "$B" --version >/dev/null 2>&1; then
  echo "prebuilt binary does not run here: $("$B" --version 2>&1 | head -2); building with nvcc" | tee "$OUT/build.txt"
  NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  "$NVCC" -std=c++17 -O3 -I. -gencode=arch=compute_90,code=sm_90 tests/cuda/cuda_kernels_check.cu \
    core/cuda/transpose_kernels.cu core/cuda/cuda_convert.cc -o /tmp/cck 2>&1 | tee -a "$OUT/build.txt" && B=/tmp/cck
fi
"$B" 2>&1 | tee "$OUT/cuda.txt"
rc=$?
echo "== cuda_kernels_check exit status $rc"
if command -v compute-sanitizer >/dev/null; then
  timeout 90 compute-sanitizer --tool memcheck --print-limit 10 "$B" --small-only > "$OUT/sanitizer.txt" 2>&1
  echo "compute-sanitizer memcheck (--small-only) exit status $?" >> "$OUT/sanitizer.txt"
  tail -4 "$OUT/sanitizer.txt"
fi
exit $rc
