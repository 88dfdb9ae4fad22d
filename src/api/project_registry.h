// ProjectRegistry: the in-memory view of projects used to authenticate every request. Lookups by token or API
// secret go through a SHA-256 of the presented value (so a hash-table probe leaks nothing useful) followed by
// a constant-time comparison.
#pragma once

#include <cstdint>
#include <memory>
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
  explicit ProjectRegistry(store::Store& store) : store_(store) {}

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
  /// True when `external_id` is the token or external ID of a project other than `except`.
  bool ExternalIdTakenLocked(std::string_view external_id, uint32_t except) const;

  store::Store& store_;
  mutable std::shared_mutex mu_;
  std::unordered_map<uint32_t, store::Project> by_id_;
  std::unordered_map<std::string, uint32_t> by_token_hash_;
  std::unordered_map<std::string, uint32_t> by_secret_hash_;
};

}  // namespace sluice::api
