// File: core/checked_math.h
//
// Checked integer arithmetic for sizes computed from untrusted numbers
// (shapes, byte lengths, geometry from a client or a file). A product or sum
// that wraps around would make a huge tensor look small, pass a memory budget
// and then overrun the buffer it was given, so every such size is computed
// here and an overflow is reported instead of a wrong value.
//
// Example:
//   std::optional<uint64_t> need = checked::Mul<uint64_t>({3, byte_length});
//   if (!need) return absl::ResourceExhaustedError("... more than 64 bits can count");
//
// Thread-safety: pure functions.
#ifndef MOE_ADAPTER_CORE_CHECKED_MATH_H_
#define MOE_ADAPTER_CORE_CHECKED_MATH_H_

#include <initializer_list>
#include <optional>
#include <type_traits>

namespace moe_adapter {
namespace checked {

template <class T>
constexpr bool Negative(T v) {
  if constexpr (std::is_signed_v<T>) {
    return v < 0;
  } else {
    return false;
  }
}

// Mul(): the product of `factors`, or nullopt when it overflows T (or, for a
// signed T, when a factor is negative: sizes are never negative).
template <class T>
std::optional<T> Mul(std::initializer_list<T> factors) {
  T out = 1;
  for (T f : factors) {
    if (Negative(f) || __builtin_mul_overflow(out, f, &out)) return std::nullopt;
  }
  return out;
}

// Add(): the sum of `terms`, or nullopt when it overflows T (or a term is
// negative).
template <class T>
std::optional<T> Add(std::initializer_list<T> terms) {
  T out = 0;
  for (T t : terms) {
    if (Negative(t) || __builtin_add_overflow(out, t, &out)) return std::nullopt;
  }
  return out;
}

// Mul(), Add() of two optionals: nullopt in, nullopt out.
template <class T>
std::optional<T> Mul(std::optional<T> a, std::optional<T> b) {
  if (!a || !b) return std::nullopt;
  return Mul<T>({*a, *b});
}
template <class T>
std::optional<T> Add(std::optional<T> a, std::optional<T> b) {
  if (!a || !b) return std::nullopt;
  return Add<T>({*a, *b});
}

}  // namespace checked
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_CHECKED_MATH_H_
