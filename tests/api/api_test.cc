// The HTTP API end to end: a real Store in a temp dir, the Service, the HTTP server on a free loopback port, and
// real HTTP requests through the libcurl transport.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "api/project_registry.h"
#include "api/rate_limiter.h"
#include "api/service.h"
#include "api/service_impl.h"
#include "common/clock.h"
#include "common/compression.h"
#include "common/crypto.h"
#include "http/server.h"
#include "http/transport.h"
#include "store/store.h"
#include "support/api_harness.h"
#include "support/loopback_http.h"

namespace sluice {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr char kAdminToken[] = "test-admin-token-0123456789";

using testing::Reply;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(2'000'000'000ull); }

  void Start(uint64_t rate_limit) {
    event_time_ = ComputeEventTime();
    ASSERT_TRUE(api_.OpenStore().ok());
    auto served = api_.Serve(api::ServiceOptions{
        .admin_token = Secret(kAdminToken), .rate_limit_bytes_per_minute = rate_limit, .geoip = Geo()});
    ASSERT_TRUE(served.ok()) << served.error().ToString();
    auto project = api_.CreateProject("web", kAdminToken);
    ASSERT_NE(project.id, 0u);
    project_id_ = project.id;
    token_ = project.token;
    secret_ = project.secret;
  }

  /// Debian's country databases (geoip-database, installed by install-deps), opened once for every test.
  static const CountryLookup* Geo() {
    static const std::unique_ptr<CountryLookup> geo = [] {
      auto opened = CountryLookup::Open();
      EXPECT_TRUE(opened.ok()) << opened.error().ToString();
      return opened.ok() ? std::move(opened).value() : nullptr;
    }();
    return geo.get();
  }

  static std::string Bearer() { return std::string("Bearer ") + kAdminToken; }
  std::string SecretAuth() const { return "Basic " + Base64Encode(secret_ + ":"); }

  Reply Send(const std::string& method, const std::string& path, std::string body = {},
             testing::Headers headers = {}) {
    return api_.Send(method, path, std::move(body), std::move(headers));
  }

  Reply Import(const std::string& body, const std::string& query = "",
               std::vector<std::pair<std::string, std::string>> extra = {}) {
    extra.emplace_back("Authorization", SecretAuth());
    bool has_ct = false;
    for (auto& [k, v] : extra) has_ct |= k == "Content-Type";
    if (!has_ct) extra.emplace_back("Content-Type", "application/json");
    return Send("POST", "/import" + query, body, std::move(extra));
  }

  /// Every exported line for today's UTC date, parsed.
  std::vector<json::object> ExportAll(const std::string& extra_query = "") {
    auto day = Today();
    auto r = Send("GET", "/api/2.0/export?from_date=" + day + "&to_date=" + day + extra_query, {},
                  {{"Authorization", SecretAuth()}});
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<json::object> out;
    size_t pos = 0;
    while (pos < r.body.size()) {
      size_t nl = r.body.find('\n', pos);
      if (nl == std::string::npos) nl = r.body.size();
      if (nl > pos) out.push_back(json::parse(std::string_view(r.body).substr(pos, nl - pos)).as_object());
      pos = nl + 1;
    }
    return out;
  }

  static int64_t NowSeconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  /// The UTC day of EventTime(), as the export API wants it.
  std::string Today() const {
    std::chrono::sys_days days{std::chrono::days(event_time_ / 86400)};
    std::chrono::year_month_day ymd{days};
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%04d-%02u-%02u", int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()));
    return buf;
  }

  // A time within the current UTC day and not in the future, so Today()'s export sees it. Fixed once per test:
  // recomputing it later could land on the next second.
  int64_t EventTime() const { return event_time_; }
  static int64_t ComputeEventTime() {
    int64_t now = NowSeconds();
    return std::max(now - 60, now - now % 86400);
  }

  std::string Event(const std::string& name, const std::string& insert_id, const std::string& extra = "") const {
    return R"({"event":")" + name + R"(","properties":{"time":)" + std::to_string(EventTime()) +
           R"(,"distinct_id":"u1","$insert_id":")" + insert_id + "\"" + extra + "}}";
  }

  testing::ApiHarness api_;
  int64_t project_id_ = 0;
  int64_t event_time_ = 0;
  std::string token_, secret_;
};

TEST_F(ApiTest, ProjectsNeedTheAdminToken) {
  EXPECT_EQ(Send("POST", "/api/app/projects", R"({"name":"x"})").status, 401);
  EXPECT_EQ(Send("GET", "/api/app/projects", {}, {{"Authorization", "Bearer wrong"}}).status, 401);
  auto list = Send("GET", "/api/app/projects", {}, {{"Authorization", Bearer()}});
  ASSERT_EQ(list.status, 200);
  auto projects = list.Json().at("projects").as_array();
  ASSERT_EQ(projects.size(), 1u);
  EXPECT_EQ(projects[0].at("token").as_string(), token_);
  EXPECT_GE(token_.size(), 32u);  // ≥ 128 bits of randomness, hex
  EXPECT_NE(token_, secret_);
  EXPECT_EQ(Send("POST", "/api/app/projects", "not json", {{"Authorization", Bearer()}}).status, 400);
}

TEST_F(ApiTest, AdminSetsAProjectsExternalId) {
  const std::string path = "/api/app/projects/" + std::to_string(project_id_);
  EXPECT_EQ(Send("POST", path, R"({"external_id":"acme-7f3a"})").status, 401);
  auto set = Send("POST", path, R"({"external_id":"acme-7f3a"})", {{"Authorization", Bearer()}});
  ASSERT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(set.Json().at("external_id").as_string(), "acme-7f3a");
  auto stored = api_.store().GetProject(static_cast<uint32_t>(project_id_));
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->external_id, "acme-7f3a");
  // "" goes back to the project token.
  auto reset = Send("POST", path, R"({"external_id":""})", {{"Authorization", Bearer()}});
  ASSERT_EQ(reset.status, 200);
  EXPECT_EQ(reset.Json().at("external_id").as_string(), token_);
  EXPECT_EQ(Send("POST", path, R"({"external_id":"bad id!"})", {{"Authorization", Bearer()}}).status, 400);
  EXPECT_EQ(Send("POST", path, R"({"name":"x"})", {{"Authorization", Bearer()}}).status, 400);
  EXPECT_EQ(Send("POST", "/api/app/projects/999", R"({"external_id":"ab"})", {{"Authorization", Bearer()}}).status,
            404);
}

