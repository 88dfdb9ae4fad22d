// AzuriteServer: a private Azurite blob service (npm `azurite`, pinned in tests/node/package.json) for one test
// suite. Started on a free 127.0.0.1 port with --disableTelemetry, its data in its own temporary directory,
// stopped by PID (SIGTERM, bounded wait, SIGKILL) in the destructor, like MotoServer. Azurite checks Shared Key
// signatures and, with --oauth basic over HTTPS, bearer tokens (their claims; not their signatures).
//
//   auto azurite = AzuriteServer::Start();
//   // account AzuriteServer::kAccount with key AzuriteServer::kAccountKey at azurite->BlobEndpoint()
//   // ("http://127.0.0.1:PORT/devstoreaccount1": path-style, so the account is in the path)
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"

namespace sluice::testing {

class AzuriteServer {
 public:
  /// Azurite's well-known development account and key (published in Azurite's README; not a secret).
  static constexpr const char* kAccount = "devstoreaccount1";
  static constexpr const char* kAccountKey =
      "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

  struct Options {
    /// HTTPS with this certificate and key (PEM files), and --oauth basic: bearer tokens are accepted.
    std::string cert_path;
    std::string key_path;
    std::chrono::milliseconds ready_timeout{60000};
  };

  /// Starts azurite-blob from tests/node/node_modules. kUnavailable naming what to install when it is missing.
  static Result<std::unique_ptr<AzuriteServer>> Start(Options options);
  static Result<std::unique_ptr<AzuriteServer>> Start() { return Start(Options()); }

  ~AzuriteServer();
  AzuriteServer(const AzuriteServer&) = delete;
  AzuriteServer& operator=(const AzuriteServer&) = delete;

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  /// "http(s)://127.0.0.1:PORT/devstoreaccount1"
  std::string BlobEndpoint() const;

  /// Stops the server and removes its directory. Idempotent.
  void Stop();
  const std::string& log_path() const { return log_path_; }

 private:
  AzuriteServer(pid_t pid, uint16_t port, bool https, std::string dir)
      : pid_(pid), port_(port), https_(https), dir_(std::move(dir)), log_path_(dir_ + "/azurite.log") {}

  pid_t pid_;
  uint16_t port_;
  bool https_;
  std::string dir_;
  std::string log_path_;
};

/// Path of the azurite-blob launcher (tests/node/node_modules/.bin/azurite-blob).
std::string AzuriteBlobPath();

}  // namespace sluice::testing
