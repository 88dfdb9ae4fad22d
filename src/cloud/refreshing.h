// RefreshingCache<T>: the credential cache every refreshing source shares (AWS STS credentials, Google and
// Entra ID access tokens). Caches what Fetch returned, refreshes `refresh_margin` before it expires with ONE
// refresh in flight (concurrent callers wait for it rather than each calling the source), and — when a refresh
// fails while the cached value is still valid — keeps serving it (logging a warning) and tries again no more
// often than `retry_interval`.
//
// T needs `std::optional<TimePoint> expiration` and `bool ExpiresWithin(TimePoint now, seconds margin) const`.
//
//   cloud::RefreshingCache<AccessToken> cache_(options, "Entra ID access token");
//   Result<AccessToken> Get() { return cache_.Get([&] { return FetchFromTokenEndpoint(); }, Name()); }
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"

namespace sluice::cloud {

struct RefreshOptions {
  /// Refresh when the value expires within this much (SPEC §5: refresh before expiry, mid-backfill).
  std::chrono::seconds refresh_margin{300};
  /// After a failed refresh while still valid, wait this long before trying again.
  std::chrono::seconds retry_interval{30};
  /// Not owned.
  const Clock* clock = &SystemClock::Instance();
};

/// Logs "refreshing <what> from <source> failed (<error>); still using the current one, valid until <time>".
void WarnKeptAfterFailedRefresh(std::string_view what, std::string_view source, const Error& error,
                                TimePoint valid_until);

template <typename T>
class RefreshingCache {
 public:
  /// `what` names the cached thing in logs ("credentials", "Google access token").
  RefreshingCache(RefreshOptions options, std::string what) : options_(options), what_(std::move(what)) {
    if (options_.clock == nullptr) options_.clock = &SystemClock::Instance();
  }

  /// The cached value, or a fresh one from `fetch` (called with the refresh lock held: one at a time).
  /// `source` names the source in the warning logged when a refresh fails but the old value is still served.
  Result<T> Get(const std::function<Result<T>()>& fetch, std::string_view source) {
    if (auto v = Fresh()) return *v;
    std::lock_guard<std::mutex> refresh_lock(refresh_mu_);
    if (auto v = Fresh()) return *v;  // another thread refreshed while we waited
    Result<T> fetched = fetch();
    std::lock_guard<std::mutex> lock(mu_);
    TimePoint now = options_.clock->Now();
    if (fetched.ok()) {
      cached_ = *fetched;
      next_attempt_.reset();
      ++refresh_count_;
      return fetched;
    }
    if (cached_ && !cached_->ExpiresWithin(now, std::chrono::seconds(0))) {
      next_attempt_ = now + options_.retry_interval;
      WarnKeptAfterFailedRefresh(what_, source, fetched.error(), *cached_->expiration);
      return *cached_;
    }
    return fetched;
  }

  /// Drops the cached value so the next Get() fetches (after the service refused it).
  void Invalidate() {
    std::lock_guard<std::mutex> lock(mu_);
    cached_.reset();
    next_attempt_.reset();
  }

  /// How many successful fetches happened (tests, metrics).
  int refresh_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return refresh_count_;
  }

  const Clock& clock() const { return *options_.clock; }

 private:
  std::optional<T> Fresh() const {
    std::lock_guard<std::mutex> lock(mu_);
    if (!cached_) return std::nullopt;
    TimePoint now = options_.clock->Now();
    if (!cached_->ExpiresWithin(now, options_.refresh_margin)) return *cached_;
    // Inside the refresh window after a failed refresh: keep serving the still-valid value until the retry
    // interval has passed.
    if (next_attempt_ && now < *next_attempt_ && !cached_->ExpiresWithin(now, std::chrono::seconds(0))) {
      return *cached_;
    }
    return std::nullopt;
  }

  RefreshOptions options_;
  std::string what_;
  std::mutex refresh_mu_;  // held while fetching: single flight
  mutable std::mutex mu_;  // guards the fields below
  std::optional<T> cached_;
  std::optional<TimePoint> next_attempt_;
  int refresh_count_ = 0;
};

}  // namespace sluice::cloud
