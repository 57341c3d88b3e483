#!/usr/bin/env bash
# The main job. Sets up and builds, then converts the bundled tiny Qwen3-MoE
# checkpoint (sharded bf16 directory) and its PEFT LoRA adapter HF -> native ->
# HF, first in-process (the embedded default), then through a local
# moe-adapter-server, and verifies each result is bit-identical to the input.
#   SKIP_DEPS=1 scripts/demo.sh    # packages already installed
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SKIP_DEPS:-0}" != 1 ]; then bash scripts/install-deps.sh; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target moe-adapter moe-adapter-server
cli=build/client/moe-adapter
server=build/server/moe-adapter-server
fx=tests/data/tiny-qwen3-moe
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

verify() {  # verify WANT_DIR GOT_DIR
  python3 - "$1" "$2" <<'PY'
import sys
sys.path.insert(0, "tests/acceptance")
import st
want, got = sys.argv[1], sys.argv[2]
a, b = st.read_dir(got), st.read_dir(want)
d = st.diff(a, b)
if d:
    sys.exit(f"round trip differs for {want}: {d[:3]}")
print(f"  identical: {len(b)} tensors, bit for bit ({want})")
PY
}

roundtrip() {  # roundtrip LABEL EXTRA_FLAGS...
  local label=$1; shift
  echo "== $label: checkpoint $fx/hf-bf16-sharded -> native -> HF"
  "$cli" from-hf --input "$fx/hf-bf16-sharded" --output "$work/$label-native" --quiet "$@"
  "$cli" to-hf --input "$work/$label-native" --output "$work/$label-hf" --quiet "$@"
  verify "$fx/hf-bf16-sharded" "$work/$label-hf"
  echo "== $label: adapter $fx/peft-lora -> native LoRA -> peft-v0.19"
  "$cli" from-hf --input "$fx/peft-lora" --output "$work/$label-lora" --config "$fx/hf-fp32/config.json" --quiet "$@"
  "$cli" to-hf --input "$work/$label-lora" --output "$work/$label-lora-hf" --config "$fx/hf-fp32/config.json" \
    --lora-layout peft-v0.19 --quiet "$@"
  verify "$fx/peft-lora" "$work/$label-lora-hf"
}

roundtrip embedded

"$server" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/server.log" 2>/dev/null && break
  sleep 0.1
done
line=$(grep "listening on" "$work/server.log")
port=$(echo "$line" | sed -E 's/.*listening on 127\.0\.0\.1:([0-9]+).*/\1/')
metrics=$(echo "$line" | sed -E 's/.*metrics on port ([0-9]+).*/\1/')
"$cli" health --server "127.0.0.1:$port"
roundtrip server --server "127.0.0.1:$port"
echo "== metrics: http://127.0.0.1:$metrics/metrics"
python3 -c "
import urllib.request
for l in urllib.request.urlopen('http://127.0.0.1:$metrics/metrics').read().decode().splitlines():
    # requests_total has a series per code from the start; show the ones that counted.
    if (l.startswith('moe_adapter_requests_total') and not l.endswith(' 0')) or l.startswith('moe_adapter_bytes_total{direction=\"in\"'):
        print('  ' + l)"
kill -TERM "$server_pid"; wait "$server_pid"; server_pid=""
echo "== server stopped; all round trips verified"
