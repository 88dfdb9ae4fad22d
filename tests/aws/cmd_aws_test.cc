// `sluice aws policies` parsing and output (no network: --principal is given).
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>

#include "app/cmd_aws.h"
#include "support/cli_capture.h"

namespace sluice::app {
namespace {

std::string RunCli(const std::vector<std::string>& args) {
  return sluice::testing::CaptureCli(&RegisterAwsCommands, args);
}

TEST(CmdAwsTest, PoliciesJson) {
  std::string out = RunCli({"aws", "policies", "--bucket", "acme-events", "--kms-key-arn", "arn:aws:kms:us-east-1:1:key/k",
                         "--external-id", "tok123", "--principal", "arn:aws:iam::485438090326:user/sluice", "--json"});
  auto v = boost::json::parse(out);
  EXPECT_EQ(v.at("trust_policy").at("Statement").at(0).at("Condition").at("StringEquals").at("sts:ExternalId"),
            "tok123");
  EXPECT_EQ(v.at("kms_policy").at("Statement").at(0).at("Resource"), "arn:aws:kms:us-east-1:1:key/k");
  EXPECT_EQ(v.at("data_policy").at("Statement").at(0).at("Resource").at(1), "arn:aws:s3:::acme-events/*");
}

TEST(CmdAwsTest, PoliciesTextWithPlaceholderExplanation) {
  std::string out = RunCli({"aws", "policies", "--bucket", "acme-events", "--principal", "arn:aws:iam::1:user/s", "--import"});
  EXPECT_NE(out.find("# 1. Data policy (Cloud Import (read-only))"), std::string::npos);
  EXPECT_NE(out.find("not needed"), std::string::npos);
  EXPECT_NE(out.find("<SLUICE_PROJECT_TOKEN>"), std::string::npos);
  EXPECT_NE(out.find("project's token"), std::string::npos);
  EXPECT_EQ(out.find("s3:PutObject"), std::string::npos);
}

TEST(CmdAwsTest, BadBucketFails) {
  EXPECT_THROW(RunCli({"aws", "policies", "--bucket", "Bad_Bucket", "--principal", "arn:aws:iam::1:user/s"}),
               CLI::RuntimeError);
  EXPECT_THROW(RunCli({"aws", "policies"}), CLI::RequiredError);
}

}  // namespace
}  // namespace sluice::app
