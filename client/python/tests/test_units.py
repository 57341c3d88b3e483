"""Pieces that need no server: CRC32C (native and the NumPy fallback), the torch guard, the
client's checks of what the server sends."""
import os
import sys
import types

import grpc
import numpy as np
import pytest

from moe_adapter_client import BitsArray, MoeAdapterError
from moe_adapter_client._crc32c import crc32c, crc32c_fallback
from moe_adapter_client._proto_modules import adapter_pb2 as pb
from moe_adapter_client._tensors import describe
from moe_adapter_client._wire import FrameReader


@pytest.mark.parametrize("size", [0, 1, 9, 4095, 4096 * 64, 4096 * 64 + 17, 1 << 20])
def test_crc32c_fallback_matches(size):
    data = os.urandom(size)
    assert crc32c(b"123456789") == 0xE3069283  # the Castagnoli check value
    assert crc32c_fallback(b"123456789") == 0xE3069283
    assert crc32c_fallback(data) == crc32c(data)
    assert crc32c_fallback(data[size // 3:], crc32c_fallback(data[: size // 3])) == crc32c(data)


def test_importing_the_client_does_not_import_torch():
    import subprocess
    code = "import moe_adapter_client, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_torch_guard(monkeypatch):
    """Without torch, an unknown object is a TypeError naming what is accepted; with a torch
    module loaded, its Tensor type is described by dtype, shape and bytes."""
    class NotATensor:
        pass
    with pytest.raises(TypeError, match="NumPy array, a torch.Tensor or a RawTensor"):
        describe("x", NotATensor())

    fake = types.ModuleType("torch")

    class Tensor:
        def __init__(self, arr, dtype):
            self.arr, self.dtype, self.shape = arr, dtype, arr.shape
            self.device = types.SimpleNamespace(type="cpu")

        def is_contiguous(self):
            return self.arr.flags.c_contiguous

        def view(self, dtype):
            return Tensor(self.arr.view(np.int16), dtype)

        def numpy(self):
            return self.arr

    class DType:
        def __init__(self, name):
            self.name = name

        def __str__(self):
            return "torch." + self.name

    fake.Tensor, fake.bfloat16, fake.int16 = Tensor, DType("bfloat16"), DType("int16")
    monkeypatch.setitem(sys.modules, "torch", fake)
    bits = np.arange(6, dtype=np.uint16).reshape(2, 3)
    dtype, shape, data = describe("x", Tensor(bits, fake.bfloat16))
    assert (dtype, shape, bytes(data)) == ("BF16", (2, 3), bits.tobytes())
    t = Tensor(bits, fake.bfloat16)
    t.device = types.SimpleNamespace(type="cuda")
    with pytest.raises(ValueError, match="CPU"):
        describe("x", t)


def test_bits_array_keeps_its_dtype():
    a = BitsArray(np.arange(8, dtype=np.uint16).reshape(2, 4), "BF16")
    assert a[1:].wire_dtype == "BF16" and a.T.wire_dtype == "BF16"
    assert describe("x", a[1:])[0] == "BF16"  # rows of a C array stay contiguous


def _header(**kw):
    return pb.ConvertResponse(header=pb.TensorHeader(**kw)).SerializeToString()


def _chunk(b):
    return pb.ConvertResponse(chunk=b).SerializeToString()


def test_reader_checks_crc_and_lengths():
    data = np.arange(4, dtype=np.float32).tobytes()
    r = FrameReader(pb)
    assert r.feed(_header(name="t", dtype="F32", shape=[4], byte_length=16, crc32c=crc32c(data) ^ 1)) is None
    with pytest.raises(MoeAdapterError) as e:
        r.feed(_chunk(data))
    assert e.value.code == grpc.StatusCode.DATA_LOSS and "'t'" in e.value.message

    r = FrameReader(pb)
    with pytest.raises(MoeAdapterError, match="byte_length"):
        r.feed(_header(name="t", dtype="F32", shape=[4], byte_length=15))
    r = FrameReader(pb)
    r.feed(_header(name="t", dtype="F32", shape=[4], byte_length=16, crc32c=crc32c(data)))
    with pytest.raises(MoeAdapterError, match="exceed"):
        r.feed(_chunk(data + b"x"))
    r = FrameReader(pb)
    r.feed(_header(name="t", dtype="F32", shape=[4], byte_length=16, crc32c=crc32c(data)))
    r.feed(_chunk(data[:8]))
    with pytest.raises(MoeAdapterError, match="truncated"):
        r.close()
    # A chunk message in another valid encoding (an unknown field first) goes through protobuf.
    r = FrameReader(pb)
    r.feed(_header(name="t", dtype="F32", shape=[4], byte_length=16, crc32c=crc32c(data)))
    name, arr = r.feed(b"\x98\x06\x01" + _chunk(data))  # field 99 varint 1, then the chunk
    assert name == "t" and arr.tobytes() == data
