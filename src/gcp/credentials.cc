#include "gcp/credentials.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/crypto.h"

namespace sluice::gcp {
namespace {


std::optional<std::string> StringField(const boost::json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || !v->is_string() || v->as_string().empty()) return std::nullopt;
  return std::string(v->as_string());
}

Executor MakeExecutor(const TokenSourceOptions& options) {
  Executor::Options o;
  o.transport = options.transport;
  o.retry = options.retry;
  o.sleep = options.sleep;
  return Executor(std::move(o));
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// Loads the PEM private key. Messages never include the key text, nor OpenSSL's error queue (which can quote
// input); the queue is cleared so the failure does not leak into a later, unrelated OpenSSL error.
Result<std::unique_ptr<EVP_PKEY, PkeyDeleter>> LoadPrivateKey(const Secret& pem, std::string_view origin) {
  std::unique_ptr<BIO, BioDeleter> bio(
      BIO_new_mem_buf(pem.Reveal().data(), static_cast<int>(pem.Reveal().size())));
  if (!bio) return Internal("BIO_new_mem_buf failed");
  std::unique_ptr<EVP_PKEY, PkeyDeleter> pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!pkey) {
    return InvalidArgument(
        fmt::format("the private_key in the service-account key {} is not a readable PEM private key; "
                    "download a new JSON key "
                    "for the service account (IAM & Admin > Service Accounts > Keys)",
                    origin.empty() ? "(inline)" : origin));
  }
  if (EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_RSA) {
    return InvalidArgument(
        fmt::format("the private_key in the service-account key {} is not an RSA key (RS256 "
                    "needs one); use a JSON key created by Google for the service account",
                    origin.empty() ? "(inline)" : origin));
  }
  return pkey;
}

}  // namespace

EnvGetter SystemEnv() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
}

std::string Base64UrlEncode(std::string_view bytes) {
  std::string s = Base64Encode(bytes);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return s;
}

Result<ServiceAccountKey> ParseServiceAccountKey(std::string_view json, std::string_view origin) {
  const std::string where =
      origin.empty() ? "the service-account key" : fmt::format("service-account key {}", origin);
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(json, ec);
  if (ec || !v.is_object()) {
    return InvalidArgument(
        fmt::format("{} is not JSON; expected the JSON key file downloaded for a service account", where));
  }
  const auto& o = v.as_object();
  auto type = StringField(o, "type");
  if (type && *type != "service_account") {
    return InvalidArgument(
        fmt::format("{} has type \"{}\"; Sluice needs a service-account key (type "
                    "\"service_account\"), not user or external-account credentials",
                    where, *type));
  }
  ServiceAccountKey key;
  key.origin = std::string(origin);
  auto email = StringField(o, "client_email");
  auto pem = StringField(o, "private_key");
  if (!email)
    return InvalidArgument(
        fmt::format("{} has no client_email; check that it is a service-account key", where));
  if (!pem)
    return InvalidArgument(
        fmt::format("{} has no private_key; check that it is a service-account key", where));
  key.client_email = *email;
  key.private_key = Secret(*pem);
  key.private_key_id = StringField(o, "private_key_id").value_or("");
  key.project_id = StringField(o, "project_id").value_or("");
  key.token_uri = StringField(o, "token_uri").value_or(std::string(kDefaultTokenUri));
  if (!key.token_uri.starts_with("https://") && !key.token_uri.starts_with("http://")) {
    return InvalidArgument(
        fmt::format("{} has token_uri \"{}\", which is not an http(s) URL", where, key.token_uri));
  }
  SLUICE_TRY(LoadPrivateKey(key.private_key, origin));  // fail at load time, not at the first upload
  return key;
}

