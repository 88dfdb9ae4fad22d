// Destination check (SPEC §5): before a pipeline is accepted, prove that Sluice can reach the customer's
// bucket the way it will during exports, and say in plain words what to fix when it cannot. One check for
// every provider: the object steps (put, get, list, delete) are shared, and what each step needs and how a
// denial is explained are data per provider (the rules tables in destination_check.cc).
//
//   DestinationSpec spec{.bucket = "acme-events", .region = "eu-west-1",
//                        .role_arn = "arn:aws:iam::111122223333:role/sluice-export", .external_id = token,
//                        .prefix = "sluice", .encryption = {Encryption::Mode::kKms, key_arn}};
//   DestinationCheckResult r = CheckDestination(spec, {.base_credentials = own, .transport = transport});
//   if (!r.ok()) std::cerr << r.ToText();      // or r.ToJson() for the API
//
// Steps, each reported with name, ok, message:
//   assume-role   sts:AssumeRole with the external ID
//   external-id   sts:AssumeRole with a random WRONG external ID must be refused (confused-deputy protection)
//   put           PutObject <prefix>/.sluice-probe-<random> with the chosen encryption
//   get           GetObject, bytes compared
//   encryption    HeadObject reports the requested x-amz-server-side-encryption (and KMS key)
//   list          ListObjectsV2 on the probe's prefix finds it
//   delete        DeleteObject removes it
// A denied step names the IAM action, the resource ARN and the policy statement to add; rejected credentials
// or a skewed clock are reported as such (aws::FixAreaOf), and a server with no AWS credentials at all says
// so.
//
// GCS (CheckDestination(Location, CheckContext) with a GcsLocation), Sluice's own service account:
//   identity      an access token for Sluice's service account (key file or metadata server)
//   put           objects.insert of the probe (storage.objects.create; with kmsKeyName when CMEK is asked)
//   get           objects.get alt=media, bytes compared (storage.objects.get)
//   encryption    the stored object reports the requested kmsKeyName (CMEK only)
//   list          objects.list on the probe's prefix finds it (storage.objects.list)
//   delete        objects.delete removes it (storage.objects.delete)
// A denied step names the permission, the role that grants it and the account to grant it to: "grant
// Storage Object Creator (roles/storage.objectCreator) to sluice@p.iam.gserviceaccount.com on gs://bucket",
// with the gcloud command as the statement.
//
// Azure (an AzureLocation), the customer's own Entra ID service principal:
//   identity      a token for the principal (a wrong client_secret is named here), then the object steps; a
//                 denied step says "assign Storage Blob Data Contributor to the service principal CLIENT_ID on
//                 container C of account A" with the `az role assignment create` command as the statement.
//   With CheckContext::purpose = Purpose::kRead (an import's check, `destination check --purpose import`):
//   identity, list (the prefix) and get (one byte of the first blob, or a missing probe name: "not found" proves
//   reading is allowed), nothing written; a denial names Storage Blob Data Reader instead.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "aws/credentials.h"
#include "aws/retry.h"
#include "azure/credentials.h"
#include "gcp/credentials.h"
#include "http/transport.h"
#include "objstore/object_store.h"
#include "storage_access/location.h"
#include "storage_access/open.h"

namespace sluice::storage_access {

using objstore::Encryption;

/// Where a pipeline will write on S3 (the customer's inputs, SPEC §4 s3_* parameters): the CLI's and the
/// older callers' form of an S3Location plus the external ID.
struct DestinationSpec {
  std::string bucket;
  std::string region;
  std::string role_arn;
  std::string external_id;
  std::string prefix;
  Encryption encryption;
  /// S3-compatible endpoint ("" = AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL). Callers that take it from
  /// a tenant check it against aws::EndpointPolicy first.
  std::string endpoint;
  /// STS endpoint, an operator setting only ("" = AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL / the regional
  /// STS). Never derived from `endpoint`: AssumeRole is signed with Sluice's own long-lived identity.
  std::string sts_endpoint;
};

/// The S3Location a DestinationSpec describes (its external ID aside).
S3Location ToLocation(const DestinationSpec& spec);

struct DestinationCheckOptions {
  /// Sluice's own identity (signs the AssumeRole calls). Required.
  std::shared_ptr<aws::CredentialsProvider> base_credentials;
  /// Null = a libcurl transport.
  std::shared_ptr<http::HttpTransport> transport;
  /// Fewer, shorter retries than exports: a person is waiting for the answer.
  aws::RetryPolicy retry = [] {
    aws::RetryPolicy p;
    p.max_attempts = 3;
    p.total_timeout = std::chrono::seconds(60);
    return p;
  }();
};

struct CheckStep {
  std::string name;  // "assume-role", "external-id", "identity", "put", "get", "encryption", "list", "delete"
  bool ok = false;
  bool skipped = false;  // not run because an earlier step failed (ok is false)
  /// What happened, and when not ok, what to change.
  std::string message;
  /// For a denied call: the IAM action or GCS permission ("s3:PutObject", "storage.objects.create"), the
  /// resource (ARN or gs:// URL) and what grants it (the JSON policy statement, or the gcloud command that
  /// binds the role). Empty otherwise.
  std::string action;
  std::string resource;
  std::string policy_statement;
  /// The error class when the step failed on an error ("access_denied", …), else empty.
  std::string error_code;
};

struct DestinationCheckResult {
  std::string destination;  // "s3://bucket/prefix (region) via role arn", "gs://bucket/prefix as <email>"
  std::string probe_key;    // full key of the probe object
  std::vector<CheckStep> steps;