// Issue 9 item 3: two projects presenting the same ExternalId could assume each other's roles, so an external ID
// that another project uses (as its external ID or as its token) is refused.
TEST_F(ApiTest, AdminRefusesAnExternalIdAnotherProjectUses) {
  auto other = Send("POST", "/api/app/projects", R"({"name":"other"})", {{"Authorization", Bearer()}});
  ASSERT_EQ(other.status, 200) << other.body;
  const std::string other_token = json::value_to<std::string>(other.Json().at("token"));
  const std::string other_path = "/api/app/projects/" + std::to_string(other.Json().at("id").as_int64());
  const std::string path = "/api/app/projects/" + std::to_string(project_id_);

  // Another project's token.
  auto token_taken = Send("POST", path, json::serialize(json::object{{"external_id", other_token}}),
                          {{"Authorization", Bearer()}});
  EXPECT_EQ(token_taken.status, 409) << token_taken.body;
  EXPECT_NE(token_taken.body.find("another project"), std::string::npos) << token_taken.body;
  // Another project's external ID.
  ASSERT_EQ(Send("POST", other_path, R"({"external_id":"shared-ext-id"})", {{"Authorization", Bearer()}}).status, 200);
  auto ext_taken = Send("POST", path, R"({"external_id":"shared-ext-id"})", {{"Authorization", Bearer()}});
  EXPECT_EQ(ext_taken.status, 409) << ext_taken.body;
  // Nothing was changed by the refusals.
  auto stored = api_.store().GetProject(static_cast<uint32_t>(project_id_));
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->external_id, "");
  // A project may set its own token, re-set its own external ID, and take one the other project released.
  EXPECT_EQ(Send("POST", path, json::serialize(json::object{{"external_id", token_}}), {{"Authorization", Bearer()}})
                .status,
            200);
  EXPECT_EQ(Send("POST", other_path, R"({"external_id":"shared-ext-id"})", {{"Authorization", Bearer()}}).status, 200);
  ASSERT_EQ(Send("POST", other_path, R"({"external_id":""})", {{"Authorization", Bearer()}}).status, 200);
  EXPECT_EQ(Send("POST", path, R"({"external_id":"shared-ext-id"})", {{"Authorization", Bearer()}}).status, 200);
  // The other project now presents its token; this project's token cannot become the other's external ID.
  EXPECT_EQ(Send("POST", other_path, json::serialize(json::object{{"external_id", token_}}),
                 {{"Authorization", Bearer()}})
                .status,
            409);
}

// One update is one change: when either half of {external_id, gcs_buckets} is refused (a bucket another
// project holds, an external ID another project uses), the other half is not applied either.
TEST_F(ApiTest, AdminProjectUpdateIsAllOrNothing) {
  auto other = Send("POST", "/api/app/projects", R"({"name":"holder"})", {{"Authorization", Bearer()}});
  ASSERT_EQ(other.status, 200) << other.body;
  const std::string other_path = "/api/app/projects/" + std::to_string(other.Json().at("id").as_int64());
  const std::string path = "/api/app/projects/" + std::to_string(project_id_);
  ASSERT_EQ(Send("POST", other_path, R"({"external_id":"held-ext","gcs_buckets":["held-bucket"]})",
                 {{"Authorization", Bearer()}})
                .status,
            200);

  auto bucket_taken = Send("POST", path, R"({"external_id":"fresh-ext","gcs_buckets":["mine","held-bucket"]})",
                           {{"Authorization", Bearer()}});
  EXPECT_EQ(bucket_taken.status, 409) << bucket_taken.body;
  auto ext_taken = Send("POST", path, R"({"external_id":"held-ext","gcs_buckets":["mine"]})",
                        {{"Authorization", Bearer()}});
  EXPECT_EQ(ext_taken.status, 409) << ext_taken.body;
  auto stored = api_.store().GetProject(static_cast<uint32_t>(project_id_));
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->external_id, "") << "a refused update set the external ID";
  EXPECT_TRUE((*stored)->gcs_buckets.empty()) << "a refused update bound buckets";

  auto both = Send("POST", path, R"({"external_id":"fresh-ext","gcs_buckets":["mine"]})",
                   {{"Authorization", Bearer()}});
  ASSERT_EQ(both.status, 200) << both.body;
  EXPECT_EQ(both.Json().at("external_id").as_string(), "fresh-ext");
  EXPECT_EQ(json::serialize(both.Json().at("gcs_buckets")), R"(["mine"])");
}

TEST_F(ApiTest, ImportStoresAndReadBackEqualsWhatWasSent) {
  std::string batch = "[" + Event("Signed up", "id-1", R"(,"plan":"pro","price":1.10,"big":123456789012345678901234567890,"nested":{"a":[1,2,{"b":"c"}]},"uni":"\u00fc\n")") +
                      "," + Event("Paid", "id-2") + "]";
  auto r = Import(batch);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"code":200,"num_records_imported":2,"status":"OK"})");

  auto lines = ExportAll();
  ASSERT_EQ(lines.size(), 2u);
  std::map<std::string, json::object> by_id;
  for (auto& l : lines) by_id[json::value_to<std::string>(l.at("properties").at("$insert_id"))] = l;
  const auto& signed_up = by_id.at("id-1");
  EXPECT_EQ(signed_up.at("event").as_string(), "Signed up");
  const auto& props = signed_up.at("properties").as_object();
  EXPECT_EQ(props.at("time").as_int64(), EventTime());
  EXPECT_EQ(props.at("distinct_id").as_string(), "u1");
  EXPECT_EQ(props.at("plan").as_string(), "pro");
  EXPECT_EQ(props.at("uni").as_string(), "\xc3\xbc\n");
  EXPECT_EQ(json::serialize(props.at("nested")), R"({"a":[1,2,{"b":"c"}]})");
  // Numbers are stored as the text that arrived: no precision lost, no re-formatting.
  auto raw = Send("GET", "/api/2.0/export?from_date=" + Today() + "&to_date=" + Today() + "&event=%5B%22Signed%20up%22%5D",
                  {}, {{"Authorization", SecretAuth()}});
  EXPECT_NE(raw.body.find(R"("price":1.10)"), std::string::npos) << raw.body;
  EXPECT_NE(raw.body.find(R"("big":123456789012345678901234567890)"), std::string::npos) << raw.body;
  EXPECT_EQ(raw.body.find("Paid"), std::string::npos);
}

TEST_F(ApiTest, ImportAcceptsNdjsonGzipAndTokenAuth) {
  std::string nd = Event("A", "nd-1") + "\n" + Event("B", "nd-2") + "\n\n";
  auto r = Send("POST", "/import?project_id=" + std::to_string(project_id_), Gzip(nd),
                {{"Authorization", "Basic " + Base64Encode(token_ + ":")},
                 {"Content-Type", "application/x-ndjson"},
                 {"Content-Encoding", "gzip"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json().at("num_records_imported").as_int64(), 2);
  EXPECT_EQ(ExportAll().size(), 2u);
}

// Each request thread refills the events of its earlier requests (ingest::EventSpares): nothing of an earlier
// batch may show in a later one. Batches with identity ids and long properties alternate with batches without.
TEST_F(ApiTest, ALaterBatchKeepsNothingOfTheEventsItsThreadWroteBefore) {
  for (int round = 0; round < 4; ++round) {
    std::string with = "[", without = "[";
    for (int i = 0; i < 20; ++i) {
      const std::string n = std::to_string(round) + "-" + std::to_string(i);
      with += (i ? "," : "") + Event("Rich " + n, "rich-" + n,
                                     R"(,"$device_id":"dev-)" + n + R"(","$user_id":"user-)" + n + R"(","blob":")" +
                                         std::string(900, 'x') + "\"");
      without += (i ? "," : "") + Event("Bare " + n, "bare-" + n);
    }
    ASSERT_EQ(Import(with + "]").status, 200);
    ASSERT_EQ(Import(without + "]").status, 200);
  }
  auto lines = ExportAll();
  ASSERT_EQ(lines.size(), 160u);
  int bare = 0;
  for (const auto& l : lines) {
    const auto& props = l.at("properties").as_object();
    const std::string id = json::value_to<std::string>(props.at("$insert_id"));
    if (!id.starts_with("bare-")) continue;
    ++bare;
    EXPECT_EQ(l.at("event").as_string(), "Bare " + id.substr(5));
    EXPECT_EQ(props.at("distinct_id").as_string(), "u1") << id;
    EXPECT_FALSE(props.contains("$device_id")) << id;
    EXPECT_FALSE(props.contains("$user_id")) << id;
    EXPECT_FALSE(props.contains("blob")) << id;
    EXPECT_EQ(props.size(), 4u) << json::serialize(props);  // time, distinct_id, $insert_id, mp_processing_time_ms
  }
  EXPECT_EQ(bare, 80);
}

TEST_F(ApiTest, DuplicatesAreStoredOnce) {
  ASSERT_EQ(Import("[" + Event("A", "dup-1", R"(,"v":1)") + "]").status, 200);
  ASSERT_EQ(Import("[" + Event("A", "dup-1", R"(,"v":2)") + "]").status, 200);
  auto lines = ExportAll();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].at("properties").at("v").as_int64(), 2);  // the latest copy wins
}

