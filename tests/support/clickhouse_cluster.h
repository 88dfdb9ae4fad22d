// ClickHouseCluster: N shards × M replicas of Debian's clickhouse-server 18.16 on 127.0.0.1, for one test
// binary, benchmark or scripts/cluster.sh. Every server gets its own free ports (HTTP, native TCP,
// interserver), its own data dir and config under one temp dir, the same <remote_servers> cluster, macros
// {shard}/{replica}, and the given ZooKeeper (needed for replicated tables and ON CLUSTER DDL). Started as
// plain processes (the package's service is not used) and stopped by PID; a node can be stopped and started
// again with its data.
//
//   auto zk = ZooKeeperServer::Start();
//   auto ch = ClickHouseCluster::Start({.shards = 1, .replicas = 2}, (*zk)->HostPort());
//   std::string url = (*ch)->StoreUrl("sluice");   //
//   clickhouse://127.0.0.1:P1,127.0.0.1:P2/sluice?cluster=sluice
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "support/child_process.h"

namespace sluice::testing {

struct ClickHouseClusterOptions {
  int shards = 1;
  int replicas = 2;
  /// The <remote_servers> name (the URL's ?cluster=).
  std::string cluster = "sluice";
  std::chrono::milliseconds ready_timeout{60'000};
  /// Directory for all nodes; empty = a fresh temp dir removed by the destructor.
  std::string dir;
};

class ClickHouseCluster {
 public:
  struct NodeInfo {
    int shard = 0;    // 1-based
    int replica = 0;  // 1-based
    uint16_t http_port = 0;
    uint16_t tcp_port = 0;
    uint16_t interserver_port = 0;
    std::string dir;
    ChildProcess process;
  };

  /// `zookeeper` is "HOST:PORT" of a running ZooKeeper. Waits (bounded) until every server answers /ping.
  static Result<std::unique_ptr<ClickHouseCluster>> Start(const ClickHouseClusterOptions& options,
                                                          const std::string& zookeeper);
  ~ClickHouseCluster();

  size_t size() const { return nodes_.size(); }
  const NodeInfo& node(size_t i) const { return nodes_[i]; }
  /// Index of (shard, replica), both 1-based.
  size_t IndexOf(int shard, int replica) const {
    return static_cast<size_t>((shard - 1) * options_.replicas + replica - 1);
  }
  const ClickHouseClusterOptions& options() const { return options_; }

  /// clickhouse://every server's HTTP port/DB?cluster=NAME
  std::string StoreUrl(const std::string& database) const;
  /// The same, naming only the servers with the given indexes.
  std::string StoreUrlOf(const std::vector<size_t>& nodes, const std::string& database) const;

  /// Stops one server by PID (SIGTERM, bounded wait, SIGKILL); its data stays.
  void StopNode(size_t i);
  /// Starts a stopped server again on the same ports and data, waiting for /ping.
  Status StartNode(size_t i);
  /// Stops all servers. Idempotent.
  void Stop();

 private:
  ClickHouseCluster() = default;
  Status WriteConfig(const NodeInfo& node, const std::string& zookeeper) const;
  Status Launch(NodeInfo& node);
  Status WaitReady(NodeInfo& node);
  Status ProveDistributedDdl();

  ClickHouseClusterOptions options_;
  std::string dir_;
  bool own_dir_ = false;
  std::vector<NodeInfo> nodes_;
};

}  // namespace sluice::testing
