// Opens a customer's storage with the right credentials: the one place that turns a Location into an
// ObjectStore.
//
//   AccessContext ctx{.aws_identity = own_aws, .google_identity = own_google, .transport = transport,
//                     .s3_endpoints = s3_policy, .gcs_endpoints = gcs_policy, .local_export_root = root};
//   SLUICE_ASSIGN_OR_RETURN(OpenedStore opened,
//                           Open(location, {.external_id = EffectiveExternalId(project),
//                                           .session_name = "sluice-p3-daily", .purpose = Purpose::kWrite},
//                                ctx));
//
// S3: Sluice assumes the customer's role with the project's external ID (STS never goes to a tenant's
// s3_endpoint, only the regional STS or the operator's AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL). GCS: Sluice
// authenticates as its own service account, on which the customer granted roles. Azure: Sluice authenticates
// as the customer's Entra ID service principal (client-credentials flow against the operator's authority host).
// Local: a directory under
// the operator's export root (pipeline/destination.h's ConfineLocalPath does the confinement and is passed
// in, so the layer does not depend on the pipeline module). A tenant's endpoint is checked against the
// operator's allow-list before anything is sent anywhere. Makes no network call.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credentials.h"
#include "aws/endpoint_policy.h"
#include "aws/retry.h"
#include "aws/sts.h"
#include "azure/credentials.h"
#include "gcp/credentials.h"
#include "http/transport.h"
#include "objstore/object_store.h"
#include "storage_access/location.h"
#include "storage_access/static_credentials.h"

