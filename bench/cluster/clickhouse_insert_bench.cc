// Insert throughput and CPU per row through clickhouse::Client onto loopback ClickHouse 18.16 servers, for
// the sizing figures in docs/scale-out.md. Rows are events of ≈1 KB (≈800 B of JSON properties), sent in
// batches of 2000 (Mixpanel's /import batch) as gzip JSONEachRow with the durable-insert settings of
// EventsSchema.
//
//   build/bench/cluster/bench_clickhouse_insert [--rows N] [--clients C] [--only 1x2]
//
// Prints per topology: rows/s, Sluice's client CPU µs/row (this process: row rendering, gzip, HTTP), and
// server CPU µs/row (every clickhouse-server and the ZooKeeper JVM, from /proc/PID/stat). All processes share
// this machine's cores, so rows/s is the machine's, not one server's.
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
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
#include "clickhouse/client.h"
#include "clickhouse/schema.h"
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

http::RequestBody MakeBatch(uint32_t project, int first) {
  clickhouse::InsertBody body;
  Event e;
  for (int i = first; i < first + kBatch; ++i) {
    e.name = i % 5 == 0 ? "Signup" : "Page View";
    e.distinct_id = fmt::format("user-{}", i % 50'000);
    e.time_us = 1'764'979'200'000'000 + int64_t{i} * 37'000;
    e.insert_id = fmt::format("{:016x}", uint64_t(i) * 0x9E3779B97F4A7C15ull);
    e.properties = EventProperties(i);
    clickhouse::AppendEventRow(body, project, e, 1);
  }
  return body.Finish();
}

struct Topology {
  std::string name;
  int shards = 1, replicas = 1;
  bool cluster = false;
};

int Run(const Topology& t, ZooKeeperServer& zk, int rows, int clients) {
  testing::ClickHouseClusterOptions o;
  o.shards = t.shards;
  o.replicas = t.replicas;
  auto ch = ClickHouseCluster::Start(o, zk.HostPort());
  if (!ch.ok()) {
    std::fprintf(stderr, "%s: %s\n", t.name.c_str(), ch.error().ToString().c_str());
    return 1;
  }
  std::string url = t.cluster ? (*ch)->StoreUrl("bench")
                              : fmt::format("clickhouse://127.0.0.1:{}/bench", (*ch)->node(0).http_port);
  clickhouse::ClientOptions co;
  co.url = clickhouse::ParseClickHouseUrl(url).value();
  co.transport = http::MakeCurlTransport();
  auto client = clickhouse::Client::Create(std::move(co)).value();
  auto schema = clickhouse::DescribeEventsSchema(*client);
  Status created = schema.ok() ? clickhouse::EnsureEventsSchema(*client, *schema) : Status(schema.error());
  if (!created.ok()) {
    std::fprintf(stderr, "%s: schema: %s\n", t.name.c_str(), created.error().ToString().c_str());
    return 1;
  }
  clickhouse::RequestOptions durable;
  durable.settings = schema->DurableInsertSettings();

  std::vector<pid_t> servers{zk.pid()};
  for (size_t i = 0; i < (*ch)->size(); ++i) servers.push_back((*ch)->node(i).process.pid());
  auto server_cpu = [&] {
    double s = 0;
    for (pid_t p : servers) s += ProcessCpuSeconds(p);
    return s;
  };

  // Render and compress the batches up front, but count their CPU as Sluice's (it is work Sluice does per
  // row).
  double cpu0 = SelfCpuSeconds();
  std::vector<http::RequestBody> batches;
  for (int first = 0; first < rows; first += kBatch) batches.push_back(MakeBatch(7, first));
  double render_cpu = SelfCpuSeconds() - cpu0;
  size_t gzip_bytes = 0;
  for (auto& b : batches) gzip_bytes += b.data->size();

  double server0 = server_cpu();
  double self0 = SelfCpuSeconds();
  auto start = std::chrono::steady_clock::now();
  std::atomic<size_t> next{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < batches.size(); i = next++) {
        auto st = client->InsertJsonEachRow(schema->EventsTable(), batches[i], durable);
        if (!st.ok()) {
          std::fprintf(stderr, "insert: %s\n", st.error().ToString().c_str());
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double send_cpu = SelfCpuSeconds() - self0;
  double server = server_cpu() - server0;
  auto counted = client->Query(fmt::format("SELECT count() FROM {} FORMAT TSV", schema->EventsTable()));
  std::printf(
      "%-34s %8d rows  %8.0f rows/s  client %5.1f µs/row (render+gzip %4.1f, send %4.1f)  "
      "servers %6.1f µs/row  gzip %5.1f MB  count %s  failures %d\n",
      t.name.c_str(), rows, rows / seconds, (render_cpu + send_cpu) * 1e6 / rows, render_cpu * 1e6 / rows,
      send_cpu * 1e6 / rows, server * 1e6 / rows, gzip_bytes / 1e6,
      counted.ok() ? std::string(counted->substr(0, counted->size() - 1)).c_str() : "?", failures.load());
  std::fflush(stdout);
  return failures.load() == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int rows = 200'000;
  int clients = 1;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--rows") == 0) rows = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--clients") == 0) clients = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--only") == 0)
      only = argv[i + 1];  // a topology name prefix: "1 server", "1x2", "2x2"
  }
  std::printf(
      "ClickHouse insert, %d clients, batches of %d rows of ≈1 KB, gzip JSONEachRow, durable settings\n",
      clients, kBatch);
  int rc = 0;
  for (const Topology& t : {Topology{"1 server (ReplacingMergeTree)", 1, 1, false},
                            Topology{"1x2 replicated, insert_quorum=2", 1, 2, true},
                            Topology{"2x2 Distributed sync + quorum=2", 2, 2, true}}) {
    if (!only.empty() && t.name.rfind(only, 0) != 0) continue;
    auto zk = ZooKeeperServer::Start();  // a fresh one per topology: nothing left over from the previous one
    if (!zk.ok()) {
      std::fprintf(stderr, "%s\n", zk.error().ToString().c_str());
      return 1;
    }
    rc |= Run(t, **zk, rows, clients);
  }
  return rc;
}
