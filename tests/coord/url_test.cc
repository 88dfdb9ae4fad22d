#include "coord/url.h"

#include <gtest/gtest.h>

namespace sluice::coord {
namespace {

TEST(ZooKeeperUrl, ParsesHostsAndChroot) {
  auto url = ParseZooKeeperUrl("zookeeper://zk1:2181,zk2:2181,10.0.0.3:2182/sluice/prod");
  ASSERT_TRUE(url.ok()) << url.error().ToString();
  ASSERT_EQ(url->hosts.size(), 3u);
  EXPECT_EQ(url->ConnectString(), "zk1:2181,zk2:2181,10.0.0.3:2182");
  EXPECT_EQ(url->chroot, "/sluice/prod");
  EXPECT_EQ(url->ToString(), "zookeeper://zk1:2181,zk2:2181,10.0.0.3:2182/sluice/prod");

  url = ParseZooKeeperUrl("zookeeper://127.0.0.1:2181");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->chroot, "");
}

TEST(ZooKeeperUrl, RejectsEverythingOutsideTheContract) {
  const char* bad[] = {
      "",
      "zk://127.0.0.1:2181",
      "zookeeper://",
      "zookeeper://127.0.0.1",
      "zookeeper://127.0.0.1:2181/",
      "zookeeper://127.0.0.1:2181/a/",
      "zookeeper://127.0.0.1:2181//a",
      "zookeeper://127.0.0.1:2181/a/../b",
      "zookeeper://127.0.0.1:2181/a/./b",
      "zookeeper://127.0.0.1:2181/a b",
      "zookeeper://127.0.0.1:2181/a?x=1",
      "zookeeper://u:p@127.0.0.1:2181",
      "zookeeper://127.0.0.1:2181,,127.0.0.2:2181",
      "zookeeper://127.0.0.1:99999",
  };
  for (const char* text : bad) {
    auto url = ParseZooKeeperUrl(text);
    EXPECT_FALSE(url.ok()) << "accepted: " << text;
    if (!url.ok()) {
      EXPECT_EQ(url.error().code, ErrorCode::kInvalidArgument) << text;
    }
  }
}

TEST(ZooKeeperUrl, NodePaths) {
  EXPECT_TRUE(IsValidNodePath("/"));
  EXPECT_TRUE(IsValidNodePath("/leases/export.p7.2026-12-06T04"));
  EXPECT_FALSE(IsValidNodePath("leases"));
  EXPECT_FALSE(IsValidNodePath("/leases/"));
  EXPECT_FALSE(IsValidNodePath("/a//b"));
  EXPECT_FALSE(IsValidNodePath("/a/.."));
}

}  // namespace
}  // namespace sluice::coord
