#include "support/moto_server.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "support/child_process.h"
#include "support/loopback_http.h"

namespace sluice::testing {
namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(100);
constexpr int kStartAttempts = 3;  // the free port may be taken between probing and moto binding it

std::string MissingMotoHint() {
  return "moto is required for integration tests: the image ships moto 5.2.1 with moto_server on PATH; "
         "check `python3 -c 'import moto'` and `moto_server --help`";
}

Status ResetAuth(uint16_t port, std::string_view count) {
  // The body is the number of further requests moto lets through unauthenticated (parsed as a float).
  SLUICE_ASSIGN_OR_RETURN(
      auto resp, LoopbackRequest(port, "POST", "/moto-api/reset-auth", {{"Content-Type", "text/plain"}}, count,
                                 std::chrono::milliseconds(10000)));
  if (resp.Status() != 200) {
    return Error(ErrorCode::kInternal,
                 fmt::format("POST /moto-api/reset-auth: HTTP {}: {}", resp.Status(), resp.body));
  }
  return OkStatus();
}

}  // namespace

std::string MotoSetupScriptPath() { return std::string(SLUICE_SUPPORT_DIR) + "/moto_setup.py"; }

std::string TailOfFile(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

Result<std::unique_ptr<MotoServer>> MotoServer::Start(std::chrono::milliseconds ready_timeout) {
  Error last(ErrorCode::kUnavailable, MissingMotoHint());
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    SLUICE_ASSIGN_OR_RETURN(uint16_t port, FindFreeLoopbackPort());
    char log_template[] = "/tmp/sluice-moto-XXXXXX.log";
    int log_fd = ::mkstemps(log_template, 4);
    if (log_fd < 0) return Error(ErrorCode::kInternal, fmt::format("mkstemps: {}", std::strerror(errno)));
    std::string port_str = std::to_string(port);
    SLUICE_ASSIGN_OR_RETURN(pid_t pid,
                            SpawnLogged({{"moto_server", "-H", "127.0.0.1", "-p", port_str},
                                         {"python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", port_str}},
                                        log_fd));
    std::unique_ptr<MotoServer> server(new MotoServer(pid, port, log_template));

    auto deadline = std::chrono::steady_clock::now() + ready_timeout;
    bool exited = false;
    // Bounded: ends at the deadline or when the child exits.
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (ChildExited(pid, &status)) {
        server->pid_ = -1;
        exited = true;
        last = Error(ErrorCode::kUnavailable,
                     fmt::format("moto_server exited (status {}) before answering on port {}. {}. Log: {}",
                                 status, port, MissingMotoHint(), TailOfFile(log_template)));
        break;
      }
      auto resp = LoopbackRequest(port, "GET", "/moto-api/", {}, "", std::chrono::milliseconds(2000));
      if (resp.ok() && resp->Status() == 200) return server;
      std::this_thread::sleep_for(kPollInterval);
    }
    if (!exited) {
      std::string log = TailOfFile(log_template);
      server->Stop();
      return Error(ErrorCode::kDeadlineExceeded,
                   fmt::format("moto_server on port {} did not answer GET /moto-api/ within {} ms. Log: {}", port,
                               ready_timeout.count(), log));
    }
    // Exited: most likely the port was taken; try another one unless moto is plainly missing.
    if (TailOfFile(log_template).find("No module named") != std::string::npos) break;
  }
  return last;
}

MotoServer::~MotoServer() { Stop(); }

std::string MotoServer::Endpoint() const { return fmt::format("http://127.0.0.1:{}", port_); }

void MotoServer::Stop() {
  if (pid_ <= 0) return;
  // The log only matters while the server runs (failure messages quote it); keep it when asked to.
  if (std::getenv("SLUICE_KEEP_MOTO_LOG") == nullptr) ::unlink(log_path_.c_str());
  StopChild(pid_);
  pid_ = -1;
}

Status MotoServer::Reset() {
  SLUICE_ASSIGN_OR_RETURN(auto resp, LoopbackRequest(port_, "POST", "/moto-api/reset", {}, "",
                                                     std::chrono::milliseconds(10000)));
  if (resp.Status() != 200) {
    return Error(ErrorCode::kInternal, fmt::format("POST /moto-api/reset: HTTP {}", resp.Status()));
  }
  return DisableAuth();
}

Status MotoServer::EnableAuth() { return ResetAuth(port_, "0"); }

Status MotoServer::DisableAuth() { return ResetAuth(port_, "inf"); }

Result<MotoEnvironment> MotoServer::RunSetup(const std::string& region) {
  char err_template[] = "/tmp/sluice-moto-setup-XXXXXX.err";
  int err_fd = ::mkstemps(err_template, 4);
  if (err_fd < 0) return Error(ErrorCode::kInternal, "mkstemps failed");
  ::close(err_fd);
  std::string cmd = fmt::format("python3 '{}' --endpoint '{}' --region '{}' 2>'{}'", MotoSetupScriptPath(),
                                Endpoint(), region, err_template);
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return Error(ErrorCode::kInternal, "popen python3 failed");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  int rc = ::pclose(pipe);
  std::string err = TailOfFile(err_template);
  ::unlink(err_template);
  if (rc != 0) {
    return Error(ErrorCode::kInternal, fmt::format("moto_setup.py failed (exit {}): {}", rc, err));
  }
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(out, ec);
  if (ec || !v.is_object()) {
    return Error(ErrorCode::kInternal, fmt::format("moto_setup.py printed no JSON: {} {}", out, err));
  }
  try {
    const auto& o = v.as_object();
    auto str = [&](const char* k) { return std::string(o.at(k).as_string()); };
    MotoEnvironment env;
    env.region = str("region");
    env.user_arn = str("user_arn");
    env.access_key_id = str("access_key_id");
    env.secret_access_key = Secret(str("secret_access_key"));
    env.admin_access_key_id = str("admin_access_key_id");
    env.admin_secret_access_key = Secret(str("admin_secret_access_key"));
    env.bucket = str("bucket");
    env.other_bucket = str("other_bucket");
    env.import_bucket = str("import_bucket");
    env.external_id = str("external_id");
    env.kms_key_id = str("kms_key_id");
    env.kms_key_arn = str("kms_key_arn");
    for (const auto& [k, r] : o.at("roles").as_object()) env.roles[std::string(k)] = std::string(r.as_string());
    return env;
  } catch (const std::exception& e) {
    return Error(ErrorCode::kInternal, fmt::format("moto_setup.py JSON is missing a field: {}", e.what()));
  }
}

}  // namespace sluice::testing
