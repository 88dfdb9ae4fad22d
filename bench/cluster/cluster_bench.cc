// Cluster benchmark (issue 13 "Benchmark"): the real `sluice serve` nodes on a shared ClickHouse store, as an
// operator would size them. Starts, on 127.0.0.1 free ports and stopped by PID, a ZooKeeper, a ClickHouse 1
// shard × 2 replicas (Debian's 18.16, tests/support) and 1 or 3 `sluice serve --store clickhouse://…
// --coordination zookeeper://…` nodes, then:
//   ingest  N realistic ~750-byte events of yesterday (UTC) in 2000-event gzip batches (bench/shared), sent
//           round-robin over the nodes on C connections to /import: events/s, MB/s, p50/p99 batch latency,
//           CPU seconds per million events of all Sluice nodes, all ClickHouse servers and ZooKeeper (utime +
//           stime of /proc/PID/stat), each group's share of the CPU used, and peak RSS (VmHWM) per Sluice
//           node. The same batches go first to ONE node on the embedded store (no --store) for the ratio
//           "Sluice's own CPU per ingested event, cluster / embedded" (target <= 1.5x).
//   export  a type=local daily pipeline for that day, created through node 1; the Sluice nodes' CPU from the
//           create until the partition's `complete` marker exists: events per exporter CPU-second (target >=
//           150,000), ClickHouse CPU per million exported events, peak RSS per node during the export.
// CPU seconds are the figures to quote: the machine is shared, so wall time depends on the neighbours.
//
//   build/bench/cluster/bench_cluster [--nodes 1|3] [--events 300000] [--connections 4] [--skip-embedded]
//                                     [--binary PATH]
#include <fmt/format.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "common/crypto.h"
#include "http/transport.h"
#include "shared/event_batches.h"
#include "support/child_process.h"
#include "support/clickhouse_cluster.h"
#include "support/zookeeper_server.h"

namespace {

using namespace sluice;
using bench::ProcessCpuSeconds;
using bench::ProcessStatusKb;
using bench::ResetPeakRss;
using bench::SelfCpuSeconds;
using SteadyClock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Args {
  int nodes = 3;
  int64_t events = 300'000;
  int connections = 4;
  bool skip_embedded = false;
  int batch = 2000;
  /// Default: the sluice binary of this build tree (build/bench/cluster/../../sluice).
  std::string binary =
      (fs::read_symlink("/proc/self/exe").parent_path().parent_path().parent_path() / "sluice").string();
};

[[noreturn]] void Usage(const std::string& why) {
  fmt::print(stderr,
             "{}\nusage: bench_cluster [--nodes 1|3] [--events N] [--connections C] [--skip-embedded] "
             "[--binary PATH]\n",
             why);
  std::exit(2);
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--skip-embedded") {
      a.skip_embedded = true;
      continue;
    }
    if (i + 1 >= argc) Usage(k + " needs a value");
    const std::string v = argv[++i];
    try {
      if (k == "--nodes")
        a.nodes = std::stoi(v);
      else if (k == "--events")
        a.events = std::stoll(v);
      else if (k == "--connections")
        a.connections = std::stoi(v);
      else if (k == "--binary")
        a.binary = v;
      else
        Usage("unknown option " + k);
    } catch (const std::exception&) {
      Usage(k + " needs a number, got '" + v + "'");
    }
  }
  if (a.nodes != 1 && a.nodes != 3) Usage("--nodes must be 1 or 3");
  if (a.events <= 0) Usage("--events must be positive");
  if (a.connections <= 0 || a.connections > 64) Usage("--connections must be 1..64");
  if (!fs::exists(a.binary)) Usage("no sluice binary at " + a.binary + " (build it, or give --binary)");
  return a;
}

double CpuOf(const std::vector<pid_t>& pids) {
  double s = 0;
  for (pid_t p : pids) s += ProcessCpuSeconds(p);
  return s;
}

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

std::string LastLines(const std::string& path, size_t n) {
  const std::string text = Slurp(path);
  size_t at = text.size();
  for (size_t i = 0; i <= n && at != std::string::npos && at > 0; ++i) at = text.rfind('\n', at - 1);
  return at == std::string::npos ? text : text.substr(at + 1);
}

/// One `sluice serve` child: its process (stopped by PID when destroyed), data dir and URL.
struct Node {
  testing::ChildProcess process;
  fs::path data_dir;
  std::string url;
};

