// Environment, shared files, default chain, and AssumeRole / web identity through STS on a fake transport,
// with refresh driven by a FakeClock.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "aws/sts.h"
#include "fake_transport.h"

namespace sluice::aws {
namespace {

using namespace std::chrono_literals;
using testing::FakeTransport;
using testing::HeaderOf;
using testing::MakeResponse;
using testing::QueryErrorXml;

EnvGetter FakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("sluice-aws-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& content) {
    auto p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

TEST(EnvironmentProviderTest, ReadsKeysAndToken) {
  EnvironmentCredentialsProvider p(FakeEnv(
      {{"AWS_ACCESS_KEY_ID", "AKIDENV"}, {"AWS_SECRET_ACCESS_KEY", "envsecret"}, {"AWS_SESSION_TOKEN", "envtok"}}));
  auto c = p.Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "AKIDENV");
  EXPECT_EQ(c->secret_access_key.Reveal(), "envsecret");
  EXPECT_EQ(c->session_token.Reveal(), "envtok");
  EXPECT_FALSE(c->expiration.has_value());
}

TEST(EnvironmentProviderTest, MissingOrHalfSet) {
  EXPECT_EQ(EnvironmentCredentialsProvider(FakeEnv({})).Get().error().code, ErrorCode::kUnauthenticated);
  auto half = EnvironmentCredentialsProvider(FakeEnv({{"AWS_ACCESS_KEY_ID", "AKID"}})).Get();
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.error().message.find("AWS_SECRET_ACCESS_KEY is not"), std::string::npos);
}

TEST(IniTest, ParsesCredentialsAndConfigFormats) {
  auto creds = ParseIni(
      "# comment\n[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key=sec#ret ; trailing\n"
      "\n[prod]\r\nAWS_ACCESS_KEY_ID = AKIDPROD\r\naws_secret_access_key = s2\r\naws_session_token = t2\r\n",
      false);
  EXPECT_EQ(creds["default"]["aws_access_key_id"], "AKIDDEF");
  EXPECT_EQ(creds["default"]["aws_secret_access_key"], "sec#ret");  // '#' inside a value is not a comment
  EXPECT_EQ(creds["prod"]["aws_access_key_id"], "AKIDPROD");
  EXPECT_EQ(creds["prod"]["aws_session_token"], "t2");
  auto config = ParseIni(
      "[default]\nregion = us-east-1\n[profile analytics]\nregion = eu-west-1\ns3 =\n  max_concurrent_requests = 20\n"
      "aws_access_key_id = AKIDCFG\naws_secret_access_key = cfgsecret\n",
      true);
  EXPECT_EQ(config["default"]["region"], "us-east-1");
  EXPECT_EQ(config["analytics"]["region"], "eu-west-1");
  EXPECT_EQ(config["analytics"]["aws_access_key_id"], "AKIDCFG");
  EXPECT_EQ(config["analytics"].count("max_concurrent_requests"), 0u);
}

TEST(ProfileProviderTest, CredentialsFileThenConfigFileAndEnvOverrides) {
  TempDir dir;
  std::string creds = dir.Write("creds", "[default]\naws_access_key_id=AKIDDEF\naws_secret_access_key=d\n"
                                         "[prod]\naws_access_key_id=AKIDPROD\naws_secret_access_key=p\n");
  std::string config = dir.Write("config", "[profile cfgonly]\naws_access_key_id=AKIDCFG\n"
                                           "aws_secret_access_key=c\nregion=ap-south-1\n");
  auto env = FakeEnv({{"AWS_SHARED_CREDENTIALS_FILE", creds}, {"AWS_CONFIG_FILE", config}});
  EXPECT_EQ(ProfileCredentialsProvider("", env).Get()->access_key_id, "AKIDDEF");
  EXPECT_EQ(ProfileCredentialsProvider("prod", env).Get()->access_key_id, "AKIDPROD");
  ProfileCredentialsProvider cfg("cfgonly", env);
  EXPECT_EQ(cfg.Get()->access_key_id, "AKIDCFG");
  EXPECT_EQ(cfg.Region(), "ap-south-1");
  auto env_profile = FakeEnv({{"AWS_SHARED_CREDENTIALS_FILE", creds}, {"AWS_CONFIG_FILE", config},
                              {"AWS_PROFILE", "prod"}});
  EXPECT_EQ(ProfileCredentialsProvider("", env_profile).Get()->access_key_id, "AKIDPROD");
  auto missing = ProfileCredentialsProvider("nope", env).Get();
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kUnauthenticated);
  EXPECT_NE(missing.error().message.find("'nope'"), std::string::npos);
}

