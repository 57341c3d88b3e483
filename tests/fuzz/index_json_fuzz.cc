// Fuzzes the index of a sharded checkpoint (core/checkpoint_reader.cc): the
// input is model.safetensors.index.json in a directory that also holds two
// valid shards, and SafetensorsCheckpoint::Open() reads the directory.
// Invariants on success: every shard is a file of that directory, and every
// key the checkpoint reports is in the shard it names.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "core/checkpoint_reader.h"
#include "tests/fuzz/fuzz_util.h"

namespace moe_adapter {
namespace {

void WriteFile(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FUZZ_CHECK(fd >= 0);
  FUZZ_CHECK(fuzz::WriteAll(fd, bytes.data(), bytes.size()));
  ::close(fd);
}

// A shard holding one F32 tensor of shape [2] named `name`.
std::string Shard(const std::string& name) {
  std::string header = "{\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  while ((8 + header.size()) % 8 != 0) header += ' ';
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(uint64_t{header.size()} >> (8 * i));
  return out + header + std::string(8, '\0');
}

std::string* dir = nullptr;

void RemoveDir() {
  for (const char* f : {"model.safetensors.index.json", "model-00001-of-00002.safetensors",
                        "model-00002-of-00002.safetensors"}) {
    ::unlink((*dir + "/" + f).c_str());
  }
  ::rmdir(dir->c_str());
}

const std::string& Dir() {
  if (dir == nullptr) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/moe-index-fuzz.XXXXXX";
    FUZZ_CHECK(::mkdtemp(templ.data()) != nullptr);
    dir = new std::string(templ);
    WriteFile(*dir + "/model-00001-of-00002.safetensors", Shard("model.embed_tokens.weight"));
    WriteFile(*dir + "/model-00002-of-00002.safetensors", Shard("lm_head.weight"));
    std::atexit(RemoveDir);
  }
  return *dir;
}

}  // namespace
}  // namespace moe_adapter

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace moe_adapter;
  const std::string& d = Dir();
  WriteFile(d + "/model.safetensors.index.json", std::string(reinterpret_cast<const char*>(data), size));
  absl::StatusOr<SafetensorsCheckpoint> ckpt = SafetensorsCheckpoint::Open(d);
  if (!ckpt.ok()) return 0;
  FUZZ_CHECK(ckpt->index_path() == d + "/model.safetensors.index.json");
  size_t tensors = 0;
  for (size_t s = 0; s < ckpt->shards().size(); ++s) {
    const SafetensorsCheckpoint::Shard& shard = ckpt->shards()[s];
    FUZZ_CHECK(shard.path.compare(0, d.size() + 1, d + "/") == 0);
    FUZZ_CHECK(shard.path.find('/', d.size() + 1) == std::string::npos);
    for (const TensorInfo& info : shard.tensors) {
      absl::StatusOr<size_t> at = ckpt->ShardOf(info.name);
      FUZZ_CHECK(at.ok() && *at == s);
      ++tensors;
    }
  }
  FUZZ_CHECK(tensors == ckpt->num_tensors());
  return 0;
}
