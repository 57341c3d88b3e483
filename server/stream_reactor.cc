#include "server/stream_reactor.h"

#include <malloc.h>

#include <exception>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/checked_math.h"
#include "core/internal/status_macros.h"
#include "core/safetensors_format.h"
#include "core/session_common.h"
#include "moe_adapter/crc32c.h"
#include "server/status_mapping.h"
#include "protocol/wire_limits.h"

namespace moe_adapter {
namespace server {
namespace {

// A stream that held this much gives the freed memory back to the system when
// it ends (see ~StreamReactor()).
constexpr uint64_t kTrimAfterBytes = uint64_t{16} << 20;

constexpr char kOutOfMemory[] =
    "the server ran out of memory (its --max-stream-memory / --max-total-memory exceed what the machine has)";

// The core allocates its outputs and groups; an allocation the machine cannot
// satisfy fails this stream, not the process.
absl::Status RunGuarded(const Job& job, JobOutputs* outputs) {
  try {
    return job(outputs);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(kOutOfMemory);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("conversion failed: ", e.what()));
  }
}

}  // namespace

absl::StatusOr<Bytes> StreamReactor::AllocateBuffer(uint64_t size, const std::string& tensor) {
  try {
    return Bytes::Allocate(size);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat("tensor ", safetensors::Quote(tensor), ": ", kOutOfMemory));
  }
}

StreamReactor::StreamReactor(const StreamEnv& env, Rpc rpc, grpc::CallbackServerContext* context)
    : env_(env),
      rpc_(rpc),
      context_(context),
      deadline_(context->deadline()),
      started_(std::chrono::steady_clock::now()),
      account_(env.budget),
      reader_(env.default_chunk_bytes, wire::kMaxTensorNameBytes),
      queue_(env.default_chunk_bytes),
      chunk_bytes_(env.default_chunk_bytes),
      last_progress_(started_) {}

StreamReactor::~StreamReactor() {
  queue_.Clear();
  account_.SetHeld(0);
  // The server runs one malloc arena (docs/server.md): the many small blocks
  // of a large stream's bookkeeping (keys, headers) are freed in the middle
  // of it, where glibc keeps them resident. Hand them back, as the budget
  // says they are.
  if (account_.peak() >= kTrimAfterBytes) ::malloc_trim(0);
  if (env_.on_destroyed) env_.on_destroyed();
}

void StreamReactor::Start() {
  if (env_.watchdog) env_.watchdog->Add(this);
  std::lock_guard<std::mutex> lock(mu_);
  Pump();
}

// ---- reactions ---------------------------------------------------------------

void StreamReactor::OnReadDone(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  read_in_flight_ = false;
  last_progress_ = std::chrono::steady_clock::now();
  outputs_at_last_message_ = static_cast<uint64_t>(tensors_out_) + bytes_out_;
  if (job_running_ && !finish_called_ && error_.ok()) {
    // The job owns the subclass's state: this message waits for its end.
    read_pending_ = true;
    read_pending_ok_ = ok;
    return;
  }
  HandleRead(ok);
}

void StreamReactor::HandleRead(bool ok) {
  if (finish_called_ || !error_.ok()) return Pump();
  Job job;
  absl::Status s;
  if (ok) {
    s = HandleMessage(&job);
  } else {
    // The client half-closed (or the call broke; OnCancel then follows).
    input_ended_ = true;
    s = HandleInputEnd(&job);
  }
  if (!s.ok()) {
    Fail(s);
  } else if (job) {
    StartJob(std::move(job), /*end_of_input=*/!ok);
  } else if (!ok) {
    QueueSummary();
  }
  Pump();
}

void StreamReactor::OnWriteDone(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  write_in_flight_ = false;
  last_progress_ = std::chrono::steady_clock::now();
  if (!ok) Fail(absl::CancelledError("the client stopped receiving"));
  Pump();
}

void StreamReactor::OnCancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  Fail(absl::CancelledError("the stream was cancelled"));
  Pump();
}

