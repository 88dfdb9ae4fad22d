// The customer's bucket as an import source: Sluice assumes the customer's role (external ID = the project's
// `external_id`, else its token — SPEC §5) and reads with only s3:ListBucket and s3:GetObject.
//
//   SourceContext ctx{.own_credentials = own, .transport = transport};
//   SLUICE_ASSIGN_OR_RETURN(auto source, OpenS3Source(spec, project, ctx));
//   ValidationIssue issue;
//   Status access = CheckSourceAccess(*source, spec, &issue);   // at connector create
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "aws/credentials.h"
#include "aws/endpoint_policy.h"
#include "aws/retry.h"
#include "aws/sts.h"
#include "cloudimport/connector.h"
#include "common/result.h"
#include "http/transport.h"
#include "objstore/object_store.h"
#include "store/store.h"

namespace sluice::cloudimport {

struct SourceContext {
  /// Sluice's own identity; signs AssumeRole. Required.
  std::shared_ptr<aws::CredentialsProvider> own_credentials;
  /// Null = a libcurl transport per source.
  std::shared_ptr<http::HttpTransport> transport;
  /// The endpoints a connector's s3_endpoint may name (`sluice serve --allow-endpoint`,
  /// AWS_ENDPOINT_URL[_S3]); nullopt = only the operator's AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 from the
  /// environment.
  std::optional<aws::EndpointPolicy> endpoints;
  /// Retries of one S3/STS call (the executor's single retry layer).
  aws::RetryPolicy retry = [] {
    aws::RetryPolicy p;
    // A streamed GET of a 2 GB file may take longer than the default attempt deadline; a stalled transfer is
    // still caught by the transport's idle timeout.
    p.attempt_timeout = std::chrono::hours(6);
    p.total_timeout = std::chrono::hours(6);
    return p;
  }();
};

/// A source: the object store and the role credentials behind it (so a failed AssumeRole can be told apart
/// from a denied S3 call).
struct Source {
  std::shared_ptr<aws::CredentialsProvider> role;  // null for sources without a role (tests)
  std::shared_ptr<objstore::ObjectStore> store;
  /// For the wrong-external-ID probe at create (null for sources without a role).
  std::shared_ptr<aws::StsClient> sts;
  std::string role_arn;
  std::string session_name;
};

/// The external ID Sluice presents for `project`: its `external_id`, else its token.
std::string ExternalIdOf(const store::Project& project);

/// Builds the S3 source of `spec` (region, optional s3_endpoint — which must be one the operator allowed; STS
/// never goes there, only to the regional STS or the operator's AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL).
/// kInvalidArgument for bad or disallowed settings. Makes no network call.
Result<Source> OpenS3Source(const ConnectorSpec& spec, const store::Project& project,
                            const SourceContext& context);

/// The create-time access check: assume the role, make sure it refuses a random WRONG external ID (else the
/// role trusts Sluice for every project — a confused deputy — and the connector is refused with the
/// trust-policy statement to add, code "invalid_permissions_s3"), list the prefix (s3:ListBucket) and read
/// one object (s3:GetObject; with an empty prefix a GET of a random missing key tells NoSuchKey — allowed —
/// from AccessDenied). On failure fills `issue` (code "invalid_permissions_s3" naming the denied action and
/// the statement to add, or "invalid_property" for a missing bucket) and returns the error.
Status CheckSourceAccess(const Source& source, const ConnectorSpec& spec, const std::string& external_id,
                         ValidationIssue* issue);

/// The confused-deputy probe alone (step 2 of CheckSourceAccess; OK for a source without a role): assumes the
/// role with a random WRONG external ID. kAccessDenied with the trust statement to add when the role accepted
/// it; the STS error (e.g. kUnavailable) when the probe could not tell. Run at create and at every import run
/// (a trust policy loosened after create, or a connector stored before the probe existed, must stop
/// importing).
Status CheckExternalIdEnforced(const Source& source, const ConnectorSpec& spec,
                               const std::string& external_id, ValidationIssue* issue = nullptr);

/// True for errors that pause a connector until the customer fixes something (access denied, missing bucket,
/// rejected credentials), as opposed to transient ones worth retrying.
bool IsPermanentSourceError(const Error& e);

/// A failure message for a permanent source error that says what to fix.
std::string DescribeSourceError(const Error& e, const ConnectorSpec& spec, std::string_view action,
                                std::string_view resource);

}  // namespace sluice::cloudimport
