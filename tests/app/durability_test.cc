// "A 2xx answer means the events are durable": SIGKILL the real server in the middle of a bounded ingest load,
// restart it, and prove every acknowledged event is there exactly once.
#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/crypto.h"
#include "server_process.h"

namespace sluice::testing {
namespace {

namespace json = boost::json;

std::string Day(int64_t unix_seconds) {
  std::chrono::sys_days days{std::chrono::days(unix_seconds / 86400)};
  std::chrono::year_month_day ymd{days};
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02u", int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()));
  return buf;
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TEST(DurabilityTest, EveryAcknowledgedEventSurvivesSigkillExactlyOnce) {
  auto dir = std::filesystem::temp_directory_path() / ("sluice-durability-" + RandomHex(64));
  std::string error;
  ServerProcess server(dir);
  ASSERT_TRUE(server.Start(&error)) << error;
  const std::string admin = "Bearer " + server.admin_token();
  auto created = server.Send("POST", "/api/app/projects", R"({"name":"durable"})", {{"Authorization", admin}});
  ASSERT_EQ(created.status, 200) << created.body;
  auto project = json::parse(created.body).as_object();
  const std::string secret = json::value_to<std::string>(project.at("api_secret"));
  const int64_t project_id = project.at("id").as_int64();
  const std::string auth = "Basic " + Base64Encode(secret + ":");

  constexpr int kCycles = 3;
  constexpr int kThreads = 4;
  constexpr int kBatchSize = 500;
  constexpr int kMaxBatchesPerThread = 300;  // bounds the load whatever the machine's speed
  const int64_t event_time = NowSeconds() - 30;

  std::mutex mu;
  std::set<std::string> acked;  // insert ids of acknowledged events
  std::mt19937 rng(12345);
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    if (cycle > 0) {
      ASSERT_TRUE(server.Start(&error)) << error;
    }
    std::atomic<bool> stop{false};
    std::atomic<int> acked_batches{0};
    std::vector<std::thread> loaders;
    for (int t = 0; t < kThreads; ++t) {
      loaders.emplace_back([&, t] {
        for (int b = 0; b < kMaxBatchesPerThread && !stop; ++b) {
          std::vector<std::string> ids;
          std::string body = "[";
          for (int i = 0; i < kBatchSize; ++i) {
            std::string id = "c" + std::to_string(cycle) + "-t" + std::to_string(t) + "-b" + std::to_string(b) + "-" +
                             std::to_string(i);
            // Every tenth batch re-sends the previous batch's first events: duplicates must not double.
            if (b % 10 == 9 && i < 50) id = "c" + std::to_string(cycle) + "-t" + std::to_string(t) + "-b" +
                                            std::to_string(b - 1) + "-" + std::to_string(i);
            body += (i ? "," : "");
            body += R"({"event":"load","properties":{"time":)" + std::to_string(event_time) +
                    R"(,"distinct_id":"u)" + std::to_string(i % 37) + R"(","$insert_id":")" + id +
                    R"(","n":)" + std::to_string(i) + "}}";
            ids.push_back(std::move(id));
          }
          body += "]";
          auto r = server.Send("POST", "/import", body, {{"Authorization", auth}, {"Content-Type", "application/json"}},
                               std::chrono::seconds(20));
          if (r.status != 200) return;  // the server is gone; nothing more is acknowledged
          std::lock_guard lock(mu);
          acked.insert(ids.begin(), ids.end());
          ++acked_batches;
        }
      });
    }
    // Kill at a random moment once some batches were acknowledged (bounded wait).
    std::uniform_int_distribution<int> delay_ms(200, 1200);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (acked_batches < 4 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    server.Kill();
    stop = true;
    for (auto& th : loaders) th.join();
    ASSERT_GT(acked_batches.load(), 0) << "no batch was acknowledged in cycle " << cycle;
  }

  ASSERT_TRUE(server.Start(&error)) << error;
  auto exported = server.Send("GET",
                              "/api/2.0/export?project_id=" + std::to_string(project_id) + "&from_date=" +
                                  Day(event_time - 86400) + "&to_date=" + Day(event_time + 86400),
                              {}, {{"Authorization", admin}}, std::chrono::seconds(120));
  ASSERT_EQ(exported.status, 200) << exported.body.substr(0, 500);
  std::map<std::string, int> seen;
  size_t pos = 0;
  while (pos < exported.body.size()) {
    size_t nl = exported.body.find('\n', pos);
    auto line = json::parse(std::string_view(exported.body).substr(pos, nl - pos));
    seen[json::value_to<std::string>(line.at("properties").at("$insert_id"))]++;
    pos = nl + 1;
  }
  size_t missing = 0;
  for (const auto& id : acked) missing += seen.count(id) ? 0 : 1;
  EXPECT_EQ(missing, 0u) << "acknowledged events lost after SIGKILL";
  for (const auto& [id, n] : seen) ASSERT_EQ(n, 1) << id << " exported " << n << " times";
  EXPECT_GE(seen.size(), acked.size());
  EXPECT_EQ(server.Terminate(), 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::testing
