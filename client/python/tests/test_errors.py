"""Errors: one exception type with the server's code and message; no partial results; deadlines;
unusable inputs and options refused before anything is sent."""
import threading
import time

import grpc
import numpy as np
import pytest

from moe_adapter_client import Client, MoeAdapterError, RawTensor

GEO = dict(num_experts=2, hidden_size=4, moe_intermediate_size=2)
GU = "model.layers.0.mlp.experts.gate_and_up_projs"


@pytest.fixture(scope="module")
def client(server):
    with Client(server.address, timeout=30) as c:
        yield c


def test_info_and_health(client):
    info = client.info()
    assert info["rpcs"] == ["ToHF", "FromHF", "ConvertTensor"]
    assert "peft-v0.19" in info["lora_layouts"] and "BF16" in info["wire_dtypes"]
    assert client.health() == "SERVING"
    assert client.health("moe_adapter.v1.MoeAdapter") == "SERVING"


def test_bad_shape_is_invalid_argument(client):
    bad = np.zeros((2, 4, 5), dtype=np.float32)  # [E, H, 2I] wants 2I = 4
    with pytest.raises(MoeAdapterError) as e:
        list(client.to_hf([(GU, bad)], **GEO))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert GU in e.value.message and "5" in e.value.message
    assert str(e.value).startswith("INVALID_ARGUMENT: ")


def test_outputs_before_an_error_are_not_a_result(client):
    good = ("model.norm.weight", np.ones(4, dtype=np.float32))
    bad = (GU, np.zeros((2, 4, 5), dtype=np.float32))
    with pytest.raises(MoeAdapterError):
        client.to_hf([good, bad], **GEO).result()  # raises; returns nothing partial
    conv = client.to_hf([good, bad], **GEO)
    seen = []
    with pytest.raises(MoeAdapterError) as e:
        for name, _ in conv:
            seen.append(name)
    assert seen == ["model.norm.weight"]  # arrived and yielded, then the stream failed ...
    assert conv.summary is None  # ... so the conversion never completed
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(MoeAdapterError):
        client.convert_tensor(*bad, **GEO)


def test_convert_tensor_passes_non_experts_through(client):
    x = np.arange(8, dtype=np.float16)
    out = client.convert_tensor("model.embed_tokens.weight", x, **GEO)
    assert [k for k, _ in out] == ["model.embed_tokens.weight"]
    np.testing.assert_array_equal(out[0][1], x)


def test_crc_mismatch_is_refused_by_the_server(client, monkeypatch):
    import moe_adapter_client._wire as wire
    monkeypatch.setattr(wire, "crc32c", lambda data, crc=0: 12345)
    with pytest.raises(MoeAdapterError) as e:
        list(client.to_hf([("model.norm.weight", np.ones(4, dtype=np.float32))], **GEO))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "CRC32C" in e.value.message.upper()


def test_deadline(server):
    def slow():
        yield "model.norm.weight", np.ones(4, dtype=np.float32)
        time.sleep(3)
        yield "model.final.weight", np.ones(4, dtype=np.float32)

    with Client(server.address, timeout=0.5) as c:
        t = time.time()
        with pytest.raises(MoeAdapterError) as e:
            list(c.to_hf(slow(), **GEO))
        assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.time() - t < 2.5


def test_unreachable():
    with Client("127.0.0.1:1", timeout=3) as c:
        with pytest.raises(MoeAdapterError) as e:
            c.info()
    assert e.value.code == grpc.StatusCode.UNAVAILABLE and "127.0.0.1:1" in e.value.message


def test_unknown_and_ill_typed_options(client):
    with pytest.raises(TypeError, match="unknown option.*num_expert"):
        client.to_hf([], num_expert=2)
    with pytest.raises(TypeError, match="ep_rank"):
        client.to_hf([], ep_rank="1", **GEO)
    with pytest.raises(ValueError, match="chunk_size"):
        client.to_hf([], chunk_size=4 << 20, **GEO)


def test_unusable_tensors_cancel_the_stream(client):
    with pytest.raises(TypeError, match="RawTensor"):
        list(client.to_hf([("model.norm.weight", b"\0" * 16)], **GEO))
    with pytest.raises(ValueError, match="contiguous"):
        list(client.to_hf([("model.norm.weight", np.zeros((4, 4), np.float32).T[:, :2])], **GEO))
    with pytest.raises(TypeError, match="complex"):
        list(client.to_hf([("model.norm.weight", np.zeros(4, np.complex64))], **GEO))

    def failing():
        yield "model.norm.weight", np.ones(4, dtype=np.float32)
        raise KeyError("from the caller's iterable")

    with pytest.raises(KeyError, match="caller"):
        list(client.to_hf(failing(), **GEO))
    # The stream was cancelled, not half-closed into a "successful" conversion of what was sent;
    # the client still works.
    assert client.health() == "SERVING"


def test_raw_tensor_and_empty(client):
    data = np.arange(6, dtype="<u2").tobytes()
    out = dict(client.to_hf([("model.x.weight", RawTensor(data, "BF16", [2, 3])),
                             ("model.empty", RawTensor(b"", "F32", [0, 4]))], **GEO))
    assert out["model.x.weight"].wire_dtype == "BF16" and out["model.x.weight"].tobytes() == data
    assert out["model.empty"].shape == (0, 4)


def test_streams_read_while_writing(server):
    """Many tensors, outputs not read by the caller's thread until it iterates: the client must
    read as it writes, or gRPC flow control stalls the stream (here bounded by the deadline)."""
    rng = np.random.default_rng(1)
    tensors = [(f"model.layers.{i}.mlp.experts.gate_and_up_projs",
                rng.standard_normal((2, 256, 1024), dtype=np.float32)) for i in range(24)]  # 48 MiB
    with Client(server.address, timeout=60) as c:
        n = sum(1 for _ in c.to_hf(tensors, num_experts=2, hidden_size=256, moe_intermediate_size=512))
    assert n == 24 * 4


def test_fp8_scales_rejected_by_from_hf_only(client):
    scale = ("model.layers.0.mlp.experts.gate_and_up_projs_scale_inv", np.ones((1, 1), np.float32))
    with pytest.raises(MoeAdapterError) as e:
        list(client.from_hf([scale], **GEO))
    assert e.value.code == grpc.StatusCode.UNIMPLEMENTED and "_scale_inv" in e.value.message
    assert [k for k, _ in client.to_hf([scale], **GEO)] == [scale[0]]  # ToHF passes it through


def test_ep_slice_metadata_and_summary(client):
    geo = dict(num_experts=4, hidden_size=4, moe_intermediate_size=2)
    ins = [(f"model.layers.0.mlp.experts.{e}.{p}.weight", np.ones(shape, np.float32))
           for e in (2, 3) for p, shape in (("gate_proj", (2, 4)), ("up_proj", (2, 4)), ("down_proj", (4, 2)))]
    conv = client.from_hf(ins, ep_rank=1, ep_size=2, **geo)
    out = dict(conv)
    assert out["model.layers.0.mlp.experts.gate_and_up_projs"].shape == (2, 4, 4)  # the rank's 2 experts
    slice_ = {"moe_adapter.ep_rank": "1", "moe_adapter.ep_size": "2", "moe_adapter.expert_range": "2:4",
              "moe_adapter.num_experts": "4"}
    assert conv.metadata["model.layers.0.mlp.experts.down_projs"] == slice_
    assert conv.summary.metadata == slice_
    assert (conv.summary.tensors_in, conv.summary.tensors_out, conv.summary.bytes_out) == (6, 2, 192)
