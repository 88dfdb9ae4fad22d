// The --coordination URL: zookeeper://HOST:PORT[,HOST:PORT...][/CHROOT]
//
// HOST:PORT are the ensemble's client ports (ZooKeeper, or ClickHouse Keeper which speaks the same protocol).
// CHROOT, when given, is the node under which Sluice keeps everything (e.g. /sluice/prod), so several
// deployments can share one ensemble. The name and syntax are a contract; parsing is strict.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/host_port.h"
#include "common/result.h"

namespace sluice::coord {

struct ZooKeeperUrl {
  std::vector<HostPort> hosts;
  /// "" (the root) or "/a/b": segments of [A-Za-z0-9_.-], no "." or "..", no trailing slash.
  std::string chroot;

  /// "h1:2181,h2:2181" as the ZooKeeper client library takes it (without the chroot: Session applies it).
  std::string ConnectString() const;
  std::string ToString() const;
};

Result<ZooKeeperUrl> ParseZooKeeperUrl(std::string_view url);

/// True for an absolute node path Sluice may use: "/" or "/seg[/seg...]" with segments as for CHROOT.
bool IsValidNodePath(std::string_view path);

}  // namespace sluice::coord
