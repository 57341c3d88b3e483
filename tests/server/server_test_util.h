// Helpers shared by the server suites: golden cases (manifest -> options ->
// the core's in-process result), running tensors through a RemoteSession,
// raw protocol streams for malformed input, throwaway TLS certificates, and
// a plain HTTP GET for /metrics.
#ifndef MOE_ADAPTER_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define MOE_ADAPTER_TESTS_SERVER_SERVER_TEST_UTIL_H_

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "moe_adapter/client.h"
#include "moe_adapter/convert_options.h"
#include "moe_adapter/tensor.h"
#include "moe_adapter/v1/adapter.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace moe_adapter::server_testing {

using TensorList = std::vector<NamedTensor>;
using json = nlohmann::json;

std::string DataDir();
std::string GoldenDir();
// The golden manifest, parsed once.
const json& Manifest();
// CaseNamed(): the manifest's case `name` (null when there is none).
json CaseNamed(const std::string& name);
// Cases the conversion suites replay: in_file present; not about reference
// state (spec §15 cases the golden README marks as dedicated).
std::vector<json> ReplayableCases(const std::string& op_prefix);
// OptionsFor(): a case's options, as the golden README maps them.
ConvertOptions OptionsFor(const json& c);

// LoadSafetensors(): every tensor of a file, in file order (views of an mmap).
TensorList LoadSafetensors(const std::string& path);

// What the core gives in-process.
struct Result {
  absl::Status status;
  TensorList outputs;
  std::vector<std::string> warnings;
  std::map<std::string, std::string> metadata;
};
Result CoreToHf(const ConvertOptions& o, const TensorList& in, bool single_tensor = false);
Result CoreFromHf(const ConvertOptions& o, const TensorList& in);

// Remote(): the same through a server stream.
Result Remote(RemoteClient& client, RemoteRpc rpc, const ConvertOptions& o, const TensorList& in,
              RemoteSummary* summary = nullptr);

// Diff(): "" when equal (names, dtypes, shapes, bytes); `ordered` also
// compares the order.
std::string Diff(const TensorList& got, const TensorList& want, bool ordered);

// RawStream(): writes `messages` on a raw ToHF/FromHF/ConvertTensor stream,
// half-closes (unless `half_close` is false: then cancels), collects the
// responses, returns the status.
grpc::Status RawStream(const std::string& target, const std::string& rpc,
                       const std::vector<moe_adapter::v1::ConvertRequest>& messages,
                       std::vector<moe_adapter::v1::ConvertResponse>* responses = nullptr,
                       const std::string& token = "");
moe_adapter::v1::ConvertRequest OptionsMsg(int64_t e, int64_t h, int64_t i);
moe_adapter::v1::ConvertRequest HeaderMsg(const std::string& name, const std::string& dtype,
                                          std::vector<int64_t> shape, uint64_t byte_length, uint32_t crc);
moe_adapter::v1::ConvertRequest ChunkMsg(const std::string& bytes);

// TempDir: a fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Files.
std::string ReadFileOrDie(const std::string& path);
void WriteFileOrDie(const std::string& path, const std::string& text);

// TestCerts: a throwaway CA, a server certificate for localhost/127.0.0.1
// and a client certificate, made with the openssl CLI (PEM paths).
struct TestCerts {
  std::string ca, server_cert, server_key, client_cert, client_key;
};
absl::StatusOr<TestCerts> MakeTestCerts(const std::string& dir);

// ServerProcess: the real server binary (`binary`) started with `args` plus
// --listen LISTEN (default 127.0.0.1:0; or unix:///PATH) and --metrics-listen
// METRICS (default off); its stderr goes to log(). Killed on destruction
// unless it exited.
class ServerProcess {
 public:
  ServerProcess(const std::string& binary, std::vector<std::string> args, std::string listen = "127.0.0.1:0",
                std::string metrics = "");
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  std::string log() const { return dir_.path() + "/server.log"; }
  // Port(): waits for the "listening on HOST:PORT" line; 0 when the process died first.
  int Port();
  // Listening(): waits for the "listening on LISTEN" line, whatever the
  // address (for HOST:PORT, Port() != 0); false when the process died first.
  bool Listening();
  // MetricsPort(): the /metrics port from the same line (call after Port()).
  int MetricsPort();
  void Signal(int sig);
  pid_t pid() const { return pid_; }
  // Wait(): the exit status, -1 on a signal or after `timeout`.
  int Wait(std::chrono::seconds timeout);

 private:
  // The rest of the first log line that holds `marker`, once it is complete.
  std::optional<std::string> LineAfter(const std::string& marker);

  TempDir dir_;
  std::string listen_;
  std::string host_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_code_ = -1;  // once exited_: the exit status, -1 for a signal
};

// HttpGet(): the body of http://127.0.0.1:port/path.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

// Which(): the full path of a program on PATH, "" when absent.
std::string Which(const std::string& program);

}  // namespace moe_adapter::server_testing

#endif  // MOE_ADAPTER_TESTS_SERVER_SERVER_TEST_UTIL_H_
