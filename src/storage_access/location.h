// Where a customer's data lives: one typed description per provider, validated in one place.
//
// The API keeps Mixpanel's flat parameters (s3_bucket, gcs_bucket, local_path, …) and the stored records keep
// them too; pipelines (pipeline/destination.h) and Cloud Import (cloudimport/source.h) turn them into a
// Location here, and everything that reaches a bucket — opening it (open.h), checking access
// (destination_check.h), describing it — works on the Location.
//
//   S3Location s3{.bucket = "acme-events", .region = "eu-west-1",
//                 .role_arn = "arn:aws:iam::111122223333:role/sluice-export", .prefix = "mixpanel"};
//   GcsLocation gcs{.bucket = "acme-events", .prefix = "mixpanel"};
//   Describe(Location{gcs});                       // "gs://acme-events/mixpanel"
//   SLUICE_TRY(ValidateS3BucketName(name, "connector_properties.s3_bucket"));
//
// Providers: S3 (and S3-compatible endpoints the operator allowed), GCS (JSON API), a local directory under
// the operator's export root. Azure Blob Storage (src/objstore/azure, issue 14) joins as AzureLocation: a
// new alternative of Location, its validation here, its branch in Open and its rules in the access check.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "common/result.h"
#include "common/secret.h"
#include "objstore/object_store.h"
#include "store/store.h"

