// Cloud Import benchmark: N realistic Mixpanel events as gzip NDJSON files in a private moto (auth mode, the
// import role with only s3:GetObject + s3:ListBucket), imported by a ConnectorManager in this process into a
// store in a temp dir (WAL synced, as in production).
//
//   import_bench [--events 2000000] [--files 20] [--in-memory] [--null-store] [--lazy-memory] [--no-sync] [--keep]
//
// Prints events/s (wall), importer CPU seconds per million events and events/s per core of importer CPU
// (getrusage of this process during the import only: moto runs in its own process and is excluded; RocksDB's
// background threads and libcurl are included), and the peak RSS during the import (VmHWM reset before it).
// --in-memory reads the same files from an in-memory bucket instead of moto, separating Sluice's cost from
// libcurl + loopback TCP; --null-store validates every batch but drops it instead of writing it, separating the
// importer's own cost from the store's (RocksDB).
//
// Target (issue 5): >= 200,000 events/s per core of importer CPU, peak RSS <= 256 MB.
//
// Measured 2026-11-24 on the 2-vCPU dev VM, 2M events of ~540 bytes (1.08 GB NDJSON, 139 MB gzip, 20 files),
// other engineers' builds running on the same cores:
//   moto, events stored (WAL synced):  11.7 CPU s per million = 86k events/s per core; 89k events/s wall; peak
//                                      RSS 194 MB (13.6-13.9 CPU s with one store write per 2000 events instead of
//                                      per 8000). RocksDB's own cost (WAL, memtables, flushes, compaction, identity
//                                      lookups) is ~7.5 CPU s of that: the store bench alone measures 5.4 CPU s per
//                                      million writes of 800-byte values.
//   moto, --null-store (1M events):    4.2 CPU s per million = 236k events/s per core; peak RSS 100 MB.
//   in-memory bucket, --null-store:    3.1 CPU s per million = 324k events/s per core (inflate ~20%, simdjson
//                                      validation + event building ~45%, allocation ~20%).
// Measured 2026-12-06 (issue 12 item 3), --events 500000 --files 5, stored through the journal, medians of 7
// interleaved runs at load average 4-7: 9.30 -> 8.16 CPU s per million events (107k -> 122k events/s per core)
// with the identity memtable's bloom filter; profile in docs/operations.md ("Where export and Cloud Import CPU
// goes").
// Measured 2026-12-06 (issue 12 item 3, second round), same command, 7 interleaved pairs at load average 1.8-2.4:
// 7.55 -> 6.61 CPU s per million events (132k -> 151k events/s per core; --null-store 2.81 = 356k) with the batch
// parsed in place into recycled events and the identity links looked up with one MultiGet; docs/operations.md.
// So the importer itself (S3 read, gzip, lines, shaping, /import validation) meets the target; with durable
// writes the store dominates and the end-to-end figure is well under half of it.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "aws/providers.h"
#include "cloudimport/connector_manager.h"
#include "common/compression.h"
#include "common/crypto.h"
#include "common/metrics.h"
#include "common/process_memory.h"
#include "objstore/s3/s3_object_store.h"
#include "objstore/testing/fake_object_store.h"
#include "shared/proc_cpu.h"
#include "store/store.h"
#include "support/moto_server.h"