TEST_F(ApiTest, StrictModeReportsEachBadRecordAndKeepsTheGoodOnes) {
  std::string batch = "[" + Event("Good", "g-1") + R"(,{"event":"NoTime","properties":{"distinct_id":"u","$insert_id":"x-1"}},)" +
                      R"({"event":"Old","properties":{"time":100,"distinct_id":"u","$insert_id":"x-2"}},)" +
                      R"({"event":"Anon","properties":{"time":)" + std::to_string(EventTime()) +
                      R"(,"distinct_id":"anonymous","$insert_id":"x-3"}}])";
  auto r = Import(batch, "?strict=1");
  ASSERT_EQ(r.status, 400) << r.body;
  auto body = r.Json().as_object();
  EXPECT_EQ(body.at("code").as_int64(), 400);
  EXPECT_EQ(body.at("error").as_string(), "some data points in the request failed validation");
  EXPECT_EQ(body.at("num_records_imported").as_int64(), 1);
  EXPECT_EQ(body.at("status").as_string(), "Bad Request");
  auto failed = body.at("failed_records").as_array();
  ASSERT_EQ(failed.size(), 3u);
  EXPECT_EQ(failed[0].at("index").as_int64(), 1);
  EXPECT_EQ(failed[0].at("field").as_string(), "properties.time");
  EXPECT_EQ(failed[0].at("$insert_id").as_string(), "x-1");
  EXPECT_EQ(failed[2].at("field").as_string(), "properties.distinct_id");
  EXPECT_EQ(ExportAll().size(), 1u);

  auto lenient = Import(batch, "?strict=0");
  EXPECT_EQ(lenient.status, 200) << lenient.body;
  EXPECT_EQ(lenient.Json().at("num_records_imported").as_int64(), 1);
}