/// Starts `sluice serve` with its own data dir under `dir`, waits (bounded) for its server.url.
Result<std::unique_ptr<Node>> StartNode(const Args& args, const fs::path& dir, const std::string& name,
                                        const fs::path& export_root, const std::vector<std::string>& extra) {
  auto node = std::make_unique<Node>();
  node->data_dir = dir / name;
  fs::create_directories(node->data_dir);
  std::vector<std::string> argv = {args.binary,
                                   "serve",
                                   "--data-dir",
                                   node->data_dir.string(),
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--log-level",
                                   "warn",
                                   "--rate-limit-bytes-per-minute",
                                   "0",
                                   "--local-export-root",
                                   export_root.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const std::string log = (dir / (name + ".log")).string();
  SLUICE_ASSIGN_OR_RETURN(node->process, testing::ChildProcess::Spawn(argv, log));
  for (auto until = SteadyClock::now() + std::chrono::seconds(90); SteadyClock::now() < until;) {
    std::ifstream in(node->data_dir / "server.url");
    std::getline(in, node->url);
    if (!node->url.empty()) return node;
    if (node->process.Exited()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Unavailable(fmt::format("sluice serve ({}) did not start within 90 s; its log {} ends with:\n{}",
                                 name, log, LastLines(log, 15)));
}

Result<http::OutboundResponse> Send(http::HttpTransport& t, const std::string& url, std::string method,
                                    std::string body,
                                    std::vector<std::pair<std::string, std::string>> headers) {
  http::OutboundRequest req{.method = std::move(method), .url = url, .headers = std::move(headers)};
  req.body = http::RequestBody::FromString(std::move(body));
  return t.Send(req, SteadyClock::now() + std::chrono::seconds(120));
}

struct Project {
  std::string id;
  std::string auth;  // "Basic …" of the project's API secret
};

Result<Project> CreateProject(const std::string& url, const std::string& admin) {
  auto t = http::MakeCurlTransport();
  auto created = Send(*t, url + "/api/app/projects", "POST", R"({"name":"bench"})",
                      {{"Authorization", "Bearer " + admin}, {"Content-Type", "application/json"}});
  if (!created.ok()) return created.error();
  if (created->status != 200) {
    return Internal(fmt::format("creating the project: HTTP {}: {}", created->status, created->body));
  }
  const auto project = boost::json::parse(created->body);
  return Project{boost::json::serialize(project.at("id")),
                 "Basic " + Base64Encode(boost::json::value_to<std::string>(project.at("api_secret")) + ":")};
}

struct IngestResult {
  double wall = 0;
  int64_t imported = 0;
  int64_t failures = 0;
  double p50 = 0, p99 = 0;
};

/// Sends every batch to /import, batch b to node b % nodes, on `connections` connections.
IngestResult Ingest(const std::vector<std::string>& urls, const bench::GzipBatches& batches,
                    const std::string& auth, int connections) {
  std::atomic<size_t> next{0};
  std::atomic<int64_t> imported{0}, failures{0};
  std::vector<std::vector<double>> latencies(static_cast<size_t>(connections));
  const auto start = SteadyClock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < connections; ++c) {
    clients.emplace_back([&, c] {
      auto t = http::MakeCurlTransport();  // one per client thread: its own keep-alive connections
      for (size_t b; (b = next++) < batches.bodies.size();) {
        const auto t0 = SteadyClock::now();
        auto r = Send(
            *t, urls[b % urls.size()] + "/import", "POST", batches.bodies[b],
            {{"Authorization", auth}, {"Content-Type", "application/json"}, {"Content-Encoding", "gzip"}});
        latencies[static_cast<size_t>(c)].push_back(
            std::chrono::duration<double>(SteadyClock::now() - t0).count());
        if (!r.ok() || r->status != 200) {
          if (failures++ < 3) {
            fmt::print(stderr, "batch {} to {} failed: {}\n", b, urls[b % urls.size()],
                       r.ok() ? fmt::format("HTTP {} {}", r->status, r->body) : r.error().ToString());
          }
          continue;
        }
        imported += boost::json::parse(r->body).at("num_records_imported").as_int64();
      }
    });
  }
  for (auto& th : clients) th.join();
  IngestResult out;
  out.wall = std::chrono::duration<double>(SteadyClock::now() - start).count();
  out.imported = imported;
  out.failures = failures;
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0 : all[std::min(all.size() - 1, size_t(p * all.size()))];
  };
  out.p50 = pct(0.50);
  out.p99 = pct(0.99);
  return out;
}

/// Waits (at most `limit`) until `pids` together use under 5% of a core over a second (flushes, merges and
/// replication of the ingest done); returns the CPU seconds they used meanwhile.
double WaitForQuiet(const std::vector<pid_t>& pids, std::chrono::seconds limit) {
  const double start = CpuOf(pids);
  double last = start;
  for (auto until = SteadyClock::now() + limit; SteadyClock::now() < until;) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const double now = CpuOf(pids);
    if (now - last < 0.05) break;
    last = now;
  }
  return CpuOf(pids) - start;
}

