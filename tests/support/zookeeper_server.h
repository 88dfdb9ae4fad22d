// ZooKeeperServer: a private standalone ZooKeeper 3.8 (Debian's `zookeeper` package) on a free 127.0.0.1
// port, for one test binary, benchmark or scripts/cluster.sh. Config and data live in a fresh temp dir; the
// JVM runs ZooKeeperServerMain directly (no service), with admin.enableServer=false (else Jetty takes port
// 8080) and a short tickTime so session expiry — the lease timeout — takes seconds, not minutes. Stopped by
// PID.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "support/child_process.h"

namespace sluice::testing {

class ZooKeeperServer {
 public:
  struct Options {
    /// ZooKeeper's time unit; sessions may last 2..20 ticks (minSessionTimeout / maxSessionTimeout).
    std::chrono::milliseconds tick{250};
    std::chrono::milliseconds ready_timeout{60'000};
    /// Directory for config and data; empty = a fresh temp dir removed by the destructor.
    std::string dir;
  };

  /// Starts and waits (bounded) until `srvr` reports that it serves requests. kUnavailable naming the package
  /// when Java or the ZooKeeper jar is missing.
  static Result<std::unique_ptr<ZooKeeperServer>> Start(Options options);
  static Result<std::unique_ptr<ZooKeeperServer>> Start() { return Start(Options{}); }
  ~ZooKeeperServer();

  uint16_t port() const { return port_; }
  pid_t pid() const { return process_.pid(); }
  /// "127.0.0.1:PORT"
  std::string HostPort() const;
  /// "zookeeper://127.0.0.1:PORT" + chroot
  std::string Url(const std::string& chroot = "") const;
  const std::string& dir() const { return dir_; }
  std::chrono::milliseconds tick() const { return options_.tick; }

  /// Stops by PID (SIGTERM, bounded wait, SIGKILL). Idempotent.
  void Stop();
  /// Starts the server again after Stop() on the same port and data (an outage that ends), and waits
  /// (bounded) until it serves requests.
  Status Restart();

 private:
  ZooKeeperServer() = default;
  Options options_;
  std::string dir_;
  bool own_dir_ = false;
  uint16_t port_ = 0;
  ChildProcess process_;
};

/// Sends a ZooKeeper four-letter command (e.g. "ruok") to 127.0.0.1:`port` and returns the answer.
Result<std::string> ZooKeeperFourLetter(uint16_t port, const std::string& command,
                                        std::chrono::milliseconds timeout);

}  // namespace sluice::testing
