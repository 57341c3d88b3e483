// A small cache of large freed buffers. A checkpoint's MoE layers all have the
// same shapes, so the grouped buffer of layer L+1 has exactly the size of
// layer L's: reusing it skips the first-touch page faults (kernel zeroing) of
// a fresh allocation, which cost as much as the conversion itself. Only
// buffers of at least kMinBytes are cached, by exact size, up to a byte cap
// (default 2 GiB; MOE_ADAPTER_BUFFER_CACHE=<bytes> overrides, 0 disables);
// a block that does not fit evicts the oldest ones. kMinBytes is where
// Bytes::Allocate() switches to huge-page-aligned memory: above glibc's mmap
// threshold (128 KiB, rising to at most 32 MiB only as mappings are freed)
// every such allocation is a fresh mapping, faulted in page by page, unless
// this cache keeps it.
#ifndef MOE_ADAPTER_CORE_BUFFER_CACHE_H_
#define MOE_ADAPTER_CORE_BUFFER_CACHE_H_

#include <cstddef>

namespace moe_adapter {
namespace buffer_cache {

inline constexpr size_t kMinBytes = size_t{4} << 20;

// Take(): a cached block of exactly `size` bytes, or nullptr.
void* Take(size_t size);
// Give(): keeps `p` (from posix_memalign, `size` bytes) for reuse, or frees it
// when the cache is full.
void Give(void* p, size_t size);
// CachedBytes(): bytes held in the cache now.
size_t CachedBytes();
// SetCap(): a new byte cap (evicting the oldest blocks above it), for
// embedding applications and tests; the environment sets the initial one.
void SetCap(size_t bytes);
// Clear(): frees every cached block (benchmarks measuring cold buffers).
void Clear();

}  // namespace buffer_cache
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_BUFFER_CACHE_H_