void StreamReactor::OnDone() {
  // Before the lock: the watchdog holds its own lock while it checks us.
  if (env_.watchdog) env_.watchdog->Remove(this);
  bool destroy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    grpc::StatusCode code = final_code_;
    if (cancelled_) {
      // The client's own deadline fires (and cancels) a little before the
      // server's copy of it, which starts when the call arrives: a cancel that
      // close to the deadline is the deadline.
      code = std::chrono::system_clock::now() + std::chrono::seconds(1) >= deadline_
                 ? grpc::StatusCode::DEADLINE_EXCEEDED
                 : grpc::StatusCode::CANCELLED;
    }
    env_.metrics->RequestFinished(rpc_, code);
    env_.metrics->StreamDuration(
        rpc_, std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
    // Free what the stream holds now; the subclass's buffers go with it.
    queue_.Clear();
    destroy = !job_running_;
  }
  if (destroy) delete this;
}

void StreamReactor::CheckIdle(std::chrono::steady_clock::time_point now) {
  bool cancel = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A running job is the server's wait, not the client's.
    if (finish_called_ || idle_cancelled_ || job_running_) return;
    const bool before_options = !options_seen_ && env_.options_timeout.count() > 0;
    const std::chrono::nanoseconds limit = before_options ? env_.options_timeout : env_.idle_timeout;
    if (limit.count() <= 0 || now - last_progress_ < limit) return;
    // Outputs sent since the client's last message may still sit in the
    // transport (a write completes once gRPC has the bytes, not the client):
    // a client that stopped reading would never get a status queued behind
    // them, so such a stream is cancelled too.
    const bool outputs_since_message = static_cast<uint64_t>(tensors_out_) + bytes_out_ != outputs_at_last_message_;
    if (write_in_flight_ || outputs_since_message) {
      // The client stopped taking outputs: Finish must wait for the write, so
      // the call is cancelled instead (the client, not reading, sees CANCELLED).
      idle_cancelled_ = true;
      cancel = true;
    } else {
      // DEADLINE_EXCEEDED: a time limit passed before the stream could
      // complete. Not CANCELLED (nobody cancelled; the client would think it
      // had) nor UNAVAILABLE (which invites a blind retry of the same stall).
      const std::string d = absl::FormatDuration(absl::FromChrono(limit));
      Fail(absl::DeadlineExceededError(
          before_options ? absl::StrCat("no options from the client within ", d, " of opening the stream (--stream-options-timeout)")
                         : absl::StrCat("no message from the client for ", d, " (--stream-idle-timeout)")));
      Pump();
    }
  }
  if (cancel) context_->TryCancel();
}

// ---- input -------------------------------------------------------------------

