// Store write/scan benchmark: N events of ~800 stored bytes written durably (sync on) in 2000-event
// WriteEvents calls (SPEC §3: at most 2000 events per /import request) from several threads, as the HTTP
// workers do; then every partition is scanned the way an exporter does.
//
//   bench_store [--events N] [--batch N] [--threads N] [--value-bytes N] [--no-sync] [--dir PATH] [--keep]
//
// Prints events/s, MB/s of stored values, CPU seconds per million events (user+sys of the whole process,
// so flush/compaction threads count) and peak RSS.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"

namespace {

using sluice::Event;
using sluice::store::Store;

struct Args {
  uint64_t events = 2'000'000;
  size_t batch = 2000;
  int threads = 4;
  size_t value_bytes = 800;
  bool sync = true;
  bool keep = false;
  std::string dir;
};

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

// Bytes this process made the kernel write to storage (WAL, flushes, compactions).
long long StorageWriteBytes() {
  FILE* f = std::fopen("/proc/self/io", "r");
  if (f == nullptr) return -1;
  char line[128];
  long long v = -1;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::sscanf(line, "write_bytes: %lld", &v) == 1) break;
  }
  std::fclose(f);
  return v;
}

long CurrentRssMb() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  long pages = 0;
  long resident = 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
  std::fclose(f);
  return resident * sysconf(_SC_PAGESIZE) / (1 << 20);
}

