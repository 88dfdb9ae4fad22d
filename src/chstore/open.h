// chstore::OpenClusterStore: the store of `sluice serve --store clickhouse://… --coordination zookeeper://…`.
//
// Events, change tracking and the identity map (events.h) and profiles (profiles.h) live in ClickHouse;
// projects and the meta records of pipelines, connectors and credentials (zk_meta.h) live in ZooKeeper, which
// ClickHouse replication needs anyway and which the job runner's leases use. Every Sluice node opens the same
// URLs and holds no state of its own, so any node serves any request and a dead node loses nothing.
//
// Opening checks both services (a clear error naming the URL when one does not answer or ClickHouse is older
// than 18.16) and creates or migrates the schema idempotently, so N nodes may start at once.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "clickhouse/client.h"
#include "common/clock.h"
#include "common/result.h"
#include "common/secret.h"
#include "coord/session.h"
#include "http/transport.h"
#include "store/store.h"

namespace sluice::chstore {

struct ClusterStoreOptions {
  /// `clickhouse://HOST:PORT[,HOST:PORT…]/DB[?cluster=NAME]` (the contract of --store).
  std::string store_url;
  /// `zookeeper://HOST:PORT[,HOST:PORT…][/CHROOT]` (the contract of --coordination).
  std::string coordination_url;
  std::shared_ptr<http::HttpTransport> transport;
  /// ClickHouse user (empty = `default`) and password (sent as HTTP Basic auth; never logged).
  std::string clickhouse_user;
  Secret clickhouse_password;
  /// Folds profile operations (ingest's; the store does not depend on ingest). Not owned.
  const store::ProfileFolder* profile_folder = nullptr;
  /// ZooKeeper session timeout: how long a dead node's leases outlive it.
  std::chrono::milliseconds session_timeout{10'000};
  /// nullptr = SystemClock::Instance(). Not owned.
  const Clock* clock = nullptr;
  /// Rows are versioned, and exports find late events, by the nodes' clocks (version.h, events.h), so a node
  /// whose clock is further than this from ClickHouse's is refused at open, and /healthz reports it ("clock")
  /// while it lasts. Two nodes within it of ClickHouse's clock (± the measurement's 0.5 s) are within the
  /// 5 s the export watermark allows between nodes (EventStoreOptions::max_clock_skew). Zero = not checked.
  std::chrono::milliseconds max_clock_skew{2'000};
};

/// How far `clock` is ahead of ClickHouse's (negative: behind), measured with one query; the server answers
/// in whole seconds, so the figure is within ±(half the round trip + 0.5 s). kClockSkew naming the offset and
/// what to check when it is beyond `max`; the client's error when ClickHouse does not answer.
Status CheckClockAgainstClickHouse(clickhouse::Client& client, const Clock& clock,
                                   std::chrono::milliseconds max);

struct ClusterStore {
  std::unique_ptr<store::Store> store;
  /// The coordination session, shared with the job runner's leases.
  std::shared_ptr<coord::Session> coordination;
  /// The ClickHouse client (for benchmarks and tests).
  std::shared_ptr<clickhouse::Client> clickhouse;
};

Result<ClusterStore> OpenClusterStore(const ClusterStoreOptions& options);

}  // namespace sluice::chstore
