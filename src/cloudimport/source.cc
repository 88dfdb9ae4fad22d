#include "cloudimport/source.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "aws/errors.h"
#include "aws/policy.h"
#include "aws/sts.h"
#include "common/crypto.h"
#include "objstore/gcs/gcs_object_store.h"
#include "storage_access/destination_check.h"
#include "storage_access/open.h"

namespace sluice::cloudimport {
namespace {

std::string BucketArn(const ConnectorSpec& spec) {
  return fmt::format("arn:{}:s3:::{}", aws::PartitionOfRegion(spec.s3_region), spec.s3_bucket);
}
std::string ObjectsArn(const ConnectorSpec& spec) { return BucketArn(spec) + "/*"; }

Status Refuse(ValidationIssue* issue, std::string code, std::string field, const Error& cause,
              std::string message) {
  if (issue) *issue = {std::move(code), std::move(field), message};
  Error e = cause;
  e.message = std::move(message);
  return e;
}

std::string GoogleAccount(const Source& source) {
  std::string email = source.google_identity ? source.google_identity->Email() : "";
  return email.empty() ? "Sluice's service account" : email;
}

}  // namespace

bool IsMissingBucket(const Error& e) {
  // S3 says NoSuchBucket; GCS answers 404 notFound "The specified bucket does not exist." (objects: "No such
  // object: …"); Azure ContainerNotFound (blobs: BlobNotFound).
  return e.code == ErrorCode::kNotFound &&
         (e.provider_code == "NoSuchBucket" || e.provider_code == "ContainerNotFound" ||
          e.message.find("bucket does not exist") != std::string::npos);
}

std::string ExternalIdOf(const store::Project& project) { return storage_access::EffectiveExternalId(project); }

storage_access::Location ToLocation(const ConnectorSpec& spec) {
  if (spec.is_azure()) {
    return storage_access::AzureLocation{.storage_account = spec.azure_storage_account,
                                         .container = spec.azure_container,
                                         .prefix = spec.azure_prefix,
                                         .tenant_id = spec.azure_tenant_id,
                                         .client_id = spec.azure_client_id,
                                         .client_secret = spec.azure_client_secret,
                                         .endpoint = spec.azure_endpoint,
                                         .authority_host = ""};  // the operator's AZURE_AUTHORITY_HOST
  }
  if (spec.is_gcs()) {
    return storage_access::GcsLocation{
        .bucket = spec.gcs_bucket, .prefix = spec.gcs_prefix, .endpoint = spec.gcs_endpoint};
  }
  return storage_access::S3Location{.bucket = spec.s3_bucket,
                                    .region = spec.s3_region,
                                    .role_arn = spec.s3_role,
                                    .prefix = spec.s3_prefix,
                                    .endpoint = spec.s3_endpoint,
                                    .credential = spec.s3_credential};
}

Result<Source> OpenSource(const ConnectorSpec& spec, const store::Project& project, const SourceContext& ctx) {
  if (!spec.is_gcs() && !spec.is_azure() && spec.s3_credential.empty() && !ctx.own_credentials) {
    return Unavailable(
        "Sluice has no AWS identity of its own to assume the import role with: configure "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or web identity for the server");
  }
  storage_access::AccessContext access;
  access.aws_identity = ctx.own_credentials;
  access.google_identity = ctx.google_identity;
  access.transport = ctx.transport;
  access.static_credentials = ctx.static_credentials;
  // The tenant's endpoint must be one the operator allowed, checked before anything is sent anywhere.
  if (ctx.endpoints) {
    access.s3_endpoints = *ctx.endpoints;
  } else {
    SLUICE_ASSIGN_OR_RETURN(access.s3_endpoints, aws::EndpointPolicy::Create({}, aws::SystemEnv()));
  }
  if (ctx.gcs_endpoints) {
    access.gcs_endpoints = *ctx.gcs_endpoints;
  } else {
    SLUICE_ASSIGN_OR_RETURN(access.gcs_endpoints, storage_access::MakeGcsEndpointPolicy({}, gcp::SystemEnv()));
  }
  if (ctx.azure_endpoints) {
    access.azure_endpoints = *ctx.azure_endpoints;
  } else {
    SLUICE_ASSIGN_OR_RETURN(access.azure_endpoints, storage_access::MakeAzureEndpointPolicy({}));
  }
  access.retry = ctx.retry;
  aws::RetryPolicy sts_retry = ctx.retry;
  sts_retry.attempt_timeout = std::chrono::seconds(60);
  sts_retry.total_timeout = std::chrono::minutes(5);
  access.sts_retry = sts_retry;
  SLUICE_ASSIGN_OR_RETURN(
      storage_access::OpenedStore opened,
      storage_access::Open(ToLocation(spec),
                           {.external_id = ExternalIdOf(project),
                            .session_name = aws::MakeSessionName(fmt::format("p{}", project.id), "import-" + spec.id),
                            .purpose = storage_access::Purpose::kRead,
                            .field_prefix = "connector_properties.",
                            .project_id = project.id,
                            .gcs_buckets = project.gcs_buckets},
                           access));
  return Source{.role = std::move(opened.role),
                .store = std::move(opened.store),
                .sts = std::move(opened.sts),
                .role_arn = std::move(opened.role_arn),
                .session_name = std::move(opened.session_name),
                .google_identity = std::move(opened.google_identity)};
}

bool IsPermanentSourceError(const Error& e) {
  switch (e.code) {
    case ErrorCode::kAccessDenied:
    case ErrorCode::kUnauthenticated:
    case ErrorCode::kInvalidArgument:
      return true;
    case ErrorCode::kNotFound:
      return IsMissingBucket(e);
    default:
      return false;
  }
}

namespace {

/// The field naming who Sluice reads an S3 source as: the role, or the operator's static key.
std::string S3IdentityField(const ConnectorSpec& spec) {
  return spec.s3_credential.empty() ? "connector_properties.s3_role" : "connector_properties.s3_credential";
}

}  // namespace

std::string DescribeSourceError(const Error& e, const ConnectorSpec& spec, SourceOperation operation,
                                std::string_view key) {
  if (spec.is_azure()) {
    const auto location = std::get<storage_access::AzureLocation>(ToLocation(spec));
    const std::string container = storage_access::AzureContainerUrl(location);
    const std::string resource = operation == SourceOperation::kList ? container : fmt::format("{}/{}", container, key);
    const std::string_view what = operation == SourceOperation::kList ? "listing" : "reading";
    if (IsMissingBucket(e)) {
      return fmt::format(
          "container {} of storage account {} does not exist: check connector_properties.container_name and "
          "storage_account. ({})",
          spec.azure_container, spec.azure_storage_account, e.ToString());
    }
    if (e.code == ErrorCode::kUnauthenticated) {
      return fmt::format("{} {}: {}. ({})", what, resource, storage_access::AzureCredentialAdvice(location),
                         e.ToString());
    }
    if (e.code == ErrorCode::kAccessDenied) {
      return fmt::format(
          "{} {} was denied: the import needs {} for the service principal {} on container {} of storage account "
          "{} (`{}`). ({})",
          what, resource, storage_access::kAzureReaderRole, spec.azure_client_id, spec.azure_container,
          spec.azure_storage_account,
          storage_access::AzRoleAssignmentCommand(location, storage_access::kAzureReaderRole), e.ToString());
    }
    return fmt::format("{} {} failed: {}", what, resource, e.ToString());
  }
  if (spec.is_gcs()) {
    const std::string_view permission =
        operation == SourceOperation::kList ? "storage.objects.list" : "storage.objects.get";
    const std::string resource = operation == SourceOperation::kList
                                     ? fmt::format("gs://{}", spec.gcs_bucket)
                                     : fmt::format("gs://{}/{}", spec.gcs_bucket, key);
    if (IsMissingBucket(e)) {
      return fmt::format("bucket gs://{} does not exist: check connector_properties.gcs_bucket. ({})",
                         spec.gcs_bucket, e.ToString());
    }
    if (e.code == ErrorCode::kAccessDenied) {
      // The store's error already says "grant <role> to <account> on gs://bucket"; say what the import needs.
      return fmt::format(
          "{} on {} was denied: the import needs Storage Object Viewer (roles/storage.objectViewer) for Sluice's "
          "service account on gs://{} (`sluice gcp roles --bucket {}` prints the binding). ({})",
          permission, resource, spec.gcs_bucket, spec.gcs_bucket, e.ToString());
    }
    return fmt::format("{} on {} failed: {}", permission, resource, e.ToString());
  }
  const std::string_view action = operation == SourceOperation::kList ? "s3:ListBucket" : "s3:GetObject";
  const std::string resource =
      operation == SourceOperation::kList ? BucketArn(spec) : fmt::format("{}/{}", BucketArn(spec), key);
  if (e.code == ErrorCode::kNotFound && e.provider_code == "NoSuchBucket") {
    return fmt::format(
        "bucket {} does not exist (region {}): check connector_properties.s3_bucket and s3_region. "
        "({})",
        spec.s3_bucket, spec.s3_region, e.ToString());
  }
  if (std::string problem = aws::CredentialsProblem(e); !problem.empty()) {
    // A rejected signature, key or clock: not something a policy statement fixes (aws::FixAreaOf).
    if (!spec.s3_credential.empty()) {
      return fmt::format(
          "{} on {} failed: the store rejected the static key '{}' (connector_properties.s3_credential): the "
          "operator must check the key registered under that name, or the server's clock. ({})",
          action, resource, spec.s3_credential, e.ToString());
    }
    return fmt::format("{} on {} failed: {}. ({})", action, resource, problem, e.ToString());
  }
  if (e.code == ErrorCode::kAccessDenied) {
    std::string grant = operation == SourceOperation::kList ? BucketArn(spec) : ObjectsArn(spec);
    if (!spec.s3_credential.empty()) {
      return fmt::format(
          "{} on {} was denied for the static key '{}'. The key's policy on the store must allow "
          "s3:GetObject and s3:ListBucket: {}. ({})",
          action, resource, spec.s3_credential, storage_access::AllowStatement(action, grant), e.ToString());
    }
    return fmt::format(
        "{} on {} was denied for role {}. The import role needs s3:GetObject and s3:ListBucket; add "
        "to its permission policy: {} (`sluice aws policies --import` prints the whole policy). ({})",
        action, resource, spec.s3_role, storage_access::AllowStatement(action, grant), e.ToString());
  }
  return fmt::format("{} on {} failed: {}", action, resource, e.ToString());
}

Status CheckExternalIdEnforced(const Source& source, const ConnectorSpec& spec,
                               const std::string& external_id, ValidationIssue* issue) {
  if (!source.sts) return OkStatus();
  auto enforced = aws::RoleRequiresExternalId(*source.sts, source.role_arn, source.session_name);
  if (!enforced.ok()) {
    return Refuse(issue, "", "", enforced.error(),
                  fmt::format("could not verify that role {} refuses a wrong external ID: {}", spec.s3_role,
                              enforced.error().ToString()));
  }
  if (*enforced) return OkStatus();
  std::string principal = "<Sluice's principal ARN>";
  if (auto id = source.sts->GetCallerIdentity(); id.ok()) principal = aws::PrincipalFromCallerArn(id->arn);
  return Refuse(
      issue, "invalid_permissions_s3", "connector_properties.s3_role",
      Error(ErrorCode::kAccessDenied, "external ID not enforced"),
      fmt::format("the trust policy of role {} does not require sts:ExternalId, so any Sluice project "
                  "that learns the role ARN could import this bucket (confused deputy). Add the "
                  "condition StringEquals sts:ExternalId = {} to its trust policy: {} (`sluice aws "
                  "policies --import --external-id {}` prints it)",
                  spec.s3_role, external_id, aws::ExternalIdTrustStatement(principal, external_id),
                  external_id));
}

namespace {

/// The access checks read one object to prove the read permission: the first under `prefix` that is not a
/// "folder" placeholder, among at most this many entries. A prefix may hold millions of placeholders (or a
/// slow endpoint may page on and on); past the bound the check reads a key that does not exist instead, which
/// proves the permission as well.
constexpr size_t kProbeEntries = 2000;

Status FirstObjectToProbe(objstore::ObjectStore& store, std::string_view prefix,
                          std::optional<objstore::ObjectInfo>& first) {
  size_t seen = 0;
  return store.ListEach(prefix, {}, [&](const objstore::ObjectInfo& o) {
    if (o.key.ends_with('/')) return ++seen < kProbeEntries;  // a "folder" placeholder
    first = o;
    return false;
  });
}

/// gcsImport: Sluice's identity, then list and read as the S3 check does.
Status CheckGcsSourceAccess(const Source& source, const ConnectorSpec& spec, ValidationIssue* issue) {
  const std::string account = GoogleAccount(source);
  if (source.google_identity) {
    if (auto token = source.google_identity->Get(); !token.ok()) {
      spdlog::error("cloud import: no Google access token for {}: {}", source.google_identity->Name(),
                    token.error().ToString());
      return Refuse(
          issue, "", "", token.error(),
          fmt::format("Sluice could not get an access token for its Google service account ({}): this "
                      "is for the server's operator to fix (the server's log names the cause)",
                      account));
    }
  }
  auto refuse = [&](const Error& e, SourceOperation op, std::string_view key) {
    std::string message = DescribeSourceError(e, spec, op, key);
    if (IsMissingBucket(e)) {
      return Refuse(issue, "invalid_property", "connector_properties.gcs_bucket", e, std::move(message));
    }
    if (e.code == ErrorCode::kAccessDenied || e.code == ErrorCode::kUnauthenticated) {
      message += fmt::format(" Grant it to {}.", account);
      return Refuse(issue, "invalid_permissions_gcs", "connector_properties.gcs_bucket", e, std::move(message));
    }
    return Refuse(issue, "", "", e, std::move(message));
  };
  std::optional<objstore::ObjectInfo> first;
  Status listed = FirstObjectToProbe(*source.store, spec.gcs_prefix, first);
  if (!listed.ok()) return refuse(listed.error(), SourceOperation::kList, "");
  std::string key = first ? first->key : spec.gcs_prefix + ".sluice-access-check-" + RandomHex(64);
  Result<std::string> got = first && first->size > 0 ? source.store->Get(key, 0, 1) : source.store->Get(key);
  if (!got.ok() && !(got.error().code == ErrorCode::kNotFound && !first)) {
    return refuse(got.error(), SourceOperation::kRead, key);
  }
  return OkStatus();
}

/// azureImport: the principal's token (a list probe: the store fetches it on first use), then list and read as
/// the S3 check does; never writes (Storage Blob Data Reader suffices).
Status CheckAzureSourceAccess(const Source& source, const ConnectorSpec& spec, ValidationIssue* issue) {
  auto refuse = [&](const Error& e, SourceOperation op, std::string_view key) {
    std::string message = DescribeSourceError(e, spec, op, key);
    if (IsMissingBucket(e)) {
      return Refuse(issue, "invalid_property", "connector_properties.container_name", e, std::move(message));
    }
    if (e.code == ErrorCode::kUnauthenticated) {
      return Refuse(issue, "invalid_permissions_azure", "connector_properties.client_secret", e, std::move(message));
    }
    if (e.code == ErrorCode::kAccessDenied) {
      return Refuse(issue, "invalid_permissions_azure", "connector_properties.container_name", e, std::move(message));
    }
    return Refuse(issue, "", "", e, std::move(message));
  };
  std::optional<objstore::ObjectInfo> first;
  Status listed = FirstObjectToProbe(*source.store, spec.azure_prefix, first);
  if (!listed.ok()) return refuse(listed.error(), SourceOperation::kList, "");
  std::string key = first ? first->key : spec.azure_prefix + ".sluice-access-check-" + RandomHex(64);
  Result<std::string> got = first && first->size > 0 ? source.store->Get(key, 0, 1) : source.store->Get(key);
  if (!got.ok() && !(got.error().code == ErrorCode::kNotFound && !first)) {
    return refuse(got.error(), SourceOperation::kRead, key);
  }
  return OkStatus();
}

}  // namespace

Status CheckSourceAccess(const Source& source, const ConnectorSpec& spec, const std::string& external_id,
                         ValidationIssue* issue) {
  if (spec.is_azure()) return CheckAzureSourceAccess(source, spec, issue);
  if (spec.is_gcs()) return CheckGcsSourceAccess(source, spec, issue);
  // 1. The role.
  if (source.role) {
    auto creds = source.role->Get();
    if (!creds.ok()) {
      const Error& e = creds.error();
      std::string problem = aws::CredentialsProblem(e);
      std::string message =
          !problem.empty()
              ? fmt::format("Sluice could not assume role {}: {}. ({})", spec.s3_role, problem, e.ToString())
          : e.code == ErrorCode::kAccessDenied
              ? fmt::format(
                    "Sluice could not assume role {} with external ID {}: the role's trust policy must allow "
                    "sts:AssumeRole for Sluice's principal with Condition StringEquals sts:ExternalId = {} "
                    "(`sluice aws policies --import --external-id {}` prints it). ({})",
                    spec.s3_role, external_id, external_id, external_id, e.ToString())
              : fmt::format("Sluice could not assume role {}: {}", spec.s3_role, e.ToString());
      if (e.code == ErrorCode::kAccessDenied || e.code == ErrorCode::kUnauthenticated) {
        return Refuse(issue, "invalid_permissions_s3", "connector_properties.s3_role", e, std::move(message));
      }
      return Refuse(issue, "", "", e, std::move(message));
    }
  }
  // 2. Confused-deputy protection: the role must refuse a wrong external ID, as for pipelines.
  SLUICE_TRY(CheckExternalIdEnforced(source, spec, external_id, issue));
  // 3. s3:ListBucket on the prefix.
  std::optional<objstore::ObjectInfo> first;
  Status listed = FirstObjectToProbe(*source.store, spec.s3_prefix, first);
  if (!listed.ok()) {
    const Error& e = listed.error();
    std::string message = DescribeSourceError(e, spec, SourceOperation::kList);
    if (e.code == ErrorCode::kNotFound && e.provider_code == "NoSuchBucket") {
      return Refuse(issue, "invalid_property", "connector_properties.s3_bucket", e, std::move(message));
    }
    if (e.code == ErrorCode::kAccessDenied || e.code == ErrorCode::kUnauthenticated) {
      return Refuse(issue, "invalid_permissions_s3", S3IdentityField(spec), e, std::move(message));
    }
    return Refuse(issue, "", "", e, std::move(message));
  }
  // 4. s3:GetObject: one byte of the first object, or a key that does not exist (NoSuchKey proves the read is
  // allowed; without s3:GetObject S3 answers AccessDenied).
  std::string key = first ? first->key : spec.s3_prefix + ".sluice-access-check-" + RandomHex(64);
  Result<std::string> got = first && first->size > 0 ? source.store->Get(key, 0, 1) : source.store->Get(key);
  if (!got.ok() && !(got.error().code == ErrorCode::kNotFound && !first)) {
    const Error& e = got.error();
    std::string message = DescribeSourceError(e, spec, SourceOperation::kRead, key);
    if (e.code == ErrorCode::kAccessDenied || e.code == ErrorCode::kUnauthenticated) {
      return Refuse(issue, "invalid_permissions_s3", S3IdentityField(spec), e, std::move(message));
    }
    return Refuse(issue, "", "", e, std::move(message));
  }
  return OkStatus();
}

}  // namespace sluice::cloudimport
