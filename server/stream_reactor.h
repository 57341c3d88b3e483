// File: server/stream_reactor.h
//
// What the three conversion RPCs (ToHF, FromHF, ConvertTensor) share: a gRPC
// callback ServerBidiReactor that reads the options and the framed input
// tensors, hands each piece to its subclass (to_hf_reactor.h,
// from_hf_reactor.h, convert_tensor_reactor.h), runs the conversion work the
// subclass returns on a worker thread, and writes the outputs back.
//
// The rules it keeps (style guide §3, spec §15.8):
//   - state lives in members, guarded by one mutex; reactions may run
//     concurrently with each other and with the stream's job;
//   - at most one read, one write and one job in flight; a read may complete
//     while a job runs (the network keeps moving while a tensor converts) but
//     is handled only after it; the next read starts only when the last one
//     was handled and the queued output is within a small window (two
//     chunks), so a slow reader slows the writer through gRPC's flow control
//     instead of growing a queue;
//   - messages are gRPC byte buffers (wire_message.h): chunk bytes arrive and
//     leave in gRPC's slices, copied once, into or out of the conversion;
//   - exactly one Finish(): OK after the summary is written, or the first
//     error (also after a cancel); the reactor deletes itself after OnDone and
//     after its last job, whichever comes later, and frees every buffer then
//     (buffered bytes go back to what other streams hold);
//   - bytes held are reserved from the MemoryBudget before they are
//     allocated (subclasses call ReserveMore()).
//
// Subclass hooks run with the lock held and never concurrently with the
// stream's job; a job runs without the lock and may touch the subclass's
// conversion state, because nothing else does while it runs.
//
// Thread-safety: owned by gRPC until OnDone; see above.
#ifndef MOE_ADAPTER_SERVER_STREAM_REACTOR_H_
#define MOE_ADAPTER_SERVER_STREAM_REACTOR_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "moe_adapter/converter.h"
#include "moe_adapter/crc32c.h"
#include "moe_adapter/device.h"
#include "moe_adapter/v1/adapter.pb.h"
#include "protocol/frame_codec.h"
#include "server/idle_watchdog.h"
#include "server/job_queue.h"
#include "server/memory_budget.h"
#include "server/metrics.h"
#include "server/output_queue.h"
#include "server/shm_regions.h"
#include "protocol/options_codec.h"
#include "protocol/wire_message.h"

namespace moe_adapter {
namespace server {

// StreamEnv: what the service lends every stream. Everything outlives it.
struct StreamEnv {
  Device device;
  Metrics* metrics = nullptr;
  MemoryBudget* budget = nullptr;
  JobQueue* workers = nullptr;
  uint64_t default_chunk_bytes = wire::kDefaultChunkBytes;
  uint64_t max_chunk_bytes = wire::kDefaultChunkBytes;
  // Larger messages end the stream with RESOURCE_EXHAUSTED; 0: no limit.
  uint64_t max_message_bytes = 0;
  // Ends streams that wait on their client too long (CheckIdle()); null: none.
  IdleWatchdog* watchdog = nullptr;
  // Zero disables each. Before the options arrive options_timeout applies
  // (idle_timeout when it is zero).
  std::chrono::nanoseconds idle_timeout{0};
  std::chrono::nanoseconds options_timeout{0};
  // Shared-memory registrations; null: the mode is off (a token is refused).
  RegionRegistry* regions = nullptr;
  // Called once, when the stream is destroyed.
  std::function<void()> on_destroyed;
};

// JobOutput: one tensor a job produced, with the metadata for its header.
struct JobOutput {
  NamedTensor tensor;
  std::map<std::string, std::string> metadata;
};
using JobOutputs = std::vector<JobOutput>;
// Job: conversion work, run on a worker; appends its outputs.
using Job = std::function<absl::Status(JobOutputs*)>;

class StreamReactor : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                      public IdleWatchdog::Watched {
 public:
  StreamReactor(const StreamEnv& env, Rpc rpc, grpc::CallbackServerContext* context);

  // Start(): begins reading. Call once, right after construction.
  void Start();

  void OnReadDone(bool ok) final;
  void OnWriteDone(bool ok) final;
  void OnCancel() final;
  void OnDone() final;
  // CheckIdle(): the stream waited on its client (for a message, or to take
  // an output) longer than its limit with no job running: it ends.
  void CheckIdle(std::chrono::steady_clock::time_point now) final;

 protected:
  // The environment shared by every stream (device, budgets, metrics).
  const StreamEnv& env() const { return env_; }
  ~StreamReactor() override;

  // OnOptions(): the stream's options (first message).
  virtual absl::Status OnOptions(const wire::StreamConfig& config) = 0;
  // OnTensorBegin(): a header that passed the frame checks.
  virtual absl::Status OnTensorBegin(const wire::FrameHeader& header) = 0;
  // OnTensorChunk(): the next `*chunk` of the current tensor, at `offset`
  // (the subclass may move it out). `last`: the tensor is complete and its
  // CRC32C verified. A zero-byte tensor gets one empty call.
  virtual absl::Status OnTensorChunk(wire::Payload* chunk, uint64_t offset, bool last, Job* job) = 0;
  // OnInputEnd(): the client half-closed after complete tensors.
  virtual absl::Status OnInputEnd(Job* job) = 0;
  // HeldBytes(): bytes the subclass holds (input buffers, incomplete groups,
  // the core's bookkeeping: ToHfConverter::KeptBytes()).
  virtual uint64_t HeldBytes() const = 0;
  // FillSummary(): warnings and metadata, after the end job.
  virtual void FillSummary(v1::StreamSummary* summary) = 0;

