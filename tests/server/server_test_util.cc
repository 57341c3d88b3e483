#include "tests/server/server_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/safetensors_reader.h"
#include "moe_adapter/converter.h"
#include "moe_adapter/crc32c.h"

extern char** environ;

namespace moe_adapter::server_testing {

std::string DataDir() { return MOE_TEST_DATA_DIR; }
std::string GoldenDir() { return DataDir() + "/golden"; }

const json& Manifest() {
  static const json* m = [] {
    std::ifstream f(GoldenDir() + "/manifest.json");
    return new json(json::parse(f));
  }();
  return *m;
}

json CaseNamed(const std::string& name) {
  for (const json& c : Manifest()["cases"]) {
    if (c["name"] == name) return c;
  }
  return json();
}

std::vector<json> ReplayableCases(const std::string& op_prefix) {
  // Reference state and prefix rewriting that the contract replaces; the core
  // suites assert them on their own (golden README).
  static const std::set<std::string> kDedicated = {
      "quirk_prefix_detection_is_stateful", "quirk_from_hf_mutates_input", "quirk_to_hf_native_prefix_discarded",
      "quirk_from_hf_unrecognised_prefix_passthrough"};
  std::vector<json> out;
  for (const json& c : Manifest()["cases"]) {
    const std::string op = c["op"];
    if (op.rfind(op_prefix, 0) != 0 || !c.contains("in_file") || kDedicated.count(c["name"])) continue;
    out.push_back(c);
  }
  return out;
}

ConvertOptions OptionsFor(const json& c) {
  const json& ad = c["adapter"];
  ConvertOptions o;
  o.geometry.num_experts = ad["E"];
  o.geometry.hidden_size = ad["H"];
  o.geometry.moe_intermediate_size = ad["I"];
  const json kw = c.value("kwargs", json::object());
  const std::string op = c["op"];
  if (op == "from_hf") {
    o.dtype = *ParseTorchDType(ad["dtype"].get<std::string>());
    o.lora_layout = LoraLayout::kPeftV018;
  } else if (op == "derived_peft019_to_hf") {
    o.lora_layout = LoraLayout::kPeftV019;
  } else {
    o.lora_layout = kw.value("v4_compatible", false) ? LoraLayout::kPerExpert : LoraLayout::kPeftV018;
  }
  if (kw.contains("exclude_key_regex") && kw["exclude_key_regex"].is_string()) o.exclude_key_regex = kw["exclude_key_regex"];
  o.quantization = kw.value("quantization", false);
  for (const char* mesh_key : {"device_mesh", "device_mesh_of_inputs"}) {
    if (!kw.contains(mesh_key) || kw[mesh_key].is_null()) continue;
    const json& mesh = kw[mesh_key];
    std::vector<std::string> names = mesh.value("mesh_dim_names", std::vector<std::string>{"ep"});
    size_t i = std::find(names.begin(), names.end(), "ep") - names.begin();
    if (i == names.size()) i = 0;
    o.ep_size = mesh["shape"][i];
    o.ep_rank = mesh["coord"][i];
  }
  return o;
}

TensorList LoadSafetensors(const std::string& path) {
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> f = SafetensorsFile::Open(path);
  if (!f.ok()) {
    std::fprintf(stderr, "cannot open %s: %s\n", path.c_str(), f.status().ToString().c_str());
    std::abort();
  }
  TensorList out;
  for (size_t i = 0; i < (*f)->num_tensors(); ++i) out.push_back((*f)->GetAt(i));
  return out;
}

Result CoreToHf(const ConvertOptions& o, const TensorList& in, bool single_tensor) {
  Result r;
  absl::StatusOr<std::unique_ptr<ToHfConverter>> conv = ToHfConverter::Create(o);
  if (!conv.ok()) {
    r.status = conv.status();
    return r;
  }
  auto sink = [&](NamedTensor t) {
    r.outputs.push_back(std::move(t));
    return absl::OkStatus();
  };
  for (const NamedTensor& t : in) {
    r.status = (*conv)->Convert(t, sink);
    if (!r.status.ok()) return r;
  }
  if (!single_tensor) r.status = (*conv)->Finish();
  r.warnings = (*conv)->Warnings();
  return r;
}

Result CoreFromHf(const ConvertOptions& o, const TensorList& in) {
  Result r;
  absl::StatusOr<std::unique_ptr<FromHfConverter>> conv = FromHfConverter::Create(o);
  if (!conv.ok()) {
    r.status = conv.status();
    return r;
  }
  auto sink = [&](NamedTensor t) {
    r.outputs.push_back(std::move(t));
    return absl::OkStatus();
  };
  for (const NamedTensor& t : in) {
    r.status = (*conv)->Add(t, sink);
    if (!r.status.ok()) return r;
  }
  r.status = (*conv)->Finish(sink);
  r.warnings = (*conv)->Warnings();
  r.metadata = (*conv)->OutputMetadata();
  return r;
}

Result Remote(RemoteClient& client, RemoteRpc rpc, const ConvertOptions& o, const TensorList& in,
              RemoteSummary* summary) {
  Result r;
  auto sink = [&r](NamedTensor t) {
    r.outputs.push_back(std::move(t));
    return absl::OkStatus();
  };
  absl::StatusOr<std::unique_ptr<RemoteSession>> session = client.Open(rpc, o, sink);
  if (!session.ok()) {
    r.status = session.status();
    return r;
  }
  for (const NamedTensor& t : in) {
    absl::Status s = (*session)->Send(t);
    if (!s.ok()) {
      r.status = s;
      return r;
    }
  }
  absl::StatusOr<RemoteSummary> sum = (*session)->Finish();
  r.status = sum.status();
  if (sum.ok()) {
    r.warnings = sum->warnings;
    r.metadata = sum->metadata;
    if (summary) *summary = *sum;
  }
  return r;
}

std::string Diff(const TensorList& got, const TensorList& want, bool ordered) {
  std::ostringstream out;
  std::map<std::string, const NamedTensor*> w;
  for (const NamedTensor& t : want) w[t.name] = &t;
  std::set<std::string> seen;
  for (size_t i = 0; i < got.size(); ++i) {
    const NamedTensor& g = got[i];
    if (!seen.insert(g.name).second) out << "duplicate " << g.name << "; ";
    auto it = w.find(g.name);
    if (it == w.end()) {
      out << "unexpected " << g.name << "; ";
      continue;
    }
    const Tensor& a = g.tensor;
    const Tensor& b = it->second->tensor;
    if (a.dtype != b.dtype || a.shape != b.shape || a.nbytes() != b.nbytes() ||
        (a.nbytes() && std::memcmp(a.data.data(), b.data.data(), a.nbytes()) != 0)) {
      out << "differs " << g.name << " (" << DTypeName(a.dtype) << ShapeString(a.shape) << " vs "
          << DTypeName(b.dtype) << ShapeString(b.shape) << "); ";
    }
    if (ordered && i < want.size() && want[i].name != g.name) out << "order at " << i << ": " << g.name << "; ";
  }
  for (const NamedTensor& t : want) {
    if (!seen.count(t.name)) out << "missing " << t.name << "; ";
  }
  return out.str();
}

grpc::Status RawStream(const std::string& target, const std::string& rpc,
                       const std::vector<v1::ConvertRequest>& messages, std::vector<v1::ConvertResponse>* responses,
                       const std::string& token) {
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto stub = v1::MoeAdapter::NewStub(channel);
  grpc::ClientContext ctx;
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  std::unique_ptr<grpc::ClientReaderWriter<v1::ConvertRequest, v1::ConvertResponse>> stream;
  if (rpc == "ToHF") stream = stub->ToHF(&ctx);
  if (rpc == "FromHF") stream = stub->FromHF(&ctx);
  if (rpc == "ConvertTensor") stream = stub->ConvertTensor(&ctx);
  for (const v1::ConvertRequest& m : messages) {
    if (!stream->Write(m)) break;
  }
  stream->WritesDone();
  v1::ConvertResponse resp;
  while (stream->Read(&resp)) {
    if (responses) responses->push_back(resp);
  }
  return stream->Finish();
}

v1::ConvertRequest OptionsMsg(int64_t e, int64_t h, int64_t i) {
  v1::ConvertRequest m;
  v1::Geometry* g = m.mutable_options()->mutable_geometry();
  g->set_num_experts(e);
  g->set_hidden_size(h);
  g->set_moe_intermediate_size(i);
  return m;
}

v1::ConvertRequest HeaderMsg(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                             uint64_t byte_length, uint32_t crc) {
  v1::ConvertRequest m;
  v1::TensorHeader* h = m.mutable_header();
  h->set_name(name);
  h->set_dtype(dtype);
  for (int64_t d : shape) h->add_shape(d);
  h->set_byte_length(byte_length);
  h->set_crc32c(crc);
  return m;
}

v1::ConvertRequest ChunkMsg(const std::string& bytes) {
  v1::ConvertRequest m;
  m.set_chunk(bytes);
  return m;
}

TempDir::TempDir() {
  std::string tmpl = "/tmp/moe-server-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) std::abort();
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::abort();
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void WriteFileOrDie(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) std::abort();
}

absl::StatusOr<TestCerts> MakeTestCerts(const std::string& dir) {
  const std::string d = dir + "/";
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  WriteFileOrDie(d + "server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  const std::string script = absl::StrCat(
      "set -e; cd '", dir, "';",
      "openssl req -x509 ", ec, " -keyout ca.key -out ca.pem -days 2 -subj /CN=moe-adapter-test-ca;",
      "openssl req ", ec, " -keyout server.key -out server.csr -subj /CN=localhost;",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
      "-extfile server.ext;",
      "openssl req ", ec, " -keyout client.key -out client.csr -subj /CN=moe-adapter-test-client;",
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2;");
  const std::string cmd = absl::StrCat("/bin/sh -c \"", script, "\" > '", d, "openssl.log' 2>&1");
  if (std::system(cmd.c_str()) != 0) {
    return absl::InternalError("openssl failed: " + ReadFileOrDie(d + "openssl.log"));
  }
  return TestCerts{d + "ca.pem", d + "server.pem", d + "server.key", d + "client.pem", d + "client.key"};
}

absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to port ", port));
  }
  const std::string req = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (::send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return absl::InternalError("send");
  }
  std::string resp;
  char buf[65536];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) resp.append(buf, n);
  ::close(fd);
  const size_t body = resp.find("\r\n\r\n");
  if (body == std::string::npos || resp.rfind("HTTP/1.", 0) != 0 || resp.find(" 200 ") > resp.find("\r\n")) {
    return absl::InternalError("bad HTTP response: " + resp.substr(0, 200));
  }
  return resp.substr(body + 4);
}