TEST_F(ApiTest, ImportErrorsSayWhatIsWrong) {
  auto bad_auth = Send("POST", "/import", "[]", {{"Authorization", "Basic " + Base64Encode("nope:")}});
  EXPECT_EQ(bad_auth.status, 401);
  EXPECT_EQ(bad_auth.Json().at("error").as_string(), "Invalid credentials");
  EXPECT_EQ(Send("POST", "/import", "[]").status, 401);

  auto malformed = Import("[{\"event\":");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_FALSE(malformed.Json().at("error").as_string().empty());

  std::string gz = Gzip("[" + Event("A", "t-1") + "]");
  auto truncated = Import(gz.substr(0, gz.size() / 2), "", {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(truncated.status, 400);
  EXPECT_NE(std::string(truncated.Json().at("error").as_string()).find("gzip"), std::string::npos);

  auto wrong_type = Import("[]", "", {{"Content-Type", "text/xml"}});
  EXPECT_EQ(wrong_type.status, 400);
  EXPECT_NE(std::string(wrong_type.Json().at("error").as_string()).find("Content-Type"), std::string::npos);

  auto mismatch = Import("[]", "?project_id=999");
  EXPECT_EQ(mismatch.status, 401);

  // 10 MB of uncompressed JSON is the limit, whatever the compressed size.
  std::string huge = "[" + std::string(11'000'000, ' ') + "]";
  auto too_big = Import(Gzip(huge), "", {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(too_big.status, 413);
  EXPECT_EQ(too_big.Json().at("code").as_int64(), 413);

  // The server survives all of it.
  EXPECT_EQ(Send("GET", "/healthz").status, 200);
}

// /import hands each record to the store's write batch as it parses it; a request that then fails as a whole
// (malformed JSON after valid records, more records than a batch may hold) stores none of them.
TEST_F(ApiTest, AnImportThatFailsAfterValidRecordsStoresNoneOfThem) {
  auto malformed_tail = Import("[" + Event("A", "tail-1") + "," + Event("B", "tail-2") + ",{\"event\":]");
  EXPECT_EQ(malformed_tail.status, 400) << malformed_tail.body;
  std::string too_many = "[";
  for (int i = 0; i < 2001; ++i) too_many += (i > 0 ? "," : "") + Event("C", "many-" + std::to_string(i));
  auto over = Import(too_many + "]");
  EXPECT_EQ(over.status, 413) << over.body;
  std::string nd_garbage = "not json\n{also not\n";
  auto all_bad = Import(nd_garbage, "", {{"Content-Type", "application/x-ndjson"}});
  EXPECT_EQ(all_bad.status, 400) << all_bad.body;
  EXPECT_TRUE(ExportAll().empty());
  // The next request on the same threads is stored whole.
  ASSERT_EQ(Import("[" + Event("D", "after-1") + "]").status, 200);
  auto lines = ExportAll();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].at("event").as_string(), "D");
}

TEST_F(ApiTest, LegacyFormImportAnswersOneOrZero) {
  std::string data = Base64Encode("[" + Event("Legacy", "l-1") + "]");
  auto r = Send("POST", "/import", "data=" + data,
                {{"Authorization", SecretAuth()}, {"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "1");
  auto via_key = Send("POST", "/import?api_key=" + secret_ + "&verbose=1", "data=" + Base64Encode("{\"event\":1}"),
                      {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(via_key.status, 200);
  EXPECT_EQ(via_key.Json().at("status").as_int64(), 0);
  EXPECT_FALSE(via_key.Json().at("error").as_string().empty());
  EXPECT_EQ(ExportAll().size(), 1u);
}

// Mixpanel's Node SDK sends data=<base64> unencoded in a form body or query, so each '+' of the base64
// arrives as a space after form decoding; the batch must still decode (it was refused as malformed JSON and
// lost).
TEST_F(ApiTest, UnencodedPlusInBase64DataIsReadAsPlus) {
  std::string text;
  std::string data;
  for (int i = 0; data.find('+') == std::string::npos && i < 64; ++i) {
    text = "[" + Event("Plus " + std::to_string(i) + " > ~ 日本語", "plus-" + std::to_string(i)) + "]";
    data = Base64Encode(text);
  }
  ASSERT_NE(data.find('+'), std::string::npos);
  auto r = Send("POST", "/import", "data=" + data,
                {{"Authorization", SecretAuth()}, {"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "1");
  auto lines = ExportAll();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(std::string(lines[0].at("event").as_string()).find("日本語"), std::string::npos);
}

TEST_F(ApiTest, TrackAcceptsSdkRequestForms) {
  auto ev = [&](const std::string& id) {
    return R"({"event":"Viewed","properties":{"token":")" + token_ + R"(","distinct_id":"d1","$insert_id":")" + id +
           R"(","time":)" + std::to_string(EventTime()) + "}}";
  };
  auto get = Send("GET", "/track?data=" + Base64Encode(ev("t-get")));
  EXPECT_EQ(get.body, "1");
  auto form = Send("POST", "/track", "data=" + Base64Encode("[" + ev("t-form") + "]"),
                   {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(form.body, "1");
  auto body = Send("POST", "/track?verbose=1&ip=1", "[" + ev("t-json") + "]", {{"Content-Type", "application/json"}});
  EXPECT_EQ(body.body, R"({"status":1,"error":null})");
  auto pixel = Send("GET", "/track?img=1&data=" + Base64Encode(ev("t-img")));
  EXPECT_EQ(pixel.Header("content-type"), "image/gif");
  EXPECT_EQ(pixel.body.substr(0, 6), "GIF89a");
  auto jsonp = Send("GET", "/track?callback=cb_1&data=" + Base64Encode(ev("t-cb")));
  EXPECT_EQ(jsonp.body, "cb_1(1);");
  EXPECT_EQ(jsonp.Header("content-type"), "application/javascript");
  // JSONP is for other sites' pages. A page of Sluice's own origin (only the console is served there) gets
  // the plain answer, marked nosniff, so an HTML injection into the console could not load /track as a script
  // its CSP ('self') allows, calling a function of its choosing. The event is stored all the same.
  auto same_origin = Send("GET", "/track?callback=document.body.remove&data=" + Base64Encode(ev("t-cb-self")),
                          {}, {{"Sec-Fetch-Site", "same-origin"}, {"Sec-Fetch-Dest", "script"}});
  EXPECT_EQ(same_origin.body, "1");
  EXPECT_EQ(same_origin.Header("content-type"), "text/plain");
  EXPECT_EQ(same_origin.Header("x-content-type-options"), "nosniff");
  auto cross_site = Send("GET", "/track?callback=cb_2&data=" + Base64Encode(ev("t-cb-site")), {},
                         {{"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Dest", "script"}});
  EXPECT_EQ(cross_site.body, "cb_2(1);");

  auto lines = ExportAll();
  EXPECT_EQ(lines.size(), 7u);
  for (const auto& l : lines) {
    const auto& p = l.at("properties").as_object();
    EXPECT_FALSE(p.contains("token"));  // the project token is not an event property
    // ip=1 geolocates the request's address (loopback has no country) and never stores the address.
    EXPECT_FALSE(p.contains("ip")) << p;
    EXPECT_FALSE(p.contains("mp_country_code")) << p;
  }
}

TEST_F(ApiTest, TrackRefusesUnknownTokensAndOldEvents) {
  std::string unknown = R"({"event":"X","properties":{"token":"nope","distinct_id":"d"}})";
  auto r = Send("GET", "/track?verbose=1&data=" + Base64Encode(unknown));
  EXPECT_EQ(r.Json().at("status").as_int64(), 0);
  EXPECT_NE(std::string(r.Json().at("error").as_string()).find("token"), std::string::npos);
  std::string old = R"({"event":"X","properties":{"token":")" + token_ + R"(","distinct_id":"d","time":)" +
                    std::to_string(NowSeconds() - 6 * 86400) + "}}";
  EXPECT_EQ(Send("GET", "/track?data=" + Base64Encode(old)).body, "0");
}

TEST_F(ApiTest, EngageUpdatesProfiles) {
  auto engage = [&](const std::string& op) {
    std::string u = R"({"$token":")" + token_ + R"(","$distinct_id":"p1",)" + op + "}";
    return Send("GET", "/engage?verbose=1&data=" + Base64Encode(u));
  };
  EXPECT_EQ(engage(R"("$set":{"name":"Ada","plan":"free"})").body, R"({"status":1,"error":null})");
  EXPECT_EQ(engage(R"("$set_once":{"name":"Bob","first":"x"})").Json().at("status").as_int64(), 1);
  EXPECT_EQ(engage(R"("$add":{"logins":2})").Json().at("status").as_int64(), 1);
  EXPECT_EQ(engage(R"("$add":{"logins":3})").Json().at("status").as_int64(), 1);
  EXPECT_EQ(engage(R"("$union":{"tags":["a","b"]})").Json().at("status").as_int64(), 1);
  EXPECT_EQ(engage(R"("$union":{"tags":["b","c"]})").Json().at("status").as_int64(), 1);
  EXPECT_EQ(engage(R"("$unset":["plan"])").Json().at("status").as_int64(), 1);

  auto q = Send("GET", "/api/2.0/engage?distinct_id=p1", {}, {{"Authorization", SecretAuth()}});
  ASSERT_EQ(q.status, 200) << q.body;
  auto results = q.Json().at("results").as_array();
  ASSERT_EQ(results.size(), 1u);
  const auto& props = results[0].at("$properties").as_object();
  EXPECT_EQ(props.at("name").as_string(), "Ada");
  EXPECT_EQ(props.at("first").as_string(), "x");
  EXPECT_EQ(props.at("logins").to_number<double>(), 5);
  EXPECT_EQ(json::serialize(props.at("tags")), R"(["a","b","c"])");
  EXPECT_FALSE(props.contains("plan"));
  EXPECT_TRUE(props.contains("$last_seen"));

  // A batch in a JSON body, then $delete.
  std::string batch = R"([{"$token":")" + token_ + R"(","$distinct_id":"p2","$set":{"a":1}},{"$token":")" + token_ +
                      R"(","$distinct_id":"p1","$delete":""}])";
  EXPECT_EQ(Send("POST", "/engage", batch, {{"Content-Type", "application/json"}}).body, "1");
  auto all = Send("GET", "/api/2.0/engage", {}, {{"Authorization", SecretAuth()}}).Json();
  ASSERT_EQ(all.at("results").as_array().size(), 1u);
  EXPECT_EQ(all.at("results").as_array()[0].at("$distinct_id").as_string(), "p2");
}

// /healthz says which part of the store is down to everyone (a load balancer needs no token), but what failed
// (hosts and ports of ClickHouse or ZooKeeper) only to the operator's admin token: the port serves tenants
// too.
TEST(HealthzTest, WhatFailedIsShownOnlyToTheOperator) {
  testing::ApiHarness api;
  ASSERT_TRUE(
      api.OpenStoreWrapped([](std::unique_ptr<store::Store> opened,
                              const std::filesystem::path& dir) -> Result<std::unique_ptr<store::Store>> {
           SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> profiles, store::Store::Open(dir / "p"));
           SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> meta, store::Store::Open(dir / "m"));
           return store::ComposeStore(
               {.events = std::move(opened),
                .profiles = std::move(profiles),
                .meta = std::move(meta),
                .check_reachable = [] {
                  return std::vector<store::Reachability>{
                      {"store", OkStatus()},
                      {"coordination",
                       Error(ErrorCode::kUnavailable, "ZooKeeper 10.9.8.7:2181 does not answer")}};
                }});
         })
          .ok());
  ASSERT_TRUE(api.Serve(api::ServiceOptions{.admin_token = Secret(kAdminToken)}).ok());
  auto anyone = api.Send("GET", "/healthz");
  EXPECT_EQ(anyone.status, 503);
  EXPECT_EQ(anyone.body, R"({"status":"unavailable","store":"ok","coordination":"unavailable"})");
  auto tenant = api.Send("GET", "/healthz", {}, {{"Authorization", "Bearer not-the-admin-token"}});
  EXPECT_EQ(tenant.body.find("10.9.8.7"), std::string::npos) << tenant.body;
  auto operator_view =
      api.Send("GET", "/healthz", {}, {{"Authorization", testing::ApiHarness::Bearer(kAdminToken)}});
  EXPECT_EQ(operator_view.status, 503);
  EXPECT_NE(operator_view.body.find("ZooKeeper 10.9.8.7:2181 does not answer"), std::string::npos)
      << operator_view.body;
}

// Mixpanel's profile geolocation: an update's $ip (or, with ip=1, the request's address) gives the profile's
// $country_code; a $set overwrites it, a $set_once only fills it, the update's own $country_code wins, and
// "$ip":0 turns it off. No address is ever stored, and group profiles are not geolocated.
TEST_F(ApiTest, EngageGeolocatesProfilesWithoutKeepingAddresses) {
  auto engage = [&](const std::string& fields, const std::string& query = "") {
    std::string u = R"({"$token":")" + token_ + R"(","$distinct_id":"geo",)" + fields + "}";
    return Send("GET", "/engage?verbose=1" + query + "&data=" + Base64Encode(u))
        .Json()
        .at("status")
        .as_int64();
  };
  auto profile = [&] {
    auto q = Send("GET", "/api/2.0/engage?distinct_id=geo", {}, {{"Authorization", SecretAuth()}});
    EXPECT_EQ(q.status, 200) << q.body;
    auto results = q.Json().at("results").as_array();
    EXPECT_EQ(results.size(), 1u);
    return results.empty() ? json::object() : results[0].at("$properties").as_object();
  };
  // ip=1 from loopback: no country, and the address is not kept.
  EXPECT_EQ(engage(R"("$set":{"a":1})", "&ip=1"), 1);
  EXPECT_FALSE(profile().contains("$country_code")) << profile();
  EXPECT_EQ(engage(R"("$ip":"8.8.8.8","$set":{"a":2})"), 1);
  EXPECT_EQ(profile().at("$country_code").as_string(), "US");
  EXPECT_EQ(engage(R"("$ip":"193.99.144.80","$set_once":{"b":1})"), 1);  // a German address
  EXPECT_EQ(profile().at("$country_code").as_string(), "US");
  EXPECT_EQ(engage(R"("$ip":0,"$set":{"a":3})"), 1);
  EXPECT_EQ(profile().at("$country_code").as_string(), "US");
  EXPECT_EQ(engage(R"("$ip":"193.99.144.80","$set":{"a":4})"), 1);
  EXPECT_EQ(profile().at("$country_code").as_string(), "DE");
  EXPECT_EQ(engage(R"("$ip":"8.8.8.8","$set":{"$country_code":"FR"})"), 1);
  EXPECT_EQ(profile().at("$country_code").as_string(), "FR");
  const json::object props = profile();
  EXPECT_EQ(props.at("a").as_int64(), 4);
  EXPECT_FALSE(props.contains("$ip")) << props;
  EXPECT_EQ(json::serialize(props).find("8.8.8.8"), std::string::npos) << props;
  EXPECT_EQ(json::serialize(props).find("193.99"), std::string::npos) << props;

  const std::string group = R"({"$token":")" + token_ +
                            R"(","$group_key":"company","$group_id":"acme","$ip":"8.8.8.8","$set":{"n":1}})";
  EXPECT_EQ(Send("GET", "/groups?ip=1&data=" + Base64Encode(group)).body, "1");
  auto g = Send("GET", "/api/2.0/engage?data_group_id=company&distinct_id=acme", {},
                {{"Authorization", SecretAuth()}});
  ASSERT_EQ(g.status, 200) << g.body;
  ASSERT_EQ(g.Json().at("results").as_array().size(), 1u);
  EXPECT_EQ(json::serialize(g.Json().at("results").as_array()[0].at("$properties")), R"({"n":1})");
}

