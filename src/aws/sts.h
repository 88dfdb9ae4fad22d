// STS: AssumeRole (the customer's role, with ExternalId), AssumeRoleWithWebIdentity (Sluice's own identity on
// Kubernetes/EKS), GetCallerIdentity (the principal the policy generator prints), the credential providers
// built on them, and the default chain for Sluice's own identity.
//
// Usage (per pipeline):
//   auto transport = std::shared_ptr<http::HttpTransport>(http::MakeCurlTransport());
//   auto own = aws::MakeDefaultCredentialsChain({.transport = transport});            // Sluice's identity
//   aws::StsOptions sts_opts{.region = "eu-west-1", .transport = transport};
//   auto sts = std::make_shared<aws::StsClient>(sts_opts, own);
//   aws::AssumeRoleProvider::Options ar;
//   ar.role_arn = "arn:aws:iam::123456789012:role/sluice-export";
//   ar.session_name = aws::MakeSessionName("p12", "daily");                            // "sluice-p12-daily"
//   ar.external_id = project_token;
//   auto customer = std::make_shared<aws::AssumeRoleProvider>(sts, ar);
//   // Give `customer` to the S3 client's Executor: cached, refreshed 5 min before expiry, single flight.
//
// Endpoint: https://sts.<region>.amazonaws.com (regional; ".amazonaws.com.cn" for cn-*), overridden by
// StsOptions::endpoint, else AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL. Calls go through aws::Executor
// (same retry layer as S3). Requests are form POSTs signed with SigV4 (service "sts").
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "aws/credentials.h"
#include "aws/executor.h"
#include "aws/providers.h"
#include "aws/retry.h"
#include "common/clock.h"
#include "http/transport.h"

namespace sluice::aws {

struct StsOptions {
  /// Signing region and default endpoint region.
  std::string region = "us-east-1";
  std::shared_ptr<http::HttpTransport> transport;
  /// Explicit endpoint (tests: "http://127.0.0.1:PORT"); empty = environment overrides, else regional.
  std::string endpoint;
  RetryPolicy retry;
  const Clock* clock = &SystemClock::Instance();
  EnvGetter env = SystemEnv();
  /// Test hooks, passed to the Executor (see executor.h); empty = real sleeping/randomness/time.
  Sleeper sleep;
  std::function<double()> random;
  std::function<std::chrono::steady_clock::time_point()> steady_now;
};

/// The STS endpoint URL (no trailing slash) for `region` under the override rules above.
std::string ResolveStsEndpoint(std::string_view region, std::string_view explicit_endpoint,
                               const EnvGetter& env);

struct AssumeRoleRequest {
  std::string role_arn;
  /// [\w+=,.@-]{2,64}; see MakeSessionName.
  std::string session_name;
  /// The customer's ExternalId condition (SPEC §5: the project token). Empty = not sent.
  std::string external_id;
  /// 900..43200; the role's maximum session duration must allow it.
  int duration_seconds = 3600;
};

struct AssumedRole {
  Credentials credentials;       // with expiration
  std::string assumed_role_arn;  // arn:aws:sts::123456789012:assumed-role/role/session
  std::string assumed_role_id;
};

struct CallerIdentity {
  std::string account;
  std::string arn;
  std::string user_id;
};

/// A role session name from project and pipeline, e.g. ("p12", "daily") → "sluice-p12-daily": characters
/// outside [A-Za-z0-9+=,.@_-] become '-', and the result is cut to 64 characters (AWS's limit).
std::string MakeSessionName(std::string_view project, std::string_view pipeline);
/// kInvalidArgument unless 2..64 characters of [A-Za-z0-9+=,.@_-].
Status ValidateSessionName(std::string_view name);

/// Thread-safe STS client. `base` signs AssumeRole and GetCallerIdentity; it may be null when only
/// AssumeRoleWithWebIdentity (unsigned) is used.
class StsClient {
 public:
  StsClient(StsOptions options, std::shared_ptr<CredentialsProvider> base);

