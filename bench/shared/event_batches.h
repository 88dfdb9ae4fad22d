// Shared by the benchmarks that send events through the real server (bench/load, bench/pipeline,
// bench/cluster): a realistic ~750-byte SDK-shaped event, and pre-built gzip batches of them for /import, so
// every benchmark measures the server on the same bytes.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/compression.h"

namespace sluice::bench {

/// ~750 bytes, ~30 properties including a nested object and arrays, like a product-analytics SDK event.
inline std::string RealisticEvent(std::mt19937_64& rng, int64_t seq, int64_t time_s) {
  static const char* kEvents[] = {"Page Viewed", "Signed Up", "Added To Cart", "Checkout Started",
                                  "Purchased",   "Search",    "Video Played",  "Share"};
  static const char* kBrowsers[] = {"Chrome", "Safari", "Firefox", "Edge"};
  static const char* kOs[] = {"Windows", "Mac OS X", "Linux", "iOS", "Android"};
  auto r = [&](int n) { return static_cast<int>(rng() % n); };
  std::string user = fmt::format("user-{:08d}", r(2'000'000));
  return fmt::format(
      R"({{"event":"{}","properties":{{"time":{},"distinct_id":"{}","$insert_id":"ins-{:016x}-{:010d}",)"
      R"("$device_id":"dev-{:012x}","$browser":"{}","$browser_version":{}.0,"$os":"{}","$screen_height":{},)"
      R"("$screen_width":{},"$current_url":"https://shop.example.com/products/{}?ref=campaign-{}",)"
      R"("$referrer":"https://www.google.com/","$referring_domain":"www.google.com","$city":"Berlin",)"
      R"("$region":"Berlin","mp_country_code":"DE","mp_lib":"web","$lib_version":"2.55.1",)"
      R"("utm_source":"newsletter","utm_medium":"email","utm_campaign":"winter-sale-{}","plan":"pro",)"
      R"("price":{}.{:02d},"quantity":{},"currency":"EUR","logged_in":{},"experiment_group":"B",)"
      R"("session_length_s":{},"page_load_ms":{},)"
      R"("cart":{{"items":{},"value":{}.50,"coupon":"WINTER{}"}},"categories":["shoes","sale","new-{}"],)"
      R"("feature_flags":["checkout-v2","fast-search"],"ab_bucket":{}}}}})",
      kEvents[r(8)], time_s, user, static_cast<uint64_t>(rng()), seq,
      static_cast<uint64_t>(rng() & 0xffffffffffff), kBrowsers[r(4)], 100 + r(30), kOs[r(5)], 600 + r(900),
      800 + r(1800), r(100000), r(50), r(12), r(500), r(100), 1 + r(5), r(2) ? "true" : "false", r(3600),
      50 + r(3000), 1 + r(9), r(900), r(99), r(20), r(1000));
}

struct GzipBatches {
  std::vector<std::string> bodies;  // each a gzip (level 1) JSON array of up to `batch` events
  int64_t events = 0;
  int64_t raw_bytes = 0;  // uncompressed JSON, all batches
};

/// `events` realistic events in batches of `batch`, event `seq` at `time_of(seq)` (seconds), built on
/// `workers` threads before any clock starts (the load generator must not be the bottleneck). Deterministic
/// for the same arguments.
inline GzipBatches BuildGzipBatches(int64_t events, int batch, const std::function<int64_t(int64_t)>& time_of,
                                    int workers = 2) {
  GzipBatches out;
  out.events = events;
  const int64_t batches = (events + batch - 1) / batch;
  out.bodies.resize(static_cast<size_t>(batches));
  std::vector<int64_t> raw(static_cast<size_t>(workers), 0);
  std::vector<std::thread> gens;
  for (int w = 0; w < workers; ++w) {
    gens.emplace_back([&, w] {
      std::mt19937_64 rng(1000 + w);
      for (int64_t b = w; b < batches; b += workers) {
        std::string json = "[";
        for (int64_t seq = b * batch; seq < std::min(events, (b + 1) * batch); ++seq) {
          if (json.size() > 1) json += ',';
          json += RealisticEvent(rng, seq, time_of(seq));
        }
        json += "]";
        raw[static_cast<size_t>(w)] += static_cast<int64_t>(json.size());
        out.bodies[static_cast<size_t>(b)] = Gzip(json, 1);
      }
    });
  }
  for (auto& g : gens) g.join();
  for (int64_t r : raw) out.raw_bytes += r;
  return out;
}

}  // namespace sluice::bench
