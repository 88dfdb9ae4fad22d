// The real binary (build/sluice) with real clients: Mixpanel's official Node SDK importing events without
// $insert_id (import() over GET, import_batch() over a form POST, each sent twice), profile numbers through
// `sluice profiles list`, and a 100k-item $union answered quickly while /healthz stays responsive.
#include <boost/json.hpp>

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "http/transport.h"
#include "server_process.h"
#include "support/test_paths.h"

namespace sluice::testing {
namespace {

namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;

/// Runs a shell command, returning stdout and the exit code.
std::pair<std::string, int> Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {"", -1};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {out, WEXITSTATUS(status)};
}

std::string Day(int64_t unix_seconds) {
  std::chrono::sys_days days{std::chrono::days(unix_seconds / 86400)};
  std::chrono::year_month_day ymd{days};
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02u", int(ymd.year()), unsigned(ymd.month()),
                unsigned(ymd.day()));
  return buf;
}

class IngestFidelityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sluice-fidelity-" + RandomHex(64));
    server_ = std::make_unique<ServerProcess>(dir_);
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    auto [created, rc] = Shell(ServerProcess::Binary() + " project create --name shop --data-dir " +
                               dir_.string() + " 2>/dev/null");
    ASSERT_EQ(rc, 0) << created;
    auto project = json::parse(created).as_object();
    project_id_ = project.at("id").as_int64();
    token_ = json::value_to<std::string>(project.at("token"));
    secret_ = json::value_to<std::string>(project.at("api_secret"));
  }
  void TearDown() override {
    if (server_) server_->Terminate();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  std::unique_ptr<ServerProcess> server_;
  int64_t project_id_ = 0;
  std::string token_, secret_;
};

TEST_F(IngestFidelityTest, OfficialNodeSdkImportWithoutInsertIdsIsStoredOnce) {
  const std::string url = server_->url();  // http://127.0.0.1:PORT
  const std::string port = url.substr(url.rfind(':') + 1);
  const int64_t t =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count() -
      30;
  // No proxy for a loopback server (the SDK honours HTTPS_PROXY/HTTP_PROXY).
  const std::string node_dir = std::string(SourceDir()) + "/tests/node";
  auto [out, rc] =
      Shell("cd " + node_dir + " && env -u HTTPS_PROXY -u HTTP_PROXY -u https_proxy -u http_proxy " +
            "node legacy_import.js 127.0.0.1 " + port + " " + secret_ + " " + std::to_string(t));
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "{\"ok\":true}\n");

  // Exported once each: 1 import() event and 3 import_batch() events, although every call was made twice.
  auto [events, rc2] =
      Shell(ServerProcess::Binary() + " events export --project " + std::to_string(project_id_) + " --from " +
            Day(t) + " --to " + Day(t) + " --data-dir " + dir_.string() + " 2>/dev/null");
  ASSERT_EQ(rc2, 0);
  std::vector<json::object> lines;
  size_t pos = 0;
  while (pos < events.size()) {
    size_t nl = events.find('\n', pos);
    if (nl == std::string::npos) nl = events.size();
    if (nl > pos) lines.push_back(json::parse(events.substr(pos, nl - pos)).as_object());
    pos = nl + 1;
  }
  ASSERT_EQ(lines.size(), 4u) << events;
  int single = 0, batch = 0;
  for (const auto& l : lines) {
    const auto& p = l.at("properties").as_object();
    EXPECT_EQ(p.at("$insert_id").as_string().size(), 32u);
    if (l.at("event").as_string() == "SDK Single") {
      ++single;
      EXPECT_EQ(p.at("plan").as_string(), "pro");
      EXPECT_EQ(p.at("mp_lib").as_string(), "node");
    } else {
      ++batch;
      EXPECT_EQ(p.at("label").as_string(), "a > b ~ c 日本語 ✓");
    }
  }
  EXPECT_EQ(single, 1);
  EXPECT_EQ(batch, 3);
}

TEST_F(IngestFidelityTest, ProfilesListPrintsNumbersAsTheyArrived) {
  const std::string upd = R"({"$token":")" + token_ +
                          R"(","$distinct_id":"c1","$ignore_time":true,"$set":{"price":19.90,"r":1.5,)"
                          R"("big":123456789012345678901234567890}})";
  ASSERT_EQ(server_->Send("POST", "/engage", upd, {{"Content-Type", "application/json"}}).body, "1");
  auto [profiles, rc] = Shell(ServerProcess::Binary() + " profiles list --project " +
                              std::to_string(project_id_) + " --data-dir " + dir_.string() + " 2>/dev/null");
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(profiles, R"({"$distinct_id":"c1","$properties":{"price":19.90,"r":1.5,)"
                      R"("big":123456789012345678901234567890}})"
                      "\n");
}

TEST_F(IngestFidelityTest, HugeUnionIsRefusedQuicklyWhileHealthStaysResponsive) {
  std::string items;
  for (int i = 0; i < 100'000; ++i) items += (i ? ",\"item-" : "\"item-") + std::to_string(i) + "\"";
  const std::string body =
      R"([{"$token":")" + token_ + R"(","$distinct_id":"u1","$union":{"tags":[)" + items + "]}}]";
  ASSERT_GT(body.size(), 1'000'000u);

  // Four clients send the 1 MB $union at once; /healthz is timed alongside.
  std::vector<std::future<std::pair<ServerProcess::Reply, double>>> senders;
  for (int i = 0; i < 4; ++i) {
    senders.push_back(std::async(std::launch::async, [&] {
      // A transport per client thread.
      auto transport = http::MakeCurlTransport();
      http::OutboundRequest req{.method = "POST",
                                .url = server_->url() + "/engage?verbose=1",
                                .headers = {{"Content-Type", "application/json"}}};
      req.body = http::RequestBody::FromString(body);
      const auto start = SteadyClock::now();
      auto resp = transport->Send(req, SteadyClock::now() + std::chrono::seconds(60));
      ServerProcess::Reply r;
      if (resp.ok()) r = {resp->status, resp->body};
      return std::pair{r, std::chrono::duration<double>(SteadyClock::now() - start).count()};
    }));
  }
  double worst_health = 0;
  for (int i = 0; i < 10; ++i) {
    const auto start = SteadyClock::now();
    auto h = server_->Send("GET", "/healthz", {}, {}, std::chrono::seconds(10));
    worst_health = std::max(worst_health, std::chrono::duration<double>(SteadyClock::now() - start).count());
    EXPECT_EQ(h.status, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& f : senders) {
    auto [r, seconds] = f.get();
    ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
    auto v = json::parse(r.body);
    EXPECT_EQ(v.at("status").as_int64(), 0);
    const std::string error(v.at("error").as_string());
    EXPECT_NE(error.find("$union.tags"), std::string::npos) << error;
    EXPECT_NE(error.find("100000 items"), std::string::npos) << error;
    // ~0.2 s each here; before the fix, minutes. Wall-clock bounds with room for a loaded CI machine.
    EXPECT_LT(seconds, 10.0);
  }
  EXPECT_LT(worst_health, 2.5);
  // Nothing was stored for u1.
  auto q = server_->Send("GET", "/api/2.0/engage?distinct_id=u1", {},
                         {{"Authorization", "Basic " + Base64Encode(secret_ + ":")}});
  EXPECT_NE(q.body.find("\"total\":0"), std::string::npos) << q.body;
}

}  // namespace
}  // namespace sluice::testing
