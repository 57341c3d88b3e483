"""Tensors in and out of the client: NumPy arrays, torch tensors (when torch is importable) and
raw bytes, mapped to the wire's safetensors dtype strings.

NumPy has no bfloat16 or float8: such tensors travel as their raw bit patterns, and come back as
a `BitsArray` (an ndarray of uint16 / uint8 that remembers the wire dtype), which goes back to the
server as the same dtype.
"""
import sys

import numpy as np

# safetensors dtype string -> NumPy dtype of its values (or of its bit patterns).
_NUMPY = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
    "BOOL": np.bool_,
}
# Dtypes NumPy lacks: carried as bits of this width.
_BITS = {"BF16": np.uint16, "F8_E4M3": np.uint8, "F8_E5M2": np.uint8}
_FROM_NUMPY = {np.dtype(v).newbyteorder("<"): k for k, v in _NUMPY.items()}


def numpy_dtype(wire_dtype):
    """The NumPy dtype holding `wire_dtype`'s values or bits; None when unknown."""
    t = _NUMPY.get(wire_dtype) or _BITS.get(wire_dtype)
    return None if t is None else np.dtype(t).newbyteorder("<")


class BitsArray(np.ndarray):
    """An ndarray of raw bit patterns of a dtype NumPy lacks (`wire_dtype` "BF16": uint16;
    "F8_E4M3"/"F8_E5M2": uint8). Views and slices keep `wire_dtype`; `np.asarray()` drops it.
    Arithmetic on it is arithmetic on bit patterns: convert first (e.g. `to_torch()`)."""

    def __new__(cls, bits, wire_dtype):
        obj = np.asarray(bits).view(cls)
        obj.wire_dtype = wire_dtype
        return obj

    def __array_finalize__(self, obj):
        self.wire_dtype = getattr(obj, "wire_dtype", None)

    def to_torch(self):
        """A torch tensor of the real dtype sharing this memory (torch must be installed)."""
        import torch  # only here: the client never needs torch itself

        t = {"BF16": (np.int16, torch.bfloat16), "F8_E4M3": (np.int8, "float8_e4m3fn"),
             "F8_E5M2": (np.int8, "float8_e5m2")}[self.wire_dtype]
        target = t[1] if not isinstance(t[1], str) else getattr(torch, t[1])
        return torch.from_numpy(np.asarray(self).view(t[0])).view(target)


class RawTensor:
    """A tensor given as raw little-endian, row-major bytes: `RawTensor(data, "BF16", [4, 8])`.
    `data` is bytes, bytearray, memoryview or anything with the buffer protocol."""

    __slots__ = ("data", "dtype", "shape")

    def __init__(self, data, dtype, shape):
        self.data = memoryview(data).cast("B")
        self.dtype = str(dtype)
        self.shape = tuple(int(d) for d in shape)

    def __repr__(self):
        return f"RawTensor(<{self.data.nbytes} bytes>, {self.dtype!r}, {list(self.shape)})"


def _torch_tensor(t):
    """(dtype, shape, bytes view) of a CPU, contiguous torch.Tensor."""
    torch = sys.modules["torch"]
    if t.device.type != "cpu":
        raise ValueError(f"torch tensor on {t.device}: move it to the CPU first (.cpu())")
    if not t.is_contiguous():
        raise ValueError("torch tensor is not contiguous: call .contiguous() first")
    names = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
             "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8",
             "bool": "BOOL", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2"}
    dtype_name = str(t.dtype).replace("torch.", "")
    wire = names.get(dtype_name)
    if wire is None:
        raise TypeError(f"torch dtype {t.dtype} has no safetensors equivalent")
    shape = tuple(int(d) for d in t.shape)
    if wire in _BITS:
        # Same-width integer view: torch.from_numpy-free, works on every torch version.
        width = getattr(torch, "int16" if wire == "BF16" else "int8")
        arr = t.view(width).numpy()
    else:
        arr = t.numpy()
    return wire, shape, memoryview(arr.reshape(-1)).cast("B")


def _is_torch(t):
    torch = sys.modules.get("torch")  # never imported here: a torch tensor implies torch is loaded
    return torch is not None and isinstance(t, torch.Tensor)


def describe(name, tensor):
    """(wire dtype, shape, bytes view) of one input tensor; TypeError/ValueError when unusable."""
    if isinstance(tensor, RawTensor):
        return tensor.dtype, tensor.shape, tensor.data
    if _is_torch(tensor):
        return _torch_tensor(tensor)
    if isinstance(tensor, np.ndarray):
        if not tensor.flags.c_contiguous:
            raise ValueError(f"tensor {name!r:.200}: array is not C-contiguous (np.ascontiguousarray)")
        if isinstance(tensor, BitsArray) and tensor.wire_dtype:
            return tensor.wire_dtype, tensor.shape, memoryview(np.asarray(tensor).reshape(-1)).cast("B")
        dt = tensor.dtype
        if dt.byteorder == ">":
            tensor = tensor.astype(dt.newbyteorder("<"))
            dt = tensor.dtype
        wire = _FROM_NUMPY.get(dt.newbyteorder("<"))
        if wire is None:
            raise TypeError(f"tensor {name!r:.200}: NumPy dtype {dt} has no safetensors equivalent")
        return wire, tensor.shape, memoryview(tensor.reshape(-1)).cast("B")
    if isinstance(tensor, (bytes, bytearray, memoryview)):
        raise TypeError(f"tensor {name!r:.200}: raw bytes need a dtype and a shape: "
                        "RawTensor(data, dtype, shape)")
    raise TypeError(f"tensor {name!r:.200}: expected a NumPy array, a torch.Tensor or a RawTensor, "
                    f"got {type(tensor).__name__}")


def make_output(wire_dtype, shape, buf):
    """The array yielded for an output tensor whose bytes are `buf` (a uint8 ndarray)."""
    dt = numpy_dtype(wire_dtype)
    arr = buf.view(dt).reshape(shape)
    if wire_dtype in _BITS:
        return BitsArray(arr, wire_dtype)
    return arr


def wire_dtype(array):
    """The safetensors dtype string of an output array ("BF16" for a BitsArray of BF16, "F32" for
    float32, ...): what a safetensors writer needs."""
    if isinstance(array, BitsArray) and array.wire_dtype:
        return array.wire_dtype
    wire = _FROM_NUMPY.get(array.dtype.newbyteorder("<"))
    if wire is None:
        raise TypeError(f"NumPy dtype {array.dtype} has no safetensors equivalent")
    return wire
