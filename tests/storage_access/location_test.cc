#include "storage_access/location.h"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

namespace sluice::storage_access {
namespace {

TEST(LocationTest, DescribesEachProvider) {
  EXPECT_EQ(Describe(S3Location{.bucket = "b", .region = "eu-west-1", .prefix = "p/q"}), "s3://b/p/q (eu-west-1)");
  EXPECT_EQ(Describe(S3Location{.bucket = "b", .region = "us-east-1"}), "s3://b (us-east-1)");
  EXPECT_EQ(Describe(GcsLocation{.bucket = "g", .prefix = "x"}), "gs://g/x");
  EXPECT_EQ(Describe(LocalLocation{.path = "exports/web"}), "local:exports/web");
  EXPECT_EQ(ProviderOf(GcsLocation{}), Provider::kGcs);
  EXPECT_EQ(ToString(Provider::kGcs), "gcs");
}

TEST(LocationTest, EffectiveExternalIdIsTheProjectsOwnElseItsToken) {
  store::Project p;
  p.token = "tok";
  EXPECT_EQ(EffectiveExternalId(p), "tok");
  p.external_id = "ext-1";
  EXPECT_EQ(EffectiveExternalId(p), "ext-1");
}

// One rule for pipelines and imports: the stricter, correct S3 rules (imports used to accept these).
TEST(LocationTest, S3RulesAreTheStrictOnesForDestinationsAndSources) {
  for (Role role : {Role::kDestination, Role::kSource}) {
    std::string field;
    S3Location l{.bucket = "-acme", .region = "us-east-1", .role_arn = "arn:aws:iam::123456789012:role/r"};
    EXPECT_FALSE(Validate(l, role, "connector_properties.", &field).ok());
    EXPECT_EQ(field, "connector_properties.s3_bucket");
    l.bucket = "acme";
    l.role_arn = "arn:aws:iam::1234:role/r";  // not a 12-digit account
    EXPECT_FALSE(Validate(l, role, "", &field).ok());
    EXPECT_EQ(field, "s3_role");
    l.role_arn = "arn:aws:iam::123456789012:user/bob";
    EXPECT_FALSE(Validate(l, role).ok());
    l.role_arn = "arn:aws:iam::123456789012:role/path/r";
    EXPECT_TRUE(Validate(l, role).ok());
    l.endpoint = "http://minio:9000/bucket";  // a path: refused for both
    EXPECT_FALSE(Validate(l, role, "", &field).ok());
    EXPECT_EQ(field, "s3_endpoint");
    l.endpoint = "https://minio.internal:9000";
    EXPECT_TRUE(Validate(l, role).ok());
    // With a role at AWS, the region names the STS host (sts.<region>.amazonaws.com): only a region's name,
    // never "s3", which would send Sluice's signed AssumeRole to S3's host for a bucket named "sts".
    l.endpoint.clear();
    for (const char* bad :
         {"s3", "s3-external-1", "s3-us-west-2", "sts", "us-east", "east-1", "us-east-1x"}) {
      l.region = bad;
      EXPECT_FALSE(Validate(l, role, "", &field).ok()) << bad;
      EXPECT_EQ(field, "s3_region") << bad;
    }
    for (const char* good :
         {"us-east-1", "ap-southeast-5", "us-gov-west-1", "cn-north-1", "eu-isoe-west-1"}) {
      l.region = good;
      EXPECT_TRUE(Validate(l, role).ok()) << good;
    }
    // An S3-compatible store names its own region (MinIO, Garage): no AWS STS host is built from it.
    l.endpoint = "https://minio.internal:9000";
    l.region = "garage";
    EXPECT_TRUE(Validate(l, role).ok());
  }
}

TEST(LocationTest, PrefixesFollowWhatTheyAre) {
  // A destination prefix is a directory; a source prefix is a raw key prefix.
  EXPECT_FALSE(ValidateDestinationPrefix("a//b", "s3_prefix").ok());
  EXPECT_FALSE(ValidateDestinationPrefix("a/../b", "s3_prefix").ok());
  EXPECT_TRUE(ValidateDestinationPrefix("exports/web", "s3_prefix").ok());
  EXPECT_TRUE(ValidateSourcePrefix("exports/2024-", "connector_properties.s3_prefix").ok());
  EXPECT_TRUE(ValidateSourcePrefix("a//b/", "connector_properties.s3_prefix").ok());
  EXPECT_FALSE(ValidateSourcePrefix(std::string("a\nb"), "connector_properties.s3_prefix").ok());
  EXPECT_FALSE(ValidateSourcePrefix(std::string(1025, 'a'), "connector_properties.s3_prefix").ok());
  EXPECT_EQ(NormalizeDestinationPrefix("/a/b/"), "a/b");
}

TEST(LocationTest, GcsRules) {
  std::string field;
  EXPECT_TRUE(Validate(GcsLocation{.bucket = "acme_events.1", .prefix = "p", .region = "europe-west1"},
                       Role::kDestination)
                  .ok());
  auto bad = Validate(GcsLocation{.bucket = "gs://acme"}, Role::kDestination, "", &field);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(field, "gcs_bucket");
  EXPECT_NE(bad.error().message.find("is not a valid GCS bucket name"), std::string::npos);
  EXPECT_FALSE(Validate(GcsLocation{.bucket = "acme", .region = "us east"}, Role::kDestination).ok());
  EXPECT_TRUE(ValidateGcsKmsKeyName("projects/p/locations/us/keyRings/r/cryptoKeys/k", "k").ok());
  EXPECT_FALSE(ValidateGcsKmsKeyName("projects/p/locations/us/keyRings/r", "k").ok());
  EXPECT_FALSE(ValidateGcsKmsKeyName("projects/p/locations/us/keyRings/r/cryptoKeys/k/extra", "k").ok());
  EXPECT_FALSE(
      Validate(GcsLocation{.bucket = "acme", .kms_key_name = "alias/aws-key"}, Role::kDestination, "", &field).ok());
  EXPECT_EQ(field, "gcs_kms_key_name");
}

AzureLocation GoodAzure() {
  return AzureLocation{.storage_account = "acmeexports",
                       .container = "mixpanel-events",
                       .prefix = "sluice",
                       .tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47",
                       .client_id = "11111111-2222-3333-4444-555555555555",
                       .client_secret = Secret("s3cr3t~value"),
                       .endpoint = "",
                       .authority_host = ""};
}

TEST(LocationTest, AzureIsDescribedByItsBlobUrl) {
  EXPECT_EQ(Describe(GoodAzure()), "https://acmeexports.blob.core.windows.net/mixpanel-events/sluice");
  AzureLocation emulator = GoodAzure();
  emulator.endpoint = "http://127.0.0.1:10000";
  emulator.prefix.clear();
  EXPECT_EQ(Describe(emulator), "http://127.0.0.1:10000/acmeexports/mixpanel-events");
  EXPECT_EQ(ProviderOf(GoodAzure()), Provider::kAzure);
  EXPECT_EQ(ToString(Provider::kAzure), "azure");
}

// Every tenant-supplied Azure field is checked at the edge and the refusal names the parameter as the caller's
// API spells it; the client secret never appears in a message.
TEST(LocationTest, AzureFieldsAreValidatedAndNamed) {
  EXPECT_TRUE(Validate(GoodAzure(), Role::kDestination).ok());
  AzureLocation domain_tenant = GoodAzure();
  domain_tenant.tenant_id = "contoso.onmicrosoft.com";
  EXPECT_TRUE(Validate(domain_tenant, Role::kSource, "connector_properties.").ok());
  struct Case {
    std::function<void(AzureLocation&)> mutate;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](AzureLocation& l) { l.storage_account = "ab"; }, "storage_account"},
      {[](AzureLocation& l) { l.storage_account = "Acme"; }, "storage_account"},
      {[](AzureLocation& l) { l.storage_account = "acme.evil.com/x"; }, "storage_account"},
      {[](AzureLocation& l) { l.storage_account = "a234567890123456789012345"; }, "storage_account"},
      {[](AzureLocation& l) { l.container = "ab"; }, "container_name"},
      {[](AzureLocation& l) { l.container = "acme--events"; }, "container_name"},
      {[](AzureLocation& l) { l.container = "-acme"; }, "container_name"},
      {[](AzureLocation& l) { l.container = "../x"; }, "container_name"},
      {[](AzureLocation& l) { l.prefix = "a/../b"; }, "prefix"},
      {[](AzureLocation& l) { l.prefix = std::string("a\nb"); }, "prefix"},
      {[](AzureLocation& l) { l.tenant_id = "../common"; }, "tenant_id"},
      {[](AzureLocation& l) { l.tenant_id = ""; }, "tenant_id"},
      {[](AzureLocation& l) { l.client_id = "app"; }, "client_id"},
      {[](AzureLocation& l) { l.client_secret = Secret(""); }, "client_secret"},
      {[](AzureLocation& l) { l.endpoint = "http://127.0.0.1:10000/acct?comp=list"; }, "azure_endpoint"},
      {[](AzureLocation& l) { l.endpoint = "file:///etc/passwd"; }, "azure_endpoint"},
  };
  for (const auto& c : cases) {
    AzureLocation l = GoodAzure();
    c.mutate(l);
    std::string field;
    Status s = Validate(l, Role::kDestination, "connector_properties.", &field);
    ASSERT_FALSE(s.ok()) << c.field;
    EXPECT_EQ(field, "connector_properties." + c.field);
    EXPECT_TRUE(s.error().message.starts_with("connector_properties." + c.field)) << s.error().message;
    EXPECT_EQ(s.error().message.find("s3cr3t"), std::string::npos) << s.error().message;
  }
}

}  // namespace
}  // namespace sluice::storage_access
