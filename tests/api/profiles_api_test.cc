// Profiles, group profiles and legacy /import through the HTTP API: a real Store in a temp dir, the Service,
// the HTTP server on a free loopback port, real HTTP requests. Numbers are checked byte for byte in the
// answers and in the people export encoder (issue 10 items 1, 2, 4, 5; issue 9 items 5, 8).
#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "api/service.h"
#include "common/crypto.h"
#include "http/server.h"
#include "http/transport.h"
#include "pipeline/record_encoder.h"
#include "store/store.h"
#include "support/api_harness.h"

namespace sluice {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr char kAdminToken[] = "test-admin-token-0123456789";

using testing::Reply;

class ProfilesApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(api_.OpenStore().ok());
    auto served = api_.Serve(api::ServiceOptions{.admin_token = Secret(kAdminToken)});
    ASSERT_TRUE(served.ok()) << served.error().ToString();
    auto project = api_.CreateProject("web", kAdminToken);
    ASSERT_NE(project.id, 0u);
    project_id_ = project.id;
    token_ = project.token;
    secret_ = project.secret;
  }


  std::string SecretAuth() const { return "Basic " + Base64Encode(secret_ + ":"); }

  Reply Send(const std::string& method, const std::string& path, std::string body = {},
             testing::Headers headers = {}) {
    return api_.Send(method, path, std::move(body), std::move(headers));
  }

  /// One /engage (or /groups) update as SDKs send it: GET ?data=<base64>, verbose.
  Reply Update(const std::string& endpoint, const std::string& record) {
    return Send("GET", endpoint + "?verbose=1&data=" + UrlSafe(Base64Encode(record)));
  }
  std::string UserUpdate(const std::string& id, const std::string& op) const {
    return R"({"$token":")" + token_ + R"(","$distinct_id":")" + id + R"(","$ignore_time":true,)" + op + "}";
  }
  std::string GroupUpdate(const std::string& key, const std::string& id, const std::string& op) const {
    return R"({"$token":")" + token_ + R"(","$group_key":")" + key + R"(","$group_id":")" + id + R"(",)" +
           op + "}";
  }
  static std::string UrlSafe(std::string b64) {
    std::string out;
    for (char c : b64) out += c == '+' ? "%2B" : c == '/' ? "%2F" : c == '=' ? "%3D" : std::string(1, c);
    return out;
  }

  testing::ApiHarness api_;
  uint32_t project_id_ = 0;
  std::string token_, secret_;
};

TEST_F(ProfilesApiTest, ProfileNumbersReadBackAndExportByteExact) {
  EXPECT_EQ(Update("/engage", UserUpdate("p1", R"("$set":{"price":19.90,"ratio":1.5,)"
                                               R"("big":123456789012345678901234567890,"e":2E-3})"))
                .body,
            R"({"status":1,"error":null})");
  EXPECT_EQ(Update("/engage", UserUpdate("p1", R"("$add":{"ratio":1.5,"n":0.1})")).body,
            R"({"status":1,"error":null})");
  EXPECT_EQ(Update("/engage", UserUpdate("p1", R"("$add":{"n":0.2})")).body, R"({"status":1,"error":null})");
  const std::string expected =
      R"({"price":19.90,"ratio":3,"big":123456789012345678901234567890,"e":2E-3,"n":0.30000000000000004})";

  auto q = Send("GET", "/api/2.0/engage?distinct_id=p1", {}, {{"Authorization", SecretAuth()}});
  ASSERT_EQ(q.status, 200) << q.body;
  EXPECT_NE(q.body.find(R"({"$distinct_id":"p1","$properties":)" + expected + "}"), std::string::npos)
      << q.body;
  auto all = Send("GET", "/api/2.0/engage", {}, {{"Authorization", SecretAuth()}});
  EXPECT_NE(all.body.find(expected), std::string::npos) << all.body;

  // The people export writes the stored profile through the record encoder.
  std::string lines;
  ASSERT_TRUE(api_.store()
                  .ScanProfiles(project_id_, /*after=*/{},
                                [&](std::string_view id, std::string_view profile) {
                                  pipeline::AppendPeopleRecord(id, profile, lines);
                                  return true;
                                })
                  .ok());
  EXPECT_EQ(lines, R"({"distinct_id":"p1","properties":)" + expected + "}\n");
}

