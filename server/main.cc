// moe-adapter-server: flags -> ServerOptions -> RunServer.
// Exit status: 0 after a SIGTERM/SIGINT shutdown, 1 when the server cannot
// start, 2 on a usage error.
#include <iostream>
#include <string>
#include <vector>

#include "server/server.h"
#include "server/server_options.h"

int main(int argc, char** argv) {
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
