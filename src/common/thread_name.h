// Thread names. Every thread Sluice starts names itself "sl-<role>", so `top -H`, `ps -L`, perf, gdb and
// /proc/PID/task/TID/comm tell which part of the server uses the CPU (docs/operations.md "Threads");
// bench/pipeline/export_process prints an export's CPU by these names. RocksDB names its own threads
// ("rocksdb:high", "rocksdb:low").
//
//   SetCurrentThreadName("sl-http");                 // a thread that keeps one role
//   { ScopedThreadName role("sl-export"); ... }       // a role for a while; the old name comes back after
#pragma once

#include <string>
#include <string_view>

namespace sluice {

/// Names the calling thread. Linux keeps 15 bytes of a name: a longer one is cut there. Best effort: a name
/// that cannot be set leaves the old one.
void SetCurrentThreadName(std::string_view name);

/// The calling thread's name ("" when it cannot be read).
std::string CurrentThreadName();

/// Names the calling thread for the length of a scope, then gives it back its name from before.
class ScopedThreadName {
 public:
  explicit ScopedThreadName(std::string_view name) : previous_(CurrentThreadName()) {
    SetCurrentThreadName(name);
  }
  ~ScopedThreadName() { SetCurrentThreadName(previous_); }
  ScopedThreadName(const ScopedThreadName&) = delete;
  ScopedThreadName& operator=(const ScopedThreadName&) = delete;

 private:
  std::string previous_;
};

}  // namespace sluice