// A project runs at most ServiceImpl::kExportsPerProject (4) raw exports at once: each holds a store scan on
// a thread of its own for as long as its client reads, so a fifth is answered 429 with Retry-After, another
// project is not affected, and a client that goes away gives its slot back.
TEST_F(ApiTest, AProjectRunsAtMostFourExportsAtOnce) {
  // ~16 MB of events: more than a stream's queue and the sockets' buffers hold while its client does not
  // read.
  for (int b = 0; b < 8; ++b) {  // /import takes at most 2000 events a request
    std::string batch = "[";
    for (int i = 0; i < 2000; ++i) {
      batch += (i ? "," : "") +
               Event("Held", fmt::format("h-{}-{}", b, i), R"(,"pad":")" + std::string(1000, 'x') + "\"");
    }
    batch += "]";
    ASSERT_EQ(Import(batch).status, 200);
  }
  const std::string path = "/api/2.0/export?from_date=" + Today() + "&to_date=" + Today();
  const uint16_t port =
      static_cast<uint16_t>(std::stoi(api_.base_url().substr(api_.base_url().rfind(':') + 1)));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::vector<testing::Fd> held;
  for (int i = 0; i < api::ServiceImpl::kExportsPerProject; ++i) {
    auto fd = testing::ConnectLoopback(port, deadline);
    ASSERT_TRUE(fd.ok()) << fd.error().ToString();
    const int small = 4096;  // a client that reads nothing and buffers little
    ::setsockopt(fd->get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    ASSERT_TRUE(testing::WriteAll(
                    fd->get(),
                    "GET " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: " + SecretAuth() + "\r\n\r\n",
                    deadline)
                    .ok());
    held.push_back(std::move(fd).value());
  }
  // Each held request has its slot once its answer has begun (200: the stream runs).
  for (testing::Fd& fd : held) {
    pollfd p{fd.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10'000), 1) << "a held export was not answered";
    char head[12] = {};
    ASSERT_EQ(::recv(fd.get(), head, sizeof(head), MSG_WAITALL), static_cast<ssize_t>(sizeof(head)));
    ASSERT_EQ(std::string(head, sizeof(head)), "HTTP/1.1 200");
  }
  Reply busy = Send("GET", path + "&limit=1", {}, {{"Authorization", SecretAuth()}});
  ASSERT_EQ(busy.status, 429) << busy.body.substr(0, 300);
  EXPECT_EQ(busy.Header("retry-after"), "10");
  EXPECT_NE(busy.body.find("4 exports running"), std::string::npos) << busy.body;

  auto other = api_.CreateProject("other", kAdminToken);
  ASSERT_NE(other.id, 0u);
  EXPECT_EQ(Send("GET", path, {}, {{"Authorization", testing::ApiHarness::Basic(other.secret)}}).status, 200);

  held.pop_back();  // closed with unread data: the server's next write fails and the stream is dropped
  Reply again;
  for (int i = 0; i < 200; ++i) {
    again = Send("GET", path + "&limit=1", {}, {{"Authorization", SecretAuth()}});
    if (again.status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(std::count(again.body.begin(), again.body.end(), '\n'), 1);
}

// The export line's mp_processing_time_ms is the server's, once: a client's value of it is not kept.
TEST_F(ApiTest, ExportLinesCarryTheServersProcessingTimeOnce) {
  ASSERT_EQ(Import("[" + Event("P", "p-1", R"(,"mp_processing_time_ms":1,"k":2)") + "]").status, 200);
  auto r = Send("GET", "/api/2.0/export?from_date=" + Today() + "&to_date=" + Today(), {},
                {{"Authorization", SecretAuth()}});
  ASSERT_EQ(r.status, 200) << r.body;
  size_t count = 0;
  for (size_t pos = r.body.find("\"mp_processing_time_ms\""); pos != std::string::npos;
       pos = r.body.find("\"mp_processing_time_ms\"", pos + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 1u) << r.body;
  const auto line = json::parse(r.body).as_object();
  EXPECT_GT(line.at("properties").at("mp_processing_time_ms").to_number<int64_t>(), 1'700'000'000'000)
      << r.body;
  EXPECT_EQ(line.at("properties").at("k").to_number<int64_t>(), 2);
}

TEST_F(ApiTest, ExportHonoursGzipLimitAndAuth) {
  std::string batch = "[";
  for (int i = 0; i < 50; ++i) batch += (i ? "," : "") + Event("E", "ex-" + std::to_string(i));
  batch += "]";
  ASSERT_EQ(Import(batch).status, 200);
  auto day = Today();
  auto gz = Send("GET", "/api/2.0/export?from_date=" + day + "&to_date=" + day, {},
                 {{"Authorization", SecretAuth()}, {"Accept-Encoding", "gzip"}});
  ASSERT_EQ(gz.status, 200);
  EXPECT_EQ(gz.Header("content-encoding"), "gzip");
  auto text = GunzipBounded(gz.body, 1 << 24);
  ASSERT_TRUE(text.ok()) << text.error().ToString();
  EXPECT_EQ(std::count(text->begin(), text->end(), '\n'), 50);
  EXPECT_EQ(ExportAll("&limit=7").size(), 7u);
  EXPECT_EQ(Send("GET", "/api/2.0/export?from_date=" + day + "&to_date=" + day).status, 401);
  EXPECT_EQ(Send("GET", "/api/2.0/export?from_date=2024-13-01&to_date=" + day, {},
                 {{"Authorization", SecretAuth()}}).status, 400);
  // The admin token works too, with project_id.
  auto admin = Send("GET", "/api/2.0/export?project_id=" + std::to_string(project_id_) + "&from_date=" + day +
                               "&to_date=" + day + "&limit=1",
                    {}, {{"Authorization", Bearer()}});
  EXPECT_EQ(admin.status, 200);
}

// Every number and id of the HTTP APIs is read whole, decimal digits only and range-checked: no wrap-around
// (4294967297 read as 1), no trailing garbage ("1abc" as 1), no sign ("-1" as 4294967295 or "no limit") and
// no exponent ("1e100" as 1). Each is a 400 that names the parameter.
TEST_F(ApiTest, NumbersAndIdsAreParsedWholeAndRangeChecked) {
  ASSERT_EQ(project_id_, 1);  // so that 2^32 + 1 would wrap onto this project
  ASSERT_EQ(Import("[" + Event("E", "n-1") + "," + Event("E", "n-2") + "]").status, 200);
  const std::string day = Today();
  const std::string dates = "from_date=" + day + "&to_date=" + day;
  auto expect_400 = [](const Reply& r, std::string_view param, std::string_view context) {
    EXPECT_EQ(r.status, 400) << context << ": " << r.body;
    if (r.status == 400) {
      std::string error(r.Json().at("error").as_string());
      EXPECT_NE(error.find(param), std::string::npos) << context << ": " << error;
      EXPECT_NE(error.find("whole number"), std::string::npos) << context << ": " << error;
    }
  };
  // project_id with the admin token.
  for (std::string bad : {"4294967297", "1abc", "-1", "+1", " 1", "1e0", "0x1", "18446744073709551617", ""}) {
    if (bad.empty()) continue;
    std::string encoded;
    for (char c : bad)
      encoded += c == ' ' ? std::string("%20") : c == '+' ? std::string("%2B") : std::string(1, c);
    auto r =
        Send("GET", "/api/2.0/export?project_id=" + encoded + "&" + dates, {}, {{"Authorization", Bearer()}});
    expect_400(r, "project_id", "export project_id=" + bad);
    auto q = Send("GET", "/api/2.0/engage?project_id=" + encoded, {}, {{"Authorization", Bearer()}});
    expect_400(q, "project_id", "engage project_id=" + bad);
    // /import with the API secret: a malformed project_id is a 400, not a credential mismatch.
    expect_400(Import("[]", "?project_id=" + encoded), "project_id", "import project_id=" + bad);
  }
  // The well-formed id still works, and another project's id is still a mismatch.
  EXPECT_EQ(Send("GET", "/api/2.0/export?project_id=1&" + dates, {}, {{"Authorization", Bearer()}}).status,
            200);
  EXPECT_EQ(Import("[]", "?project_id=1").status, 200);
  EXPECT_EQ(Import("[]", "?project_id=2").status, 401);

  // Export limit: -1 is not "no limit", 1e100 is not 1, 0 and > 100000 are outside Mixpanel's range.
  for (std::string bad : {"-1", "1e100", "1abc", "0", "100001", "18446744073709551616"}) {
    auto r = Send("GET", "/api/2.0/export?" + dates + "&limit=" + bad, {}, {{"Authorization", SecretAuth()}});
    expect_400(r, "limit", "export limit=" + bad);
  }
  EXPECT_EQ(ExportAll("&limit=1").size(), 1u);
  EXPECT_EQ(ExportAll("&limit=100000").size(), 2u);

  // Engage paging.
  for (std::string q :
       {"page=-1", "page=1e2", "page_size=0", "page_size=1abc", "page_size=-5", "page_size=10001"}) {
    auto r = Send("GET", "/api/2.0/engage?" + q, {}, {{"Authorization", SecretAuth()}});
    expect_400(r, q.substr(0, q.find('=')), "engage " + q);
  }
  EXPECT_EQ(Send("GET", "/api/2.0/engage?page=0&page_size=10", {}, {{"Authorization", SecretAuth()}}).status,
            200);

  // Ids in paths: 2^32 + 1 does not reach project 1.
  for (std::string bad : {"4294967297", "1abc", "-1"}) {
    auto r = Send("POST", "/api/app/projects/" + bad, R"({"external_id":"acme-7f3a"})",
                  {{"Authorization", Bearer()}});
    expect_400(r, "project id", "path id " + bad);
  }
  // A megabyte of digits is refused without echoing it whole.
  auto huge = Send("POST", "/api/2.0/export", dates + "&limit=" + std::string(1'000'000, '9'),
                   {{"Authorization", SecretAuth()}, {"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(huge.status, 400);
  EXPECT_LT(huge.body.size(), 1000u);
}

TEST_F(ApiTest, MetricsCountRequestsAndEvents) {
  ASSERT_EQ(Import("[" + Event("M", "m-1") + "]").status, 200);
  Import(R"([{"event":"M","properties":{"distinct_id":"u","$insert_id":"m-2"}}])");
  auto m = Send("GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("sluice_events_accepted_total{endpoint=\"import\"} 1"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("sluice_events_rejected_total{endpoint=\"import\",reason=\"missing_time\"} 1"),
            std::string::npos);
  EXPECT_NE(m.body.find("sluice_http_requests_total{route=\"/import\",method=\"POST\",status=\"200\"}"),
            std::string::npos);
  EXPECT_NE(m.body.find("sluice_http_request_duration_seconds_bucket"), std::string::npos);
  EXPECT_NE(m.body.find("sluice_store_size_bytes"), std::string::npos);
  EXPECT_NE(m.body.find("# TYPE sluice_store_stall_seconds_total counter\nsluice_store_stall_seconds_total "),
            std::string::npos);
}

TEST_F(ApiTest, ExportRefusesDatesBefore1970) {
  for (const char* from : {"1969-12-31", "1900-01-01"}) {
    auto r = Send("GET", std::string("/api/2.0/export?from_date=") + from + "&to_date=" + Today(), {},
                  {{"Authorization", SecretAuth()}});
    EXPECT_EQ(r.status, 400) << from << ": " << r.body;
    EXPECT_NE(r.body.find("before 1970-01-01"), std::string::npos) << r.body;
  }
  auto both = Send("GET", "/api/2.0/export?from_date=1960-01-01&to_date=1960-01-02", {},
                   {{"Authorization", SecretAuth()}});
  EXPECT_EQ(both.status, 400) << both.body;
  EXPECT_EQ(Send("GET", "/api/2.0/export?from_date=1970-01-01&to_date=" + Today(), {},
                 {{"Authorization", SecretAuth()}})
                .status,
            200);
}

// ---- CORS: the ingestion endpoints answer browsers on other origins; nothing else does
// ----------------------

TEST_F(ApiTest, PreflightOnIngestionEndpointsAllowsTheBrowser) {
  for (const char* path : {"/track", "/track/", "/engage", "/import"}) {
    auto r = Send("OPTIONS", path, {},
                  {{"Origin", "http://127.0.0.1:9"},
                   {"Access-Control-Request-Method", "POST"},
                   {"Access-Control-Request-Headers", "content-type,x-custom-header"}});
    EXPECT_TRUE(r.status == 200 || r.status == 204) << path << ": " << r.status << " " << r.body;
    EXPECT_EQ(r.Header("access-control-allow-origin"), "http://127.0.0.1:9") << path;
    EXPECT_EQ(r.Header("access-control-allow-credentials"), "true") << path;
    EXPECT_NE(r.Header("access-control-allow-methods").find("POST"), std::string::npos) << path;
    EXPECT_NE(r.Header("access-control-allow-methods").find("OPTIONS"), std::string::npos) << path;
    EXPECT_EQ(r.Header("access-control-allow-headers"), "content-type,x-custom-header") << path;
    EXPECT_FALSE(r.Header("access-control-max-age").empty()) << path;
  }
}

TEST_F(ApiTest, IngestionAnswersCarryCorsHeadersEvenOnErrors) {
  const std::vector<std::pair<std::string, std::string>> origin = {{"Origin", "http://127.0.0.1:9"}};
  const std::vector<std::pair<std::string, std::string>> json_origin = {{"Origin", "http://127.0.0.1:9"},
                                                                        {"Content-Type", "application/json"}};
  std::string event =
      R"({"event":"E","properties":{"token":")" + token_ + R"(","distinct_id":"d","$insert_id":"cors-1"}})";
  auto ok = Send("POST", "/track", "[" + event + "]", json_origin);
  EXPECT_EQ(ok.body, "1");
  EXPECT_EQ(ok.Header("access-control-allow-origin"), "http://127.0.0.1:9");
  // An unknown token, a refused import (no auth) and a wrong method: the browser must still read the answer.
  auto bad =
      Send("POST", "/track?verbose=1", R"([{"event":"E","properties":{"token":"nope"}}])", json_origin);
  EXPECT_EQ(bad.Header("access-control-allow-origin"), "http://127.0.0.1:9") << bad.status;
  auto unauth =
      Send("POST", "/import", "[]", {{"Origin", "http://127.0.0.1:9"}, {"Content-Type", "application/json"}});
  EXPECT_EQ(unauth.status, 401);
  EXPECT_EQ(unauth.Header("access-control-allow-origin"), "http://127.0.0.1:9");
  auto wrong = Send("DELETE", "/track", {}, origin);
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.Header("access-control-allow-origin"), "http://127.0.0.1:9");
}

TEST_F(ApiTest, TooLargeIsReadableByBrowsersOnIngestionPathsOnly) {
  // The server refuses this before routing (more than the 16 MB default); mixpanel-browser halves its batch
  // on a 413 only if it can read the status.
  std::string body(17 * 1000 * 1000, 'x');
  auto track =
      Send("POST", "/track", body, {{"Origin", "http://127.0.0.1:9"}, {"Content-Type", "text/plain"}});
  EXPECT_EQ(track.status, 413);
  EXPECT_EQ(track.Header("access-control-allow-origin"), "http://127.0.0.1:9");
  auto admin = Send("POST", "/api/app/projects?x=1", body, {{"Origin", "http://127.0.0.1:9"}});
  EXPECT_EQ(admin.status, 413);
  EXPECT_TRUE(admin.Header("access-control-allow-origin").empty());
}

TEST_F(ApiTest, AdminAndReadApisStayClosedToBrowsers) {
  for (const char* path : {"/api/app/projects", "/api/2.0/export", "/api/2.0/engage", "/healthz", "/metrics",
                           "/api/2.0/nessie/pipeline/jobs"}) {
    auto r = Send("OPTIONS", path, {},
                  {{"Origin", "http://127.0.0.1:9"},
                   {"Access-Control-Request-Method", "POST"},
                   {"Access-Control-Request-Headers", "authorization"}});
    EXPECT_TRUE(r.status >= 400) << path << ": " << r.status;
    EXPECT_TRUE(r.Header("access-control-allow-origin").empty()) << path;
    EXPECT_TRUE(r.Header("access-control-allow-headers").empty()) << path;
    EXPECT_TRUE(r.Header("access-control-allow-methods").empty()) << path;
  }
  auto listed =
      Send("GET", "/api/app/projects", {}, {{"Authorization", Bearer()}, {"Origin", "http://127.0.0.1:9"}});
  EXPECT_EQ(listed.status, 200);
  EXPECT_TRUE(listed.Header("access-control-allow-origin").empty());
}

class RateLimitedApiTest : public ApiTest {
 protected:
  void SetUp() override { Start(4096); }
};

TEST_F(RateLimitedApiTest, AnswersTooManyRequestsWithRetryAfter) {
  std::string batch = "[";
  for (int i = 0; i < 30; ++i) batch += (i ? "," : "") + Event("R", "r-" + std::to_string(i));
  batch += "]";
  ASSERT_GT(batch.size(), 4096u / 2);  // two batches exceed the 4 KiB-per-minute allowance
  auto first = Import(batch);
  EXPECT_EQ(first.status, 200) << first.body;
  auto limited = Import(batch);
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_EQ(limited.Json().at("code").as_int64(), 429);
  EXPECT_FALSE(limited.Header("retry-after").empty());
}

TEST_F(RateLimitedApiTest, TooManyRequestsIsReadableByBrowsers) {
  std::string batch = "[";
  for (int i = 0; i < 30; ++i) batch += (i ? "," : "") + Event("R", "c-" + std::to_string(i));
  batch += "]";
  ASSERT_EQ(Import(batch).status, 200);
  auto limited = Import(batch, "", {{"Origin", "http://127.0.0.1:9"}});
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_EQ(limited.Header("access-control-allow-origin"), "http://127.0.0.1:9");
  EXPECT_NE(limited.Header("access-control-expose-headers").find("Retry-After"), std::string::npos);
}

// /engage and /groups draw on the same allowance as events (a token is public: without it anyone holding one
// could write profiles without bound); a refused request applies nothing.
TEST_F(RateLimitedApiTest, ProfileAndGroupUpdatesAreLimitedAndARefusedRequestAppliesNothing) {
  auto profile_batch = [&](const std::string& id) {
    return R"([{"$token":")" + token_ + R"(","$distinct_id":")" + id + R"(","$set":{"pad":")" +
           std::string(1500, 'p') + R"("}}])";
  };
  EXPECT_EQ(Send("POST", "/engage?verbose=1", profile_batch("first"), {{"Content-Type", "application/json"}})
                .status,
            200);
  EXPECT_EQ(Send("POST", "/engage?verbose=1", profile_batch("second"), {{"Content-Type", "application/json"}})
                .status,
            200);
  auto limited =
      Send("POST", "/engage?verbose=1", profile_batch("third"), {{"Content-Type", "application/json"}});
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_FALSE(limited.Header("retry-after").empty());
  EXPECT_NE(limited.body.find("retry after"), std::string::npos) << limited.body;
  auto third = Send("GET", "/api/2.0/engage?distinct_id=third", {}, {{"Authorization", SecretAuth()}});
  ASSERT_EQ(third.status, 200) << third.body;
  EXPECT_TRUE(third.Json().at("results").as_array().empty()) << third.body;

  const std::string group = R"([{"$token":")" + token_ +
                            R"(","$group_key":"company","$group_id":"acme","$set":{"pad":")" +
                            std::string(1500, 'g') + R"("}}])";
  auto group_limited = Send("POST", "/groups?verbose=1", group, {{"Content-Type", "application/json"}});
  EXPECT_EQ(group_limited.status, 429) << group_limited.body;
  EXPECT_FALSE(group_limited.Header("retry-after").empty());
}

