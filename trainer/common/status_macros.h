// Early-return helpers for absl::Status / absl::StatusOr.
#ifndef COPYFORGE_TRAINER_COMMON_STATUS_MACROS_H_
#define COPYFORGE_TRAINER_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CF_CONCAT_INNER_(a, b) a##b
#define CF_CONCAT_(a, b) CF_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` yields a non-OK status.
#define CF_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status cf_status_ = (expr);      \
    if (!cf_status_.ok()) return cf_status_; \
  } while (false)

// `CF_ASSIGN_OR_RETURN(auto x, MakeX());` unwraps a StatusOr or returns its error.
#define CF_ASSIGN_OR_RETURN(lhs, expr) \
  CF_ASSIGN_OR_RETURN_IMPL_(CF_CONCAT_(cf_statusor_, __LINE__), lhs, expr)
#define CF_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#endif  // COPYFORGE_TRAINER_COMMON_STATUS_MACROS_H_
