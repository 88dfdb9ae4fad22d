// ParseEvents throughput on realistic /import batches: 2000 events of ~800 bytes, ~30 properties each including
// one nested object and one array (what the Mixpanel JS/mobile SDKs send). The target (SPEC §7, issue brief) is a
// 2000-event batch in <= 4 ms on one core, i.e. >= 500k events/s for parsing alone, so that the whole server can
// accept >= 150k events/s per core.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <random>
#include <string>

#include "ingest/ingest.h"

namespace sluice::ingest {
namespace {

constexpr int64_t kNowS = 1'714'564'800;

std::string MakeEvent(std::mt19937_64& rng, size_t i, bool ndjson_line) {
  auto hex = [&](size_t n) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s;
    for (size_t k = 0; k < n; ++k) s.push_back(kHex[rng() % 16]);
    return s;
  };
  char buf[2048];
  const int n = std::snprintf(
      buf, sizeof(buf),
      R"({"event":"%s","properties":{"time":%lld%03d,"distinct_id":"user-%s","$insert_id":"%s-%s",)"
      R"("$device_id":"%s","$user_id":"user-%s","token":"f1c3a0b2d4e5f6a7b8c9d0e1f2a3b4c5",)"
      R"("$browser":"Chrome","$browser_version":124.0,"$os":"Mac OS X","$device":"Mac","$screen_height":1117,)"
      R"("$screen_width":1728,"$current_url":"https://app.example.com/p/%s/billing",)"
      R"("$referring_domain":"app.example.com",)"
      R"("mp_lib":"web","$lib_version":"2.49.0","$city":"Berlin","$region":"Land Berlin","mp_country_code":"DE",)"
      R"("plan":"enterprise","seats":%d,"mrr":%d.%02d,"is_trial":false,"experiment_group":"B",)"
      R"("utm_campaign":"spring_launch_2024","page_title":"Billing \u2014 Settings",)"
      R"("cart":{"items":%d,"currency":"EUR","total":129.90,"coupon":null},)"
      R"("tags":["onboarding","billing","annual"],"session_id":"%s","duration_ms":%d}})",
      (i % 7 == 0) ? "Page Viewed" : (i % 7 == 1) ? "Signed Up" : "Button Clicked",
      static_cast<long long>(kNowS - 86400 + static_cast<int64_t>(i)), static_cast<int>(rng() % 1000),
      hex(12).c_str(), hex(8).c_str(), hex(16).c_str(), hex(24).c_str(), hex(12).c_str(), hex(10).c_str(),
      static_cast<int>(rng() % 500), static_cast<int>(rng() % 10000), static_cast<int>(rng() % 100),
      static_cast<int>(rng() % 9 + 1), hex(24).c_str(), static_cast<int>(rng() % 100000));
  (void)ndjson_line;
  return std::string(buf, static_cast<size_t>(n));
}

std::string MakeBatch(PayloadFormat format, size_t events, size_t* bytes_per_event) {
  std::mt19937_64 rng(42);
  std::string out = format == PayloadFormat::kJson ? "[" : "";
  size_t total = 0;
  for (size_t i = 0; i < events; ++i) {
    std::string e = MakeEvent(rng, i, format == PayloadFormat::kNdjson);
    total += e.size();
    if (format == PayloadFormat::kJson) {
      if (i) out.push_back(',');
      out += e;
    } else {
      out += e;
      out.push_back('\n');
    }
  }
  if (format == PayloadFormat::kJson) out.push_back(']');
  *bytes_per_event = total / events;
  return out;
}

void Run(benchmark::State& state, Endpoint endpoint, PayloadFormat format) {
  size_t bytes_per_event = 0;
  const std::string batch = MakeBatch(format, kMaxEventsPerBatch, &bytes_per_event);
  const ParseOptions options{.endpoint = endpoint, .format = format, .now_us = kNowS * 1'000'000};
  {
    auto check = ParseEvents(batch, options);
    if (!check.ok() || check->events.size() != kMaxEventsPerBatch) {
      state.SkipWithError(check.ok() ? check->errors.front().message.c_str() : check.error().message.c_str());
      return;
    }
  }
  for (auto _ : state) {
    auto parsed = ParseEvents(batch, options);
    benchmark::DoNotOptimize(parsed);
  }
  state.counters["events/s"] = benchmark::Counter(static_cast<double>(state.iterations() * kMaxEventsPerBatch),
                                                  benchmark::Counter::kIsRate);
  state.counters["bytes/event"] = static_cast<double>(bytes_per_event);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch.size()));
}

void BM_ImportJsonBatch(benchmark::State& state) { Run(state, Endpoint::kImport, PayloadFormat::kJson); }
void BM_ImportNdjsonBatch(benchmark::State& state) { Run(state, Endpoint::kImport, PayloadFormat::kNdjson); }
void BM_TrackJsonBatch(benchmark::State& state) { Run(state, Endpoint::kTrack, PayloadFormat::kJson); }

BENCHMARK(BM_ImportJsonBatch)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ImportNdjsonBatch)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TrackJsonBatch)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice::ingest

BENCHMARK_MAIN();