TEST_F(ProfilesApiTest, OutOfRangeNumbersAreRefusedAndTheProfileIsKept) {
  ASSERT_EQ(Update("/engage", UserUpdate("p1", R"("$set":{"name":"Ada","big":1e308})")).body,
            R"({"status":1,"error":null})");
  auto set = Update("/engage", UserUpdate("p1", R"("$set":{"x":1e400})")).Json();
  EXPECT_EQ(set.at("status").as_int64(), 0);
  EXPECT_NE(std::string(set.at("error").as_string()).find("$set.x"), std::string::npos) << set;
  auto add = Update("/engage", UserUpdate("p1", R"("$add":{"big":1e308})")).Json();
  EXPECT_EQ(add.at("status").as_int64(), 0);
  EXPECT_NE(std::string(add.at("error").as_string()).find("$add.big"), std::string::npos) << add;

  auto q = Send("GET", "/api/2.0/engage?distinct_id=p1", {}, {{"Authorization", SecretAuth()}});
  EXPECT_NE(q.body.find(R"("$properties":{"name":"Ada","big":1e308})"), std::string::npos) << q.body;
  std::string lines;
  ASSERT_TRUE(api_.store()
                  .ScanProfiles(project_id_, /*after=*/{},
                                [&](std::string_view id, std::string_view profile) {
                                  pipeline::AppendPeopleRecord(id, profile, lines);
                                  return true;
                                })
                  .ok());
  EXPECT_EQ(lines, "{\"distinct_id\":\"p1\",\"properties\":{\"name\":\"Ada\",\"big\":1e308}}\n");
  EXPECT_EQ(lines.find("Infinity"), std::string::npos);
}

TEST_F(ProfilesApiTest, OversizeUnionIsRefusedWithAClearError) {
  std::string items;
  for (int i = 0; i < 100'000; ++i) items += (i ? ",\"item-" : "\"item-") + std::to_string(i) + "\"";
  const auto start = Clock::now();
  auto r =
      Send("POST", "/engage?verbose=1", "[" + UserUpdate("p1", R"("$union":{"tags":[)" + items + "]}") + "]",
           {{"Content-Type", "application/json"}});
  // Refused while parsing: ~0.2 s even under ASan; before the fix this took minutes. The bound leaves room for a
  // loaded CI machine.
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(20));
  auto v = r.Json();
  EXPECT_EQ(v.at("status").as_int64(), 0);
  const std::string error(v.at("error").as_string());
  EXPECT_NE(error.find("$union.tags"), std::string::npos) << error;
  EXPECT_NE(error.find("256 KB"), std::string::npos) << error;
}

TEST_F(ProfilesApiTest, GroupProfilesUpdateAndReadBack) {
  EXPECT_EQ(Update("/groups", GroupUpdate("company", "acme", R"("$set":{"name":"Acme","arr":19.90})")).body,
            R"({"status":1,"error":null})");
  EXPECT_EQ(Update("/groups", GroupUpdate("company", "acme", R"("$union":{"tags":["a","b"]})")).body,
            R"({"status":1,"error":null})");
  EXPECT_EQ(Update("/groups", GroupUpdate("company", "acme", R"("$remove":{"tags":"a"})")).body,
            R"({"status":1,"error":null})");
  EXPECT_EQ(
      Update("/groups", GroupUpdate("company", "acme", R"("$set_once":{"name":"X","since":2020})")).body,
      R"({"status":1,"error":null})");
  EXPECT_EQ(Update("/groups", GroupUpdate("company", "gone", R"("$set":{"a":1})")).body,
            R"({"status":1,"error":null})");
  EXPECT_EQ(Update("/groups", GroupUpdate("company", "gone", R"("$delete":"")")).body,
            R"({"status":1,"error":null})");
  EXPECT_EQ(Update("/groups", GroupUpdate("team", "acme", R"("$set":{"t":1})")).body,
            R"({"status":1,"error":null})");
  EXPECT_EQ(Update("/groups", GroupUpdate("company", "acme", R"("$unset":["since"])")).body,
            R"({"status":1,"error":null})");
  // Form body, as the SDKs' batch senders use it; a bad record is reported, the good one applied.
  auto form =
      Send("POST", "/groups?verbose=1",
           "data=" + UrlSafe(Base64Encode("[" + GroupUpdate("company", "beta", R"("$set":{"n":1})") + "," +
                                          GroupUpdate("company", "beta", R"("$add":{"n":1})") + "]")),
           {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(form.Json().at("status").as_int64(), 0);

  auto q = Send("GET", "/api/2.0/engage?data_group_id=company", {}, {{"Authorization", SecretAuth()}});
  ASSERT_EQ(q.status, 200) << q.body;
  auto v = q.Json();
  EXPECT_EQ(v.at("total").as_int64(), 2);
  auto results = v.at("results").as_array();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].at("$distinct_id").as_string(), "acme");
  EXPECT_NE(q.body.find(R"("$properties":{"name":"Acme","arr":19.90,"tags":["b"]})"), std::string::npos)
      << q.body;
  EXPECT_EQ(results[1].at("$distinct_id").as_string(), "beta");
  auto one = Send("GET", "/api/2.0/engage?data_group_id=team&distinct_id=acme", {},
                  {{"Authorization", SecretAuth()}});
  EXPECT_NE(one.body.find(R"("results":[{"$distinct_id":"acme","$properties":{"t":1}}])"), std::string::npos)
      << one.body;
  // Group profiles are not user profiles.
  auto users = Send("GET", "/api/2.0/engage", {}, {{"Authorization", SecretAuth()}}).Json();
  EXPECT_EQ(users.at("total").as_int64(), 0);
  // A wrong token is refused.
  auto bad =
      Update("/groups", R"({"$token":"nope","$group_key":"company","$group_id":"x","$set":{"a":1}})").Json();
  EXPECT_EQ(bad.at("status").as_int64(), 0);
}