  /// kAccessDenied (with what to check in the trust policy) when the role refuses us — including for a wrong
  /// ExternalId, which is what confused-deputy protection looks like from our side.
  Result<AssumedRole> AssumeRole(const AssumeRoleRequest& request) const;
  /// Unsigned; the OIDC token authenticates.
  Result<AssumedRole> AssumeRoleWithWebIdentity(std::string_view role_arn, std::string_view session_name,
                                                const Secret& web_identity_token,
                                                int duration_seconds = 3600) const;
  Result<CallerIdentity> GetCallerIdentity() const;

  const std::string& endpoint() const { return endpoint_; }

 private:
  Result<http::OutboundResponse> Post(const Executor& executor, std::string operation,
                                      std::string form) const;

  StsOptions options_;
  std::string endpoint_;
  Executor signed_;
  Executor unsigned_;
};

/// Confused-deputy probe (SPEC §5): assumes `role_arn` with a random WRONG external ID. true when STS refused
/// it (the role's trust policy requires the right sts:ExternalId), false when STS accepted it (the role
/// trusts Sluice whatever external ID is presented, so any project that learns the ARN could use it: refuse
/// the role). The STS error when the answer was neither (unreachable, throttled, …).
Result<bool> RoleRequiresExternalId(const StsClient& sts, std::string_view role_arn,
                                    std::string_view session_name);

/// The customer's role: AssumeRole with the base (Sluice's own) credentials, cached and refreshed ahead of
/// expiry (RefreshingCredentialsProvider).
class AssumeRoleProvider final : public RefreshingCredentialsProvider {
 public:
  struct Options {
    std::string role_arn;
    std::string session_name;
    std::string external_id;
    int duration_seconds = 3600;
    RefreshOptions refresh;
  };
  /// Invalid options (session name) surface as the error of every Get().
  AssumeRoleProvider(std::shared_ptr<StsClient> sts, Options options);
  std::string Name() const override { return "assume-role " + options_.role_arn; }

 protected:
  Result<Credentials> Fetch() override;

 private:
  std::shared_ptr<StsClient> sts_;
  Options options_;
};

/// AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN [+ AWS_ROLE_SESSION_NAME]: reads the token file at every
/// refresh (Kubernetes rotates it) and calls AssumeRoleWithWebIdentity.
class WebIdentityProvider final : public RefreshingCredentialsProvider {
 public:
  struct Options {
    std::string token_file;
    std::string role_arn;
    std::string session_name = "sluice";
    int duration_seconds = 3600;
    RefreshOptions refresh;
  };
  WebIdentityProvider(std::shared_ptr<StsClient> sts, Options options);
  /// From the environment; nullopt when AWS_WEB_IDENTITY_TOKEN_FILE or AWS_ROLE_ARN is unset.
  static std::optional<Options> OptionsFromEnv(const EnvGetter& env);
  std::string Name() const override { return "web-identity " + options_.role_arn; }

 protected:
  Result<Credentials> Fetch() override;

 private:
  std::shared_ptr<StsClient> sts_;
  Options options_;
};

struct DefaultChainOptions {
  std::shared_ptr<http::HttpTransport> transport;  // for web identity's STS calls
  /// Explicitly configured keys (Sluice's config file/flags); first in the chain when set.
  std::optional<Credentials> explicit_credentials;
  /// Profile name; empty = AWS_PROFILE, else "default".
  std::string profile;
  /// Region for web identity's STS endpoint; empty = AWS_REGION, AWS_DEFAULT_REGION, else us-east-1.
  std::string region;
  std::string sts_endpoint;  // tests
  EnvGetter env = SystemEnv();
  const Clock* clock = &SystemClock::Instance();
};

/// Sluice's own identity: explicit → environment → web identity → shared profile. The first source that
/// yields credentials is used from then on (like the AWS SDKs); kUnauthenticated naming every source tried
/// otherwise.
std::shared_ptr<CredentialsProvider> MakeDefaultCredentialsChain(DefaultChainOptions options);

}  // namespace sluice::aws
