// Sluice's credentials for a customer's Azure storage account, in the three forms accounts use:
//   - a service principal (tenant ID, client ID, client secret): OAuth2 client-credentials flow against Microsoft
//     Entra ID — POST {authority}/{tenant}/oauth2/v2.0/token with scope https://storage.azure.com/.default —
//     the token cached and refreshed ahead of expiry (cloud::RefreshingTokenProvider). The authority is
//     AZURE_AUTHORITY_HOST when set (as Azure's SDKs read it: sovereign clouds, tests), else
//     https://login.microsoftonline.com. The customer grants the principal "Storage Blob Data Contributor" on the
//     container (`sluice azure roles`).
//   - Shared Key: the storage account's access key (base64), signing every request (azure/shared_key.h).
//   - a SAS token, appended to every request's query.
// Client secrets, account keys and SAS tokens are `Secret`: never logged, never in an error message.
//
// Usage:
//   azure::ServicePrincipal sp{"contoso.onmicrosoft.com", "11111111-…", Secret(secret)};
//   SLUICE_ASSIGN_OR_RETURN(auto tokens, azure::MakeClientSecretTokenProvider(sp, {.transport = transport}));
//   azure::StorageCredential cred = azure::StorageCredential::Token(tokens);
//   // or StorageCredential::SharedKey("account", Secret(key)), StorageCredential::Sas(Secret("sv=…&sig=…"))
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cloud/bearer_token.h"
#include "cloud/retry.h"
#include "common/result.h"
#include "common/secret.h"
#include "http/transport.h"

namespace sluice::azure {

inline constexpr std::string_view kDefaultAuthorityHost = "https://login.microsoftonline.com";
/// The scope for Azure Storage data-plane requests.
inline constexpr std::string_view kStorageScope = "https://storage.azure.com/.default";

/// Reads an environment variable; nullopt when unset or empty. Tests never touch the process environment.
using EnvGetter = std::function<std::optional<std::string>(std::string_view name)>;
EnvGetter SystemEnv();

struct ServicePrincipal {
  /// Directory (tenant) ID: a GUID or a verified domain ("contoso.onmicrosoft.com").
  std::string tenant_id;
  /// Application (client) ID: a GUID.
  std::string client_id;
  Secret client_secret;
};

/// Tenant and client IDs as Entra ID accepts them; kInvalidArgument naming the field and what to copy.
Status ValidateServicePrincipal(const ServicePrincipal& sp);

/// `explicit_host` if set, else AZURE_AUTHORITY_HOST, else https://login.microsoftonline.com; without a trailing
/// slash. Must be https — http only for a loopback host (test token endpoints). kInvalidArgument otherwise.
Result<std::string> ResolveAuthorityHost(std::string_view explicit_host, const EnvGetter& env);

struct TokenSourceOptions {
  std::shared_ptr<http::HttpTransport> transport;
  /// "" = AZURE_AUTHORITY_HOST (from `env`) or the public cloud's.
  std::string authority_host;
  std::string scope = std::string(kStorageScope);
  cloud::RefreshOptions refresh;
  /// The token request's retry policy (the executor is the only retry layer).
  cloud::RetryPolicy retry;
  cloud::Sleeper sleep;  // default: really sleep
  EnvGetter env = SystemEnv();
};

/// Client-credentials flow for a service principal with a client secret.
class ClientSecretTokenProvider;
/// Validates the principal and the authority, then builds the provider (no request is sent yet).
Result<std::shared_ptr<cloud::TokenProvider>> MakeClientSecretTokenProvider(ServicePrincipal sp,
                                                                            TokenSourceOptions options);

/// The token endpoint: "{authority}/{tenant}/oauth2/v2.0/token".
std::string TokenEndpoint(std::string_view authority_host, std::string_view tenant_id);
/// The form body of the token request (every value form-encoded).
std::string TokenRequestBody(const ServicePrincipal& sp, std::string_view scope);

/// How requests to one storage account are authorised.
class StorageCredential {
 public:
  enum class Kind { kToken, kSharedKey, kSas };

  static StorageCredential Token(std::shared_ptr<cloud::TokenProvider> tokens);
  /// `account_key` is the base64 key from the account's Access keys page; validated here.
  static Result<StorageCredential> SharedKey(std::string account, Secret account_key);
  /// A SAS token ("sv=…&sig=…", a leading '?' is dropped); must carry a signature (sig=).
  static Result<StorageCredential> Sas(Secret sas);

  Kind kind() const { return kind_; }
  const std::shared_ptr<cloud::TokenProvider>& tokens() const { return tokens_; }
  const std::string& account() const { return account_; }
  const Secret& secret() const { return secret_; }
  /// For messages: "service principal …", "the account key of A", "a SAS token" (never the secret).
  std::string Describe() const;

 private:
  Kind kind_ = Kind::kSas;
  std::shared_ptr<cloud::TokenProvider> tokens_;
  std::string account_;
  Secret secret_;
};

}  // namespace sluice::azure