// A request larger than a whole minute's allowance is not refused forever: it is admitted once the bucket is
// full, and the bytes after it wait until the debt it left is refilled.
TEST(RateLimiterTest, ARequestLargerThanTheAllowanceIsAdmittedOnAFullBucketAndLeavesADebt) {
  FakeClock clock(sluice::TimePoint(std::chrono::seconds(1'000'000)));
  api::RateLimiter limiter(6000, clock);   // 100 bytes per second
  EXPECT_EQ(limiter.Acquire(1, 9000), 0);  // full bucket: admitted, 3000 bytes in debt
  const int64_t wait = limiter.Acquire(1, 100);
  EXPECT_EQ(wait, 31);  // (3000 + 100) bytes at 100 per second
  clock.Advance(std::chrono::seconds(wait));
  EXPECT_EQ(limiter.Acquire(1, 100), 0);
  // Not full: a large request waits for a full bucket (a minute's worth), then gets in.
  const int64_t large_wait = limiter.Acquire(1, 9000);
  EXPECT_EQ(large_wait, 60);
  clock.Advance(std::chrono::seconds(large_wait));
  EXPECT_EQ(limiter.Acquire(1, 9000), 0);
  // Another project's bucket is its own.
  EXPECT_EQ(limiter.Acquire(2, 6000), 0);
}

