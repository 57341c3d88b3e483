"""Python client of moe-adapter-server (proto moe_adapter.v1).

    from moe_adapter_client import Client
    with Client("127.0.0.1:50051", token=tok, timeout=600) as c:
        for name, array in c.to_hf(native.items(), num_experts=128, hidden_size=4096,
                                   moe_intermediate_size=1536):
            ...

Inputs are (name, tensor) pairs: NumPy arrays, torch.Tensors (CPU, contiguous) or
RawTensor(data, dtype, shape). Outputs are NumPy arrays; BF16 and FP8 outputs are BitsArray (the
raw bit patterns as uint16 / uint8, `.wire_dtype` naming the real dtype; `.to_torch()`).
Errors from the server or the transport raise MoeAdapterError (.code: grpc.StatusCode, .message).
"""
from ._client import Client, Conversion, Summary, Tls
from ._errors import MoeAdapterError
from ._options import DEFAULT_CHUNK_BYTES
from ._tensors import BitsArray, RawTensor, wire_dtype

__all__ = ["Client", "Conversion", "Summary", "Tls", "MoeAdapterError", "RawTensor", "BitsArray",
           "DEFAULT_CHUNK_BYTES", "wire_dtype"]
