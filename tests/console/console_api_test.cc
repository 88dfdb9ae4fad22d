// The console's HTTP surface through the real Service and server: the / redirect, embedded assets with their
// security and caching headers, and /ui/api/projects (authentication, scope, counts, no secrets).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "api/service.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "console/console.h"
#include "http/server.h"
#include "http/transport.h"
#include "store/store.h"
#include "support/api_harness.h"

namespace sluice {
namespace {

namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;

constexpr char kAdminToken[] = "console-admin-token-0123456789";
// 2026-03-10T12:30:00Z: the console's "today" and "last hour" are computed from the service clock.
constexpr int64_t kNowSeconds = 1773145800;

using testing::Reply;

class ConsoleApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(api_.OpenStore(store::StoreOptions{.clock = &clock_}).ok());
    auto served = api_.Serve(api::ServiceOptions{.admin_token = Secret(kAdminToken), .clock = &clock_});
    ASSERT_TRUE(served.ok()) << served.error().ToString();
  }


  Reply Send(const std::string& method, const std::string& path, std::string body = {},
             testing::Headers headers = {}) {
    return api_.Send(method, path, std::move(body), std::move(headers));
  }

  static std::string Bearer() { return std::string("Bearer ") + kAdminToken; }
  static std::string Basic(const std::string& secret) { return "Basic " + Base64Encode(secret + ":"); }

  json::object CreateProject(const std::string& name) {
    auto r =
        Send("POST", "/api/app/projects", R"({"name":")" + name + R"("})", {{"Authorization", Bearer()}});
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body).as_object();
  }

  /// Imports one event at `time` (seconds) into the project of `secret`.
  void Import(const std::string& secret, int64_t time, const std::string& insert_id) {
    std::string body = R"([{"event":"signup","properties":{"time":)" + std::to_string(time) +
                       R"(,"distinct_id":"u1","$insert_id":")" + insert_id + R"("}}])";
    auto r = Send("POST", "/import?strict=1", body,
                  {{"Authorization", Basic(secret)}, {"Content-Type", "application/json"}});
    ASSERT_EQ(r.status, 200) << r.body;
  }

  static void ExpectSecurityHeaders(const Reply& r) {
    EXPECT_EQ(r.Header("Content-Security-Policy"), console::kContentSecurityPolicy);
    EXPECT_NE(r.Header("Content-Security-Policy").find("frame-ancestors 'none'"), std::string::npos);
    EXPECT_EQ(r.Header("Content-Security-Policy").find("unsafe-inline"), std::string::npos);
    EXPECT_EQ(r.Header("X-Content-Type-Options"), "nosniff");
  }

  FakeClock clock_{TimePoint(std::chrono::seconds(kNowSeconds))};
  testing::ApiHarness api_;
};

TEST_F(ConsoleApiTest, RootRedirectsToTheConsole) {
  auto r = Send("GET", "/");
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.Header("Location"), "/ui/");
}

