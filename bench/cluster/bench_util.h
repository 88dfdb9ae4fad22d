// Shared by the cluster benchmarks: CPU seconds of this process and of a server process, and the ≈800 B JSON
// properties of a benchmark event.
#pragma once

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace sluice::bench {

inline double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// utime + stime of a process in seconds (fields 14 and 15 of /proc/PID/stat).
inline double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// ≈780 B of JSON properties for event `i`, shaped like an SDK's.
inline std::string EventProperties(int i) {
  std::string p = fmt::format(
      R"({{"$browser":"Chrome","$os":"Linux","plan":"pro","seq":{},"utm_source":"newsletter")", i);
  int pad = 0;
  while (p.size() < 780) p += fmt::format(R"(,"attr_{}":"value-{}-{}")", pad++, i % 1000, pad);
  return p + "}";
}

}  // namespace sluice::bench
