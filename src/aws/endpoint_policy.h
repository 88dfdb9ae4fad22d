// Which S3-compatible endpoints a tenant may name (issue 9 item 2). A project's `s3_endpoint` makes Sluice
// send requests signed with credentials it obtained with its own identity, so only endpoints the operator
// chose are allowed: AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 of the server's environment and every `sluice
// serve
// --allow-endpoint URL`. Anything else (loopback and private addresses included) is refused before any
// request. STS never goes to a tenant's endpoint at all (aws::ResolveStsEndpoint ignores it).
//
//   SLUICE_ASSIGN_OR_RETURN(auto policy, aws::EndpointPolicy::Create({"https://minio.internal:9000"}, env));
//   SLUICE_TRY(policy.Check(spec.s3_endpoint));    // "" (AWS itself) is always allowed
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "aws/providers.h"
#include "common/result.h"

namespace sluice::aws {

/// "scheme://host:port" of an endpoint URL: scheme http or https, host lower-cased (a name, an IPv4 address
/// or a bracketed IPv6 address), the port made explicit (80/443 by default). A user name/password, a path
/// (other than a single trailing '/'), a query or a fragment are refused, so two spellings of one endpoint
/// compare equal and nothing can be smuggled past the comparison. kInvalidArgument with a message naming
/// `what`.
Result<std::string> NormalizeEndpoint(std::string_view url, std::string_view what = "s3_endpoint");

class EndpointPolicy {
 public:
  /// Only "" (AWS itself) is allowed.
  EndpointPolicy() = default;
  /// The operator's endpoints: `allowed` (--allow-endpoint) plus AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_S3
  /// from `env`. kInvalidArgument when one of them is not a valid endpoint URL.
  static Result<EndpointPolicy> Create(const std::vector<std::string>& allowed, const EnvGetter& env);

  /// OK for "" and for an allowed endpoint (compared normalised). Otherwise kInvalidArgument saying that the
  /// operator must allow it; the message reveals nothing about the endpoint beyond what the caller sent.
  Status Check(std::string_view endpoint, std::string_view what = "s3_endpoint") const;

  const std::set<std::string>& allowed() const { return allowed_; }

  /// How a refusal tells the caller to proceed, for a provider other than S3: what an empty endpoint means,
  /// and the serve flag (and environment variable, if any) that allows one.
  struct Advice {
    std::string default_service = "AWS S3";
    std::string flag = "--allow-endpoint";
    std::string env = "AWS_ENDPOINT_URL_S3";
  };
  void set_advice(Advice advice) { advice_ = std::move(advice); }

 private:
  std::set<std::string> allowed_;
  Advice advice_;
};

}  // namespace sluice::aws