TEST_F(ConsoleApiTest, ServesEmbeddedAssetsWithTypesAndSecurityHeaders) {
  for (const std::string path : {"/ui", "/ui/", "/ui/index.html"}) {
    auto page = Send("GET", path);
    ASSERT_EQ(page.status, 200) << path;
    EXPECT_EQ(page.Header("Content-Type"), "text/html; charset=utf-8") << path;
    EXPECT_NE(page.body.find("<script src=\"/ui/console.js\""), std::string::npos);
    // No inline script or style, and nothing from another origin.
    EXPECT_EQ(page.body.find("<script>"), std::string::npos);
    EXPECT_EQ(page.body.find("<style"), std::string::npos);
    EXPECT_EQ(page.body.find("style="), std::string::npos);
    EXPECT_EQ(page.body.find("http://"), std::string::npos);
    EXPECT_EQ(page.body.find("https://"), std::string::npos);
    ExpectSecurityHeaders(page);
  }
  auto js = Send("GET", "/ui/console.js");
  ASSERT_EQ(js.status, 200);
  EXPECT_EQ(js.Header("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_NE(js.body.find("sessionStorage"), std::string::npos);
  ExpectSecurityHeaders(js);
  auto css = Send("GET", "/ui/console.css");
  ASSERT_EQ(css.status, 200);
  EXPECT_EQ(css.Header("Content-Type"), "text/css; charset=utf-8");
  auto icon = Send("GET", "/ui/favicon.svg");
  ASSERT_EQ(icon.status, 200);
  EXPECT_EQ(icon.Header("Content-Type"), "image/svg+xml");

  auto missing = Send("GET", "/ui/nothing.js");
  EXPECT_EQ(missing.status, 404);
  ExpectSecurityHeaders(missing);
}

TEST_F(ConsoleApiTest, EtagRevalidationAnswersNotModified) {
  auto first = Send("GET", "/ui/console.js");
  ASSERT_EQ(first.status, 200);
  const std::string etag = first.Header("ETag");
  ASSERT_EQ(etag.size(), 34u) << etag;  // "<32 hex>"
  EXPECT_EQ(etag.front(), '"');
  EXPECT_EQ(first.Header("Cache-Control"), "no-cache");
  auto again = Send("GET", "/ui/console.js", {}, {{"If-None-Match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(again.Header("ETag"), etag);
  auto listed = Send("GET", "/ui/console.js", {}, {{"If-None-Match", "\"other\", W/" + etag}});
  EXPECT_EQ(listed.status, 304);
  auto stale = Send("GET", "/ui/console.js", {}, {{"If-None-Match", "\"0123\""}});
  EXPECT_EQ(stale.status, 200);
  EXPECT_EQ(stale.body, first.body);
  // Each file has its own tag.
  EXPECT_NE(Send("GET", "/ui/console.css").Header("ETag"), etag);
}

TEST_F(ConsoleApiTest, ProjectsNeedCredentials) {
  CreateProject("web");
  auto none = Send("GET", "/ui/api/projects");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.body.find("admin token"), std::string::npos);
  ExpectSecurityHeaders(none);
  EXPECT_EQ(Send("GET", "/ui/api/projects", {}, {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(Send("GET", "/ui/api/projects", {}, {{"Authorization", Basic("not-a-secret")}}).status, 401);
  // The admin token as Basic is not a project secret.
  EXPECT_EQ(Send("GET", "/ui/api/projects", {}, {{"Authorization", Basic(kAdminToken)}}).status, 401);
}

TEST_F(ConsoleApiTest, AdminSeesEveryProjectWithTodaysCounts) {
  auto web = CreateProject("web");
  auto ios = CreateProject("ios");
  const std::string web_secret(web.at("api_secret").as_string());
  Import(web_secret, kNowSeconds - 20 * 60, "a");         // 12:10 today, this hour
  Import(web_secret, kNowSeconds - 85 * 60, "b");         // 11:05 today
  Import(web_secret, kNowSeconds - 13 * 3600 - 60, "c");  // yesterday 23:29, within 24 h

  auto r = Send("GET", "/ui/api/projects", {}, {{"Authorization", Bearer()}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("Cache-Control"), "no-store");
  ExpectSecurityHeaders(r);
  auto out = json::parse(r.body).as_object();
  EXPECT_EQ(out.at("viewer").as_string(), "admin");
  EXPECT_EQ(out.at("day").as_string(), "2026-03-10");
  EXPECT_EQ(out.at("now_ms").as_int64(), kNowSeconds * 1000);
  auto projects = out.at("projects").as_array();
  ASSERT_EQ(projects.size(), 2u);
  const auto& w = projects[0].as_object();
  EXPECT_EQ(w.at("name").as_string(), "web");
  EXPECT_EQ(w.at("events_today").as_int64(), 2);
  EXPECT_EQ(w.at("events_last_hour").as_int64(), 1);
  EXPECT_GT(w.at("bytes_today").as_int64(), 0);
  const auto& hours = w.at("events_last_24h").as_array();
  ASSERT_EQ(hours.size(), 24u);
  EXPECT_EQ(hours[23].as_int64(), 1);  // 12:00 hour
  EXPECT_EQ(hours[22].as_int64(), 1);  // 11:00 hour
  EXPECT_EQ(hours[10].as_int64(), 1);  // 23:00 yesterday
  const auto& i = projects[1].as_object();
  EXPECT_EQ(i.at("name").as_string(), "ios");
  EXPECT_EQ(i.at("events_today").as_int64(), 0);

  // Nothing secret comes back: no API secret, no token, no external ID.
  for (const auto* p : {&web, &ios}) {
    EXPECT_EQ(r.body.find(std::string(p->at("api_secret").as_string())), std::string::npos);
    EXPECT_EQ(r.body.find(std::string(p->at("token").as_string())), std::string::npos);
  }
  EXPECT_EQ(r.body.find("api_secret"), std::string::npos);
  EXPECT_EQ(r.body.find("external_id"), std::string::npos);
}

TEST_F(ConsoleApiTest, ASecretSeesOnlyItsOwnProject) {
  auto web = CreateProject("web");
  auto ios = CreateProject("ios");
  const std::string ios_secret(ios.at("api_secret").as_string());
  Import(ios_secret, kNowSeconds - 60, "x");
  auto r = Send("GET", "/ui/api/projects", {}, {{"Authorization", Basic(ios_secret)}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto out = json::parse(r.body).as_object();
  EXPECT_EQ(out.at("viewer").as_string(), "project");
  auto projects = out.at("projects").as_array();
  ASSERT_EQ(projects.size(), 1u);
  EXPECT_EQ(projects[0].at("id").as_int64(), ios.at("id").as_int64());
  EXPECT_EQ(projects[0].at("events_today").as_int64(), 1);
  EXPECT_EQ(r.body.find("\"web\""), std::string::npos);
  EXPECT_EQ(r.body.find(ios_secret), std::string::npos);
}

}  // namespace
}  // namespace sluice
