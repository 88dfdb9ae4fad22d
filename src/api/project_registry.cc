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
  SLUICE_ASSIGN_OR_RETURN(auto projects, store_.ListProjects());
  last_refresh_ms_.store(SteadyMillis());
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

void ProjectRegistry::MaybeRefresh(bool missed) const {
  if (refresh_interval_.count() <= 0) return;
  const int64_t now = SteadyMillis();
  const int64_t age = now - last_refresh_ms_.load();
  if (age < refresh_interval_.count() && !(missed && age >= refresh_interval_.count() / 4)) return;
  std::unique_lock refreshing(refresh_mu_, std::try_to_lock);
  if (!refreshing.owns_lock()) return;  // another thread is reloading; use the current view
  last_refresh_ms_.store(now);
  auto projects = store_.ListProjects();
  if (!projects.ok()) {
    spdlog::warn("reloading projects from the shared store failed (the current view is kept): {}",
                 projects.error().message);
    return;
  }
  // Rebuilt whole, so a project's changed token or secret never leaves a stale index entry behind.
  std::unordered_map<uint32_t, store::Project> by_id;
  std::unordered_map<std::string, uint32_t> by_token, by_secret;
  for (const auto& p : *projects) {
    by_id[p.id] = p;
    by_token[Key(p.token)] = p.id;
    by_secret[Key(p.api_secret.Reveal())] = p.id;
  }
  std::unique_lock lock(mu_);
  by_id_.swap(by_id);
  by_token_hash_.swap(by_token);
  by_secret_hash_.swap(by_secret);
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
  MaybeRefresh(true);          // see projects other nodes created before checking for collisions
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
  MaybeRefresh(true);          // check conflicts against what other nodes wrote too
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
  MaybeRefresh(false);
  std::shared_lock lock(mu_);
  std::vector<store::Project> out;
  out.reserve(by_id_.size());
  for (const auto& [id, p] : by_id_) out.push_back(p);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

std::optional<store::Project> ProjectRegistry::ById(uint32_t id) const {
  MaybeRefresh(false);
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      std::shared_lock lock(mu_);
      auto it = by_id_.find(id);
      if (it != by_id_.end()) return it->second;
    }
    if (attempt == 0) MaybeRefresh(true);
  }
  return std::nullopt;
}

std::optional<store::Project> ProjectRegistry::ByToken(std::string_view token) const {
  if (token.empty()) return std::nullopt;
  MaybeRefresh(false);
  if (auto p = ByTokenLocked(token)) return p;
  MaybeRefresh(true);
  return ByTokenLocked(token);
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
  MaybeRefresh(false);
  if (auto p = BySecretLocked(secret)) return p;
  MaybeRefresh(true);
  return BySecretLocked(secret);
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
