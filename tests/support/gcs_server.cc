#include "support/gcs_server.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "support/child_process.h"
#include "support/loopback_http.h"
#include "support/moto_server.h"

namespace sluice::testing {
namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(100);
constexpr int kStartAttempts = 3;  // the probed free port may be taken before node binds it

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace

std::string GcsServerScriptPath() { return std::string(SLUICE_SUPPORT_DIR) + "/gcs_server.js"; }

Result<TestServiceAccount> MakeTestServiceAccount(std::string email, std::string key_id) {
  EVP_PKEY* pkey = EVP_RSA_gen(2048);
  if (pkey == nullptr) return Error(ErrorCode::kInternal, "EVP_RSA_gen failed");
  TestServiceAccount sa;
  sa.email = std::move(email);
  sa.key_id = std::move(key_id);
  BIO* priv = BIO_new(BIO_s_mem());
  BIO* pub = BIO_new(BIO_s_mem());
  bool ok = PEM_write_bio_PrivateKey(priv, pkey, nullptr, nullptr, 0, nullptr, nullptr) == 1 &&
            PEM_write_bio_PUBKEY(pub, pkey) == 1;
  if (ok) {
    sa.private_pem = BioToString(priv);
    sa.public_pem = BioToString(pub);
  }
  BIO_free(priv);
  BIO_free(pub);
  EVP_PKEY_free(pkey);
  if (!ok) return Error(ErrorCode::kInternal, "writing the test key pair as PEM failed");
  return sa;
}

std::string ServiceAccountKeyJson(const TestServiceAccount& sa, const std::string& token_uri) {
  boost::json::object o{{"type", "service_account"},
                        {"project_id", "sluice-test"},
                        {"private_key_id", sa.key_id},
                        {"private_key", sa.private_pem},
                        {"client_email", sa.email},
                        {"client_id", "1234567890"},
                        {"auth_uri", "https://accounts.google.com/o/oauth2/auth"},
                        {"token_uri", token_uri}};
  return boost::json::serialize(o);
}

Result<std::unique_ptr<GcsTestServer>> GcsTestServer::Start(const boost::json::object& config,
                                                            std::chrono::milliseconds ready_timeout) {
  char config_template[] = "/tmp/sluice-gcs-config-XXXXXX.json";
  int config_fd = ::mkstemps(config_template, 5);
  if (config_fd < 0) return Error(ErrorCode::kInternal, fmt::format("mkstemps: {}", std::strerror(errno)));
  std::string text = boost::json::serialize(config);
  bool written = ::write(config_fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(config_fd);
  if (!written) return Error(ErrorCode::kInternal, "writing the gcs_server config failed");

  Error last(ErrorCode::kUnavailable, "gcs_server.js did not start");
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    SLUICE_ASSIGN_OR_RETURN(uint16_t port, FindFreeLoopbackPort());
    char log_template[] = "/tmp/sluice-gcs-XXXXXX.log";
    int log_fd = ::mkstemps(log_template, 4);
    if (log_fd < 0) return Error(ErrorCode::kInternal, fmt::format("mkstemps: {}", std::strerror(errno)));
    std::string port_str = std::to_string(port);
    std::string script = GcsServerScriptPath();
    SLUICE_ASSIGN_OR_RETURN(
        pid_t pid, SpawnLogged({{"node", script, "--port", port_str, "--config", config_template}}, log_fd));
    std::unique_ptr<GcsTestServer> server(new GcsTestServer(pid, port, log_template, config_template));
    auto deadline = std::chrono::steady_clock::now() + ready_timeout;
    bool exited = false;
    while (std::chrono::steady_clock::now() < deadline) {  // bounded: deadline or child exit
      int status = 0;
      if (ChildExited(pid, &status)) {
        server->pid_ = -1;
        exited = true;
        last = Error(
            ErrorCode::kUnavailable,
            fmt::format("gcs_server.js exited (status {}) before answering on port {} (is node on PATH?). "
                        "Log: {}",
                        status, port, TailOfFile(log_template)));
        break;
      }
      auto resp = LoopbackRequest(port, "GET", "/_admin/health", {}, "", std::chrono::milliseconds(2000));
      if (resp.ok() && resp->Status() == 200) return server;
      std::this_thread::sleep_for(kPollInterval);
    }
    if (!exited) {
      std::string log = TailOfFile(log_template);
      server->config_path_.clear();  // keep the config for the next attempt
      server->Stop();
      return Error(ErrorCode::kDeadlineExceeded,
                   fmt::format("gcs_server.js on port {} did not answer within {} ms. Log: {}", port,
                               ready_timeout.count(), log));
    }
    server->config_path_.clear();
  }
  ::unlink(config_template);
  return last;
}

GcsTestServer::~GcsTestServer() { Stop(); }

std::string GcsTestServer::Endpoint() const { return fmt::format("http://127.0.0.1:{}", port_); }
std::string GcsTestServer::TokenUri() const { return Endpoint() + "/token"; }

void GcsTestServer::Stop() {
  if (!config_path_.empty()) ::unlink(config_path_.c_str());
  config_path_.clear();
  if (pid_ <= 0) return;
  if (std::getenv("SLUICE_KEEP_GCS_LOG") == nullptr) ::unlink(log_path_.c_str());
  StopChild(pid_);
  pid_ = -1;
}

Status GcsTestServer::Admin(const std::string& path, const std::string& body) {
  SLUICE_ASSIGN_OR_RETURN(auto resp,
                          LoopbackRequest(port_, "POST", path, {{"Content-Type", "application/json"}}, body,
                                          std::chrono::milliseconds(10000)));
  if (resp.Status() != 200) {
    return Error(ErrorCode::kInternal, fmt::format("POST {}: HTTP {}: {}", path, resp.Status(), resp.body));
  }
  return OkStatus();
}

Status GcsTestServer::SetFaults(const std::string& faults_json) {
  return Admin("/_admin/faults", faults_json);
}

Status GcsTestServer::SetBindings(const std::string& bucket, const boost::json::object& bindings) {
  return Admin("/_admin/bindings",
               boost::json::serialize(boost::json::object{{"bucket", bucket}, {"bindings", bindings}}));
}

Status GcsTestServer::ExpireTokens() { return Admin("/_admin/expire-tokens", ""); }

Result<std::string> GcsTestServer::RequestLog() {
  SLUICE_ASSIGN_OR_RETURN(
      auto resp, LoopbackRequest(port_, "GET", "/_admin/log", {}, "", std::chrono::milliseconds(10000)));
  if (resp.Status() != 200) return Error(ErrorCode::kInternal, "GET /_admin/log failed");
  return resp.body;
}

Result<std::string> GcsTestServer::RawObject(const std::string& bucket, const std::string& name) {
  std::string target = "/_admin/object?bucket=" + bucket + "&name=";
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      target += static_cast<char>(c);
    } else {
      target += fmt::format("%{:02X}", c);
    }
  }
  SLUICE_ASSIGN_OR_RETURN(auto resp,
                          LoopbackRequest(port_, "GET", target, {}, "", std::chrono::milliseconds(10000)));
  if (resp.Status() != 200) return Error(ErrorCode::kNotFound, fmt::format("no object {}/{}", bucket, name));
  return resp.body;
}

}  // namespace sluice::testing
