// The remote client (include/moe_adapter/client.h): a sync gRPC
// ClientReaderWriter per session, written by the caller's thread and read by
// the session's own reader thread, so the two directions overlap and large
// outputs never stall the inputs. Messages are gRPC byte buffers
// (protocol/wire_message.h): a tensor's bytes go out as slices of its own memory
// and come in as gRPC's slices, copied once into the output tensor.
#include <algorithm>
#include <string>
#include <thread>
#include <utility>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/sync_stream.h>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "moe_adapter/client.h"
#include "moe_adapter/crc32c.h"
#include "moe_adapter/v1/adapter.grpc.pb.h"
#include "protocol/frame_codec.h"
#include "protocol/options_codec.h"
#include "protocol/wire_message.h"
#include "core/quote.h"

namespace moe_adapter {
namespace {

// FromGrpc(): the client-side reading of a gRPC status: the server's code and
// message, with transport and auth failures said plainly.
absl::Status FromGrpc(const grpc::Status& s, const ClientOptions& o) {
  const std::string msg = s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return absl::OkStatus();
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(absl::StrCat("cannot reach server ", o.target, ": ", msg));
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::UnauthenticatedError(o.bearer_token.empty()
                                            ? absl::StrCat("the server requires a token and none was given: ", msg)
                                            : absl::StrCat("the server refused the token: ", msg));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(absl::StrCat("deadline of ", absl::FormatDuration(o.deadline),
                                                      " exceeded (server ", o.target, ")"));
    case grpc::StatusCode::CANCELLED:
      return absl::CancelledError(absl::StrCat("the stream was cancelled: ", msg));
    default:
      // The remaining gRPC and absl codes share their google.rpc numbers.
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), msg);
  }
}

// MethodName(): "/moe_adapter.v1.MoeAdapter/ToHF" and so on, kept for the
// process (grpc::internal::RpcMethod keeps the pointer).
const char* MethodName(RemoteRpc rpc) {
  static const std::string* names = new std::string[3]{
      absl::StrCat("/", v1::MoeAdapter::service_full_name(), "/ToHF"),
      absl::StrCat("/", v1::MoeAdapter::service_full_name(), "/FromHF"),
      absl::StrCat("/", v1::MoeAdapter::service_full_name(), "/ConvertTensor")};
  return names[static_cast<int>(rpc)].c_str();
}

void PrepareContext(grpc::ClientContext* ctx, const ClientOptions& o, bool with_token) {
  if (with_token && !o.bearer_token.empty()) ctx->AddMetadata("authorization", "Bearer " + o.bearer_token);
  if (o.deadline != absl::InfiniteDuration()) ctx->set_deadline(absl::ToChronoTime(absl::Now() + o.deadline));
}

class RemoteSessionImpl final : public RemoteSession {
 public:
  RemoteSessionImpl(const ClientOptions& copts, TensorSink sink)
      : copts_(copts), sink_(std::move(sink)), frames_(copts.chunk_bytes) {}

  ~RemoteSessionImpl() override {
    if (!finished_) {
      ctx_.TryCancel();
      Drain();
    }
  }

