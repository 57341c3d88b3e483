// moe-adapter-server: flags -> ServerOptions -> RunServer.
// Exit status: 0 after a SIGTERM/SIGINT shutdown, 1 when the server cannot
// start, 2 on a usage error.
#include <malloc.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "server/server.h"
#include "server/server_options.h"

int main(int argc, char** argv) {
  // gRPC's threads allocate and free chunk-sized buffers (4 MiB) by the
  // thousand. With glibc's default of one arena per thread, a buffer freed on
  // one thread is not reused by the next, and resident memory grows with the
  // number of threads that ever touched a chunk (measured: peak RSS of a ToHF
  // stream 150-310 MB; with one arena 80-115 MB, and faster, since reused
  // memory is not faulted in again). MALLOC_ARENA_MAX in the environment wins.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 1);
  using moe_adapter::server::ServerUsage;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << ServerUsage();
      return 0;
    }
  }
  absl::StatusOr<moe_adapter::server::ServerOptions> options = moe_adapter::server::ParseServerFlags(args);
  if (!options.ok()) {
    std::cerr << "moe-adapter-server: usage: " << options.status().message() << "\n" << ServerUsage();
    return 2;
  }
  absl::Status s = moe_adapter::server::RunServer(*options);
  if (!s.ok()) {
    std::cerr << "moe-adapter-server: error: " << s.message() << "\n";
    return 1;
  }
  return 0;
}
