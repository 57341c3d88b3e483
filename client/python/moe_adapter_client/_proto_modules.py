"""The generated protobuf modules (protoc --python_out at build time, into _proto/).

adapter_pb2 is generated with `-I proto`; health_pb2 with `-I proto/grpc/health/v1`, so that no
module named `grpc` shadows the grpc package. When grpcio-health-checking is installed its
health_pb2 is used instead: both define grpc.health.v1 messages, and protobuf refuses to load the
same message names twice into one process.
"""
from ._proto.moe_adapter.v1 import adapter_pb2  # noqa: F401

try:
    from grpc_health.v1 import health_pb2  # noqa: F401
except ImportError:
    from ._proto import health_pb2  # noqa: F401
