#include "support/entra_token_endpoint.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>

#include "cloud/url.h"
#include "common/crypto.h"

namespace sluice::testing {
namespace {

std::string B64Url(std::string_view s) {
  std::string out = Base64Encode(s);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

}  // namespace

std::string UnsignedJwt(std::string_view header_json, std::string_view claims_json) {
  return B64Url(header_json) + "." + B64Url(claims_json) + "." + B64Url("test-signature");
}

EntraTokenEndpoint::EntraTokenEndpoint(std::string tenant, std::string client, std::string secret)
    : tenant_(std::move(tenant)), client_(std::move(client)), secret_(std::move(secret)) {
  auto fd = ListenLoopback(port_);
  if (fd.ok()) listen_ = std::move(*fd);
  thread_ = std::thread([this] { Serve(); });
}

EntraTokenEndpoint::~EntraTokenEndpoint() {
  stop_ = true;
  thread_.join();
}

std::string EntraTokenEndpoint::Authority() const { return fmt::format("http://127.0.0.1:{}", port_); }

void EntraTokenEndpoint::Serve() {
  while (!stop_) {
    if (!listen_.valid()) return;
    pollfd p{listen_.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    Fd client(::accept(listen_.get(), nullptr, nullptr));
    if (!client.valid()) continue;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::string buffer;
    auto request = ReadMessage(client.get(), buffer, deadline, /*is_response=*/false);
    if (!request.ok()) continue;
    ++requests_;
    WireMessage response;
    response.headers = {{"Content-Type", "application/json; charset=utf-8"}, {"Connection", "close"}};
    std::string form = "&" + request->body + "&";
    bool path_ok = request->start_line == fmt::format("POST /{}/oauth2/v2.0/token HTTP/1.1", tenant_);
    bool grant_ok = form.find("&grant_type=client_credentials&") != std::string::npos &&
                    form.find(fmt::format("&client_id={}&", client_)) != std::string::npos &&
                    form.find("&scope=https%3A%2F%2Fstorage.azure.com%2F.default&") != std::string::npos;
    bool secret_ok =
        form.find("&client_secret=" + cloud::UriEncode(secret_, true) + "&") != std::string::npos;
    if (int left = fail_next_.load(); left > 0 && fail_next_.compare_exchange_strong(left, left - 1)) {
      ++failures_answered_;
      response.start_line = "HTTP/1.1 500 Internal Server Error";
      response.body =
          R"({"error":"temporarily_unavailable","error_description":"AADSTS90033: A transient error has occurred. Please try again.","error_codes":[90033]})";
    } else if (!path_ok || !grant_ok) {
      response.start_line = "HTTP/1.1 400 Bad Request";
      response.body = R"({"error":"invalid_request","error_description":"AADSTS900144: malformed request"})";
    } else if (!secret_ok) {
      response.start_line = "HTTP/1.1 401 Unauthorized";
      response.body =
          R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.","error_codes":[7000215]})";
    } else {
      int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
      std::string claims = fmt::format(
          R"({{"aud":"https://storage.azure.com","iss":"https://sts.windows.net/{}/","iat":{},"nbf":{},"exp":{},"appid":"{}","oid":"{}","tid":"{}","sub":"{}"}})",
          tenant_, now - 60, now - 60, now + 3600, client_, client_, tenant_, client_);
      std::string jwt = UnsignedJwt(R"({"alg":"RS256","typ":"JWT"})", claims);
      response.start_line = "HTTP/1.1 200 OK";
      response.body = fmt::format(
          R"({{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"{}"}})", jwt);
    }
    (void)WriteAll(client.get(), response.Serialize(), deadline);
  }
}

TestCert MakeLoopbackCert(const std::string& dir) {
  EVP_PKEY* pkey = EVP_RSA_gen(2048);
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, pkey);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"),
                             -1, -1, 0);
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

}  // namespace sluice::testing