TEST(ProfileProviderTest, HomeDefaultLocation) {
  TempDir dir;
  dir.Write(".aws/credentials", "[default]\naws_access_key_id=AKIDHOME\naws_secret_access_key=h\n");
  EXPECT_EQ(ProfileCredentialsProvider("", FakeEnv({{"HOME", dir.path()}})).Get()->access_key_id, "AKIDHOME");
}

// --- STS ---------------------------------------------------------------------------------------------------

std::string AssumeRoleXml(std::string_view key_id, std::string_view expiration) {
  return fmt::format(
      "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>"
      "<Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>secret-{}</SecretAccessKey>"
      "<SessionToken>token-{}</SessionToken><Expiration>{}</Expiration></Credentials>"
      "<AssumedRoleUser><AssumedRoleId>AROA123:sluice-p12-daily</AssumedRoleId>"
      "<Arn>arn:aws:sts::123456789012:assumed-role/export/sluice-p12-daily</Arn></AssumedRoleUser>"
      "</AssumeRoleResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></AssumeRoleResponse>",
      key_id, key_id, key_id, expiration);
}

std::map<std::string, std::string> ParseForm(std::string_view body) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t amp = body.find('&', pos);
    if (amp == std::string_view::npos) amp = body.size();
    std::string_view pair = body.substr(pos, amp - pos);
    size_t eq = pair.find('=');
    out[UriDecode(pair.substr(0, eq))] = UriDecode(pair.substr(eq + 1));
    pos = amp + 1;
  }
  return out;
}

struct StsHarness {
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  FakeClock clock{*ParseIso8601("2026-11-23T10:00:00Z")};
  std::shared_ptr<StsClient> Client(std::string endpoint = "http://127.0.0.1:5555") {
    StsOptions o;
    o.region = "eu-west-1";
    o.transport = transport;
    o.endpoint = std::move(endpoint);
    o.clock = &clock;
    o.sleep = [](std::chrono::milliseconds) {};
    Credentials base;
    base.access_key_id = "AKIDSLUICE";
    base.secret_access_key = Secret("sluice-own-secret");
    return std::make_shared<StsClient>(o, std::make_shared<StaticCredentialsProvider>(base));
  }
};

TEST(StsTest, AssumeRoleSendsSignedFormAndParsesMicrosecondExpiration) {
  StsHarness h;
  h.transport->Push(MakeResponse(200, AssumeRoleXml("ASIAONE", "2026-11-23T11:00:00.123456Z")));
  auto role = h.Client()->AssumeRole({"arn:aws:iam::123456789012:role/export", "sluice-p12-daily", "tok en+/=", 3600});
  ASSERT_TRUE(role.ok()) << role.error().ToString();
  EXPECT_EQ(role->credentials.access_key_id, "ASIAONE");
  EXPECT_EQ(role->credentials.secret_access_key.Reveal(), "secret-ASIAONE");
  EXPECT_EQ(role->credentials.session_token.Reveal(), "token-ASIAONE");
  EXPECT_EQ(*role->credentials.expiration, *ParseIso8601("2026-11-23T11:00:00Z") + 123456us);
  EXPECT_EQ(role->assumed_role_arn, "arn:aws:sts::123456789012:assumed-role/export/sluice-p12-daily");

  auto sent = h.transport->requests().at(0);
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.url, "http://127.0.0.1:5555/");
  EXPECT_EQ(HeaderOf(sent, "content-type"), "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_NE(HeaderOf(sent, "authorization").find("Credential=AKIDSLUICE/20261123/eu-west-1/sts/aws4_request"),
            std::string::npos);
  EXPECT_EQ(HeaderOf(sent, "x-amz-content-sha256"), "");  // not S3
  auto form = ParseForm(*sent.body.data);
  EXPECT_EQ(form["Action"], "AssumeRole");
  EXPECT_EQ(form["Version"], "2011-06-15");
  EXPECT_EQ(form["RoleArn"], "arn:aws:iam::123456789012:role/export");
  EXPECT_EQ(form["RoleSessionName"], "sluice-p12-daily");
  EXPECT_EQ(form["ExternalId"], "tok en+/=");
  EXPECT_EQ(form["DurationSeconds"], "3600");
  EXPECT_NE(sent.body.data->find("ExternalId=tok%20en%2B%2F%3D"), std::string::npos);
}

