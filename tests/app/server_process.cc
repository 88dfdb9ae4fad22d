#include "server_process.h"
#include "support/test_paths.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <thread>

namespace sluice::testing {

ServerProcess::ServerProcess(std::filesystem::path data_dir, std::vector<std::string> extra_args)
    : dir_(std::move(data_dir)), args_(std::move(extra_args)) {
  http::TransportOptions opts;
  opts.insecure_skip_verify = true;
  transport_ = http::MakeCurlTransport(opts);
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Kill();
}

std::string ServerProcess::Binary() { return std::string(sluice::testing::BinaryDir()) + "/sluice"; }

bool ServerProcess::Start(std::string* error) {
  std::filesystem::create_directories(dir_);
  std::filesystem::remove(dir_ / "server.url");
  std::vector<std::string> argv = {Binary(), "serve", "--data-dir", dir_.string(), "--listen", "127.0.0.1:0",
                                   "--log-level", "warn"};
  argv.insert(argv.end(), args_.begin(), args_.end());
  pid_ = fork();
  if (pid_ == 0) {
    // Never outlive the test: a crashed test would leave the server holding the test's stdout open.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  // Bounded wait for the server to publish its URL and answer.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (error) *error = "sluice serve exited during start-up with status " + std::to_string(status);
      return false;
    }
    std::ifstream in(dir_ / "server.url");
    std::string url;
    if (std::getline(in, url) && !url.empty()) {
      url_ = url;
      if (Send("GET", "/healthz", {}, {}, std::chrono::seconds(2)).status == 200) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (error) *error = "sluice serve did not answer /healthz within 30 s";
  Kill();
  return false;
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int ServerProcess::Terminate() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  // Bounded: escalate to SIGKILL after 30 s.
  for (int i = 0; i < 600; ++i) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Kill();
  return -1;
}

std::string ServerProcess::admin_token() const {
  std::ifstream in(dir_ / "admin-token");
  std::string token;
  std::getline(in, token);
  // Nodes of a shared store (and any server started with SLUICE_ADMIN_TOKEN) write no admin-token file.
  if (token.empty()) {
    if (const char* env = std::getenv("SLUICE_ADMIN_TOKEN")) token = env;
  }
  return token;
}

ServerProcess::Reply ServerProcess::Send(const std::string& method, const std::string& path, std::string body,
                                         std::vector<std::pair<std::string, std::string>> headers,
                                         std::chrono::seconds timeout) {
  http::OutboundRequest req{.method = method, .url = url_ + path, .headers = std::move(headers)};
  if (!body.empty() || method == "POST") req.body = http::RequestBody::FromString(std::move(body));
  auto resp = transport_->Send(req, std::chrono::steady_clock::now() + timeout);
  if (!resp.ok()) return {};
  return {resp->status, std::move(resp->body)};
}

}  // namespace sluice::testing
