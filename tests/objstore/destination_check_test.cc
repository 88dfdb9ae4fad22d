#include "storage_access/destination_check.h"

#include <gtest/gtest.h>

#include <atomic>

#include "aws/providers.h"
#include "aws/sts.h"

namespace sluice::objstore {
namespace {

// The check moved to the customer-storage layer (storage_access/); these tests are unchanged.
using namespace ::sluice::storage_access;

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
  DestinationSpec spec{
      .bucket = "b", .region = "us-east-1", .role_arn = "arn:aws:iam::1:role/r", .external_id = "e"};
  auto r = CheckDestination(spec, {});
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(r.steps.size(), 7u);
  EXPECT_FALSE(r.steps[0].skipped);
  for (size_t i = 1; i < r.steps.size(); ++i) EXPECT_TRUE(r.steps[i].skipped);
}

/// Counts requests and answers each with STS's SignatureDoesNotMatch (a rejected signature).
class CountingTransport : public http::HttpTransport {
 public:
  Result<http::OutboundResponse> Send(const http::OutboundRequest& request,
                                      std::chrono::steady_clock::time_point) override {
    ++sent;
    urls.push_back(request.url);
    http::OutboundResponse r;
    r.status = 403;
    r.body =
        "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>The request "
        "signature "
        "we calculated does not match</Message></Error><RequestId>r1</RequestId></ErrorResponse>";
    return r;
  }
  Result<http::OutboundResponse> SendStreaming(const http::OutboundRequest& request,
                                               std::chrono::steady_clock::time_point deadline,
                                               const std::function<bool(std::string_view)>&) override {
    return Send(request, deadline);
  }
  std::atomic<int> sent{0};
  std::vector<std::string> urls;
};

// Issue 10 item 9: a server with no AWS credentials at all says so (and sends nothing), instead of reporting
// that STS rejected them.
TEST(DestinationCheckTest, NoAwsCredentialsAtAllSaysSoWithoutNetwork) {
  auto empty_env = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  auto transport = std::make_shared<CountingTransport>();
  aws::DefaultChainOptions chain;
  chain.transport = transport;
  chain.env = empty_env;
  chain.profile = "no-such-profile-for-this-test";
  DestinationSpec spec{
      .bucket = "b", .region = "us-east-1", .role_arn = "arn:aws:iam::1:role/r", .external_id = "e"};
  DestinationCheckOptions options;
  options.base_credentials = aws::MakeDefaultCredentialsChain(chain);
  options.transport = transport;
  auto r = CheckDestination(spec, options);
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(r.steps.size(), 7u);
  EXPECT_NE(r.steps[0].message.find("Sluice has no AWS credentials of its own"), std::string::npos)
      << r.steps[0].message;
  EXPECT_NE(r.steps[0].message.find("AWS_ACCESS_KEY_ID"), std::string::npos) << r.steps[0].message;
  EXPECT_EQ(r.steps[0].message.find("rejected by STS"), std::string::npos) << r.steps[0].message;
  // Where the server looked is the operator's (its log), never the tenant's: no profile, file or variable
  // state of the server's own identity in the answer.
  EXPECT_EQ(r.steps[0].message.find("no-such-profile-for-this-test"), std::string::npos)
      << r.steps[0].message;
  EXPECT_EQ(r.steps[0].message.find(".aws/config"), std::string::npos) << r.steps[0].message;
  EXPECT_EQ(r.steps[0].message.find("not set"), std::string::npos) << r.steps[0].message;
  for (size_t i = 1; i < r.steps.size(); ++i) EXPECT_TRUE(r.steps[i].skipped);
  EXPECT_EQ(transport->sent, 0);
}

// Issue 10 item 9 and issue 9 item 2: a rejected signature is reported as wrong/skewed credentials; STS goes
// to the operator's STS endpoint (here explicit), never to the S3 endpoint the destination names.
TEST(DestinationCheckTest, RejectedSignatureIsACredentialsProblemAndStsNeverGoesToTheS3Endpoint) {
  auto transport = std::make_shared<CountingTransport>();
  aws::Credentials own;
  own.access_key_id = "AKIDTEST";
  own.secret_access_key = Secret("wrong-secret");
  DestinationSpec spec{.bucket = "b",
                       .region = "us-east-1",
                       .role_arn = "arn:aws:iam::1:role/r",
                       .external_id = "e",
                       .endpoint = "http://tenant.example:9000",
                       .sts_endpoint = "http://operator-sts.example:8000"};
  DestinationCheckOptions options;
  options.base_credentials = std::make_shared<aws::StaticCredentialsProvider>(own, "test key");
  options.transport = transport;
  options.retry.max_attempts = 1;
  auto r = CheckDestination(spec, options);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.steps[0].message.find("credentials were rejected (SignatureDoesNotMatch)"), std::string::npos)
      << r.steps[0].message;
  EXPECT_NE(r.steps[0].message.find("clock"), std::string::npos) << r.steps[0].message;
  EXPECT_EQ(r.steps[0].message.find("does not match"), std::string::npos) << "the endpoint's text is echoed";
  // The source of the server's own identity is named in its log, not to the tenant.
  EXPECT_EQ(r.steps[0].message.find("test key"), std::string::npos) << r.steps[0].message;
  EXPECT_NE(r.steps[0].message.find("operator"), std::string::npos) << r.steps[0].message;
  ASSERT_GT(transport->sent, 0);
  for (const auto& url : transport->urls) {
    EXPECT_EQ(url.rfind("http://operator-sts.example:8000", 0), 0u) << url;
  }
}

}  // namespace
}  // namespace sluice::objstore

namespace sluice::objstore {
namespace {

/// Sluice's Google identity when its token cannot be had: its Name() holds what only the operator should
/// read (the key file's path), its error the token host.
class BrokenGoogleIdentity final : public gcp::TokenProvider {
 public:
  Result<gcp::AccessToken> Get() override {
    return Error(ErrorCode::kUnavailable, "token exchange with http://127.0.0.1:45102/token failed");
  }
  void Invalidate() override {}
  std::string Name() const override {
    return "service account sluice@p.iam.gserviceaccount.com (key file /etc/sluice/operator-key.json)";
  }
  std::string Email() const override { return "sluice@p.iam.gserviceaccount.com"; }
};

// A tenant reads the check's answer: when Sluice's own Google identity fails it says whose problem it is and
// names the account customers grant roles to, but not the server's key file or token host.
TEST(DestinationCheckTest, GoogleIdentityFailureTellsTenantsNothingOfTheServer) {
  storage_access::CheckContext context;
  context.google_identity = std::make_shared<BrokenGoogleIdentity>();
  context.gcs_buckets = {"acme-events"};
  context.env = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  auto result = storage_access::CheckDestination(
      storage_access::Location{storage_access::GcsLocation{.bucket = "acme-events"}}, context);
  ASSERT_FALSE(result.ok());
  const std::string text = result.ToJson();
  EXPECT_NE(text.find("the server's operator to fix"), std::string::npos) << text;
  EXPECT_NE(text.find("sluice@p.iam.gserviceaccount.com"), std::string::npos) << text;
  EXPECT_EQ(text.find("operator-key.json"), std::string::npos) << text;
  EXPECT_EQ(text.find("45102"), std::string::npos) << text;
}

}  // namespace
}  // namespace sluice::objstore