TEST_F(ProfilesApiTest, LegacyImportAcceptsGetAndDeduplicatesEventsWithoutInsertId) {
  const int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::string event = R"({"event":"Legacy","properties":{"time":)" + std::to_string(now - 60) +
                            R"(,"distinct_id":"u1","plan":"pro","token":")" + token_ + R"("}})";
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto get = Send("GET", "/import?verbose=1&api_key=" + secret_ + "&data=" + UrlSafe(Base64Encode(event)));
    EXPECT_EQ(get.status, 200);
    EXPECT_EQ(get.body, R"({"status":1,"error":null})");
    auto form =
        Send("POST", "/import", "data=" + UrlSafe(Base64Encode("[" + event + "]")),
             {{"Authorization", SecretAuth()}, {"Content-Type", "application/x-www-form-urlencoded"}});
    EXPECT_EQ(form.body, "1");
  }
  // Strict JSON /import still requires $insert_id.
  auto strict = Send("POST", "/import", "[" + event + "]",
                     {{"Authorization", SecretAuth()}, {"Content-Type", "application/json"}});
  EXPECT_EQ(strict.status, 400);
  EXPECT_NE(strict.body.find("$insert_id"), std::string::npos);
  // GET without data says what is missing; GET without credentials is refused.
  EXPECT_EQ(Send("GET", "/import?verbose=1&api_key=" + secret_).Json().at("status").as_int64(), 0);
  EXPECT_EQ(Send("GET", "/import?data=" + UrlSafe(Base64Encode(event))).status, 401);

  size_t stored = 0;
  auto partitions = api_.store().ListPartitions(project_id_, 0, UINT32_MAX);
  ASSERT_TRUE(partitions.ok());
  for (const auto& p : *partitions) {
    ASSERT_TRUE(api_.store()
                    .ScanPartition(project_id_, p.hour,
                                    [&](const store::EventView&) {
                                      ++stored;
                                      return true;
                                    })
                    .ok());
  }
  EXPECT_EQ(stored, 1u);
}

