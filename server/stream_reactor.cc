#include "server/stream_reactor.h"

#include <malloc.h>

#include <algorithm>
#include <cstring>
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
#include "server/shm_wire.h"
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
      if (!in.options().shared_memory_token().empty()) {
        if (!env_.regions) {
          return absl::FailedPreconditionError(
              "options: shared_memory_token given, but this server serves no shared memory (it needs a unix: "
              "listener, without --no-shared-memory); stream the tensors instead");
        }
        ASSIGN_OR_RETURN(regions_, env_.regions->Take(in.options().shared_memory_token()));
      }
      chunk_bytes_ = cfg.chunk_bytes;
      reader_ = wire::FrameReader(chunk_bytes_, wire::kMaxTensorNameBytes);
      queue_ = OutputQueue(chunk_bytes_);
      options_seen_ = true;
      return OnOptions(cfg);
    }
    case v1::ConvertRequest::kHeader: {
      if (!options_seen_) return absl::InvalidArgumentError("the first message of a stream must carry its options");
      if (in.header().has_region_offset()) return BeginRegionTensor(in.header(), job);
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

// ---- shared memory -------------------------------------------------------------

namespace {

void ReleaseRegion(void* owner) { delete static_cast<std::shared_ptr<MappedRegion>*>(owner); }

// A view of [offset, offset + n) of `region` that keeps it mapped.
wire::Payload RegionView(const std::shared_ptr<MappedRegion>& region, uint64_t offset, uint64_t n) {
  if (n == 0) return wire::Payload();
  auto* owner = new std::shared_ptr<MappedRegion>(region);
  std::vector<grpc::Slice> pieces;
  pieces.emplace_back(region->data() + offset, n, &ReleaseRegion, owner);
  return wire::Payload(std::move(pieces));
}

std::string TensorRef(const std::string& name) { return absl::StrCat("tensor ", safetensors::Quote(name)); }

}  // namespace

absl::Status StreamReactor::BeginRegionTensor(const v1::TensorHeader& header, Job* job) {
  // A chunked tensor still open is truncated: the reader says so.
  if (reader_.in_tensor()) return reader_.Begin(header).status();
  if (!regions_.input) {
    return absl::InvalidArgumentError(absl::StrCat(
        TensorRef(header.name().substr(0, wire::kMaxTensorNameBytes)),
        ": region_offset given, but this stream has no input region (register one on the side channel and send its "
        "token in StreamOptions.shared_memory_token)"));
  }
  absl::StatusOr<wire::FrameHeader> h = wire::ParseHeader(header, wire::kMaxTensorNameBytes);
  if (!h.ok()) return h.status();
  const std::string ref = TensorRef(h->info.name);
  absl::Status in_region = regions_.input->CheckRange(header.region_offset(), h->byte_length, ref);
  if (!in_region.ok()) return in_region;
  absl::Status kept = ReserveMore(KeyCost(h->info.name) * 3 + MetadataBytes(h->metadata),
                                  absl::StrCat("the bookkeeping of ", ref));
  if (!kept.ok()) return kept;
  region_header_ = *std::move(h);
  region_offset_ = header.region_offset();
  region_done_ = 0;
  region_crc_.Reset();
  region_check_crc_ = region_header_.crc32c != 0;
  absl::Status s = OnTensorBegin(region_header_);
  if (!s.ok()) return s;
  region_active_ = true;
  return ContinueRegion(job);
}

absl::Status StreamReactor::ContinueRegion(Job* job) {
  const wire::FrameHeader& h = region_header_;
  do {
    // One chunk's worth at a time: the subclass holds, converts and queues
    // what it would for a streamed chunk, within the same budgets.
    const uint64_t n = std::min<uint64_t>(chunk_bytes_, h.byte_length - region_done_);
    wire::Payload piece = RegionView(regions_.input, region_offset_ + region_done_, n);
    const uint64_t at = region_done_;
    if (region_check_crc_) region_crc_.Update(regions_.input->data() + region_offset_ + at, n);
    region_done_ += n;
    bytes_in_ += n;
    env_.metrics->Payload(rpc_, Direction::kIn, n);
    const bool last = region_done_ == h.byte_length;
    if (last) {
      region_active_ = false;
      if (region_check_crc_ && region_crc_.value() != h.crc32c) {
        return absl::InvalidArgumentError(absl::StrCat(TensorRef(h.info.name), ": CRC32C mismatch (header says ",
                                                       wire::CrcHex(h.crc32c), ", the input region's bytes give ",
                                                       wire::CrcHex(region_crc_.value()), ")"));
      }
      ++tensors_in_;
      env_.metrics->Tensor(rpc_, Direction::kIn);
    }
    absl::Status s = OnTensorChunk(&piece, at, last, job);
    if (!s.ok() || last) return s;
  } while (!*job && queue_.bytes() <= window_bytes());
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> StreamReactor::AllocateOutput(const std::string& name, uint64_t n) {
  const MappedRegion& out = *regions_.output;
  constexpr uint64_t kAlign = shm_wire::kOutputAlignment;
  const std::optional<uint64_t> start = checked::Mul<uint64_t>(
      {checked::Add<uint64_t>({output_used_, kAlign - 1}).value_or(UINT64_MAX) / kAlign, kAlign});
  const std::optional<uint64_t> end = checked::Add<uint64_t>(start, n);
  if (!end || *end > out.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "output ", TensorRef(name), " does not fit in the output region: it needs ", n, " bytes at offset ",
        start.value_or(output_used_), " (64-byte aligned, after ", output_used_,
        " bytes of earlier outputs), and the region has ", out.size(), " bytes"));
  }
  absl::Status inside = out.CheckRange(*start, n, absl::StrCat("output ", TensorRef(name)));
  if (!inside.ok()) return inside;
  output_used_ = *end;
  return *start;
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
      for (JobOutput& o : outputs) {
        const Bytes& data = o.tensor.tensor.data;
        if (!regions_.output) {
          headers.push_back(wire::MakeHeader(o.tensor.info(), data.size(), Crc32c(data.data(), data.size()),
                                             o.metadata));
          continue;
        }
        // Shared memory: the bytes go into the client's output region here
        // (the job owns the allocator: no hook runs meanwhile), the header
        // alone to the client; the server's copy is freed at once.
        absl::StatusOr<uint64_t> at = AllocateOutput(o.tensor.name, data.size());
        if (!at.ok()) {
          s = at.status();
          break;
        }
        if (data.size() > 0) std::memcpy(regions_.output->data() + *at, data.data(), data.size());
        headers.push_back(wire::MakeHeader(o.tensor.info(), data.size(), 0, o.metadata));
        headers.back().set_region_offset(*at);
        o.tensor.tensor.data = Bytes();
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
            const uint64_t n = headers[i].byte_length();
            bytes_out_ += n;
            if (headers[i].has_region_offset()) env_.metrics->Payload(rpc_, Direction::kOut, n);
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
  ++tensors_out_;
  env_.metrics->Tensor(rpc_, Direction::kOut);
  if (!regions_.output) {
    queue_.PushHeader(std::move(header));
    return;
  }
  absl::StatusOr<uint64_t> at = AllocateOutput(header.name(), header.byte_length());
  if (!at.ok()) return Fail(at.status());
  header.set_region_offset(*at);
  forward_filled_ = 0;
  if (header.byte_length() == 0) {
    queue_.PushHeader(std::move(header));
  } else {
    forward_header_ = std::move(header);
  }
}

void StreamReactor::ForwardUnchanged(const wire::FrameHeader& h) {
  uint32_t crc = h.crc32c;
  if (&h == &region_header_ && crc == 0 && !regions_.output) {
    // A region tensor's CRC32C 0 means "not checked"; forwarded in chunks,
    // the client checks them against the header, which needs the real value.
    crc = Crc32c(regions_.input->data() + region_offset_, h.byte_length);
  }
  ForwardHeader(wire::MakeHeader(h.info, h.byte_length, crc, h.metadata));
}

void StreamReactor::ForwardChunk(wire::Payload chunk) {
  bytes_out_ += chunk.size();
  if (!regions_.output) {
    if (!chunk.empty()) queue_.PushChunk(std::move(chunk));
    return;
  }
  if (!forward_header_ || chunk.empty()) return;  // after a failure: nothing to write
  const uint64_t length = forward_header_->byte_length();
  if (chunk.size() > length - forward_filled_) {
    return Fail(absl::InternalError(absl::StrCat(TensorRef(forward_header_->name()), ": forwarded bytes exceed its length")));
  }
  chunk.CopyTo(regions_.output->data() + forward_header_->region_offset() + forward_filled_);
  forward_filled_ += chunk.size();
  env_.metrics->Payload(rpc_, Direction::kOut, chunk.size());
  if (forward_filled_ == length) {
    queue_.PushHeader(*std::move(forward_header_));
    forward_header_.reset();
  }
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
  if (region_active_ && !job_running_ && queue_.bytes() <= window_bytes()) {
    Job job;
    absl::Status s = ContinueRegion(&job);
    if (!s.ok()) {
      Fail(s);
      return Pump();
    }
    if (job) StartJob(std::move(job), /*end_of_input=*/false);
  }
  RefreshHeld();
  if (!job_running_ && !reader_.in_tensor() && !region_active_) account_.Settle();
  if (!read_in_flight_ && !read_pending_ && !input_ended_ && !region_active_ && queue_.bytes() <= window_bytes()) {
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
