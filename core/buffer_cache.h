// A small cache of large freed buffers. A checkpoint's MoE layers all have the
// same shapes, so the grouped buffer of layer L+1 has exactly the size of
// layer L's: reusing it skips the first-touch page faults (kernel zeroing) of
// a fresh allocation, which cost as much as the conversion itself. Only
// buffers of at least kMinBytes are cached, by exact size, up to a byte cap:
// by default the larger of 2 GiB and twice the largest block ever given back
// (so a Qwen3-235B layer's two groups, 3.2 + 1.6 GB, are kept too), and
// never above SetCeiling();
// MOE_ADAPTER_BUFFER_CACHE=<bytes> or SetCap() fixes it (0 disables). When
// room is needed, for a block given back or for a size the cache does not
// hold (the caller allocates it fresh), the oldest blocks are freed first, so
// cached plus newly allocated blocks stay within the cap. A long-running
// process calls ReleaseIdle() now and then (the server does), so an idle one
// does not keep a checkpoint's buffers. kMinBytes is where
// Bytes::Allocate() switches to huge-page-aligned memory: above glibc's mmap
// threshold (128 KiB, rising to at most 32 MiB only as mappings are freed)
// every such allocation is a fresh mapping, faulted in page by page, unless
// this cache keeps it.
#ifndef MOE_ADAPTER_CORE_BUFFER_CACHE_H_
#define MOE_ADAPTER_CORE_BUFFER_CACHE_H_

#include <chrono>
#include <cstddef>

namespace moe_adapter {
namespace buffer_cache {

inline constexpr size_t kMinBytes = size_t{4} << 20;
inline constexpr size_t kDefaultCapBytes = size_t{2} << 30;

// Take(): a cached block of exactly `size` bytes, or nullptr (then the
// oldest blocks are freed until `size` more bytes fit under the cap).
void* Take(size_t size);
// Give(): keeps `p` (from posix_memalign, `size` bytes) for reuse, or frees it
// when the cache is full.
void Give(void* p, size_t size);
// CachedBytes(): bytes held in the cache now; CapBytes(): the cap now.
size_t CachedBytes();
size_t CapBytes();
// ReleaseIdle(): frees the blocks given back more than `idle` ago; returns
// the bytes freed.
size_t ReleaseIdle(std::chrono::steady_clock::duration idle);
// SetCap(): a fixed byte cap (evicting the oldest blocks above it), for
// embedding applications and tests.
void SetCap(size_t bytes);
// UseAutomaticCap(): back to the default cap (the environment's is dropped).
void UseAutomaticCap();
// SetCeiling(): the automatic cap never exceeds `bytes` (a process that knows
// its memory limit, such as the server in a container, sets it).
void SetCeiling(size_t bytes);
// Clear(): frees every cached block (benchmarks measuring cold buffers).
void Clear();

}  // namespace buffer_cache
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_BUFFER_CACHE_H_
