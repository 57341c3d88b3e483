#include "server/token_rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace moe_adapter {
namespace server {

bool SameSecret(absl::string_view given, absl::string_view want) {
  // Hashing first makes the comparison one of equal lengths, so not even the
  // expected token's length shows in the time taken.
  unsigned char g[SHA256_DIGEST_LENGTH];
  unsigned char w[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), g);
  SHA256(reinterpret_cast<const unsigned char*>(want.data()), want.size(), w);
  return CRYPTO_memcmp(g, w, sizeof(g)) == 0;
}

bool IsPlaceholderToken(absl::string_view token) {
  return absl::StrContains(absl::AsciiStrToUpper(token), "CHANGE-ME");
}

bool IsLoopbackListen(absl::string_view listen) {
  if (absl::StartsWith(listen, "unix:") || absl::StartsWith(listen, "unix-abstract:")) return true;
  if (!absl::ConsumePrefix(&listen, "ipv4:")) absl::ConsumePrefix(&listen, "ipv6:");
  const size_t colon = listen.rfind(':');
  absl::string_view host = colon == absl::string_view::npos ? listen : listen.substr(0, colon);
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  const std::string h(host);
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

std::string PlaintextTokenWarning(absl::string_view listen) {
  if (IsLoopbackListen(listen)) return "";
  return absl::StrCat("warning: --auth-token-file is set but the server listens in plaintext on ", listen,
                      ", which is not a loopback address: the bearer token crosses the network unencrypted and "
                      "anyone on the path can read and replay it; add --tls-cert/--tls-key, or listen on "
                      "127.0.0.1 behind a TLS-terminating proxy");
}

}  // namespace server
}  // namespace moe_adapter