namespace sluice::storage_access {

/// What the store is for: a destination is written under its prefix (the store's keys are relative to it);
/// a source is read by raw key prefix (the store is rooted at the bucket and the caller lists the prefix).
enum class Purpose { kWrite, kRead };

struct Grant {
  /// The project's effective external ID (EffectiveExternalId), presented to AssumeRole.
  std::string external_id;
  /// The STS session name, already valid ([\w+=,.@-]{2,64}).
  std::string session_name;
  Purpose purpose = Purpose::kWrite;
  /// How the caller's API prefixes parameter names in messages ("connector_properties." for imports).
  std::string field_prefix;
  /// The project the store is opened for: a named static credential must be granted to it.
  uint32_t project_id = 0;
  /// The GCS buckets the operator bound to the project (store::Project::gcs_buckets). GCS is reached as
  /// Sluice's one service account, so this list, not the customer's IAM, is what ties a bucket to a tenant:
  /// a GCS location whose bucket is not in it is refused (CheckGcsBinding).
  std::vector<std::string> gcs_buckets;
};

/// The project a store is opened for, as the callers above the layer know it: what a named static credential
/// and a bound GCS bucket are checked against.
struct Tenant {
  uint32_t project_id = 0;
  std::vector<std::string> gcs_buckets;
};

struct AccessContext {
  /// Sluice's own AWS identity; signs AssumeRole. Required for S3.
  std::shared_ptr<aws::CredentialsProvider> aws_identity;
  /// Sluice's own Google service account. Required for GCS.
  std::shared_ptr<gcp::TokenProvider> google_identity;
  /// Null = a libcurl transport.
  std::shared_ptr<http::HttpTransport> transport;
  /// The S3-compatible endpoints a tenant may name (`sluice serve --allow-endpoint`, AWS_ENDPOINT_URL[_S3]).
  aws::EndpointPolicy s3_endpoints;
  /// The GCS endpoints a tenant may name as gcs_endpoint (MakeGcsEndpointPolicy).
  aws::EndpointPolicy gcs_endpoints;
  /// Confines a local path under the operator's root and returns the directory (kInvalidArgument outside
  /// it, or when local destinations are off). Null = local destinations are off.
  std::function<Result<std::string>(const std::string& path)> confine_local;
  /// Retries of one storage / STS call (the executors' single retry layer).
  aws::RetryPolicy retry;
  /// STS calls' own retry policy; nullopt = `retry`.
  std::optional<aws::RetryPolicy> sts_retry;
  /// S3: over https the payload is sent UNSIGNED with a CRC32C that S3 verifies; over plain http it is signed.
  bool unsigned_payload_over_https = true;
  uint64_t s3_part_size = 8ull << 20;
  int s3_max_parts_in_flight = 2;
  int s3_upload_threads = 4;
  /// GCS resumable-upload chunk (a 256 KiB multiple).
  uint64_t gcs_chunk_size = 8ull << 20;
  /// Where STORAGE_EMULATOR_HOST is read from (tests pass their own).
  gcp::EnvGetter env = gcp::SystemEnv();
  /// The Azure blob endpoint origins a tenant's azure_endpoint may name (`sluice serve --allow-azure-endpoint`;
  /// MakeAzureEndpointPolicy).
  aws::EndpointPolicy azure_endpoints;
  /// Where AZURE_AUTHORITY_HOST is read from (the operator's Entra ID authority; tests pass their own).
  azure::EnvGetter azure_env = azure::SystemEnv();
  /// Azure block size of a writer.
  uint64_t azure_block_size = 8ull << 20;
  /// The operator's named static credentials (S3Location::credential); null = none can be used here.
  std::shared_ptr<const StaticCredentialRegistry> static_credentials;
};

/// The opened store and, for S3, the role behind it (so a failed AssumeRole can be told apart from a denied
/// call, and the confused-deputy probe can run).
struct OpenedStore {
  /// S3 only: the assumed role, or the named static credential's keys (then `sts` is null).
  std::shared_ptr<aws::CredentialsProvider> role;
  std::shared_ptr<objstore::ObjectStore> store;
  std::shared_ptr<aws::StsClient> sts;  // S3 only
  std::string role_arn;
  std::string session_name;
  /// GCS only: the identity the customer grants roles to (its Email() names it in advice).
  std::shared_ptr<gcp::TokenProvider> google_identity;
};

/// The tenant binding of a location (docs/gcs.md#binding). S3 is bound by the external ID the customer's role
/// trusts; GCS only by the operator's list: every project's GCS request carries the same Google token, so
/// without it a tenant could name another customer's bucket (the confused deputy). OK for S3, local, and a
/// GCS bucket in `bound_buckets`; otherwise kAccessDenied with the same message whether the bucket exists,
/// is bound to another project or to none, so the answer reveals nothing about other projects.
Status CheckGcsBinding(const Location& location, const std::vector<std::string>& bound_buckets);

/// The provider_code of CheckGcsBinding's refusal, so callers give the binding advice, not a role to grant.
inline constexpr std::string_view kUnboundGcsBucket = "SluiceUnboundGcsBucket";

/// kInvalidArgument for bad or disallowed settings, kAccessDenied for a GCS bucket not bound to the project
/// (CheckGcsBinding), kUnauthenticated when Sluice has no identity for the provider.
Result<OpenedStore> Open(const Location& location, const Grant& grant, const AccessContext& context);

/// The endpoints a tenant's gcs_endpoint may name: `allowed` (--allow-endpoint, the same operator list as
/// for S3) plus STORAGE_EMULATOR_HOST from `env` ("host:port" is taken as http://host:port). AWS_ENDPOINT_URL
/// is not included: Sluice's Google token must not go to the operator's S3 endpoint.
Result<aws::EndpointPolicy> MakeGcsEndpointPolicy(const std::vector<std::string>& allowed,
                                                  const gcp::EnvGetter& env);

/// The Azure blob endpoints a tenant's azure_endpoint may name: exactly `allowed` (`sluice serve
/// --allow-azure-endpoint`). No environment variable adds to it: Sluice sends a customer's bearer token to the
/// endpoint, so only an origin the operator named on the command line is trusted.
Result<aws::EndpointPolicy> MakeAzureEndpointPolicy(const std::vector<std::string>& allowed);

/// The gcp retry policy with the same schedule as `retry`.
gcp::RetryPolicy ToGcpRetry(const aws::RetryPolicy& retry);

}  // namespace sluice::storage_access
