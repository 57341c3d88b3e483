#include "moe_adapter/remote_streams.h"

#include "core/internal/status_macros.h"

namespace moe_adapter {
namespace {

class RemoteStream final : public ConversionStream {
 public:
  explicit RemoteStream(std::unique_ptr<RemoteSession> session) : session_(std::move(session)) {}
  ~RemoteStream() override {
    if (!finished_) session_->Cancel();
  }
  absl::Status Send(const NamedTensor& t) override { return session_->Send(t); }
  absl::Status Finish() override {
    finished_ = true;
    ASSIGN_OR_RETURN(RemoteSummary s, session_->Finish());
    warnings_ = s.warnings;
    peak_ = s.peak_buffered_bytes;
    return absl::OkStatus();
  }
  size_t PeakHeldBytes() const override { return peak_; }
  std::vector<std::string> Warnings() const override { return warnings_; }

 private:
  std::unique_ptr<RemoteSession> session_;
  bool finished_ = false;
  std::vector<std::string> warnings_;
  size_t peak_ = 0;
};

}  // namespace

StreamOpener RemoteStreams(std::shared_ptr<RemoteClient> client) {
  return [client](Direction d, const ConvertOptions& o,
                  TensorSink sink) -> absl::StatusOr<std::unique_ptr<ConversionStream>> {
    ASSIGN_OR_RETURN(std::unique_ptr<RemoteSession> s,
                     client->Open(d == Direction::kToHf ? RemoteRpc::kToHf : RemoteRpc::kFromHf, o, std::move(sink)));
    return std::unique_ptr<ConversionStream>(new RemoteStream(std::move(s)));
  };
}

}  // namespace moe_adapter