Result<ServiceAccountKey> LoadServiceAccountKey(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return InvalidArgument(
        fmt::format("cannot read the service-account key file {} (GOOGLE_APPLICATION_CREDENTIALS "
                    "or --gcp-credentials); check the path and its permissions",
                    path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseServiceAccountKey(ss.str(), path);
}

Result<std::string> BuildJwtAssertion(const ServiceAccountKey& key, std::string_view scope, TimePoint now) {
  boost::json::object header{{"alg", "RS256"}, {"typ", "JWT"}};
  if (!key.private_key_id.empty()) header["kid"] = key.private_key_id;
  const int64_t iat = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  boost::json::object claims{{"iss", key.client_email},
                             {"scope", scope},
                             {"aud", key.token_uri},
                             {"iat", iat},
                             {"exp", iat + kAssertionLifetime.count()}};
  std::string signing_input =
      Base64UrlEncode(boost::json::serialize(header)) + "." + Base64UrlEncode(boost::json::serialize(claims));

  SLUICE_ASSIGN_OR_RETURN(auto pkey, LoadPrivateKey(key.private_key, key.origin));
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  size_t sig_len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &sig_len,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    ERR_clear_error();
    return Internal("RS256 signing of the token assertion failed to initialise (OpenSSL)");
  }
  std::string signature(sig_len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &sig_len,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    ERR_clear_error();
    return Internal("RS256 signing of the token assertion failed (OpenSSL)");
  }
  signature.resize(sig_len);
  return signing_input + "." + Base64UrlEncode(signature);
}

ServiceAccountTokenProvider::ServiceAccountTokenProvider(ServiceAccountKey key, TokenSourceOptions options)
    : RefreshingTokenProvider(options.refresh, "Google access token"),
      key_(std::move(key)),
      options_(std::move(options)),
      executor_(MakeExecutor(options_)) {}

std::string ServiceAccountTokenProvider::Name() const {
  if (key_.origin.empty()) return "service account " + key_.client_email;
  return fmt::format("service account {} (key file {})", key_.client_email, key_.origin);
}

Result<AccessToken> ServiceAccountTokenProvider::Fetch() {
  SLUICE_ASSIGN_OR_RETURN(std::string assertion, BuildJwtAssertion(key_, options_.scope, clock().Now()));
  std::string body =
      "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" + assertion;
  auto shared_body = http::RequestBody::FromString(std::move(body));
  CallOptions call;
  call.operation = "token exchange for " + key_.client_email;
  auto response = executor_.Call(
      [&]() -> Result<http::OutboundRequest> {
        return http::OutboundRequest{
            "POST", key_.token_uri, {{"Content-Type", "application/x-www-form-urlencoded"}}, shared_body};
      },
      call);
  if (!response.ok()) return response.error();
  return ParseTokenResponse(response->body, clock().Now(), "the token endpoint " + key_.token_uri);
}

MetadataServerTokenProvider::MetadataServerTokenProvider(TokenSourceOptions options, std::string host,
                                                         EnvGetter env)
    : RefreshingTokenProvider(options.refresh, "Google access token"),
      options_(std::move(options)),
      host_(std::move(host)),
      executor_(MakeExecutor(options_)) {
  if (host_.empty())
    host_ = env ? env("GCE_METADATA_HOST").value_or(std::string(kDefaultMetadataHost))
                : std::string(kDefaultMetadataHost);
}

Result<AccessToken> MetadataServerTokenProvider::Fetch() {
  CallOptions call;
  call.operation = "metadata server token";
  std::string url =
      fmt::format("http://{}/computeMetadata/v1/instance/service-accounts/default/token", host_);
  auto response = executor_.Call(
      [&]() -> Result<http::OutboundRequest> {
        return http::OutboundRequest{"GET", url, {{"Metadata-Flavor", "Google"}}, {}};
      },
      call);
  if (!response.ok()) {
    return response.error().WithContext(
        "no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set and the metadata server did not "
        "give a "
        "token (set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file outside GCE/GKE)");
  }
  return ParseTokenResponse(response->body, clock().Now(), "the metadata server " + host_);
}

std::string MetadataServerTokenProvider::Email() const {
  std::lock_guard<std::mutex> lock(email_mu_);
  if (!email_.empty()) return email_;
  CallOptions call;
  call.operation = "metadata server email";
  std::string url =
      fmt::format("http://{}/computeMetadata/v1/instance/service-accounts/default/email", host_);
  auto response = executor_.Call(
      [&]() -> Result<http::OutboundRequest> {
        return http::OutboundRequest{"GET", url, {{"Metadata-Flavor", "Google"}}, {}};
      },
      call);
  if (response.ok()) email_ = response->body;
  return email_;
}

std::string KeyFilePath(std::string_view explicit_key_path, const EnvGetter& env) {
  if (!explicit_key_path.empty()) return std::string(explicit_key_path);
  if (env) {
    if (auto p = env("GOOGLE_APPLICATION_CREDENTIALS")) return *p;
  }
  return "";
}

Result<std::shared_ptr<TokenProvider>> MakeDefaultTokenProvider(TokenSourceOptions options,
                                                                std::string_view explicit_key_path,
                                                                EnvGetter env) {
  std::string path = KeyFilePath(explicit_key_path, env);
  if (!path.empty()) {
    SLUICE_ASSIGN_OR_RETURN(ServiceAccountKey key, LoadServiceAccountKey(path));
    return std::shared_ptr<TokenProvider>(
        std::make_shared<ServiceAccountTokenProvider>(std::move(key), std::move(options)));
  }
  return std::shared_ptr<TokenProvider>(
      std::make_shared<MetadataServerTokenProvider>(std::move(options), "", std::move(env)));
}

}  // namespace sluice::gcp
