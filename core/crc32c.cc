// CRC32C: SSE4.2 instruction with run-time dispatch, slicing-by-8 fallback.
// The SSE4.2 path runs three interleaved crc32 chains over large buffers (the
// technique of Intel's crc_pcl and Mark Adler's crc32c.c).
#include "moe_adapter/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define MOE_CRC32C_X86 1
#endif

namespace moe_adapter {
namespace crc32c_internal {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli

// kTables[k][b]: the CRC of byte b followed by k zero bytes (slicing-by-8).
struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t;
  Tables() {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t c = b;
      for (int i = 0; i < 8; ++i) c = (c >> 1) ^ (kPoly & (0u - (c & 1u)));
      t[0][b] = c;
    }
    for (int k = 1; k < 8; ++k) {
      for (uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
    }
  }
};

const Tables& GetTables() {
  static const Tables* tables = new Tables();
  return *tables;
}

}  // namespace

uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n) {
  const auto& t = GetTables().t;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  while (n >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);  // little-endian hosts only (x86-64, aarch64)
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  return ~c;
}

#if defined(MOE_CRC32C_X86)
namespace {

#if defined(__x86_64__)
// The crc32 instruction has a latency of 3 cycles but can issue every cycle,
// so a single dependency chain leaves two thirds of the unit idle. A block of
// 3 * len bytes is therefore hashed as three independent chains, one per
// third, and the three CRCs are joined afterwards: the register after A+B,
// started from r, is Shift(r, |B|) ^ (register after B started from 0), where
// Shift() is the (linear) effect of feeding |B| zero bytes. The long stride
// amortizes the two joins; the short one still pays off on mid-sized buffers.
constexpr size_t kLong = 8192;
constexpr size_t kShort = 256;

// A GF(2)-linear map on the 32-bit CRC register, as the images of its 32 bits.
struct Gf2Matrix {
  uint32_t col[32] = {};
};

constexpr uint32_t Apply(const Gf2Matrix& m, uint32_t v) {
  uint32_t r = 0;
  for (int i = 0; v != 0; ++i, v >>= 1) {
    if (v & 1u) r ^= m.col[i];
  }
  return r;
}

constexpr Gf2Matrix Compose(const Gf2Matrix& a, const Gf2Matrix& b) {  // a after b
  Gf2Matrix r;
  for (int i = 0; i < 32; ++i) r.col[i] = Apply(a, b.col[i]);
  return r;
}

// ShiftTable for `len` zero bytes, split by register byte so that a shift
// costs four lookups instead of a 32-column product.
struct ShiftTable {
  uint32_t t[4][256] = {};
};

constexpr ShiftTable MakeShiftTable(size_t len) {
  Gf2Matrix one_byte;
  for (int i = 0; i < 32; ++i) {
    uint32_t c = 1u << i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (kPoly & (0u - (c & 1u)));
    one_byte.col[i] = c;
  }
  Gf2Matrix op;  // identity, then one_byte^len by squaring
  for (int i = 0; i < 32; ++i) op.col[i] = 1u << i;
  for (Gf2Matrix sq = one_byte; len != 0; len >>= 1, sq = Compose(sq, sq)) {
    if (len & 1u) op = Compose(sq, op);
  }
  ShiftTable table;
  for (uint32_t b = 0; b < 256; ++b) {
    for (int k = 0; k < 4; ++k) table.t[k][b] = Apply(op, b << (8 * k));
  }
  return table;
}

// Built at compile time, so the hot path has no initialization guard.
constexpr ShiftTable kLongShift = MakeShiftTable(kLong);
constexpr ShiftTable kShortShift = MakeShiftTable(kShort);

inline uint32_t Shift(const ShiftTable& z, uint32_t c) {
  return z.t[0][c & 0xFF] ^ z.t[1][(c >> 8) & 0xFF] ^ z.t[2][(c >> 16) & 0xFF] ^ z.t[3][c >> 24];
}

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Consumes 3 * len bytes at p into the register c. With kPrefetch, the caller
// guarantees the next 3 * len bytes exist: hardware prefetchers lose track of
// three streams that each jump every len bytes (a 1 GiB buffer ran at half
// speed from DRAM), so each chain requests its successor's line one block ahead.
template <size_t len, bool kPrefetch>
__attribute__((target("sse4.2"), always_inline)) inline uint64_t ThreeChains(uint64_t c, const uint8_t* p,
                                                                            const ShiftTable& shift) {
  static_assert(len % 64 == 0, "the loop below takes one cache line per chain per step");
  uint64_t c1 = 0, c2 = 0;
  for (const uint8_t* end = p + len; p < end; p += 64) {
    if (kPrefetch) {
      __builtin_prefetch(p + 3 * len);
      __builtin_prefetch(p + 4 * len);
      __builtin_prefetch(p + 5 * len);
    }
    for (size_t i = 0; i < 64; i += 8) {
      c = _mm_crc32_u64(c, Load64(p + i));
      c1 = _mm_crc32_u64(c1, Load64(p + len + i));
      c2 = _mm_crc32_u64(c2, Load64(p + 2 * len + i));
    }
  }
  c = Shift(shift, static_cast<uint32_t>(c)) ^ c1;
  return Shift(shift, static_cast<uint32_t>(c)) ^ c2;
}
#endif  // __x86_64__

}  // namespace

__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc, const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t c = ~crc;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
    --n;
  }
#if defined(__x86_64__)
  for (; n >= 6 * kLong; p += 3 * kLong, n -= 3 * kLong) c = ThreeChains<kLong, true>(c, p, kLongShift);
  for (; n >= 3 * kLong; p += 3 * kLong, n -= 3 * kLong) c = ThreeChains<kLong, false>(c, p, kLongShift);
  for (; n >= 3 * kShort; p += 3 * kShort, n -= 3 * kShort) c = ThreeChains<kShort, false>(c, p, kShortShift);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
#endif
  while (n--) c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
  return ~static_cast<uint32_t>(c);
}

bool HaveSse42() {
  static const bool have = __builtin_cpu_supports("sse4.2");
  return have;
}
#else
uint32_t ExtendSse42(uint32_t crc, const void* data, size_t n) { return ExtendPortable(crc, data, n); }
bool HaveSse42() { return false; }
#endif

}  // namespace crc32c_internal

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n) {
  if (n == 0) return crc;
  return crc32c_internal::HaveSse42() ? crc32c_internal::ExtendSse42(crc, data, n)
                                      : crc32c_internal::ExtendPortable(crc, data, n);
}

}  // namespace moe_adapter
