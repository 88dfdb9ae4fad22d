// ProjectRegistry: the in-memory view of projects used to authenticate every request. Lookups by token or API
// secret go through a SHA-256 of the presented value (so a hash-table probe leaks nothing useful) followed by
// a constant-time comparison.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/result.h"
#include "store/store.h"

namespace sluice::api {

class ProjectRegistry {
 public:
  /// `refresh_interval` > 0 when other Sluice nodes share the store (ClickHouse backend): projects created or
  /// changed through them are picked up when a lookup misses and when the view is older than the interval.
  /// Either way the registry first reads the store's ProjectsChangeStamp() (one small read) and reloads every
  /// project only when the stamp moved since the last load. A lookup that misses is answered from a check
  /// that began after it (so a project created through another node before the request is found): stamp
  /// reads are single-flight and at most one per kMinCheckGap, a miss waits (at most kMaxCheckWait) for the
  /// next one, and all the misses waiting share it, so a flood of unknown tokens costs the store at most ~50
  /// small reads a second. A store without a stamp reloads on a miss at most every interval/4, without
  /// waiting. 0 = this process is the only writer (the embedded store): never reload.
  /// Shortest time between two change-stamp reads of one registry: at most 50 a second.
  static constexpr std::chrono::milliseconds kMinCheckGap{20};
  /// Longest a lookup that misses waits for a check that began after it (then it answers from the view).
  static constexpr std::chrono::milliseconds kMaxCheckWait{250};
  /// Lookups that may wait for a check at once (`max_waiting_misses`; serve gives half its I/O threads); a
  /// miss beyond them answers from the current view at once. A waiting lookup holds its request thread: under
  /// a flood of unknown credentials this keeps the other threads serving known ones, and a project just
  /// created elsewhere may then get a 401 until a check that began after its request (at most the refresh
  /// interval), as before the change stamp.
  static constexpr int kDefaultMaxWaitingMisses = 2;

  explicit ProjectRegistry(store::Store& store,
                           std::chrono::milliseconds refresh_interval = std::chrono::milliseconds(0),
                           int max_waiting_misses = kDefaultMaxWaitingMisses)
      : store_(store), refresh_interval_(refresh_interval), max_waiting_misses_(std::max(1, max_waiting_misses)) {}

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
  /// Lookups that miss and wait for a check now (at most max_waiting_misses); for tests.
  int waiting_misses() const { return waiting_misses_.load(); }

 private:
  void IndexLocked(const store::Project& p);
  /// Why the view is checked against the shared store.
  enum class Check {
    kPeriodic,  // every lookup: only when the view is older than the refresh interval; never waits
    kMiss,      // a lookup found nothing: needs a check begun after it; waits for one, rate-limited
    kWrite,     // before Create/UpdateProject's conflict checks: as kMiss, without the rate limit
  };
  /// With a shared store: reads the change stamp (single-flight, rate-limited, waiting as `why` says) and
  /// reloads every project when it moved. True when a check that began after this call answered and the view
  /// is current as of it; false otherwise (no wait allowed, the bounded wait ran out, the store failed — the
  /// current view is kept and the failure logged, rate-limited — or the store has no stamp).
  bool MaybeRefresh(Check why) const;
  /// Runs one check as the flight's owner: `lock` (on check_mu_) is held on entry and released during it.
  bool RunCheck(std::unique_lock<std::mutex>& lock, Check why) const;
  /// Reads the stamp and reloads when it moved; `started_ms` is when the check began (steady clock).
  bool CheckForChanges(Check why, int64_t started_ms) const;
  /// ListProjects and swap the view; remembers `stamp` (read before the list) as the view's stamp.
  bool ReloadAll(std::optional<int64_t> stamp, int64_t started_ms) const;
  void LogRefreshFailure(std::string_view what, const Error& error) const;
  /// True when a lookup of `value` that misses cannot find anything by asking the store: it is a token or
  /// API secret of the view (tried as the other kind, as /import does), or a check made after it was first
  /// presented did not find it. Tokens and secrets are 128 random bits, so a value that missed cannot become
  /// a project's later; this spares each event of a /track batch with a wrong token its own check.
  bool NothingNewToFind(std::string_view value) const;
  void RememberMissing(std::string_view value) const;
  std::optional<store::Project> ByTokenLocked(std::string_view token) const;
  std::optional<store::Project> BySecretLocked(std::string_view secret) const;
  /// True when `external_id` is the token or external ID of a project other than `except`.
  bool ExternalIdTakenLocked(std::string_view external_id, uint32_t except) const;

  store::Store& store_;
  const std::chrono::milliseconds refresh_interval_;
  const int max_waiting_misses_;
  // The single-flight check: one thread at a time reads the stamp (checking_); the others wait on check_cv_.
  mutable std::mutex check_mu_;
  mutable std::condition_variable check_cv_;
  mutable bool checking_ = false;                                   // guarded by check_mu_
  mutable std::chrono::steady_clock::time_point last_check_start_;  // guarded by check_mu_
  mutable std::chrono::steady_clock::time_point answered_from_;  // guarded: start of the last finished check
  mutable bool last_check_ok_ = false;                           // guarded by check_mu_
  mutable std::atomic<int> waiting_misses_{0};   // kMiss lookups in MaybeRefresh now
  mutable std::atomic<bool> stampless_{false};  // the store answered "no stamp": misses do not wait
  // Written by the checking thread only (and by Load(), before any lookup).
  mutable std::optional<int64_t> loaded_stamp_;  // the stamp read before the last full load; nullopt = none
  mutable int64_t last_reload_ms_ = 0;
  mutable std::optional<int64_t> last_failure_log_ms_;
  mutable uint64_t unlogged_failures_ = 0;
  // When the view was last known current (a stamp read found no change, or a reload): the periodic check's
  // clock, read lock-free by every lookup. Steady-clock milliseconds.
  mutable std::atomic<int64_t> current_as_of_ms_{0};
  // Key()s of values a check did not find (NothingNewToFind); cleared on every reload.
  mutable std::mutex missing_mu_;
  mutable std::unordered_set<std::string> missing_;
  mutable std::shared_mutex mu_;
  mutable std::unordered_map<uint32_t, store::Project> by_id_;
  mutable std::unordered_map<std::string, uint32_t> by_token_hash_;
  mutable std::unordered_map<std::string, uint32_t> by_secret_hash_;
};

}  // namespace sluice::api
