#include "api/project_registry.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>

#include "common/crypto.h"
#include "storage_access/location.h"

namespace sluice::api {
namespace {
std::string Key(std::string_view v) { return std::string(AsStringView(Sha256(v))); }
int64_t SteadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Status ProjectRegistry::Load() {
  if (refresh_interval_.count() > 0) {
    // Read before the list, so a change landing in between moves the stamp past this one and is reloaded.
    auto stamp = store_.ProjectsChangeStamp();
    if (stamp.ok()) loaded_stamp_ = *stamp;  // on error: unknown, so the first check reloads
    if (stamp.ok() && !stamp->has_value()) stampless_.store(true);
  }
  const int64_t started = SteadyMillis();
  SLUICE_ASSIGN_OR_RETURN(auto projects, store_.ListProjects());
  last_reload_ms_ = started;
  current_as_of_ms_.store(started);
  std::unique_lock lock(mu_);
  for (const auto& p : projects) IndexLocked(p);
  // External IDs set before they had to be unique: say which projects share one, so the operator can give
  // each its own (two projects sharing a trust policy can reach each other's buckets).
  for (const auto& p : projects) {
    const std::string effective = storage_access::EffectiveExternalId(p);
    if (ExternalIdTakenLocked(effective, p.id)) {
      spdlog::error(
          "project {}: its external ID is also another project's external ID or token; set a unique one with "
          "POST /api/app/projects/{} (external_id) and update the customer's trust policy",
          p.id, p.id);
    }
  }
  return OkStatus();
}

bool ProjectRegistry::MaybeRefresh(Check why) const {
  if (refresh_interval_.count() <= 0) return false;
  using SteadyClock = std::chrono::steady_clock;
  const SteadyClock::time_point asked = SteadyClock::now();
  if (why == Check::kPeriodic || stampless_.load()) {
    // Never waits: the periodic check only when the view is old, and without a stamp a check is a full
    // reload that CheckForChanges rate-limits itself.
    if (why == Check::kPeriodic && SteadyMillis() - current_as_of_ms_.load() < refresh_interval_.count()) {
      return false;
    }
    std::unique_lock lock(check_mu_);
    if (checking_ || (why != Check::kWrite && asked < last_check_start_ + kMinCheckGap)) return false;
    return RunCheck(lock, why);
  }
  // A miss or a write needs the answer of a check that began after it was asked: only that one surely saw a
  // project another node created before this request arrived. Wait (bounded) for one that is running, or
  // for the rate limit's gap, or run it. At most max_waiting_misses_ misses wait at once (each holds a
  // request thread); the others answer from the current view.
  struct WaitingMiss {
    std::atomic<int>* count;
    ~WaitingMiss() {
      if (count != nullptr) count->fetch_sub(1);
    }
  } waiting{nullptr};
  if (why == Check::kMiss) {
    if (waiting_misses_.fetch_add(1) >= max_waiting_misses_) {
      waiting_misses_.fetch_sub(1);
      return false;
    }
    waiting.count = &waiting_misses_;
  }
  std::unique_lock lock(check_mu_);
  const SteadyClock::time_point deadline = asked + kMaxCheckWait;
  while (true) {
    if (answered_from_ > asked) return last_check_ok_;  // its stamp read began after this was asked
    if (checking_) {
      if (check_cv_.wait_until(lock, deadline) == std::cv_status::timeout) return false;
      continue;
    }
    // The rate limit that bounds what an unknown-token flood costs the store; writes are admin requests.
    const SteadyClock::time_point gap_end = last_check_start_ + kMinCheckGap;
    if (why == Check::kMiss && SteadyClock::now() < gap_end) {
      if (gap_end > deadline) return false;
      check_cv_.wait_until(lock, gap_end);  // or until another thread's check ends
      continue;
    }
    return RunCheck(lock, why);
  }
}

bool ProjectRegistry::RunCheck(std::unique_lock<std::mutex>& lock, Check why) const {
  checking_ = true;
  const auto started = std::chrono::steady_clock::now();
  last_check_start_ = started;
  lock.unlock();
  // Always hand the flight back, whatever the check does (a throw included), so waiters are not stranded.
  bool ok = false;
  struct Done {
    const ProjectRegistry* self;
    std::chrono::steady_clock::time_point started;
    const bool& ok;
    ~Done() {
      {
        std::lock_guard relock(self->check_mu_);
        self->checking_ = false;
        self->answered_from_ = started;
        self->last_check_ok_ = ok;
      }
      self->check_cv_.notify_all();
    }
  } done{this, started, ok};
  ok = CheckForChanges(
      why, std::chrono::duration_cast<std::chrono::milliseconds>(started.time_since_epoch()).count());
  return ok;
}

bool ProjectRegistry::CheckForChanges(Check why, int64_t started_ms) const {
  auto stamp = store_.ProjectsChangeStamp();
  if (!stamp.ok()) {
    LogRefreshFailure("reading the projects' change stamp from the shared store", stamp.error());
    return false;
  }
  if (!stamp->has_value()) {
    // A store without a stamp: reload on a miss at most every interval/4, and when the view is older than the
    // interval.
    stampless_.store(true);
    const int64_t age = started_ms - last_reload_ms_;
    const bool due =
        age >= refresh_interval_.count() || (why != Check::kPeriodic && age >= refresh_interval_.count() / 4);
    if (due) ReloadAll(std::nullopt, started_ms);
    return false;  // not an answer a miss can rely on
  }
  if (loaded_stamp_ == **stamp) {
    current_as_of_ms_.store(started_ms);  // nothing written anywhere since the last load
    return true;
  }
  return ReloadAll(*stamp, started_ms);
}

bool ProjectRegistry::ReloadAll(std::optional<int64_t> stamp, int64_t started_ms) const {
  last_reload_ms_ = started_ms;
  auto projects = store_.ListProjects();
  if (!projects.ok()) {
    LogRefreshFailure("reloading projects from the shared store", projects.error());
    return false;
  }
  // Rebuilt whole, so a project's changed token or secret never leaves a stale index entry behind.
  std::unordered_map<uint32_t, store::Project> by_id;
  std::unordered_map<std::string, uint32_t> by_token, by_secret;
  for (const auto& p : *projects) {
    by_id[p.id] = p;
    by_token[Key(p.token)] = p.id;
    by_secret[Key(p.api_secret.Reveal())] = p.id;
  }
  {
    std::unique_lock lock(mu_);
    by_id_.swap(by_id);
    by_token_hash_.swap(by_token);
    by_secret_hash_.swap(by_secret);
  }
  loaded_stamp_ = stamp;
  current_as_of_ms_.store(started_ms);
  {
    std::lock_guard lock(missing_mu_);
    missing_.clear();  // conservative: forget what the previous view did not have
  }
  return true;
}

void ProjectRegistry::LogRefreshFailure(std::string_view what, const Error& error) const {
  // One line per kFailureLogGap while the store is down, not one per request. The message is the store's
  // (it names the coordination service, never a credential); no token or secret is involved here.
  constexpr int64_t kFailureLogGapMs = 10'000;
  const int64_t now = SteadyMillis();
  if (last_failure_log_ms_ && now - *last_failure_log_ms_ < kFailureLogGapMs) {
    ++unlogged_failures_;
    return;
  }
  spdlog::warn("{} failed (the current view of projects is kept{}): {}", what,
               unlogged_failures_ > 0
                   ? fmt::format("; {} more failures since the last such line", unlogged_failures_)
                   : std::string(),
               error.message);
  last_failure_log_ms_ = now;
  unlogged_failures_ = 0;
}

bool ProjectRegistry::NothingNewToFind(std::string_view value) const {
  const std::string key = Key(value);
  {
    std::shared_lock lock(mu_);
    if (by_token_hash_.contains(key) || by_secret_hash_.contains(key)) return true;
  }
  std::lock_guard lock(missing_mu_);
  return missing_.contains(key);
}

void ProjectRegistry::RememberMissing(std::string_view value) const {
  constexpr size_t kMaxRemembered = 4096;  // ~200 KiB; a flood of distinct values just restarts the set
  std::string key = Key(value);
  std::lock_guard lock(missing_mu_);
  if (missing_.size() >= kMaxRemembered) missing_.clear();
  missing_.insert(std::move(key));
}

void ProjectRegistry::IndexLocked(const store::Project& p) {
  by_id_[p.id] = p;
  by_token_hash_[Key(p.token)] = p.id;
  by_secret_hash_[Key(p.api_secret.Reveal())] = p.id;
}

bool ProjectRegistry::ExternalIdTakenLocked(std::string_view external_id, uint32_t except) const {
  for (const auto& [id, p] : by_id_) {
    if (id == except) continue;
    // Another project's effective external ID is its external_id, else its token: both are taken.
    if (ConstantTimeEquals(p.token, external_id)) return true;
    if (!p.external_id.empty() && p.external_id == external_id) return true;
  }
  return false;
}

Result<store::Project> ProjectRegistry::Create(std::string_view name) {
  MaybeRefresh(Check::kWrite);  // see projects other nodes created before checking for collisions
  std::unique_lock lock(mu_);  // held across the write so a concurrent SetExternalId cannot race the check
  SLUICE_ASSIGN_OR_RETURN(auto project, store_.CreateProject(name));
  if (ExternalIdTakenLocked(project.token, project.id)) {
    // A random 128-bit token equal to an external ID an admin chose: refuse rather than share a trust policy.
    spdlog::error(
        "project {}: its new token equals another project's external ID; it was created but is not "
        "loaded: delete it",
        project.id);
    return Error(
        ErrorCode::kConflict,
        "the new project's token collides with another project's external ID: create the project again");
  }
  IndexLocked(project);
  return project;
}

Result<store::Project> ProjectRegistry::UpdateProject(uint32_t id, Update update) {
  MaybeRefresh(Check::kWrite);  // check conflicts against what other nodes wrote too
  std::unique_lock lock(mu_);  // held across the write: two updates cannot both take one ID or bucket
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return NotFound(fmt::format("project {} does not exist", id));
  // Two projects presenting the same ExternalId could each assume the other's roles (the confused deputy the
  // external ID exists to prevent), so it must be unique among external IDs and tokens.
  if (update.external_id && !update.external_id->empty() && ExternalIdTakenLocked(*update.external_id, id)) {
    return Error(ErrorCode::kConflict,
                 "this external_id is already another project's external ID or token: choose a different one "
                 "(e.g. a random string)");
  }
  // One bucket, one project: every project reaches GCS as the same service account, so a bucket bound twice
  // would let either tenant read or write the other's data.
  if (update.gcs_buckets) {
    for (const auto& [other_id, p] : by_id_) {
      if (other_id == id) continue;
      for (const std::string& bucket : *update.gcs_buckets) {
        if (std::find(p.gcs_buckets.begin(), p.gcs_buckets.end(), bucket) != p.gcs_buckets.end()) {
          return Error(
              ErrorCode::kConflict,
              fmt::format("gs://{} is already bound to another project: a bucket may be bound to one "
                          "project only; unbind it there first",
                          bucket));
        }
      }
    }
  }
  store::Project updated = it->second;
  if (update.external_id) updated.external_id = std::move(*update.external_id);
  if (update.gcs_buckets) updated.gcs_buckets = std::move(*update.gcs_buckets);
  SLUICE_TRY(store_.UpdateProject(updated));
  it->second = updated;
  return updated;
}

std::vector<store::Project> ProjectRegistry::List() const {
  MaybeRefresh(Check::kPeriodic);
  std::shared_lock lock(mu_);
  std::vector<store::Project> out;
  out.reserve(by_id_.size());
  for (const auto& [id, p] : by_id_) out.push_back(p);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

std::optional<store::Project> ProjectRegistry::ById(uint32_t id) const {
  MaybeRefresh(Check::kPeriodic);
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      std::shared_lock lock(mu_);
      auto it = by_id_.find(id);
      if (it != by_id_.end()) return it->second;
    }
    if (attempt == 0) MaybeRefresh(Check::kMiss);
  }
  return std::nullopt;
}

std::optional<store::Project> ProjectRegistry::ByToken(std::string_view token) const {
  if (token.empty()) return std::nullopt;
  MaybeRefresh(Check::kPeriodic);
  if (auto p = ByTokenLocked(token)) return p;
  if (NothingNewToFind(token)) return std::nullopt;
  const bool answered = MaybeRefresh(Check::kMiss);
  auto p = ByTokenLocked(token);
  if (!p && answered) RememberMissing(token);
  return p;
}

std::optional<store::Project> ProjectRegistry::ByTokenLocked(std::string_view token) const {
  std::shared_lock lock(mu_);
  auto it = by_token_hash_.find(Key(token));
  if (it == by_token_hash_.end()) return std::nullopt;
  const auto& p = by_id_.at(it->second);
  if (!ConstantTimeEquals(p.token, token)) return std::nullopt;
  return p;
}

std::optional<store::Project> ProjectRegistry::BySecret(std::string_view secret) const {
  if (secret.empty()) return std::nullopt;
  MaybeRefresh(Check::kPeriodic);
  if (auto p = BySecretLocked(secret)) return p;
  if (NothingNewToFind(secret)) return std::nullopt;
  const bool answered = MaybeRefresh(Check::kMiss);
  auto p = BySecretLocked(secret);
  if (!p && answered) RememberMissing(secret);
  return p;
}

std::optional<store::Project> ProjectRegistry::BySecretLocked(std::string_view secret) const {
  std::shared_lock lock(mu_);
  auto it = by_secret_hash_.find(Key(secret));
  if (it == by_secret_hash_.end()) return std::nullopt;
  const auto& p = by_id_.at(it->second);
  if (!ConstantTimeEquals(p.api_secret.Reveal(), secret)) return std::nullopt;
  return p;
}

}  // namespace sluice::api
