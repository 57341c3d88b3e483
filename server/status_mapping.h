// File: server/status_mapping.h
//
// The one place where the server turns absl::Status values (from the core,
// the frame codec and the budgets) into grpc::Status. Both use the
// google.rpc codes, so the mapping keeps the code and the message; what this
// file adds is a guarantee that nothing unexpected (an OK status used as an
// error, a code outside the enum) ever reaches a client, and one name table
// for metrics labels.
//
// Example:
//   Finish(ToGrpcStatus(converter->Finish()));
//
// Thread-safety: pure functions.
#ifndef MOE_ADAPTER_SERVER_STATUS_MAPPING_H_
#define MOE_ADAPTER_SERVER_STATUS_MAPPING_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace moe_adapter {
namespace server {

// ToGrpcStatus(): same code, same message. An unknown code becomes INTERNAL.
grpc::Status ToGrpcStatus(const absl::Status& status);

// GrpcCodeName(): "OK", "INVALID_ARGUMENT", ... (the metrics `code` label).
absl::string_view GrpcCodeName(grpc::StatusCode code);

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_STATUS_MAPPING_H_
