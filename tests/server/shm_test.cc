// The shared-memory data plane (issue 15 item 2, docs/server.md "Shared
// memory") through a real moe-adapter-server on a Unix socket: the golden
// cases with inputs in a memfd and outputs read from another, byte for byte
// what the core (and the streamed path) gives; mixed streams; and every bad
// input of the issue (regions too small, unsealed, not memfds, the same memfd
// twice, a wrong uid, closed by the client, malformed side-channel requests,
// bad tokens), each with its status, the server alive after, and nothing left
// mapped: no memfd in /proc/<pid>/maps and moe_adapter_shm_regions at 0.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <signal.h>

#include <chrono>
#include <map>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "moe_adapter/client.h"
#include "moe_adapter/crc32c.h"
#include "moe_adapter/v1/adapter.grpc.pb.h"
#include "tests/server/server_test_util.h"
#include "tests/server/shm_test_util.h"

namespace moe_adapter::server_testing {
namespace {

using ::testing::HasSubstr;

TensorList Inputs(const json& c) { return LoadSafetensors(GoldenDir() + "/" + c["in_file"].get<std::string>()); }

bool IsToHf(const json& c) { return c["op"] != "from_hf"; }

Result Core(const json& c, const TensorList& in) {
  return IsToHf(c) ? CoreToHf(OptionsFor(c), in) : CoreFromHf(OptionsFor(c), in);
}

class ShmTest : public ::testing::Test {
 protected:
  void SetUp() override { Start({}); }

  void Start(std::vector<std::string> args) {
    server_.reset();
    server_ = std::make_unique<ServerProcess>(MOE_SERVER_PATH, std::move(args), Target(), "127.0.0.1:0");
    ASSERT_TRUE(server_->Listening()) << ReadFileOrDie(server_->log());
  }

  std::string Sock() const { return dir_.path() + "/a.sock"; }
  std::string Shm() const { return Sock() + ".shm"; }
  std::string Target() const { return "unix://" + Sock(); }

  // Metric(): a series' value on /metrics; -1 when absent.
  double Metric(const std::string& series) {
    absl::StatusOr<std::string> body = HttpGet(server_->MetricsPort(), "/metrics");
    if (!body.ok()) return -1;
    const size_t at = body->find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    double v = -1;
    const size_t start = at + series.size() + 2;
    (void)absl::SimpleAtod(body->substr(start, body->find('\n', start) - start), &v);
    return v;
  }