// A plausible analytics event: a few short fields plus random-ish property values, padded to the target size
// with text that compresses about as well as real JSON (~3-4x with LZ4/zstd).
std::vector<Event> MakeTemplate(size_t batch, size_t value_bytes, std::mt19937_64& rng, int64_t hour_start_us) {
  static const char* kWords[] = {"checkout", "android", "premium", "landing", "search", "Chrome", "Safari",
                                 "Germany",  "Berlin",  "button",  "signup",  "v2.31.0", "organic", "mobile"};
  std::vector<Event> out(batch);
  for (auto& e : out) {
    e.name = kWords[rng() % 14];
    e.time_us = hour_start_us + static_cast<int64_t>(rng() % 3'600'000'000ull);
    e.distinct_id = "user-" + std::to_string(rng() % 100'000);
    e.device_id = "dev-" + std::to_string(rng() % 200'000);
    e.insert_id = "00000000-0000-0000-0000-000000000000";
    std::string props = "{\"$os\":\"" + std::string(kWords[rng() % 14]) + "\",\"$browser\":\"" + kWords[rng() % 14] +
                        "\",\"amount\":" + std::to_string(rng() % 100000) + "." + std::to_string(rng() % 100) +
                        ",\"session\":\"" + std::to_string(rng()) + "\",\"path\":\"";
    // Fixed part of the stored value: ~17 header bytes + field lengths/values.
    const size_t fixed = 17 + 6 + e.name.size() + e.distinct_id.size() + e.device_id.size() + e.insert_id.size() + 2;
    while (props.size() + fixed + 40 < value_bytes) {
      props += "/";
      props += kWords[rng() % 14];
      if (rng() % 3 == 0) props += std::to_string(rng() % 1000);
    }
    props += "\",\"n\":" + std::to_string(rng() % 1000) + "}";
    e.properties = std::move(props);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  args.dir = "/tmp/sluice_store_bench_" + std::to_string(::getpid());
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--events") args.events = std::stoull(next());
    else if (a == "--batch") args.batch = std::stoul(next());
    else if (a == "--threads") args.threads = std::stoi(next());
    else if (a == "--value-bytes") args.value_bytes = std::stoul(next());
    else if (a == "--no-sync") args.sync = false;
    else if (a == "--keep") args.keep = true;
    else if (a == "--dir") args.dir = next();
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  std::filesystem::remove_all(args.dir);
  sluice::store::StoreOptions options;
  options.sync_writes = args.sync;
  auto opened = Store::Open(args.dir, options);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.error().ToString().c_str());
    return 1;
  }
  std::unique_ptr<Store> store = std::move(opened).value();

  constexpr int64_t kHourStartUs = 1'700'000'000'000'000 - (1'700'000'000'000'000 % 3'600'000'000);
  const uint64_t batches = args.events / args.batch;
  std::atomic<uint64_t> next_batch{0};
  std::atomic<uint64_t> stored_bytes{0};
  std::atomic<bool> failed{false};
  std::atomic<bool> done{false};
  std::atomic<long> max_rss_sampled{0};

  // Templates are built before timing; each call only rewrites the insert_ids (unique per event).
  std::vector<std::vector<Event>> templates(args.threads);
  for (int t = 0; t < args.threads; ++t) {
    std::mt19937_64 rng(1000 + t);
    templates[t] = MakeTemplate(args.batch, args.value_bytes, rng, kHourStartUs);
  }
  uint64_t template_bytes = 0;
  for (const auto& e : templates[0]) template_bytes += e.properties.size() + e.name.size() + e.distinct_id.size() + e.device_id.size() + e.insert_id.size() + 17 + 6;

  std::thread sampler([&] {
    while (!done.load()) {
      max_rss_sampled.store(std::max(max_rss_sampled.load(), CurrentRssMb()));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });

  const long long io0 = StorageWriteBytes();
  const double cpu0 = CpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < args.threads; ++t) {
    workers.emplace_back([&, t] {
      std::vector<Event>& events = templates[t];
      for (uint64_t b; (b = next_batch.fetch_add(1)) < batches && !failed.load();) {
        for (size_t j = 0; j < events.size(); ++j) {
          char id[48];
          std::snprintf(id, sizeof id, "%016llx-%08llx", static_cast<unsigned long long>(b),
                        static_cast<unsigned long long>(j));
          events[j].insert_id.assign(id);
        }
        auto st = store->WriteEvents(1, events);
        if (!st.ok()) {
          std::fprintf(stderr, "write: %s\n", st.error().ToString().c_str());
          failed.store(true);
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  const double write_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double write_cpu = CpuSeconds() - cpu0;
  if (failed.load()) return 1;
  (void)stored_bytes;

  const uint64_t written = batches * args.batch;
  const double value_mb = static_cast<double>(template_bytes) * static_cast<double>(batches) / 1e6;
  std::printf("write: %llu events x ~%llu B in %llu-event calls, %d threads, sync=%s\n",
              static_cast<unsigned long long>(written),
              static_cast<unsigned long long>(template_bytes / args.batch), static_cast<unsigned long long>(args.batch),
              args.threads, args.sync ? "on" : "off");
  std::printf("write: %.1f s, %.0f events/s, %.1f MB/s of values, %.2f CPU s per million events (%.0f%% of one core)\n",
              write_s, written / write_s, value_mb / write_s, write_cpu / (written / 1e6), 100 * write_cpu / write_s);
  std::printf("write: %.0f MB written to storage during the write phase (WAL + flush + compaction)\n",
              (StorageWriteBytes() - io0) / 1e6);
  std::printf("write: peak RSS %ld MB (sampled max %ld MB)\n", PeakRssMb(), max_rss_sampled.load());

  // Scan every partition, touching every byte of the value the way an encoder would.
  auto parts = store->ListPartitions(1, 0, ~0u);
  if (!parts.ok()) return 1;
  const double cpu1 = CpuSeconds();
  const auto t1 = std::chrono::steady_clock::now();
  uint64_t scanned = 0;
  uint64_t scanned_bytes = 0;
  uint64_t checksum = 0;
  for (const auto& p : *parts) {
    auto st = store->ScanPartition(1, p.hour, [&](const sluice::store::EventView& v) {
      ++scanned;
      scanned_bytes += v.properties.size() + v.name.size() + v.distinct_id.size() + v.insert_id.size();
      checksum += static_cast<unsigned char>(v.properties[v.properties.size() / 2]);
      return true;
    });
    if (!st.ok()) {
      std::fprintf(stderr, "scan: %s\n", st.error().ToString().c_str());
      return 1;
    }
  }
  const double scan_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  const double scan_cpu = CpuSeconds() - cpu1;
  std::printf("scan: %llu events in %zu partitions, %.2f s, %.0f events/s, %.0f MB/s, %.2f CPU s per million (checksum %llu)\n",
              static_cast<unsigned long long>(scanned), parts->size(), scan_s, scanned / scan_s,
              scanned_bytes / 1e6 / scan_s, scan_cpu / (scanned / 1e6), static_cast<unsigned long long>(checksum));
  std::printf("disk: %.1f MB approx (SST + WAL)\n", store->ApproximateSizeBytes() / 1e6);
  const auto t2 = std::chrono::steady_clock::now();
  (void)store->Close();
  std::printf("close: %.2f s; peak RSS %ld MB\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t2).count(),
              PeakRssMb());
  done.store(true);
  sampler.join();
  if (!args.keep) std::filesystem::remove_all(args.dir);
  return 0;
}
