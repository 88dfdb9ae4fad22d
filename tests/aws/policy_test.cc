// Policy generator: the three documents in the shape of the seed docs, the import variant, validation.
#include "aws/policy.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

namespace sluice::aws {
namespace {

namespace json = boost::json;

TEST(PolicyTest, ExportPoliciesExactText) {
  PolicyInputs in;
  in.bucket = "acme-events";
  in.kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
  in.principal_arn = "arn:aws:iam::485438090326:user/sluice-export";
  in.external_id = "8f3a9c2e71b04d5e";
  auto docs = GeneratePolicies(in);
  ASSERT_TRUE(docs.ok()) << docs.error().ToString();
  EXPECT_EQ(docs->data_policy, R"({
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "SluiceS3AccessStatement",
      "Effect": "Allow",
      "Action": [
        "s3:PutObject",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:DeleteObject"
      ],
      "Resource": [
        "arn:aws:s3:::acme-events",
        "arn:aws:s3:::acme-events/*"
      ]
    }
  ]
}
)");
  ASSERT_TRUE(docs->kms_policy.has_value());
  EXPECT_EQ(*docs->kms_policy, R"({
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "SluiceKmsStatement",
      "Effect": "Allow",
      "Action": [
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:ReEncryptTo",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:DescribeKey",
        "kms:ReEncryptFrom"
      ],
      "Resource": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    }
  ]
}
)");
  EXPECT_EQ(docs->trust_policy, R"({
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Principal": {
        "AWS": "arn:aws:iam::485438090326:user/sluice-export"
      },
      "Action": "sts:AssumeRole",
      "Condition": {
        "StringEquals": {
          "sts:ExternalId": "8f3a9c2e71b04d5e"
        }
      }
    }
  ]
}
)");
}

TEST(PolicyTest, NoKmsKeyNoKmsPolicyAndPlaceholders) {
  PolicyInputs in;
  in.bucket = "acme-events";
  auto docs = GeneratePolicies(in);
  ASSERT_TRUE(docs.ok());
  EXPECT_FALSE(docs->kms_policy.has_value());
  auto trust = json::parse(docs->trust_policy);
  EXPECT_EQ(trust.at("Statement").at(0).at("Principal").at("AWS").as_string(), kPrincipalPlaceholder);
  EXPECT_EQ(trust.at("Statement").at(0).at("Condition").at("StringEquals").at("sts:ExternalId").as_string(),
            kExternalIdPlaceholder);
}

TEST(PolicyTest, ImportVariantIsReadOnly) {
  PolicyInputs in;
  in.bucket = "legacy-events";
  in.import_only = true;
  in.kms_key_arn = "arn:aws:kms:us-east-1:1:key/k";
  auto docs = GeneratePolicies(in);
  ASSERT_TRUE(docs.ok());
  auto data = json::parse(docs->data_policy);
  EXPECT_EQ(data.at("Statement").at(0).at("Action"), (json::array{"s3:GetObject", "s3:ListBucket"}));
  EXPECT_EQ(data.at("Statement").at(0).at("Resource"),
            (json::array{"arn:aws:s3:::legacy-events", "arn:aws:s3:::legacy-events/*"}));
  auto kms = json::parse(*docs->kms_policy);
  EXPECT_EQ(kms.at("Statement").at(0).at("Action"), (json::array{"kms:Decrypt", "kms:DescribeKey"}));
  EXPECT_EQ(docs->data_policy.find("PutObject"), std::string::npos);
  EXPECT_EQ(docs->data_policy.find("DeleteObject"), std::string::npos);
}

TEST(PolicyTest, Validation) {
  for (const std::string& bad :
       std::vector<std::string>{"", "ab", "Upper", "under_score", "-start", "end-", std::string(64, 'a')}) {
    PolicyInputs in;
    in.bucket = bad;
    auto r = GeneratePolicies(in);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    }
  }
  PolicyInputs in;
  in.bucket = "ok-bucket.v2";
  EXPECT_TRUE(GeneratePolicies(in).ok());
  in.kms_key_arn = "1234abcd-12ab";  // a bare key id cannot be a Resource
  EXPECT_NE(GeneratePolicies(in).error().message.find("key ARN"), std::string::npos);
  in.kms_key_arn.clear();
  in.principal_arn = "sluice";
  EXPECT_FALSE(GeneratePolicies(in).ok());
  in.principal_arn.clear();
  in.external_id = "has space";
  EXPECT_FALSE(GeneratePolicies(in).ok());
  in.external_id = "\"quoted\"";
  EXPECT_FALSE(GeneratePolicies(in).ok());  // JSON injection is impossible anyway; the charset is AWS's
}

TEST(PolicyTest, PrincipalFromCallerArn) {
  EXPECT_EQ(PrincipalFromCallerArn("arn:aws:sts::111122223333:assumed-role/sluice-runtime/i-0abc"),
            "arn:aws:iam::111122223333:role/sluice-runtime");
  EXPECT_EQ(PrincipalFromCallerArn("arn:aws-cn:sts::1:assumed-role/r/s"), "arn:aws-cn:iam::1:role/r");
  EXPECT_EQ(PrincipalFromCallerArn("arn:aws:iam::111122223333:user/sluice"),
            "arn:aws:iam::111122223333:user/sluice");
}

// Issue 10 item 9: ARNs in China and GovCloud regions use their own partitions.
TEST(PolicyTest, PartitionFollowsTheRegion) {
  EXPECT_EQ(PartitionOfRegion("cn-north-1"), "aws-cn");
  EXPECT_EQ(PartitionOfRegion("cn-northwest-1"), "aws-cn");
  EXPECT_EQ(PartitionOfRegion("us-gov-west-1"), "aws-us-gov");
  EXPECT_EQ(PartitionOfRegion("eu-west-1"), "aws");
  EXPECT_EQ(PartitionOfRegion(""), "aws");
  for (const auto& [region, partition] : std::vector<std::pair<std::string, std::string>>{
           {"cn-north-1", "aws-cn"}, {"us-gov-east-1", "aws-us-gov"}, {"us-east-1", "aws"}}) {
    PolicyInputs in;
    in.bucket = "acme-events";
    in.region = region;
    auto docs = GeneratePolicies(in);
    ASSERT_TRUE(docs.ok()) << docs.error().ToString();
    EXPECT_NE(docs->data_policy.find("\"arn:" + partition + ":s3:::acme-events\""), std::string::npos)
        << region << docs->data_policy;
    EXPECT_NE(docs->data_policy.find("\"arn:" + partition + ":s3:::acme-events/*\""), std::string::npos);
  }
  // Without a region, the partition of the principal given.
  PolicyInputs in;
  in.bucket = "acme-events";
  in.principal_arn = "arn:aws-cn:iam::123456789012:user/sluice";
  auto docs = GeneratePolicies(in);
  ASSERT_TRUE(docs.ok());
  EXPECT_NE(docs->data_policy.find("arn:aws-cn:s3:::acme-events"), std::string::npos) << docs->data_policy;
}

}  // namespace
}  // namespace sluice::aws
