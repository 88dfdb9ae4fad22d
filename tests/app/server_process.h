// Runs the real `sluice serve` binary as a child process for black-box tests: free port, data dir, stop by PID.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "http/transport.h"

namespace sluice::testing {

class ServerProcess {
 public:
  /// `extra_args` are appended to `sluice serve --data-dir DIR --listen 127.0.0.1:0`.
  ServerProcess(std::filesystem::path data_dir, std::vector<std::string> extra_args = {});
  ~ServerProcess();

  /// Starts the server and waits (bounded) until it answers /healthz. Returns false with a reason in `error`.
  bool Start(std::string* error);
  /// SIGKILL, no chance to clean up.
  void Kill();
  /// SIGTERM and wait; returns the exit status.
  int Terminate();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& url() const { return url_; }
  std::string admin_token() const;

  /// Simple request helper (no retries). `status` 0 when the request failed at the network level.
  struct Reply {
    int status = 0;
    std::string body;
  };
  Reply Send(const std::string& method, const std::string& path, std::string body = {},
             std::vector<std::pair<std::string, std::string>> headers = {},
             std::chrono::seconds timeout = std::chrono::seconds(30));

  static std::string Binary();

 private:
  std::filesystem::path dir_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  std::string url_;
  std::unique_ptr<http::HttpTransport> transport_;
};

}  // namespace sluice::testing
