// A gtest Environment that starts one ZooKeeperServer for a whole test binary (header-only: the support
// library itself does not depend on gtest, since benchmarks link it too).
//
//   ::testing::AddGlobalTestEnvironment(new sluice::testing::ZooKeeperEnvironment());   // in main()
//   ... sluice::testing::ZooKeeperEnvironment::server()->Url("/t") ...
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "support/zookeeper_server.h"

namespace sluice::testing {

class ZooKeeperEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto zk = ZooKeeperServer::Start();
    ASSERT_TRUE(zk.ok()) << zk.error().ToString();
    Slot() = std::move(zk).value();
  }
  void TearDown() override { Slot().reset(); }
  /// The running server; null when it failed to start.
  static ZooKeeperServer* server() { return Slot().get(); }

 private:
  static std::unique_ptr<ZooKeeperServer>& Slot() {
    static std::unique_ptr<ZooKeeperServer> slot;
    return slot;
  }
};

}  // namespace sluice::testing
