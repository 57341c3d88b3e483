#!/usr/bin/python3
"""Regenerates the seed corpora of tests/fuzz/corpus/ (seed-* files only;
crash-* regression inputs are never touched) from the test fixtures.

  /usr/bin/python3 tests/fuzz/make_seeds.py

Standard library only: the protobuf messages are encoded by hand (adapter.proto
field numbers), and CRC32C is computed here, so the seeds need no build.
"""
import glob
import hashlib
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
TINY = os.path.join(DATA, "tiny-qwen3-moe")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(harness, name, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def clear_seeds():
    for path in glob.glob(os.path.join(CORPUS, "*", "seed-*")):
        os.remove(path)


# ---- safetensors -------------------------------------------------------------
RAW = 1 << 63


def header_and_data_size(path):
    b = read(path)
    (n,) = struct.unpack("<Q", b[:8])
    return b[8:8 + n], len(b) - 8 - n


def safetensors_seeds():
    # Header mode ([u64 data size][header]): the fixtures' real headers.
    for rel in ["hf-bf16-sharded/model-00001-of-00006.safetensors",
                "hf-bf16-sharded/model-00004-of-00006.safetensors",
                "peft-lora/adapter_model.safetensors"]:
        header, d = header_and_data_size(os.path.join(TINY, rel))
        write("safetensors", os.path.basename(os.path.dirname(rel)) + "-" + os.path.basename(rel),
              struct.pack("<Q", d) + header)
    write("safetensors", "metadata-only", struct.pack("<Q", 0) + b'{"__metadata__":{"format":"pt"}}')
    write("safetensors", "empty-tensor",
          struct.pack("<Q", 0) + b'{"a":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]}}')
    # Raw mode: whole small files from the golden cases.
    for name in ["single_L1_self_attn_q_norm_weight.in.safetensors",
                 "single_L1_mlp_gate_weight.in.safetensors",
                 "worked_to_hf.in.safetensors",
                 "err_lora_pw_from_hf_not_divisible.in.safetensors"]:
        write("safetensors", "raw-" + name, struct.pack("<Q", RAW) + read(os.path.join(DATA, "golden", name)))


# ---- index.json --------------------------------------------------------------
def index_seeds():
    # The harness's directory holds these two shards (index_json_fuzz.cc).
    valid = {"metadata": {"total_size": 16, "format": "pt"},
             "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                            "lm_head.weight": "model-00002-of-00002.safetensors"}}
    write("index_json", "valid", json.dumps(valid, indent=2))
    extra = json.loads(json.dumps(valid))
    extra["weight_map"]["model.norm.weight"] = "model-00002-of-00002.safetensors"
    write("index_json", "extra-key", json.dumps(extra))
    write("index_json", "tiny-qwen3-moe", read(os.path.join(TINY, "hf-bf16-sharded",
                                                            "model.safetensors.index.json")))


# ---- config.json, adapter_config.json ----------------------------------------
def config_seeds():
    for variant in ["hf-bf16-sharded", "hf-fp32"]:
        write("hf_config", variant, read(os.path.join(TINY, variant, "config.json")))
    base = json.loads(read(os.path.join(TINY, "hf-fp32", "config.json")))
    v = dict(base)
    v.pop("num_experts", None)
    v["num_local_experts"] = 4
    v["mlp_only_layers"] = [0, 3]
    v["decoder_sparse_step"] = 2
    v["dtype"] = "bfloat16"
    write("hf_config", "transformers5", json.dumps(v))
    write("hf_config", "text-config", json.dumps({"model_type": "wrapper", "text_config": base}))
    write("hf_config", "minimal", '{"num_experts":4,"hidden_size":8,"moe_intermediate_size":6}')


def adapter_seeds():
    real = read(os.path.join(TINY, "peft-lora", "adapter_config.json"))
    write("adapter_config", "tiny-qwen3-moe", real)
    cfg = json.loads(real)
    for version in ["0.18.0", "0.19.0", "0.19.1", "v0.21.0.dev0"]:
        c = dict(cfg)
        c["peft_version"] = version
        c["target_parameters"] = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]
        write("adapter_config", "peft-" + version, json.dumps(c))
    write("adapter_config", "regex-targets",
          '{"r":5,"lora_alpha":16,"target_modules":".*proj","rank_pattern":{"x":2}}')


# ---- key names ---------------------------------------------------------------
def key_seeds():
    manifest = json.loads(read(os.path.join(DATA, "golden", "manifest.json")))
    names = set()
    for case in manifest["cases"]:
        names.update(case.get("in_keys", []))
        names.update(case.get("out_keys", []))
    # One name per role suffix is enough; the mutator does the rest.
    chosen = {}
    for n in sorted(names):
        parts = n.split(".")
        role = ".".join(p for p in parts if not p.isdigit())
        chosen.setdefault(role, n)
    for i, n in enumerate(sorted(chosen.values())):
        write("key_mapping", "%03d" % i, n)
    write("key_mapping", "template",
          "{prefix}layers.{layer}.mlp.experts.{expert}.gate_proj.weight\n"
          "base_model.model.model.layers.3.mlp.experts.7.gate_proj.weight")
    write("key_mapping", "leading-zero", "model.layers.01.mlp.experts.2.up_proj.weight")


# ---- StreamOptions (protobuf text format) ------------------------------------
def text_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def options_seeds():
    config = read(os.path.join(TINY, "hf-fp32", "config.json")).decode()
    adapter = read(os.path.join(TINY, "peft-lora", "adapter_config.json")).decode()
    write("stream_options", "geometry",
          "geometry { num_experts: 4 hidden_size: 8 moe_intermediate_size: 6 "
          "num_hidden_layers: 2 mlp_only_layers: 1 decoder_sparse_step: 1 config_dtype: \"bfloat16\" }\n"
          "lora_layout: \"peft-v0.19\" dtype: \"float32\" ep_rank: 1 ep_size: 2 chunk_size: 65536\n")
    write("stream_options", "config-json",
          "config_json: " + text_string(config) + "\nexclude_key_regex: \".*_extra_state.*\"\n"
          "partial_checkpoint: true quantization: true\n")
    write("stream_options", "adapter",
          "geometry { num_experts: 4 hidden_size: 8 moe_intermediate_size: 6 }\n"
          "adapter_config_json: " + text_string(adapter) + "\nlora_layout: \"per-expert\"\n")


# ---- wire messages -----------------------------------------------------------
def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def field_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(num << 3 | 2) + varint(len(b)) + b


def field_fixed32(num, v):
    return varint(num << 3 | 5) + struct.pack("<I", v)


def tensor_header(name, dtype, shape, data, metadata=None):
    m = field_bytes(1, name) + field_bytes(2, dtype)
    m += field_bytes(3, b"".join(varint(d) for d in shape))
    m += field_varint(4, len(data)) + field_fixed32(5, crc32c(data))
    for k, v in (metadata or {}).items():
        m += field_bytes(6, field_bytes(1, k) + field_bytes(2, v))
    return m


def record(message, cut=0):
    return bytes([cut & 0xFF]) + struct.pack("<I", len(message))[:3] + message


def tensor_records(header_field, chunk_field, name, dtype, shape, data, chunk, metadata=None):
    out = record(field_bytes(header_field, tensor_header(name, dtype, shape, data, metadata)))
    for i in range(0, len(data), chunk):
        out += record(field_bytes(chunk_field, data[i:i + chunk]), cut=(i // chunk) * 3 + 1)
    return out


def wire_seeds():
    f32 = bytes(range(96))  # [4, 6] F32
    bf16 = bytes((i * 7) & 0xFF for i in range(128))  # [2, 4, 8] BF16
    geometry = field_bytes(1, field_varint(1, 4) + field_varint(2, 8) + field_varint(3, 6))
    options = field_bytes(1, geometry + field_bytes(3, "peft-v0.19") + field_varint(10, 32))
    req = record(options)
    req += tensor_records(2, 3, "model.layers.0.mlp.experts.gate_and_up_projs", "BF16", [2, 4, 8], bf16, 32)
    req += tensor_records(2, 3, "model.norm.weight", "F32", [4, 6], f32, 40)
    req += tensor_records(2, 3, "model.empty", "F16", [0], b"", 32)
    write("wire_request", "stream", req)
    write("wire_request", "bad-crc",
          record(field_bytes(2, field_bytes(1, "x") + field_bytes(2, "U8") + field_bytes(3, varint(3))
                             + field_varint(4, 3) + field_fixed32(5, 1))) + record(field_bytes(3, b"abc")))
    config = read(os.path.join(TINY, "hf-fp32", "config.json"))
    write("wire_request", "config-options", record(field_bytes(1, field_bytes(2, config) + field_varint(7, 2)
                                                                 + field_varint(6, 1))))

    resp = tensor_records(1, 2, "model.layers.0.mlp.experts.0.gate_proj.weight", "F32", [4, 6], f32, 64,
                          {"ep_rank": "0", "ep_size": "2"})
    summary = (field_varint(1, 3) + field_varint(2, 1) + field_varint(3, 224) + field_varint(4, 96)
               + field_bytes(5, "a warning") + field_bytes(6, field_bytes(1, "k") + field_bytes(2, "v"))
               + field_varint(7, 4096))
    resp += record(field_bytes(3, summary))
    write("wire_response", "stream", resp)


def main():
    clear_seeds()
    safetensors_seeds()
    index_seeds()
    config_seeds()
    adapter_seeds()
    key_seeds()
    options_seeds()
    wire_seeds()
    total = 0
    for path in sorted(glob.glob(os.path.join(CORPUS, "*", "seed-*"))):
        total += os.path.getsize(path)
    print("seeds written under %s: %d bytes" % (CORPUS, total))


if __name__ == "__main__":
    main()