TEST_F(ProfilesApiTest, AHugeInvalidInsertIdIsNotEchoedWhole) {
  const std::string huge(9'000'000, '!');
  const std::string event =
      R"({"event":"E","properties":{"time":1700000000,"distinct_id":"u1","$insert_id":")" + huge + "\"}}";
  auto r = Send("POST", "/import", "[" + event + "]",
                {{"Authorization", SecretAuth()}, {"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_LT(r.body.size(), 1000u) << r.body.substr(0, 200);
  auto failed = r.Json().at("failed_records").as_array();
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_LE(failed[0].at("$insert_id").as_string().size(), 70u);
  // Query and header values are quoted the same way.
  auto pid = Send("POST", "/import?project_id=" + std::string(2'000, '9'), "[]",
                  {{"Authorization", SecretAuth()}, {"Content-Type", "application/json"}});
  EXPECT_EQ(pid.status, 400) << "a project_id out of range is malformed (strict numbers)";
  EXPECT_LT(pid.body.size(), 300u);
  auto ct = Send("POST", "/import", "[]",
                 {{"Authorization", SecretAuth()}, {"Content-Type", std::string(2'000, 'c')}});
  EXPECT_EQ(ct.status, 400);
  EXPECT_LT(ct.body.size(), 300u);
}

TEST_F(ProfilesApiTest, GroupProfilesAreKeptPerGroupKeyInTheStore) {
  // Written through /groups (not straight into the store): a shared store folds its operation log with the
  // server's own folder when read, so the operations must be real /groups updates.
  auto put = [&](std::string_view key, std::string id, int n) {
    return Update("/groups", GroupUpdate(std::string(key), id, fmt::format(R"("$set":{{"n":{}}})", n))).body ==
           R"({"status":1,"error":null})";
  };
  ASSERT_TRUE(put("team", "a", 1));
  ASSERT_TRUE(put("teams", "a", 2));
  ASSERT_TRUE(put("team", "b", 3));
  std::vector<std::string> seen;
  ASSERT_TRUE(api_.store()
                  .ScanGroupProfiles(project_id_, "team", /*after=*/{},
                                     [&](std::string_view id, std::string_view json) {
                                       seen.push_back(std::string(id) + "=" + std::string(json));
                                       return true;
                                     })
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{R"(a={"n":1})", R"(b={"n":3})"}));
  auto one = api_.store().GetGroupProfile(project_id_, "teams", "a");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(**one, R"({"n":2})");
  auto none = api_.store().GetGroupProfile(project_id_ + 1, "team", "a");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  size_t users = 0;
  ASSERT_TRUE(api_.store()
                  .ScanProfiles(project_id_, /*after=*/{},
                                [&](std::string_view, std::string_view) { return ++users, true; })
                  .ok());
  EXPECT_EQ(users, 0u);
}

// Paging a listing as Mixpanel's clients do: each full page answers a session_id, and the next page with it
// resumes after that page's last id (total as counted on the first page). Together the pages hold every
// profile once, in id order; a page asked with a session_id of another page or listing is still right (read
// from the start); a session_id the server did not answer is a 400.
TEST_F(ProfilesApiTest, ListingsPageWithTheSessionIdOfTheAnswerBefore) {
  for (int i = 0; i < 25; ++i) {
    ASSERT_EQ(
        Update("/engage", UserUpdate(fmt::format("user-{:02}", i), fmt::format(R"("$set":{{"n":{}}})", i)))
            .body,
        R"({"status":1,"error":null})");
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Update("/groups", GroupUpdate("team", fmt::format("t{}", i), R"("$set":{"x":1})")).body,
              R"({"status":1,"error":null})");
  }
  auto page = [&](const std::string& query) {
    auto r = Send("GET", "/api/2.0/engage?page_size=10&" + query, {}, {{"Authorization", SecretAuth()}});
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? json::parse(r.body).as_object() : json::object{};
  };
  std::vector<std::string> ids;
  std::string session;
  for (int p = 0; p < 3; ++p) {
    SCOPED_TRACE(p);
    json::object answer = page(fmt::format("page={}", p) + (session.empty() ? "" : "&session_id=" + session));
    EXPECT_EQ(answer.at("total").to_number<int64_t>(), 25);
    const auto& results = answer.at("results").as_array();
    EXPECT_EQ(results.size(), p < 2 ? 10u : 5u);
    for (const auto& r : results) ids.emplace_back(r.at("$distinct_id").as_string());
    session = std::string(answer.at("session_id").as_string());
    EXPECT_EQ(session.empty(), p == 2) << session;  // a page that is not full ends the listing
    if (p == 0) {
      // The same page 1 without the session_id (every profile read again) is the same page.
      json::object again = page("page=1");
      json::object resumed = page("page=1&session_id=" + session);
      EXPECT_EQ(again.at("results"), resumed.at("results"));
      // A session_id of page 0 given for page 2: read from the start, still page 2.
      EXPECT_EQ(page("page=2&session_id=" + session).at("results").as_array().size(), 5u);
      // ... and for another listing (the group's): its own profiles, from the start.
      EXPECT_EQ(page("data_group_id=team&page=1&session_id=" + session).at("results").as_array().size(), 0u);
      EXPECT_EQ(page("data_group_id=team&page=0&session_id=" + session).at("results").as_array().size(), 3u);
    }
  }
  std::vector<std::string> expected;
  for (int i = 0; i < 25; ++i) expected.push_back(fmt::format("user-{:02}", i));
  EXPECT_EQ(ids, expected);

  for (const std::string& bad :
       std::vector<std::string>{"not-a-session", "eyJ2IjoyfQ", std::string(5000, 'A')}) {
    auto r = Send("GET", "/api/2.0/engage?page=1&session_id=" + bad, {}, {{"Authorization", SecretAuth()}});
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("session_id"), std::string::npos) << r.body;
  }
}

// The next page resumes after the last id of the page its session_id came from (it does not count its way
// there again): with a profile of the first page deleted in between, it still starts right after that page.
TEST_F(ProfilesApiTest, ThePageAfterResumesAfterTheLastIdItWasGiven) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(Update("/engage", UserUpdate(fmt::format("u{}", i), R"("$set":{"n":1})")).body,
              R"({"status":1,"error":null})");
  }
  auto ids = [&](const std::string& query) {
    auto r = Send("GET", "/api/2.0/engage?page_size=3&" + query, {}, {{"Authorization", SecretAuth()}});
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<std::string> out;
    json::object o = json::parse(r.body).as_object();
    for (const auto& p : o.at("results").as_array()) out.emplace_back(p.at("$distinct_id").as_string());
    out.emplace_back(o.at("session_id").as_string());
    return out;
  };
  std::vector<std::string> first = ids("page=0");
  ASSERT_EQ(first.size(), 4u);
  EXPECT_EQ((std::vector<std::string>(first.begin(), first.begin() + 3)),
            (std::vector<std::string>{"u0", "u1", "u2"}));
  ASSERT_EQ(Update("/engage", UserUpdate("u0", R"("$delete":"")")).body, R"({"status":1,"error":null})");
  std::vector<std::string> resumed = ids("page=1&session_id=" + first.back());
  EXPECT_EQ((std::vector<std::string>(resumed.begin(), resumed.end() - 1)),
            (std::vector<std::string>{"u3", "u4", "u5"}));
  std::vector<std::string> counted = ids("page=1");  // without it: the second 3 of what is there now
  EXPECT_EQ((std::vector<std::string>(counted.begin(), counted.end() - 1)),
            (std::vector<std::string>{"u4", "u5"}));
}

// No stored profile has an id or group key over 255 characters, so asking for one is a client error (400),
// answered before the store is asked: ClickHouse refused such a query as too large, which the tenant saw as a
// 503 naming ClickHouse's host and parser error. A forged session_id holding a long id is refused the same
// way.
TEST_F(ProfilesApiTest, OverLongIdsAndGroupKeysAreClientErrors) {
  const auto get = [&](const std::string& query) {
    return Send("POST", "/api/2.0/engage", query,
                {{"Authorization", SecretAuth()}, {"Content-Type", "application/x-www-form-urlencoded"}});
  };
  std::string e_acute_255;
  for (int i = 0; i < 255; ++i) e_acute_255 += "%C3%A9";  // é: 255 characters in 510 bytes
  EXPECT_EQ(get("distinct_id=" + std::string(255, 'x')).status, 200);
  EXPECT_EQ(get("distinct_id=" + e_acute_255).status, 200);
  EXPECT_EQ(get("data_group_id=" + std::string(255, 'k')).status, 200);
  for (const std::string& query :
       {"distinct_id=" + std::string(256, 'x'), "distinct_id=" + e_acute_255 + "x",
        "data_group_id=" + std::string(256, 'k'), "distinct_id=" + std::string(300'000, 'x')}) {
    Reply r = get(query);
    EXPECT_EQ(r.status, 400) << r.body.substr(0, 200);
    EXPECT_NE(r.body.find("characters long; profile ids and group keys have at most 255"), std::string::npos)
        << r.body.substr(0, 300);
  }
  const auto cursor = [](const std::string& after) {
    std::string session = Base64Encode(
        json::serialize(json::object{{"v", 1}, {"page", 0}, {"total", 5}, {"after", after}, {"group", ""}}));
    for (char& c : session) c = c == '+' ? '-' : c == '/' ? '_' : c;
    while (!session.empty() && session.back() == '=') session.pop_back();
    return session;
  };
  EXPECT_EQ(get("page=1&session_id=" + cursor(std::string(255, 'a'))).status, 200);
  Reply r = get("page=1&session_id=" + cursor(std::string(2000, 'a')));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("session_id is not one this server answered"), std::string::npos) << r.body;
}

TEST(PeopleExportEncoder, NonFiniteTokensOfOlderReleasesBecomeNull) {
  std::string line;
  pipeline::AppendPeopleRecord("p1", R"({"a":Infinity,"b":-Infinity,"c":NaN,"s":"Infinity NaN","n":19.90})",
                               line);
  EXPECT_EQ(line,
            R"({"distinct_id":"p1","properties":{"a":null,"b":null,"c":null,"s":"Infinity NaN","n":19.90}})"
            "\n");
  line.clear();
  pipeline::AppendPeopleRecord("p2", R"({"n":19.90,"big":123456789012345678901234567890})", line);
  EXPECT_EQ(line, R"({"distinct_id":"p2","properties":{"n":19.90,"big":123456789012345678901234567890}})"
                  "\n");
}

}  // namespace
}  // namespace sluice