std::string Date(int64_t day_start_s, const char* sep) {
  std::time_t t = day_start_s;
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04d}{}{:02d}{}{:02d}", tm.tm_year + 1900, sep, tm.tm_mon + 1, sep, tm.tm_mday);
}

struct Embedded {
  double cpu_per_million = 0;
  double events_per_s = 0;
  long peak_rss_kb = 0;
};

int RunEmbedded(const Args& args, const fs::path& dir, const bench::GzipBatches& batches,
                const std::string& admin, Embedded& out) {
  auto node = StartNode(args, dir, "embedded", dir / "embedded-export", {});
  if (!node.ok()) {
    fmt::print(stderr, "embedded: {}\n", node.error().ToString());
    return 1;
  }
  auto project = CreateProject((*node)->url, admin);
  if (!project.ok()) {
    fmt::print(stderr, "embedded: {}\n", project.error().ToString());
    return 1;
  }
  const pid_t pid = (*node)->process.pid();
  const double cpu0 = ProcessCpuSeconds(pid);
  const IngestResult r = Ingest({(*node)->url}, batches, project->auth, args.connections);
  const double cpu = ProcessCpuSeconds(pid) - cpu0;
  if (r.failures > 0 || r.imported != batches.events) {
    fmt::print(stderr, "embedded: {} of {} events imported, {} failed batches\n", r.imported, batches.events,
               r.failures);
    return 1;
  }
  out.cpu_per_million = cpu / (static_cast<double>(r.imported) / 1e6);
  out.events_per_s = static_cast<double>(r.imported) / r.wall;
  out.peak_rss_kb = ProcessStatusKb(pid, "VmHWM");
  fmt::print(
      "embedded, 1 node: {:.0f} events/s, {:.1f} MB/s, batch p50 / p99 {:.0f} / {:.0f} ms, Sluice CPU {:.2f} "
      "s "
      "per million events, peak RSS {:.0f} MB\n",
      out.events_per_s, static_cast<double>(batches.raw_bytes) / r.wall / 1e6, r.p50 * 1e3, r.p99 * 1e3,
      out.cpu_per_million, out.peak_rss_kb / 1024.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each figure as soon as it is measured
  const Args args = ParseArgs(argc, argv);
  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const int64_t day_start_s =
      (now_s / 86400 - 1) * 86400;  // yesterday, UTC: closed, so a pipeline exports it
  const int64_t events = args.events;
  const bench::GzipBatches batches = bench::BuildGzipBatches(
      events, args.batch, [&](int64_t seq) { return day_start_s + seq * 86400 / events; });
  const double mb = static_cast<double>(batches.raw_bytes) / 1e6;
  fmt::print(
      "== cluster benchmark: {} events of {} (~{} B each as sent, {:.0f} MB), {}-event gzip batches, {} "
      "connections, {} Sluice node(s) on ClickHouse 1 shard x 2 replicas + ZooKeeper ==\n",
      events, Date(day_start_s, "-"), batches.raw_bytes / events, mb, args.batch, args.connections,
      args.nodes);
  fmt::print("load average before: {}", Slurp("/proc/loadavg"));

  auto tmp = testing::MakeTempDir("sluice-bench-cluster");
  if (!tmp.ok()) {
    fmt::print(stderr, "{}\n", tmp.error().ToString());
    return 1;
  }
  const fs::path dir = *tmp;
  struct RemoveDir {
    fs::path dir;
    ~RemoveDir() { testing::RemoveTree(dir.string()); }
  } remove_dir{dir};
  // Every node of a shared store takes the admin token from the environment; the children inherit it.
  const std::string admin = RandomHex(256);
  setenv("SLUICE_ADMIN_TOKEN", admin.c_str(), 1);

  Embedded embedded;
  if (!args.skip_embedded && RunEmbedded(args, dir, batches, admin, embedded) != 0) return 1;

  auto zk = testing::ZooKeeperServer::Start();
  if (!zk.ok()) {
    fmt::print(stderr, "zookeeper: {}\n", zk.error().ToString());
    return 1;
  }
  auto ch = testing::ClickHouseCluster::Start({.shards = 1, .replicas = 2}, (*zk)->HostPort());
  if (!ch.ok()) {
    fmt::print(stderr, "clickhouse: {}\n", ch.error().ToString());
    return 1;
  }
  const fs::path export_root = dir / "export";  // shared: whichever node takes the export writes here
  fs::create_directories(export_root);
  std::vector<std::unique_ptr<Node>> nodes;
  for (int i = 0; i < args.nodes; ++i) {
    auto node = StartNode(args, dir, fmt::format("node{}", i + 1), export_root,
                          {"--store", (*ch)->StoreUrl("bench"), "--coordination", (*zk)->Url("/bench"),
                           "--node-id", fmt::format("bench-node-{}", i + 1)});
    if (!node.ok()) {
      fmt::print(stderr, "{}\n", node.error().ToString());
      return 1;
    }
    nodes.push_back(std::move(node).value());
  }
  std::vector<pid_t> sluice_pids, ch_pids;
  std::vector<std::string> urls;
  for (const auto& n : nodes) {
    sluice_pids.push_back(n->process.pid());
    urls.push_back(n->url);
  }
  for (size_t i = 0; i < (*ch)->size(); ++i) ch_pids.push_back((*ch)->node(i).process.pid());
  const std::vector<pid_t> zk_pids = {(*zk)->pid()};

  auto project = CreateProject(urls[0], admin);
  if (!project.ok()) {
    fmt::print(stderr, "{}\n", project.error().ToString());
    return 1;
  }
  // The other nodes learn of the project within their 2 s project refresh.
  if (args.nodes > 1) std::this_thread::sleep_for(std::chrono::seconds(4));
  WaitForQuiet(ch_pids, std::chrono::seconds(30));  // the schema's DDL and startup done
  // What the idle nodes burn anyway (session pings, project refresh, schedulers), to tell it from the cost of
  // the events: CPU seconds per second, all nodes.
  const double idle0 = CpuOf(sluice_pids);
  std::this_thread::sleep_for(std::chrono::seconds(5));
  const double idle_rate = (CpuOf(sluice_pids) - idle0) / 5;

  // ---- ingest ----
  const double s0 = CpuOf(sluice_pids), c0 = CpuOf(ch_pids), z0 = CpuOf(zk_pids), g0 = SelfCpuSeconds();
  const IngestResult r = Ingest(urls, batches, project->auth, args.connections);
  const double s_cpu = CpuOf(sluice_pids) - s0, c_cpu = CpuOf(ch_pids) - c0, z_cpu = CpuOf(zk_pids) - z0,
               g_cpu = SelfCpuSeconds() - g0;
  if (r.failures > 0 || r.imported != events) {
    fmt::print(stderr, "{} of {} events imported, {} failed batches; node logs in {}\n", r.imported, events,
               r.failures, dir.string());
    return 1;
  }
  const double millions = static_cast<double>(events) / 1e6;
  const double total = s_cpu + c_cpu + z_cpu + g_cpu;
  fmt::print("\n-- ingest through {} node(s) --\n", args.nodes);
  fmt::print("events/s                    : {:.0f}\n", static_cast<double>(events) / r.wall);
  fmt::print("MB/s (uncompressed JSON)    : {:.1f}\n", mb / r.wall);
  fmt::print("batch latency p50 / p99     : {:.0f} ms / {:.0f} ms\n", r.p50 * 1e3, r.p99 * 1e3);
  fmt::print(
      "CPU s per million events    : Sluice nodes {:.2f}, ClickHouse servers {:.2f}, ZooKeeper {:.2f}, "
      "load generator {:.2f}\n",
      s_cpu / millions, c_cpu / millions, z_cpu / millions, g_cpu / millions);
  fmt::print(
      "share of the CPU used       : Sluice {:.0f}%, ClickHouse {:.0f}%, ZooKeeper {:.0f}%, load generator "
      "{:.0f}%; {:.2f} of {} cores busy on average\n",
      100 * s_cpu / total, 100 * c_cpu / total, 100 * z_cpu / total, 100 * g_cpu / total, total / r.wall,
      std::thread::hardware_concurrency());
  fmt::print("peak RSS per Sluice node    :");
  for (pid_t p : sluice_pids) fmt::print(" {:.0f} MB", ProcessStatusKb(p, "VmHWM") / 1024.0);
  fmt::print("\n");
  fmt::print(
      "Sluice idle background      : {:.3f} CPU s per second (all nodes, measured before the ingest) = "
      "{:.2f} s per million events over this ingest's wall time\n",
      idle_rate, idle_rate * r.wall / millions);
  if (!args.skip_embedded) {
    fmt::print(
        "Sluice CPU per event, cluster / embedded: {:.2f} / {:.2f} s per million = {:.2f}x (target <= "
        "1.5x)\n",
        s_cpu / millions, embedded.cpu_per_million, s_cpu / millions / embedded.cpu_per_million);
  }
  fmt::print("bottleneck                  : {}\n",
             c_cpu >= s_cpu ? "ClickHouse (the storage engine) uses the most CPU per ingested event"
                            : "the Sluice nodes use the most CPU per ingested event");
  const double settle_ch = WaitForQuiet(ch_pids, std::chrono::seconds(60));
  fmt::print(
      "after the ingest            : ClickHouse used {:.2f} s more per million events (merges, "
      "replication) before going quiet\n",
      settle_ch / millions);

  // ---- export ----
  WaitForQuiet(sluice_pids, std::chrono::seconds(30));
  const std::string date = Date(day_start_s, "-");
  const fs::path partition = export_root / "bench" / project->id / "mp_master_event" / Date(day_start_s, "/");
  for (pid_t p : sluice_pids) ResetPeakRss(p);
  std::vector<double> node0;
  for (pid_t p : sluice_pids) node0.push_back(ProcessCpuSeconds(p));
  const double es0 = CpuOf(sluice_pids), ec0 = CpuOf(ch_pids);
  const auto t0 = SteadyClock::now();
  {
    auto t = http::MakeCurlTransport();
    auto create =
        Send(*t, urls[0] + "/api/2.0/nessie/pipeline/create", "POST",
             fmt::format("type=local&local_path=bench&from_date={}&to_date={}", date, date),
             {{"Authorization", project->auth}, {"Content-Type", "application/x-www-form-urlencoded"}});
    if (!create.ok() || create->status != 200) {
      fmt::print(
          stderr, "pipeline create failed: {}\n",
          create.ok() ? fmt::format("HTTP {} {}", create->status, create->body) : create.error().ToString());
      return 1;
    }
  }
  bool complete = false;
  for (auto until = SteadyClock::now() + std::chrono::minutes(15); !complete && SteadyClock::now() < until;) {
    complete = fs::exists(partition / "complete");
    if (!complete) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double e_wall = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  const double e_cpu = CpuOf(sluice_pids) - es0, e_ch = CpuOf(ch_pids) - ec0;
  if (!complete) {
    fmt::print(stderr, "the export of {} did not complete within 15 minutes (no {}); node logs in {}\n", date,
               (partition / "complete").string(), dir.string());
    return 1;
  }
  int64_t records = 0;
  // Named: a range-for over a temporary's member would read a destroyed value.
  const boost::json::value manifest = boost::json::parse(Slurp(partition / "manifest.json"));
  for (const auto& f : manifest.at("files").as_array()) {
    records += f.at("records").to_number<int64_t>();
  }
  if (records != events) {
    fmt::print(stderr, "the export wrote {} records, expected {}\n", records, events);
    return 1;
  }
  fmt::print("\n-- export of {} (type=local, created through node 1) --\n", date);
  fmt::print("events per exporter CPU-s   : {:.0f} (Sluice nodes {:.2f} CPU s; target >= 150,000)\n",
             static_cast<double>(records) / e_cpu, e_cpu);
  fmt::print("CPU s per million events    : Sluice nodes {:.2f}, ClickHouse servers {:.2f}; wall {:.1f} s\n",
             e_cpu / millions, e_ch / millions, e_wall);
  fmt::print("CPU s by node / peak RSS    :");
  for (size_t i = 0; i < sluice_pids.size(); ++i) {
    fmt::print(" node{} {:.2f} s {:.0f} MB", i + 1, ProcessCpuSeconds(sluice_pids[i]) - node0[i],
               ProcessStatusKb(sluice_pids[i], "VmHWM") / 1024.0);
  }
  fmt::print("\n");
  fmt::print("load average after: {}", Slurp("/proc/loadavg"));
  nodes.clear();  // stop the Sluice nodes before the store they use
  return 0;
}
