// Ingest benchmark: starts the real `sluice serve` pinned to one core, then sends pre-built 2000-event gzip
// batches of realistic ~800-byte events to /import over several loopback connections from this process (on the
// other core). Prints events/s, MB/s of uncompressed JSON, p50/p99 batch latency, the slowest batches with
// the second they started at, events per server
// CPU-second (the main figure on a shared machine: wall time depends on the neighbours), server CPU seconds
// per million events, peak server RSS and the store's write-stall seconds from /metrics.
//
// Issue 12's measure: --events 300000 --connections 4 (target >= 250,000 events per server CPU-second, p99
// <= 100 ms); RSS bound: --events 5000000 (<= 512 MB).
//
//   build/bench/load/bench_ingest_load [--events 5000000] [--connections 8] [--server-core 0]
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "common/compression.h"
#include "common/crypto.h"
#include "http/transport.h"
#include "shared/event_batches.h"
#include "shared/proc_cpu.h"

namespace {

using namespace sluice;
using SteadyClock = std::chrono::steady_clock;

struct Args {
  int64_t events = 5'000'000;
  int connections = 8;
  int server_core = 0;
  int batch = 2000;
  double rate = 0;  // events/s offered on a fixed schedule (open loop); 0 = each connection sends back to back
  std::string binary = std::string(SLUICE_BINARY_DIR) + "/sluice";
};

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--events") a.events = std::stoll(v);
    else if (k == "--connections") a.connections = std::stoi(v);
    else if (k == "--server-core") a.server_core = std::stoi(v);
    else if (k == "--batch") a.batch = std::stoi(v);
    else if (k == "--binary") a.binary = v;
    else if (k == "--rate") a.rate = std::stod(v);
  }
  return a;
}

using bench::RealisticEvent;  // shared with bench/cluster (bench/shared/event_batches.h)

double ProcCpuSeconds(pid_t pid) { return bench::ProcessCpuSeconds(std::to_string(pid)); }

/// CPU seconds of the process's threads by thread name (sl-http = request threads, rocksdb:high = flushes,
/// rocksdb:low = compactions), to tell foreground cost from background cost.
std::map<std::string, double> ThreadCpuSeconds(pid_t pid) {
  return bench::CpuSecondsByThreadName(std::to_string(pid));
}

long ProcPeakRssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  auto dir = std::filesystem::temp_directory_path() / ("sluice-bench-ingest-" + RandomHex(64));
  std::filesystem::create_directories(dir);

  // Pre-build every batch (JSON + gzip) before the clock starts: the load generator must not be the bottleneck.
  const int64_t batches = (args.events + args.batch - 1) / args.batch;
  fmt::print("preparing {} batches of {} events...\n", batches, args.batch);
  std::vector<std::string> bodies(batches);
  std::atomic<int64_t> raw_bytes{0};
  const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
  {
    std::vector<std::thread> gens;
    const int workers = 2;
    for (int w = 0; w < workers; ++w) {
      gens.emplace_back([&, w] {
        std::mt19937_64 rng(1000 + w);
        for (int64_t b = w; b < batches; b += workers) {
          std::string json = "[";
          for (int i = 0; i < args.batch; ++i) {
            if (i) json += ',';
            // Spread over the last 20 hours: several partitions, all valid for /import.
            json += RealisticEvent(rng, b * args.batch + i, now_s - 3600 * (b % 20) - i % 3600);
          }
          json += "]";
          raw_bytes += static_cast<int64_t>(json.size());
          bodies[b] = Gzip(json, 1);
        }
      });
    }
    for (auto& g : gens) g.join();
  }
  fmt::print("average event: {} bytes uncompressed; gzip ratio {:.1f}x\n", raw_bytes / (batches * args.batch),
             static_cast<double>(raw_bytes) / [&] { int64_t n = 0; for (auto& b : bodies) n += b.size(); return n; }());

  // Start the server pinned to one core.
  const std::string admin = RandomHex(128);
  pid_t pid = fork();
  if (pid == 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(args.server_core, &set);
    sched_setaffinity(0, sizeof(set), &set);
    setenv("SLUICE_ADMIN_TOKEN", admin.c_str(), 1);
    execl(args.binary.c_str(), args.binary.c_str(), "serve", "--data-dir", dir.c_str(), "--listen", "127.0.0.1:0",
          "--log-level", "warn", "--rate-limit-bytes-per-minute", "0", static_cast<char*>(nullptr));
    _exit(127);
  }
  {  // pin ourselves to the other core(s)
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = 0; c < static_cast<int>(std::thread::hardware_concurrency()); ++c)
      if (c != args.server_core) CPU_SET(c, &set);
    if (CPU_COUNT(&set) > 0) sched_setaffinity(0, sizeof(set), &set);
  }
  auto transport = http::MakeCurlTransport();
  std::string url;
  for (int i = 0; i < 600 && url.empty(); ++i) {
    std::ifstream in(dir / "server.url");
    std::getline(in, url);
    if (url.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (url.empty()) {
    fmt::print(stderr, "server did not start\n");
    kill(pid, SIGKILL);
    return 1;
  }
  auto send = [&](http::HttpTransport& t, std::string method, std::string path, std::string body,
                  std::vector<std::pair<std::string, std::string>> headers) {
    http::OutboundRequest req{.method = std::move(method), .url = url + path, .headers = std::move(headers)};
    req.body = http::RequestBody::FromString(std::move(body));
    return t.Send(req, SteadyClock::now() + std::chrono::seconds(60));
  };
  auto created = send(*transport, "POST", "/api/app/projects", R"({"name":"bench"})",
                      {{"Authorization", "Bearer " + admin}, {"Content-Type", "application/json"}});
  if (!created.ok() || created->status != 200) {
    fmt::print(stderr, "cannot create project\n");
    kill(pid, SIGKILL);
    return 1;
  }
  auto secret = boost::json::value_to<std::string>(boost::json::parse(created->body).at("api_secret"));
  const std::string auth = "Basic " + Base64Encode(secret + ":");

  const double cpu_before = ProcCpuSeconds(pid);
  const auto threads_before = ThreadCpuSeconds(pid);
  std::atomic<int64_t> next{0}, failures{0}, imported{0};
  std::vector<std::vector<double>> latencies(args.connections);
  // (start offset, latency) of every batch: the slowest ones, printed below, say when a batch waited (the first
  // batches of a fresh server, a memtable switch, a flush) so a p99 can be traced to its cause.
  std::vector<std::vector<std::pair<double, double>>> timeline(args.connections);
  auto start = SteadyClock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < args.connections; ++c) {
    clients.emplace_back([&, c] {
      auto t = http::MakeCurlTransport();
      for (int64_t b; (b = next++) < batches;) {
        auto t0 = SteadyClock::now();
        if (args.rate > 0) {
          // Open loop: batch b is due at start + b * batch / rate. Its latency counts from when it was due, not
          // from when a connection got free, so a server that falls behind shows it (no coordinated omission).
          const auto due = start + std::chrono::duration_cast<SteadyClock::duration>(
                                       std::chrono::duration<double>(static_cast<double>(b) * args.batch / args.rate));
          std::this_thread::sleep_until(due);
          t0 = due;
        }
        auto r = send(*t, "POST", "/import", bodies[b],
                      {{"Authorization", auth}, {"Content-Type", "application/json"}, {"Content-Encoding", "gzip"}});
        latencies[c].push_back(std::chrono::duration<double>(SteadyClock::now() - t0).count());
        timeline[c].emplace_back(std::chrono::duration<double>(t0 - start).count(), latencies[c].back());
        if (!r.ok() || r->status != 200) {
          if (failures++ < 3) fmt::print(stderr, "batch {} failed: {}\n", b, r.ok() ? r->body : r.error().ToString());
          continue;
        }
        imported += boost::json::parse(r->body).at("num_records_imported").as_int64();
      }
    });
  }
  for (auto& th : clients) th.join();
  const double wall = std::chrono::duration<double>(SteadyClock::now() - start).count();
  const double cpu = ProcCpuSeconds(pid) - cpu_before;
  auto threads_after = ThreadCpuSeconds(pid);
  const long rss_kb = ProcPeakRssKb(pid);

  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0 : all[std::min(all.size() - 1, size_t(p * all.size()))]; };
  const double ev = static_cast<double>(imported);
  fmt::print("\n== ingest benchmark: {} events in {}-event gzip batches, {} connections, server pinned to core {}{} ==\n",
             imported.load(), args.batch, args.connections, args.server_core,
             args.rate > 0 ? fmt::format(", offered at {:.0f} events/s (open loop)", args.rate)
                           : std::string(", back to back"));
  fmt::print("events/s accepted durably : {:.0f}\n", ev / wall);
  fmt::print("MB/s (uncompressed JSON)  : {:.1f}\n", static_cast<double>(raw_bytes) * (ev / (batches * args.batch)) / wall / 1e6);
  fmt::print("batch latency p50 / p99   : {:.1f} ms / {:.1f} ms\n", pct(0.50) * 1e3, pct(0.99) * 1e3);
  {
    // The first batches of a fresh server are slower (2-3x for each request thread's first ~5 batches, with
    // or without a pause after start-up): this is the latency once the server is past them.
    std::vector<double> steady;
    for (auto& t : timeline)
      for (auto& [at, latency] : t)
        if (at >= 0.5) steady.push_back(latency);
    std::sort(steady.begin(), steady.end());
    auto spct = [&](double p) { return steady.empty() ? 0 : steady[std::min(steady.size() - 1, size_t(p * steady.size()))]; };
    fmt::print("  batches from 0.5 s on   : {:.1f} ms / {:.1f} ms ({} batches)\n", spct(0.50) * 1e3, spct(0.99) * 1e3,
               steady.size());
  }
  fmt::print("events per server CPU-s   : {:.0f}\n", ev / cpu);
  {
    std::vector<std::pair<double, double>> slow;
    for (auto& t : timeline) slow.insert(slow.end(), t.begin(), t.end());
    std::sort(slow.begin(), slow.end(), [](auto& a, auto& b) { return a.second > b.second; });
    fmt::print("slowest batches (start s: ms):");
    for (size_t i = 0; i < std::min<size_t>(5, slow.size()); ++i)
      fmt::print(" {:.2f}: {:.0f}", slow[i].first, slow[i].second * 1e3);
    fmt::print("\n");
  }
  fmt::print("server CPU s per 1M events: {:.2f}\n", cpu / (ev / 1e6));
  fmt::print("server peak RSS           : {:.0f} MB\n", rss_kb / 1024.0);
  // Not in the figures above (measured from the first batch on): start-up, including the memtable reservation.
  fmt::print("server start-up CPU s     : {:.2f}\n", cpu_before);
  fmt::print("failed batches            : {}\n", failures.load());
  fmt::print("server CPU s by thread    :");
  for (auto& [name, seconds] : threads_after) {
    const auto it = threads_before.find(name);
    const double used = seconds - (it == threads_before.end() ? 0 : it->second);
    if (used >= 0.01) fmt::print(" {} {:.2f}", name, used);
  }
  fmt::print("\n");
  if (auto m = send(*transport, "GET", "/metrics", "", {}); m.ok() && m->status == 200) {
    for (std::string_view name : {"sluice_store_stall_seconds_total "}) {
      const size_t at = m->body.find(std::string("\n") + std::string(name));
      if (at != std::string::npos) {
        const size_t end = m->body.find('\n', at + 1);
        fmt::print("store write stalls (s)    : {}\n", m->body.substr(at + 1 + name.size(), end - at - 1 - name.size()));
      }
    }
  }

  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  std::filesystem::remove_all(dir);
  return failures == 0 ? 0 : 1;
}
