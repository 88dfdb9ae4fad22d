// Sluice's Google identity: the JWT-bearer assertion (golden header and claims, signature verified by OpenSSL
// with the public key), the token exchange, refresh ahead of expiry, the metadata server, bad key files.
#include "gcp/credentials.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <fstream>
#include <map>

#include "aws/fake_transport.h"
#include "common/crypto.h"
#include "support/gcs_server.h"

namespace sluice::gcp {
namespace {

using aws::testing::FakeTransport;
using aws::testing::HeaderOf;
using aws::testing::MakeResponse;
using ::testing::HasSubstr;
using ::testing::Not;

const TimePoint kNow = std::chrono::system_clock::from_time_t(1765000000);

struct Fixture {
  testing::TestServiceAccount sa;
  ServiceAccountKey key;
};

const Fixture& Keys() {
  static const Fixture* f = [] {
    auto sa = testing::MakeTestServiceAccount("sluice@proj.iam.gserviceaccount.com", "key-1");
    EXPECT_TRUE(sa.ok());
    auto key =
        ParseServiceAccountKey(testing::ServiceAccountKeyJson(*sa, "https://oauth2.example.test/token"));
    EXPECT_TRUE(key.ok()) << key.error().ToString();
    return new Fixture{*sa, *key};
  }();
  return *f;
}

std::string B64UrlDecode(std::string_view s) {
  auto d = Base64Decode(s);
  EXPECT_TRUE(d.has_value()) << s;
  return d.value_or("");
}

bool VerifyRs256(const std::string& public_pem, std::string_view input, std::string_view signature) {
  BIO* bio = BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size()));
  EVP_PKEY* pub = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (pub == nullptr) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, pub) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pub);
  return ok;
}

std::vector<std::string> SplitJwt(const std::string& jwt) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t dot; (dot = jwt.find('.', start)) != std::string::npos; start = dot + 1) {
    parts.push_back(jwt.substr(start, dot - start));
  }
  parts.push_back(jwt.substr(start));
  return parts;
}

