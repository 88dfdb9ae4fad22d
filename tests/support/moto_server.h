// MotoServer: a private moto_server (S3 + STS + IAM + KMS on one port) for one test suite or benchmark.
// Started on a free 127.0.0.1 port, stopped by PID in the destructor (see /work/shared/TESTING.md).
//
//   auto moto = MotoServer::Start();          // fails clearly when moto is not installed
//   auto env = moto->RunSetup();              // users, roles, buckets via tests/support/moto_setup.py
//   moto->EnableAuth();                       // from here on signatures and IAM policies are enforced
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/result.h"
#include "common/secret.h"

namespace sluice::testing {

/// What tests/support/moto_setup.py created (before auth was turned on).
struct MotoEnvironment {
  std::string region;
  /// Sluice's own IAM user: allowed only sts:AssumeRole.
  std::string user_arn;
  std::string access_key_id;
  Secret secret_access_key;
  /// An administrator user (for test assertions only; Sluice never gets it).
  std::string admin_access_key_id;
  Secret admin_secret_access_key;
  /// The customer's data bucket and a second bucket the roles have no access to.
  std::string bucket;
  std::string other_bucket;
  std::string import_bucket;
  /// The external ID the trust policies require.
  std::string external_id;
  /// Role ARNs by variant: "full" (exactly Put/Get/List/Delete on `bucket`), "no_delete", "no_put",
  /// "no_external_id" (trust policy without the sts:ExternalId condition), "import" (Get+List on
  /// `import_bucket`), "import_no_get" (List only on `import_bucket`).
  std::map<std::string, std::string> roles;
  std::string kms_key_id;
  std::string kms_key_arn;
};

class MotoServer {
 public:
  /// Starts moto_server (falls back to `python3 -m moto.server`) and waits (bounded) until it answers.
  /// kUnavailable with a message naming what to install when moto is missing.
  static Result<std::unique_ptr<MotoServer>> Start(std::chrono::milliseconds ready_timeout =
                                                       std::chrono::milliseconds(30000));

  ~MotoServer();
  MotoServer(const MotoServer&) = delete;
  MotoServer& operator=(const MotoServer&) = delete;

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  /// "http://127.0.0.1:PORT"
  std::string Endpoint() const;

  /// Wipes all state (POST /moto-api/reset) and turns auth mode off again (moto's reset keeps it), so
  /// RunSetup() can run again.
  Status Reset();
  /// POST /moto-api/reset-auth with body `0`: from now on signatures and IAM policies are enforced.
  Status EnableAuth();
  /// POST /moto-api/reset-auth with body `inf`: no request is checked any more.
  Status DisableAuth();
  /// Runs tests/support/moto_setup.py against this server (auth must still be off) and parses its JSON.
  Result<MotoEnvironment> RunSetup(const std::string& region = "us-east-1");

  /// Stops the server (SIGTERM, bounded wait, then SIGKILL) and reaps it. Idempotent.
  void Stop();

  /// Path of the file that receives moto's stdout/stderr (for failure messages).
  const std::string& log_path() const { return log_path_; }

 private:
  MotoServer(pid_t pid, uint16_t port, std::string log_path)
      : pid_(pid), port_(port), log_path_(std::move(log_path)) {}

  pid_t pid_;
  uint16_t port_;
  std::string log_path_;
};

/// Path of moto_setup.py in the source tree.
std::string MotoSetupScriptPath();

/// Last `max_bytes` of a file (for error messages), or empty.
std::string TailOfFile(const std::string& path, size_t max_bytes = 2000);

}  // namespace sluice::testing