  // ExpectNothingMapped(): once the last stream is gone, the server maps no
  // memfd and its gauges say so.
  void ExpectNothingMapped() {
    for (int i = 0; i < 250 && !(MappedMemfds(server_->pid()).empty() && Metric("moe_adapter_shm_regions") == 0); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_THAT(MappedMemfds(server_->pid()), ::testing::IsEmpty());
    EXPECT_EQ(Metric("moe_adapter_shm_regions"), 0);
    EXPECT_EQ(Metric("moe_adapter_shm_region_bytes"), 0);
  }

  // ExpectHealthy(): a golden ToHF case still goes through both regions.
  void ExpectHealthy() {
    RunCase(CaseNamed("full_to_hf_bfloat16"), /*in_region=*/true, /*out_region=*/true);
    ExpectNothingMapped();
  }

  // RunCase(): case `c` through the regions asked for; compared with the core.
  ShmRun RunCase(const json& c, bool in_region, bool out_region, bool with_crc = false, size_t chunk = 0) {
    SCOPED_TRACE(absl::StrCat(c["name"].get<std::string>(), in_region ? " in:region" : " in:chunks",
                              out_region ? " out:region" : " out:chunks", " chunk=", chunk));
    const TensorList in = Inputs(c);
    const Result want = Core(c, in);
    std::unique_ptr<Memfd> input, output;
    if (in_region) input = std::make_unique<Memfd>(RegionBytes(in));
    if (out_region) output = std::make_unique<Memfd>(want.status.ok() ? RegionBytes(want.outputs) : 3 * RegionBytes(in));
    const Reply reg = RegisterRegions(Shm(), input.get(), output.get());
    EXPECT_EQ(reg.code, 0) << reg.message;
    ShmRun got = ShmStream(Target(), IsToHf(c) ? "ToHF" : "FromHF", OptionsFor(c), reg.token, in, input.get(),
                           output.get(), with_crc, chunk);
    EXPECT_EQ(static_cast<int>(got.status.error_code()), static_cast<int>(want.status.code()))
        << got.status.error_message() << " vs core " << want.status;
    if (!want.status.ok() || !got.status.ok()) return got;
    EXPECT_EQ(Diff(got.outputs, want.outputs, /*ordered=*/IsToHf(c)), "");
    EXPECT_THAT(got.bad_crcs, ::testing::IsEmpty()) << "chunked outputs carry their real CRC32C";
    for (const v1::TensorHeader& h : got.headers) {
      EXPECT_EQ(h.has_region_offset(), out_region) << h.name();
      if (h.has_region_offset()) EXPECT_EQ(h.region_offset() % 64, 0u) << h.name();
    }
    EXPECT_EQ(got.summary.tensors_in(), static_cast<int64_t>(in.size()));
    EXPECT_EQ(got.summary.tensors_out(), static_cast<int64_t>(want.outputs.size()));
    if (!IsToHf(c)) {
      const std::map<std::string, std::string> metadata(got.summary.metadata().begin(), got.summary.metadata().end());
      EXPECT_EQ(metadata, want.metadata);
    }
    return got;
  }

  // StatusOf(): a stream of `messages`; its status.
  grpc::Status StatusOf(const std::string& rpc, const std::vector<v1::ConvertRequest>& messages) {
    return RawStream(Target(), rpc, messages);
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

v1::ConvertRequest RegionHeader(const std::string& name, uint64_t bytes, uint64_t offset, uint32_t crc = 0) {
  v1::ConvertRequest m = HeaderMsg(name, "U8", {static_cast<int64_t>(bytes)}, bytes, crc);
  m.mutable_header()->set_region_offset(offset);
  return m;
}

ConvertOptions SmallGeometry() {
  ConvertOptions o;
  o.geometry.num_experts = 4;
  o.geometry.hidden_size = 8;
  o.geometry.moe_intermediate_size = 6;
  return o;
}

// ---- the golden cases --------------------------------------------------------

TEST_F(ShmTest, GoldenToHfCasesThroughBothRegions) {
  EXPECT_EQ(::access(Shm().c_str(), F_OK), 0) << "the side channel exists";
  int n = 0;
  for (const std::string op : {"to_hf", "derived_peft019_to_hf", "convert_single_tensor_to_hf"}) {
    for (const json& c : ReplayableCases(op)) {
      if (c["op"] != op) continue;
      RunCase(c, true, true);
      ++n;
    }
  }
  EXPECT_GT(n, 40);
  ExpectNothingMapped();
}

TEST_F(ShmTest, GoldenFromHfCasesThroughBothRegions) {
  int n = 0;
  for (const json& c : ReplayableCases("from_hf")) {
    if (c["op"] != "from_hf") continue;
    RunCase(c, true, true);
    ++n;
  }
  EXPECT_GT(n, 20);
  ExpectNothingMapped();
}

// The same bytes as the streamed path of the same server.
TEST_F(ShmTest, SameBytesAsTheStreamedPath) {
  ClientOptions co;
  co.target = Target();
  co.deadline = absl::Seconds(20);
  auto client = *RemoteClient::Connect(co);
  for (const char* name : {"full_to_hf_bfloat16", "full_from_hf_float32"}) {
    const json c = CaseNamed(name);
    const bool to_hf = IsToHf(c);
    const Result streamed = Remote(*client, to_hf ? RemoteRpc::kToHf : RemoteRpc::kFromHf, OptionsFor(c), Inputs(c));
    ASSERT_TRUE(streamed.status.ok()) << streamed.status;
    const ShmRun shm = RunCase(c, true, true);
    ASSERT_TRUE(shm.status.ok()) << shm.status.error_message();
    EXPECT_EQ(Diff(shm.outputs, streamed.outputs, to_hf), "") << name;
  }
}

// Chunked inputs with outputs in the region, and the reverse; region inputs
// with their CRC32C; small chunks that split slabs (the region is handed
// over one chunk at a time).
TEST_F(ShmTest, MixedStreams) {
  for (const char* name : {"full_to_hf_bfloat16", "full_from_hf_float32", "full_to_hf_float32"}) {
    const json c = CaseNamed(name);
    ASSERT_FALSE(c.is_null()) << name;
    RunCase(c, /*in_region=*/false, /*out_region=*/true);
    RunCase(c, /*in_region=*/true, /*out_region=*/false);
    RunCase(c, /*in_region=*/true, /*out_region=*/true, /*with_crc=*/true);
    RunCase(c, /*in_region=*/true, /*out_region=*/false, /*with_crc=*/false, /*chunk=*/100);
    RunCase(c, /*in_region=*/true, /*out_region=*/true, /*with_crc=*/true, /*chunk=*/100);
  }
  ExpectNothingMapped();
}

TEST_F(ShmTest, ConvertTensorThroughRegions) {
  const json c = CaseNamed("full_to_hf_bfloat16");
  const ConvertOptions o = OptionsFor(c);
  int n = 0;
  for (const NamedTensor& t : Inputs(c)) {
    SCOPED_TRACE(t.name);
    const Result want = CoreToHf(o, {t}, /*single_tensor=*/true);
    Memfd input(RegionBytes({t})), output(want.status.ok() ? RegionBytes(want.outputs) : 4096);
    const Reply reg = RegisterRegions(Shm(), &input, &output);
    ASSERT_EQ(reg.code, 0) << reg.message;
    const ShmRun got = ShmStream(Target(), "ConvertTensor", o, reg.token, {t}, &input, &output);
    ASSERT_EQ(static_cast<int>(got.status.error_code()), static_cast<int>(want.status.code()))
        << got.status.error_message();
    EXPECT_EQ(Diff(got.outputs, want.outputs, true), "");
    ++n;
  }
  EXPECT_GT(n, 2);
  ExpectNothingMapped();
}

// ---- bad regions -----------------------------------------------------------------

TEST_F(ShmTest, RegionTooSmallForTheOffsetsAnnounced) {
  Memfd input(4096);
  for (uint64_t offset : {uint64_t{4090}, uint64_t{4097}, ~uint64_t{0} - 10}) {
    SCOPED_TRACE(offset);
    const Reply reg = RegisterRegions(Shm(), &input, nullptr);
    ASSERT_EQ(reg.code, 0) << reg.message;
    const grpc::Status s = StatusOf("ToHF", {OptionsWithToken(SmallGeometry(), reg.token), RegionHeader("x", 64, offset)});
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("go beyond its 4096 bytes"));
  }
  ExpectHealthy();
}

TEST_F(ShmTest, UnsealedMemfdsAreRefused) {
  struct Row {
    int seals;
    const char* missing;
  };
  for (const Row& row : {Row{0, "F_SEAL_SHRINK"}, Row{F_SEAL_GROW, "F_SEAL_SHRINK"}, Row{F_SEAL_SHRINK, "F_SEAL_GROW"}}) {
    Memfd m(4096, row.seals);
    for (bool as_input : {true, false}) {
      const Reply reg = RegisterRegions(Shm(), as_input ? &m : nullptr, as_input ? nullptr : &m);
      EXPECT_EQ(reg.code, grpc::StatusCode::FAILED_PRECONDITION) << reg.message;
      EXPECT_THAT(reg.message, HasSubstr(absl::StrCat("lacks the seal ", row.missing)));
      EXPECT_EQ(reg.token, std::string(32, '0'));
    }
  }
  ExpectHealthy();
}

// A region cannot shrink under the server (the seal refuses it), and one the
// client closed stays valid in the server, which holds its own fd and
// mapping: the stream completes.
TEST_F(ShmTest, SealedRegionCannotShrinkAndOutlivesTheClientsFd) {
  Memfd probe(8192);
  EXPECT_NE(::ftruncate(probe.fd(), 4096), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(probe.fd(), 16384), 0);
  EXPECT_NE(::fallocate(probe.fd(), 0, 0, 65536), 0) << "growing by fallocate is sealed too";

  const json c = CaseNamed("full_to_hf_bfloat16");
  const TensorList in = Inputs(c);
  const Result want = Core(c, in);
  auto input = std::make_unique<Memfd>(RegionBytes(in));
  Memfd output(RegionBytes(want.outputs));
  const Reply reg = RegisterRegions(Shm(), input.get(), &output);
  ASSERT_EQ(reg.code, 0) << reg.message;
  // After the first tensor the client drops its fd and mapping of the input.
  const ShmRun got = ShmStream(Target(), "ToHF", OptionsFor(c), reg.token, in, input.get(), &output, false, 0,
                               [&] { input->Close(); });
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  EXPECT_EQ(Diff(got.outputs, want.outputs, true), "");
  ExpectHealthy();
}

TEST_F(ShmTest, SameMemfdForInputAndOutputIsRefused) {
  Memfd m(4096);
  const int dup = ::dup(m.fd());
  for (int second : {m.fd(), dup}) {
    const Reply reg = Register(Shm(), RequestBytes(true, true), {m.fd(), second});
    EXPECT_EQ(reg.code, grpc::StatusCode::INVALID_ARGUMENT) << reg.message;
    EXPECT_THAT(reg.message, HasSubstr("same memfd"));
  }
  ::close(dup);
  ExpectHealthy();
}

TEST_F(ShmTest, FdsThatAreNotMemfdsAreRefused) {
  const std::string file = dir_.path() + "/regular";
  WriteFileOrDie(file, std::string(4096, 'x'));
  const int regular = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  int sock_fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sock_fds), 0);
  for (int fd : {regular, pipe_fds[0], pipe_fds[1], sock_fds[0]}) {
    const Reply reg = Register(Shm(), RequestBytes(true, false), {fd});
    EXPECT_EQ(reg.code, grpc::StatusCode::FAILED_PRECONDITION) << reg.message;
    EXPECT_THAT(reg.message, HasSubstr("is not a memfd"));
  }
  for (int fd : {regular, pipe_fds[0], pipe_fds[1], sock_fds[0], sock_fds[1]}) ::close(fd);
  ExpectHealthy();
}

TEST_F(ShmTest, RegionSizesAreBounded) {
  Memfd empty(0);
  Reply reg = RegisterRegions(Shm(), &empty, nullptr);
  EXPECT_EQ(reg.code, grpc::StatusCode::INVALID_ARGUMENT) << reg.message;
  EXPECT_THAT(reg.message, HasSubstr("is 0 bytes"));
  Start({"--max-region-bytes", "1MiB"});
  Memfd big(2 << 20);
  reg = RegisterRegions(Shm(), nullptr, &big);
  EXPECT_EQ(reg.code, grpc::StatusCode::INVALID_ARGUMENT) << reg.message;
  EXPECT_THAT(reg.message, HasSubstr("--max-region-bytes"));
  ExpectHealthy();
}

TEST_F(ShmTest, OutputRegionMustBeWritable) {
  Memfd m(4096);
  const int read_only = ::open(absl::StrCat("/proc/self/fd/", m.fd()).c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(read_only, 0);
  Reply reg = Register(Shm(), RequestBytes(false, true), {read_only});
  EXPECT_EQ(reg.code, grpc::StatusCode::FAILED_PRECONDITION) << reg.message;
  EXPECT_THAT(reg.message, HasSubstr("cannot be mapped read-write"));
  // ... while a read-only fd is a fine input region.
  reg = Register(Shm(), RequestBytes(true, false), {read_only});
  EXPECT_EQ(reg.code, 0) << reg.message;
  EXPECT_TRUE(StatusOf("ToHF", {OptionsWithToken(SmallGeometry(), reg.token)}).ok());
  ::close(read_only);
  Memfd write_sealed(4096, kRegionSeals | F_SEAL_WRITE);
  reg = RegisterRegions(Shm(), nullptr, &write_sealed);
  EXPECT_EQ(reg.code, grpc::StatusCode::FAILED_PRECONDITION) << reg.message;
  ExpectHealthy();  // the unused registration above expires; the stream's own regions go
}

TEST_F(ShmTest, UnallocatedRegionsAreRefused) {
  // Pages the client never allocated would be allocated by the server.
  Memfd sparse(1 << 20, kRegionSeals, /*allocate=*/false);
  for (bool as_input : {true, false}) {
    const Reply reg = RegisterRegions(Shm(), as_input ? &sparse : nullptr, as_input ? nullptr : &sparse);
    EXPECT_EQ(reg.code, grpc::StatusCode::FAILED_PRECONDITION) << reg.message;
    EXPECT_THAT(reg.message, HasSubstr("has 0 of its 1048576 bytes allocated; fallocate()"));
  }
  ExpectHealthy();
}

TEST_F(ShmTest, OutputsThatDoNotFitAreRefused) {
  const json c = CaseNamed("full_to_hf_bfloat16");
  const TensorList in = Inputs(c);
  Memfd input(RegionBytes(in)), output(256);
  const Reply reg = RegisterRegions(Shm(), &input, &output);
  ASSERT_EQ(reg.code, 0) << reg.message;
  const ShmRun got = ShmStream(Target(), "ToHF", OptionsFor(c), reg.token, in, &input, &output);
  EXPECT_EQ(got.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << got.status.error_message();
  EXPECT_THAT(got.status.error_message(), HasSubstr("does not fit in the output region"));
  EXPECT_THAT(got.status.error_message(), HasSubstr("the region has 256 bytes"));
  ExpectHealthy();
}

TEST_F(ShmTest, RegionCrc32cIsCheckedWhenGiven) {
  Memfd input(4096);
  std::memset(input.data(), 7, 64);
  const uint32_t right = Crc32c(input.data(), 64);
  for (uint32_t crc : {right ^ 1, right}) {
    const Reply reg = RegisterRegions(Shm(), &input, nullptr);
    ASSERT_EQ(reg.code, 0) << reg.message;
    const grpc::Status s = StatusOf("ToHF", {OptionsWithToken(SmallGeometry(), reg.token), RegionHeader("x", 64, 0, crc)});
    if (crc == right) {
      EXPECT_TRUE(s.ok()) << s.error_message();
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_THAT(s.error_message(), HasSubstr("CRC32C mismatch"));
    }
  }
  ExpectHealthy();
}

TEST_F(ShmTest, RegionHeadersNeedAnInputRegion) {
  Memfd output(4096);
  const Reply reg = RegisterRegions(Shm(), nullptr, &output);
  ASSERT_EQ(reg.code, 0) << reg.message;
  grpc::Status s = StatusOf("ToHF", {OptionsWithToken(SmallGeometry(), reg.token), RegionHeader("x", 64, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("no input region"));
  s = StatusOf("FromHF", {OptionsWithToken(SmallGeometry(), ""), RegionHeader("x", 64, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("no input region"));
  ExpectHealthy();
}

TEST_F(ShmTest, FramingAroundRegionTensorsIsChecked) {
  Memfd input(4096);
  Reply reg = RegisterRegions(Shm(), &input, nullptr);
  grpc::Status s = StatusOf("ToHF", {OptionsWithToken(SmallGeometry(), reg.token), RegionHeader("x", 64, 0),
                                     ChunkMsg(std::string(8, 'c'))});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("without a tensor header"));
  reg = RegisterRegions(Shm(), &input, nullptr);
  s = StatusOf("ToHF", {OptionsWithToken(SmallGeometry(), reg.token), HeaderMsg("y", "U8", {8}, 8, 0),
                        ChunkMsg(std::string(4, 'c')), RegionHeader("x", 64, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("truncated"));
  ExpectHealthy();
}

// ---- the side channel ----------------------------------------------------------------

TEST_F(ShmTest, WrongUidIsRefused) {
  const std::string other = absl::StrCat(::geteuid() + 1);
  Start({"--shared-memory-uids", other});
  Memfd m(4096);
  Reply reg = RegisterRegions(Shm(), &m, nullptr);
  EXPECT_EQ(reg.code, grpc::StatusCode::PERMISSION_DENIED) << reg.message;
  EXPECT_THAT(reg.message, HasSubstr(absl::StrCat("uid ", ::geteuid(), " may not register")));
  ExpectNothingMapped();
  Start({"--shared-memory-uids", absl::StrCat(other, ",", ::geteuid())});
  reg = RegisterRegions(Shm(), &m, nullptr);
  EXPECT_EQ(reg.code, 0) << reg.message;
}

TEST_F(ShmTest, MalformedRequestsLeakNothing) {
  Memfd a(4096), b(4096), c(4096);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const int fds_before = OpenFds(server_->pid());
  std::string bad_magic = RequestBytes(true, false);
  bad_magic[0] = 'X';
  std::string bad_version = RequestBytes(true, false);
  bad_version[4] = 2;
  std::string reserved = RequestBytes(true, false);
  reserved[7] = 1;
  struct Row {
    std::string request;
    std::vector<int> fds;
    const char* says;
  };
  const std::vector<Row> rows = {
      {RequestBytes(true, false).substr(0, 4), {a.fd()}, "a request is 8 bytes, got 4"},
      {RequestBytes(true, false) + "x", {a.fd()}, "got 9"},
      {std::string(100, 'M'), {a.fd()}, "got more"},
      {bad_magic, {a.fd()}, "MOES"},
      {bad_version, {a.fd()}, "version 2"},
      {RequestBytes(false, false), {}, "names no region"},
      {reserved, {a.fd()}, "reserved"},
      {RequestBytes(true, false), {}, "carries 0 fd(s)"},
      {RequestBytes(true, false), {a.fd(), b.fd()}, "carries 2 fd(s)"},
      {RequestBytes(true, true), {a.fd(), b.fd(), c.fd()}, "carries 3 fd(s)"},
      {RequestBytes(true, true), {a.fd(), b.fd(), c.fd(), a.fd(), b.fd(), c.fd(), a.fd(), b.fd(), c.fd(), a.fd()},
       "too many"},
  };
  for (const Row& row : rows) {
    const Reply reg = Register(Shm(), row.request, row.fds);
    EXPECT_EQ(reg.code, grpc::StatusCode::INVALID_ARGUMENT) << row.says << ": " << reg.message;
    EXPECT_THAT(reg.message, HasSubstr(row.says));
  }
  // A client that connects and says nothing holds nobody up...
  const int silent = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, Shm().c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::connect(silent, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const Reply ok = RegisterRegions(Shm(), &a, nullptr);
  EXPECT_EQ(ok.code, 0) << ok.message;
  // ... and is dropped after the request timeout (5 s).
  char byte;
  timeval tv{10, 0};
  ::setsockopt(silent, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  EXPECT_EQ(::recv(silent, &byte, 1, 0), 0) << "the server closes a silent connection";
  ::close(silent);
  // Nothing kept: the registration above is used, every refused fd closed.
  ASSERT_TRUE(StatusOf("ToHF", {OptionsWithToken(SmallGeometry(), ok.token)}).ok());
  for (int i = 0; i < 100 && OpenFds(server_->pid()) != fds_before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(OpenFds(server_->pid()), fds_before);
  ExpectHealthy();
}

TEST_F(ShmTest, TokensAreSingleUseAndExpire) {
  Start({"--stream-options-timeout", "1s"});
  Memfd m(4096);
  grpc::Status s = StatusOf("ToHF", {OptionsWithToken(SmallGeometry(), "not-a-token")});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("32 lowercase hex digits"));
  s = StatusOf("ToHF", {OptionsWithToken(SmallGeometry(), std::string(32, 'a'))});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown, already used or expired"));

  Reply reg = RegisterRegions(Shm(), &m, nullptr);
  ASSERT_EQ(reg.code, 0) << reg.message;
  EXPECT_TRUE(StatusOf("ToHF", {OptionsWithToken(SmallGeometry(), reg.token)}).ok());
  s = StatusOf("ToHF", {OptionsWithToken(SmallGeometry(), reg.token)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << "used twice";

  reg = RegisterRegions(Shm(), &m, nullptr);
  ASSERT_EQ(reg.code, 0) << reg.message;
  EXPECT_EQ(Metric("moe_adapter_shm_regions"), 1);
  EXPECT_EQ(Metric("moe_adapter_shm_region_bytes"), 4096);
  ExpectNothingMapped();  // the unused registration expires within ~2 s
  s = StatusOf("ToHF", {OptionsWithToken(SmallGeometry(), reg.token)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << "expired";
  EXPECT_GE(Metric("moe_adapter_shm_registrations_total{code=\"OK\"}"), 2);
}

TEST_F(ShmTest, ServersWithoutSharedMemoryRefuseTokens) {
  Start({"--no-shared-memory"});  // the killed server's socket files stay behind
  Memfd m(4096);
  EXPECT_EQ(RegisterRegions(Shm(), &m, nullptr).code, -1) << "no side channel answers";
  grpc::Status s = StatusOf("ToHF", {OptionsWithToken(SmallGeometry(), std::string(32, 'a'))});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("serves no shared memory"));
  Start({});  // replaces the stale side-channel socket file
  EXPECT_EQ(RegisterRegions(Shm(), &m, nullptr).code, 0);
  struct stat st;
  ASSERT_EQ(::stat(Shm().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u) << "the side channel gets --unix-socket-mode";
  server_->Signal(SIGTERM);
  EXPECT_EQ(server_->Wait(std::chrono::seconds(20)), 0);
  EXPECT_NE(::access(Shm().c_str(), F_OK), 0) << "removed at shutdown";
}

// ---- streams that end early ------------------------------------------------------

TEST_F(ShmTest, CancelledDeadlinedAndIdleStreamsUnmap) {
  Start({"--stream-idle-timeout", "1s"});
  const json c = CaseNamed("full_to_hf_bfloat16");
  const TensorList in = Inputs(c);
  for (int way = 0; way < 3; ++way) {
    SCOPED_TRACE(way);
    Memfd input(RegionBytes(in)), output(RegionBytes(in) * 2);
    const Reply reg = RegisterRegions(Shm(), &input, &output);
    ASSERT_EQ(reg.code, 0) << reg.message;
    auto stub = v1::MoeAdapter::NewStub(grpc::CreateChannel(Target(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(way == 1 ? 1 : 30));
    auto stream = stub->ToHF(&ctx);
    // The stream takes the regions with its options, then waits for input.
    ASSERT_TRUE(stream->Write(OptionsWithToken(OptionsFor(c), reg.token)));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    if (way == 0) ctx.TryCancel();  // 1: the deadline passes; 2: the idle timeout
    v1::ConvertResponse r;
    while (stream->Read(&r)) {
    }
    const grpc::Status s = stream->Finish();
    EXPECT_FALSE(s.ok());
    ExpectNothingMapped();
  }
  ExpectHealthy();
}

}  // namespace
}  // namespace moe_adapter::server_testing
