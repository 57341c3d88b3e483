"""Client and Conversion: the RPCs of moe_adapter.v1 over a gRPC channel at default options."""
import dataclasses
import threading

import grpc

from . import _options
from ._errors import MoeAdapterError
from ._proto_modules import adapter_pb2 as pb, health_pb2
from ._tensors import describe
from ._wire import FrameReader, tensor_messages

_SERVICE = pb.DESCRIPTOR.services_by_name["MoeAdapter"].full_name


def _method(name):
    return f"/{_SERVICE}/{name}"


@dataclasses.dataclass
class Summary:
    """StreamSummary: the last message of a successful stream."""
    tensors_in: int
    tensors_out: int
    bytes_in: int
    bytes_out: int
    warnings: list
    metadata: dict
    peak_buffered_bytes: int


@dataclasses.dataclass
class Tls:
    """TLS settings. Each of ca/cert/key is PEM bytes or a path (str or os.PathLike) to a PEM
    file. ca=None uses the system's roots; cert and key (mTLS) go together; server_name is the
    name the server certificate must carry when it differs from the target's host."""
    ca: object = None
    cert: object = None
    key: object = None
    server_name: str = None


def _pem(value):
    if value is None or isinstance(value, bytes):
        return value
    with open(value, "rb") as f:
        return f.read()


def _error(e, target):
    """A grpc.RpcError (or a call that ended badly) as MoeAdapterError."""
    code, details = e.code(), e.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        details = f"cannot reach server {target}: {details}"
    return MoeAdapterError(code, details)


class Conversion:
    """One conversion stream. Iterate it for `(name, array)` pairs as the outputs arrive, or call
    `result()` for all of them at once.

    Outputs are final only when the stream ends well: if iteration raises MoeAdapterError, every
    output yielded before belongs to a failed conversion and must be discarded (write them to a
    temporary place and publish them when the loop completes, as the C++ CLI does). `result()`
    returns nothing unless the whole stream succeeded. After the end, `summary` holds the
    server's StreamSummary and `metadata` each output's TensorHeader.metadata (EP slices).

    The input iterable is consumed by gRPC's sending thread while this object reads the
    outputs, so the server's back-pressure never stalls the stream. An exception raised by the
    iterable, or a tensor the client cannot send (TypeError/ValueError), cancels the stream and is
    re-raised here as it is.
    """

    def __init__(self, client, method, tensors, options, single=False):
        self._client = client
        self._method = method
        self._tensors = tensors
        self._options = options
        self._single = single
        self._call = None
        self._call_ready = threading.Event()
        self._stop = threading.Event()
        self._send_error = None
        self._responses = None
        self._reader = FrameReader(pb)
        self._done = False
        self.summary = None
        self.metadata = self._reader.metadata

    def _requests(self):
        try:
            yield pb.ConvertRequest(options=self._options).SerializeToString()
            chunk = self._options.chunk_size or _options.DEFAULT_CHUNK_BYTES
            for item in self._tensors:
                try:
                    name, tensor = item
                except (TypeError, ValueError):
                    raise TypeError("tensors must be (name, tensor) pairs, got "
                                    f"{type(item).__name__}") from None
                if not isinstance(name, str):
                    raise TypeError(f"tensor name must be a str, got {type(name).__name__}")
                dtype, shape, data = describe(name, tensor)
                for msg in tensor_messages(pb, name, dtype, shape, data, chunk):
                    if self._stop.is_set():
                        return
                    yield msg
        except GeneratorExit:  # gRPC closes the iterator when the call ends
            raise
        except BaseException as e:  # noqa: B036 - handed to the reading thread, which re-raises it
            self._send_error = e
            self._call_ready.wait()
            self._call.cancel()

    def _start(self):
        stream = self._client._channel.stream_stream(self._method)  # bytes in, bytes out
        self._call = stream(self._requests(), timeout=self._client._timeout,
                            metadata=self._client._metadata)
        self._call_ready.set()
        self._responses = iter(self._call)

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        if self._call is None:
            self._start()
        try:
            while True:
                try:
                    raw = next(self._responses)
                except StopIteration:
                    break
                except grpc.RpcError as e:
                    if self._send_error is not None:
                        raise self._send_error from None
                    raise _error(e, self._client._target) from None
                out = self._reader.feed(raw)
                if out is not None:
                    return out
            self._reader.close()
            if self._reader.summary is None:
                raise MoeAdapterError(grpc.StatusCode.INTERNAL, "the stream ended without a summary")
            s = self._reader.summary
            self.summary = Summary(s.tensors_in, s.tensors_out, s.bytes_in, s.bytes_out,
                                   list(s.warnings), dict(s.metadata), s.peak_buffered_bytes)
            self._done = True
            raise StopIteration
        except BaseException:
            if not self._done:
                self.cancel()
            raise

    def result(self):
        """Every (remaining) output as a dict name -> array, in arrival order; raises, returning
        nothing, when the stream fails."""
        return dict(self)

    def cancel(self):
        """Stops the stream (the server frees what it holds for it)."""
        self._done = True
        self._stop.set()
        if self._call is not None:
            self._call.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self._done:
            self.cancel()

    def __del__(self):
        if self._call is not None and not self._done:
            self._call.cancel()