TEST(StsTest, WrongExternalIdIsAccessDeniedWithTrustPolicyHint) {
  StsHarness h;
  h.transport->Push(MakeResponse(
      403, QueryErrorXml("AccessDenied",
                         "User: arn:aws:iam::111:user/sluice is not authorized to perform: sts:AssumeRole")));
  auto role = h.Client()->AssumeRole({"arn:aws:iam::123456789012:role/export", "sluice-p1", "wrong", 3600});
  ASSERT_FALSE(role.ok());
  EXPECT_EQ(role.error().code, ErrorCode::kAccessDenied);
  EXPECT_EQ(role.error().provider_code, "AccessDenied");
  EXPECT_EQ(role.error().request_id, "q-req-1");
  EXPECT_NE(role.error().message.find("trust policy"), std::string::npos);
  EXPECT_NE(role.error().message.find("sts:ExternalId"), std::string::npos);
  EXPECT_EQ(role.error().ToString().find("sluice-own-secret"), std::string::npos);
  EXPECT_EQ(h.transport->count(), 1u);  // not retried
}

TEST(StsTest, RetriesThrottlingThroughTheSameExecutor) {
  StsHarness h;
  h.transport->Push(MakeResponse(400, QueryErrorXml("Throttling", "Rate exceeded")));
  h.transport->Push(MakeResponse(200, AssumeRoleXml("ASIATWO", "2026-11-23T11:00:00Z")));
  auto role = h.Client()->AssumeRole({"arn:aws:iam::1:role/r", "sluice-p1", "", 3600});
  ASSERT_TRUE(role.ok()) << role.error().ToString();
  EXPECT_EQ(h.transport->count(), 2u);
  EXPECT_EQ(ParseForm(*h.transport->requests()[0].body.data).count("ExternalId"), 0u);
}

TEST(StsTest, GetCallerIdentity) {
  StsHarness h;
  h.transport->Push(MakeResponse(
      200, "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/sluice</Arn>"
           "<UserId>AIDAEXAMPLE</UserId><Account>111122223333</Account></GetCallerIdentityResult>"
           "</GetCallerIdentityResponse>"));
  auto id = h.Client()->GetCallerIdentity();
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  EXPECT_EQ(id->arn, "arn:aws:iam::111122223333:user/sluice");
  EXPECT_EQ(id->account, "111122223333");
  EXPECT_EQ(ParseForm(*h.transport->requests()[0].body.data)["Action"], "GetCallerIdentity");
}

TEST(StsTest, EndpointResolution) {
  auto none = FakeEnv({});
  EXPECT_EQ(ResolveStsEndpoint("eu-west-1", "", none), "https://sts.eu-west-1.amazonaws.com");
  EXPECT_EQ(ResolveStsEndpoint("cn-north-1", "", none), "https://sts.cn-north-1.amazonaws.com.cn");
  // Never another service's host from a name that is not a region's: the global STS endpoint instead.
  EXPECT_EQ(ResolveStsEndpoint("s3", "", none), "https://sts.amazonaws.com");
  EXPECT_EQ(ResolveStsEndpoint("s3-external-1", "", none), "https://sts.amazonaws.com");
  EXPECT_EQ(ResolveStsEndpoint("garage", "", none), "https://sts.amazonaws.com");
  EXPECT_EQ(ResolveStsEndpoint("eu-west-1", "", FakeEnv({{"AWS_ENDPOINT_URL", "http://any:1/"}})), "http://any:1");
  EXPECT_EQ(ResolveStsEndpoint("eu-west-1", "",
                               FakeEnv({{"AWS_ENDPOINT_URL", "http://any:1"}, {"AWS_ENDPOINT_URL_STS", "http://sts:2"}})),
            "http://sts:2");
  EXPECT_EQ(ResolveStsEndpoint("eu-west-1", "http://explicit:3",
                               FakeEnv({{"AWS_ENDPOINT_URL_STS", "http://sts:2"}})),
            "http://explicit:3");
}

TEST(StsTest, SessionNames) {
  EXPECT_EQ(MakeSessionName("p12", "daily"), "sluice-p12-daily");
  EXPECT_EQ(MakeSessionName("my project", "hourly/events"), "sluice-my-project-hourly-events");
  std::string long_name = MakeSessionName(std::string(100, 'x'), "y");
  EXPECT_EQ(long_name.size(), 64u);
  EXPECT_TRUE(ValidateSessionName(long_name).ok());
  EXPECT_TRUE(ValidateSessionName("a+=,.@_-Z9").ok());
  EXPECT_FALSE(ValidateSessionName("x").ok());
  EXPECT_FALSE(ValidateSessionName("has space").ok());
  EXPECT_FALSE(ValidateSessionName(std::string(65, 'a')).ok());
}

// --- AssumeRoleProvider refresh under a FakeClock ------------------------------------------------------------

