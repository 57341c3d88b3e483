#include "server/status_mapping.h"

#include <string>

namespace moe_adapter {
namespace server {
namespace {

struct CodeRow {
  absl::StatusCode absl_code;
  grpc::StatusCode grpc_code;
  const char* name;
};

// Every google.rpc code, in both enums. INVALID_ARGUMENT: bad options, shapes,
// dtypes, regexes, framing, checksums. FAILED_PRECONDITION: valid input the
// options cannot decide (ambiguous LoRA layout). UNIMPLEMENTED: FP8.
// RESOURCE_EXHAUSTED: budgets, sizes, the stream limit.
constexpr CodeRow kCodes[] = {
    {absl::StatusCode::kOk, grpc::StatusCode::OK, "OK"},
    {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED, "CANCELLED"},
    {absl::StatusCode::kUnknown, grpc::StatusCode::UNKNOWN, "UNKNOWN"},
    {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT"},
    {absl::StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"},
    {absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND, "NOT_FOUND"},
    {absl::StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS, "ALREADY_EXISTS"},
    {absl::StatusCode::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED, "PERMISSION_DENIED"},
    {absl::StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"},
    {absl::StatusCode::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION, "FAILED_PRECONDITION"},
    {absl::StatusCode::kAborted, grpc::StatusCode::ABORTED, "ABORTED"},
    {absl::StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE, "OUT_OF_RANGE"},
    {absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED, "UNIMPLEMENTED"},
    {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL, "INTERNAL"},
    {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE, "UNAVAILABLE"},
    {absl::StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS, "DATA_LOSS"},
    {absl::StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED, "UNAUTHENTICATED"},
};

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  for (const CodeRow& row : kCodes) {
    if (row.absl_code == status.code()) return grpc::Status(row.grpc_code, std::string(status.message()));
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, std::string(status.message()));
}

absl::string_view GrpcCodeName(grpc::StatusCode code) {
  for (const CodeRow& row : kCodes) {
    if (row.grpc_code == code) return row.name;
  }
  return "UNKNOWN";
}

}  // namespace server
}  // namespace moe_adapter
