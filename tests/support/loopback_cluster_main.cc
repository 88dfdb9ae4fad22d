// sluice_loopback_cluster: starts the loopback ZooKeeper + ClickHouse cluster the cluster tests use, prints
// the
// --store and --coordination URLs, and keeps it running until SIGTERM/SIGINT (then stops every server by
// PID). scripts/cluster.sh runs it in the background; run it in the foreground to watch it.
//
//   sluice_loopback_cluster --dir /tmp/sluice-cluster [--shards 1] [--replicas 2] [--database sluice]
#include <fmt/format.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "support/child_process.h"
#include "support/clickhouse_cluster.h"
#include "support/zookeeper_server.h"

using sluice::testing::ClickHouseCluster;
using sluice::testing::ClickHouseClusterOptions;
using sluice::testing::ZooKeeperServer;

int main(int argc, char** argv) {
  std::string dir = "/tmp/sluice-cluster";
  std::string database = "sluice";
  ClickHouseClusterOptions ch_options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--dir") {
      dir = next();
    } else if (arg == "--shards") {
      ch_options.shards = std::atoi(next().c_str());
    } else if (arg == "--replicas") {
      ch_options.replicas = std::atoi(next().c_str());
    } else if (arg == "--database") {
      database = next();
    } else {
      std::fprintf(
          stderr, "usage: sluice_loopback_cluster [--dir DIR] [--shards N] [--replicas M] [--database DB]\n");
      return 2;
    }
  }
  if (ch_options.shards < 1 || ch_options.replicas < 1 || ch_options.shards * ch_options.replicas > 8) {
    std::fprintf(stderr, "shards × replicas must be between 1 and 8 on one machine\n");
    return 2;
  }
  // Block the stop signals before any thread exists, so sigwait below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  std::filesystem::create_directories(dir);
  ZooKeeperServer::Options zk_options;
  zk_options.dir = dir + "/zookeeper";
  zk_options.tick = std::chrono::milliseconds(500);
  auto zk = ZooKeeperServer::Start(zk_options);
  if (!zk.ok()) {
    std::fprintf(stderr, "ZooKeeper: %s\n", zk.error().ToString().c_str());
    return 1;
  }
  ch_options.dir = dir + "/clickhouse";
  auto ch = ClickHouseCluster::Start(ch_options, (*zk)->HostPort());
  if (!ch.ok()) {
    std::fprintf(stderr, "ClickHouse: %s\n", ch.error().ToString().c_str());
    return 1;
  }
  std::string env = fmt::format("SLUICE_STORE={}\nSLUICE_COORDINATION={}\n", (*ch)->StoreUrl(database),
                                (*zk)->Url("/sluice"));
  for (size_t i = 0; i < (*ch)->size(); ++i) {
    const auto& node = (*ch)->node(i);
    env += fmt::format("# clickhouse s{}r{}: http {} tcp {} pid {} dir {}\n", node.shard, node.replica,
                       node.http_port, node.tcp_port, node.process.pid(), node.dir);
  }
  env += fmt::format("# zookeeper: {} pid {} dir {}\n", (*zk)->HostPort(), (*zk)->pid(), (*zk)->dir());
  // Written last and renamed into place: its presence means "ready".
  if (!sluice::testing::WriteTextFile(dir + "/cluster.env.tmp", env).ok() ||
      std::rename((dir + "/cluster.env.tmp").c_str(), (dir + "/cluster.env").c_str()) != 0) {
    std::fprintf(stderr, "cannot write %s/cluster.env\n", dir.c_str());
    return 1;
  }
  std::fputs(env.c_str(), stdout);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  std::fprintf(stderr, "signal %d: stopping the cluster\n", sig);
  std::filesystem::remove(dir + "/cluster.env");
  (*ch)->Stop();
  (*zk)->Stop();
  return 0;
}