struct RefreshHarness : StsHarness {
  int issued = 0;
  bool fail = false;
  std::chrono::seconds lifetime{3600};
  std::shared_ptr<AssumeRoleProvider> provider;

  RefreshHarness() {
    transport->SetHandler([this](const http::OutboundRequest&) -> Result<http::OutboundResponse> {
      if (fail) return MakeResponse(400, QueryErrorXml("AccessDenied", "role trust policy changed"));
      ++issued;
      return MakeResponse(200, AssumeRoleXml("ASIA" + std::to_string(issued),
                                             FormatIso8601(clock.Now() + lifetime)));
    });
    AssumeRoleProvider::Options o;
    o.role_arn = "arn:aws:iam::123456789012:role/export";
    o.session_name = "sluice-p12-daily";
    o.external_id = "project-token";
    o.refresh.clock = &clock;
    o.refresh.refresh_margin = 300s;
    o.refresh.retry_interval = 30s;
    provider = std::make_shared<AssumeRoleProvider>(Client(), o);
  }
};

TEST(AssumeRoleProviderTest, CachesAndRefreshesAheadOfExpiry) {
  RefreshHarness h;
  auto c1 = h.provider->Get();
  ASSERT_TRUE(c1.ok()) << c1.error().ToString();
  EXPECT_EQ(c1->access_key_id, "ASIA1");
  h.clock.Advance(54min);  // 6 min left: still outside the 5 min margin
  EXPECT_EQ(h.provider->Get()->access_key_id, "ASIA1");
  EXPECT_EQ(h.transport->count(), 1u);
  h.clock.Advance(2min);  // 4 min left: refresh
  EXPECT_EQ(h.provider->Get()->access_key_id, "ASIA2");
  EXPECT_EQ(h.transport->count(), 2u);
  EXPECT_EQ(h.provider->refresh_count(), 2);
}

TEST(AssumeRoleProviderTest, LongRunningUserNeverGetsExpiredCredentials) {
  // A 30-hour backfill asking for credentials every 7 seconds of fake time.
  RefreshHarness h;
  for (int i = 0; i < 30 * 3600 / 7; ++i) {
    auto c = h.provider->Get();
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(c->expiration.has_value());
    // Always at least the margin minus one step left: never expired, never about to expire mid-request.
    ASSERT_GT(*c->expiration - h.clock.Now(), 290s) << "at step " << i;
    h.clock.Advance(7s);
  }
  // About one AssumeRole per 55 minutes, not one per call.
  EXPECT_GE(h.issued, 30);
  EXPECT_LE(h.issued, 35);
}

TEST(AssumeRoleProviderTest, FailedRefreshKeepsStillValidCredentialsThenFails) {
  RefreshHarness h;
  ASSERT_EQ(h.provider->Get()->access_key_id, "ASIA1");
  h.fail = true;
  h.clock.Advance(57min);  // inside the margin, 3 min of validity left
  auto c = h.provider->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "ASIA1");  // kept, with a warning logged
  size_t calls = h.transport->count();
  h.clock.Advance(10s);  // within retry_interval: no new STS call
  EXPECT_EQ(h.provider->Get()->access_key_id, "ASIA1");
  EXPECT_EQ(h.transport->count(), calls);
  h.clock.Advance(30s);  // retry interval passed: tries again, still failing, still valid
  EXPECT_EQ(h.provider->Get()->access_key_id, "ASIA1");
  EXPECT_EQ(h.transport->count(), calls + 1);
  h.clock.Advance(3min);  // now expired: the error surfaces
  auto expired = h.provider->Get();
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.error().code, ErrorCode::kAccessDenied);
  h.fail = false;  // the customer fixes the role
  EXPECT_EQ(h.provider->Get()->access_key_id, "ASIA2");
}

TEST(AssumeRoleProviderTest, InvalidateForcesNewCredentials) {
  RefreshHarness h;
  ASSERT_EQ(h.provider->Get()->access_key_id, "ASIA1");
  h.provider->Invalidate();
  EXPECT_EQ(h.provider->Get()->access_key_id, "ASIA2");
}

TEST(AssumeRoleProviderTest, ConcurrentCallersShareOneRefresh) {
  RefreshHarness h;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 50; ++j) {
        if (h.provider->Get().ok()) ok++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 400);
  EXPECT_EQ(h.issued, 1);
}

