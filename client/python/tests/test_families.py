"""The mixin families' golden cases (tests/data/golden-families: GLM-4.5, DeepSeek-V3 with FP8,
Qwen3-Next) through the Python client, with the case's config dict; the family is named by the
config or, for one run per family, by the `family` option over bare numbers."""
import json
import os

import grpc
import pytest
import st  # tests/acceptance/st.py (conftest puts it on the path)
from conftest import DATA, ep_options as _ep

from moe_adapter_client import Client, MoeAdapterError, RawTensor, wire_dtype

ROOT = os.path.join(DATA, "golden-families")
FAMILIES = ("glm4_moe", "deepseek_v3", "qwen3_next")
# As tests/acceptance/golden_runner_families.py (spec families.md §11).
EXPECT_ERROR = {"deepseek_v3/quirk_from_hf_scale_inv_applies_to_any_dtype"}
CASES = []
for fam in FAMILIES:
    for c in json.load(open(os.path.join(ROOT, fam, "manifest.json")))["cases"]:
        if "in_file" in c and c["op"] in ("to_hf", "from_hf", "convert_single_tensor_to_hf"):
            CASES.append((fam, c))


@pytest.fixture(scope="module")
def client(server):
    with Client(server.address, timeout=60) as c:
        yield c


def test_server_lists_the_families(client):
    assert set(FAMILIES) <= set(client.info()["families"])


def _run(client, fam, case, opts):
    op, kw = case["op"], case.get("kwargs", {})
    tensors, order, _ = st.read(os.path.join(ROOT, fam, case["in_file"]))
    inputs = [(k, RawTensor(tensors[k][2], tensors[k][0], tensors[k][1])) for k in order]
    if case.get("lora_layout"):
        opts["lora_layout"] = case["lora_layout"]
    if op == "from_hf":
        opts.update(dtype=case["adapter"]["dtype"], **_ep(kw.get("device_mesh")))
        return list(client.from_hf(inputs, **opts))
    if kw.get("exclude_key_regex"):
        opts["exclude_key_regex"] = kw["exclude_key_regex"]
    opts.update(_ep(kw.get("device_mesh_of_inputs")))
    if op == "convert_single_tensor_to_hf":
        return client.convert_tensor(*inputs[0], **opts)
    return list(client.to_hf(inputs, **opts))


@pytest.mark.parametrize("fam,case", CASES, ids=[f"{f}/{c['name']}" for f, c in CASES])
def test_family_case(client, fam, case):
    if case.get("error") or f"{fam}/{case['name']}" in EXPECT_ERROR:
        with pytest.raises(MoeAdapterError) as e:
            _run(client, fam, case, {"config": case["config"]})
        assert e.value.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED), e.value
        assert e.value.message
        return
    got_list = _run(client, fam, case, {"config": case["config"]})
    got = {k: (wire_dtype(a), tuple(a.shape), a.tobytes()) for k, a in got_list}
    want = st.read(os.path.join(ROOT, fam, case["out_file"]))[0] if case.get("out_file") else {}
    assert st.diff(got, want) == []
    if case["op"] != "from_hf":
        assert [k for k, _ in got_list] == case["out_keys"], "to_hf order differs from the reference"


@pytest.mark.parametrize("fam", FAMILIES)
def test_family_option_over_numbers(client, fam):
    case = next(c for f, c in CASES if f == fam and c["name"] == "full_from_hf_float32")
    ad = case["adapter"]
    opts = {"family": fam, "num_experts": ad["E"], "hidden_size": ad["H"], "moe_intermediate_size": ad["I"]}
    got_list = _run(client, fam, case, opts)
    got = {k: (wire_dtype(a), tuple(a.shape), a.tobytes()) for k, a in got_list}
    assert st.diff(got, st.read(os.path.join(ROOT, fam, case["out_file"]))[0]) == []
    with pytest.raises(MoeAdapterError) as e:
        _run(client, fam, case, dict(opts, family="mixtral"))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown model family" in e.value.message
