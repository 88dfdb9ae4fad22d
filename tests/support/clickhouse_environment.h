// A gtest Environment that starts one loopback ClickHouse cluster (1 shard × 2 replicas unless asked) for a
// whole test binary, on the ZooKeeper of ZooKeeperEnvironment (header-only, like it). Register it after
// ZooKeeperEnvironment: gtest tears environments down in reverse order, so the servers are stopped by PID and
// their temp dir removed before ZooKeeper stops.
//
//   ::testing::AddGlobalTestEnvironment(new sluice::testing::ZooKeeperEnvironment());
//   ::testing::AddGlobalTestEnvironment(new sluice::testing::ClickHouseClusterEnvironment());
//   ... sluice::testing::ClickHouseClusterEnvironment::cluster()->StoreUrl("db") ...
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "support/clickhouse_cluster.h"
#include "support/zookeeper_environment.h"

namespace sluice::testing {

class ClickHouseClusterEnvironment : public ::testing::Environment {
 public:
  /// 1 × 2 by default; a suite that needs sharding asks for 2 × 2 (one such cluster per test binary).
  explicit ClickHouseClusterEnvironment(int shards = 1, int replicas = 2)
      : shards_(shards), replicas_(replicas) {}
  void SetUp() override {
    ASSERT_NE(ZooKeeperEnvironment::server(), nullptr) << "ZooKeeper did not start";
    ClickHouseClusterOptions o;
    o.shards = shards_;
    o.replicas = replicas_;
    auto ch = ClickHouseCluster::Start(o, ZooKeeperEnvironment::server()->HostPort());
    ASSERT_TRUE(ch.ok()) << ch.error().ToString();
    Slot() = std::move(ch).value();
  }
  void TearDown() override { Slot().reset(); }
  /// The running cluster; null when it failed to start.
  static ClickHouseCluster* cluster() { return Slot().get(); }

 private:
  static std::unique_ptr<ClickHouseCluster>& Slot() {
    static std::unique_ptr<ClickHouseCluster> slot;
    return slot;
  }
  int shards_;
  int replicas_;
};

}  // namespace sluice::testing
