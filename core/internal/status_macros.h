// Return-on-error helpers (Abseil 20220623 predates absl/status/status_macros.h).
#ifndef MOE_ADAPTER_CORE_INTERNAL_STATUS_MACROS_H_
#define MOE_ADAPTER_CORE_INTERNAL_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MOE_CONCAT_INNER_(a, b) a##b
#define MOE_CONCAT_(a, b) MOE_CONCAT_INNER_(a, b)

// RETURN_IF_ERROR(expr): returns the status of `expr` when it is not OK.
#define RETURN_IF_ERROR(expr)                                 \
  do {                                                        \
    ::absl::Status moe_status_ = (expr);                      \
    if (!moe_status_.ok()) return moe_status_;                \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): `lhs = *expr`, or returns its error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(MOE_CONCAT_(moe_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(*tmp)

#endif  // MOE_ADAPTER_CORE_INTERNAL_STATUS_MACROS_H_
