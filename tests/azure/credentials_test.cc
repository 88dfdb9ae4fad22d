// Azure credentials: service-principal validation, the authority host (AZURE_AUTHORITY_HOST), the
// client-credentials request, token caching and refresh ahead of expiry, Entra ID errors, Shared Key and SAS.
#include "azure/credentials.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "aws/fake_transport.h"
#include "cloud/bearer_token.h"

namespace sluice::azure {
namespace {

using aws::testing::FakeTransport;
using aws::testing::MakeResponse;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
constexpr const char* kClient = "11111111-2222-3333-4444-555555555555";

EnvGetter Env(std::map<std::string, std::string> vars) {
  return [vars](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

ServicePrincipal Sp() { return ServicePrincipal{kTenant, kClient, Secret("s3cr3t+/=&value")}; }

TEST(AzureCredentials, ValidatesTenantAndClientIds) {
  EXPECT_TRUE(ValidateServicePrincipal(Sp()).ok());
  EXPECT_TRUE(ValidateServicePrincipal({"contoso.onmicrosoft.com", kClient, Secret("x")}).ok());
  auto bad_tenant = ValidateServicePrincipal({"../evil", kClient, Secret("x")});
  ASSERT_FALSE(bad_tenant.ok());
  EXPECT_THAT(bad_tenant.error().message, HasSubstr("Directory (tenant) ID"));
  auto bad_client = ValidateServicePrincipal({kTenant, "sluice", Secret("x")});
  ASSERT_FALSE(bad_client.ok());
  EXPECT_THAT(bad_client.error().message, HasSubstr("Application (client) ID"));
  EXPECT_FALSE(ValidateServicePrincipal({kTenant, kClient, Secret("")}).ok());
}

TEST(AzureCredentials, AuthorityHostComesFromTheEnvironmentAsInAzureSdks) {
  EXPECT_EQ(*ResolveAuthorityHost("", Env({})), "https://login.microsoftonline.com");
  EXPECT_EQ(*ResolveAuthorityHost("", Env({{"AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"}})),
            "https://login.microsoftonline.us");
  EXPECT_EQ(*ResolveAuthorityHost("http://127.0.0.1:8080", Env({})), "http://127.0.0.1:8080");
  auto plain = ResolveAuthorityHost("", Env({{"AZURE_AUTHORITY_HOST", "http://login.example.com"}}));
  ASSERT_FALSE(plain.ok());
  EXPECT_THAT(plain.error().message, HasSubstr("AZURE_AUTHORITY_HOST"));
  EXPECT_FALSE(ResolveAuthorityHost("https://login.example.com?x=1", Env({})).ok());
  EXPECT_FALSE(ResolveAuthorityHost("ftp://login.example.com", Env({})).ok());
}

TEST(AzureCredentials, TokenRequestIsTheClientCredentialsGrantForStorage) {
  EXPECT_EQ(TokenEndpoint("https://login.microsoftonline.com", kTenant),
            std::string("https://login.microsoftonline.com/") + kTenant + "/oauth2/v2.0/token");
  EXPECT_EQ(TokenRequestBody(Sp(), kStorageScope),
            std::string("grant_type=client_credentials&client_id=") + kClient +
                "&client_secret=s3cr3t%2B%2F%3D%26value&scope=https%3A%2F%2Fstorage.azure.com%2F.default");
}

TEST(AzureCredentials, ParsesEntraTokenAnswersIncludingStringExpiry) {
  TimePoint now = std::chrono::system_clock::from_time_t(1'700'000'000);
  auto t = cloud::ParseTokenResponse(R"({"token_type":"Bearer","expires_in":"3599","ext_expires_in":3599,"access_token":"eyJ0"})",
                                     now, "test");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->token.Reveal(), "eyJ0");
  EXPECT_EQ(*t->expiration, now + std::chrono::seconds(3599));
  EXPECT_FALSE(cloud::ParseTokenResponse(R"({"token_type":"Bearer"})", now, "test").ok());
}

struct Fixture {
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  FakeClock clock{std::chrono::system_clock::from_time_t(1'700'000'000)};
  TokenSourceOptions Options() {
    TokenSourceOptions o;
    o.transport = transport;
    o.authority_host = "https://login.microsoftonline.com";
    o.refresh.clock = &clock;
    o.sleep = [](std::chrono::milliseconds) {};
    o.env = Env({});
    return o;
  }
};

TEST(AzureCredentials, ClientSecretProviderPostsTheFormAndCachesTheToken) {
  Fixture f;
  f.transport->Push(MakeResponse(200, R"({"token_type":"Bearer","expires_in":3600,"access_token":"tok-1"})"));
  f.transport->Push(MakeResponse(200, R"({"token_type":"Bearer","expires_in":3600,"access_token":"tok-2"})"));
  auto provider = MakeClientSecretTokenProvider(Sp(), f.Options());
  ASSERT_TRUE(provider.ok()) << provider.error().ToString();
  EXPECT_EQ((*provider)->Get()->token.Reveal(), "tok-1");
  EXPECT_EQ((*provider)->Get()->token.Reveal(), "tok-1");  // cached
  ASSERT_EQ(f.transport->count(), 1u);
  const auto req = f.transport->requests()[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.url, std::string("https://login.microsoftonline.com/") + kTenant + "/oauth2/v2.0/token");
  EXPECT_EQ(aws::testing::HeaderOf(req, "Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_THAT(*req.body.data, HasSubstr("grant_type=client_credentials"));
  EXPECT_THAT((*provider)->Name(), HasSubstr(kClient));
  EXPECT_THAT((*provider)->Name(), Not(HasSubstr("s3cr3t")));

  // Five minutes before expiry the next Get() refreshes.
  f.clock.Set(f.clock.Now() + std::chrono::seconds(3600 - 299));
  EXPECT_EQ((*provider)->Get()->token.Reveal(), "tok-2");
  EXPECT_EQ(f.transport->count(), 2u);
}

TEST(AzureCredentials, AWrongSecretSaysWhatToCheckAndNeverEchoesIt) {
  Fixture f;
  f.transport->Push(MakeResponse(
      401, R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]})"));
  auto provider = MakeClientSecretTokenProvider(Sp(), f.Options());
  ASSERT_TRUE(provider.ok());
  auto t = (*provider)->Get();
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(t.error().provider_code, "invalid_client");
  EXPECT_THAT(t.error().message, HasSubstr("AADSTS7000215"));
  EXPECT_THAT(t.error().message, HasSubstr("client secret"));
  EXPECT_THAT(t.error().message, Not(HasSubstr("s3cr3t")));
  EXPECT_EQ(f.transport->count(), 1u);  // not retried
}

TEST(AzureCredentials, ATokenEndpointOutageIsRetried) {
  Fixture f;
  f.transport->Push(MakeResponse(503, "busy"));
  f.transport->Push(Error(ErrorCode::kTransient, "connection reset"));
  f.transport->Push(MakeResponse(200, R"({"expires_in":3600,"access_token":"tok"})"));
  auto provider = MakeClientSecretTokenProvider(Sp(), f.Options());
  ASSERT_TRUE(provider.ok());
  auto t = (*provider)->Get();
  ASSERT_TRUE(t.ok()) << t.error().ToString();
  EXPECT_EQ(f.transport->count(), 3u);
}

TEST(AzureCredentials, SharedKeyAndSasAreValidated) {
  EXPECT_TRUE(StorageCredential::SharedKey("acct", Secret("a2V5")).ok());
  auto bad = StorageCredential::SharedKey("acct", Secret("%%%"));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message, HasSubstr("Access keys"));
  auto sas = StorageCredential::Sas(Secret("?sv=2021-12-02&ss=b&sig=abc%3D"));
  ASSERT_TRUE(sas.ok());
  EXPECT_EQ(sas->secret().Reveal(), "sv=2021-12-02&ss=b&sig=abc%3D");
  EXPECT_EQ(sas->Describe(), "a SAS token");
  EXPECT_FALSE(StorageCredential::Sas(Secret("sv=2021-12-02")).ok());
  EXPECT_FALSE(StorageCredential::Sas(Secret("sig=a b")).ok());
}

}  // namespace
}  // namespace sluice::azure
