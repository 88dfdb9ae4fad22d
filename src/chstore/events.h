// chstore::ClickHouseEventStore: the events, identity map and change tracking of store::EventStore kept in
// ClickHouse (the scale-out backend, issue 13), shared by every Sluice node that names the same database.
//
// Tables (clickhouse/schema.h creates them idempotently at Open):
//   events          ReplacingMergeTree(version) keyed by the dedup key, PARTITION BY day; with a cluster a
//                   ReplicatedReplacingMergeTree per server behind a Distributed table sharded by
//                   cityHash64(project_id, distinct_id), so every copy of a key is on one shard.
//   events_changes  one row (project_id, hour, version, rows, bytes) per (project, hour) per WriteEvents
//   call. identity        (project_id, device_id, user_id, rank = ~version): the lowest version — the first
//   link —
//                   wins, on merges (ReplacingMergeTree(rank)) and on reads (argMax(user_id, rank)).
//
// Versions. Every row carries a version from chstore::VersionClock: the writing node's wall clock in
// microseconds, strictly increasing per process. ReplacingMergeTree keeps the highest version of a dedup key,
// so a rewrite replaces, on any node. Reads use FINAL, which is exact before merges too.
//
// Durability. WriteEvents returns OK only when ClickHouse acknowledged every insert with the durable settings
// (EventsSchema::DurableInsertSettings: a synchronous Distributed insert and insert_quorum = a majority of
// each shard's replicas). A replica down below the quorum is ClickHouse's TOO_FEW_LIVE_REPLICAS: WriteEvents
// fails with a retryable error (ingest answers 503; SDKs retry) and never acknowledges a single copy. A retry
// by clickhouse::Client re-sends the same body, which replicated tables drop as a duplicate block; a retry by
// the SDK carries a new version and the same dedup keys, so it replaces.
//
// Change tracking without a full scan. change_seq is a version. WriteEvents inserts its events_changes rows
// only AFTER its events insert succeeded, with the highest version of the call; ListPartitions and
// ChangedPartitions aggregate events_changes (sum(rows), sum(bytes), max(version) per hour). This is exact
// with concurrent writers on any number of nodes: every call adds its own rows, nothing is
// read-modify-written.
//
// The watermark. An exporter reads S = LastChangeSeq(), exports what changed, and later asks for changes
// after S; this must never skip a write that was in flight when it read S. Versions are taken at the start of
// a write and become visible later, so "the highest version seen" would be wrong. Instead:
//
//   LastChangeSeq() = now − (write_deadline + max_clock_skew), in version units (µs), never decreasing,
//
// and WriteEvents enforces the deadline: an insert is sent with the time left (and insert_quorum_timeout set
// to the deadline, so the server gives up too), and a call that finishes after version + write_deadline by
// the writing node's clock returns a retryable error instead of OK (the retry gets a new, later version). So
// a write with version V ≤ S either finished (both inserts visible) before the exporter read S — its node's
// clock read at most V + deadline then, which is at most S + deadline + skew ≤ now on the reader's clock — or
// failed and will be retried with a version > S. The cost: changes are reported to exporters
// write_deadline + max_clock_skew after they happen (the settle window), which is small next to the hourly
// partition an exporter waits for anyway.
//
// Scans stream ClickHouse's RowBinary answer through a small buffer (rows are parsed in place; memory does
// not grow with the partition). ScanPartitions runs one query per hour, ascending; unlike RocksStore there is
// no snapshot across hours (each hour is read FINAL as it is at that moment).
//
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>

#include "chstore/version.h"
#include "clickhouse/client.h"
#include "clickhouse/schema.h"
#include "common/clock.h"
#include "store/store.h"

namespace sluice::chstore {

struct EventStoreOptions {
  /// Empty = the database of the client's clickhouse:// URL.
  std::string database;
  /// nullopt = the URL's ?cluster=; "" = one server without replication.
  std::optional<std::string> cluster;
  /// Replicas per shard (the insert quorum is a majority); 0 = read from system.clusters.
  int replicas_per_shard = 0;
  /// Versions, ingested_ms and the watermark; nullptr = SystemClock::Instance(). Not owned.
  const Clock* clock = nullptr;
  /// A WriteEvents call that takes longer fails (retryable) instead of succeeding late.
  std::chrono::milliseconds write_deadline{30'000};
  /// How far the nodes' clocks may disagree (NTP keeps them within milliseconds).
  std::chrono::milliseconds max_clock_skew{5'000};
};

class ClickHouseEventStore final : public store::EventStore {
 public:
  /// Checks the server (reachable, at least 18.16: otherwise an error naming the URL and what to check),
  /// then creates or migrates the schema idempotently.
  static Result<std::unique_ptr<ClickHouseEventStore>> Open(std::shared_ptr<clickhouse::Client> client,
                                                            EventStoreOptions options);

  Status WriteEvents(uint32_t project, std::span<const Event> events,
                     std::span<const IdentityLink> links = {}) override;
  Status ScanPartition(uint32_t project, store::Hour hour,
                       const std::function<bool(const store::EventView&)>& fn) override;
  Status ScanPartitions(uint32_t project, store::Hour first, store::Hour end,
                        const std::function<bool(const store::EventView&)>& fn) override;
  Result<std::vector<store::PartitionInfo>> ListPartitions(uint32_t project, store::Hour from,
                                                           store::Hour to) override;
  Result<std::vector<store::PartitionInfo>> ChangedPartitions(uint32_t project, uint64_t after_seq) override;
  uint64_t LastChangeSeq() const override;

  Result<std::optional<std::string>> ResolveDevice(uint32_t project, std::string_view device_id) override;
  Status ScanIdentity(
      uint32_t project,
      const std::function<bool(std::string_view device_id, std::string_view user_id)>& fn) override;

  const clickhouse::EventsSchema& schema() const { return schema_; }
  /// write_deadline + max_clock_skew: how long after a write LastChangeSeq() passes its version.
  std::chrono::microseconds settle_window() const { return settle_; }

 private:
  ClickHouseEventStore(std::shared_ptr<clickhouse::Client> client, EventStoreOptions options,
                       clickhouse::EventsSchema schema);
  clickhouse::RequestOptions InsertOptions(std::chrono::microseconds left) const;
  clickhouse::RequestOptions ReadOptions() const;
  Result<std::vector<store::PartitionInfo>> QueryPartitions(const std::string& sql);
  Status ScanIdentityWhere(
      uint32_t project, const std::string& condition,
      const std::function<bool(std::string_view device_id, std::string_view user_id)>& fn);
  Status InsertLinks(uint32_t project, std::span<const IdentityLink> links, uint64_t version,
                     int64_t deadline_us);
  Status DurableInsert(std::string_view table, const http::RequestBody& body, int64_t deadline_us);
  int64_t NowMicros() const;

  std::shared_ptr<clickhouse::Client> client_;
  EventStoreOptions options_;
  clickhouse::EventsSchema schema_;
  const Clock* clock_;
  std::chrono::microseconds settle_;
  VersionClock versions_;
  mutable std::atomic<uint64_t> watermark_{0};

  // Devices known to be linked (by this node or read back): their links need no insert. Bounded; cleared
  // when full (a cleared entry only costs one redundant, harmless link row).
  std::mutex linked_mu_;
  std::unordered_set<std::string> linked_;
};

}  // namespace sluice::chstore