  /// True when every step passed.
  bool ok() const;
  /// Human-readable report, one line per step plus the fixes.
  std::string ToText() const;
  /// {"ok":…, "destination":…, "probe_key":…, "steps":[{"name","ok","skipped","message","action","resource",
  ///   "policy_statement","error_code"}]}
  std::string ToJson() const;
};

/// Runs all steps (never throws; every failure is a failed step). Later steps that cannot run are reported as
/// skipped; list and delete still run after a failed put, so one pass names every missing permission.
DestinationCheckResult CheckDestination(const DestinationSpec& spec, const DestinationCheckOptions& options);

/// What the check needs besides the location.
struct CheckContext {
  /// S3: the project's effective external ID and Sluice's own AWS identity.
  std::string external_id;
  std::shared_ptr<aws::CredentialsProvider> aws_identity;
  /// GCS: Sluice's own service account.
  std::shared_ptr<gcp::TokenProvider> google_identity;
  /// GCS: the buckets bound to the project (Grant::gcs_buckets); the check refuses any other bucket before
  /// sending anything.
  std::vector<std::string> gcs_buckets;
  /// Null = a libcurl transport.
  std::shared_ptr<http::HttpTransport> transport;
  /// Fewer, shorter retries than exports: a person is waiting for the answer.
  aws::RetryPolicy retry = DestinationCheckOptions{}.retry;
  /// Where STORAGE_EMULATOR_HOST is read from.
  gcp::EnvGetter env = gcp::SystemEnv();
  /// Where AZURE_AUTHORITY_HOST is read from (Azure).
  azure::EnvGetter azure_env = azure::SystemEnv();
  /// kWrite: a pipeline's check (put, get, list, delete of a probe). kRead: an import's read-only check
  /// (identity, list, get; Azure only so far).
  Purpose purpose = Purpose::kWrite;
};

/// The check of any bucket location (S3 or GCS; a local directory is checked by the pipeline's factory,
/// which owns the export root). The caller checks a tenant's endpoint against the operator's allow-list
/// first.
DestinationCheckResult CheckDestination(const Location& location, const CheckContext& context);

/// Azure's built-in data roles on a container: a pipeline writes (Contributor), an import only reads (Reader).
inline constexpr std::string_view kAzureWriterRole = "Storage Blob Data Contributor";
inline constexpr std::string_view kAzureReaderRole = "Storage Blob Data Reader";

/// The Azure CLI command that assigns Storage Blob Data Contributor to the location's service principal on its
/// container.
std::string AzRoleAssignmentCommand(const AzureLocation& location);
/// The same for `role` (kAzureWriterRole or kAzureReaderRole).
std::string AzRoleAssignmentCommand(const AzureLocation& location, std::string_view role);

/// What to check when Microsoft Entra ID refuses the location's service principal (a wrong or expired secret, a
/// wrong client or tenant id), naming the principal and the three fields; never the secret.
std::string AzureCredentialAdvice(const AzureLocation& location);

/// The gcloud command that binds `role_id` (e.g. "roles/storage.objectCreator") to `email` on `bucket`.
std::string GcloudBindingCommand(std::string_view bucket, std::string_view email, std::string_view role_id);

/// The probe key for `prefix` and a random suffix: "<prefix>/.sluice-probe-<suffix>" (no leading '/' when the
/// prefix is empty).
std::string ProbeKey(std::string_view prefix, std::string_view suffix);

/// The JSON statement granting `action` on `resource`, e.g.
/// {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::bucket/*"}
std::string AllowStatement(std::string_view action, std::string_view resource);

}  // namespace sluice::storage_access