  // For hooks:
  // ReserveMore(): budget for `need` bytes beyond what the stream holds now;
  // RESOURCE_EXHAUSTED naming `what` and the budget when they do not fit.
  // `need` is nullopt when computing it overflowed (checked::, which every
  // size from client numbers goes through): that never fits.
  absl::Status ReserveMore(std::optional<uint64_t> need, const std::string& what);
  // KeyCost(): what keeping one key derived from input `name` costs (an
  // output key adds at most an expert id and a suffix).
  static uint64_t KeyCost(const std::string& name);
  // MetadataBytes(): what keeping a header's metadata costs.
  static uint64_t MetadataBytes(const std::map<std::string, std::string>& metadata);
  // AllocateBuffer(): `size` bytes for `tensor`, after ReserveMore(). A
  // machine with less memory than the budgets promise gives
  // RESOURCE_EXHAUSTED instead of ending the process.
  static absl::StatusOr<Bytes> AllocateBuffer(uint64_t size, const std::string& tensor);
  // ForwardHeader() / ForwardChunk(): output a tensor as its input arrives.
  void ForwardHeader(v1::TensorHeader header);
  void ForwardChunk(wire::Payload chunk);
  // ForwardUnchanged(): the header of an input tensor that is its own output.
  void ForwardUnchanged(const wire::FrameHeader& h);
  uint64_t chunk_bytes() const { return chunk_bytes_; }
  // window_bytes(): queued output above which reading pauses.
  uint64_t window_bytes() const { return 2 * chunk_bytes_; }
  Rpc rpc() const { return rpc_; }

 private:
  void HandleRead(bool ok);
  absl::Status HandleMessage(Job* job);
  absl::Status HandleInputEnd(Job* job);
  absl::Status Deliver(wire::Payload* chunk, uint64_t offset, Job* job);
  void StartJob(Job job, bool end_of_input);
  void QueueSummary();
  void Fail(const absl::Status& status);
  void Pump();
  void RefreshHeld();
  // Shared memory (docs/server.md): a header with region_offset, then its
  // bytes handed to the subclass in chunk-sized views of the input region,
  // one ContinueRegion() at a time, pausing while a job runs or the output
  // queue is above its window, as a streamed tensor would.
  absl::Status BeginRegionTensor(const v1::TensorHeader& header, Job* job);
  absl::Status ContinueRegion(Job* job);
  // AllocateOutput(): where the next `n` output bytes of `name` go in the
  // output region (64-byte aligned); FAILED_PRECONDITION when they do not fit.
  absl::StatusOr<uint64_t> AllocateOutput(const std::string& name, uint64_t n);

  const StreamEnv env_;
  const Rpc rpc_;
  grpc::CallbackServerContext* const context_;
  const std::chrono::system_clock::time_point deadline_;
  const std::chrono::steady_clock::time_point started_;

  std::mutex mu_;
  // Everything below is guarded by mu_ (or owned by the running job, above).
  MemoryBudget::Account account_;
  wire::FrameReader reader_;
  OutputQueue queue_;
  uint64_t chunk_bytes_;
  grpc::ByteBuffer in_;
  wire::Inbound<v1::ConvertRequest> msg_;
  grpc::ByteBuffer out_;
  bool options_seen_ = false;
  bool input_ended_ = false;
  bool read_in_flight_ = false;
  // A read completed while a job ran; handled when the job ends.
  bool read_pending_ = false;
  bool read_pending_ok_ = false;
  bool write_in_flight_ = false;
  bool job_running_ = false;
  bool summary_queued_ = false;
  bool finish_called_ = false;
  bool cancelled_ = false;
  bool done_ = false;
  absl::Status error_;
  grpc::StatusCode final_code_ = grpc::StatusCode::UNKNOWN;
  uint64_t sub_held_ = 0;  // HeldBytes() when no job ran last
  uint64_t options_bytes_ = 0;  // what the options' strings cost, kept all along
  int64_t tensors_in_ = 0;
  int64_t tensors_out_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;  // payload handed to the queue
  // The last read or write completed, or job ended (CheckIdle()).
  std::chrono::steady_clock::time_point last_progress_;
  // Outputs queued (tensors + bytes) when the client's last message arrived.
  uint64_t outputs_at_last_message_ = 0;
  bool idle_cancelled_ = false;

  // Shared memory: the regions the options' token named (either may be null).
  RegionSet regions_;
  // The input tensor being handed over from the input region.
  wire::FrameHeader region_header_;
  uint64_t region_offset_ = 0;  // of the tensor in the region
  uint64_t region_done_ = 0;    // bytes handed to the subclass
  bool region_active_ = false;
  Crc32cHasher region_crc_;
  bool region_check_crc_ = false;  // the client gave a CRC32C (not 0)
  // The bump allocator of the output region: bytes used.
  uint64_t output_used_ = 0;
  // A forwarded tensor waiting for its bytes in the output region; its
  // header is queued once they are all written.
  std::optional<v1::TensorHeader> forward_header_;
  uint64_t forward_filled_ = 0;
};

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_STREAM_REACTOR_H_