  absl::Status Start(const std::shared_ptr<grpc::Channel>& channel, const grpc::internal::RpcMethod& method,
                     const ConvertOptions& options) {
    PrepareContext(&ctx_, copts_, /*with_token=*/true);
    // What the generated stub does, with byte buffers for messages: gRPC
    // 1.51 has no public synchronous generic streaming call.
    stream_.reset(grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
        channel.get(), method, &ctx_));
    reader_ = std::thread([this] { ReadLoop(); });
    v1::ConvertRequest req;
    *req.mutable_options() = wire::StreamOptionsToWire(options, copts_.chunk_bytes);
    return Write(wire::EncodeMessage(req));
  }

  absl::Status Send(const NamedTensor& t) override {
    const Bytes& data = t.tensor.data;
    // Two passes, CRC first (it goes in the header). Pages of a mapped file
    // are dropped once read, so resident memory stays near one chunk.
    Crc32cHasher crc;
    constexpr size_t kCrcBlock = 64u << 20;
    for (size_t off = 0; off < data.size(); off += kCrcBlock) {
      const size_t n = std::min(kCrcBlock, data.size() - off);
      crc.Update(data.data() + off, n);
      data.ReleasePages(off, n);
    }
    absl::Status s = BeginTensor(t.info(), crc.value());
    for (size_t off = 0; s.ok() && off < data.size(); off += copts_.chunk_bytes) {
      // The chunk is a slice of the tensor's memory, not a copy; it keeps
      // the memory's owner alive until gRPC has sent it.
      const size_t n = std::min(copts_.chunk_bytes, data.size() - off);
      s = Write(wire::EncodeChunk(wire::kRequestChunkField, data, off, n));
      if (s.ok()) pending_ -= n;
      data.ReleasePages(off, n);
    }
    return s;
  }

  absl::Status BeginTensor(const TensorInfo& info, uint32_t crc) override {
    if (finished_) return FinishedError();
    if (pending_ > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("tensor ", Quote(current_), " still misses ", pending_, " bytes; finish it before ", Quote(info.name), ""));
    }
    absl::StatusOr<int64_t> n = NumElements(info.shape, DTypeSize(info.dtype));
    if (!n.ok()) return absl::InvalidArgumentError(absl::StrCat("tensor ", Quote(info.name), ": ", n.status().message()));
    const uint64_t bytes = static_cast<uint64_t>(*n) * DTypeSize(info.dtype);
    v1::ConvertRequest req;
    *req.mutable_header() = wire::MakeHeader(info, bytes, crc);
    current_ = info.name;
    pending_ = bytes;
    return Write(wire::EncodeMessage(req));
  }

  absl::Status SendBytes(const void* data, size_t size) override {
    if (finished_) return FinishedError();
    if (size > pending_) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", Quote(current_), ": ", size,
                                                     " bytes given but only ", pending_, " remain"));
    }
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      const size_t n = std::min(size, copts_.chunk_bytes);
      // The caller's memory is only lent until we return, and gRPC may still
      // hold a message after Write() returns: one copy.
      absl::Status s = Write(wire::EncodeChunkCopy(wire::kRequestChunkField, p, n));
      if (!s.ok()) return s;
      p += n;
      size -= n;
      pending_ -= n;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<RemoteSummary> Finish() override {
    if (finished_) {
      if (!final_.ok()) return final_;
      return absl::FailedPreconditionError("Finish() was already called");
    }
    stream_->WritesDone();
    Conclude();
    if (!final_.ok()) return final_;
    return summary_;
  }

  void Cancel() override { ctx_.TryCancel(); }

 private:
  // Write(): sends one message. A refused write means the call is over: its
  // status is the answer.
  absl::Status Write(const grpc::ByteBuffer& message) {
    if (stream_->Write(message)) return absl::OkStatus();
    Conclude();
    if (final_.ok()) final_ = absl::UnavailableError(absl::StrCat("server ", copts_.target, " closed the stream"));
    return final_;
  }

  absl::Status FinishedError() const {
    return final_.ok() ? absl::FailedPreconditionError("the session is finished") : final_;
  }

  // Conclude(): waits for the reader, collects the status.
  void Conclude() {
    grpc::Status st = Drain();
    finished_ = true;
    if (!reader_error_.ok()) {
      final_ = reader_error_;  // ours: it caused the cancel
    } else if (!st.ok()) {
      final_ = FromGrpc(st, copts_);
    } else if (!have_summary_) {
      final_ = absl::DataLossError(absl::StrCat("server ", copts_.target, " ended the stream without a summary"));
    }
  }

  grpc::Status Drain() {
    if (reader_.joinable()) reader_.join();
    return stream_ ? stream_->Finish() : grpc::Status::OK;
  }

  void ReadLoop() {
    grpc::ByteBuffer buffer;
    wire::Inbound<v1::ConvertResponse> msg;
    while (stream_->Read(&buffer)) {
      if (!reader_error_.ok()) {  // cancelled; drain what is in flight
        buffer.Clear();
        continue;
      }
      absl::Status s = wire::Decode(&buffer, &msg);
      s = s.ok() ? Handle(&msg) : absl::DataLossError(absl::StrCat("server sent a bad message: ", s.message()));
      if (!s.ok()) {
        reader_error_ = s;
        ctx_.TryCancel();
      }
    }
  }

  absl::Status Handle(wire::Inbound<v1::ConvertResponse>* in) {
    if (in->is_chunk) {
      absl::StatusOr<uint64_t> off = frames_.Chunk(in->chunk);
      if (!off.ok()) return absl::DataLossError(absl::StrCat("server sent a bad output: ", off.status().message()));
      in->chunk.CopyTo(out_.mutable_data() + *off);
      in->chunk = wire::Payload();
      return frames_.complete() ? Deliver() : absl::OkStatus();
    }
    const v1::ConvertResponse* msg = &in->message;
    switch (msg->kind_case()) {
      case v1::ConvertResponse::kHeader: {
        absl::StatusOr<const wire::FrameHeader*> h = frames_.Begin(msg->header());
        if (!h.ok()) return absl::DataLossError(absl::StrCat("server sent a bad output: ", h.status().message()));
        out_ = Bytes::Allocate((*h)->byte_length);
        return frames_.complete() ? Deliver() : absl::OkStatus();
      }
      case v1::ConvertResponse::kChunk:  // decoded into in->chunk
        break;
      case v1::ConvertResponse::kSummary: {
        if (frames_.in_tensor()) {
          return absl::DataLossError(absl::StrCat("server ended output ", Quote(frames_.header().info.name), " early"));
        }
        const v1::StreamSummary& s = msg->summary();
        summary_.tensors_in = s.tensors_in();
        summary_.tensors_out = s.tensors_out();
        summary_.bytes_in = s.bytes_in();
        summary_.bytes_out = s.bytes_out();
        summary_.warnings.assign(s.warnings().begin(), s.warnings().end());
        summary_.metadata.clear();
        summary_.metadata.insert(s.metadata().begin(), s.metadata().end());
        summary_.peak_buffered_bytes = s.peak_buffered_bytes();
        have_summary_ = true;
        return absl::OkStatus();
      }
      case v1::ConvertResponse::KIND_NOT_SET:
        break;
    }
    return absl::DataLossError("server sent an empty message");
  }

  absl::Status Deliver() {
    absl::Status crc = frames_.End();
    if (!crc.ok()) return absl::DataLossError(absl::StrCat("output corrupted in transit: ", crc.message()));
    const wire::FrameHeader& h = frames_.header();
    NamedTensor t{h.info.name, Tensor{h.info.dtype, h.info.shape, std::move(out_)}};
    out_ = Bytes();
    return sink_ ? sink_(std::move(t)) : absl::OkStatus();
  }

  const ClientOptions copts_;
  TensorSink sink_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream_;
  std::thread reader_;
  // Caller's side.
  std::string current_;
  uint64_t pending_ = 0;
  bool finished_ = false;
  absl::Status final_;
  // Reader's side (read by the caller only after join()).
  wire::FrameReader frames_;
  Bytes out_;
  absl::Status reader_error_;
  RemoteSummary summary_;
  bool have_summary_ = false;
};

