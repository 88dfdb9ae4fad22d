// The customer's bucket as an import source. S3: Sluice assumes the customer's role (external ID = the
// project's effective external ID, storage_access::EffectiveExternalId — SPEC §5) and reads with only
// s3:ListBucket and s3:GetObject. GCS (connector_type gcsImport): Sluice reads as its own service account,
// to which the customer granted Storage Object Viewer. Azure (connector_type azureImport): Sluice reads as the
// customer's own Entra ID service principal (tenant_id, client_id, client_secret), to which the customer assigned
// Storage Blob Data Reader on the container. Opening is the customer-storage layer's (storage_access/open.h).
//
//   SourceContext ctx{.own_credentials = own, .google_identity = google, .transport = transport};
//   SLUICE_ASSIGN_OR_RETURN(auto source, OpenSource(spec, project, ctx));
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
#include "gcp/credentials.h"
#include "http/transport.h"
#include "objstore/object_store.h"
#include "storage_access/location.h"
#include "storage_access/static_credentials.h"
#include "store/store.h"

namespace sluice::cloudimport {

struct SourceContext {
  /// Sluice's own identity; signs AssumeRole. Required for s3Import.
  std::shared_ptr<aws::CredentialsProvider> own_credentials;
  /// Sluice's own Google service account. Required for gcsImport.
  std::shared_ptr<gcp::TokenProvider> google_identity;
  /// Null = a libcurl transport per source.
  std::shared_ptr<http::HttpTransport> transport;
  /// The endpoints a connector's s3_endpoint may name (`sluice serve --allow-endpoint`,
  /// AWS_ENDPOINT_URL[_S3]); nullopt = only the operator's AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 from the
  /// environment.
  std::optional<aws::EndpointPolicy> endpoints;
  /// The endpoints a connector's gcs_endpoint may name (storage_access::MakeGcsEndpointPolicy); nullopt =
  /// only STORAGE_EMULATOR_HOST from the environment.
  std::optional<aws::EndpointPolicy> gcs_endpoints;
  /// The endpoints a connector's azure_endpoint may name (`sluice serve --allow-azure-endpoint`); nullopt = none.
  std::optional<aws::EndpointPolicy> azure_endpoints;
  /// The operator's named static credentials a connector's s3_credential may name; null = none.
  std::shared_ptr<const storage_access::StaticCredentialRegistry> static_credentials;
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
  /// gcsImport: Sluice's service account (its email names who to grant roles to).
  std::shared_ptr<gcp::TokenProvider> google_identity;
};

/// The external ID Sluice presents for `project` (storage_access::EffectiveExternalId).
std::string ExternalIdOf(const store::Project& project);

/// The typed description of a connector's bucket.
storage_access::Location ToLocation(const ConnectorSpec& spec);

/// Builds the source of `spec`: S3 (region, optional s3_endpoint — which must be one the operator allowed; STS
/// never goes there, only to the regional STS or the operator's AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL) or
/// GCS (optional gcs_endpoint, likewise allowed by the operator). kInvalidArgument for bad or disallowed
/// settings. Makes no network call.
Result<Source> OpenSource(const ConnectorSpec& spec, const store::Project& project, const SourceContext& context);
/// The same (the name callers used before GCS).
inline Result<Source> OpenS3Source(const ConnectorSpec& spec, const store::Project& project,
                                   const SourceContext& context) {
  return OpenSource(spec, project, context);
}

/// The create-time access check. azureImport: a token for the service principal (a refusal names client_secret,
/// client_id and tenant_id to check), then a list of the prefix and a read of one blob (nothing is written); a
/// denial names Storage Blob Data Reader, the principal, the container and the `az role assignment create`
/// command (code "invalid_permissions_azure"). gcsImport: an access token for Sluice's service account, objects.list on the
/// prefix and a read of one object (storage.objects.list / storage.objects.get); a denial names Storage
/// Object Viewer and the account (code "invalid_permissions_gcs"). s3Import: assume the role, make sure it refuses a random WRONG external ID (else the
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

/// True for a bucket that does not exist (S3 NoSuchBucket, GCS "The specified bucket does not exist.", Azure
/// ContainerNotFound), as opposed to a missing object.
bool IsMissingBucket(const Error& e);

/// True for errors that pause a connector until the customer fixes something (access denied, missing bucket,
/// rejected credentials), as opposed to transient ones worth retrying.
bool IsPermanentSourceError(const Error& e);

/// What an import does to a bucket.
enum class SourceOperation { kList, kRead };

/// A failure message for a permanent source error that says what to fix: the permission the operation
/// needs (s3:ListBucket / s3:GetObject, storage.objects.list / storage.objects.get), on what, and how to
/// grant it. `key` is the object read (kRead).
std::string DescribeSourceError(const Error& e, const ConnectorSpec& spec, SourceOperation operation,
                                std::string_view key = "");

}  // namespace sluice::cloudimport
