// chstore::ClickHouseProfileStore: user and group profiles in ClickHouse as an operation log, so several
// Sluice nodes can update one profile at once without a read-modify-write race (an $add on node A and an $add
// on node B both count).
//
// ApplyProfileOps appends each operation as one row; reads fold a profile's rows in order with the
// store::ProfileFolder given at construction (ingest::ProfileUpdateFolder in the server):
//
//   CREATE TABLE IF NOT EXISTS DB.profile_ops_local ON CLUSTER C (
//     project_id UInt32, group_key String, profile_id String, version UInt64, batch_id String, seq UInt32,
//     op String)
//   ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/DB/profile_ops_local', '{replica}')
//   ORDER BY (project_id, group_key, profile_id, version, batch_id, seq) SETTINGS index_granularity = 1024
//   CREATE TABLE IF NOT EXISTS DB.profile_ops ON CLUSTER C AS DB.profile_ops_local
//   ENGINE = Distributed(C, DB, profile_ops_local, cityHash64(project_id, group_key, profile_id))
//
// Without a cluster DB.profile_ops is a plain ReplacingMergeTree and there is no Distributed table.
//
// - Order: one call's operations of one profile (a "change") share a `version` from chstore::VersionClock and
// a
//   `batch_id`, and are numbered by `seq`; the fold applies changes in (version, batch_id) order and each
//   change's operations as one span (so a profile limit broken by a change refuses that change alone, as in
//   the embedded store). Across nodes, versions order changes as far as the nodes' clocks agree;
//   commutative operations ($add, $union, $remove of distinct items) are exact regardless.
// - A retried insert is never applied twice: (batch_id, seq) is a unique operation id. Replicated tables drop
//   a retried block outright; whatever duplicate is still stored (a plain table, a re-sent block that was
//   rebuilt) sits next to its original in the sort order and the fold skips it, and a merge of
//   ReplacingMergeTree removes it for good.
// - Sharding by the profile keeps a profile's whole log on one shard.
// - The stored result is exact. The refusals ApplyProfileOps reports are computed against the profile as
//   read at write time: when another node writes the same profile at that moment, the report is best effort
//   (the fold at read time decides).
// - The log is never compacted yet: a profile's read cost grows with its number of operations.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "chstore/version.h"
#include "clickhouse/client.h"
#include "common/clock.h"
#include "common/result.h"
#include "store/store.h"

namespace sluice::chstore {

struct ProfileStoreOptions {
  std::shared_ptr<clickhouse::Client> client;
  /// Database (a plain identifier, as the clickhouse:// URL's) and `<remote_servers>` cluster (empty = one
  /// server, no replication).
  std::string database;
  std::string cluster;
  /// Settings of every insert, so a 2xx means durable (clickhouse::EventsSchema::DurableInsertSettings()).
  clickhouse::Settings insert_settings;
  /// Folds operations on every read. Not owned; must outlive the store.
  const store::ProfileFolder* folder = nullptr;
  /// Source of operation versions; nullptr = SystemClock::Instance(). Not owned.
  const Clock* clock = nullptr;
  /// How long an insert waits out ClickHouse 18.16's one-quorum-insert-at-a-time per table (error 286) before
  /// failing; the caller's request fails with it (kTransient) after that.
  std::chrono::milliseconds quorum_wait{30'000};
  /// Profiles folded per query of ScanProfiles/ScanGroupProfiles (bounds their memory).
  size_t scan_page_profiles = 256;
  /// Tests only: called with each insert's table and body after it was acknowledged (a test re-sends it as a
  /// retry would).
  std::function<void(const std::string& table, const http::RequestBody& body)> after_insert_for_testing;
};

class ClickHouseProfileStore final : public store::ProfileStore {
 public:
  /// Creates the tables when missing (idempotent; safe on every node at once) and checks an existing table's
  /// columns. kInvalidArgument for incomplete options; the client's error (naming the hosts) when ClickHouse
  /// does not answer.
  static Result<std::unique_ptr<ClickHouseProfileStore>> Open(ProfileStoreOptions options);
  /// The DDL Open runs, in order (for docs and golden tests).
  static std::vector<std::string> SchemaStatements(std::string_view database, std::string_view cluster);

  Status ApplyProfileOps(uint32_t project, std::string_view group_key,
                         std::span<const store::ProfileOps> changes, const store::ProfileFolder& folder,
                         std::vector<store::ProfileOpRefusal>* refused) override;
  Result<std::optional<std::string>> GetProfile(uint32_t project, std::string_view distinct_id) override;
  Status ScanProfiles(
      uint32_t project, std::string_view after,
      const std::function<bool(std::string_view distinct_id, std::string_view json)>& fn) override;
  Result<std::optional<std::string>> GetGroupProfile(uint32_t project, std::string_view group_key,
                                                     std::string_view group_id) override;
  Status ScanGroupProfiles(
      uint32_t project, std::string_view group_key, std::string_view after,
      const std::function<bool(std::string_view group_id, std::string_view json)>& fn) override;

  /// The table operations are inserted into and read from (DB.profile_ops).
  std::string OpsTable() const { return options_.database + ".profile_ops"; }

 private:
  explicit ClickHouseProfileStore(ProfileStoreOptions options);
  /// Folds the stored operations of `ids` (all when `ids` is empty and `range` is set) of one profile set.
  /// Calls `fn(id, profile)` per profile that has operations, ascending by id; profile nullopt = deleted.
  struct IdRange {
    std::string first, last;  // inclusive
  };
  Status FoldStored(
      uint32_t project, std::string_view group_key, std::span<const std::string> ids,
      const std::optional<IdRange>& range, const store::ProfileFolder& folder,
      const std::function<bool(std::string_view id, const std::optional<std::string>& profile)>& fn);
  /// One query of FoldStored: the operations of the rows matching `where`, folded per profile.
  Status FoldQuery(
      const std::string& where, const store::ProfileFolder& folder,
      const std::function<bool(std::string_view id, const std::optional<std::string>& profile)>& fn);
  Result<std::optional<std::string>> Get(uint32_t project, std::string_view group_key, std::string_view id);
  /// The profiles of one set whose id is greater than `after` (empty: all), ascending by id.
  Status Scan(uint32_t project, std::string_view group_key, std::string_view after,
              const std::function<bool(std::string_view id, std::string_view json)>& fn);

  ProfileStoreOptions options_;
  VersionClock versions_;
};

}  // namespace sluice::chstore
