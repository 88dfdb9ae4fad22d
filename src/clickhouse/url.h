// The --store URL of the ClickHouse backend:
//
//   clickhouse://HOST:PORT[,HOST:PORT...]/DB[?cluster=NAME]
//
// HOST:PORT are ClickHouse HTTP endpoints (port 8123 by default on a server, but always written out):
// replicas of the same data that the client fails over between, in the order given. DB is the database Sluice
// owns. `cluster` names the <remote_servers> cluster used for ON CLUSTER DDL and the Distributed table;
// without it Sluice uses one server's local tables and no replication. The name and syntax are a contract
// (operators' scripts and acceptance checks use them), so parsing is strict: no credentials in the URL (they
// come from flags/environment as secrets), no unknown query parameters, no trailing slash.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/host_port.h"
#include "common/result.h"

namespace sluice::clickhouse {

struct ClickHouseUrl {
  std::vector<HostPort> hosts;
  std::string database;
  /// <remote_servers> name; empty = single server, no ON CLUSTER, no Distributed table.
  std::string cluster;

  /// The canonical form, e.g. "clickhouse://127.0.0.1:8123,127.0.0.1:8124/sluice?cluster=c".
  std::string ToString() const;
};

/// Parses and validates a clickhouse:// URL; kInvalidArgument with a message that names the part to fix.
Result<ClickHouseUrl> ParseClickHouseUrl(std::string_view url);

/// True for names usable unquoted as a ClickHouse database, table or cluster name: [A-Za-z_][A-Za-z0-9_]*,
/// at most 64 characters. Sluice only ever generates SQL with such names, so no quoting rules are needed.
bool IsPlainIdentifier(std::string_view name);

}  // namespace sluice::clickhouse
