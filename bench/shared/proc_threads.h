// Shared by the benchmarks that run the real server (bench/load, bench/cluster): a process's CPU seconds by
// thread name, to tell foreground cost (HTTP workers) from background cost (flushes, compactions, sessions).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace sluice::bench {

/// utime + stime of each of `pid`'s threads (/proc/PID/task/*/stat), summed by thread name.
inline std::map<std::string, double> ThreadCpuSeconds(pid_t pid) {
  std::map<std::string, double> out;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "stat");
    std::string s((std::istreambuf_iterator<char>(in)), {});
    const auto lp = s.find('('), rp = s.rfind(')');
    if (lp == std::string::npos || rp == std::string::npos) continue;
    std::string name = s.substr(lp + 1, rp - lp - 1);
    std::istringstream rest(s.substr(rp + 2));
    std::vector<std::string> f;
    for (std::string field; rest >> field;) f.push_back(field);
    if (f.size() < 13) continue;
    // Fields after ")" start at index 3 (state); utime is field 14, stime 15 → indexes 11, 12 here.
    out[name] += (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return out;
}

}  // namespace sluice::bench
