"""The framing of proto moe_adapter.v1 (adapter.proto): messages as bytes, tensors as a header
then chunks. Chunk messages are encoded and decoded by hand (one tag byte, a varint length, the
bytes), so a tensor's bytes are copied once each way instead of through protobuf; every other
message, and any chunk message encoded differently, goes through protobuf."""
import grpc
import numpy as np

from ._crc32c import crc32c
from ._errors import MoeAdapterError
from ._tensors import make_output, numpy_dtype

_REQUEST_CHUNK_TAG = (3 << 3) | 2   # ConvertRequest.chunk, length-delimited
_RESPONSE_CHUNK_TAG = (2 << 3) | 2  # ConvertResponse.chunk


def _varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf, pos):
    shift = value = 0
    while pos < len(buf) and shift < 64:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
    return None, pos


def chunk_message(view):
    """ConvertRequest{chunk: view} serialised."""
    return b"".join((bytes((_REQUEST_CHUNK_TAG,)), _varint(view.nbytes), view))


def tensor_messages(pb, name, dtype, shape, data, chunk_bytes):
    """The header and chunk messages of one input tensor (a generator: chunks are made lazily)."""
    header = pb.TensorHeader(name=name, dtype=dtype, shape=list(shape), byte_length=data.nbytes,
                             crc32c=crc32c(data))
    yield pb.ConvertRequest(header=header).SerializeToString()
    for off in range(0, data.nbytes, chunk_bytes):
        yield chunk_message(data[off:off + chunk_bytes])


def _protocol_error(message, code=grpc.StatusCode.INTERNAL):
    return MoeAdapterError(code, message)


class FrameReader:
    """Reassembles the server's output tensors; checks lengths and CRC32C as they arrive."""

    def __init__(self, pb):
        self._pb = pb
        self._name = None
        self._buf = None
        self._offset = 0
        self._crc = 0
        self._header = None
        self.summary = None
        self.metadata = {}

    def feed(self, raw):
        """One response message; returns a finished (name, array) or None."""
        if raw[:1] == bytes((_RESPONSE_CHUNK_TAG,)):
            n, pos = _read_varint(raw, 1)
            if n is not None and pos + n == len(raw):
                return self._chunk(memoryview(raw)[pos:])
        msg = self._pb.ConvertResponse.FromString(raw)
        kind = msg.WhichOneof("kind")
        if kind == "chunk":
            return self._chunk(memoryview(msg.chunk))
        if kind == "header":
            return self._begin(msg.header)
        if kind == "summary":
            self.close()
            if self.summary is not None:
                raise _protocol_error("the server sent a second stream summary")
            self.summary = msg.summary
            return None
        raise _protocol_error("the server sent an empty message")

    def _begin(self, h):
        if self.summary is not None:
            raise _protocol_error(f"output {h.name!r:.200}: after the stream summary")
        self.close()
        dt = numpy_dtype(h.dtype)
        if dt is None:
            raise _protocol_error(f"output {h.name!r:.200}: unknown dtype {h.dtype!r:.40}")
        numel = 1
        for d in h.shape:
            if d < 0:
                raise _protocol_error(f"output {h.name!r:.200}: negative dim in shape {list(h.shape)[:8]}")
            numel *= d
        if numel * dt.itemsize != h.byte_length:
            raise _protocol_error(f"output {h.name!r:.200}: byte_length {h.byte_length} != "
                                  f"{numel} x {dt.itemsize} for shape {list(h.shape)[:8]}")
        try:
            self._buf = np.empty(h.byte_length, dtype=np.uint8)
        except MemoryError:
            raise MoeAdapterError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  f"output {h.name!r:.200}: cannot allocate {h.byte_length} bytes") from None
        self._header, self._name, self._offset, self._crc = h, h.name, 0, 0
        if h.metadata:
            self.metadata[h.name] = dict(h.metadata)
        return self._finish_if_complete()

    def _chunk(self, view):
        if self._header is None:
            raise _protocol_error("the server sent a chunk without a header")
        end = self._offset + view.nbytes
        if end > self._header.byte_length:
            raise _protocol_error(f"output {self._name!r:.200}: chunks exceed byte_length {self._header.byte_length}")
        self._buf[self._offset:end] = np.frombuffer(view, dtype=np.uint8)
        self._crc = crc32c(view, self._crc)
        self._offset = end
        return self._finish_if_complete()

    def _finish_if_complete(self):
        h = self._header
        if self._offset < h.byte_length:
            return None
        if self._crc != h.crc32c:
            raise MoeAdapterError(grpc.StatusCode.DATA_LOSS,
                                  f"output {self._name!r:.200}: CRC32C {self._crc:#010x} != header's {h.crc32c:#010x}")
        out = (h.name, make_output(h.dtype, tuple(h.shape), self._buf))
        self._header = self._buf = None
        return out

    def close(self):
        """The stream (or the next header) ends here: no tensor may be incomplete."""
        if self._header is not None:
            raise _protocol_error(f"output {self._name!r:.200}: truncated at {self._offset} of "
                                  f"{self._header.byte_length} bytes")
