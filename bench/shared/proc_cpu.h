// CPU time of processes and their threads from /proc, for the whole-process benchmarks (bench/load,
// bench/pipeline, bench/cloudimport): utime + stime, every thread, in seconds. Linux counts it in clock ticks
// (10 ms here), so short intervals are approximate.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace sluice::bench {

/// (name, utime + stime in seconds) from the text of a /proc/…/stat file; nullopt when it is not one (e.g.
/// the thread ended while it was read). The name is the text between the first '(' and the last ')'.
inline std::optional<std::pair<std::string, double>> ParseProcStat(const std::string& stat) {
  const auto lp = stat.find('('), rp = stat.rfind(')');
  if (lp == std::string::npos || rp == std::string::npos || rp < lp || rp + 2 > stat.size()) {
    return std::nullopt;
  }
  std::istringstream rest(stat.substr(rp + 2));
  std::vector<std::string> f;
  for (std::string field; rest >> field;) f.push_back(field);
  // Fields after ")" start at field 3 (state); utime and stime are fields 14 and 15, indexes 11 and 12 here.
  if (f.size() < 13) return std::nullopt;
  const double ticks = std::stod(f[11]) + std::stod(f[12]);
  return std::pair{stat.substr(lp + 1, rp - lp - 1), ticks / static_cast<double>(sysconf(_SC_CLK_TCK))};
}

inline std::string ReadWhole(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

/// CPU seconds of process `pid` ("self" for this one), every thread, ended ones included; -1 if unreadable.
inline double ProcessCpuSeconds(const std::string& pid) {
  auto s = ParseProcStat(ReadWhole(std::filesystem::path("/proc") / pid / "stat"));
  return s ? s->second : -1;
}

/// Each live thread of `pid` ("self" for this one): tid -> (name, CPU seconds).
inline std::map<std::string, std::pair<std::string, double>> ThreadsCpuSeconds(const std::string& pid) {
  std::map<std::string, std::pair<std::string, double>> out;
  std::error_code ec;
  const std::filesystem::path tasks = std::filesystem::path("/proc") / pid / "task";
  for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
    if (auto s = ParseProcStat(ReadWhole(task.path() / "stat"))) out[task.path().filename().string()] = *s;
  }
  return out;
}

/// The live threads' CPU seconds of `pid`, summed by thread name (src/common/thread_name.h names Sluice's).
inline std::map<std::string, double> CpuSecondsByThreadName(const std::string& pid) {
  std::map<std::string, double> out;
  for (const auto& [tid, thread] : ThreadsCpuSeconds(pid)) out[thread.first] += thread.second;
  return out;
}

}  // namespace sluice::bench
