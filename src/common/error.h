// Error: what went wrong, classified once at the edge where it was observed.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

/// The classes every module maps its failures into. Callers decide retry/pause/report from the class,
/// never from provider-specific codes.
enum class ErrorCode {
  kInvalidArgument,   // the caller's input is wrong; retrying will not help
  kNotFound,          // object, bucket, project, key does not exist
  kAccessDenied,      // authenticated but not allowed (IAM, bucket policy, KMS)
  kUnauthenticated,   // bad or missing credentials/signature
  kExpiredToken,      // temporary credentials expired: refresh, then retry once
  kClockSkew,         // request time too far from the server's
  kThrottled,         // 429 / SlowDown: retry with backoff
  kTransient,         // 5xx, reset, timeout: retry with backoff
  kTooLarge,          // a size limit was exceeded
  kConflict,          // precondition/state conflict
  kPermanent,         // a provider error that will not go away by retrying
  kUnavailable,       // a dependency (network, server) cannot be reached
  kDeadlineExceeded,  // our own deadline ran out
  kCancelled,         // shutdown or explicit cancellation
  kInternal,          // a bug or corrupted state
};

std::string_view ErrorCodeName(ErrorCode code);

/// True for classes worth retrying with backoff.
bool IsRetryable(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  /// Human-readable, says what to check. Never contains a secret.
  std::string message;
  /// Provider error code, e.g. "AccessDenied", "SlowDown" (empty when not from a provider).
  std::string provider_code;
  /// Provider request id for support tickets (empty when unknown).
  std::string request_id;
  /// HTTP status observed, 0 when none.
  int http_status = 0;

  Error() = default;
  Error(ErrorCode c, std::string msg) : code(c), message(std::move(msg)) {}

  /// "access_denied: <message> (AccessDenied, request id X, HTTP 403)"
  std::string ToString() const;
  /// Returns a copy whose message is prefixed by `context: `.
  Error WithContext(std::string_view context) const;
};

inline Error InvalidArgument(std::string msg) { return Error(ErrorCode::kInvalidArgument, std::move(msg)); }
inline Error NotFound(std::string msg) { return Error(ErrorCode::kNotFound, std::move(msg)); }
inline Error Internal(std::string msg) { return Error(ErrorCode::kInternal, std::move(msg)); }
inline Error Unavailable(std::string msg) { return Error(ErrorCode::kUnavailable, std::move(msg)); }

}  // namespace sluice
