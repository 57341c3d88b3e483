#!/usr/bin/env bash
# The main job on the embedded default: sets up, builds the CLI, converts the
# bundled tiny Qwen3-MoE checkpoint (sharded bf16) and its PEFT LoRA adapter
# HF -> native -> HF in-process, and verifies the results are identical.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SKIP_DEPS:-0}" != 1 ]; then bash scripts/install-deps.sh; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target moe-adapter
cli=build/client/moe-adapter
fx=tests/data/tiny-qwen3-moe
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== checkpoint: $fx/hf-fp32 -> native -> HF"
"$cli" from-hf --config "$fx/hf-fp32/config.json" --input "$fx/hf-fp32/model.safetensors" --output "$work/native.safetensors"
"$cli" to-hf   --config "$fx/hf-fp32/config.json" --input "$work/native.safetensors" --output "$work/hf.safetensors"
echo "== adapter: $fx/peft-lora -> native LoRA -> peft-v0.19"
"$cli" from-hf --config "$fx/hf-fp32/config.json" --adapter-config "$fx/peft-lora/adapter_config.json" \
  --input "$fx/peft-lora/adapter_model.safetensors" --output "$work/lora-native.safetensors"
"$cli" to-hf --config "$fx/hf-fp32/config.json" --lora-layout peft-v0.19 \
  --input "$work/lora-native.safetensors" --output "$work/adapter_model.safetensors"

python3 - "$fx" "$work" <<'PY'
import sys
sys.path.insert(0, "tests/acceptance")
import st
fx, work = sys.argv[1], sys.argv[2]
for want, got in ((f"{fx}/hf-fp32/model.safetensors", f"{work}/hf.safetensors"),
                  (f"{fx}/peft-lora/adapter_model.safetensors", f"{work}/adapter_model.safetensors")):
    d = st.diff(st.read(got)[0], st.read(want)[0])
    if d:
        sys.exit(f"round trip differs for {want}: {d[:3]}")
    print(f"identical: {want} ({len(st.read(want)[0])} tensors, bit for bit)")
PY
echo "== round trips verified"