absl::Status StreamReactor::HandleMessage(Job* job) {
  // gRPC's own size check would end the call without telling this reactor why
  // (it reads as a client cancel); the server checks instead, so the client's
  // code and the metric's agree (server.cc turns gRPC's check off).
  if (env_.max_message_bytes != 0 && in_.Length() > env_.max_message_bytes) {
    const size_t size = in_.Length();
    in_.Clear();
    return absl::ResourceExhaustedError(absl::StrCat("a message of ", size, " bytes is larger than this server accepts (",
                                                     env_.max_message_bytes, " bytes: --max-chunk-bytes + 1 MiB)"));
  }
  absl::Status decoded = wire::Decode(&in_, &msg_);
  if (!decoded.ok()) return decoded;
  if (msg_.is_chunk) {
    if (!options_seen_) return absl::InvalidArgumentError("the first message of a stream must carry its options");
    ASSIGN_OR_RETURN(uint64_t offset, reader_.Chunk(msg_.chunk));
    bytes_in_ += msg_.chunk.size();
    env_.metrics->Payload(rpc_, Direction::kIn, msg_.chunk.size());
    absl::Status s = Deliver(&msg_.chunk, offset, job);
    msg_.chunk = wire::Payload();  // gRPC's slices go back as soon as possible
    return s;
  }
  const v1::ConvertRequest& in = msg_.message;
  switch (in.kind_case()) {
    case v1::ConvertRequest::kOptions: {
      if (options_seen_) return absl::InvalidArgumentError("options sent twice: only the first message carries them");
      ASSIGN_OR_RETURN(wire::StreamConfig cfg,
                       wire::StreamConfigFromWire(in.options(), env_.default_chunk_bytes, env_.max_chunk_bytes));
      // What the options keep (up to 1 MiB of adapter config, a layer list
      // as long as config.json makes it) stays with the stream, in up to
      // three copies (the reactor's, the session's, one being validated).
      const ConvertOptions& o = cfg.options;
      const std::optional<uint64_t> kept = checked::Mul<uint64_t>(
          {3, o.adapter_config_json.size() + o.exclude_key_regex.size() +
                  o.geometry.mlp_only_layers.size() * sizeof(int64_t)});
      RETURN_IF_ERROR(ReserveMore(kept, "the stream's options"));
      options_bytes_ = kept.value_or(0);
      chunk_bytes_ = cfg.chunk_bytes;
      reader_ = wire::FrameReader(chunk_bytes_, wire::kMaxTensorNameBytes);
      queue_ = OutputQueue(chunk_bytes_);
      options_seen_ = true;
      return OnOptions(cfg);
    }
    case v1::ConvertRequest::kHeader: {
      if (!options_seen_) return absl::InvalidArgumentError("the first message of a stream must carry its options");
      ASSIGN_OR_RETURN(const wire::FrameHeader* h, reader_.Begin(in.header()));
      // The stream keeps the name (input registry, an output key, a queued
      // header) after the tensor: reserved before the core sees it.
      RETURN_IF_ERROR(ReserveMore(KeyCost(h->info.name) * 3 + MetadataBytes(h->metadata),
                                  absl::StrCat("the bookkeeping of tensor ", safetensors::Quote(h->info.name))));
      RETURN_IF_ERROR(OnTensorBegin(*h));
      if (!reader_.complete()) return absl::OkStatus();
      wire::Payload empty;
      return Deliver(&empty, 0, job);
    }
    case v1::ConvertRequest::kChunk:  // decoded into msg_.chunk above
    case v1::ConvertRequest::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("a message with neither options, a tensor header nor a chunk");
}

absl::Status StreamReactor::Deliver(wire::Payload* chunk, uint64_t offset, Job* job) {
  const bool last = reader_.complete();
  if (last) {
    RETURN_IF_ERROR(reader_.End());
    ++tensors_in_;
    env_.metrics->Tensor(rpc_, Direction::kIn);
  }
  return OnTensorChunk(chunk, offset, last, job);
}

absl::Status StreamReactor::HandleInputEnd(Job* job) {
  if (!options_seen_) return absl::InvalidArgumentError("the stream ended before its options");
  RETURN_IF_ERROR(reader_.Close());
  return OnInputEnd(job);
}

// ---- jobs --------------------------------------------------------------------

void StreamReactor::StartJob(Job job, bool end_of_input) {
  job_running_ = true;
  env_.workers->Submit([this, job = std::move(job), end_of_input] {
    JobOutputs outputs;
    const auto t0 = std::chrono::steady_clock::now();
    absl::Status s = RunGuarded(job, &outputs);
    env_.metrics->ConversionDuration(rpc_,
                                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    // Checksums are computed here, off the lock and off gRPC's threads.
    std::vector<v1::TensorHeader> headers;
    if (s.ok()) {
      headers.reserve(outputs.size());
      for (const JobOutput& o : outputs) {
        const Bytes& data = o.tensor.tensor.data;
        headers.push_back(wire::MakeHeader(o.tensor.info(), data.size(), Crc32c(data.data(), data.size()),
                                           o.metadata));
      }
    }
    bool destroy;
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_running_ = false;
      last_progress_ = std::chrono::steady_clock::now();
      destroy = done_;
      if (!destroy) {
        if (!s.ok()) {
          Fail(s);
        } else if (!finish_called_ && error_.ok()) {
          for (size_t i = 0; i < outputs.size(); ++i) {
            bytes_out_ += outputs[i].tensor.tensor.data.size();
            queue_.PushTensor(std::move(headers[i]), std::move(outputs[i].tensor.tensor.data));
            ++tensors_out_;
            env_.metrics->Tensor(rpc_, Direction::kOut);
          }
          if (end_of_input) QueueSummary();
        }
        if (read_pending_) {
          read_pending_ = false;
          HandleRead(read_pending_ok_);  // pumps
        } else {
          Pump();
        }
      }
    }
    outputs.clear();
    if (destroy) delete this;
  });
}

// ---- output ------------------------------------------------------------------

void StreamReactor::ForwardHeader(v1::TensorHeader header) {
  queue_.PushHeader(std::move(header));
  ++tensors_out_;
  env_.metrics->Tensor(rpc_, Direction::kOut);
}

void StreamReactor::ForwardUnchanged(const wire::FrameHeader& h) {
  ForwardHeader(wire::MakeHeader(h.info, h.byte_length, h.crc32c, h.metadata));
}

void StreamReactor::ForwardChunk(wire::Payload chunk) {
  bytes_out_ += chunk.size();
  if (!chunk.empty()) queue_.PushChunk(std::move(chunk));
}

void StreamReactor::QueueSummary() {
  v1::StreamSummary summary;
  FillSummary(&summary);
  summary.set_tensors_in(tensors_in_);
  summary.set_tensors_out(tensors_out_);
  summary.set_bytes_in(bytes_in_);
  summary.set_bytes_out(bytes_out_);
  summary.set_peak_buffered_bytes(account_.peak());
  queue_.PushSummary(std::move(summary));
  summary_queued_ = true;
}

void StreamReactor::Fail(const absl::Status& status) {
  if (error_.ok()) error_ = status;
  // Outputs nobody will read are dropped now; input buffers go with the reactor.
  queue_.Clear();
}

void StreamReactor::RefreshHeld() {
  if (!job_running_) sub_held_ = HeldBytes();
  account_.SetHeld(sub_held_ + queue_.bytes() + options_bytes_);
}

uint64_t StreamReactor::KeyCost(const std::string& name) {
  return KeyFootprint(name.size() + (wire::kMaxWireNameBytes - wire::kMaxTensorNameBytes));
}

uint64_t StreamReactor::MetadataBytes(const std::map<std::string, std::string>& metadata) {
  uint64_t n = 0;
  for (const auto& [k, v] : metadata) n += KeyFootprint(k.size()) + v.size();  // bounded by wire_limits.h
  return n;
}

absl::Status StreamReactor::ReserveMore(std::optional<uint64_t> need, const std::string& what) {
  RefreshHeld();
  const std::optional<uint64_t> total = checked::Add(std::optional<uint64_t>(account_.held()), need);
  if (!total) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " needs more bytes held at once than 64 bits can count, more than the per-stream memory budget of ",
        env_.budget->per_stream_limit(), " bytes (--max-stream-memory)"));
  }
  return account_.Reserve(*total, what);
}

void StreamReactor::Pump() {
  if (finish_called_) return;
  if (!error_.ok()) {
    // Finish once the write in flight is back; a pending read just fails.
    if (!write_in_flight_) {
      finish_called_ = true;
      grpc::Status status = ToGrpcStatus(error_);
      final_code_ = status.error_code();
      Finish(status);
    }
    return;
  }
  if (!write_in_flight_) {
    uint64_t payload = 0;
    if (queue_.Next(&out_, &payload)) {
      write_in_flight_ = true;
      if (payload) env_.metrics->Payload(rpc_, Direction::kOut, payload);
      StartWrite(&out_);
    }
  }
  RefreshHeld();
  if (!job_running_ && !reader_.in_tensor()) account_.Settle();
  if (!read_in_flight_ && !read_pending_ && !input_ended_ && queue_.bytes() <= window_bytes()) {
    read_in_flight_ = true;
    StartRead(&in_);
  }
  if (summary_queued_ && !write_in_flight_ && queue_.empty()) {
    finish_called_ = true;
    final_code_ = grpc::StatusCode::OK;
    Finish(grpc::Status::OK);
  }
}

}  // namespace server
}  // namespace moe_adapter
