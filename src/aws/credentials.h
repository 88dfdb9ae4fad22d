// AWS credentials and the provider interface every AWS client in Sluice takes.
//
// Usage:
//   std::shared_ptr<aws::CredentialsProvider> provider = aws::MakeDefaultCredentialsChain(...);  // providers.h
//   Result<aws::Credentials> creds = provider->Get();   // cached; refreshed ahead of expiry; thread-safe
//   ... sign with *creds (aws/sigv4.h) ...
//   on an ExpiredToken answer: provider->Invalidate(); then Get() again (aws::Executor does this for you).
//
// The concrete providers (static, environment, shared files, web identity, default chain) are in
// aws/providers.h; STS AssumeRole is in aws/sts.h. Secrets are `Secret` and never printed.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "common/secret.h"

namespace sluice::aws {

/// One set of AWS credentials. Long-term keys have no session token and no expiration.
struct Credentials {
  std::string access_key_id;
  Secret secret_access_key;
  /// Empty for long-term keys; sent as X-Amz-Security-Token.
  Secret session_token;
  /// When temporary credentials stop working; nullopt = never expires.
  std::optional<TimePoint> expiration;

  /// True when the credentials expire within `margin` of `now` (never for long-term keys).
  bool ExpiresWithin(TimePoint now, std::chrono::seconds margin) const {
    return expiration.has_value() && *expiration - margin <= now;
  }
  /// For logs: "AKIA… (session token, expires 2026-11-23T12:00:00Z)"; never the secret or the token.
  std::string ToString() const;
};

/// Source of credentials. Implementations are thread-safe; Get() may block while refreshing (single flight:
/// concurrent callers wait for one refresh rather than each calling the source).
class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  /// Current credentials: cached, refreshed ahead of expiry. Errors: kUnauthenticated when no source has
  /// credentials, or the class of the failed refresh (e.g. kAccessDenied from STS).
  virtual Result<Credentials> Get() = 0;
  /// Drops the cached credentials so the next Get() fetches new ones (after the service said ExpiredToken).
  virtual void Invalidate() = 0;
  /// Short description for messages, e.g. "environment", "profile default", "assume-role arn:aws:iam::…".
  virtual std::string Name() const = 0;
};

/// Formats `t` as ISO-8601 UTC with seconds, e.g. "2026-11-23T12:00:00Z".
std::string FormatIso8601(TimePoint t);
/// Parses "2026-11-23T12:00:00Z", "2026-11-23T12:00:00.123456Z" (moto) and "+00:00" offsets.
Result<TimePoint> ParseIso8601(std::string_view text);

}  // namespace sluice::aws
