"""The golden cases (tests/data/golden, see its README) through the Python client: the same keys,
dtypes, shapes and bytes as the reference (and the project's errors where spec §15 differs)."""
import json
import os

import grpc
import pytest
import st  # tests/acceptance/st.py (conftest puts it on the path)
from conftest import DATA, ep_options as _ep

from moe_adapter_client import Client, MoeAdapterError, RawTensor, wire_dtype

GOLDEN = os.path.join(DATA, "golden")
MANIFEST = json.load(open(os.path.join(GOLDEN, "manifest.json")))
# As tests/acceptance/golden_runner.py: cases whose expected result differs under the contract
# (an error), and cases about reference state the contract replaces (not replayed).
EXPECT_ERROR = {
    "quirk_to_hf_down_wrong_inter_passthrough", "quirk_to_hf_gate_up_wrong_width_no_error",
    "quirk_from_hf_no_shape_validation", "quirk_from_hf_extra_scaleinv_unknown",
    "quirk_lora_v4_gate_incomplete_up_complete_up_dropped", "quirk_lora_v4_completeness_by_count",
    "lora_v4_from_hf_distinct_gate_up_A", "lora_v4_from_hf_incomplete_passthrough",
}
SKIP = {"quirk_prefix_detection_is_stateful", "quirk_from_hf_mutates_input",
        "quirk_to_hf_native_prefix_discarded", "quirk_from_hf_unrecognised_prefix_passthrough"}


def _matches(name, names):
    return any(name == x or name.endswith("_" + x) for x in names)


CASES = [c for c in MANIFEST["cases"]
         if "in_file" in c and not _matches(c["name"], SKIP)
         and c["op"] in ("to_hf", "from_hf", "convert_single_tensor_to_hf", "derived_peft019_to_hf")]


def test_every_case_is_replayed():
    assert len(CASES) >= 75


@pytest.fixture(scope="module")
def client(server):
    with Client(server.address, timeout=60) as c:
        yield c


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case(client, case):
    op, ad, kw = case["op"], case["adapter"], case.get("kwargs", {})
    tensors, order, _ = st.read(os.path.join(GOLDEN, case["in_file"]))
    inputs = [(k, RawTensor(tensors[k][2], tensors[k][0], tensors[k][1])) for k in order]
    opts = {"num_experts": ad["E"], "hidden_size": ad["H"], "moe_intermediate_size": ad["I"]}
    if op == "from_hf":
        opts.update(dtype=ad["dtype"], lora_layout="peft-v0.18", **_ep(kw.get("device_mesh")))
    else:
        opts["lora_layout"] = ("peft-v0.19" if op == "derived_peft019_to_hf" else
                               "per-expert" if kw.get("v4_compatible") else "peft-v0.18")
        if kw.get("exclude_key_regex"):
            opts["exclude_key_regex"] = kw["exclude_key_regex"]
        opts.update(_ep(kw.get("device_mesh_of_inputs")))

    def run():
        if op == "convert_single_tensor_to_hf":
            assert len(inputs) == 1
            return client.convert_tensor(*inputs[0], **opts)
        conv = client.from_hf(inputs, **opts) if op == "from_hf" else client.to_hf(inputs, **opts)
        return list(conv)

    if case.get("error") or _matches(case["name"], EXPECT_ERROR):
        with pytest.raises(MoeAdapterError) as e:
            run()
        assert e.value.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
                                grpc.StatusCode.UNIMPLEMENTED), e.value
        assert e.value.message
        return
    got_list = run()
    got = {k: (wire_dtype(a), tuple(a.shape), a.tobytes()) for k, a in got_list}
    want = st.read(os.path.join(GOLDEN, case["out_file"]))[0] if case.get("out_file") else {}
    assert st.diff(got, want) == []
    assert len(got) == len(got_list), "an output key came twice"
    if op != "from_hf":
        assert [k for k, _ in got_list] == case["out_keys"], "to_hf order differs from the reference"