std::map<std::string, std::string> ParseForm(std::string_view body) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start <= body.size()) {
    size_t amp = body.find('&', start);
    std::string_view item =
        body.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    size_t eq = item.find('=');
    out[std::string(item.substr(0, eq))] =
        eq == std::string_view::npos ? "" : std::string(item.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return out;
}

TokenSourceOptions Options(std::shared_ptr<FakeTransport> transport, const Clock* clock) {
  TokenSourceOptions o;
  o.transport = std::move(transport);
  o.refresh.clock = clock;
  o.sleep = [](std::chrono::milliseconds) {};
  return o;
}

TEST(JwtAssertionTest, GoldenHeaderAndClaimsAndVerifiedSignature) {
  auto jwt = BuildJwtAssertion(Keys().key, kStorageReadWriteScope, kNow);
  ASSERT_TRUE(jwt.ok()) << jwt.error().ToString();
  auto parts = SplitJwt(*jwt);
  ASSERT_EQ(parts.size(), 3u);
  for (const auto& p : parts) {
    EXPECT_EQ(p.find_first_of("+/="), std::string::npos) << "base64url without padding: " << p;
  }
  EXPECT_EQ(B64UrlDecode(parts[0]), R"({"alg":"RS256","typ":"JWT","kid":"key-1"})");
  EXPECT_EQ(B64UrlDecode(parts[1]),
            R"({"iss":"sluice@proj.iam.gserviceaccount.com",)"
            R"("scope":"https://www.googleapis.com/auth/devstorage.read_write",)"
            R"("aud":"https://oauth2.example.test/token","iat":1765000000,"exp":1765003600})");
  std::string signature = B64UrlDecode(parts[2]);
  EXPECT_EQ(signature.size(), 256u);  // RSA-2048
  EXPECT_TRUE(VerifyRs256(Keys().sa.public_pem, parts[0] + "." + parts[1], signature));
  // A different key pair must not verify it (the check above can fail).
  auto other = testing::MakeTestServiceAccount("x@y", "k");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(VerifyRs256(other->public_pem, parts[0] + "." + parts[1], signature));
  EXPECT_FALSE(VerifyRs256(Keys().sa.public_pem, parts[0] + "." + parts[1] + "x", signature));
}

TEST(ServiceAccountTokenTest, ExchangesTheAssertionAtTheKeysTokenUri) {
  auto transport = std::make_shared<FakeTransport>();
  transport->Push(
      MakeResponse(200, R"({"access_token":"ya29.first","expires_in":3599,"token_type":"Bearer"})"));
  FakeClock clock(kNow);
  ServiceAccountTokenProvider provider(Keys().key, Options(transport, &clock));
  auto token = provider.Get();
  ASSERT_TRUE(token.ok()) << token.error().ToString();
  EXPECT_EQ(token->token.Reveal(), "ya29.first");
  EXPECT_EQ(*token->expiration, kNow + std::chrono::seconds(3599));
  EXPECT_EQ(provider.Email(), "sluice@proj.iam.gserviceaccount.com");

  ASSERT_EQ(transport->count(), 1u);
  const auto req = transport->requests()[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.url, "https://oauth2.example.test/token");
  EXPECT_EQ(HeaderOf(req, "Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(HeaderOf(req, "Authorization"), "");
  auto form = ParseForm(*req.body.data);
  EXPECT_EQ(form["grant_type"], "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer");
  auto parts = SplitJwt(form["assertion"]);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_TRUE(VerifyRs256(Keys().sa.public_pem, parts[0] + "." + parts[1], B64UrlDecode(parts[2])));
  EXPECT_THAT(B64UrlDecode(parts[1]), HasSubstr(R"("iat":1765000000)"));

  // Cached: no second exchange.
  ASSERT_TRUE(provider.Get().ok());
  EXPECT_EQ(transport->count(), 1u);
}

TEST(ServiceAccountTokenTest, RetriesA503AndAThrottleInTheExecutor) {
  auto transport = std::make_shared<FakeTransport>();
  transport->Push(MakeResponse(503, "backend"));
  transport->Push(MakeResponse(429, R"({"error":"rate_limit_exceeded"})"));
  transport->Push(MakeResponse(200, R"({"access_token":"ya29.ok","expires_in":3600})"));
  FakeClock clock(kNow);
  ServiceAccountTokenProvider provider(Keys().key, Options(transport, &clock));
  auto token = provider.Get();
  ASSERT_TRUE(token.ok()) << token.error().ToString();
  EXPECT_EQ(transport->count(), 3u);
}

TEST(ServiceAccountTokenTest, InvalidGrantIsUnauthenticatedWithoutSecrets) {
  auto transport = std::make_shared<FakeTransport>();
  transport->Push(
      MakeResponse(400, R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})"));
  FakeClock clock(kNow);
  ServiceAccountTokenProvider provider(Keys().key, Options(transport, &clock));
  auto token = provider.Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(token.error().provider_code, "invalid_grant");
  EXPECT_THAT(token.error().message, HasSubstr("Invalid JWT Signature"));
  EXPECT_THAT(token.error().message, HasSubstr("check that the service-account key is current"));
  EXPECT_THAT(token.error().message, Not(HasSubstr("PRIVATE KEY")));
  EXPECT_THAT(token.error().message, Not(HasSubstr("assertion=")));
  EXPECT_EQ(transport->count(), 1u) << "an invalid grant is not retried";
}

TEST(ServiceAccountTokenTest, RefreshesAheadOfExpiryWithAFakeClock) {
  auto transport = std::make_shared<FakeTransport>();
  int issued = 0;
  transport->SetHandler([&](const http::OutboundRequest&) -> Result<http::OutboundResponse> {
    return MakeResponse(200, fmt::format(R"({{"access_token":"ya29.t{}","expires_in":3600}})", ++issued));
  });
  FakeClock clock(kNow);
  auto options = Options(transport, &clock);
  options.refresh.refresh_margin = std::chrono::seconds(300);
  ServiceAccountTokenProvider provider(Keys().key, options);
  EXPECT_EQ(provider.Get()->token.Reveal(), "ya29.t1");
  clock.Advance(std::chrono::seconds(3299));  // 301 s left: still outside the margin
  EXPECT_EQ(provider.Get()->token.Reveal(), "ya29.t1");
  EXPECT_EQ(transport->count(), 1u);
  clock.Advance(std::chrono::seconds(2));  // 299 s left: refresh now, before it expires
  EXPECT_EQ(provider.Get()->token.Reveal(), "ya29.t2");
  EXPECT_EQ(provider.refresh_count(), 2);
  // The new assertion is dated with the new time.
  auto form = ParseForm(*transport->requests()[1].body.data);
  EXPECT_THAT(B64UrlDecode(SplitJwt(form["assertion"])[1]), HasSubstr(R"("iat":1765003301)"));
  // Invalidate (after a 401) forces a new exchange.
  provider.Invalidate();
  EXPECT_EQ(provider.Get()->token.Reveal(), "ya29.t3");
}

TEST(ServiceAccountTokenTest, KeepsAValidTokenWhenARefreshFails) {
  auto transport = std::make_shared<FakeTransport>();
  transport->Push(MakeResponse(200, R"({"access_token":"ya29.old","expires_in":3600})"));
  FakeClock clock(kNow);
  auto options = Options(transport, &clock);
  options.retry.max_attempts = 1;
  ServiceAccountTokenProvider provider(Keys().key, options);
  ASSERT_TRUE(provider.Get().ok());
  transport->Push(MakeResponse(503, "down"));
  clock.Advance(std::chrono::seconds(3400));
  auto t = provider.Get();
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->token.Reveal(), "ya29.old");
  clock.Advance(std::chrono::seconds(300));  // now expired and the source still fails
  transport->Push(MakeResponse(503, "down"));
  EXPECT_FALSE(provider.Get().ok());
}

TEST(MetadataServerTokenTest, AsksTheMetadataServerNamedByGceMetadataHost) {
  auto transport = std::make_shared<FakeTransport>();
  transport->SetHandler([](const http::OutboundRequest& r) -> Result<http::OutboundResponse> {
    if (HeaderOf(r, "Metadata-Flavor") != "Google") return MakeResponse(403, "missing Metadata-Flavor");
    if (r.url.ends_with("/email")) return MakeResponse(200, "vm@proj.iam.gserviceaccount.com");
    return MakeResponse(200, R"({"access_token":"ya29.vm","expires_in":1800,"token_type":"Bearer"})");
  });
  FakeClock clock(kNow);
  auto env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "GCE_METADATA_HOST") return "127.0.0.1:8089";
    return std::nullopt;
  };
  MetadataServerTokenProvider provider(Options(transport, &clock), "", env);
  auto token = provider.Get();
  ASSERT_TRUE(token.ok()) << token.error().ToString();
  EXPECT_EQ(token->token.Reveal(), "ya29.vm");
  EXPECT_EQ(*token->expiration, kNow + std::chrono::seconds(1800));
  EXPECT_EQ(transport->requests()[0].method, "GET");
  EXPECT_EQ(transport->requests()[0].url,
            "http://127.0.0.1:8089/computeMetadata/v1/instance/service-accounts/default/token");
  EXPECT_EQ(provider.Email(), "vm@proj.iam.gserviceaccount.com");
  EXPECT_EQ(provider.Name(), "metadata server 127.0.0.1:8089");
}

TEST(MetadataServerTokenTest, DefaultsToMetadataGoogleInternal) {
  auto transport = std::make_shared<FakeTransport>();
  transport->Push(Error(ErrorCode::kUnavailable, "could not resolve host"));
  FakeClock clock(kNow);
  auto options = Options(transport, &clock);
  options.retry.max_attempts = 1;
  MetadataServerTokenProvider provider(options, "", [](std::string_view) { return std::nullopt; });
  auto token = provider.Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(transport->requests()[0].url,
            "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token");
  EXPECT_THAT(token.error().message, HasSubstr("set GOOGLE_APPLICATION_CREDENTIALS"));
}

class KeyFileTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    path_ = fmt::format("/tmp/sluice-gcp-key-{}-{}.json", ::getpid(), counter_++);
    std::ofstream(path_) << text;
    paths_.push_back(path_);
    return path_;
  }
  void TearDown() override {
    for (const auto& p : paths_) ::unlink(p.c_str());
  }
  EnvGetter EnvWith(std::string path) {
    return [path](std::string_view name) -> std::optional<std::string> {
      if (name == "GOOGLE_APPLICATION_CREDENTIALS") return path;
      return std::nullopt;
    };
  }
  std::string path_;
  std::vector<std::string> paths_;
  int counter_ = 0;
};