class Client:
    """A connection to a moe-adapter-server.

    target: "host:port" (or any gRPC target, e.g. "dns:///name:port", "unix:///run/moe/adapter.sock").
    token: sent as `authorization: Bearer <token>` on conversions and info() (not health()).
    tls: None (plaintext), True (TLS with the system's roots) or a Tls(...).
    timeout: seconds each call may take, from its start (a whole conversion stream); None = no limit.

    The channel keeps gRPC's default options: every message of this protocol fits the default
    4 MiB receive limit. Conversion options are keyword arguments mirroring the CLI's flags:
    num_experts, hidden_size, moe_intermediate_size (or config: a dict, a JSON string or a path
    to config.json), family (default: the one config names, else "qwen3_moe"), lora_layout, dtype,
    ep_rank, ep_size, exclude_key_regex, adapter_config (dict, JSON string or path), quantization,
    partial_checkpoint, chunk_size. An unknown option
    raises TypeError.
    """

    def __init__(self, target, *, token=None, tls=None, timeout=None):
        self._target = target
        self._timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        if tls is None or tls is False:
            self._channel = grpc.insecure_channel(target)
        else:
            t = Tls() if tls is True else tls
            if (t.cert is None) != (t.key is None):
                raise ValueError("tls: the client certificate and key go together")
            creds = grpc.ssl_channel_credentials(_pem(t.ca), _pem(t.key), _pem(t.cert))
            opts = (("grpc.ssl_target_name_override", t.server_name),) if t.server_name else None
            self._channel = grpc.secure_channel(target, creds, options=opts)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _unary(self, method, request, response_type, metadata):
        call = self._channel.unary_unary(method, request_serializer=type(request).SerializeToString,
                                         response_deserializer=response_type.FromString)
        try:
            return call(request, timeout=self._timeout, metadata=metadata)
        except grpc.RpcError as e:
            raise _error(e, self._target) from None

    def info(self):
        """GetInfo as a dict: version, device, cuda_built, lora_layouts, expert_dtypes,
        wire_dtypes, rpcs, families (the model families, the default first), limits (a dict of the
        server's budgets)."""
        i = self._unary(_method("GetInfo"), pb.GetInfoRequest(), pb.ServerInfo, self._metadata)
        lim = i.limits
        return {
            "version": i.version, "device": i.device, "cuda_built": i.cuda_built,
            "lora_layouts": list(i.lora_layouts), "expert_dtypes": list(i.expert_dtypes),
            "wire_dtypes": list(i.wire_dtypes), "rpcs": list(i.rpcs), "families": list(i.families),
            "limits": {f.name: getattr(lim, f.name) for f in lim.DESCRIPTOR.fields},
        }

    def health(self, service=""):
        """The health service's answer for `service` ("" = the server): "SERVING",
        "NOT_SERVING", ... Raises MoeAdapterError when the server cannot be reached."""
        r = self._unary("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest(service=service),
                        health_pb2.HealthCheckResponse, None)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    def to_hf(self, tensors, **options):
        """Native tensors -> HF tensors: a Conversion yielding (name, array) as each is ready."""
        return Conversion(self, _method("ToHF"), tensors, _options.to_wire(pb, options))

    def from_hf(self, tensors, **options):
        """HF tensors (any order) -> grouped tensors: a Conversion yielding (name, array) as each
        group completes."""
        return Conversion(self, _method("FromHF"), tensors, _options.to_wire(pb, options))

    def convert_tensor(self, name, tensor, **options):
        """One native tensor -> its HF tensors, as a list of (name, array) (all or an error).
        A tensor that is not an expert weight comes back unchanged."""
        c = Conversion(self, _method("ConvertTensor"), [(name, tensor)], _options.to_wire(pb, options))
        return list(c.result().items())
