// Starting and stopping the protocol servers test harnesses run (moto, gcs_server.js, Azurite) as child
// processes: logged to a file, never outliving the test process, stopped by PID.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace sluice::testing {

/// Forks a child that dies with the test process (PR_SET_PDEATHSIG) and has stdout and stderr on `log_fd`, changes
/// to `cwd` ("" = stay), and execs the first of `commands` that can be executed (each an argv; PATH lookup). The
/// parent's `log_fd` is closed. Returns the child's PID.
Result<pid_t> SpawnLogged(const std::vector<std::vector<std::string>>& commands, int log_fd,
                          const std::string& cwd = "");

/// True when `pid` has exited (reaped; its wait status in `status`).
bool ChildExited(pid_t pid, int* status);

/// SIGTERM, up to 5 s to exit, then SIGKILL; reaps it. Does nothing for pid <= 0.
void StopChild(pid_t pid);

}  // namespace sluice::testing
