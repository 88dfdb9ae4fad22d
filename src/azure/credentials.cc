#include "azure/credentials.h"

#include <fmt/format.h>

#include <cstdlib>
#include <regex>

#include "azure/executor.h"
#include "cloud/url.h"
#include "common/crypto.h"

namespace sluice::azure {
namespace {

bool IsGuid(std::string_view s) {
  static const std::regex kGuid("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$");
  return std::regex_match(s.begin(), s.end(), kGuid);
}

bool IsDomain(std::string_view s) {
  static const std::regex kDomain("^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$");
  return s.size() <= 253 && std::regex_match(s.begin(), s.end(), kDomain);
}

bool IsLoopbackHost(std::string_view authority) {
  std::string_view host = authority;
  if (host.starts_with("[")) {
    host = host.substr(1, host.find(']') == std::string_view::npos ? host.size() - 1 : host.find(']') - 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  return host == "127.0.0.1" || host == "localhost" || host == "::1";
}

}  // namespace

class ClientSecretTokenProvider final : public cloud::RefreshingTokenProvider {
 public:
  ClientSecretTokenProvider(ServicePrincipal sp, std::string authority, TokenSourceOptions options)
      : cloud::RefreshingTokenProvider(options.refresh, "Entra ID access token"),
        sp_(std::move(sp)),
        endpoint_(TokenEndpoint(authority, sp_.tenant_id)),
        scope_(options.scope),
        executor_([&] {
          Executor::Options o;
          o.transport = options.transport;
          o.retry = options.retry;
          o.sleep = options.sleep;
          return Executor(std::move(o));
        }()) {}

  std::string Name() const override {
    return fmt::format("service principal {} in tenant {}", sp_.client_id, sp_.tenant_id);
  }

 protected:
  Result<cloud::AccessToken> Fetch() override {
    auto body = http::RequestBody::FromString(TokenRequestBody(sp_, scope_));
    CallOptions call;
    call.operation = "Entra ID token request for " + sp_.client_id;
    auto response = executor_.Call(
        [&]() -> Result<http::OutboundRequest> {
          return http::OutboundRequest{
              "POST", endpoint_, {{"Content-Type", "application/x-www-form-urlencoded"}}, body};
        },
        call);
    if (!response.ok()) return response.error();
    return cloud::ParseTokenResponse(response->body, clock().Now(), "the Entra ID token endpoint " + endpoint_);
  }

 private:
  ServicePrincipal sp_;
  std::string endpoint_;
  std::string scope_;
  Executor executor_;
};

EnvGetter SystemEnv() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
}

Status ValidateServicePrincipal(const ServicePrincipal& sp) {
  if (!IsGuid(sp.tenant_id) && !IsDomain(sp.tenant_id)) {
    return InvalidArgument(fmt::format(
        "tenant_id \"{}\" is neither a GUID nor a domain; copy the Directory (tenant) ID from Microsoft Entra ID > "
        "Overview",
        sp.tenant_id.substr(0, 80)));
  }
  if (!IsGuid(sp.client_id)) {
    return InvalidArgument(fmt::format(
        "client_id \"{}\" is not a GUID; copy the Application (client) ID from App registrations > the app",
        sp.client_id.substr(0, 80)));
  }
  if (sp.client_secret.empty()) {
    return InvalidArgument("client_secret is empty; create one under App registrations > Certificates & secrets");
  }
  return Status();
}

Result<std::string> ResolveAuthorityHost(std::string_view explicit_host, const EnvGetter& env) {
  std::string host(explicit_host);
  std::string origin = "the authority host";
  if (host.empty() && env) {
    if (auto v = env("AZURE_AUTHORITY_HOST")) {
      host = *v;
      origin = "AZURE_AUTHORITY_HOST";
    }
  }
  if (host.empty()) host = std::string(kDefaultAuthorityHost);
  while (host.ends_with('/')) host.pop_back();
  cloud::UrlParts parts = cloud::SplitUrl(host);
  bool https = parts.scheme == "https";
  bool loopback_http = parts.scheme == "http" && IsLoopbackHost(parts.authority);
  if ((!https && !loopback_http) || parts.authority.empty() || !parts.query.empty()) {
    return InvalidArgument(fmt::format(
        "{} \"{}\" is not an https URL (e.g. https://login.microsoftonline.com; http is accepted only on "
        "loopback)",
        origin, host.substr(0, 200)));
  }
  return host;
}

std::string TokenEndpoint(std::string_view authority_host, std::string_view tenant_id) {
  return fmt::format("{}/{}/oauth2/v2.0/token", authority_host, cloud::UriEncode(tenant_id, true));
}

std::string TokenRequestBody(const ServicePrincipal& sp, std::string_view scope) {
  return fmt::format("grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
                     cloud::UriEncode(sp.client_id, true), cloud::UriEncode(sp.client_secret.Reveal(), true),
                     cloud::UriEncode(scope, true));
}

Result<std::shared_ptr<cloud::TokenProvider>> MakeClientSecretTokenProvider(ServicePrincipal sp,
                                                                            TokenSourceOptions options) {
  SLUICE_TRY(ValidateServicePrincipal(sp));
  SLUICE_ASSIGN_OR_RETURN(std::string authority, ResolveAuthorityHost(options.authority_host, options.env));
  return std::shared_ptr<cloud::TokenProvider>(
      std::make_shared<ClientSecretTokenProvider>(std::move(sp), std::move(authority), std::move(options)));
}

StorageCredential StorageCredential::Token(std::shared_ptr<cloud::TokenProvider> tokens) {
  StorageCredential c;
  c.kind_ = Kind::kToken;
  c.tokens_ = std::move(tokens);
  return c;
}

Result<StorageCredential> StorageCredential::SharedKey(std::string account, Secret account_key) {
  std::optional<std::string> key = Base64Decode(account_key.Reveal());
  if (!key || key->empty()) {
    return InvalidArgument(fmt::format(
        "the access key given for storage account {} is not base64; copy key1 or key2 from the account's "
        "Access keys page",
        account));
  }
  StorageCredential c;
  c.kind_ = Kind::kSharedKey;
  c.account_ = std::move(account);
  c.secret_ = std::move(account_key);
  return c;
}

Result<StorageCredential> StorageCredential::Sas(Secret sas) {
  std::string token = sas.Reveal();
  if (token.starts_with("?")) token.erase(0, 1);
  bool has_sig = token.starts_with("sig=") || token.find("&sig=") != std::string::npos;
  if (!has_sig || token.find_first_of(" #\r\n") != std::string::npos) {
    return InvalidArgument(
        "the SAS token has no signature (sig=…); paste the whole query string the portal's Generate SAS gives");
  }
  StorageCredential c;
  c.kind_ = Kind::kSas;
  c.secret_ = Secret(std::move(token));
  return c;
}

std::string StorageCredential::Describe() const {
  switch (kind_) {
    case Kind::kToken:
      return tokens_ ? tokens_->Name() : "an access token";
    case Kind::kSharedKey:
      return "the access key of storage account " + account_;
    case Kind::kSas:
      return "a SAS token";
  }
  return "";
}

}  // namespace sluice::azure
