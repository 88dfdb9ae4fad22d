#include "storage_access/open.h"

#include <gtest/gtest.h>

#include <map>

#include "aws/providers.h"

namespace sluice::storage_access {
namespace {

gcp::EnvGetter Env(std::map<std::string, std::string> vars) {
  return [vars](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

AccessContext Context() {
  AccessContext ctx;
  ctx.aws_identity = std::make_shared<aws::StaticCredentialsProvider>(
      aws::Credentials{.access_key_id = "AKIDEXAMPLE", .secret_access_key = Secret("secret"), .session_token = Secret(""), .expiration = std::nullopt}, "test");
  ctx.google_identity = std::make_shared<gcp::StaticTokenProvider>(
      gcp::AccessToken{.token = Secret("ya29.test"), .expiration = std::nullopt},
      "sluice@p.iam.gserviceaccount.com");
  ctx.env = Env({});
  return ctx;
}

TEST(OpenTest, OpensEachProviderWithItsOwnCredentialsAndNoNetwork) {
  AccessContext ctx = Context();
  auto s3 = Open(S3Location{.bucket = "acme", .region = "eu-west-1",
                            .role_arn = "arn:aws:iam::123456789012:role/r"},
                 {.external_id = "ext", .session_name = "sluice-p1-x"}, ctx);
  ASSERT_TRUE(s3.ok()) << s3.error().ToString();
  EXPECT_TRUE(s3->role && s3->sts && s3->store);
  EXPECT_EQ(s3->role_arn, "arn:aws:iam::123456789012:role/r");
  auto gcs = Open(GcsLocation{.bucket = "acme", .prefix = "p"}, {.gcs_buckets = {"acme"}}, ctx);
  ASSERT_TRUE(gcs.ok()) << gcs.error().ToString();
  EXPECT_FALSE(gcs->role);
  EXPECT_EQ(gcs->google_identity->Email(), "sluice@p.iam.gserviceaccount.com");
}

TEST(OpenTest, TenantEndpointsMustBeTheOperatorsAndIdentitiesMustExist) {
  AccessContext ctx = Context();
  auto s3 = Open(S3Location{.bucket = "acme", .region = "eu-west-1", .role_arn = "arn:aws:iam::123456789012:role/r",
                            .endpoint = "http://127.0.0.1:9000"},
                 {.field_prefix = "connector_properties."}, ctx);
  ASSERT_FALSE(s3.ok());
  EXPECT_NE(s3.error().message.find("connector_properties.s3_endpoint"), std::string::npos) << s3.error().message;
  auto gcs = Open(GcsLocation{.bucket = "acme", .endpoint = "http://127.0.0.1:4443"}, {.gcs_buckets = {"acme"}}, ctx);
  ASSERT_FALSE(gcs.ok());
  EXPECT_NE(gcs.error().message.find("gcs_endpoint"), std::string::npos) << gcs.error().message;

  // STORAGE_EMULATOR_HOST and --allow-gcs-endpoint are allowed; AWS_ENDPOINT_URL is not a GCS endpoint.
  auto policy = MakeGcsEndpointPolicy({"https://gcs.internal:8443"},
                                      Env({{"STORAGE_EMULATOR_HOST", "127.0.0.1:4443"},
                                           {"AWS_ENDPOINT_URL", "http://127.0.0.1:9000"}}));
  ASSERT_TRUE(policy.ok()) << policy.error().ToString();
  EXPECT_TRUE(policy->Check("http://127.0.0.1:4443").ok());
  EXPECT_TRUE(policy->Check("https://gcs.internal:8443").ok());
  EXPECT_FALSE(policy->Check("http://127.0.0.1:9000").ok());
  // A refusal names the way to allow a GCS endpoint, not the S3 one.
  const std::string gcs_advice = policy->Check("http://127.0.0.1:9000", "gcs_endpoint").error().message;
  EXPECT_NE(gcs_advice.find("--allow-gcs-endpoint http://127.0.0.1:9000"), std::string::npos) << gcs_advice;
  EXPECT_NE(gcs_advice.find("empty for Google Cloud Storage"), std::string::npos) << gcs_advice;
  EXPECT_EQ(gcs_advice.find("AWS"), std::string::npos) << gcs_advice;
  ctx.gcs_endpoints = *policy;
  EXPECT_TRUE(
      Open(GcsLocation{.bucket = "acme", .endpoint = "http://127.0.0.1:4443"}, {.gcs_buckets = {"acme"}}, ctx).ok());

  ctx.google_identity = nullptr;
  auto no_google = Open(GcsLocation{.bucket = "acme"}, {.gcs_buckets = {"acme"}}, ctx);
  ASSERT_FALSE(no_google.ok());
  EXPECT_EQ(no_google.error().code, ErrorCode::kUnauthenticated);
  EXPECT_NE(no_google.error().message.find("GOOGLE_APPLICATION_CREDENTIALS"), std::string::npos);
  ctx.aws_identity = nullptr;
  auto no_aws = Open(S3Location{.bucket = "acme", .region = "eu-west-1", .role_arn = "arn:aws:iam::123456789012:role/r"},
                     {}, ctx);
  ASSERT_FALSE(no_aws.ok());
  EXPECT_EQ(no_aws.error().code, ErrorCode::kUnauthenticated);
}

// GCS is reached as Sluice's one service account, so only the operator's binding ties a bucket to a project
// (the confused deputy): an unbound bucket is refused before any request, with one message whether the bucket
// is bound to no project, to another one, or does not exist; S3 and local are not affected.
TEST(OpenTest, GcsBucketNotBoundToTheProjectIsRefused) {
  AccessContext ctx = Context();
  const std::string expected =
      "gs://b-data is not bound to this project: ask the Sluice operator to bind it (docs/gcs.md#binding)";
  for (const std::vector<std::string>& bound :
       {std::vector<std::string>{}, std::vector<std::string>{"a-data"}, std::vector<std::string>{"b-data-2", "b"}}) {
    for (Purpose purpose : {Purpose::kRead, Purpose::kWrite}) {
      auto refused = Open(GcsLocation{.bucket = "b-data"}, {.purpose = purpose, .gcs_buckets = bound}, ctx);
      ASSERT_FALSE(refused.ok());
      EXPECT_EQ(refused.error().code, ErrorCode::kAccessDenied);
      EXPECT_EQ(refused.error().message, expected);
      EXPECT_EQ(refused.error().provider_code, kUnboundGcsBucket);
    }
  }
  // Refused even before the endpoint and identity checks: nothing about the server's setup leaks either.
  ctx.google_identity = nullptr;
  auto early = Open(GcsLocation{.bucket = "b-data", .endpoint = "http://127.0.0.1:9"}, {}, ctx);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().message, expected);
  ctx = Context();
  EXPECT_TRUE(Open(GcsLocation{.bucket = "b-data"}, {.gcs_buckets = {"a-data", "b-data"}}, ctx).ok());
  EXPECT_TRUE(CheckGcsBinding(S3Location{.bucket = "b-data"}, {}).ok());
  EXPECT_TRUE(CheckGcsBinding(LocalLocation{.path = "x"}, {}).ok());
  EXPECT_FALSE(CheckGcsBinding(GcsLocation{.bucket = "b-data"}, {"B-DATA"}).ok());
}

TEST(OpenTest, LocalIsConfinedByTheCallersRule) {
  AccessContext ctx = Context();
  auto off = Open(LocalLocation{.path = "x"}, {}, ctx);
  ASSERT_FALSE(off.ok());
  EXPECT_NE(off.error().message.find("--local-export-root"), std::string::npos);
  ctx.confine_local = [](const std::string& path) -> Result<std::string> {
    return InvalidArgument("outside: " + path);
  };
  auto outside = Open(LocalLocation{.path = "../etc"}, {}, ctx);
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.error().message, "outside: ../etc");
}

// Azure: the customer's service principal; a tenant's azure_endpoint must be an origin the operator allowed
// (--allow-azure-endpoint only: no environment variable adds to it), and no request is sent by Open.
TEST(OpenTest, AzureEndpointMustBeTheOperatorsAndAuthorityIsNeverTheTenants) {
  AccessContext ctx = Context();
  ctx.azure_env = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  AzureLocation l{.storage_account = "acmeexports",
                  .container = "events",
                  .prefix = "p",
                  .tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47",
                  .client_id = "11111111-2222-3333-4444-555555555555",
                  .client_secret = Secret("s"),
                  .endpoint = "",
                  .authority_host = ""};
  auto opened = Open(l, {}, ctx);
  ASSERT_TRUE(opened.ok()) << opened.error().ToString();
  EXPECT_TRUE(opened->store);
  EXPECT_EQ(opened->store->Describe(), "azure://acmeexports/events/p");

  l.endpoint = "http://127.0.0.1:10000";
  auto refused = Open(l, {.field_prefix = "connector_properties."}, ctx);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("connector_properties.azure_endpoint"), std::string::npos)
      << refused.error().message;

