// Export-side cost of the ClickHouse store: CPU of this process (the exporter's) per million events read
// back through ClickHouseEventStore::ScanPartitions (FINAL, RowBinary, streamed), events/s, and peak RSS
// during the scan, on loopback ClickHouse 18.16 (one server, and 1 shard × 2 replicas with quorum reads).
// Events are ≈1 KB (≈800 B of JSON properties), one UTC day of one project, written through WriteEvents in
// batches of 2000. The target in issue 13: ≥ 150,000 events per exporter CPU-second, RSS ≤ 256 MB.
//
//   build/bench/cluster/bench_chstore_scan [--events N] [--only one|1x2]
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "chstore/events.h"
#include "clickhouse/url.h"
#include "support/clickhouse_cluster.h"
#include "support/zookeeper_server.h"

using namespace sluice;
using sluice::bench::EventProperties;
using sluice::bench::ProcessCpuSeconds;
using sluice::bench::SelfCpuSeconds;
using sluice::testing::ClickHouseCluster;
using sluice::testing::ZooKeeperServer;

namespace {

constexpr int kBatch = 2000;
constexpr int64_t kDayStartUs = 1'764'979'200'000'000;  // 2025-12-06 00:00 UTC

// VmHWM in MB; ResetPeakRss() makes it start again from the current RSS (Linux ≥ 4.0).
double PeakRssMb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  return 0;
}
void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

int Run(const std::string& name, bool replicated, ZooKeeperServer& zk, int events) {
  testing::ClickHouseClusterOptions o;
  o.shards = 1;
  o.replicas = replicated ? 2 : 1;
  auto ch = ClickHouseCluster::Start(o, zk.HostPort());
  if (!ch.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), ch.error().ToString().c_str());
    return 1;
  }
  std::string url = replicated ? (*ch)->StoreUrl("bench")
                               : fmt::format("clickhouse://127.0.0.1:{}/bench", (*ch)->node(0).http_port);
  clickhouse::ClientOptions co;
  co.url = clickhouse::ParseClickHouseUrl(url).value();
  co.transport = http::MakeCurlTransport();
  std::shared_ptr<clickhouse::Client> client(clickhouse::Client::Create(std::move(co)).value().release());
  auto store = chstore::ClickHouseEventStore::Open(client, {});
  if (!store.ok()) {
    std::fprintf(stderr, "%s: open: %s\n", name.c_str(), store.error().ToString().c_str());
    return 1;
  }
  std::vector<pid_t> servers;
  for (size_t i = 0; i < (*ch)->size(); ++i) servers.push_back((*ch)->node(i).process.pid());
  auto server_cpu = [&] {
    double s = 0;
    for (pid_t p : servers) s += ProcessCpuSeconds(p);
    return s;
  };

  const int64_t step_us = 86'400'000'000LL / events;
  std::vector<Event> batch(kBatch);
  auto write_start = std::chrono::steady_clock::now();
  for (int first = 0; first < events; first += kBatch) {
    const int n = std::min(kBatch, events - first);
    for (int k = 0; k < n; ++k) {
      const int i = first + k;
      Event& e = batch[k];
      e.name = i % 5 == 0 ? "Signup" : "Page View";
      e.distinct_id = fmt::format("user-{}", i % 50'000);
      e.time_us = kDayStartUs + int64_t{i} * step_us;
      e.insert_id = fmt::format("{:016x}", uint64_t(i) * 0x9E3779B97F4A7C15ull);
      e.properties = EventProperties(i);
    }
    Status st = (*store)->WriteEvents(7, std::span<const Event>(batch.data(), n));
    if (!st.ok()) {
      std::fprintf(stderr, "%s: write: %s\n", name.c_str(), st.error().ToString().c_str());
      return 1;
    }
  }
  double write_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count();
  batch.clear();
  batch.shrink_to_fit();

  // Background merges of the fresh parts would be counted as the scan's server CPU: wait (bounded) until
  // none runs, and report how many parts the scan reads.
  const std::string local = (*store)->schema().LocalTable();
  const std::string local_name = local.substr(local.find('.') + 1);
  std::string parts = "?";
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
       std::chrono::steady_clock::now() < until;) {
    auto merging = client->Query("SELECT count() FROM system.merges FORMAT TSV");
    if (merging.ok() && *merging == "0\n") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (auto n =
          client->Query(fmt::format("SELECT count() FROM system.parts WHERE active AND database = 'bench' "
                                    "AND table = '{}' FORMAT TSV",
                                    local_name));
      n.ok()) {
    parts = n->substr(0, n->find('\n'));
  }
  const store::Hour first_hour = store::HourOf(kDayStartUs);
  // Twice: the first read also warms ClickHouse's page cache; the second is the figure.
  for (int round = 0; round < 2; ++round) {
    ResetPeakRss();
    double server0 = server_cpu();
    double self0 = SelfCpuSeconds();
    auto start = std::chrono::steady_clock::now();
    uint64_t rows = 0, bytes = 0;
    Status st = (*store)->ScanPartitions(7, first_hour, first_hour + 24, [&](const store::EventView& v) {
      ++rows;
      bytes += v.properties.size();
      return true;
    });
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double self = SelfCpuSeconds() - self0;
    double server = server_cpu() - server0;
    if (!st.ok() || rows != static_cast<uint64_t>(events)) {
      std::fprintf(stderr, "%s: scan: %s, %llu rows of %d\n", name.c_str(),
                   st.ok() ? "ok" : st.error().ToString().c_str(), static_cast<unsigned long long>(rows),
                   events);
      return 1;
    }
    if (round == 0) continue;
    std::printf(
        "%-4s events=%d write=%.0f ev/s parts=%s | scan: %.0f events/s wall, exporter CPU %.2f s per million "
        "(%.0f events per exporter CPU-second), ClickHouse CPU %.2f s per million, peak RSS %.0f MB\n",
        name.c_str(), events, events / write_s, parts.c_str(), rows / wall, self * 1e6 / rows, rows / self,
        server * 1e6 / rows, PeakRssMb());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each result as soon as it is measured
  int events = 300'000;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--events") && i + 1 < argc) {
      events = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) {
      only = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--events N] [--only one|1x2]\n", argv[0]);
      return 2;
    }
  }
  if (events <= 0) {
    std::fprintf(stderr, "--events must be positive\n");
    return 2;
  }
  auto zk = ZooKeeperServer::Start();
  if (!zk.ok()) {
    std::fprintf(stderr, "zookeeper: %s\n", zk.error().ToString().c_str());
    return 1;
  }
  int rc = 0;
  if (only.empty() || only == "one") rc |= Run("one", false, **zk, events);
  if (only.empty() || only == "1x2") rc |= Run("1x2", true, **zk, events);
  return rc;
}