namespace {

using namespace sluice;

struct Flags {
  uint64_t events = 2'000'000;
  int files = 20;
  bool in_memory = false;
  bool null_store = false;
  bool lazy_memory = false;  // --lazy-memory: no memtable reservation, glibc's default heap trimming
  bool sync = true;
  bool keep = false;
};

/// --null-store: validated batches are counted and dropped, so the figures are the importer's own cost (read,
/// inflate, split, shape, validate) without RocksDB's (WAL, memtables, flushes, compaction, identity lookups).
/// Metadata (projects, connectors, checkpoints, runs) still goes to a real store.
class NullEventStore final : public store::Store {
 public:
  explicit NullEventStore(store::Store& meta) : meta_(meta) {}
  Result<store::Project> CreateProject(std::string_view name) override { return meta_.CreateProject(name); }
  Result<std::vector<store::Project>> ListProjects() override { return meta_.ListProjects(); }
  Result<std::optional<store::Project>> GetProject(uint32_t id) override { return meta_.GetProject(id); }
  Status UpdateProject(const store::Project& p) override { return meta_.UpdateProject(p); }
  Status WriteEvents(uint32_t, std::span<const Event> events, std::span<const IdentityLink>) override {
    events_ += events.size();
    return OkStatus();
  }
  Status ScanPartition(uint32_t, store::Hour, const std::function<bool(const store::EventView&)>&) override {
    return OkStatus();
  }
  Result<std::vector<store::PartitionInfo>> ListPartitions(uint32_t, store::Hour, store::Hour) override {
    return std::vector<store::PartitionInfo>{};
  }
  Result<std::vector<store::PartitionInfo>> ChangedPartitions(uint32_t, uint64_t) override {
    return std::vector<store::PartitionInfo>{};
  }
  uint64_t LastChangeSeq() const override { return 0; }
  Status ApplyProfileOps(uint32_t, std::string_view, std::span<const store::ProfileOps>, const store::ProfileFolder&,
                         std::vector<store::ProfileOpRefusal>*) override {
    return OkStatus();
  }
  Result<std::optional<std::string>> GetProfile(uint32_t, std::string_view) override {
    return std::optional<std::string>();
  }
  Status ScanProfiles(uint32_t, std::string_view,
                      const std::function<bool(std::string_view, std::string_view)>&) override {
    return OkStatus();
  }
  Result<std::optional<std::string>> GetGroupProfile(uint32_t, std::string_view, std::string_view) override {
    return std::optional<std::string>();
  }
  Status ScanGroupProfiles(uint32_t, std::string_view, std::string_view,
                           const std::function<bool(std::string_view, std::string_view)>&) override {
    return OkStatus();
  }
  Result<std::optional<std::string>> ResolveDevice(uint32_t, std::string_view) override {
    return std::optional<std::string>();
  }
  Status ScanIdentity(uint32_t, const std::function<bool(std::string_view, std::string_view)>&) override {
    return OkStatus();
  }
  Status PutMeta(std::string_view ns, std::string_view k, std::string_view v) override { return meta_.PutMeta(ns, k, v); }
  Result<std::optional<std::string>> GetMeta(std::string_view ns, std::string_view k) override {
    return meta_.GetMeta(ns, k);
  }
  Status DeleteMeta(std::string_view ns, std::string_view k) override { return meta_.DeleteMeta(ns, k); }
  Status ScanMeta(std::string_view ns, std::string_view prefix,
                  const std::function<bool(std::string_view, std::string_view)>& fn) override {
    return meta_.ScanMeta(ns, prefix, fn);
  }
  uint64_t ApproximateSizeBytes() override { return 0; }
  Status Close() override { return OkStatus(); }

 private:
  store::Store& meta_;
  std::atomic<uint64_t> events_{0};
};

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/// CPU seconds of RocksDB's background threads (named "rocksdb:…": flushes and compactions, whose timing
/// varies from run to run; they live as long as the store, so none exits during the import).
double RocksDbBackgroundCpuSeconds() {
  double seconds = 0;
  for (const auto& [name, cpu] : sluice::bench::CpuSecondsByThreadName("self")) {
    if (name.starts_with("rocksdb:")) seconds += cpu;
  }
  return seconds;
}

long StatusKb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') return std::stol(line.substr(n + 1));
  }
  return -1;
}

/// Web/mobile events shaped like Mixpanel's: default properties, UTM, a few custom ones (~550 bytes).
class EventGen {
 public:
  explicit EventGen(uint64_t seed) : rng_(seed) {}
  void Append(std::string& out, uint64_t n, int64_t base_ms) {
    static const char* kEvents[] = {"Page View", "Sign Up", "Login", "Add To Cart", "Purchase", "Search",
                                    "Video Play", "Share"};
    static const char* kBrowsers[] = {"Chrome", "Safari", "Firefox", "Edge", "Mobile Safari"};
    static const char* kOs[] = {"Windows", "Mac OS X", "iOS", "Android", "Linux"};
    static const char* kCities[] = {"San Francisco", "London", "Berlin", "São Paulo", "Tokyo", "Bengaluru"};
    static const char* kUtm[] = {"google", "newsletter", "twitter", "direct", "partner"};
    const uint64_t user = rng_() % 200000;
    const bool identified = rng_() % 3 != 0;
    out += fmt::format(
        R"({{"event":"{}","properties":{{"time":{},"distinct_id":"{}","$insert_id":"{}",)"
        R"("$device_id":"d{:016x}",{}"$browser":"{}","$browser_version":{}.0,"$os":"{}","$city":"{}",)"
        R"("mp_country_code":"{}","$current_url":"https://shop.example.com/p/{}?ref=home","$referrer":)"
        R"("https://www.google.com/","$screen_height":{},"$screen_width":{},"utm_source":"{}",)"
        R"("utm_campaign":"spring-{}","plan":"{}","price":{}.{:02},"items":[{},{}],"logged_in":{}}}}})",
        kEvents[rng_() % 8], base_ms - static_cast<int64_t>(rng_() % 86'400'000),
        identified ? fmt::format("user-{}", user) : fmt::format("$device:d{:016x}", user * 7919),
        fmt::format("{:08x}-{:04x}-{:04x}-{:012x}", n, rng_() % 65536, rng_() % 65536, rng_() % 0xffffffffffffULL),
        user * 7919, identified ? fmt::format(R"("$user_id":"user-{}",)", user) : std::string(),
        kBrowsers[rng_() % 5], 100 + rng_() % 30, kOs[rng_() % 5], kCities[rng_() % 6],
        identified ? "US" : "DE", rng_() % 5000, 600 + rng_() % 800, 800 + rng_() % 1200, kUtm[rng_() % 5],
        rng_() % 30, identified ? "pro" : "free", rng_() % 500, rng_() % 100, rng_() % 1000, rng_() % 1000,
        identified ? "true" : "false");
    out += '\n';
  }