class RemoteClientImpl final : public RemoteClient {
 public:
  RemoteClientImpl(const ClientOptions& o, std::shared_ptr<grpc::Channel> channel)
      : options_(o),
        channel_(std::move(channel)),
        stub_(v1::MoeAdapter::NewStub(channel_)),
        health_(grpc::health::v1::Health::NewStub(channel_)),
        to_hf_(MethodName(RemoteRpc::kToHf), grpc::internal::RpcMethod::BIDI_STREAMING, channel_),
        from_hf_(MethodName(RemoteRpc::kFromHf), grpc::internal::RpcMethod::BIDI_STREAMING, channel_),
        convert_tensor_(MethodName(RemoteRpc::kConvertTensor), grpc::internal::RpcMethod::BIDI_STREAMING,
                        channel_) {}

  absl::StatusOr<std::unique_ptr<RemoteSession>> Open(RemoteRpc rpc, const ConvertOptions& options,
                                                      TensorSink sink) override {
    auto session = std::make_unique<RemoteSessionImpl>(options_, std::move(sink));
    const grpc::internal::RpcMethod& method =
        rpc == RemoteRpc::kToHf ? to_hf_ : rpc == RemoteRpc::kFromHf ? from_hf_ : convert_tensor_;
    absl::Status s = session->Start(channel_, method, options);
    if (!s.ok()) return s;
    return std::unique_ptr<RemoteSession>(std::move(session));
  }

