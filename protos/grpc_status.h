// Conversions between absl::Status and grpc::Status (the codes are the same numbers).
#ifndef COPYFORGE_PROTOS_GRPC_STATUS_H_
#define COPYFORGE_PROTOS_GRPC_STATUS_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace copyforge {

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// "<what>: <CODE>: <message>", keeping the code.
inline absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(s.error_code());
  return absl::Status(
      code, absl::StrCat(what, ": ", absl::StatusCodeToString(code), ": ", s.error_message()));
}

}  // namespace copyforge

#endif  // COPYFORGE_PROTOS_GRPC_STATUS_H_
