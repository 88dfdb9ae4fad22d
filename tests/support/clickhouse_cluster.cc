#include "support/clickhouse_cluster.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "coord/session.h"
#include "support/loopback_http.h"
#include "support/moto_server.h"

namespace sluice::testing {
namespace {

constexpr const char* kServerBinary = "/usr/sbin/clickhouse-server";

std::string MissingHint() {
  return fmt::format(
      "ClickHouse is required for the cluster tests: install Debian's `clickhouse-server` "
      "package (scripts/install-deps.sh --test), which provides {}",
      kServerBinary);
}

// The users file: the `default` user without a password, loopback only, no quotas.
constexpr const char* kUsersXml = R"(<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage><log_queries>0</log_queries></default></profiles>
  <users><default>
    <password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota>
  </default></users>
  <quotas><default><interval>
    <duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows>
    <read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
)";

Status PrepareZooKeeper(const std::string& zookeeper) {
  coord::Session::Options o;
  SLUICE_ASSIGN_OR_RETURN(o.url, coord::ParseZooKeeperUrl("zookeeper://" + zookeeper));
  SLUICE_ASSIGN_OR_RETURN(auto session, coord::Session::Open(o));
  SLUICE_TRY(session->EnsurePath("/clickhouse/task_queue/ddl"));
  return session->EnsurePath("/clickhouse/tables");
}

}  // namespace

Result<std::unique_ptr<ClickHouseCluster>> ClickHouseCluster::Start(const ClickHouseClusterOptions& options,
                                                                    const std::string& zookeeper) {
  if (::access(kServerBinary, X_OK) != 0) return Unavailable(MissingHint());
  if (options.shards < 1 || options.replicas < 1) return InvalidArgument("shards and replicas must be >= 1");
  std::unique_ptr<ClickHouseCluster> cluster(new ClickHouseCluster());
  cluster->options_ = options;
  if (options.dir.empty()) {
    SLUICE_ASSIGN_OR_RETURN(cluster->dir_, MakeTempDir("sluice-ch"));
    cluster->own_dir_ = true;
  } else {
    cluster->dir_ = options.dir;
  }
  size_t count = static_cast<size_t>(options.shards * options.replicas);
  SLUICE_ASSIGN_OR_RETURN(auto ports, FindFreeLoopbackPorts(count * 3));
  for (int s = 1; s <= options.shards; ++s) {
    for (int r = 1; r <= options.replicas; ++r) {
      NodeInfo node;
      node.shard = s;
      node.replica = r;
      size_t i = cluster->nodes_.size();
      node.http_port = ports[i * 3];
      node.tcp_port = ports[i * 3 + 1];
      node.interserver_port = ports[i * 3 + 2];
      node.dir = fmt::format("{}/s{}r{}", cluster->dir_, s, r);
      cluster->nodes_.push_back(std::move(node));
    }
  }
  // 18.16's servers race to create the DDL queue node on a fresh ZooKeeper, and one of them can crash in
  // zkutil::ZooKeeper::createImpl (seen here 2 runs in 5); with the node present they start cleanly.
  SLUICE_TRY(PrepareZooKeeper(zookeeper));
  for (auto& node : cluster->nodes_) {
    SLUICE_TRY(cluster->WriteConfig(node, zookeeper));
    SLUICE_TRY(cluster->Launch(node));
  }
  for (auto& node : cluster->nodes_) SLUICE_TRY(cluster->WaitReady(node));
  SLUICE_TRY(cluster->ProveDistributedDdl());
  return cluster;
}

