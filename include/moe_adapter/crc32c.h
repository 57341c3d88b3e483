// File: moe_adapter/crc32c.h
//
// CRC32C (Castagnoli polynomial 0x1EDC6F41, reflected 0x82F63B78), the
// checksum of every tensor on the service's wire (proto moe_adapter.v1
// TensorHeader.crc32c). Uses the SSE4.2 crc32 instruction when the CPU has it
// (checked once at run time, so the binary still runs on older x86-64) and a
// slicing-by-8 table otherwise; both give identical values.
//
// Example:
//   uint32_t crc = moe_adapter::Crc32c(data, n);       // whole buffer
//   moe_adapter::Crc32cHasher h;                        // or piecewise:
//   h.Update(chunk1.data(), chunk1.size());
//   h.Update(chunk2.data(), chunk2.size());
//   assert(h.value() == moe_adapter::Crc32c(all, n));
//   // crc32c("123456789") == 0xE3069283
//
// Thread-safety: the functions are pure; a Crc32cHasher is a value owned by
// one thread at a time.
#ifndef MOE_ADAPTER_CRC32C_H_
#define MOE_ADAPTER_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace moe_adapter {

// Crc32cExtend(): the CRC32C of A+B, given `crc` = CRC32C(A) and B = [data,
// data + n). Crc32cExtend(0, p, n) is the CRC32C of [p, p + n).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);

// Crc32c(): the CRC32C of [data, data + n).
inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }

// Crc32cHasher: accumulates a CRC32C over pieces given in order.
class Crc32cHasher {
 public:
  void Update(const void* data, size_t n) { crc_ = Crc32cExtend(crc_, data, n); }
  uint32_t value() const { return crc_; }
  void Reset() { crc_ = 0; }

 private:
  uint32_t crc_ = 0;
};

namespace crc32c_internal {
// Both implementations, for tests. Sse42 must only be called when
// HaveSse42() is true.
uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n);
uint32_t ExtendSse42(uint32_t crc, const void* data, size_t n);
bool HaveSse42();
}  // namespace crc32c_internal

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CRC32C_H_
