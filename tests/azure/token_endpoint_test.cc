// The Entra ID client-credentials flow end to end: against a loopback token endpoint (checks the form Sluice
// posts, answers as Entra ID does), and against Azurite in its OAuth mode (`--oauth basic` over HTTPS), which
// accepts a bearer token whose claims look like Entra ID's (issuer, audience, lifetime; it does not verify the
// signature) — so a Blob store authorised only by the service principal's token writes and reads there.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "azure/credentials.h"
#include "cloud/url.h"
#include "common/crypto.h"
#include "objstore/azure/azure_blob_store.h"
#include "support/azurite_server.h"
#include "support/loopback_http.h"

namespace sluice::azure {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
constexpr const char* kClient = "11111111-2222-3333-4444-555555555555";
constexpr const char* kSecret = "good~secret+/=";

std::string B64Url(std::string_view s) {
  std::string out = Base64Encode(s);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

// A loopback OAuth2 token endpoint shaped like Entra ID's v2.0 one. Every loop is bounded by the stop flag.
class TokenEndpoint {
 public:
  TokenEndpoint() {
    auto fd = testing::ListenLoopback(port_);
    EXPECT_TRUE(fd.ok());
    listen_ = std::move(*fd);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TokenEndpoint() {
    stop_ = true;
    thread_.join();
  }
  std::string Authority() const { return fmt::format("http://127.0.0.1:{}", port_); }
  int requests() const { return requests_.load(); }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{listen_.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      testing::Fd client(::accept(listen_.get(), nullptr, nullptr));
      if (!client.valid()) continue;
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      std::string buffer;
      auto request = testing::ReadMessage(client.get(), buffer, deadline, /*is_response=*/false);
      if (!request.ok()) continue;
      ++requests_;
      testing::WireMessage response;
      response.headers = {{"Content-Type", "application/json; charset=utf-8"}, {"Connection", "close"}};
      std::string form = "&" + request->body + "&";
      bool path_ok = request->start_line == fmt::format("POST /{}/oauth2/v2.0/token HTTP/1.1", kTenant);
      bool grant_ok = form.find("&grant_type=client_credentials&") != std::string::npos &&
                      form.find(fmt::format("&client_id={}&", kClient)) != std::string::npos &&
                      form.find("&scope=https%3A%2F%2Fstorage.azure.com%2F.default&") != std::string::npos;
      bool secret_ok = form.find("&client_secret=" + cloud::UriEncode(kSecret, true) + "&") != std::string::npos;
      if (!path_ok || !grant_ok) {
        response.start_line = "HTTP/1.1 400 Bad Request";
        response.body = R"({"error":"invalid_request","error_description":"AADSTS900144: malformed request"})";
      } else if (!secret_ok) {
        response.start_line = "HTTP/1.1 401 Unauthorized";
        response.body =
            R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.","error_codes":[7000215]})";
      } else {
        int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
        std::string claims = fmt::format(
            R"({{"aud":"https://storage.azure.com","iss":"https://sts.windows.net/{}/","iat":{},"nbf":{},"exp":{},"appid":"{}","oid":"{}","tid":"{}","sub":"{}"}})",
            kTenant, now - 60, now - 60, now + 3600, kClient, kClient, kTenant, kClient);
        std::string jwt = B64Url(R"({"alg":"RS256","typ":"JWT"})") + "." + B64Url(claims) + "." + B64Url("test-signature");
        response.start_line = "HTTP/1.1 200 OK";
        response.body = fmt::format(R"({{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"{}"}})", jwt);
      }
      (void)testing::WriteAll(client.get(), response.Serialize(), deadline);
    }
  }

  uint16_t port_ = 0;
  testing::Fd listen_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
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

// A self-signed certificate for 127.0.0.1 (Azurite's HTTPS), written as PEM files.
struct TestCert {
  std::string cert_path;
  std::string key_path;
};

TestCert MakeCert(const std::string& dir) {
  EVP_PKEY* pkey = EVP_RSA_gen(2048);
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, pkey);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
  X509_add_ext(x, san, -1);
  X509_EXTENSION_free(san);
  X509_sign(x, pkey, EVP_sha256());
  TestCert c{dir + "/cert.pem", dir + "/key.pem"};
  FILE* f = std::fopen(c.cert_path.c_str(), "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen(c.key_path.c_str(), "w");
  PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(pkey);
  return c;
}

TEST(EntraTokenFlow, AzuriteOAuthModeAcceptsTheServicePrincipalsToken) {
  char dir[] = "/tmp/sluice-azure-cert-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  TestCert cert = MakeCert(dir);
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
      Secret(B64Url(R"({"alg":"RS256","typ":"JWT"})") + "." +
             B64Url(R"({"aud":"https://management.azure.com","iss":"https://sts.windows.net/x/","iat":1,"nbf":1,"exp":4102444800})") +
             ".x"),
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