 private:
  std::mt19937_64 rng_;
};

int Run(const Flags& f) {
  std::unique_ptr<testing::MotoServer> moto;
  testing::MotoEnvironment env;
  std::shared_ptr<objstore::ObjectStore> upload_target;
  std::shared_ptr<objstore::testing::FakeObjectStore> memory;
  std::shared_ptr<http::HttpTransport> transport = http::MakeCurlTransport();
  if (f.in_memory) {
    memory = std::make_shared<objstore::testing::FakeObjectStore>();
    upload_target = memory;
    env.import_bucket = "memory";
    env.region = "us-east-1";
    env.roles["import"] = "arn:aws:iam::123456789012:role/import";
  } else {
    auto m = testing::MotoServer::Start();
    if (!m.ok()) return std::fprintf(stderr, "moto: %s\n", m.error().ToString().c_str()), 1;
    moto = std::move(m).value();
    auto e = moto->RunSetup();
    if (!e.ok()) return std::fprintf(stderr, "moto setup: %s\n", e.error().ToString().c_str()), 1;
    env = std::move(e).value();
    if (!moto->EnableAuth().ok()) return std::fprintf(stderr, "moto auth failed\n"), 1;
    objstore::s3::S3StoreOptions o;
    o.bucket = env.import_bucket;
    o.region = env.region;
    o.endpoint = moto->Endpoint();
    aws::Credentials admin;
    admin.access_key_id = env.admin_access_key_id;
    admin.secret_access_key = env.admin_secret_access_key;
    auto s = objstore::s3::S3ObjectStore::Create(o, std::make_shared<aws::StaticCredentialsProvider>(admin, "admin"),
                                                 transport);
    if (!s.ok()) return std::fprintf(stderr, "%s\n", s.error().ToString().c_str()), 1;
    upload_target = std::move(s).value();
  }

  // ---- the customer's files
  const int64_t base_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count() - 3'600'000;
  EventGen gen(42);
  uint64_t raw_bytes = 0, gz_bytes = 0, n = 0;
  const auto gen_start = std::chrono::steady_clock::now();
  for (int file = 0; file < f.files; ++file) {
    const uint64_t count = f.events / f.files + (static_cast<uint64_t>(file) < f.events % f.files ? 1 : 0);
    std::string text;
    text.reserve(count * 600);
    for (uint64_t i = 0; i < count; ++i) gen.Append(text, n++, base_ms);
    raw_bytes += text.size();
    std::string gz = Gzip(text, 6);
    gz_bytes += gz.size();
    auto put = upload_target->Put(fmt::format("bench-{:04}.json.gz", file), std::move(gz));
    if (!put.ok()) return std::fprintf(stderr, "upload: %s\n", put.error().ToString().c_str()), 1;
  }
  std::printf("files: %d gzip NDJSON files, %llu events, %.1f MB raw (%.0f bytes/event), %.1f MB gzip; generated "
              "and uploaded in %.1f s\n",
              f.files, static_cast<unsigned long long>(n), raw_bytes / 1e6, double(raw_bytes) / n, gz_bytes / 1e6,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - gen_start).count());

  // ---- the importer
  auto dir = std::filesystem::temp_directory_path() / ("sluice-import-bench-" + RandomHex(64));
  store::StoreOptions so;
  so.sync_writes = f.sync;
  // As `sluice serve` runs Cloud Import: two memtables reserved at open, freed heap memory kept.
  // (--lazy-memory: as `serve --no-reserve-memtables` and glibc's defaults, to measure what this saves.)
  so.reserve_memtables = !f.lazy_memory;
  if (!f.lazy_memory) KeepFreedMemory();
  auto store = store::Store::Open(dir, so);
  if (!store.ok()) return std::fprintf(stderr, "%s\n", store.error().ToString().c_str()), 1;
  auto project = (*store)->CreateProject("bench");
  project->external_id = env.external_id;
  (void)(*store)->UpdateProject(*project);
  MetricsRegistry metrics;
  NullEventStore null_store(**store);
  // The operator's allowance for moto's endpoint (as `sluice serve` takes it from the environment): S3 at the
  // connector's s3_endpoint and STS both go to moto.
  if (moto) ::setenv("AWS_ENDPOINT_URL", moto->Endpoint().c_str(), 1);
  cloudimport::ConnectorManager::Options mo;
  mo.store = f.null_store ? static_cast<store::Store*>(&null_store) : store->get();
  mo.metrics = &metrics;
  mo.transport = transport;
  aws::Credentials own;
  own.access_key_id = env.access_key_id;
  own.secret_access_key = env.secret_access_key;
  mo.own_credentials = std::make_shared<aws::StaticCredentialsProvider>(own, "bench user");
  if (memory) {
    mo.source_factory = [memory](const cloudimport::ConnectorSpec&, const store::Project&) {
      return Result<cloudimport::Source>(cloudimport::Source{.role = nullptr, .store = memory});
    };
  }
  auto manager = cloudimport::ConnectorManager::Create(std::move(mo));
  if (!manager.ok()) return std::fprintf(stderr, "%s\n", manager.error().ToString().c_str()), 1;

  cloudimport::ConnectorSpec spec;
  spec.project_id = project->id;
  spec.s3_bucket = env.import_bucket;
  spec.s3_region = env.region;
  spec.s3_role = env.roles.at("import");
  spec.s3_prefix = "bench-";
  spec.s3_endpoint = moto ? moto->Endpoint() : "";
  spec.compression = cloudimport::Compression::kGzip;
  spec.frequency_minutes = 7 * 24 * 60;

  { std::ofstream("/proc/self/clear_refs") << "5"; }  // peak RSS of the import only
  const long rss_before = StatusKb("VmRSS");
  const double cpu0 = CpuSeconds();
  const double background0 = RocksDbBackgroundCpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  cloudimport::ValidationIssue issue;
  auto created = (*manager)->CreateConnector(spec, &issue);
  if (!created.ok()) return std::fprintf(stderr, "create: %s\n", issue.message.c_str()), 1;
  (*manager)->Start();
  cloudimport::RunRecord run;
  for (int i = 0; i < 36000; ++i) {  // bounded: one hour
    auto h = (*manager)->History(project->id, created->spec.id, 1);
    if (h.ok() && !h->empty() && h->front().status != cloudimport::RunStatus::kRunning &&
        h->front().status != cloudimport::RunStatus::kQueued) {
      run = h->front();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = CpuSeconds() - cpu0;
  const double background = RocksDbBackgroundCpuSeconds() - background0;
  const long peak = StatusKb("VmHWM");
  (*manager)->Stop();

  if (run.status != cloudimport::RunStatus::kSuccess || run.num_events_imported != n) {
    std::fprintf(stderr, "import did not succeed: status %s, %llu of %llu events: %s\n",
                 std::string(cloudimport::ToString(run.status)).c_str(),
                 static_cast<unsigned long long>(run.num_events_imported), static_cast<unsigned long long>(n),
                 run.failure_message.c_str());
    return 1;
  }
  std::printf("source: %s; events %s\n", f.in_memory ? "in-memory bucket" : "moto (S3 over loopback HTTP)",
              f.null_store ? "validated, then dropped (--null-store)"
                           : (f.sync ? "stored (WAL synced)" : "stored (WAL not synced)"));
  std::printf("imported %llu events in %.2f s: %.0f events/s wall\n", static_cast<unsigned long long>(n), wall,
              n / wall);
  std::printf("importer CPU: %.2f s = %.2f CPU s per million events = %.0f events/s per core (target >= 250000)\n",
              cpu, cpu / (n / 1e6), n / cpu);
  std::printf("of which RocksDB's background threads (flushes, compactions): %.2f s; all other threads: %.2f s "
              "= %.2f CPU s per million events\n",
              background, cpu - background, (cpu - background) / (n / 1e6));
  std::printf("peak RSS during the import: %ld MB (before: %ld MB; target <= 256 MB)\n", peak / 1024,
              rss_before / 1024);
  manager->reset();
  (void)(*store)->Close();
  if (!f.keep) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--events") f.events = std::stoull(next());
    else if (a == "--files") f.files = std::stoi(next());
    else if (a == "--in-memory") f.in_memory = true;
    else if (a == "--no-sync") f.sync = false;
    else if (a == "--null-store") f.null_store = true;
    else if (a == "--lazy-memory") f.lazy_memory = true;
    else if (a == "--keep") f.keep = true;
    else {
      std::fprintf(stderr,
                   "usage: import_bench [--events N] [--files N] [--in-memory] [--null-store] [--lazy-memory] [--no-sync] [--keep]\n");
      return 2;
    }
  }
  if (f.files < 1 || f.events < static_cast<uint64_t>(f.files)) return std::fprintf(stderr, "bad sizes\n"), 2;
  return Run(f);
}
