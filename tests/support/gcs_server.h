// GcsTestServer: tests/support/gcs_server.js (a GCS JSON-API server in Node, stdlib only) for one test suite.
// Started on a free 127.0.0.1 port, stopped by PID in the destructor, like MotoServer.
//
//   auto sa = MakeTestServiceAccount("sluice@test.iam.gserviceaccount.com", "k1", "");   // fresh RSA key
//   pair boost::json::object config = ...;  // accounts (public keys) and bucket bindings, see gcs_server.js
//   auto gcs = GcsTestServer::Start(config);
//   sa.key_json = ServiceAccountKeyJson(sa, gcs->TokenUri());   // the key file Sluice reads
//   gcs->SetFaults(R"([{"match":"PUT /upload","nth":2,"type":"503"}])");
#pragma once

#include <sys/types.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"

namespace sluice::testing {

/// A service account made for a test: a fresh 2048-bit RSA key pair (PEM) and its email and key id.
struct TestServiceAccount {
  std::string email;
  std::string key_id;
  std::string private_pem;  // PKCS#8 "BEGIN PRIVATE KEY", as Google's key files carry
  std::string public_pem;   // SubjectPublicKeyInfo "BEGIN PUBLIC KEY"
};
Result<TestServiceAccount> MakeTestServiceAccount(std::string email, std::string key_id);
/// The JSON key file for `sa` with the given token_uri (type service_account, project_id "sluice-test").
std::string ServiceAccountKeyJson(const TestServiceAccount& sa, const std::string& token_uri);

class GcsTestServer {
 public:
  /// Writes `config` to a temporary file and starts `node gcs_server.js`; waits (bounded) for /_admin/health.
  static Result<std::unique_ptr<GcsTestServer>> Start(
      const boost::json::object& config,
      std::chrono::milliseconds ready_timeout = std::chrono::milliseconds(20000));
  ~GcsTestServer();
  GcsTestServer(const GcsTestServer&) = delete;
  GcsTestServer& operator=(const GcsTestServer&) = delete;

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  /// "http://127.0.0.1:PORT"
  std::string Endpoint() const;
  /// "http://127.0.0.1:PORT/token": the token_uri to put in key files.
  std::string TokenUri() const;

  /// Replaces the fault list (JSON array, see gcs_server.js).
  Status SetFaults(const std::string& faults_json);
  /// Replaces a bucket's role bindings ({"email": ["objectViewer", …]}).
  Status SetBindings(const std::string& bucket, const boost::json::object& bindings);
  /// Forgets every issued token: the next request with one gets 401.
  Status ExpireTokens();
  /// The request log as JSON text: [{"method","url","auth","content_range"}].
  Result<std::string> RequestLog();
  /// Raw stored bytes of an object (bypassing permissions).
  Result<std::string> RawObject(const std::string& bucket, const std::string& name);

  void Stop();
  const std::string& log_path() const { return log_path_; }

 private:
  GcsTestServer(pid_t pid, uint16_t port, std::string log_path, std::string config_path)
      : pid_(pid), port_(port), log_path_(std::move(log_path)), config_path_(std::move(config_path)) {}
  Status Admin(const std::string& path, const std::string& body);

  pid_t pid_;
  uint16_t port_;
  std::string log_path_;
  std::string config_path_;
};

/// Path of gcs_server.js in the source tree.
std::string GcsServerScriptPath();

}  // namespace sluice::testing
