#include "support/zookeeper_server.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "support/loopback_http.h"
#include "support/moto_server.h"

namespace sluice::testing {
namespace {

constexpr const char* kZooKeeperJar = "/usr/share/java/zookeeper.jar";

std::string MissingHint() {
  return fmt::format(
      "ZooKeeper is required for the cluster tests: install Debian's `zookeeper` package "
      "(scripts/install-deps.sh --test), which provides java and {}",
      kZooKeeperJar);
}

}  // namespace

Result<std::string> ZooKeeperFourLetter(uint16_t port, const std::string& command,
                                        std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  SLUICE_ASSIGN_OR_RETURN(Fd fd, ConnectLoopback(port, deadline));
  SLUICE_TRY(WriteAll(fd.get(), command, deadline));
  ::shutdown(fd.get(), SHUT_WR);
  std::string out;
  char buf[4096];
  // Bounded: the server closes after answering; the socket has no timeout, so poll with the deadline.
  while (std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return out;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return out;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return Error(ErrorCode::kDeadlineExceeded, "four-letter command timed out");
}

Result<std::unique_ptr<ZooKeeperServer>> ZooKeeperServer::Start(Options options) {
  if (!std::filesystem::exists(kZooKeeperJar) || ::access("/usr/bin/java", X_OK) != 0) {
    return Unavailable(MissingHint());
  }
  std::unique_ptr<ZooKeeperServer> server(new ZooKeeperServer());
  server->options_ = options;
  if (options.dir.empty()) {
    SLUICE_ASSIGN_OR_RETURN(server->dir_, MakeTempDir("sluice-zk"));
    server->own_dir_ = true;
  } else {
    server->dir_ = options.dir;
    std::filesystem::create_directories(server->dir_);
  }
  const std::string& dir = server->dir_;
  std::filesystem::create_directories(dir + "/data");
  SLUICE_TRY(WriteTextFile(dir + "/log4j.properties",
                           "log4j.rootLogger=WARN, CONSOLE\n"
                           "log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n"
                           "log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n"
                           "log4j.appender.CONSOLE.layout.ConversionPattern=%d %p %c: %m%n\n"));
  Error last = Unavailable(MissingHint());
  for (int attempt = 0; attempt < 3; ++attempt) {  // the free port may be taken before the JVM binds it
    SLUICE_ASSIGN_OR_RETURN(server->port_, FindFreeLoopbackPort());
    int64_t tick = options.tick.count();
    SLUICE_TRY(WriteTextFile(dir + "/zoo.cfg", fmt::format("tickTime={}\n"
                                                           "dataDir={}/data\n"
                                                           "clientPort={}\n"
                                                           "clientPortAddress=127.0.0.1\n"
                                                           "admin.enableServer=false\n"
                                                           "minSessionTimeout={}\n"
                                                           "maxSessionTimeout={}\n"
                                                           "4lw.commands.whitelist=ruok,srvr,stat,mntr\n"
                                                           "maxClientCnxns=200\n",
                                                           tick, dir, server->port_, tick * 2, tick * 200)));
    SLUICE_ASSIGN_OR_RETURN(
        server->process_,
        ChildProcess::Spawn(
            {"java", "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.admin.enableServer=false", "-cp",
             dir + ":" + kZooKeeperJar, "org.apache.zookeeper.server.ZooKeeperServerMain", dir + "/zoo.cfg"},
            dir + "/zookeeper.log"));
    auto deadline = std::chrono::steady_clock::now() + options.ready_timeout;
    while (std::chrono::steady_clock::now() < deadline) {  // bounded by ready_timeout
      if (server->process_.Exited()) break;
      // `ruok` says imok before the server takes sessions (ClickHouse's handshake then fails and 18.16's DDL
      // worker gives up for good); `srvr` reports a Mode only once it serves requests.
      auto answer = ZooKeeperFourLetter(server->port_, "srvr", std::chrono::milliseconds(1000));
      if (answer.ok() && answer->find("Mode: standalone") != std::string::npos) return server;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::string log = TailOfFile(dir + "/zookeeper.log");
    bool exited = !server->process_.running();
    server->process_.Stop();
    last = Error(exited ? ErrorCode::kUnavailable : ErrorCode::kDeadlineExceeded,
                 fmt::format("ZooKeeper on port {} {}. Log: {}", server->port_,
                             exited ? "exited before answering" : "did not answer ruok in time", log));
    if (!exited) break;
  }
  return last;
}

ZooKeeperServer::~ZooKeeperServer() {
  Stop();
  if (own_dir_ && std::getenv("SLUICE_KEEP_CLUSTER_DIR") == nullptr) RemoveTree(dir_);
}

void ZooKeeperServer::Stop() { process_.Stop(); }

Status ZooKeeperServer::Restart() {
  process_.Stop();
  SLUICE_ASSIGN_OR_RETURN(
      process_,
      ChildProcess::Spawn({"java", "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.admin.enableServer=false", "-cp",
                           dir_ + ":" + kZooKeeperJar, "org.apache.zookeeper.server.ZooKeeperServerMain",
                           dir_ + "/zoo.cfg"},
                          dir_ + "/zookeeper-restarted.log"));
  auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
  while (std::chrono::steady_clock::now() < deadline) {  // bounded by ready_timeout
    if (process_.Exited()) break;
    auto answer = ZooKeeperFourLetter(port_, "srvr", std::chrono::milliseconds(1000));
    if (answer.ok() && answer->find("Mode: standalone") != std::string::npos) return OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::string log = TailOfFile(dir_ + "/zookeeper-restarted.log");
  process_.Stop();
  return Unavailable(fmt::format("ZooKeeper did not come back on port {}. Log: {}", port_, log));
}

std::string ZooKeeperServer::HostPort() const { return fmt::format("127.0.0.1:{}", port_); }

std::string ZooKeeperServer::Url(const std::string& chroot) const {
  return fmt::format("zookeeper://127.0.0.1:{}{}", port_, chroot);
}

}  // namespace sluice::testing
