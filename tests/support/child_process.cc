#include "support/child_process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "support/loopback_http.h"

namespace sluice::testing {

Result<pid_t> SpawnLogged(const std::vector<std::vector<std::string>>& commands, int log_fd,
                          const std::string& cwd) {
  // argv arrays are built before fork: the child only execs.
  std::vector<std::vector<std::string>> owned = commands;
  std::vector<std::vector<char*>> argvs;
  for (auto& command : owned) {
    std::vector<char*> argv;
    for (auto& a : command) argv.push_back(a.data());
    argv.push_back(nullptr);
    argvs.push_back(std::move(argv));
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return Error(ErrorCode::kInternal, fmt::format("fork: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive the test process, even if it crashes
    if (::getppid() != parent) ::_exit(127);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::close(log_fd);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(127);
    for (auto& argv : argvs) ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "exec %s failed: %s\n", argvs.empty() ? "(nothing)" : argvs[0][0],
                 std::strerror(errno));
    ::_exit(127);
  }
  ::close(log_fd);
  return pid;
}

bool ChildExited(pid_t pid, int* status) { return ::waitpid(pid, status, WNOHANG) == pid; }

void StopChild(pid_t pid, std::chrono::milliseconds grace) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {  // bounded by `grace`
    if (ChildExited(pid, &status)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
}

ChildProcess::~ChildProcess() { Stop(); }

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), log_path_(std::move(other.log_path_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    Stop();
    pid_ = std::exchange(other.pid_, -1);
    log_path_ = std::move(other.log_path_);
  }
  return *this;
}

Result<ChildProcess> ChildProcess::Spawn(const std::vector<std::string>& argv, const std::string& log_path,
                                         const std::string& cwd) {
  if (argv.empty()) return InvalidArgument("ChildProcess::Spawn: empty argv");
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return Internal(fmt::format("open {}: {}", log_path, std::strerror(errno)));
  SLUICE_ASSIGN_OR_RETURN(pid_t pid, SpawnLogged({argv}, log_fd, cwd));
  ChildProcess child;
  child.pid_ = pid;
  child.log_path_ = log_path;
  return child;
}

bool ChildProcess::Exited() {
  if (pid_ <= 0) return true;
  int status = 0;
  if (!ChildExited(pid_, &status)) return false;
  pid_ = -1;
  return true;
}

void ChildProcess::Stop(std::chrono::milliseconds grace) {
  StopChild(pid_, grace);
  pid_ = -1;
}

void ChildProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return Internal(fmt::format("cannot write {}", path));
  return OkStatus();
}

Result<std::string> MakeTempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = fmt::format("{}/{}-XXXXXX", tmp != nullptr && *tmp ? tmp : "/tmp", prefix);
  if (::mkdtemp(templ.data()) == nullptr)
    return Internal(fmt::format("mkdtemp {}: {}", templ, std::strerror(errno)));
  return templ;
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

Result<std::vector<uint16_t>> FindFreeLoopbackPorts(size_t count) {
  std::set<uint16_t> seen;
  std::vector<uint16_t> out;
  for (size_t tries = 0; out.size() < count && tries < count * 20; ++tries) {
    SLUICE_ASSIGN_OR_RETURN(uint16_t port, FindFreeLoopbackPort());
    if (seen.insert(port).second) out.push_back(port);
  }
  if (out.size() < count) return Internal("could not find enough distinct free loopback ports");
  return out;
}

}  // namespace sluice::testing
