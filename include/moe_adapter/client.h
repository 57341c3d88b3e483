// File: moe_adapter/client.h
//
// The remote client: runs conversions on a moe-adapter-server over gRPC
// (proto moe_adapter.v1, docs/server.md). A RemoteSession is one ToHF,
// FromHF or ConvertTensor stream: send input tensors in, receive outputs
// through a TensorSink, reassembled and CRC32C-verified, while sending
// continues (a reader thread runs beside the caller, so large outputs never
// block the inputs).
//
// Example:
//   moe_adapter::ClientOptions copts;
//   copts.target = "127.0.0.1:50051";
//   copts.bearer_token = token;                       // when the server wants one
//   ASSIGN_OR_RETURN(auto client, moe_adapter::RemoteClient::Connect(copts));
//   ASSIGN_OR_RETURN(auto session, client->Open(moe_adapter::RemoteRpc::kToHf, options,
//                        [&](moe_adapter::NamedTensor t) { return writer.Add(t); }));
//   for (const NamedTensor& t : inputs) RETURN_IF_ERROR(session->Send(t));
//   ASSIGN_OR_RETURN(moe_adapter::RemoteSummary summary, session->Finish());
//
// Errors are absl::Status values with the server's code (INVALID_ARGUMENT,
// FAILED_PRECONDITION, RESOURCE_EXHAUSTED, ...) and message; transport
// problems read "cannot reach server ADDR: ...", a refused token "the server
// refused the token", an expired deadline "deadline ... exceeded".
//
// Thread-safety: a RemoteClient may be shared by threads and sessions. A
// RemoteSession is used by one thread at a time; its sink is called on the
// session's reader thread, one tensor at a time, in the order the server
// sent them. Ownership: a session must not outlive its client.
#ifndef MOE_ADAPTER_CLIENT_H_
#define MOE_ADAPTER_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "moe_adapter/convert_options.h"
#include "moe_adapter/converter.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {

// ClientOptions: how to reach a server.
struct ClientOptions {
  // "host:port" (any gRPC target string).
  std::string target = "127.0.0.1:50051";
  // TLS: on when use_tls is set or any PEM below is given.
  bool use_tls = false;
  // PEM roots that sign the server's certificate; empty = the system roots.
  std::string tls_root_certs_pem;
  // mTLS: this client's certificate chain and private key (PEM).
  std::string tls_client_cert_pem;
  std::string tls_client_key_pem;
  // The name the server certificate must carry when it differs from the
  // target's host (tests, IP targets).
  std::string tls_server_name;
  // Sent as `authorization: Bearer <token>` when not empty.
  std::string bearer_token;
  // Deadline of each call, from its start; infinite = none.
  absl::Duration deadline = absl::InfiniteDuration();
  // Bytes per chunk sent, and asked for in return (at most the server's
  // --max-chunk-bytes; GetInfo() tells it). The default, 4 MiB less 64 KiB,
  // keeps every message within gRPC's default 4 MiB receive limit.
  size_t chunk_bytes = (4u << 20) - (64u << 10);
  // Largest message received; 0 = chunk_bytes plus room for headers.
  size_t max_message_bytes = 0;
};

// RemoteRpc: which stream to open.
enum class RemoteRpc {
  kToHf,           // native -> HF, many tensors
  kFromHf,         // HF -> native, many tensors, any order
  kConvertTensor,  // native -> HF, exactly one tensor
};

// RemoteSummary: the server's account of a finished stream.
struct RemoteSummary {
  int64_t tensors_in = 0;
  int64_t tensors_out = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::vector<std::string> warnings;
  // Output __metadata__ (from_hf with EP: ep_rank, ep_size, expert range, E).
  std::map<std::string, std::string> metadata;
  uint64_t peak_buffered_bytes = 0;
};

// RemoteServerInfo: GetInfo()'s answer.
struct RemoteServerInfo {
  std::string version;
  std::string device;
  bool cuda_built = false;
  std::vector<std::string> lora_layouts;
  std::vector<std::string> expert_dtypes;
  std::vector<std::string> wire_dtypes;
  std::vector<std::string> rpcs;
  uint64_t max_chunk_bytes = 0;
  uint64_t default_chunk_bytes = 0;
  uint64_t max_stream_memory_bytes = 0;
  uint64_t max_total_memory_bytes = 0;
  uint32_t max_concurrent_streams = 0;
  uint64_t max_receive_message_bytes = 0;
};

// RemoteSession: one conversion stream. Destroying an unfinished session
// cancels it.
class RemoteSession {
 public:
  virtual ~RemoteSession() = default;

  // Send(): one whole tensor (from memory, an mmap'ed file or an at::Tensor
  // through moe_adapter/aten.h). Its CRC32C is computed first, then it goes
  // out in chunks that are slices of `tensor`'s own bytes: nothing is
  // copied, and the bytes' owner is kept alive until gRPC has sent them.
  // Pages of a file mapping are released as they are consumed
  // (Bytes::ReleasePages), so sending a large mapped checkpoint keeps
  // resident memory small. A failed stream returns its final status (as
  // Finish()).
  virtual absl::Status Send(const NamedTensor& tensor) = 0;

  // BeginTensor() + SendBytes(): a tensor whose bytes come piecewise
  // (generated, larger than memory). `crc32c` must cover all of them;
  // SendBytes() calls must add up to exactly the tensor's byte count. The
  // memory is only lent for the call, so SendBytes() copies it once.
  virtual absl::Status BeginTensor(const TensorInfo& info, uint32_t crc32c) = 0;
  virtual absl::Status SendBytes(const void* data, size_t size) = 0;

  // Finish(): ends the input, waits for the last output and the server's
  // status. Call once; after an error the session is finished too.
  virtual absl::StatusOr<RemoteSummary> Finish() = 0;

  // Cancel(): abandons the stream (Finish() then reports CANCELLED).
  virtual void Cancel() = 0;
};

// RemoteClient: a channel to one server.
class RemoteClient {
 public:
  // Connect(): sets up the channel (connection happens on first use).
  // kInvalidArgument for inconsistent options.
  static absl::StatusOr<std::unique_ptr<RemoteClient>> Connect(const ClientOptions& options);
  virtual ~RemoteClient() = default;

  // Open(): starts a stream and sends `options`. `sink` receives every
  // output tensor; a non-OK return cancels the stream and becomes Finish()'s
  // status.
  virtual absl::StatusOr<std::unique_ptr<RemoteSession>> Open(RemoteRpc rpc, const ConvertOptions& options,
                                                              TensorSink sink) = 0;

  // GetInfo(): the server's version, device, layouts, dtypes and limits.
  virtual absl::StatusOr<RemoteServerInfo> GetInfo() = 0;

  // Health(): grpc.health.v1 Check of `service` ("" = the whole server),
  // without the token (as a probe). OK when SERVING; kFailedPrecondition when
  // the server answers NOT_SERVING (e.g. draining); kUnavailable or
  // kDeadlineExceeded when nothing answered; else the health service's code.
  virtual absl::Status Health(const std::string& service = "") = 0;
};

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CLIENT_H_
