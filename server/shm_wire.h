// File: server/shm_wire.h
//
// The byte layout of the shared-memory side channel (docs/server.md, "Shared
// memory"): one request from the client, one reply from the server, on a
// SOCK_SEQPACKET Unix socket at `<gRPC socket path>.shm`. Header-only, so a
// client (or a test) needs nothing else to speak it. All integers are
// little-endian.
//
//   request (8 bytes), with 1 or 2 memfds in one SCM_RIGHTS message:
//     0..3  magic "MOES"
//     4     version (1)
//     5     regions: bit 0 = an input region, bit 1 = an output region (the
//           fds come in that order: input first)
//     6..7  reserved, 0
//   reply (kReplyHeaderBytes + message):
//     0..3  magic "MOES"
//     4     version (1)
//     5     reserved, 0
//     6..7  status: a gRPC code number (0 = OK)
//     8..39 the token: 32 lowercase hex digits (all '0' unless OK)
//     40..41 message length n (at most kMaxReplyMessageBytes)
//     42..  n bytes of UTF-8: why, when not OK
#ifndef MOE_ADAPTER_SERVER_SHM_WIRE_H_
#define MOE_ADAPTER_SERVER_SHM_WIRE_H_

#include <cstddef>
#include <cstdint>

namespace moe_adapter {
namespace server {
namespace shm_wire {

inline constexpr char kMagic[4] = {'M', 'O', 'E', 'S'};
inline constexpr uint8_t kVersion = 1;
inline constexpr uint8_t kInputRegion = 1;
inline constexpr uint8_t kOutputRegion = 2;
inline constexpr size_t kRequestBytes = 8;
inline constexpr size_t kTokenChars = 32;
inline constexpr size_t kReplyHeaderBytes = 42;
inline constexpr size_t kMaxReplyMessageBytes = 400;
inline constexpr size_t kMaxReplyBytes = kReplyHeaderBytes + kMaxReplyMessageBytes;
// Output tensors start at multiples of this in the output region.
inline constexpr uint64_t kOutputAlignment = 64;

}  // namespace shm_wire
}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_SHM_WIRE_H_
