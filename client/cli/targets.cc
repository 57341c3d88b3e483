#include "client/cli/targets.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace moe_adapter::cli {

std::vector<Endpoint> ExpandTarget(const std::string& target) {
  if (!absl::StartsWith(target, "dns:///")) return {{target, ""}};
  std::string hostport = target.substr(7), host = hostport, port;
  if (!hostport.empty() && hostport[0] == '[') {
    host = hostport.substr(1, hostport.find(']') - 1);
    if (hostport.find("]:") != std::string::npos) port = hostport.substr(hostport.find("]:") + 2);
  } else if (hostport.rfind(':') != std::string::npos) {
    host = hostport.substr(0, hostport.rfind(':'));
    port = hostport.substr(hostport.rfind(':') + 1);
  }
  if (port.empty()) port = "443";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return {{target, ""}};
  std::vector<Endpoint> out;
  std::set<std::string> seen;
  for (addrinfo* a = res; a; a = a->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {0};
    const bool v4 = a->ai_family == AF_INET;
    const void* addr = v4 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
                          : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
    ::inet_ntop(a->ai_family, addr, buf, sizeof(buf));
    if (!seen.insert(buf).second) continue;
    out.push_back({v4 ? absl::StrCat("ipv4:", buf, ":", port) : absl::StrCat("ipv6:[", buf, "]:", port), host});
  }
  ::freeaddrinfo(res);
  if (out.empty()) return {{target, ""}};
  return out;
}

}  // namespace moe_adapter::cli
