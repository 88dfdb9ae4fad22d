// ProjectRegistry: the in-memory view of projects used to authenticate every request. Lookups by token or API
// secret go through a SHA-256 of the presented value (so a hash-table probe leaks nothing useful) followed by
// a constant-time comparison.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "store/store.h"

namespace sluice::api {

class ProjectRegistry {
 public:
  /// `refresh_interval` > 0 when other Sluice nodes share the store (ClickHouse backend): projects created or
  /// changed through them are picked up by reloading from the store when a lookup misses (at most once per
  /// interval, so a flood of unknown tokens cannot hammer the store) and when the view is older than the
  /// interval. 0 = this process is the only writer (the embedded store): never reload.
  explicit ProjectRegistry(store::Store& store,
                           std::chrono::milliseconds refresh_interval = std::chrono::milliseconds(0))
      : store_(store), refresh_interval_(refresh_interval) {}

  /// Loads every project from the store. Call once at start-up.
  Status Load();
  Result<store::Project> Create(std::string_view name);
  /// What an operator changes in one update; an absent field is left as it is.
  struct Update {
    /// The ExternalId pipelines and imports use when assuming the project's customer roles ("" = the token).
    std::optional<std::string> external_id;
    /// The GCS buckets bound to the project, replacing the list (docs/gcs.md#binding); already valid names.
    std::optional<std::vector<std::string>> gcs_buckets;
  };
  /// Applies `update` as one change: every conflict is checked before anything is written, so a refused
  /// update changes nothing. kConflict when the external ID is another project's external ID or token, or a
  /// bucket is bound to another project (the message names neither that project nor anything about it).
  Result<store::Project> UpdateProject(uint32_t id, Update update);
  std::vector<store::Project> List() const;
  std::optional<store::Project> ById(uint32_t id) const;
  std::optional<store::Project> ByToken(std::string_view token) const;
  std::optional<store::Project> BySecret(std::string_view secret) const;

 private:
  void IndexLocked(const store::Project& p);
  /// With a shared store: reloads every project when the view is older than the refresh interval, or when
  /// `missed` and the last reload is older than the interval. One thread reloads; the others go on with the
  /// current view. A failed reload keeps the current view (logged).
  void MaybeRefresh(bool missed) const;
  std::optional<store::Project> ByTokenLocked(std::string_view token) const;
  std::optional<store::Project> BySecretLocked(std::string_view secret) const;
  /// True when `external_id` is the token or external ID of a project other than `except`.
  bool ExternalIdTakenLocked(std::string_view external_id, uint32_t except) const;

  store::Store& store_;
  const std::chrono::milliseconds refresh_interval_;
  mutable std::mutex refresh_mu_;
  mutable std::atomic<int64_t> last_refresh_ms_{0};  // steady clock
  mutable std::shared_mutex mu_;
  mutable std::unordered_map<uint32_t, store::Project> by_id_;
  mutable std::unordered_map<std::string, uint32_t> by_token_hash_;
  mutable std::unordered_map<std::string, uint32_t> by_secret_hash_;
};

}  // namespace sluice::api
