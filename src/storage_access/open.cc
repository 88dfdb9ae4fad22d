#include "storage_access/open.h"

#include <fmt/format.h>

#include <algorithm>

#include "objstore/azure/azure_blob_store.h"
#include "objstore/gcs/gcs_object_store.h"
#include "objstore/local/local_object_store.h"
#include "objstore/s3/s3_object_store.h"
#include "aws/providers.h"

namespace sluice::storage_access {
namespace {

Result<OpenedStore> OpenS3(const S3Location& l, const Grant& grant, const AccessContext& ctx,
                           std::shared_ptr<http::HttpTransport> transport) {
  SLUICE_TRY(ctx.s3_endpoints.Check(l.endpoint, grant.field_prefix + "s3_endpoint"));
  std::shared_ptr<aws::CredentialsProvider> role;
  std::shared_ptr<aws::StsClient> client;
  if (!l.credential.empty()) {
    // An S3-compatible store with HMAC keys (MinIO, Ceph, GCS's XML API): signed with the operator's named
    // keys, granted to this project; no role, no STS.
    const std::string field = grant.field_prefix + "s3_credential";
    if (!ctx.static_credentials) {
      return InvalidArgument(fmt::format("{}: this server has no named static credentials to use", field));
    }
    SLUICE_ASSIGN_OR_RETURN(StaticCredential c,
                            ctx.static_credentials->ResolveFor(l.credential, grant.project_id, field));
    role = std::make_shared<aws::StaticCredentialsProvider>(
        aws::Credentials{.access_key_id = c.access_key_id,
                         .secret_access_key = c.secret_access_key,
                         .session_token = Secret(),
                         .expiration = std::nullopt},
        "s3 credential " + c.name);
  } else if (!ctx.aws_identity) {
    return Error(ErrorCode::kUnauthenticated,
                 "Sluice has no AWS identity of its own to assume the customer's role with: set "
                 "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a web identity token for `sluice "
                 "serve`");
  } else {
    aws::StsOptions sts;
    sts.region = l.region.empty() ? "us-east-1" : l.region;
    sts.transport = transport;
    // STS is never the tenant's endpoint (AssumeRole is signed with Sluice's own identity): the regional one,
    // or the operator's AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL.
    sts.endpoint = l.sts_endpoint;
    sts.retry = ctx.sts_retry.value_or(ctx.retry);
    client = std::make_shared<aws::StsClient>(sts, ctx.aws_identity);
    aws::AssumeRoleProvider::Options ar;
    ar.role_arn = l.role_arn;
    ar.session_name = grant.session_name;
    ar.external_id = grant.external_id;
    role = std::make_shared<aws::AssumeRoleProvider>(client, ar);
  }

  objstore::s3::S3StoreOptions o;
  o.bucket = l.bucket;
  o.region = l.region;
  o.endpoint = l.endpoint;
  o.retry = ctx.retry;
  if (grant.purpose == Purpose::kWrite) {
    o.prefix = l.prefix;
    o.encryption = l.encryption;
    o.part_size = ctx.s3_part_size;
    o.max_parts_in_flight = ctx.s3_max_parts_in_flight;
    o.upload_threads = ctx.s3_upload_threads;
    const bool plain_http = l.endpoint.starts_with("http://");
    o.payload_signing = ctx.unsigned_payload_over_https && !plain_http
                            ? objstore::s3::PayloadSigning::kUnsignedWithCrc32c
                            : objstore::s3::PayloadSigning::kSigned;
  } else {
    o.upload_threads = 1;  // never writes
    o.max_parts_in_flight = 1;
  }
  SLUICE_ASSIGN_OR_RETURN(auto s3, objstore::s3::S3ObjectStore::Create(o, role, transport));
  return OpenedStore{.role = role,
                     .store = std::shared_ptr<objstore::ObjectStore>(std::move(s3)),
                     .sts = client,
                     .role_arn = l.role_arn,
                     .session_name = grant.session_name,
                     .google_identity = nullptr};
}

Result<OpenedStore> OpenGcs(const GcsLocation& l, const Grant& grant, const AccessContext& ctx,
                            std::shared_ptr<http::HttpTransport> transport) {
  SLUICE_TRY(CheckGcsBinding(l, grant.gcs_buckets));
  SLUICE_TRY(ctx.gcs_endpoints.Check(l.endpoint, grant.field_prefix + "gcs_endpoint"));
  if (!ctx.google_identity) {
    return Error(ErrorCode::kUnauthenticated,
                 "Sluice has no Google identity of its own: set GOOGLE_APPLICATION_CREDENTIALS to its service "
                 "account's JSON key (or run it where the GCE/GKE metadata server answers) for `sluice serve`");
  }
  objstore::gcs::GcsStoreOptions o;
  o.bucket = l.bucket;
  o.endpoint = l.endpoint;
  o.retry = ToGcpRetry(ctx.retry);
  o.env = ctx.env;
  if (grant.purpose == Purpose::kWrite) {
    o.prefix = l.prefix;
    o.kms_key_name = l.kms_key_name;
    o.chunk_size = ctx.gcs_chunk_size;
  }
  SLUICE_ASSIGN_OR_RETURN(auto gcs, objstore::gcs::GcsObjectStore::Create(o, ctx.google_identity, transport));
  return OpenedStore{.role = nullptr,
                     .store = std::shared_ptr<objstore::ObjectStore>(std::move(gcs)),
                     .sts = nullptr,
                     .role_arn = "",
                     .session_name = grant.session_name,
                     .google_identity = ctx.google_identity};
}

Result<OpenedStore> OpenAzure(const AzureLocation& l, const Grant& grant, const AccessContext& ctx,
                              std::shared_ptr<http::HttpTransport> transport) {
  // Before the token request: the customer's token goes only to an endpoint the operator allowed.
  SLUICE_TRY(ctx.azure_endpoints.Check(l.endpoint, grant.field_prefix + "azure_endpoint"));
  azure::TokenSourceOptions token_options;
  token_options.transport = transport;
  token_options.authority_host = l.authority_host;  // the operator's ("" = AZURE_AUTHORITY_HOST), never a tenant's
  token_options.retry = ToGcpRetry(ctx.retry);
  token_options.env = ctx.azure_env;
  SLUICE_ASSIGN_OR_RETURN(auto tokens,
                          azure::MakeClientSecretTokenProvider(
                              {.tenant_id = l.tenant_id, .client_id = l.client_id, .client_secret = l.client_secret},
                              std::move(token_options)));
  objstore::azure::AzureStoreOptions o;
  o.account = l.storage_account;
  o.container = l.container;
  if (!l.endpoint.empty()) o.endpoint = l.endpoint + "/" + l.storage_account;  // path-style (emulators)
  o.retry = ToGcpRetry(ctx.retry);
  if (grant.purpose == Purpose::kWrite) {
    o.prefix = l.prefix;
    o.block_size = ctx.azure_block_size;
  }
  SLUICE_ASSIGN_OR_RETURN(auto blob, objstore::azure::AzureBlobStore::Create(
                                         o, azure::StorageCredential::Token(std::move(tokens)), transport));
  OpenedStore out;
  out.store = std::shared_ptr<objstore::ObjectStore>(std::move(blob));
  out.session_name = grant.session_name;
  return out;
}

Result<OpenedStore> OpenLocal(const LocalLocation& l, const AccessContext& ctx) {
  if (!ctx.confine_local) {
    return InvalidArgument(
        "type=local destinations are not enabled on this server: the operator must start it with `sluice "
        "serve --local-export-root DIR` to allow pipelines to write under DIR (or use type=s3)");
  }
  // Also for pipelines stored before the root existed: one outside it fails here instead of writing.
  SLUICE_ASSIGN_OR_RETURN(std::string dir, ctx.confine_local(l.path));
  SLUICE_ASSIGN_OR_RETURN(auto local, objstore::LocalObjectStore::Open(dir));
  OpenedStore out;
  out.store = std::shared_ptr<objstore::ObjectStore>(std::move(local));
  return out;
}

}  // namespace

Status CheckGcsBinding(const Location& location, const std::vector<std::string>& bound_buckets) {
  const auto* gcs = std::get_if<GcsLocation>(&location);
  if (gcs == nullptr) return OkStatus();
  if (std::find(bound_buckets.begin(), bound_buckets.end(), gcs->bucket) != bound_buckets.end()) {
    return OkStatus();
  }
  Error refused(ErrorCode::kAccessDenied,
                fmt::format("gs://{} is not bound to this project: ask the Sluice operator to bind it "
                            "(docs/gcs.md#binding)",
                            gcs->bucket));
  refused.provider_code = std::string(kUnboundGcsBucket);
  return refused;
}

Result<OpenedStore> Open(const Location& location, const Grant& grant, const AccessContext& context) {
  std::shared_ptr<http::HttpTransport> transport =
      context.transport ? context.transport : std::shared_ptr<http::HttpTransport>(http::MakeCurlTransport());
  if (const auto* s3 = std::get_if<S3Location>(&location)) return OpenS3(*s3, grant, context, transport);
  if (const auto* gcs = std::get_if<GcsLocation>(&location)) return OpenGcs(*gcs, grant, context, transport);
  if (const auto* az = std::get_if<AzureLocation>(&location)) return OpenAzure(*az, grant, context, transport);
  return OpenLocal(std::get<LocalLocation>(location), context);
}

namespace {

/// The policy of a provider other than S3: only `allowed` (AWS_ENDPOINT_URL is for S3), refusals advising
/// that provider's own way to allow an endpoint.
Result<aws::EndpointPolicy> NonS3EndpointPolicy(const std::vector<std::string>& allowed,
                                                aws::EndpointPolicy::Advice advice) {
  SLUICE_ASSIGN_OR_RETURN(
      aws::EndpointPolicy policy,
      aws::EndpointPolicy::Create(
          allowed, [](std::string_view) -> std::optional<std::string> { return std::nullopt; }));
  policy.set_advice(std::move(advice));
  return policy;
}

}  // namespace

Result<aws::EndpointPolicy> MakeAzureEndpointPolicy(const std::vector<std::string>& allowed) {
  return NonS3EndpointPolicy(
      allowed, {.default_service = "the account's own endpoint (https://ACCOUNT.blob.core.windows.net)",
                .flag = "--allow-azure-endpoint",
                .env = ""});
}

Result<aws::EndpointPolicy> MakeGcsEndpointPolicy(const std::vector<std::string>& allowed,
                                                  const gcp::EnvGetter& env) {
  std::vector<std::string> all = allowed;
  if (auto host = env ? env("STORAGE_EMULATOR_HOST") : std::nullopt; host && !host->empty()) {
    std::string url = *host;
    if (url.find("://") == std::string::npos) url = "http://" + url;
    all.push_back(std::move(url));
  }
  return NonS3EndpointPolicy(all, {.default_service = "Google Cloud Storage",
                                   .flag = "--allow-gcs-endpoint",
                                   .env = "STORAGE_EMULATOR_HOST"});
}

gcp::RetryPolicy ToGcpRetry(const aws::RetryPolicy& r) {
  gcp::RetryPolicy g;
  g.max_attempts = r.max_attempts;
  g.base_delay = r.base_delay;
  g.throttled_base_delay = r.throttled_base_delay;
  g.max_delay = r.max_delay;
  g.attempt_timeout = r.attempt_timeout;
  g.total_timeout = r.total_timeout;
  return g;
}

}  // namespace sluice::storage_access