TEST_F(RateLimitedApiTest, TrackStoresNothingWhenAnyProjectOfTheRequestIsLimited) {
  auto other = Send("POST", "/api/app/projects", R"({"name":"other"})", {{"Authorization", Bearer()}});
  ASSERT_EQ(other.status, 200);
  const std::string other_token = json::value_to<std::string>(other.Json().at("token"));
  auto track_event = [&](const std::string& token, const std::string& pad) {
    return R"({"event":"T","properties":{"token":")" + token + R"(","distinct_id":"d","pad":")" + pad + R"("}})";
  };
  // Use up the other project's allowance.
  ASSERT_EQ(Send("POST", "/track", "[" + track_event(other_token, std::string(3500, 'x')) + "]",
                 {{"Content-Type", "application/json"}}).body, "1");
  // A request mixing both projects is refused whole: nothing of it is kept for the first project either.
  auto mixed = Send("POST", "/track",
                    "[" + track_event(token_, "a") + "," + track_event(other_token, std::string(3500, 'y')) + "]",
                    {{"Content-Type", "application/json"}});
  EXPECT_EQ(mixed.status, 429) << mixed.body;
  // The caller holds only public tokens: the answer does not name a project's id.
  EXPECT_NE(mixed.body.find("retry after"), std::string::npos) << mixed.body;
  EXPECT_EQ(mixed.body.find("project 2"), std::string::npos) << mixed.body;
  EXPECT_TRUE(ExportAll().empty());
}


