// Starting and stopping the server processes test harnesses run (moto, gcs_server.js, Azurite, ZooKeeper,
// ClickHouse) as child processes: output logged to a file, never outliving the test process
// (PR_SET_PDEATHSIG), stopped by PID. The free functions are the primitives; ChildProcess owns one child and
// stops it when destroyed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace sluice::testing {

/// Forks a child that dies with the test process (PR_SET_PDEATHSIG) and has stdout and stderr on `log_fd`,
/// changes to `cwd` ("" = stay), and execs the first of `commands` that can be executed (each an argv; PATH
/// lookup). The parent's `log_fd` is closed. Returns the child's PID.
Result<pid_t> SpawnLogged(const std::vector<std::vector<std::string>>& commands, int log_fd,
                          const std::string& cwd = "");

/// True when `pid` has exited (reaped; its wait status in `status`).
bool ChildExited(pid_t pid, int* status);

/// SIGTERM, up to `grace` to exit, then SIGKILL; reaps it. Does nothing for pid <= 0.
void StopChild(pid_t pid, std::chrono::milliseconds grace = std::chrono::seconds(5));

class ChildProcess {
 public:
  ChildProcess() = default;
  /// Stops the process (Stop()).
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  /// fork + execvp(argv[0], argv) with the working directory `cwd` (empty = unchanged), output appended to
  /// `log_path`.
  static Result<ChildProcess> Spawn(const std::vector<std::string>& argv, const std::string& log_path,
                                    const std::string& cwd = "");

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  /// True (and reaped) once the process has exited on its own.
  bool Exited();
  /// SIGTERM, a bounded wait of `grace`, then SIGKILL; reaps. Idempotent.
  void Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(10000));
  /// SIGKILL now and reap (a crash, for failure tests).
  void Kill();
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

/// Writes `text` to `path` (whole file), kInternal naming the path on failure.
Status WriteTextFile(const std::string& path, const std::string& text);

/// A fresh directory under $TMPDIR (or /tmp) named PREFIX-XXXXXX.
Result<std::string> MakeTempDir(const std::string& prefix);

/// Removes a directory tree (rm -rf semantics; best effort).
void RemoveTree(const std::string& path);

/// `count` distinct loopback ports that were free a moment ago.
Result<std::vector<uint16_t>> FindFreeLoopbackPorts(size_t count);

}  // namespace sluice::testing
