#include "cloudimport/source.h"

#include <fmt/format.h>

#include "aws/errors.h"
#include "aws/policy.h"
#include "aws/sts.h"
#include "common/crypto.h"
#include "objstore/destination_check.h"
#include "objstore/s3/s3_object_store.h"

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

}  // namespace

std::string ExternalIdOf(const store::Project& project) {
  return project.external_id.empty() ? project.token : project.external_id;
}

Result<Source> OpenS3Source(const ConnectorSpec& spec, const store::Project& project,
                            const SourceContext& ctx) {
  if (!ctx.own_credentials) {
    return Unavailable(
        "Sluice has no AWS identity of its own to assume the import role with: configure "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or web identity for the server");
  }
  // The tenant's endpoint must be one the operator allowed, checked before anything is sent anywhere.
  if (ctx.endpoints) {
    SLUICE_TRY(ctx.endpoints->Check(spec.s3_endpoint, "connector_properties.s3_endpoint"));
  } else {
    SLUICE_ASSIGN_OR_RETURN(aws::EndpointPolicy from_env, aws::EndpointPolicy::Create({}, aws::SystemEnv()));
    SLUICE_TRY(from_env.Check(spec.s3_endpoint, "connector_properties.s3_endpoint"));
  }
  std::shared_ptr<http::HttpTransport> transport =
      ctx.transport ? ctx.transport : std::shared_ptr<http::HttpTransport>(http::MakeCurlTransport());
  aws::StsOptions sts_options;
  sts_options.region = spec.s3_region;
  sts_options.transport = transport;
  // No sts_options.endpoint: AssumeRole is signed with Sluice's own identity and never goes to s3_endpoint.
  sts_options.retry = ctx.retry;
  sts_options.retry.attempt_timeout = std::chrono::seconds(60);
  sts_options.retry.total_timeout = std::chrono::minutes(5);
  auto sts = std::make_shared<aws::StsClient>(sts_options, ctx.own_credentials);
  aws::AssumeRoleProvider::Options role_options;
  role_options.role_arn = spec.s3_role;
  role_options.session_name = aws::MakeSessionName(fmt::format("p{}", project.id), "import-" + spec.id);
  role_options.external_id = ExternalIdOf(project);
  auto role = std::make_shared<aws::AssumeRoleProvider>(sts, role_options);

  objstore::s3::S3StoreOptions options;
  options.bucket = spec.s3_bucket;
  options.region = spec.s3_region;
  options.endpoint = spec.s3_endpoint;
  options.retry = ctx.retry;
  options.upload_threads = 1;  // never writes
  options.max_parts_in_flight = 1;
  SLUICE_ASSIGN_OR_RETURN(auto store, objstore::s3::S3ObjectStore::Create(options, role, transport));
  return Source{.role = role,
                .store = std::shared_ptr<objstore::ObjectStore>(std::move(store)),
                .sts = sts,
                .role_arn = spec.s3_role,
                .session_name = role_options.session_name};
}

bool IsPermanentSourceError(const Error& e) {
  switch (e.code) {
    case ErrorCode::kAccessDenied:
    case ErrorCode::kUnauthenticated:
    case ErrorCode::kInvalidArgument:
      return true;
    case ErrorCode::kNotFound:
      return e.provider_code == "NoSuchBucket";
    default:
      return false;
  }
}

std::string DescribeSourceError(const Error& e, const ConnectorSpec& spec, std::string_view action,
                                std::string_view resource) {
  if (e.code == ErrorCode::kNotFound && e.provider_code == "NoSuchBucket") {
    return fmt::format(
        "bucket {} does not exist (region {}): check connector_properties.s3_bucket and s3_region. "
        "({})",
        spec.s3_bucket, spec.s3_region, e.ToString());
  }
  if (std::string problem = aws::CredentialsProblem(e); !problem.empty()) {
    // A rejected signature, key or clock: not something a policy statement fixes (aws::FixAreaOf).
    return fmt::format("{} on {} failed: {}. ({})", action, resource, problem, e.ToString());
  }
  if (e.code == ErrorCode::kAccessDenied) {
    std::string grant = action == "s3:ListBucket" ? BucketArn(spec) : ObjectsArn(spec);
    return fmt::format(
        "{} on {} was denied for role {}. The import role needs s3:GetObject and s3:ListBucket; add "
        "to its permission policy: {} (`sluice aws policies --import` prints the whole policy). ({})",
        action, resource, spec.s3_role, objstore::AllowStatement(action, grant), e.ToString());
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

Status CheckSourceAccess(const Source& source, const ConnectorSpec& spec, const std::string& external_id,
                         ValidationIssue* issue) {
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
  Status listed = source.store->ListEach(spec.s3_prefix, {}, [&](const objstore::ObjectInfo& o) {
    if (o.key.ends_with('/')) return true;  // a "folder" marker
    first = o;
    return false;
  });
  if (!listed.ok()) {
    const Error& e = listed.error();
    std::string message = DescribeSourceError(e, spec, "s3:ListBucket", BucketArn(spec));
    if (e.code == ErrorCode::kNotFound && e.provider_code == "NoSuchBucket") {
      return Refuse(issue, "invalid_property", "connector_properties.s3_bucket", e, std::move(message));
    }
    if (e.code == ErrorCode::kAccessDenied || e.code == ErrorCode::kUnauthenticated) {
      return Refuse(issue, "invalid_permissions_s3", "connector_properties.s3_role", e, std::move(message));
    }
    return Refuse(issue, "", "", e, std::move(message));
  }
  // 4. s3:GetObject: one byte of the first object, or a key that does not exist (NoSuchKey proves the read is
  // allowed; without s3:GetObject S3 answers AccessDenied).
  std::string key = first ? first->key : spec.s3_prefix + ".sluice-access-check-" + RandomHex(64);
  Result<std::string> got = first && first->size > 0 ? source.store->Get(key, 0, 1) : source.store->Get(key);
  if (!got.ok() && !(got.error().code == ErrorCode::kNotFound && !first)) {
    const Error& e = got.error();
    std::string message =
        DescribeSourceError(e, spec, "s3:GetObject", fmt::format("{}/{}", BucketArn(spec), key));
    if (e.code == ErrorCode::kAccessDenied || e.code == ErrorCode::kUnauthenticated) {
      return Refuse(issue, "invalid_permissions_s3", "connector_properties.s3_role", e, std::move(message));
    }
    return Refuse(issue, "", "", e, std::move(message));
  }
  return OkStatus();
}

}  // namespace sluice::cloudimport