// Several nodes sharing one store (issue 13): a node's registry follows projects created and changed through
// another node's registry once its view is older than the refresh interval or a lookup misses; the embedded
// store's registry (interval 0) never reloads.
TEST(ProjectRegistryTest, ASharedStoreViewFollowsProjectsOfOtherNodes) {
  const auto dir = std::filesystem::temp_directory_path() / ("sluice-registry-" + RandomHex(64));
  {
    auto store = store::Store::Open(dir);
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    api::ProjectRegistry node_a(**store, std::chrono::milliseconds(40));
    api::ProjectRegistry node_b(**store, std::chrono::milliseconds(40));
    api::ProjectRegistry embedded(**store);
    ASSERT_TRUE(node_a.Load().ok());
    ASSERT_TRUE(node_b.Load().ok());
    ASSERT_TRUE(embedded.Load().ok());

    auto created = node_a.Create("made-on-a");
    ASSERT_TRUE(created.ok()) << created.error().ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(15));  // past a quarter of the interval: a miss reloads
    auto by_token = node_b.ByToken(created->token);
    ASSERT_TRUE(by_token.has_value());
    EXPECT_EQ(by_token->id, created->id);
    EXPECT_TRUE(node_b.BySecret(created->api_secret.Reveal()).has_value());
    EXPECT_FALSE(embedded.ByToken(created->token).has_value());

    // A change through node B is seen by node A once its view is older than the interval.
    ASSERT_TRUE(node_b.UpdateProject(created->id, {.external_id = std::string("ext-from-b")}).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto seen = node_a.ById(created->id);
    ASSERT_TRUE(seen.has_value());
    EXPECT_EQ(seen->external_id, "ext-from-b");
    // Node A now refuses that external ID for another project, as one node would.
    auto other = node_a.Create("other");
    ASSERT_TRUE(other.ok());
    EXPECT_FALSE(node_a.UpdateProject(other->id, {.external_id = std::string("ext-from-b")}).ok());
    // Unknown tokens answer "no such project" without a reload per request (at most one per interval/4).
    for (int i = 0; i < 1000; ++i) EXPECT_FALSE(node_b.ByToken("no-such-token-" + std::to_string(i)).has_value());
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice

namespace sluice::api {
namespace {

TEST(ProjectSlotsTest, LimitsEachProjectAndTheServer) {
  auto slots = std::make_shared<ProjectSlots>(/*per_project=*/1, /*total=*/2);
  std::shared_ptr<void> a = slots->TryTake(1);
  ASSERT_TRUE(a);
  EXPECT_FALSE(slots->TryTake(1)) << "one per project";
  std::shared_ptr<void> b = slots->TryTake(2);
  ASSERT_TRUE(b);
  EXPECT_FALSE(slots->TryTake(3)) << "two server-wide";
  a.reset();
  EXPECT_TRUE(slots->TryTake(3)) << "a slot given back is free again";
  auto unbounded = std::make_shared<ProjectSlots>(2, 0);
  std::vector<std::shared_ptr<void>> held;
  for (uint32_t p = 0; p < 50; ++p) held.push_back(unbounded->TryTake(p));
  EXPECT_TRUE(std::all_of(held.begin(), held.end(), [](const auto& h) { return h != nullptr; }));
}

}  // namespace
}  // namespace sluice::api
