#!/usr/bin/env bash
# One command for every benchmark; prints a markdown table of ratios against
# baselines measured in the same run (memcpy, cp, a raw gRPC stream).
#   bench/run_all.sh [BUILD_DIR]     (default: build; configures it if needed)
# Env: LAYER_E/H/I (default 128/2048/768: one Qwen3-30B-A3B MoE layer, bf16),
#      REPEAT (best of N for process timings, default 3), WORK (scratch dir),
#      SCALING=0 (skip the layer-size scaling table, ~2 min).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
E=${LAYER_E:-128} H=${LAYER_H:-2048} I=${LAYER_I:-768}
repeat=${REPEAT:-3}
work=${WORK:-$(mktemp -d /tmp/moe-bench.XXXXXX)}
trap 'rm -rf "$work"' EXIT
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOE_ADAPTER_BUILD_BENCH=ON >/dev/null
fi
cmake --build "$build" --target moe-adapter gen_checkpoint convert_bench transpose_bench >/dev/null
targets_extra=""
if cmake --build "$build" --target stream_bench moe-adapter-server >/dev/null 2>&1; then targets_extra=service; fi
geo=(--num-experts "$E" --hidden-size "$H" --moe-intermediate-size "$I")
cli="$build/client/moe-adapter"

python3 bench/report.py header "$E" "$H" "$I"

# 1. Core, in memory (Google Benchmark; memcpy baseline in the same binary;
#    the best of REPEAT repetitions of each, as for the process timings).
"$build/bench/convert_bench" --benchmark_filter='^BM_(Memcpy|ToHf|FromHf)' --benchmark_min_time=1 \
  --benchmark_repetitions="$repeat" --benchmark_format=json >"$work/core.json" 2>/dev/null
python3 bench/report.py core "$work/core.json"

# 2. CLI on files, page cache warm, against cp of the same file.
"$build/bench/gen_checkpoint" --format native --experts "$E" --hidden "$H" --inter "$I" --out "$work/native.safetensors"
"$build/bench/gen_checkpoint" --format hf --experts "$E" --hidden "$H" --inter "$I" --out "$work/hf.safetensors"
cat "$work/native.safetensors" "$work/hf.safetensors" >/dev/null
python3 bench/report.py cli "$repeat" "$work" "$cli" "${geo[@]}"

# 3. CLI peak RSS on a sharded directory, for 2 and 6 layers (must not grow).
for layers in 2 6; do
  "$build/bench/gen_checkpoint" --format hf --experts "$E" --hidden "$H" --inter "$I" --layers "$layers" \
    --dir --shard-bytes 500000000 --out "$work/ckpt$layers"
done
python3 bench/report.py rss "$work" "$cli" "$((E * H * I * 3 * 2))"
rm -rf "$work"/ckpt*

# 4. Service over loopback against a raw gRPC byte stream (when built).
if [ "$targets_extra" = service ]; then
  python3 bench/report.py service "$build" "$work" "${geo[@]}"
fi
python3 bench/report.py footer

# 5. Scaling with layer size, E=8..128 x H=1024..4096 (the core, in memory,
#    default settings: the buffer cache keeps even an E=128 H=4096 layer's groups).
if [ "${SCALING:-1}" != 0 ]; then
  "$build/bench/convert_bench" --benchmark_filter='^BM_Scaling/' \
    --benchmark_repetitions=2 --benchmark_format=json >"$work/scaling.json" 2>/dev/null
  "$build/bench/convert_bench" --benchmark_filter='^BM_Scaling/128/4096/[02]/' \
    --benchmark_repetitions=2 --benchmark_format=json >"$work/scaling-default.json" 2>/dev/null
  python3 bench/report.py scaling "$work/scaling.json" "$work/scaling-default.json"
fi