  auto policy = MakeAzureEndpointPolicy({"http://127.0.0.1:10000"});
  ASSERT_TRUE(policy.ok()) << policy.error().ToString();
  EXPECT_FALSE(policy->Check("http://127.0.0.1:9000").ok());
  const std::string azure_advice = policy->Check("http://127.0.0.1:9000", "azure_endpoint").error().message;
  EXPECT_NE(azure_advice.find("--allow-azure-endpoint http://127.0.0.1:9000"), std::string::npos)
      << azure_advice;
  EXPECT_EQ(azure_advice.find("AWS"), std::string::npos) << azure_advice;
  ctx.azure_endpoints = *policy;
  auto allowed = Open(l, {}, ctx);
  ASSERT_TRUE(allowed.ok()) << allowed.error().ToString();
  EXPECT_NE(allowed->store->Describe().find("127.0.0.1:10000/acmeexports"), std::string::npos)
      << allowed->store->Describe();

  // The authority is the operator's: a non-https, non-loopback AZURE_AUTHORITY_HOST is refused.
  ctx.azure_env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "AZURE_AUTHORITY_HOST") return "http://login.example.com";
    return std::nullopt;
  };
  auto bad_authority = Open(l, {}, ctx);
  ASSERT_FALSE(bad_authority.ok());
  EXPECT_NE(bad_authority.error().message.find("AZURE_AUTHORITY_HOST"), std::string::npos);
}

}  // namespace
}  // namespace sluice::storage_access
