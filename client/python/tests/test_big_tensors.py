"""Tensors far above 4 MiB, both directions, through a client at gRPC's default channel options
(4 MiB receive limit): every message of the protocol fits it."""
import grpc
import numpy as np
import pytest

from moe_adapter_client import DEFAULT_CHUNK_BYTES, Client, Conversion, MoeAdapterError
from moe_adapter_client._client import _method
from moe_adapter_client._proto_modules import adapter_pb2 as pb

E, H, I = 2, 1024, 1024  # gate_and_up: 2 x 1024 x 2048 float32 = 16 MiB
GEOMETRY = dict(num_experts=E, hidden_size=H, moe_intermediate_size=I)
PREFIX = "model.layers.0.mlp.experts."


@pytest.fixture(scope="module")
def native():
    rng = np.random.default_rng(7)
    return {PREFIX + "gate_and_up_projs": rng.standard_normal((E, H, 2 * I), dtype=np.float32),
            PREFIX + "down_projs": rng.standard_normal((E, I, H), dtype=np.float32),
            "model.embed_tokens.weight": rng.standard_normal((3000, 1024), dtype=np.float32)}


def test_default_limit_and_chunk(server):
    with Client(server.address, timeout=30) as c:
        limits = c.info()["limits"]
    assert DEFAULT_CHUNK_BYTES == 4 * 2**20 - 64 * 2**10
    assert limits["default_chunk_bytes"] == DEFAULT_CHUNK_BYTES
    # A chunk message is one tag byte, a varint length (4 bytes here) and the bytes.
    assert limits["default_chunk_bytes"] + 1 + 4 <= 4 * 2**20


def test_big_tensors_both_directions(server, native):
    with Client(server.address, timeout=120) as c:
        hf = dict(c.to_hf(native.items(), **GEOMETRY))
        gu = native[PREFIX + "gate_and_up_projs"]
        for e in range(E):
            np.testing.assert_array_equal(hf[f"{PREFIX}{e}.gate_proj.weight"], gu[e, :, :I].T)
            np.testing.assert_array_equal(hf[f"{PREFIX}{e}.up_proj.weight"], gu[e, :, I:].T)
            np.testing.assert_array_equal(hf[f"{PREFIX}{e}.down_proj.weight"],
                                          native[PREFIX + "down_projs"][e].T)
        np.testing.assert_array_equal(hf["model.embed_tokens.weight"], native["model.embed_tokens.weight"])
        back = c.from_hf(hf.items(), **GEOMETRY)
        got = dict(back)
    assert set(got) == set(native)
    for k, a in native.items():
        assert got[k].dtype == a.dtype and got[k].tobytes() == a.tobytes(), k
    assert back.summary.bytes_out == sum(a.nbytes for a in native.values())


def test_server_default_chunk_fits_default_client(server, native):
    """chunk_size 0 asks for the server's default: its messages must fit too. (Expert outputs:
    the server chunks them itself, 4 MiB each here; pass-through tensors keep the sender's chunks.)"""
    opts = pb.StreamOptions(geometry=pb.Geometry(num_experts=E, hidden_size=H, moe_intermediate_size=I))
    gu = PREFIX + "gate_and_up_projs"
    with Client(server.address, timeout=60) as c:
        out = dict(Conversion(c, _method("ToHF"), [(gu, native[gu])], opts))
    np.testing.assert_array_equal(out[PREFIX + "1.up_proj.weight"], native[gu][1, :, I:].T)


def test_old_4mib_chunks_exceed_default_limit(server, native):
    """What the fix avoids: 4 MiB chunks make 4 MiB + 5 byte messages, which a default client
    refuses. Proves the limit this suite runs under is real."""
    opts = pb.StreamOptions(geometry=pb.Geometry(num_experts=E, hidden_size=H, moe_intermediate_size=I),
                            chunk_size=4 << 20)
    with Client(server.address, timeout=60) as c:
        with pytest.raises(MoeAdapterError) as e:
            list(Conversion(c, _method("ToHF"), [(PREFIX + "down_projs", native[PREFIX + "down_projs"])], opts))
    assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "4194309 vs. 4194304" in e.value.message or "4194309 vs 4194304" in e.value.message
