#include "objstore/destination_check.h"

#include <gtest/gtest.h>

namespace sluice::objstore {
namespace {

TEST(DestinationCheckTest, ProbeKeyAndStatement) {
  EXPECT_EQ(ProbeKey("", "ab12"), ".sluice-probe-ab12");
  EXPECT_EQ(ProbeKey("/exports/", "ab12"), "exports/.sluice-probe-ab12");
  EXPECT_EQ(AllowStatement("s3:PutObject", "arn:aws:s3:::b/*"),
            R"({"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"})");
}

TEST(DestinationCheckTest, ResultFormatting) {
  DestinationCheckResult r;
  r.destination = "s3://b/p (r) via role R";
  EXPECT_FALSE(r.ok()) << "no steps is not a pass";
  r.steps.push_back({.name = "put", .ok = true, .message = "wrote"});
  EXPECT_TRUE(r.ok());
  r.steps.push_back({.name = "delete",
                     .ok = false,
                     .message = "denied",
                     .action = "s3:DeleteObject",
                     .policy_statement = "{}",
                     .error_code = "access_denied"});
  r.steps.push_back({.name = "list", .ok = false, .skipped = true, .message = "skipped: x"});
  EXPECT_FALSE(r.ok());
  std::string text = r.ToText();
  EXPECT_NE(text.find("[ok  ] put"), std::string::npos) << text;
  EXPECT_NE(text.find("[FAIL] delete"), std::string::npos) << text;
  EXPECT_NE(text.find("[skip] list"), std::string::npos) << text;
  EXPECT_NE(text.find("Result: FAILED (1 of 3 steps failed)"), std::string::npos) << text;
  EXPECT_NE(r.ToJson().find(R"("action":"s3:DeleteObject")"), std::string::npos);
}

TEST(DestinationCheckTest, NoBaseCredentialsFailsEveryStepWithoutNetwork) {
  DestinationSpec spec{.bucket = "b", .region = "us-east-1", .role_arn = "arn:aws:iam::1:role/r", .external_id = "e"};
  auto r = CheckDestination(spec, {});
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(r.steps.size(), 7u);
  EXPECT_FALSE(r.steps[0].skipped);
  for (size_t i = 1; i < r.steps.size(); ++i) EXPECT_TRUE(r.steps[i].skipped);
}

}  // namespace
}  // namespace sluice::objstore
