// OAuth2 bearer tokens, as Google (service accounts, metadata server) and Microsoft Entra ID (service principals)
// hand them out: the token, its expiry, the provider interface the executors take, and the refreshing base that
// sources derive from. The provider-specific token sources live in gcp/ and azure/.
//
//   class MyTokenSource final : public cloud::RefreshingTokenProvider {
//     Result<cloud::AccessToken> Fetch() override { ... POST the token endpoint, cloud::ParseTokenResponse ... }
//   };
//   Result<cloud::AccessToken> t = source->Get();      // "Authorization: Bearer " + t->token.Reveal()
//   on a 401: source->Invalidate(); then Get() again (the executors do this for you).
//
// Tokens are `Secret`: never logged, never in an error message.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "cloud/refreshing.h"
#include "common/clock.h"
#include "common/result.h"
#include "common/secret.h"

namespace sluice::cloud {

struct AccessToken {
  Secret token;
  /// nullopt = never expires (static tokens in tests).
  std::optional<TimePoint> expiration;
  bool ExpiresWithin(TimePoint now, std::chrono::seconds margin) const {
    return expiration.has_value() && *expiration - margin <= now;
  }
};

/// Source of access tokens. Thread-safe.
class TokenProvider {
 public:
  virtual ~TokenProvider() = default;
  /// Current token: cached, refreshed ahead of expiry.
  virtual Result<AccessToken> Get() = 0;
  /// Drops the cached token (after a 401) so the next Get() fetches a new one.
  virtual void Invalidate() = 0;
  /// For messages, e.g. "service principal 1111-… in tenant contoso.onmicrosoft.com".
  virtual std::string Name() const = 0;
};

/// Fixed token (tests, explicit configuration). `Base` is TokenProvider or a provider's extension of it.
template <typename Base = TokenProvider>
class StaticTokenProviderOf : public Base {
 public:
  explicit StaticTokenProviderOf(AccessToken token) : token_(std::move(token)) {}
  Result<AccessToken> Get() override { return token_; }
  void Invalidate() override {}
  std::string Name() const override { return "static token"; }

 private:
  AccessToken token_;
};
using StaticTokenProvider = StaticTokenProviderOf<>;

/// A token source whose tokens expire: derived classes implement Fetch(); Get() serves them through a
/// RefreshingCache (refreshed ahead of expiry, single flight, still-valid token kept when a refresh fails).
/// `Base` is TokenProvider or a provider's extension of it (gcp::TokenProvider adds the account's email).
template <typename Base = TokenProvider>
class RefreshingTokenProviderOf : public Base {
 public:
  using RefreshOptions = cloud::RefreshOptions;
  RefreshingTokenProviderOf(RefreshOptions options, std::string what = "access token")
      : cache_(options, std::move(what)) {}
  Result<AccessToken> Get() final {
    return cache_.Get([this] { return Fetch(); }, this->Name());
  }
  void Invalidate() final { cache_.Invalidate(); }
  int refresh_count() const { return cache_.refresh_count(); }

 protected:
  /// Fetches a new token from the source (one at a time).
  virtual Result<AccessToken> Fetch() = 0;
  const Clock& clock() const { return cache_.clock(); }

 private:
  RefreshingCache<AccessToken> cache_;
};
using RefreshingTokenProvider = RefreshingTokenProviderOf<>;

/// Parses an OAuth2 token answer {"access_token","expires_in","token_type"} (RFC 6749 §5.1; Google's token
/// endpoint and metadata server, Entra ID's v2.0 endpoint — which may send expires_in as a string). Expiry =
/// `now` + expires_in (3600 when absent). kPermanent naming `source` when it is not one.
Result<AccessToken> ParseTokenResponse(std::string_view body, TimePoint now, std::string_view source);

}  // namespace sluice::cloud
