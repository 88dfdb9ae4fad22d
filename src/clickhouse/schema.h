// The events schema of the ClickHouse store backend, created idempotently at start-up.
//
// With a cluster (clickhouse://…/DB?cluster=C), on every server of C:
//
//   CREATE DATABASE IF NOT EXISTS DB ON CLUSTER C
//   CREATE TABLE IF NOT EXISTS DB.events_local ON CLUSTER C (
//     project_id UInt32, time DateTime('UTC'), time_us Int64, distinct_id String, name String, insert_id
//     String, device_id String, user_id String, properties String, version UInt64)
//   ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/DB/events_local', '{replica}', version)
//   PARTITION BY toDate(time) ORDER BY (project_id, time, distinct_id, name, insert_id)
//   SETTINGS index_granularity = 1024
//   CREATE TABLE IF NOT EXISTS DB.events ON CLUSTER C AS DB.events_local
//   ENGINE = Distributed(C, DB, events_local, cityHash64(project_id, distinct_id))
//
// Without a cluster: DB.events is the ReplacingMergeTree(version) itself and there is no Distributed table.
//
// Why this shape (see /work/shared/SCALEOUT.md for the 18.16 measurements):
// - The sorting key is the Mixpanel dedup key (name, distinct_id, time to the second, insert_id) led by
//   project_id and time, so ReplacingMergeTree collapses duplicates (latest `version` wins; exact with FINAL)
//   and a (project, hour) range reads a contiguous key range.
// - PARTITION BY day, not project × day: parts_to_throw_insert (300 per partition) would be hit by many
//   projects each making a part per batch.
// - Sharding by cityHash64(project_id, distinct_id) keeps every copy of a dedup key on one shard, so FINAL
//   through the Distributed table is still exact.
// - `time_us` keeps Sluice's microseconds (Mixpanel sends milliseconds); 18.16 has no DateTime64. `time` is
// the
//   second, written by Sluice (a MATERIALIZED column cannot pass through a Distributed insert in 18.16).
// - index_granularity 1024 instead of 8192: a point lookup reads ≈1 MB instead of ≈6.5 MB at 1 KB rows.
// - Replicated tables deduplicate a retried block (same rows, same order) even through another replica, which
//   is what makes a retried insert idempotent; `insert_quorum` makes the 2xx mean "on a majority of
//   replicas".
#pragma once

#include <cstdint>
#include <string>

#include "clickhouse/client.h"
#include "common/event.h"

namespace sluice::clickhouse {

struct EventsSchema {
  std::string database;
  std::string cluster;  // empty = one server
  /// Replicas per shard (for the insert quorum); 1 without a cluster.
  int replicas_per_shard = 1;

  /// The table Sluice inserts into and reads from: DB.events (Distributed with a cluster, else the table).
  std::string EventsTable() const { return database + ".events"; }
  /// The table that stores rows on each server: DB.events_local with a cluster, else DB.events.
  std::string LocalTable() const { return database + (cluster.empty() ? ".events" : ".events_local"); }
  /// Settings for an insert whose 2xx must mean durable: a synchronous Distributed insert and a majority
  /// quorum of each shard's replicas (none needed with one replica).
  Settings DurableInsertSettings() const;
  /// The statements EnsureEventsSchema runs first, in order (exposed for golden tests and docs).
  std::vector<std::string> Statements() const;

  // The tables next to the events that the store backend (chstore/events.h) needs; same pattern (a
  // Replicated* table per server plus a Distributed one with a cluster, else the table itself):
  // - events_changes: one row per (project, hour) per WriteEvents call with that call's version, row count and
  //   bytes, inserted after the events; change tracking aggregates it (sum, max(version)) instead of scanning
  //   events. MergeTree (every row counts), ORDER BY (project_id, hour).
  // - identity: (project_id, device_id, user_id, rank) where rank = ~version, in a ReplacingMergeTree(rank)
  //   keyed by (project_id, device_id): the highest rank is the LOWEST version, so the first link written
  //   wins on every merge, and reads take argMax(user_id, rank). Sharded by (project_id, device_id).
  std::string ChangesTable() const { return database + ".events_changes"; }
  std::string ChangesLocalTable() const {
    return database + (cluster.empty() ? ".events_changes" : ".events_changes_local");
  }
  std::string IdentityTable() const { return database + ".identity"; }
  std::string IdentityLocalTable() const { return database + (cluster.empty() ? ".identity" : ".identity_local"); }
  /// The statements for events_changes and identity, run by EnsureEventsSchema after Statements().
  std::vector<std::string> SupportStatements() const;
};

/// The schema for `url`, with `replicas_per_shard` read from system.clusters when a cluster is named.
/// kInvalidArgument when the cluster is not in the server's remote_servers.
Result<EventsSchema> DescribeEventsSchema(Client& client);

/// Creates database and tables if absent (safe to run on every start, on every node, concurrently), then
/// checks that every existing table has the expected columns (kPermanent naming the missing ones otherwise).
/// Tables added by a later Sluice (events_changes, identity) are created on an older database: that is the
/// migration.
Status EnsureEventsSchema(Client& client, const EventsSchema& schema);

/// Appends one event row in the column layout above. `version` must grow for later writes of the same key.
void AppendEventRow(InsertBody& body, uint32_t project_id, const Event& event, uint64_t version);

/// `s` as a ClickHouse single-quoted string literal (quotes included; backslash and quote escaped, bytes
/// otherwise as they are), for values that cannot be query parameters on 18.16.
std::string QuoteString(std::string_view s);

/// Checks that the existing table `database`.`table` has every column of `columns` (a table left by another
/// program or an older Sluice): kPermanent naming the missing ones. For every table of the ClickHouse store
/// (chstore's profile_ops too). `database` and `table` are plain identifiers.
Status CheckTableColumns(Client& client, const std::string& database, const std::string& table,
                         const std::vector<std::string>& columns);

}  // namespace sluice::clickhouse
