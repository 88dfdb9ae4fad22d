// /api/2.0/export with a `where` segmentation expression, end to end: a real Store in a temp dir, the Service,
// the HTTP server on a free loopback port, and real HTTP requests through the libcurl transport. The helpers are
// copied from api_test.cc on purpose (that file belongs to the API suite).
#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>

#include "api/service.h"
#include "common/crypto.h"
#include "http/server.h"
#include "http/transport.h"
#include "store/store.h"
#include "support/api_harness.h"

namespace sluice {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr char kAdminToken[] = "test-admin-token-0123456789";

using testing::Reply;

/// Percent-encodes everything but RFC 3986 unreserved characters, for query values.
std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

class ExportWhereTest : public ::testing::Test {
 protected:
  void SetUp() override {
    event_time_ = ComputeEventTime();
    ASSERT_TRUE(api_.OpenStore().ok());
    auto served = api_.Serve(api::ServiceOptions{.admin_token = Secret(kAdminToken)});
    ASSERT_TRUE(served.ok()) << served.error().ToString();
    secret_ = api_.CreateProject("web", kAdminToken).secret;
    ASSERT_FALSE(secret_.empty());
  }


  std::string SecretAuth() const { return "Basic " + Base64Encode(secret_ + ":"); }

  Reply Send(const std::string& method, const std::string& path, std::string body = {},
             testing::Headers headers = {}) {
    return api_.Send(method, path, std::move(body), std::move(headers));
  }

  void Import(const std::string& body) {
    auto r = Send("POST", "/import", body, {{"Authorization", SecretAuth()}, {"Content-Type", "application/json"}});
    ASSERT_EQ(r.status, 200) << r.body;
  }

  /// GET /api/2.0/export for today's UTC date with `where` (URL-encoded here) and extra query parameters.
  Reply ExportWhere(std::string_view where, const std::string& extra_query = "") {
    return Send("GET", "/api/2.0/export?from_date=" + Today() + "&to_date=" + Today() + "&where=" + UrlEncode(where) +
                           extra_query,
                {}, {{"Authorization", SecretAuth()}});
  }

  /// The $insert_ids of the exported events, which must all be well-formed lines.
  std::set<std::string> ExportedIds(std::string_view where, const std::string& extra_query = "") {
    auto r = ExportWhere(where, extra_query);
    EXPECT_EQ(r.status, 200) << where << ": " << r.body;
    std::set<std::string> ids;
    size_t pos = 0;
    while (pos < r.body.size()) {
      size_t nl = r.body.find('\n', pos);
      if (nl == std::string::npos) nl = r.body.size();
      if (nl > pos) {
        auto line = json::parse(std::string_view(r.body).substr(pos, nl - pos)).as_object();
        ids.insert(json::value_to<std::string>(line.at("properties").at("$insert_id")));
      }
      pos = nl + 1;
    }
    return ids;
  }

  /// The UTC day of EventTime(), as the export API wants it.
  std::string Today() const {
    std::chrono::sys_days days{std::chrono::days(event_time_ / 86400)};
    std::chrono::year_month_day ymd{days};
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%04d-%02u-%02u", int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()));
    return buf;
  }
  // A time within the current UTC day and not in the future, fixed once per test.
  static int64_t ComputeEventTime() {
    const int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return std::max(now - 60, now - now % 86400);
  }

  std::string Event(const std::string& name, const std::string& insert_id, const std::string& extra = "") const {
    return R"({"event":")" + name + R"(","properties":{"time":)" + std::to_string(event_time_) +
           R"(,"distinct_id":"u1","$insert_id":")" + insert_id + "\"" + extra + "}}";
  }

  /// Six events with a spread of property types.
  void ImportFixture() {
    Import("[" + Event("Signed up", "e1", R"(,"$os":"Linux","plan":"pro","count":12,"tags":["a","b"])") + "," +
           Event("Signed up", "e2", R"(,"$os":"Mac OS X","plan":"free","count":3)") + "," +
           Event("Paid", "e3", R"(,"$os":"Linux","count":20,"$browser":"Mozilla Chrome/120")") + "," +
           Event("Paid", "e4", R"(,"$os":"Windows","plan":"pro","price":"9.99","city":"M\u00fcnchen")") + "," +
           Event("Opened", "e5", R"(,"$device_id":"d1","$user_id":"u5","count":1.5e1)") + "," +
           Event("Opened", "e6", R"(,"nested":{"k":[1,2]},"n":null)") + "]");
  }

  testing::ApiHarness api_;
  int64_t event_time_ = 0;
  std::string secret_;
};

using Ids = std::set<std::string>;

