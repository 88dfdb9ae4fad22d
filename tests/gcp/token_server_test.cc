// The JWT-bearer flow against a real HTTP token endpoint (tests/support/gcs_server.js) that verifies the
// RS256 signature with the public key this test generated, and refuses a key it does not know.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gcp/credentials.h"
#include "support/gcs_server.h"

namespace sluice::gcp {
namespace {

using ::testing::HasSubstr;

TEST(TokenServerTest, ExchangesASignedAssertionAndIsRefusedWithAnUnknownKey) {
  auto sa = testing::MakeTestServiceAccount("sluice@proj.iam.gserviceaccount.com", "key-1");
  ASSERT_TRUE(sa.ok());
  auto stranger = testing::MakeTestServiceAccount("sluice@proj.iam.gserviceaccount.com", "key-1");
  ASSERT_TRUE(stranger.ok());
  boost::json::object config{
      {"accounts", {{sa->email, {{"public_key", sa->public_pem}, {"key_id", sa->key_id}}}}},
      {"buckets", {{"data", {{"bindings", {{sa->email, boost::json::array{"objectViewer"}}}}}}}},
      {"token_ttl_seconds", 120}};
  auto server = testing::GcsTestServer::Start(config);
  ASSERT_TRUE(server.ok()) << server.error().ToString();

  TokenSourceOptions options;
  options.transport = http::MakeCurlTransport();
  options.retry.max_attempts = 2;
  auto key = ParseServiceAccountKey(testing::ServiceAccountKeyJson(*sa, (*server)->TokenUri()));
  ASSERT_TRUE(key.ok());
  ServiceAccountTokenProvider provider(*key, options);
  auto token = provider.Get();
  ASSERT_TRUE(token.ok()) << token.error().ToString();
  EXPECT_TRUE(token->token.Reveal().starts_with("ya29."));
  EXPECT_LE(*token->expiration, SystemClock::Instance().Now() + std::chrono::seconds(121));

  // Same email and key id, different private key: the signature does not verify.
  auto forged = ParseServiceAccountKey(testing::ServiceAccountKeyJson(*stranger, (*server)->TokenUri()));
  ASSERT_TRUE(forged.ok());
  ServiceAccountTokenProvider bad(*forged, options);
  auto refused = bad.Get();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnauthenticated);
  EXPECT_THAT(refused.error().message, HasSubstr("Invalid JWT Signature"));
}

TEST(TokenServerTest, MetadataServerSourceOverLoopback) {
  boost::json::object config{
      {"metadata_account", "vm@proj.iam.gserviceaccount.com"},
      {"buckets",
       {{"data", {{"bindings", {{"vm@proj.iam.gserviceaccount.com", boost::json::array{"objectViewer"}}}}}}}},
      {"token_ttl_seconds", 600}};
  auto server = testing::GcsTestServer::Start(config);
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  TokenSourceOptions options;
  options.transport = http::MakeCurlTransport();
  options.retry.max_attempts = 2;
  const std::string host = fmt::format("127.0.0.1:{}", (*server)->port());
  auto provider =
      MakeDefaultTokenProvider(options, "", [&](std::string_view name) -> std::optional<std::string> {
        if (name == "GCE_METADATA_HOST") return host;
        return std::nullopt;  // no GOOGLE_APPLICATION_CREDENTIALS: the metadata server is the source
      });
  ASSERT_TRUE(provider.ok()) << provider.error().ToString();
  EXPECT_EQ((*provider)->Name(), "metadata server " + host);
  auto token = (*provider)->Get();
  ASSERT_TRUE(token.ok()) << token.error().ToString();
  EXPECT_TRUE(token->token.Reveal().starts_with("ya29.md."));
  EXPECT_EQ((*provider)->Email(), "vm@proj.iam.gserviceaccount.com");
}

}  // namespace
}  // namespace sluice::gcp
