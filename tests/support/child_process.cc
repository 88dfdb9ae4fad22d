#include "support/child_process.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

namespace sluice::testing {

Result<pid_t> SpawnLogged(const std::vector<std::vector<std::string>>& commands, int log_fd, const std::string& cwd) {
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
    std::fprintf(stderr, "exec %s failed: %s\n", argvs.empty() ? "(nothing)" : argvs[0][0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(log_fd);
  return pid;
}

bool ChildExited(pid_t pid, int* status) { return ::waitpid(pid, status, WNOHANG) == pid; }

void StopChild(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 50; ++i) {  // up to 5 s for a graceful exit
    if (ChildExited(pid, &status)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
}

}  // namespace sluice::testing
