#include "api/project_registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>

#include "common/crypto.h"

namespace sluice::api {
namespace {
std::string Key(std::string_view v) { return std::string(AsStringView(Sha256(v))); }
}  // namespace

Status ProjectRegistry::Load() {
  SLUICE_ASSIGN_OR_RETURN(auto projects, store_.ListProjects());
  std::unique_lock lock(mu_);
  for (const auto& p : projects) IndexLocked(p);
  return OkStatus();
}

void ProjectRegistry::IndexLocked(const store::Project& p) {
  by_id_[p.id] = p;
  by_token_hash_[Key(p.token)] = p.id;
  by_secret_hash_[Key(p.api_secret.Reveal())] = p.id;
}

Result<store::Project> ProjectRegistry::Create(std::string_view name) {
  SLUICE_ASSIGN_OR_RETURN(auto project, store_.CreateProject(name));
  std::unique_lock lock(mu_);
  IndexLocked(project);
  return project;
}

Result<store::Project> ProjectRegistry::SetExternalId(uint32_t id, std::string external_id) {
  std::unique_lock lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return NotFound(fmt::format("project {} does not exist", id));
  store::Project updated = it->second;
  updated.external_id = std::move(external_id);
  SLUICE_TRY(store_.UpdateProject(updated));
  it->second = updated;
  return updated;
}

std::vector<store::Project> ProjectRegistry::List() const {
  std::shared_lock lock(mu_);
  std::vector<store::Project> out;
  out.reserve(by_id_.size());
  for (const auto& [id, p] : by_id_) out.push_back(p);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

std::optional<store::Project> ProjectRegistry::ById(uint32_t id) const {
  std::shared_lock lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<store::Project> ProjectRegistry::ByToken(std::string_view token) const {
  if (token.empty()) return std::nullopt;
  std::shared_lock lock(mu_);
  auto it = by_token_hash_.find(Key(token));
  if (it == by_token_hash_.end()) return std::nullopt;
  const auto& p = by_id_.at(it->second);
  if (!ConstantTimeEquals(p.token, token)) return std::nullopt;
  return p;
}

std::optional<store::Project> ProjectRegistry::BySecret(std::string_view secret) const {
  if (secret.empty()) return std::nullopt;
  std::shared_lock lock(mu_);
  auto it = by_secret_hash_.find(Key(secret));
  if (it == by_secret_hash_.end()) return std::nullopt;
  const auto& p = by_id_.at(it->second);
  if (!ConstantTimeEquals(p.api_secret.Reveal(), secret)) return std::nullopt;
  return p;
}

}  // namespace sluice::api