namespace sluice::storage_access {

enum class Provider { kS3, kGcs, kLocal, kAzure };
/// "s3" | "gcs" | "local" | "azure"
std::string_view ToString(Provider p);

/// A bucket reached by assuming the customer's IAM role with the project's external ID.
struct S3Location {
  std::string bucket;
  std::string region;
  std::string role_arn;
  std::string prefix;  // "" = bucket root
  /// S3-compatible endpoint ("" = AWS); a tenant's value must pass the operator's aws::EndpointPolicy.
  std::string endpoint;
  objstore::Encryption encryption;
  /// STS endpoint: an operator setting only (the CLI's --sts-endpoint), never derived from `endpoint`.
  std::string sts_endpoint;
  /// A named static credential (static_credentials.h) used instead of `role_arn` (then empty): the store is
  /// signed with its keys and STS is not called.
  std::string credential;
};

/// A bucket on which the customer granted roles to Sluice's own Google service account.
struct GcsLocation {
  std::string bucket;
  std::string prefix;  // "" = bucket root
  /// The bucket's location as the customer states it (informational: GCS routes by bucket name).
  std::string region;
  /// GCS JSON-API endpoint ("" = STORAGE_EMULATOR_HOST or https://storage.googleapis.com); a tenant's value
  /// must be one the operator allowed.
  std::string endpoint;
  /// CMEK for created objects: projects/P/locations/L/keyRings/R/cryptoKeys/K ("" = Google-managed keys).
  std::string kms_key_name;
};

/// A directory under the operator's --local-export-root (pipelines only).
struct LocalLocation {
  std::string path;
};

/// A container of a customer's Azure storage account, reached as the customer's own Entra ID service principal
/// (Mixpanel's storage_account, container_name, prefix, client_id, client_secret, tenant_id), to which the
/// customer assigned Storage Blob Data Contributor on the container.
struct AzureLocation {
  std::string storage_account;
  std::string container;
  std::string prefix;  // "" = container root
  std::string tenant_id;
  std::string client_id;
  Secret client_secret;
  /// Blob endpoint origin ("" = https://ACCOUNT.blob.core.windows.net); a tenant's value must be one the
  /// operator allowed (`serve --allow-azure-endpoint`), and is addressed path-style: ORIGIN/ACCOUNT/CONTAINER
  /// (Azurite and other emulators).
  std::string endpoint;
  /// Entra ID authority: an operator setting only ("" = AZURE_AUTHORITY_HOST or the public cloud's), never a
  /// tenant's.
  std::string authority_host;
};

using Location = std::variant<S3Location, GcsLocation, LocalLocation, AzureLocation>;

Provider ProviderOf(const Location& location);

/// "s3://bucket/prefix (region)", "gs://bucket/prefix", "local:path" or
/// "https://account.blob.core.windows.net/container/prefix".
std::string Describe(const Location& location);

/// The external ID Sluice presents when it assumes a customer's role for `project`: its `external_id`, else
/// its token (SPEC §5). The only place that knows the rule.
std::string EffectiveExternalId(const store::Project& project);

// ---- validation --------------------------------------------------------------------------------------------
// Each check returns kInvalidArgument whose message starts with `field` as the caller's API names it
// ("s3_bucket", "connector_properties.s3_bucket") and says what a valid value looks like.

/// S3's bucket naming rules: 3-63 lower-case letters, digits, '.' and '-', starting and ending with a letter
/// or digit. (Pipelines enforced the ends, imports did not; the stricter rule is S3's own and applies to both.)
Status ValidateS3BucketName(std::string_view bucket, std::string_view field);
/// GCS's: 3-63 characters (222 with dots) of lower-case letters, digits, '-', '_' and '.', starting and
/// ending with a letter or digit.
Status ValidateGcsBucketName(std::string_view bucket, std::string_view field);
/// An AWS region name such as eu-west-1.
Status ValidateAwsRegion(std::string_view region, std::string_view field);
/// A GCS location such as US, EU, europe-west1 or NAM4 (any case).
Status ValidateGcsRegion(std::string_view region, std::string_view field);
/// arn:<partition>:iam::<12-digit account>:role/<optional path/>name. (Imports only looked for ":iam::" and
/// ":role/"; the structural rule pipelines used is the correct one and applies to both.)
Status ValidateRoleArn(std::string_view arn, std::string_view field);
/// A destination prefix (a "directory" the layout writes under, already stripped of leading/trailing '/'):
/// at most 512 bytes, no control characters or backslashes, no empty, '.' or '..' parts.
Status ValidateDestinationPrefix(std::string_view prefix, std::string_view field);
/// A source prefix (a raw key prefix: "exports/2024-" matches part of a name): at most 1024 bytes (the
/// longest S3 key) and no control characters.
Status ValidateSourcePrefix(std::string_view prefix, std::string_view field);
/// An endpoint URL: http(s)://host[:port] only (aws::NormalizeEndpoint). Whether the operator allows it is
/// decided when the store is opened.
Status ValidateEndpointUrl(std::string_view endpoint, std::string_view field);
/// A KMS key id or ARN for SSE-KMS: at most 2048 bytes without spaces or control characters.
Status ValidateAwsKmsKeyId(std::string_view key, std::string_view field);
/// A Cloud KMS key name: projects/P/locations/L/keyRings/R/cryptoKeys/K.
Status ValidateGcsKmsKeyName(std::string_view name, std::string_view field);

/// Azure storage account names: 3-24 lower-case letters and digits.
Status ValidateAzureStorageAccount(std::string_view account, std::string_view field);
/// Azure container names: 3-63 lower-case letters, digits and single hyphens, starting and ending with a letter
/// or digit.
Status ValidateAzureContainerName(std::string_view container, std::string_view field);

/// An Azure source prefix (a raw blob-name prefix, as ValidateSourcePrefix) that also has no backslash and no '.'
/// or '..' part: Azure and HTTP clients resolve such parts in a blob URL, so a listed name could be read from
/// another path than the one listed.
Status ValidateAzureSourcePrefix(std::string_view prefix, std::string_view field);

/// The blob URL of an Azure location's container: "https://ACCOUNT.blob.core.windows.net/CONTAINER", or
/// "ORIGIN/ACCOUNT/CONTAINER" for an operator-allowed endpoint.
std::string AzureContainerUrl(const AzureLocation& location);

/// "a/b/" and "/a/b" → "a/b": the layout adds the separators itself.
std::string NormalizeDestinationPrefix(std::string_view prefix);

/// The whole location, as pipelines and imports validate it before they store it (`field_prefix` prefixes the
/// parameter names, e.g. "connector_properties."). Source locations take a raw key prefix.
enum class Role { kDestination, kSource };
/// `bad_field` (optional) receives the full name of the parameter that was refused.
Status Validate(const Location& location, Role role, std::string_view field_prefix = "",
                std::string* bad_field = nullptr);

}  // namespace sluice::storage_access