std::string Which(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return "";
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    std::string candidate = absl::StrCat(dir, "/", program);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

ServerProcess::ServerProcess(const std::string& binary, std::vector<std::string> args, std::string listen,
                             std::string metrics) {
  listen_ = listen;
  host_ = listen.substr(0, listen.rfind(':'));
  args.insert(args.begin(), {binary, "--listen", listen, "--metrics-listen", metrics});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&fa);
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !exited_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::optional<std::string> ServerProcess::LineAfter(const std::string& marker) {
  for (int i = 0; i < 1000; ++i) {
    const std::string text = ReadFileOrDie(log());
    const size_t at = text.find(marker);
    const size_t eol = at == std::string::npos ? std::string::npos : text.find('\n', at);
    if (eol != std::string::npos) return text.substr(at + marker.size(), eol - at - marker.size());
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

int ServerProcess::Port() {
  const std::optional<std::string> rest = LineAfter("listening on " + host_ + ":");
  int port = 0;
  if (!rest) return 0;
  const size_t digits =
      std::find_if_not(rest->begin(), rest->end(), [](unsigned char c) { return std::isdigit(c); }) - rest->begin();
  return absl::SimpleAtoi(rest->substr(0, digits), &port) ? port : 0;
}

bool ServerProcess::Listening() {
  if (listen_.rfind("unix", 0) != 0) return Port() != 0;  // unix: and unix-abstract: print themselves
  const std::optional<std::string> rest = LineAfter("listening on " + listen_);
  return rest && (rest->empty() || (*rest)[0] == ' ');
}

int ServerProcess::MetricsPort() {
  const std::string text = ReadFileOrDie(log());
  const std::string marker = "(metrics on port ";
  const size_t at = text.find(marker);
  int port = 0;
  if (at == std::string::npos) return 0;
  const size_t end = text.find(')', at);
  if (end == std::string::npos || !absl::SimpleAtoi(text.substr(at + marker.size(), end - at - marker.size()), &port)) {
    return 0;
  }
  return port;
}

void ServerProcess::Signal(int sig) { kill(pid_, sig); }

int ServerProcess::Wait(std::chrono::seconds timeout) {
  if (exited_) return exit_code_;
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      return exit_code_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

}  // namespace moe_adapter::server_testing
