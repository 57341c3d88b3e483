// Dtype-agnostic element moves for tensors that are never cast (LoRA, whose
// ParamWrapper layouts are permutations of the native ones). Elements are
// moved as opaque `elem`-byte units, so every dtype keeps its exact bits.
#ifndef MOE_ADAPTER_CORE_PERMUTE_H_
#define MOE_ADAPTER_CORE_PERMUTE_H_

#include <array>
#include <cstddef>
#include <cstdint>

namespace moe_adapter {

// Permute3(): dst = src.permute(perm) made contiguous, for a contiguous 3-D
// src of dims `in`. dst dims are {in[perm[0]], in[perm[1]], in[perm[2]]}.
void Permute3(const uint8_t* src, size_t elem, const std::array<int64_t, 3>& in,
              const std::array<int, 3>& perm, uint8_t* dst);

// TransposeBytes(): dst[c * dst_ld + r] = src[r * src_ld + c], r < rows, c < cols.
void TransposeBytes(const uint8_t* src, int64_t src_ld, uint8_t* dst, int64_t dst_ld, int64_t rows,
                    int64_t cols, size_t elem);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_PERMUTE_H_