TEST(AssumeRoleProviderTest, ExecutorRefreshesOnExpiredTokenFromS3) {
  RefreshHarness h;
  auto s3_transport = std::make_shared<FakeTransport>();
  s3_transport->Push(MakeResponse(400, testing::S3ErrorXml("ExpiredToken")));
  s3_transport->Push(MakeResponse(200));
  Executor::Options o;
  o.transport = s3_transport;
  o.credentials = h.provider;
  o.signing = SigningOptions::S3("eu-west-1");
  o.clock = &h.clock;
  auto r = Executor(std::move(o)).Call([]() -> Result<http::OutboundRequest> {
    return http::OutboundRequest{"GET", "https://b.s3.eu-west-1.amazonaws.com/k", {}, {}};
  });
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  auto sent = s3_transport->requests();
  EXPECT_EQ(HeaderOf(sent[0], "x-amz-security-token"), "token-ASIA1");
  EXPECT_EQ(HeaderOf(sent[1], "x-amz-security-token"), "token-ASIA2");
}

// --- Web identity and the default chain ----------------------------------------------------------------------

TEST(WebIdentityTest, UnsignedCallWithTokenFromFile) {
  TempDir dir;
  std::string token_file = dir.Write("token", "eyJhbGciOiJSUzI1NiJ9.payload.sig\n");
  auto transport = std::make_shared<FakeTransport>();
  transport->Push(MakeResponse(
      200, "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
           "<AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>websecret</SecretAccessKey>"
           "<SessionToken>webtoken</SessionToken><Expiration>2026-11-23T12:00:00Z</Expiration></Credentials>"
           "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"));
  FakeClock clock(*ParseIso8601("2026-11-23T10:00:00Z"));
  DefaultChainOptions o;
  o.transport = transport;
  o.env = FakeEnv({{"AWS_WEB_IDENTITY_TOKEN_FILE", token_file},
                   {"AWS_ROLE_ARN", "arn:aws:iam::111:role/sluice-pod"},
                   {"AWS_ROLE_SESSION_NAME", "sluice-pod-1"},
                   {"AWS_REGION", "eu-central-1"},
                   {"HOME", dir.path()}});
  o.clock = &clock;
  auto chain = MakeDefaultCredentialsChain(o);
  auto c = chain->Get();
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAWEB");
  EXPECT_EQ(chain->Name(), "web-identity arn:aws:iam::111:role/sluice-pod");
  auto sent = transport->requests().at(0);
  EXPECT_EQ(sent.url, "https://sts.eu-central-1.amazonaws.com/");
  EXPECT_EQ(HeaderOf(sent, "authorization"), "");  // unsigned
  auto form = ParseForm(*sent.body.data);
  EXPECT_EQ(form["Action"], "AssumeRoleWithWebIdentity");
  EXPECT_EQ(form["WebIdentityToken"], "eyJhbGciOiJSUzI1NiJ9.payload.sig");
  EXPECT_EQ(form["RoleSessionName"], "sluice-pod-1");
}

TEST(DefaultChainTest, OrderExplicitEnvProfile) {
  TempDir dir;
  std::string creds = dir.Write("creds", "[default]\naws_access_key_id=AKIDPROFILE\naws_secret_access_key=p\n");
  DefaultChainOptions o;
  o.transport = std::make_shared<FakeTransport>();
  o.env = FakeEnv({{"AWS_SHARED_CREDENTIALS_FILE", creds},
                   {"AWS_ACCESS_KEY_ID", "AKIDENV"},
                   {"AWS_SECRET_ACCESS_KEY", "e"}});
  EXPECT_EQ(MakeDefaultCredentialsChain(o)->Get()->access_key_id, "AKIDENV");
  Credentials explicit_creds;
  explicit_creds.access_key_id = "AKIDEXPLICIT";
  explicit_creds.secret_access_key = Secret("x");
  o.explicit_credentials = explicit_creds;
  EXPECT_EQ(MakeDefaultCredentialsChain(o)->Get()->access_key_id, "AKIDEXPLICIT");
  o.explicit_credentials.reset();
  o.env = FakeEnv({{"AWS_SHARED_CREDENTIALS_FILE", creds}});
  auto chain = MakeDefaultCredentialsChain(o);
  EXPECT_EQ(chain->Get()->access_key_id, "AKIDPROFILE");
  EXPECT_EQ(chain->Name(), "profile default");
}

TEST(DefaultChainTest, NothingConfiguredSaysWhatWasTried) {
  TempDir dir;
  DefaultChainOptions o;
  o.transport = std::make_shared<FakeTransport>();
  o.env = FakeEnv({{"HOME", dir.path()}});
  auto c = MakeDefaultCredentialsChain(o)->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kUnauthenticated);
  EXPECT_NE(c.error().message.find("environment"), std::string::npos);
  EXPECT_NE(c.error().message.find("profile default"), std::string::npos);
}

}  // namespace
}  // namespace sluice::aws
