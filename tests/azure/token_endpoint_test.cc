// The Entra ID client-credentials flow end to end: against a loopback token endpoint (checks the form Sluice
// posts, answers as Entra ID does), and against Azurite in its OAuth mode (`--oauth basic` over HTTPS), which
// accepts a bearer token whose claims look like Entra ID's (issuer, audience, lifetime; it does not verify the
// signature) — so a Blob store authorised only by the service principal's token writes and reads there.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "azure/credentials.h"
#include "cloud/url.h"
#include "common/crypto.h"
#include "objstore/azure/azure_blob_store.h"
#include "support/azurite_server.h"
#include "support/entra_token_endpoint.h"

namespace sluice::azure {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
constexpr const char* kClient = "11111111-2222-3333-4444-555555555555";
constexpr const char* kSecret = "good~secret+/=";

// The loopback Entra ID token endpoint (tests/support/entra_token_endpoint.h) for this file's principal.
class TokenEndpoint : public testing::EntraTokenEndpoint {
 public:
  TokenEndpoint() : EntraTokenEndpoint(kTenant, kClient, kSecret) {}
};

TokenSourceOptions Options(const TokenEndpoint& endpoint) {
  TokenSourceOptions o;
  o.transport = http::MakeCurlTransport();
  o.authority_host = endpoint.Authority();
  o.env = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  return o;
}

TEST(EntraTokenFlow, FetchesAndCachesATokenFromTheTokenEndpoint) {
  TokenEndpoint endpoint;
  auto provider = MakeClientSecretTokenProvider({kTenant, kClient, Secret(kSecret)}, Options(endpoint));
  ASSERT_TRUE(provider.ok()) << provider.error().ToString();
  auto token = (*provider)->Get();
  ASSERT_TRUE(token.ok()) << token.error().ToString();
  EXPECT_EQ(std::count(token->token.Reveal().begin(), token->token.Reveal().end(), '.'), 2);
  ASSERT_TRUE((*provider)->Get().ok());
  EXPECT_EQ(endpoint.requests(), 1);
}

TEST(EntraTokenFlow, AuthorityHostComesFromAzureAuthorityHost) {
  TokenEndpoint endpoint;
  TokenSourceOptions o = Options(endpoint);
  o.authority_host.clear();
  std::string host = endpoint.Authority();
  o.env = [host](std::string_view name) -> std::optional<std::string> {
    if (name == "AZURE_AUTHORITY_HOST") return host;
    return std::nullopt;
  };
  auto provider = MakeClientSecretTokenProvider({kTenant, kClient, Secret(kSecret)}, o);
  ASSERT_TRUE(provider.ok());
  ASSERT_TRUE((*provider)->Get().ok());
  EXPECT_EQ(endpoint.requests(), 1);
}

TEST(EntraTokenFlow, AWrongSecretIsRefusedClearly) {
  TokenEndpoint endpoint;
  auto provider = MakeClientSecretTokenProvider({kTenant, kClient, Secret("wrong-secret")}, Options(endpoint));
  ASSERT_TRUE(provider.ok());
  auto token = (*provider)->Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.error().code, ErrorCode::kUnauthenticated);
  EXPECT_THAT(token.error().message, HasSubstr("AADSTS7000215"));
  EXPECT_THAT(token.error().message, HasSubstr("Certificates & secrets"));
  EXPECT_THAT(token.error().message, Not(HasSubstr("wrong-secret")));
  EXPECT_EQ(endpoint.requests(), 1);
}

using testing::MakeLoopbackCert;
using testing::TestCert;

TEST(EntraTokenFlow, AzuriteOAuthModeAcceptsTheServicePrincipalsToken) {
  char dir[] = "/tmp/sluice-azure-cert-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  TestCert cert = MakeLoopbackCert(dir);
  testing::AzuriteServer::Options ao;
  ao.cert_path = cert.cert_path;
  ao.key_path = cert.key_path;
  auto azurite = testing::AzuriteServer::Start(ao);
  ASSERT_TRUE(azurite.ok()) << azurite.error().ToString();

  http::TransportOptions tls;
  tls.ca_bundle = cert.cert_path;  // verification stays on: the test certificate is the trusted root
  auto transport = std::shared_ptr<http::HttpTransport>(http::MakeCurlTransport(tls));

  // The container is created with the account key (also accepted in OAuth mode).
  {
    Executor::Options o;
    o.transport = transport;
    o.credential = *StorageCredential::SharedKey(testing::AzuriteServer::kAccount,
                                                 Secret(testing::AzuriteServer::kAccountKey));
    Executor ex(std::move(o));
    std::string url = (*azurite)->BlobEndpoint() + "/oauth?restype=container";
    auto r = ex.Call([&] { return Result<http::OutboundRequest>(http::OutboundRequest{"PUT", url, {}, {}}); });
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }

  TokenEndpoint endpoint;
  auto tokens = MakeClientSecretTokenProvider({kTenant, kClient, Secret(kSecret)}, Options(endpoint));
  ASSERT_TRUE(tokens.ok());
  objstore::azure::AzureStoreOptions so;
  so.account = testing::AzuriteServer::kAccount;
  so.container = "oauth";
  so.endpoint = (*azurite)->BlobEndpoint();
  auto store = objstore::azure::AzureBlobStore::Create(so, StorageCredential::Token(*tokens), transport);
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  auto put = (*store)->Put("by-token.json", "{\"ok\":true}");
  ASSERT_TRUE(put.ok()) << put.error().ToString();
  EXPECT_EQ(*(*store)->Get("by-token.json"), "{\"ok\":true}");
  EXPECT_EQ((*store)->List("")->size(), 1u);
  EXPECT_EQ(endpoint.requests(), 1);  // one token served every request

  // A token for another audience is refused, and the message says what to check.
  auto foreign = std::make_shared<cloud::StaticTokenProvider>(cloud::AccessToken{
      Secret(testing::UnsignedJwt(
          R"({"alg":"RS256","typ":"JWT"})",
          R"({"aud":"https://management.azure.com","iss":"https://sts.windows.net/x/","iat":1,"nbf":1,"exp":4102444800})")),
      {}});
  auto denied_store = objstore::azure::AzureBlobStore::Create(so, StorageCredential::Token(foreign), transport);
  auto denied = (*denied_store)->Put("denied.json", "x");
  ASSERT_FALSE(denied.ok());
  EXPECT_THAT(denied.error().message, HasSubstr("audience"));
  (*azurite)->Stop();
  std::remove(cert.cert_path.c_str());
  std::remove(cert.key_path.c_str());
  ::rmdir(dir);
}

}  // namespace
}  // namespace sluice::azure
