#include "support/azurite_server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "support/child_process.h"
#include "support/loopback_http.h"
#include "support/moto_server.h"

namespace sluice::testing {
namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(100);
constexpr int kStartAttempts = 3;  // the probed free port may be taken before Azurite binds it

}  // namespace

std::string AzuriteBlobPath() { return std::string(SLUICE_SUPPORT_DIR) + "/../node/node_modules/.bin/azurite-blob"; }

Result<std::unique_ptr<AzuriteServer>> AzuriteServer::Start(Options options) {
  const std::string launcher = AzuriteBlobPath();
  if (::access(launcher.c_str(), X_OK) != 0) {
    return Error(ErrorCode::kUnavailable,
                 fmt::format("{} is missing: install the test tools with scripts/install-deps.sh --test (npm ci in "
                             "tests/node installs azurite)",
                             launcher));
  }
  const bool https = !options.cert_path.empty();
  Error last(ErrorCode::kUnavailable, "azurite did not start");
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    SLUICE_ASSIGN_OR_RETURN(uint16_t port, FindFreeLoopbackPort());
    char dir_template[] = "/tmp/sluice-azurite-XXXXXX";
    if (::mkdtemp(dir_template) == nullptr) {
      return Error(ErrorCode::kInternal, fmt::format("mkdtemp: {}", std::strerror(errno)));
    }
    const std::string dir = dir_template;
    const std::string log = dir + "/azurite.log";
    int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0) return Error(ErrorCode::kInternal, fmt::format("open {}: {}", log, std::strerror(errno)));
    std::vector<std::string> args = {launcher, "--blobHost", "127.0.0.1", "--blobPort", std::to_string(port),
                                     "--location", dir + "/data", "--disableTelemetry"};
    if (https) {
      args.insert(args.end(), {"--cert", options.cert_path, "--key", options.key_path, "--oauth", "basic"});
    }
    // Azurite writes its debug and lock files to the working directory: its own.
    SLUICE_ASSIGN_OR_RETURN(pid_t pid, SpawnLogged({args}, log_fd, dir));
    std::unique_ptr<AzuriteServer> server(new AzuriteServer(pid, port, https, dir));
    auto deadline = std::chrono::steady_clock::now() + options.ready_timeout;
    bool exited = false;
    while (std::chrono::steady_clock::now() < deadline) {  // bounded: deadline or child exit
      int status = 0;
      if (ChildExited(pid, &status)) {
        server->pid_ = -1;
        exited = true;
        last = Error(ErrorCode::kUnavailable,
                     fmt::format("azurite exited (status {}) before listening on port {} (is node on PATH?). Log: {}",
                                 status, port, TailOfFile(log)));
        break;
      }
      // Ready once the log says so (an HTTPS server cannot be probed with the plain loopback client).
      if (TailOfFile(log).find("successfully listens on") != std::string::npos) {
        if (https) return server;
        auto resp = LoopbackRequest(port, "GET", "/devstoreaccount1?comp=list", {}, "", std::chrono::milliseconds(2000));
        if (resp.ok() && resp->Status() > 0) return server;
      }
      std::this_thread::sleep_for(kPollInterval);
    }
    if (!exited) {
      std::string tail = TailOfFile(log);
      server->Stop();
      return Error(ErrorCode::kDeadlineExceeded, fmt::format("azurite on port {} did not answer within {} ms. Log: {}",
                                                             port, options.ready_timeout.count(), tail));
    }
    server->Stop();
  }
  return last;
}

AzuriteServer::~AzuriteServer() { Stop(); }

std::string AzuriteServer::BlobEndpoint() const {
  return fmt::format("{}://127.0.0.1:{}/{}", https_ ? "https" : "http", port_, kAccount);
}

void AzuriteServer::Stop() {
  StopChild(pid_);
  pid_ = -1;
  if (!dir_.empty() && std::getenv("SLUICE_KEEP_AZURITE_LOG") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  dir_.clear();
}

}  // namespace sluice::testing