Status ClickHouseCluster::ProveDistributedDdl() {
  // 18.16 sometimes segfaults in its DDL worker right after start on a loaded machine (zkutil::ZooKeeper::
  // createImpl with no session yet), and every later ON CLUSTER statement then waits for it in vain. So prove
  // that ON CLUSTER DDL completes on every server, restarting a server that died (bounded rounds).
  std::string last;
  for (int round = 0; round < 3; ++round) {
    for (auto& node : nodes_) {
      if (node.process.Exited()) {
        last = fmt::format("s{}r{} crashed after start: {}", node.shard, node.replica,
                           TailOfFile(node.dir + "/error.log", 1500));
        SLUICE_TRY(Launch(node));
        SLUICE_TRY(WaitReady(node));
      }
    }
    auto resp = LoopbackRequest(
        nodes_[0].http_port, "POST", "/?distributed_ddl_task_timeout=15", {},
        fmt::format("CREATE DATABASE IF NOT EXISTS sluice_probe ON CLUSTER {}", options_.cluster),
        std::chrono::milliseconds(30'000));
    if (resp.ok() && resp->Status() == 200) return OkStatus();
    if (resp.ok()) last = resp->body;
    // No crash but no progress either: a DDL worker that gave up on ZooKeeper at start. Restart them all.
    bool any_exited = false;
    for (auto& node : nodes_) any_exited |= node.process.Exited();
    if (!any_exited) {
      Stop();
      for (auto& node : nodes_) SLUICE_TRY(Launch(node));
      for (auto& node : nodes_) SLUICE_TRY(WaitReady(node));
    }
  }
  return Unavailable(fmt::format("ON CLUSTER DDL does not complete on the loopback cluster: {}", last));
}

Status ClickHouseCluster::WriteConfig(const NodeInfo& node, const std::string& zookeeper) const {
  std::filesystem::create_directories(node.dir);
  std::string shards;
  for (int s = 1; s <= options_.shards; ++s) {
    shards += "<shard><internal_replication>true</internal_replication>";
    for (int r = 1; r <= options_.replicas; ++r) {
      const NodeInfo& peer = nodes_[IndexOf(s, r)];
      shards += fmt::format("<replica><host>127.0.0.1</host><port>{}</port></replica>", peer.tcp_port);
    }
    shards += "</shard>";
  }
  size_t colon = zookeeper.rfind(':');
  std::string config = fmt::format(
      R"(<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{dir}/server.log</log><errorlog>{dir}/error.log</errorlog><console>0</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>{inter}</interserver_http_port>
  <path>{dir}/data/</path>
  <tmp_path>{dir}/tmp/</tmp_path>
  <user_files_path>{dir}/user_files/</user_files_path>
  <format_schema_path>{dir}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>0</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <zookeeper><node><host>{zk_host}</host><port>{zk_port}</port></node><session_timeout_ms>10000</session_timeout_ms></zookeeper>
  <macros><shard>{shard:02}</shard><replica>r{replica}</replica></macros>
  <remote_servers><{cluster}>{shards}</{cluster}></remote_servers>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</yandex>
)",
      fmt::arg("dir", node.dir), fmt::arg("http", node.http_port), fmt::arg("tcp", node.tcp_port),
      fmt::arg("inter", node.interserver_port), fmt::arg("zk_host", zookeeper.substr(0, colon)),
      fmt::arg("zk_port", zookeeper.substr(colon + 1)), fmt::arg("shard", node.shard),
      fmt::arg("replica", node.replica), fmt::arg("cluster", options_.cluster), fmt::arg("shards", shards));
  SLUICE_TRY(WriteTextFile(node.dir + "/config.xml", config));
  return WriteTextFile(node.dir + "/users.xml", kUsersXml);
}

Status ClickHouseCluster::Launch(NodeInfo& node) {
  SLUICE_ASSIGN_OR_RETURN(node.process,
                          ChildProcess::Spawn({kServerBinary, "--config-file=" + node.dir + "/config.xml"},
                                              node.dir + "/stdout.log", node.dir));
  return OkStatus();
}

Status ClickHouseCluster::WaitReady(NodeInfo& node) {
  auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
  while (std::chrono::steady_clock::now() < deadline) {  // bounded by ready_timeout
    if (node.process.Exited()) {
      return Unavailable(fmt::format(
          "clickhouse-server s{}r{} (HTTP port {}) exited while starting. Log: {}", node.shard, node.replica,
          node.http_port, TailOfFile(node.dir + "/error.log") + TailOfFile(node.dir + "/stdout.log")));
    }
    auto resp = LoopbackRequest(node.http_port, "GET", "/ping", {}, "", std::chrono::milliseconds(1000));
    if (resp.ok() && resp->Status() == 200) return OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Error(ErrorCode::kDeadlineExceeded,
               fmt::format("clickhouse-server s{}r{} did not answer /ping on port {} within {} ms. Log: {}",
                           node.shard, node.replica, node.http_port, options_.ready_timeout.count(),
                           TailOfFile(node.dir + "/error.log")));
}

ClickHouseCluster::~ClickHouseCluster() {
  Stop();
  if (own_dir_ && std::getenv("SLUICE_KEEP_CLUSTER_DIR") == nullptr) RemoveTree(dir_);
}

std::string ClickHouseCluster::StoreUrl(const std::string& database) const {
  std::vector<size_t> all(nodes_.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  return StoreUrlOf(all, database);
}

std::string ClickHouseCluster::StoreUrlOf(const std::vector<size_t>& nodes,
                                          const std::string& database) const {
  std::string hosts;
  for (size_t i : nodes)
    hosts += fmt::format("{}127.0.0.1:{}", hosts.empty() ? "" : ",", nodes_[i].http_port);
  return fmt::format("clickhouse://{}/{}?cluster={}", hosts, database, options_.cluster);
}

void ClickHouseCluster::StopNode(size_t i) { nodes_[i].process.Stop(std::chrono::milliseconds(15000)); }

Status ClickHouseCluster::StartNode(size_t i) {
  NodeInfo& node = nodes_[i];
  if (node.process.running()) return OkStatus();
  SLUICE_TRY(Launch(node));
  return WaitReady(node);
}

void ClickHouseCluster::Stop() {
  // A server that exited on its own crashed (18.16 has crashed here when ZooKeeper was slow to accept its
  // session): say so with its log, or a test that then timed out on ON CLUSTER DDL is a riddle.
  for (auto& node : nodes_) {
    if (node.process.running() && node.process.Exited()) {
      std::fprintf(
          stderr, "clickhouse-server s%dr%d (HTTP port %u) had exited on its own. error.log tail:\n%s\n",
          node.shard, node.replica, node.http_port, TailOfFile(node.dir + "/error.log", 4000).c_str());
    }
  }
  // SIGTERM to all first, then wait: the servers shut down in parallel.
  for (auto& node : nodes_) {
    if (node.process.running()) ::kill(node.process.pid(), SIGTERM);
  }
  for (auto& node : nodes_) node.process.Stop(std::chrono::milliseconds(15000));
}

}  // namespace sluice::testing
