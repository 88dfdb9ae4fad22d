#include "common/error.h"

#include <fmt/format.h>

namespace sluice {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kAccessDenied: return "access_denied";
    case ErrorCode::kUnauthenticated: return "unauthenticated";
    case ErrorCode::kExpiredToken: return "expired_token";
    case ErrorCode::kClockSkew: return "clock_skew";
    case ErrorCode::kThrottled: return "throttled";
    case ErrorCode::kTransient: return "transient";
    case ErrorCode::kTooLarge: return "too_large";
    case ErrorCode::kConflict: return "conflict";
    case ErrorCode::kPermanent: return "permanent";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kDeadlineExceeded: return "deadline_exceeded";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

bool IsRetryable(ErrorCode code) {
  switch (code) {
    case ErrorCode::kThrottled:
    case ErrorCode::kTransient:
    case ErrorCode::kUnavailable:
    case ErrorCode::kClockSkew:
      return true;
    default:
      return false;
  }
}

std::string Error::ToString() const {
  std::string out = fmt::format("{}: {}", ErrorCodeName(code), message);
  if (!provider_code.empty() || !request_id.empty() || http_status != 0) {
    out += " (";
    bool first = true;
    auto add = [&](const std::string& s) {
      if (!first) out += ", ";
      out += s;
      first = false;
    };
    if (!provider_code.empty()) add(provider_code);
    if (!request_id.empty()) add("request id " + request_id);
    if (http_status != 0) add(fmt::format("HTTP {}", http_status));
    out += ")";
  }
  return out;
}

Error Error::WithContext(std::string_view context) const {
  Error e = *this;
  e.message = fmt::format("{}: {}", context, message);
  return e;
}

}  // namespace sluice
