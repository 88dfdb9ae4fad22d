#include "storage_access/location.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace sluice::storage_access