TEST_F(ExportWhereTest, WhereSelectsTheMatchingEvents) {
  ImportFixture();
  EXPECT_EQ(ExportedIds(R"(properties["$os"] == "Linux" and defined(properties["plan"]))"), Ids{"e1"});
  EXPECT_EQ(ExportedIds(R"(properties["$os"] == "Linux")"), (Ids{"e1", "e3"}));
  EXPECT_EQ(ExportedIds(R"(properties["count"] >= 10 or properties["plan"] in ["free"])"),
            (Ids{"e1", "e2", "e3", "e5"}));
  EXPECT_EQ(ExportedIds(R"(not (properties["count"] < 10))"), (Ids{"e1", "e3", "e4", "e5", "e6"}));
  EXPECT_EQ(ExportedIds(R"("Chrome" in properties["$browser"])"), Ids{"e3"});
  EXPECT_EQ(ExportedIds(R"("a" in properties["tags"])"), Ids{"e1"});
  EXPECT_EQ(ExportedIds(R"(number(properties["price"]) >= 9.99 and properties["price"] != 9.99)"), Ids{"e4"});
  EXPECT_EQ(ExportedIds(R"(properties["city"] == "München")"), Ids{"e4"});
  EXPECT_EQ(ExportedIds(R"(properties["count"] == 15)"), Ids{"e5"});
  EXPECT_EQ(ExportedIds(R"(properties["n"] == null and "k" in properties["nested"])"), Ids{"e6"});
  EXPECT_EQ(ExportedIds(R"(properties["plan"] != "pro")"), (Ids{"e2", "e3", "e5", "e6"}));
  EXPECT_EQ(ExportedIds(R"(properties["missing"] == "x")"), Ids{});
}

TEST_F(ExportWhereTest, WhereSeesThePromotedFields) {
  ImportFixture();
  EXPECT_EQ(ExportedIds(R"(properties["$device_id"] == "d1" and properties["$user_id"] == "u5")"), Ids{"e5"});
  EXPECT_EQ(ExportedIds(R"(not defined(properties["$user_id"]))"), (Ids{"e1", "e2", "e3", "e4", "e6"}));
  EXPECT_EQ(ExportedIds(R"(properties["$insert_id"] in ["e2", "e6"])"), (Ids{"e2", "e6"}));
  EXPECT_EQ(ExportedIds(R"(properties["distinct_id"] == "u1")").size(), 6u);
  EXPECT_EQ(ExportedIds("properties[\"time\"] == " + std::to_string(event_time_)).size(), 6u);
  EXPECT_EQ(ExportedIds(R"(properties["time"] < 1000000000)"), Ids{});
}

TEST_F(ExportWhereTest, WhereCombinesWithEventAndLimit) {
  ImportFixture();
  EXPECT_EQ(ExportedIds(R"(properties["$os"] == "Linux")", "&event=" + UrlEncode(R"(["Paid"])")), Ids{"e3"});
  EXPECT_EQ(ExportedIds(R"(defined(properties["count"]))", "&event=" + UrlEncode(R"(["Signed up","Opened"])")),
            (Ids{"e1", "e2", "e5"}));
  // The limit counts exported (matching) events.
  auto limited = ExportedIds(R"(defined(properties["$os"]))", "&limit=3");
  EXPECT_EQ(limited.size(), 3u);
  for (const auto& id : limited) EXPECT_TRUE(Ids({"e1", "e2", "e3", "e4"}).contains(id)) << id;
  // An empty where is no filter.
  EXPECT_EQ(ExportedIds("").size(), 6u);
}

TEST_F(ExportWhereTest, MalformedWhereIs400WithThePosition) {
  ImportFixture();
  auto r = ExportWhere(R"(properties["plan")");
  EXPECT_EQ(r.status, 400);
  auto body = r.Json().as_object();
  EXPECT_EQ(body.at("status").as_string(), "error");
  EXPECT_EQ(body.at("error").as_string(),
            "where: expected ']' after the property name, found the end of the expression at position 17 (at the end "
            "of the expression)");

  r = ExportWhere(R"(properties["count"] == "12" and properties["plan"] = "pro")");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json().at("error").as_string(),
            R"(where: '=' is not an operator; compare with '==' at position 51 (near "= \"pro\""))");

  r = ExportWhere(R"(1 == "1")");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("never true"), std::string::npos) << r.body;

  r = ExportWhere(std::string(100, '('));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("nests deeper than 64"), std::string::npos) << r.body;

  // Bytes that are not UTF-8 come back escaped, so the error body stays valid JSON text.
  r = ExportWhere("properties[\"a\"] == \xff");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json().at("error").as_string(), R"(where: unexpected byte at position 19 (near "\xFF"))");
}

}  // namespace
}  // namespace sluice
