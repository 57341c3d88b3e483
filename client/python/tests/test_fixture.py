"""The real checkpoint and adapter of tests/data/tiny-qwen3-moe round-trip bit-exact through the
Python client (FromHF then ToHF), with NumPy inputs and outputs."""
import os

import numpy as np
import st
from conftest import DATA

from moe_adapter_client import BitsArray, Client, RawTensor, wire_dtype

TINY = os.path.join(DATA, "tiny-qwen3-moe")


def _as_numpy(tensors):
    """key -> (dtype, shape, bytes) as (key, array) pairs: F32 a float32 array, BF16 a BitsArray."""
    out = []
    for k, (dt, shape, raw) in tensors.items():
        if dt == "F32":
            out.append((k, np.frombuffer(raw, dtype="<f4").reshape(shape)))
        elif dt == "BF16":
            out.append((k, BitsArray(np.frombuffer(raw, dtype="<u2").reshape(shape), "BF16")))
        else:
            out.append((k, RawTensor(raw, dt, shape)))
    return out


def _round_trip(client, tensors, **opts):
    native = dict(client.from_hf(_as_numpy(tensors), **opts))
    assert set(native) != set(tensors), "from_hf changed nothing"
    assert any(k.endswith("experts.gate_and_up_projs") for k in native)
    hf = client.to_hf(list(native.items()), **opts)
    outs = list(hf)
    got = {k: (wire_dtype(a), tuple(a.shape), a.tobytes()) for k, a in outs}
    return got, hf.summary, outs


def test_checkpoint_fp32_round_trip(server):
    with Client(server.address, timeout=60) as c:
        want = st.read_dir(os.path.join(TINY, "hf-fp32"))
        got, summary, _ = _round_trip(c, want, config=os.path.join(TINY, "hf-fp32", "config.json"))
    assert st.diff(got, want) == []
    assert summary.tensors_out == len(want)


def test_checkpoint_bf16_sharded_round_trip(server):
    with Client(server.address, timeout=60) as c:
        want = st.read_dir(os.path.join(TINY, "hf-bf16-sharded"))
        cfg = open(os.path.join(TINY, "hf-bf16-sharded", "config.json")).read()  # a JSON string
        got, _, outs = _round_trip(c, want, config=cfg)
    assert st.diff(got, want) == []
    # NumPy has no bfloat16: the outputs are the raw bits, marked as BF16.
    assert all(isinstance(a, BitsArray) and a.wire_dtype == "BF16" and a.dtype == np.uint16
               for _, a in outs)


def test_adapter_round_trip(server):
    import json
    adapter_cfg = json.load(open(os.path.join(TINY, "peft-lora", "adapter_config.json")))  # a dict
    want = st.read(os.path.join(TINY, "peft-lora", "adapter_model.safetensors"))[0]
    opts = dict(config=os.path.join(TINY, "hf-fp32", "config.json"), adapter_config=adapter_cfg)
    with Client(server.address, timeout=60) as c:
        native = dict(c.from_hf(_as_numpy(want), **opts))
        assert any("lora" in k and "experts" in k for k in native)
        got = {k: (wire_dtype(a), tuple(a.shape), a.tobytes())
               for k, a in c.to_hf(list(native.items()), lora_layout="peft-v0.19", **opts)}
    assert st.diff(got, want) == []
