// File: server/token_rules.h
//
// The rules for the bearer token (--auth-token-file): how a presented token
// is compared with the expected one, which tokens the server refuses to start
// with, and when it warns that the token crosses the network in clear text.
//
// Example (what server.cc and service.cc do):
//   if (IsPlaceholderToken(token)) return absl::InvalidArgumentError("...");
//   if (std::string w = PlaintextTokenWarning(o.listen); !w.empty()) Log(w);
//   bool ok = SameSecret(presented, token);
//
// Thread-safety: pure functions.
#ifndef MOE_ADAPTER_SERVER_TOKEN_RULES_H_
#define MOE_ADAPTER_SERVER_TOKEN_RULES_H_

#include <string>

#include "absl/strings/string_view.h"

namespace moe_adapter {
namespace server {

// SameSecret(): `given` == `want`, in a time that depends on neither their
// contents nor (beyond hashing `given`) their lengths: both are hashed
// (SHA-256) and the digests compared with OpenSSL's CRYPTO_memcmp, which the
// compiler cannot turn into an early-exit loop.
bool SameSecret(absl::string_view given, absl::string_view want);

// IsPlaceholderToken(): the token is a committed placeholder (it contains
// "CHANGE-ME", as deploy/k8s's Secrets do), which anyone can read.
bool IsPlaceholderToken(absl::string_view token);

// IsLoopbackListen(): `listen` (a --listen value) only accepts connections
// from this machine: 127.0.0.0/8, ::1, localhost, or a unix socket.
// 0.0.0.0, ::, host names and other addresses are not.
bool IsLoopbackListen(absl::string_view listen);

// PlaintextTokenWarning(): the warning to print when a token is required and
// the server listens in plaintext on `listen`, "" when it listens on loopback.
std::string PlaintextTokenWarning(absl::string_view listen);

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_TOKEN_RULES_H_
