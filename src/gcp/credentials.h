// Sluice's OWN Google identity: OAuth2 access tokens for the GCS JSON API, from
//   - a service-account JSON key file (GOOGLE_APPLICATION_CREDENTIALS or an explicit path), exchanged at the
//   key
//     file's token_uri by the JWT-bearer flow (RFC 7523; an RS256-signed assertion), or
//   - the GCE/GKE metadata server (GCE_METADATA_HOST overrides metadata.google.internal, as Google's
//   libraries do).
// Tokens are cached and refreshed ahead of expiry with one refresh in flight (cloud::RefreshingCache, shared with
// aws/ and azure/).
//
// Usage:
//   auto tokens = gcp::MakeDefaultTokenProvider(transport, /*explicit_key_path=*/"");
//   Result<gcp::AccessToken> t = (*tokens)->Get();      // "Authorization: Bearer " + t->token.Reveal()
//   on a 401: (*tokens)->Invalidate(); then Get() again (gcp::Executor does this for you).
//
// The private key and the tokens are `Secret`: never logged, never in an error message.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "cloud/bearer_token.h"
#include "common/clock.h"
#include "common/result.h"
#include "common/secret.h"
#include "gcp/executor.h"
#include "http/transport.h"

namespace sluice::gcp {

/// The scope Sluice asks for: read and write objects (no bucket administration).
inline constexpr std::string_view kStorageReadWriteScope =
    "https://www.googleapis.com/auth/devstorage.read_write";
inline constexpr std::string_view kDefaultTokenUri = "https://oauth2.googleapis.com/token";
inline constexpr std::string_view kDefaultMetadataHost = "metadata.google.internal";
/// Assertion lifetime (Google accepts at most one hour).
inline constexpr std::chrono::seconds kAssertionLifetime{3600};

/// Tokens are OAuth2 bearer tokens (cloud/bearer_token.h, shared with Azure's Entra ID tokens).
using AccessToken = cloud::AccessToken;

/// Source of access tokens (cloud::TokenProvider) that may also know the service account it speaks for.
class TokenProvider : public cloud::TokenProvider {
 public:
  /// The service account's email when known ("" otherwise): what customers grant roles to.
  virtual std::string Email() const { return ""; }
};

/// Reads an environment variable; nullopt when unset or empty. Tests never touch the process environment.
using EnvGetter = std::function<std::optional<std::string>(std::string_view name)>;
EnvGetter SystemEnv();

/// The fields Sluice uses from a service-account key file (type "service_account").
struct ServiceAccountKey {
  std::string client_email;
  std::string private_key_id;
  Secret private_key;  // PEM
  std::string token_uri;
  std::string project_id;
  /// Where it was read from, for messages ("" when parsed from text).
  std::string origin;
};

/// Parses a key file's JSON. kInvalidArgument naming the field to check (never echoing the key material).
Result<ServiceAccountKey> ParseServiceAccountKey(std::string_view json, std::string_view origin = "");
Result<ServiceAccountKey> LoadServiceAccountKey(const std::string& path);

/// base64url without padding (RFC 7515 §2).
std::string Base64UrlEncode(std::string_view bytes);

/// The signed JWT-bearer assertion: header {"alg":"RS256","typ":"JWT","kid":private_key_id}, claims
/// {iss: client_email, scope, aud: token_uri, iat: now, exp: now + 3600}, RS256 over "header.claims".
Result<std::string> BuildJwtAssertion(const ServiceAccountKey& key, std::string_view scope, TimePoint now);

/// Fixed token (tests, explicit configuration).
class StaticTokenProvider final : public cloud::StaticTokenProviderOf<TokenProvider> {
 public:
  explicit StaticTokenProvider(AccessToken token, std::string email = "")
      : StaticTokenProviderOf(std::move(token)), email_(std::move(email)) {}
  std::string Email() const override { return email_; }

 private:
  std::string email_;
};

/// Caches a fetched token and refreshes it ahead of expiry (cloud::RefreshingCache: single flight; a still-valid
/// token is kept when a refresh fails).
using RefreshingTokenProvider = cloud::RefreshingTokenProviderOf<TokenProvider>;

struct TokenSourceOptions {
  std::shared_ptr<http::HttpTransport> transport;
  std::string scope = std::string(kStorageReadWriteScope);
  RefreshingTokenProvider::RefreshOptions refresh;
  /// The token request's retry policy (the executor is the only retry layer).
  RetryPolicy retry;
  std::function<void(std::chrono::milliseconds)> sleep;  // default: really sleep
};

/// JWT-bearer exchange at the key's token_uri.
class ServiceAccountTokenProvider final : public RefreshingTokenProvider {
 public:
  ServiceAccountTokenProvider(ServiceAccountKey key, TokenSourceOptions options);
  std::string Name() const override;
  std::string Email() const override { return key_.client_email; }

 protected:
  Result<AccessToken> Fetch() override;

 private:
  ServiceAccountKey key_;
  TokenSourceOptions options_;
  Executor executor_;
};

/// GET http://<host>/computeMetadata/v1/instance/service-accounts/default/token with Metadata-Flavor: Google.
class MetadataServerTokenProvider final : public RefreshingTokenProvider {
 public:
  /// `host` "" = GCE_METADATA_HOST from `env`, else metadata.google.internal. May carry a port.
  MetadataServerTokenProvider(TokenSourceOptions options, std::string host = "", EnvGetter env = SystemEnv());
  std::string Name() const override { return "metadata server " + host_; }
  /// Asks the metadata server for the default service account's email (cached after the first answer).
  std::string Email() const override;

 protected:
  Result<AccessToken> Fetch() override;

 private:
  TokenSourceOptions options_;
  std::string host_;
  Executor executor_;
  mutable std::mutex email_mu_;
  mutable std::string email_;
};

/// Parses a token endpoint / metadata answer {"access_token","expires_in","token_type"}; `now` + expires_in.
using cloud::ParseTokenResponse;

/// Sluice's identity: `explicit_key_path` (--gcp-credentials) if set, else GOOGLE_APPLICATION_CREDENTIALS,
/// else the metadata server. A named key file that is missing or malformed is an error (no silent fallback).
Result<std::shared_ptr<TokenProvider>> MakeDefaultTokenProvider(TokenSourceOptions options,
                                                                std::string_view explicit_key_path = "",
                                                                EnvGetter env = SystemEnv());

/// Path of the key file MakeDefaultTokenProvider would use ("" = metadata server).
std::string KeyFilePath(std::string_view explicit_key_path, const EnvGetter& env);

}  // namespace sluice::gcp