  absl::StatusOr<RemoteServerInfo> GetInfo() override {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, options_, /*with_token=*/true);
    v1::ServerInfo info;
    grpc::Status st = stub_->GetInfo(&ctx, v1::GetInfoRequest(), &info);
    if (!st.ok()) return FromGrpc(st, options_);
    RemoteServerInfo out;
    out.version = info.version();
    out.device = info.device();
    out.cuda_built = info.cuda_built();
    out.lora_layouts.assign(info.lora_layouts().begin(), info.lora_layouts().end());
    out.expert_dtypes.assign(info.expert_dtypes().begin(), info.expert_dtypes().end());
    out.wire_dtypes.assign(info.wire_dtypes().begin(), info.wire_dtypes().end());
    out.rpcs.assign(info.rpcs().begin(), info.rpcs().end());
    out.max_chunk_bytes = info.limits().max_chunk_bytes();
    out.default_chunk_bytes = info.limits().default_chunk_bytes();
    out.max_stream_memory_bytes = info.limits().max_stream_memory_bytes();
    out.max_total_memory_bytes = info.limits().max_total_memory_bytes();
    out.max_concurrent_streams = info.limits().max_concurrent_streams();
    out.max_receive_message_bytes = info.limits().max_receive_message_bytes();
    return out;
  }

  absl::Status Health(const std::string& service) override {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, options_, /*with_token=*/false);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status st = health_->Check(&ctx, req, &resp);
    if (!st.ok()) return FromGrpc(st, options_);
    if (resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
      // Not kUnavailable: that is what an unreachable server gives, and probes
      // must tell "answered NOT_SERVING" (draining) from "nothing answered".
      return absl::FailedPreconditionError(absl::StrCat(
          "server ", options_.target, " is ", grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status())));
    }
    return absl::OkStatus();
  }

 private:
  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::MoeAdapter::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  const grpc::internal::RpcMethod to_hf_;
  const grpc::internal::RpcMethod from_hf_;
  const grpc::internal::RpcMethod convert_tensor_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RemoteClient>> RemoteClient::Connect(const ClientOptions& o) {
  if (o.target.empty()) return absl::InvalidArgumentError("client: no server target");
  if (o.chunk_bytes == 0 || o.chunk_bytes > (1u << 30)) {
    return absl::InvalidArgumentError(absl::StrCat("client: chunk_bytes must be in [1, 1GiB], got ", o.chunk_bytes));
  }
  if (o.tls_client_cert_pem.empty() != o.tls_client_key_pem.empty()) {
    return absl::InvalidArgumentError("client: the TLS client certificate and key go together");
  }
  const bool tls = o.use_tls || !o.tls_root_certs_pem.empty() || !o.tls_client_cert_pem.empty();
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = o.tls_root_certs_pem;
    ssl.pem_private_key = o.tls_client_key_pem;
    ssl.pem_cert_chain = o.tls_client_cert_pem;
    creds = grpc::SslCredentials(ssl);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  // A dns:/// name that resolves to several servers gets its streams spread
  // over all of them (one address: the same as pick_first).
  args.SetLoadBalancingPolicyName("round_robin");
  const size_t max_msg = o.max_message_bytes ? o.max_message_bytes : o.chunk_bytes + wire::kMessageSlackBytes;
  args.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(max_msg, INT32_MAX)));
  if (!o.tls_server_name.empty()) args.SetSslTargetNameOverride(o.tls_server_name);
  return std::unique_ptr<RemoteClient>(new RemoteClientImpl(o, grpc::CreateCustomChannel(o.target, creds, args)));
}

}  // namespace moe_adapter