TEST_F(KeyFileTest, GoogleApplicationCredentialsSelectsTheServiceAccount) {
  std::string path = Write(testing::ServiceAccountKeyJson(Keys().sa, "https://oauth2.example.test/token"));
  auto provider = MakeDefaultTokenProvider(
      Options(std::make_shared<FakeTransport>(), &SystemClock::Instance()), "", EnvWith(path));
  ASSERT_TRUE(provider.ok()) << provider.error().ToString();
  EXPECT_EQ((*provider)->Email(), "sluice@proj.iam.gserviceaccount.com");
  EXPECT_THAT((*provider)->Name(), HasSubstr(path));
  EXPECT_EQ(KeyFilePath("/explicit.json", EnvWith(path)), "/explicit.json");
}

TEST_F(KeyFileTest, BadKeyFilesGiveAClearErrorWithoutKeyMaterial) {
  auto load = [&](const std::string& text) { return LoadServiceAccountKey(Write(text)); };
  // Not JSON.
  auto r = load("not json at all");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, HasSubstr(path_));
  EXPECT_THAT(r.error().message, HasSubstr("not JSON"));
  // A user credential, not a service account.
  r = load(R"({"type":"authorized_user","client_id":"x","refresh_token":"1//secret-refresh"})");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("authorized_user"));
  EXPECT_THAT(r.error().message, Not(HasSubstr("secret-refresh")));
  // A corrupted private key: the message names the field, never the key text.
  boost::json::object key =
      boost::json::parse(testing::ServiceAccountKeyJson(Keys().sa, "https://t/token")).as_object();
  std::string pem = Keys().sa.private_pem;
  std::string broken = pem.substr(0, 60) + "CORRUPTEDKEYMATERIALxyz" + pem.substr(90);
  key["private_key"] = broken;
  r = load(boost::json::serialize(key));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, HasSubstr("private_key"));
  EXPECT_THAT(r.error().message, HasSubstr("not a readable PEM private key"));
  EXPECT_THAT(r.error().message, Not(HasSubstr("CORRUPTEDKEYMATERIAL")));
  EXPECT_THAT(r.error().message, Not(HasSubstr("BEGIN")));
  // Missing client_email.
  key = boost::json::parse(testing::ServiceAccountKeyJson(Keys().sa, "https://t/token")).as_object();
  key.erase("client_email");
  r = load(boost::json::serialize(key));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("client_email"));
  // A missing file through GOOGLE_APPLICATION_CREDENTIALS: no silent fallback to the metadata server.
  auto p = MakeDefaultTokenProvider(Options(std::make_shared<FakeTransport>(), &SystemClock::Instance()), "",
                                    EnvWith("/nonexistent/key.json"));
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.error().message, HasSubstr("/nonexistent/key.json"));
  EXPECT_THAT(p.error().message, HasSubstr("GOOGLE_APPLICATION_CREDENTIALS"));
}

TEST(SecretTest, TokensAndKeysPrintAsStars) { EXPECT_EQ(fmt::format("{}", Keys().key.private_key), "***"); }

}  // namespace
}  // namespace sluice::gcp
