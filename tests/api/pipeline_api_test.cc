// The JSON Pipelines management API (/api/2.0/nessie/pipeline/*) end to end over HTTP: a real Store in a temp
// dir, the Service with a hand-written FakePipelineManager that records every call, the HTTP server on a free
// loopback port, and real requests through the libcurl transport. The parameter parsers are also tested
// directly.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "api/pipeline_params.h"
#include "api/service.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "http/server.h"
#include "http/transport.h"
#include "pipeline/pipeline.h"
#include "store/store.h"
#include "support/api_harness.h"

namespace sluice {
namespace {

namespace json = boost::json;
using pipeline::DataSource;
using pipeline::DaySync;
using pipeline::DestinationType;
using pipeline::PipelineInfo;
using pipeline::PipelineSpec;
using pipeline::PipelineStatus;
using pipeline::TaskRecord;
using pipeline::TaskState;
using Params = std::vector<std::pair<std::string, std::string>>;

constexpr char kAdminToken[] = "test-admin-token-0123456789";
constexpr char kRole[] = "arn:aws:iam::123456789012:role/sluice-export";
// 2026-11-24T12:00:00Z: "today" for the from_date checks.
constexpr int64_t kNowSeconds = 1795521600;
constexpr char kToday[] = "2026-11-24";

// ---- a PipelineManager that records calls
// ----------------------------------------------------------------------

class FakePipelineManager final : public pipeline::PipelineManager {
 public:
  struct Call {
    std::string method;
    uint32_t project = 0;
    std::string name;
  };

  Result<std::vector<std::string>> Create(PipelineSpec spec) override {
    if (before_create) before_create(spec);  // outside the lock: a test may hold the call here
    std::lock_guard lock(mu_);
    calls_.push_back({"Create", spec.project_id, spec.name});
    created_.push_back(spec);
    if (auto e = FailureLocked("Create")) return *e;
    if (spec.name.empty())
      spec.name =
          "sluice-" + std::string(pipeline::ToString(spec.data_source)) + "-" + std::to_string(++counter_);
    std::string name = spec.name;
    PipelineInfo info;
    info.spec = std::move(spec);
    pipelines_[{info.spec.project_id, name}] = info;
    return std::vector<std::string>{name};
  }
  using PipelineManager::Edit;
  Status Edit(uint32_t project, std::string_view name,
              const std::function<Status(PipelineSpec&)>& change) override {
    std::lock_guard lock(mu_);
    auto it = pipelines_.find({project, std::string(name)});
    PipelineSpec updated = it != pipelines_.end() ? it->second.spec : PipelineSpec{};
    if (Status s = change(updated); !s.ok()) return s;
    updated.project_id = project;
    updated.name = std::string(name);
    calls_.push_back({"Edit", updated.project_id, updated.name});
    edited_.push_back(updated);
    if (auto e = FailureLocked("Edit")) return *e;
    if (it == pipelines_.end()) return NotFound("no pipeline named " + updated.name);
    it->second.spec = std::move(updated);
    return OkStatus();
  }
  Status Pause(uint32_t project, std::string_view name) override { return Action("Pause", project, name); }
  Status Resume(uint32_t project, std::string_view name) override { return Action("Resume", project, name); }
  Status Cancel(uint32_t project, std::string_view name) override { return Action("Cancel", project, name); }
  Status SyncNow(uint32_t project, std::string_view name) override {
    return Action("SyncNow", project, name);
  }

  Result<PipelineInfo> Get(uint32_t project, std::string_view name) override {
    std::lock_guard lock(mu_);
    calls_.push_back({"Get", project, std::string(name)});
    if (auto e = FailureLocked("Get")) return *e;
    auto it = pipelines_.find({project, std::string(name)});
    if (it == pipelines_.end())
      return NotFound("no pipeline named '" + std::string(name) + "' in this project");
    return it->second;
  }
  Result<std::vector<PipelineInfo>> List(uint32_t project) override {
    std::lock_guard lock(mu_);
    calls_.push_back({"List", project, ""});
    if (auto e = FailureLocked("List")) return *e;
    std::vector<PipelineInfo> out;
    for (const auto& [key, info] : pipelines_) {
      if (key.first == project) out.push_back(info);
    }
    return out;
  }
  Result<std::vector<TaskRecord>> Timeline(uint32_t project, std::string_view name, size_t limit) override {
    std::lock_guard lock(mu_);
    calls_.push_back({"Timeline", project, std::string(name)});
    last_limit_ = limit;
    if (auto e = FailureLocked("Timeline")) return *e;
    if (!pipelines_.count({project, std::string(name)}))
      return NotFound("no pipeline named " + std::string(name));
    std::vector<TaskRecord> out = timeline_;
    if (out.size() > limit) out.resize(limit);
    return out;
  }
  Result<std::vector<DaySync>> DaySyncs(uint32_t project, std::string_view name) override {
    std::lock_guard lock(mu_);
    calls_.push_back({"DaySyncs", project, std::string(name)});
    if (auto e = FailureLocked("DaySyncs")) return *e;
    if (!pipelines_.count({project, std::string(name)}))
      return NotFound("no pipeline named " + std::string(name));
    return day_syncs_;
  }

  // ---- test controls ----
  void Add(PipelineInfo info) {
    std::lock_guard lock(mu_);
    pipelines_[{info.spec.project_id, info.spec.name}] = std::move(info);
  }
  void FailNext(std::string method, Error e) {
    std::lock_guard lock(mu_);
    failures_[std::move(method)] = std::move(e);
  }
  void SetTimeline(std::vector<TaskRecord> t) {
    std::lock_guard lock(mu_);
    timeline_ = std::move(t);
  }
  void SetDaySyncs(std::vector<DaySync> d) {
    std::lock_guard lock(mu_);
    day_syncs_ = std::move(d);
  }
  std::vector<Call> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  std::vector<PipelineSpec> created() {
    std::lock_guard lock(mu_);
    return created_;
  }
  std::vector<PipelineSpec> edited() {
    std::lock_guard lock(mu_);
    return edited_;
  }
  PipelineInfo Stored(uint32_t project, const std::string& name) {
    std::lock_guard lock(mu_);
    return pipelines_.at({project, name});
  }
  size_t last_limit() {
    std::lock_guard lock(mu_);
    return last_limit_;
  }
  /// Calls of `method`.
  std::vector<Call> CallsOf(const std::string& method) {
    std::vector<Call> out;
    for (auto& c : calls()) {
      if (c.method == method) out.push_back(c);
    }
    return out;
  }

 private:
  Status Action(const char* method, uint32_t project, std::string_view name) {
    std::lock_guard lock(mu_);
    calls_.push_back({method, project, std::string(name)});
    if (auto e = FailureLocked(method)) return *e;
    if (!pipelines_.count({project, std::string(name)}))
      return NotFound("no pipeline named " + std::string(name));
    return OkStatus();
  }
  std::optional<Error> FailureLocked(const std::string& method) {
    auto it = failures_.find(method);
    if (it == failures_.end()) return std::nullopt;
    Error e = std::move(it->second);
    failures_.erase(it);
    return e;
  }

  std::mutex mu_;
  std::vector<Call> calls_;
  std::vector<PipelineSpec> created_, edited_;

 public:
  /// Runs at the start of Create, as a slow destination check would (set before requests are sent).
  std::function<void(const PipelineSpec&)> before_create;

 private:
  std::map<std::pair<uint32_t, std::string>, PipelineInfo> pipelines_;
  std::map<std::string, Error> failures_;
  std::vector<TaskRecord> timeline_;
  std::vector<DaySync> day_syncs_;
  size_t last_limit_ = 0;
  int counter_ = 0;
};

// ---- helpers
// ---------------------------------------------------------------------------------------------------

std::string UrlEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string Form(const Params& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += UrlEncode(k) + "=" + UrlEncode(v);
  }
  return out;
}

using testing::Reply;

/// A complete, valid create form for an S3 pipeline.
Params S3Create() {
  return {{"type", "s3"},
          {"from_date", "2026-11-01"},
          {"s3_bucket", "acme-events"},
          {"s3_region", "eu-west-1"},
          {"s3_role", kRole}};
}

Params With(Params base, const Params& extra) {
  for (const auto& kv : extra) base.push_back(kv);
  return base;
}

Params Without(Params base, const std::string& name) {
  std::erase_if(base, [&](const auto& kv) { return kv.first == name; });
  return base;
}

class PipelineApiTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(/*with_manager=*/true); }

  void Start(bool with_manager) {
    ASSERT_TRUE(api_.OpenStore().ok());
    api::ServiceOptions options{.admin_token = Secret(kAdminToken), .clock = &clock_};
    if (with_manager) options.pipelines = &manager_;
    auto served = api_.Serve(std::move(options));
    ASSERT_TRUE(served.ok()) << served.error().ToString();
    CreateProject("web", project_id_, secret_);
  }

  void CreateProject(const std::string& name, uint32_t& id, std::string& secret) {
    auto project = api_.CreateProject(name, kAdminToken);
    ASSERT_NE(project.id, 0u);
    id = project.id;
    secret = project.secret;
  }


  static std::string Bearer() { return std::string("Bearer ") + kAdminToken; }
  std::string SecretAuth() const { return "Basic " + Base64Encode(secret_ + ":"); }

  Reply Send(const std::string& method, const std::string& path, std::string body = {},
             testing::Headers headers = {}) {
    return api_.Send(method, path, std::move(body), std::move(headers));
  }

  /// POSTs `params` as a form to …/pipeline/<action> with the project's API secret.
  Reply Post(const std::string& action, const Params& params, const std::string& auth = "") {
    return Send("POST", "/api/2.0/nessie/pipeline/" + action, Form(params),
                {{"Authorization", auth.empty() ? SecretAuth() : auth},
                 {"Content-Type", "application/x-www-form-urlencoded"}});
  }
  /// GETs …/pipeline/<action>?<params> with the project's API secret.
  Reply Get(const std::string& action, const Params& params = {}) {
    std::string q = Form(params);
    return Send("GET", "/api/2.0/nessie/pipeline/" + action + (q.empty() ? "" : "?" + q), {},
                {{"Authorization", SecretAuth()}});
  }

  /// A pipeline of this project the fake knows.
  PipelineInfo AddPipeline(const std::string& name, DataSource source = DataSource::kEvents) {
    PipelineInfo info;
    info.spec.project_id = project_id_;
    info.spec.name = name;
    info.spec.type_param = "s3";
    info.spec.data_source = source;
    info.spec.from_date = "2026-11-01";
    info.spec.events =
        source == DataSource::kEvents ? std::vector<std::string>{"Signed Up"} : std::vector<std::string>{};
    info.spec.destination.s3_bucket = "acme-events";
    info.spec.destination.s3_region = "eu-west-1";
    info.spec.destination.s3_role = kRole;
    info.spec.destination.s3_prefix = "exports";
    info.spec.destination.encryption = {objstore::Encryption::Mode::kKms,
                                        "arn:aws:kms:eu-west-1:123456789012:key/k1"};
    info.spec.created_ms = 1795000000000;
    manager_.Add(info);
    return info;
  }

  FakeClock clock_{TimePoint(std::chrono::seconds(kNowSeconds))};
  FakePipelineManager manager_;
  testing::ApiHarness api_;
  uint32_t project_id_ = 0;
  std::string secret_;
};

// ---- without a manager
// -----------------------------------------------------------------------------------------

class PipelineApiDisabledTest : public PipelineApiTest {
 protected:
  void SetUp() override { Start(/*with_manager=*/false); }
};

TEST_F(PipelineApiDisabledTest, EveryRouteAnswers503WithoutAManager) {
  for (const char* action :
       {"create", "edit", "pause", "resume", "cancel", "sync", "status", "jobs", "timeline"}) {
    auto r = Post(action, {{"name", "x"}});
    EXPECT_EQ(r.status, 503) << action;
    EXPECT_EQ(r.body, R"({"error":"pipelines are not enabled on this server","status":"error"})") << action;
  }
  for (const char* action : {"status", "jobs", "timeline"})
    EXPECT_EQ(Get(action, {{"name", "x"}}).status, 503);
}

// ---- authentication
// --------------------------------------------------------------------------------------------

TEST_F(PipelineApiTest, RequiresTheProjectSecretOrTheAdminToken) {
  AddPipeline("p1");
  // No credentials.
  auto r = Send("GET", "/api/2.0/nessie/pipeline/jobs");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.Error().find("Invalid credentials"), std::string::npos) << r.body;
  // A wrong secret.
  EXPECT_EQ(Post("pause", {{"name", "p1"}}, "Basic " + Base64Encode("not-the-secret:")).status, 401);
  // The right secret but another project's id.
  uint32_t other_id = 0;
  std::string other_secret;
  CreateProject("other", other_id, other_secret);
  EXPECT_EQ(Post("pause", {{"name", "p1"}, {"project_id", std::to_string(other_id)}}).status, 401);
  // The admin token needs project_id, then acts for that project.
  EXPECT_EQ(Post("pause", {{"name", "p1"}}, Bearer()).status, 400);
  EXPECT_EQ(Post("pause", {{"name", "p1"}, {"project_id", std::to_string(project_id_)}}, Bearer()).status,
            200);
  // Nothing was paused by the refused requests.
  auto pauses = manager_.CallsOf("Pause");
  ASSERT_EQ(pauses.size(), 1u);
  EXPECT_EQ(pauses[0].project, project_id_);

  // Another project's secret sees only its own pipelines: the manager is asked for that project.
  auto other = Send("POST", "/api/2.0/nessie/pipeline/pause", Form({{"name", "p1"}}),
                    {{"Authorization", "Basic " + Base64Encode(other_secret + ":")},
                     {"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(other.status, 404) << other.body;
  EXPECT_EQ(manager_.CallsOf("Pause").back().project, other_id);
}

// ---- create
// ----------------------------------------------------------------------------------------------------

TEST_F(PipelineApiTest, CreatePassesEveryParameterToTheManager) {
  auto r = Post("create", {{"type", "s3-raw"},
                           {"trial", "false"},  // trial=true has its own rules (TrialPipelinesFollow…)
                           {"data_source", "events"},
                           {"from_date", "2026-10-01"},
                           {"to_date", "2026-10-31"},
                           {"frequency", "hourly"},
                           {"sync", "false"},
                           {"events", "Signed Up"},
                           {"events", "Purchase"},
                           {"where", R"(properties["$os"] == "Linux")"},
                           {"s3_bucket", "acme-events"},
                           {"s3_region", "eu-west-1"},
                           {"s3_role", kRole},
                           {"s3_prefix", "/exports/mixpanel/"},
                           {"s3_encryption", "kms"},
                           {"s3_kms_key_id", "arn:aws:kms:eu-west-1:123456789012:key/k1"},
                           {"s3_endpoint", "http://127.0.0.1:9000/"},
                           {"compression", "zstd"},
                           {"data_format", "json"},
                           {"some_future_mixpanel_param", "ignored"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"pipeline_names":["sluice-events-1"]})");
  auto created = manager_.created();
  ASSERT_EQ(created.size(), 1u);
  const PipelineSpec& s = created[0];
  EXPECT_EQ(s.project_id, project_id_);
  EXPECT_EQ(s.name, "");
  EXPECT_EQ(s.type_param, "s3-raw");
  EXPECT_EQ(s.destination.type, DestinationType::kS3);
  EXPECT_FALSE(s.trial);
  EXPECT_EQ(s.data_source, DataSource::kEvents);
  EXPECT_EQ(s.from_date, "2026-10-01");
  EXPECT_EQ(s.to_date, "2026-10-31");
  EXPECT_FALSE(s.recurring());
  EXPECT_EQ(s.frequency, pipeline::Frequency::kHourly);
  EXPECT_FALSE(s.sync);
  EXPECT_EQ(s.events, (std::vector<std::string>{"Signed Up", "Purchase"}));
  EXPECT_EQ(s.where, R"(properties["$os"] == "Linux")");
  EXPECT_EQ(s.compression, pipeline::Compression::kZstd);
  EXPECT_EQ(s.destination.s3_bucket, "acme-events");
  EXPECT_EQ(s.destination.s3_region, "eu-west-1");
  EXPECT_EQ(s.destination.s3_role, kRole);
  EXPECT_EQ(s.destination.s3_prefix, "exports/mixpanel");  // slashes at the ends dropped
  EXPECT_EQ(s.destination.s3_endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(s.destination.encryption.mode, objstore::Encryption::Mode::kKms);
  EXPECT_EQ(s.destination.encryption.kms_key_id, "arn:aws:kms:eu-west-1:123456789012:key/k1");
  EXPECT_EQ(s.created_ms, kNowSeconds * 1000);
}

TEST_F(PipelineApiTest, CreateDefaults) {
  auto r = Post("create", S3Create());
  ASSERT_EQ(r.status, 200) << r.body;
  const PipelineSpec s = manager_.created().at(0);
  EXPECT_EQ(s.type_param, "s3");
  EXPECT_FALSE(s.trial);
  EXPECT_EQ(s.data_source, DataSource::kEvents);
  EXPECT_TRUE(s.recurring());
  EXPECT_EQ(s.frequency, pipeline::Frequency::kDaily);
  EXPECT_TRUE(s.sync);  // Sluice's default
  EXPECT_TRUE(s.events.empty());
  EXPECT_TRUE(s.where.empty());
  EXPECT_EQ(s.compression, pipeline::Compression::kGzip);
  EXPECT_EQ(s.destination.encryption.mode, objstore::Encryption::Mode::kNone);
  EXPECT_EQ(s.destination.s3_prefix, "");
  EXPECT_EQ(s.destination.s3_endpoint, "");
}

TEST_F(PipelineApiTest, CreateAcceptsQueryParametersAndANameAndToday) {
  // Every parameter in the query, no body; from_date today is the latest allowed.
  std::string q =
      Form(With(Without(S3Create(), "from_date"), {{"name", "nightly.events_v2"}, {"from_date", kToday}}));
  auto r = Send("POST", "/api/2.0/nessie/pipeline/create?" + q, {}, {{"Authorization", SecretAuth()}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"pipeline_names":["nightly.events_v2"]})");
  EXPECT_EQ(manager_.created().at(0).from_date, kToday);
}

TEST_F(PipelineApiTest, CreateKeepsRepeatedEventsAndAcceptsAJsonArray) {
  ASSERT_EQ(
      Post("create", With(S3Create(), {{"events", "A"}, {"events", R"(["B","A","C d"])"}, {"events", "B"}}))
          .status,
      200);
  EXPECT_EQ(manager_.created().at(0).events, (std::vector<std::string>{"A", "B", "C d"}));
  // Repeated keys also survive in the query string.
  auto r = Send("POST", "/api/2.0/nessie/pipeline/create?events=X&events=Y", Form(S3Create()),
                {{"Authorization", SecretAuth()}, {"Content-Type", "application/x-www-form-urlencoded"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(manager_.created().at(1).events, (std::vector<std::string>{"X", "Y"}));
}

TEST_F(PipelineApiTest, CreateLocalPipelinesAndSnapshots) {
  ASSERT_EQ(
      Post("create", {{"type", "local"}, {"from_date", "2026-11-20"}, {"local_path", "/var/lib/export"}})
          .status,
      200);
  auto s = manager_.created().at(0);
  EXPECT_EQ(s.destination.type, DestinationType::kLocal);
  EXPECT_EQ(s.destination.local_path, "/var/lib/export");
  ASSERT_EQ(Post("create", With(S3Create(), {{"data_source", "people"}})).status, 200);
  EXPECT_EQ(manager_.created().at(1).data_source, DataSource::kPeople);
  ASSERT_EQ(Post("create", With(S3Create(), {{"data_source", "identity"}, {"frequency", "daily"}})).status,
            200);
  EXPECT_EQ(manager_.created().at(2).data_source, DataSource::kIdentity);
  // Mixpanel replaces people (and identity) data "based on the chosen schedule (daily or hourly)".
  ASSERT_EQ(Post("create", With(S3Create(), {{"data_source", "people"}, {"frequency", "hourly"}})).status,
            200);
  EXPECT_EQ(manager_.created().at(3).frequency, pipeline::Frequency::kHourly);
}

struct InvalidCase {
  const char* what;
  Params params;
  const char* message_part;
};

TEST_F(PipelineApiTest, CreateRefusesEveryInvalidParameterWithAClearMessage) {
  const std::vector<InvalidCase> cases = {
      {"no type", Without(S3Create(), "type"), "type is required"},
      {"unknown type", With(Without(S3Create(), "type"), {{"type", "bigquery"}}),
       "type 'bigquery' is not supported"},
      {"s3 parameters for gcs", With(Without(S3Create(), "type"), {{"type", "gcs-raw"}}),
       "s3_bucket does not apply to type=gcs"},
      {"bad trial", With(S3Create(), {{"trial", "maybe"}}), "trial 'maybe' is not a boolean"},
      {"bad data_source", With(S3Create(), {{"data_source", "cohorts"}}),
       "data_source 'cohorts' is not valid"},
      {"no from_date", Without(S3Create(), "from_date"), "from_date is required"},
      {"bad from_date", With(Without(S3Create(), "from_date"), {{"from_date", "2026-13-01"}}),
       "from_date '2026-13-01' is not a valid date"},
      {"from_date not padded", With(Without(S3Create(), "from_date"), {{"from_date", "2026-1-01"}}),
       "is not a valid date"},
      {"from_date tomorrow", With(Without(S3Create(), "from_date"), {{"from_date", "2026-11-25"}}),
       "from_date 2026-11-25 is in the future (today is 2026-11-24 UTC)"},
      {"bad to_date", With(S3Create(), {{"to_date", "soon"}}), "to_date 'soon' is not a valid date"},
      {"to_date before from_date", With(S3Create(), {{"to_date", "2026-10-31"}}),
       "to_date 2026-10-31 is before from_date 2026-11-01"},
      {"bad frequency", With(S3Create(), {{"frequency", "weekly"}}), "frequency 'weekly' is not valid"},
      {"events for people", With(S3Create(), {{"data_source", "people"}, {"events", "A"}}),
       "does not apply to data_source=people"},
      {"where for identity",
       With(S3Create(), {{"data_source", "identity"}, {"where", "defined(properties[\"a\"])"}}),
       "does not apply to data_source=identity"},
      {"bad sync", With(S3Create(), {{"sync", "sometimes"}}), "sync 'sometimes' is not a boolean"},
      {"events not an array", With(S3Create(), {{"events", "[\"A\","}}),
       "must be a JSON array of event names"},
      {"events array of numbers", With(S3Create(), {{"events", "[1,2]"}}), "must be a string"},
      {"event name too long", With(S3Create(), {{"events", std::string(256, 'e')}}), "longer than 255 bytes"},
      {"no bucket", Without(S3Create(), "s3_bucket"), "s3_bucket is required"},
      {"no region", Without(S3Create(), "s3_region"), "s3_region is required"},
      {"no role", Without(S3Create(), "s3_role"), "s3_role is required"},
      {"bucket as URL", With(Without(S3Create(), "s3_bucket"), {{"s3_bucket", "s3://acme-events"}}),
       "is not a valid bucket name"},
      {"bucket upper case", With(Without(S3Create(), "s3_bucket"), {{"s3_bucket", "Acme"}}),
       "is not a valid bucket"},
      {"bad region", With(Without(S3Create(), "s3_region"), {{"s3_region", "EU West"}}),
       "is not a region name"},
      {"role not an ARN", With(Without(S3Create(), "s3_role"), {{"s3_role", "sluice-export"}}),
       "is not an IAM role ARN"},
      {"user ARN", With(Without(S3Create(), "s3_role"), {{"s3_role", "arn:aws:iam::123456789012:user/bob"}}),
       "is not an IAM role ARN"},
      {"short account", With(Without(S3Create(), "s3_role"), {{"s3_role", "arn:aws:iam::1234:role/x"}}),
       "is not an IAM role ARN"},
      {"prefix with ..", With(S3Create(), {{"s3_prefix", "a/../b"}}), "has an empty, '.' or '..' part"},
      {"prefix with //", With(S3Create(), {{"s3_prefix", "a//b"}}), "has an empty, '.' or '..' part"},
      {"bad encryption", With(S3Create(), {{"s3_encryption", "rot13"}}),
       "s3_encryption 'rot13' is not valid"},
      {"kms key without kms", With(S3Create(), {{"s3_kms_key_id", "k1"}}), "s3_kms_key_id is only used with"},
      {"kms key with aes", With(S3Create(), {{"s3_encryption", "aes"}, {"s3_kms_key_id", "k1"}}),
       "s3_kms_key_id is only used with"},
      {"endpoint not a URL", With(S3Create(), {{"s3_endpoint", "minio:9000"}}),
       "must be an http:// or https:// URL"},
      {"bad compression", With(S3Create(), {{"compression", "lz4"}}), "compression 'lz4' is not valid"},
      {"where syntax", With(S3Create(), {{"where", R"(properties["plan" == "pro")"}}),
       "expected ']' after the property name, found '==' at position 18"},
      {"where unknown function", With(S3Create(), {{"where", "frobnicate(1)"}}), "where:"},
      {"bad data_format", With(S3Create(), {{"data_format", "parquet"}}),
       "data_format 'parquet' is not supported"},
      {"bad name", With(S3Create(), {{"name", "my pipeline"}}), "name 'my pipeline' is not valid"},
      {"local without path",
       {{"type", "local"}, {"from_date", "2026-11-01"}},
       "local_path is required for type=local"},
      {"local path with ..",
       {{"type", "local"}, {"from_date", "2026-11-01"}, {"local_path", "out/../../etc"}},
       "may not contain '..' parts"},
      {"endpoint with a path", With(S3Create(), {{"s3_endpoint", "http://127.0.0.1:9000/bucket"}}),
       "has a path, query or fragment"},
      {"endpoint with a query", With(S3Create(), {{"s3_endpoint", "https://s3.example.com?x=1"}}),
       "has a path, query or fragment"},
      {"endpoint with user info", With(S3Create(), {{"s3_endpoint", "http://user:pw@s3.example.com"}}),
       "has a user name or password"},
      {"endpoint with a bad port", With(S3Create(), {{"s3_endpoint", "http://s3.example.com:99999"}}),
       "has an invalid port"},
      {"local with bucket",
       {{"type", "local"}, {"from_date", "2026-11-01"}, {"local_path", "/x"}, {"s3_bucket", "acme-events"}},
       "s3_bucket does not apply to type=local"},
      {"local with encryption",
       {{"type", "local"}, {"from_date", "2026-11-01"}, {"local_path", "/x"}, {"s3_encryption", "aes"}},
       "s3_encryption does not apply to type=local"},
      {"s3 with local_path", With(S3Create(), {{"local_path", "/x"}}),
       "local_path only applies to type=local"},
  };
  for (const auto& c : cases) {
    auto r = Post("create", c.params);
    EXPECT_EQ(r.status, 400) << c.what << ": " << r.body;
    if (r.status != 400) continue;
    EXPECT_EQ(r.Json().at("status").as_string(), "error") << c.what;
    EXPECT_NE(r.Error().find(c.message_part), std::string::npos) << c.what << ": " << r.body;
  }
  EXPECT_TRUE(manager_.created().empty()) << "an invalid request reached the manager";
}

TEST_F(PipelineApiTest, CreateMapsManagerErrorsToStatusCodes) {
  const std::vector<std::tuple<ErrorCode, int>> cases = {
      {ErrorCode::kInvalidArgument, 400}, {ErrorCode::kConflict, 400},    {ErrorCode::kAccessDenied, 400},
      {ErrorCode::kNotFound, 404},        {ErrorCode::kUnavailable, 503}, {ErrorCode::kTransient, 503},
      {ErrorCode::kInternal, 500},        {ErrorCode::kPermanent, 400},
  };
  for (const auto& [code, status] : cases) {
    std::string message = std::string("manager says ") + std::string(ErrorCodeName(code));
    manager_.FailNext("Create", Error(code, message));
    auto r = Post("create", S3Create());
    EXPECT_EQ(r.status, status) << ErrorCodeName(code) << ": " << r.body;
    EXPECT_EQ(r.body, json::serialize(json::object{{"error", message}, {"status", "error"}}));
  }
  // The destination check's report reaches the caller as it is.
  manager_.FailNext(
      "Create", Error(ErrorCode::kAccessDenied,
                      "destination check failed: put: s3:PutObject denied on arn:aws:s3:::acme-events/*"));
  auto r = Post("create", S3Create());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Error(), "destination check failed: put: s3:PutObject denied on arn:aws:s3:::acme-events/*");
}

TEST_F(PipelineApiTest, ChangesArePostOnly) {
  AddPipeline("p1");
  for (const char* action : {"create", "edit", "pause", "resume", "cancel", "sync"}) {
    auto r = Get(action, {{"name", "p1"}});
    EXPECT_EQ(r.status, 405) << action;
  }
  EXPECT_TRUE(manager_.CallsOf("Pause").empty());
}

// ---- edit
// ------------------------------------------------------------------------------------------------------

TEST_F(PipelineApiTest, EditAppliesOnlyTheGivenParameters) {
  AddPipeline("p1");
  auto r = Post("edit", {{"name", "p1"},
                         {"events", "A"},
                         {"events", "B"},
                         {"where", "defined(properties[\"plan\"])"},
                         {"to_date", "2026-12-31"},
                         {"sync", "false"},
                         {"compression", "none"},
                         {"s3_region", "us-west-2"},
                         {"s3_encryption", "aes"},
                         {"type", "s3"},
                         {"from_date", "2026-11-01"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"name":"p1","status":"ok"})");
  auto edited = manager_.edited();
  ASSERT_EQ(edited.size(), 1u);
  const auto& s = edited[0];
  EXPECT_EQ(s.project_id, project_id_);
  EXPECT_EQ(s.name, "p1");
  EXPECT_EQ(s.events, (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(s.where, "defined(properties[\"plan\"])");
  EXPECT_EQ(s.to_date, "2026-12-31");
  EXPECT_FALSE(s.sync);
  EXPECT_EQ(s.compression, pipeline::Compression::kNone);
  EXPECT_EQ(s.destination.s3_region, "us-west-2");
  EXPECT_EQ(s.destination.encryption.mode, objstore::Encryption::Mode::kAes256);
  EXPECT_EQ(s.destination.encryption.kms_key_id, "");  // leaving kms drops its key
  // Untouched fields keep their values.
  EXPECT_EQ(s.from_date, "2026-11-01");
  EXPECT_EQ(s.destination.s3_bucket, "acme-events");
  EXPECT_EQ(s.destination.s3_role, kRole);
  EXPECT_EQ(s.frequency, pipeline::Frequency::kDaily);
  EXPECT_EQ(s.created_ms, 1795000000000);
}

// Mixpanel's edit API names an Azure pipeline's credentials azure_client_id, azure_client_secret and
// azure_tenant_id (a rotation script sends those); Sluice's create names work too, and both at once must
// agree.
TEST_F(PipelineApiTest, EditAcceptsMixpanelsAzureCredentialNames) {
  PipelineInfo info = AddPipeline("az");
  info.spec.type_param = "azure-raw";
  info.spec.events.clear();
  info.spec.destination = pipeline::Destination{};
  info.spec.destination.type = pipeline::DestinationType::kAzure;
  info.spec.destination.azure_storage_account = "acmeexports";
  info.spec.destination.azure_container = "mixpanel";
  info.spec.destination.azure_client_id = "11111111-2222-3333-4444-555555555555";
  info.spec.destination.azure_tenant_id = "contoso.onmicrosoft.com";
  info.spec.destination.azure_client_secret = Secret(std::string("old-secret"));
  manager_.Add(info);
  auto r = Post("edit", {{"name", "az"},
                         {"azure_client_id", "66666666-7777-8888-9999-000000000000"},
                         {"azure_client_secret", "new-secret"},
                         {"azure_tenant_id", "fabrikam.onmicrosoft.com"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const pipeline::Destination d = manager_.edited().at(0).destination;
  EXPECT_EQ(d.azure_client_id, "66666666-7777-8888-9999-000000000000");
  EXPECT_EQ(d.azure_tenant_id, "fabrikam.onmicrosoft.com");
  EXPECT_EQ(d.azure_client_secret.Reveal(), "new-secret");
  EXPECT_EQ(d.azure_storage_account, "acmeexports");
  // The same value under both names is one setting; different values are refused.
  ASSERT_EQ(Post("edit", {{"name", "az"}, {"client_secret", "s2"}, {"azure_client_secret", "s2"}}).status,
            200);
  EXPECT_EQ(manager_.edited().at(1).destination.azure_client_secret.Reveal(), "s2");
  r = Post("edit", {{"name", "az"}, {"client_secret", "s3"}, {"azure_client_secret", "s4"}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.Error().find("client_secret and azure_client_secret"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("s4"), std::string::npos) << "a secret is never echoed";
}

TEST_F(PipelineApiTest, EditClearsTheWhitelistWhereAndToDate) {
  PipelineInfo info = AddPipeline("p1");
  info.spec.where = "defined(properties[\"a\"])";
  info.spec.to_date = "2026-12-01";
  manager_.Add(info);
  ASSERT_EQ(Post("edit", {{"name", "p1"}, {"events", "[]"}, {"where", ""}, {"to_date", ""}}).status, 200);
  const auto s = manager_.edited().at(0);
  EXPECT_TRUE(s.events.empty());
  EXPECT_TRUE(s.where.empty());
  EXPECT_TRUE(s.recurring());
}

TEST_F(PipelineApiTest, EditRefusesImmutableAndInvalidChanges) {
  AddPipeline("p1");
  AddPipeline("people", DataSource::kPeople);
  const std::vector<InvalidCase> cases = {
      {"no name", {{"events", "A"}}, "name is required"},
      {"nothing to change", {{"name", "p1"}}, "nothing to change"},
      {"type", {{"name", "p1"}, {"type", "local"}, {"local_path", "/x"}}, "type cannot be changed"},
      {"data_source", {{"name", "p1"}, {"data_source", "people"}}, "data_source cannot be changed"},
      {"from_date",
       {{"name", "p1"}, {"from_date", "2026-11-02"}, {"sync", "true"}},
       "from_date cannot be changed"},
      {"trial", {{"name", "p1"}, {"trial", "true"}, {"sync", "true"}}, "trial cannot be changed"},
      {"to_date before from_date", {{"name", "p1"}, {"to_date", "2026-10-01"}}, "is before from_date"},
      {"kms key without kms",
       {{"name", "p1"}, {"s3_encryption", "none"}, {"s3_kms_key_id", "k2"}},
       "s3_kms_key_id is only used with"},
      {"empty bucket", {{"name", "p1"}, {"s3_bucket", ""}}, "s3_bucket is required"},
      {"where syntax", {{"name", "p1"}, {"where", "properties[\"a\"] =="}}, "where:"},
  };
  for (const auto& c : cases) {
    auto r = Post("edit", c.params);
    EXPECT_EQ(r.status, 400) << c.what << ": " << r.body;
    if (r.status == 400) {
      EXPECT_NE(r.Error().find(c.message_part), std::string::npos) << c.what << ": " << r.body;
    }
  }
  EXPECT_TRUE(manager_.edited().empty());
  // An unknown pipeline: 404 from the manager's Get.
  auto r = Post("edit", {{"name", "nope"}, {"sync", "true"}});
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_NE(r.Error().find("no pipeline named 'nope'"), std::string::npos);
  // The manager's own refusal (e.g. the new destination fails its check).
  manager_.FailNext("Edit", Error(ErrorCode::kAccessDenied, "destination check failed: assume-role denied"));
  r = Post("edit", {{"name", "p1"}, {"s3_role", "arn:aws:iam::123456789012:role/other"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Error(), "destination check failed: assume-role denied");
}

// A request that checks a customer's bucket holds an HTTP thread for as long as the check takes, so a project
// runs one at a time (the server a few): a second create or an edit of the same project, while its first
// create is still checking, is answered 429 with Retry-After at once; another project's create goes ahead.
TEST_F(PipelineApiTest, OneBucketCheckAtATimePerProject) {
  uint32_t other_id = 0;
  std::string other_secret;
  CreateProject("other", other_id, other_secret);
  AddPipeline("p1");
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, release = false;
  manager_.before_create = [&](const PipelineSpec& spec) {
    if (spec.project_id != project_id_) return;
    std::unique_lock lock(mu);
    entered = true;
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return release; });
  };
  const Params create = {{"type", "s3"},
                         {"from_date", kToday},
                         {"s3_bucket", "acme-events"},
                         {"s3_region", "us-east-1"},
                         {"s3_role", kRole}};
  std::thread slow([&] {
    auto r = Post("create", With(create, {{"name", "slow"}}));
    EXPECT_EQ(r.status, 200) << r.body;
  });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return entered; }));
  }
  for (const auto& [action, params] : std::vector<std::pair<std::string, Params>>{
           {"create", With(create, {{"name", "second"}})}, {"edit", {{"name", "p1"}, {"s3_role", kRole}}}}) {
    auto busy = Post(action, params);
    EXPECT_EQ(busy.status, 429) << action << ": " << busy.body;
    EXPECT_EQ(busy.Header("retry-after"), "5") << action;
    EXPECT_NE(busy.Error().find("checking its bucket"), std::string::npos) << busy.body;
  }
  auto theirs =
      Post("create", With(create, {{"name", "theirs"}}), "Basic " + Base64Encode(other_secret + ":"));
  EXPECT_EQ(theirs.status, 200) << theirs.body;
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  slow.join();
  manager_.before_create = nullptr;
  EXPECT_EQ(Post("create", With(create, {{"name", "after"}})).status, 200);
}

// ---- pause, resume, cancel, sync
// -------------------------------------------------------------------------------

TEST_F(PipelineApiTest, PauseResumeCancelAndSyncCallTheManager) {
  AddPipeline("p1");
  const std::vector<std::pair<std::string, std::string>> actions = {
      {"pause", "Pause"}, {"resume", "Resume"}, {"cancel", "Cancel"}, {"sync", "SyncNow"}};
  for (const auto& [action, method] : actions) {
    auto r = Post(action, {{"name", "p1"}});
    ASSERT_EQ(r.status, 200) << action << ": " << r.body;
    EXPECT_EQ(r.body, R"({"name":"p1","status":"ok"})");
    auto calls = manager_.CallsOf(method);
    ASSERT_EQ(calls.size(), 1u) << method;
    EXPECT_EQ(calls[0].project, project_id_);
    EXPECT_EQ(calls[0].name, "p1");

    auto missing = Post(action, {});
    EXPECT_EQ(missing.status, 400) << action;
    EXPECT_NE(missing.Error().find("name is required"), std::string::npos);
    auto unknown = Post(action, {{"name", "nope"}});
    EXPECT_EQ(unknown.status, 404) << action;
  }
  // sync takes the name from the query too (POST …/sync?name=p1 with no body).
  auto r = Send("POST", "/api/2.0/nessie/pipeline/sync?name=p1", {}, {{"Authorization", SecretAuth()}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(manager_.CallsOf("SyncNow").size(), 3u);  // ok, nope, and this one
  // A state the manager refuses (resuming a canceled pipeline) is a 400 with its message.
  manager_.FailNext("Resume", Error(ErrorCode::kConflict, "pipeline p1 is canceled; create a new one"));
  r = Post("resume", {{"name", "p1"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Error(), "pipeline p1 is canceled; create a new one");
  manager_.FailNext("SyncNow", Error(ErrorCode::kUnavailable, "the scheduler is shutting down"));
  EXPECT_EQ(Post("sync", {{"name", "p1"}}).status, 503);
}

// ---- status, jobs, timeline
// ------------------------------------------------------------------------------------

std::vector<TaskRecord> SampleTasks() {
  // Newest first, as the manager returns them.
  TaskRecord a{.task_id = "t3",
               .partition = "2026-11-23",
               .kind = "sync",
               .state = TaskState::kRunning,
               .attempts = 1,
               .scheduled_ms = 1795480200000,
               .started_ms = 1795480201000};
  TaskRecord b{.task_id = "t2",
               .partition = "2026-11-22T13",
               .kind = "scheduled",
               .state = TaskState::kSucceeded,
               .attempts = 2,
               .scheduled_ms = 1795357800000,
               .started_ms = 1795357801000,
               .finished_ms = 1795357861000,
               .records = 1200,
               .bytes = 34567,
               .generation = 3};
  TaskRecord c{.task_id = "t1",
               .partition = "2026-11-21",
               .kind = "backfill",
               .state = TaskState::kFailed,
               .attempts = 5,
               .scheduled_ms = 1795307400000,
               .started_ms = 1795307401000,
               .finished_ms = 1795307500000,
               .message = "AccessDenied: s3:PutObject"};
  TaskRecord d{.task_id = "t0",
               .partition = "2026-11-20",
               .kind = "backfill",
               .state = TaskState::kSucceeded,
               .attempts = 1,
               .scheduled_ms = 1795221000000,
               .finished_ms = 1795221100000,
               .records = 10,
               .bytes = 300,
               .generation = 1};
  return {a, b, c, d};
}

TEST_F(PipelineApiTest, StatusGroupsTasksByStateWithDaySyncsAndSluiceFields) {
  PipelineInfo info = AddPipeline("p1");
  info.status = PipelineStatus::kPaused;
  info.dispatcher = "recurring";
  info.failure_message = "s3:PutObject denied: add it to the role's policy, then resume";
  info.last_dispatched_ms = 1795480200000;
  info.partitions_exported = 7;
  info.events_exported = 12345;
  info.bytes_exported = 678901;
  manager_.Add(info);
  manager_.SetTimeline(SampleTasks());
  manager_.SetDaySyncs({DaySync{.date = "2026-11-20",
                                .sync_times = {1795221100000, 1795307500000},
                                .status = TaskState::kSucceeded},
                        DaySync{.date = "2026-11-21", .sync_times = {}, .status = TaskState::kFailed}});

  auto r = Get("status", {{"name", "p1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = r.Json().as_object();
  EXPECT_EQ(v.at("name").as_string(), "p1");
  EXPECT_EQ(v.at("status").as_string(), "paused");
  EXPECT_EQ(v.at("dispatcher").as_string(), "recurring");
  EXPECT_EQ(v.at("failure_message").as_string(), info.failure_message);
  EXPECT_EQ(v.at("last_dispatched").as_string(), "2026-11-24T00:30:00Z");
  EXPECT_EQ(json::serialize(v.at("counters")),
            R"({"partitions_exported":7,"events_exported":12345,"bytes_exported":678901})");
  EXPECT_EQ(json::serialize(v.at("day_syncs")),
            R"([{"date":"2026-11-20","sync_times":["2026-11-21T00:31:40Z","2026-11-22T00:31:40Z"],)"
            R"("status":"succeeded"},{"date":"2026-11-21","sync_times":[],"status":"failed"}])");
  ASSERT_EQ(v.at("succeeded").as_array().size(), 2u);
  ASSERT_EQ(v.at("failed").as_array().size(), 1u);
  ASSERT_EQ(v.at("running").as_array().size(), 1u);
  EXPECT_FALSE(v.contains("pending"));
  const auto& hourly = v.at("succeeded").as_array()[0].as_object();
  EXPECT_EQ(hourly.at("project_id").as_int64(), project_id_);
  EXPECT_EQ(hourly.at("name").as_string(), "p1");
  EXPECT_EQ(hourly.at("state").as_string(), "succeeded");
  EXPECT_EQ(hourly.at("run_at").as_string(), "2026-11-22T14:30:00Z");
  EXPECT_EQ(hourly.at("last_finish").as_string(), "2026-11-22T14:31:01Z");
  EXPECT_EQ(hourly.at("from_date").as_string(), "2026-11-22T13:00:00Z");
  EXPECT_EQ(hourly.at("to_date").as_string(), "2026-11-22T13:00:00Z");
  EXPECT_EQ(hourly.at("task_id").as_string(), "t2");
  EXPECT_EQ(hourly.at("partition").as_string(), "2026-11-22T13");
  EXPECT_EQ(hourly.at("kind").as_string(), "scheduled");
  EXPECT_EQ(hourly.at("attempts").as_int64(), 2);
  EXPECT_EQ(hourly.at("records").to_number<uint64_t>(), 1200u);
  EXPECT_EQ(hourly.at("bytes").to_number<uint64_t>(), 34567u);
  EXPECT_EQ(hourly.at("generation").to_number<uint64_t>(), 3u);
  const auto& running = v.at("running").as_array()[0].as_object();
  EXPECT_TRUE(running.at("last_finish").is_null());
  EXPECT_EQ(running.at("from_date").as_string(), "2026-11-23T00:00:00Z");
  EXPECT_EQ(v.at("failed").as_array()[0].at("message").as_string(), "AccessDenied: s3:PutObject");
}

TEST_F(PipelineApiTest, StatusSummaryCountsAndStatusFilter) {
  AddPipeline("p1");
  manager_.SetTimeline(SampleTasks());
  manager_.SetDaySyncs(
      {DaySync{.date = "2026-11-20", .sync_times = {1795221100000}, .status = TaskState::kSucceeded},
       DaySync{.date = "2026-11-21", .sync_times = {}, .status = TaskState::kFailed}});
  auto r = Post("status", {{"name", "p1"}, {"summary", "true"}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = r.Json().as_object();
  EXPECT_EQ(v.at("succeeded").as_int64(), 2);
  EXPECT_EQ(v.at("failed").as_int64(), 1);
  EXPECT_EQ(v.at("running").as_int64(), 1);

  // status=failed (also as a list: status=failed,running or a JSON array) keeps those tasks and days only.
  r = Get("status", {{"name", "p1"}, {"status", "failed"}});
  ASSERT_EQ(r.status, 200) << r.body;
  v = r.Json().as_object();
  EXPECT_TRUE(v.contains("failed"));
  EXPECT_FALSE(v.contains("succeeded"));
  EXPECT_FALSE(v.contains("running"));
  ASSERT_EQ(v.at("day_syncs").as_array().size(), 1u);
  EXPECT_EQ(v.at("day_syncs").as_array()[0].at("date").as_string(), "2026-11-21");
  v = Get("status", {{"name", "p1"}, {"status", "failed,running"}, {"summary", "1"}}).Json().as_object();
  EXPECT_EQ(v.at("failed").as_int64(), 1);
  EXPECT_EQ(v.at("running").as_int64(), 1);
  EXPECT_FALSE(v.contains("succeeded"));
  v = Get("status", {{"name", "p1"}, {"status", R"(["succeeded"])"}, {"summary", "true"}}).Json().as_object();
  EXPECT_EQ(v.at("succeeded").as_int64(), 2);
  EXPECT_FALSE(v.contains("failed"));

  auto bad = Get("status", {{"name", "p1"}, {"status", "exploded"}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.Error().find("status 'exploded' is not a task state"), std::string::npos);
  EXPECT_EQ(Get("status", {{"name", "p1"}, {"summary", "perhaps"}}).status, 400);
  EXPECT_EQ(Get("status", {}).status, 400);
  EXPECT_EQ(Get("status", {{"name", "nope"}}).status, 404);
  manager_.FailNext("Timeline", Internal("timeline store is corrupt"));
  EXPECT_EQ(Get("status", {{"name", "p1"}}).status, 500);
}

TEST_F(PipelineApiTest, JobsListsTheProjectsPipelinesInMixpanelsShape) {
  PipelineInfo info = AddPipeline("p1");
  info.dispatcher = "recurring";
  info.last_dispatched_ms = 1795480200000;
  info.status = PipelineStatus::kActive;
  manager_.Add(info);
  PipelineInfo local;
  local.spec.project_id = project_id_;
  local.spec.name = "p2";
  local.spec.type_param = "local";
  local.spec.from_date = "2026-11-20";
  local.spec.to_date = "2026-11-21";
  local.spec.frequency = pipeline::Frequency::kHourly;
  local.spec.sync = false;
  local.spec.destination.type = DestinationType::kLocal;
  local.spec.destination.local_path = "/srv/export";
  local.status = PipelineStatus::kFinished;
  manager_.Add(local);

  auto r = Get("jobs");
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = r.Json().as_object();
  ASSERT_EQ(v.size(), 1u);
  const auto& jobs = v.at(std::to_string(project_id_)).as_array();
  ASSERT_EQ(jobs.size(), 2u);
  const auto& p1 = jobs[0].as_object();
  EXPECT_EQ(p1.at("name").as_string(), "p1");
  EXPECT_EQ(p1.at("Dispatcher").as_string(), "recurring");
  EXPECT_EQ(p1.at("last_dispatched").as_string(), "2026-11-24T00:30:00Z");
  EXPECT_EQ(p1.at("frequency").as_string(), "daily");
  EXPECT_EQ(p1.at("sync_enabled").as_bool(), true);
  EXPECT_EQ(p1.at("status").as_string(), "active");
  EXPECT_EQ(p1.at("data_source").as_string(), "events");
  EXPECT_EQ(p1.at("failure_message").as_string(), "");
  EXPECT_EQ(json::serialize(p1.at("events")), R"(["Signed Up"])");
  EXPECT_EQ(
      json::serialize(p1.at("destination")),
      R"({"type":"s3","s3_bucket":"acme-events","s3_region":"eu-west-1",)"
      R"("s3_role":"arn:aws:iam::123456789012:role/sluice-export","s3_prefix":"exports","s3_endpoint":"",)"
      R"("s3_encryption":"kms","s3_kms_key_id":"arn:aws:kms:eu-west-1:123456789012:key/k1"})");
  EXPECT_EQ(p1.at("compression").as_string(), "gzip");
  EXPECT_EQ(p1.at("from_date").as_string(), "2026-11-01");
  EXPECT_EQ(p1.at("to_date").as_string(), "");
  const auto& p2 = jobs[1].as_object();
  EXPECT_EQ(p2.at("name").as_string(), "p2");
  EXPECT_EQ(p2.at("Dispatcher").as_string(), "backfill");
  EXPECT_TRUE(p2.at("last_dispatched").is_null());
  EXPECT_EQ(p2.at("frequency").as_string(), "hourly");
  EXPECT_EQ(p2.at("sync_enabled").as_bool(), false);
  EXPECT_EQ(p2.at("status").as_string(), "finished");
  EXPECT_EQ(json::serialize(p2.at("destination")), R"({"type":"local","local_path":"/srv/export"})");
  EXPECT_EQ(manager_.CallsOf("List").back().project, project_id_);

  // Another project: its own (empty) list under its own id.
  uint32_t other_id = 0;
  std::string other_secret;
  CreateProject("other", other_id, other_secret);
  r = Send("GET", "/api/2.0/nessie/pipeline/jobs", {},
           {{"Authorization", "Basic " + Base64Encode(other_secret + ":")}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"" + std::to_string(other_id) + "\":[]}");
  manager_.FailNext("List", Unavailable("pipeline state is loading"));
  EXPECT_EQ(Get("jobs").status, 503);
}

TEST_F(PipelineApiTest, TimelineListsTasksWithALimitAndFilter) {
  AddPipeline("p1");
  manager_.SetTimeline(SampleTasks());
  auto r = Get("timeline", {{"name", "p1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(manager_.last_limit(), 1000u);
  auto v = r.Json().as_object();
  EXPECT_EQ(v.at("name").as_string(), "p1");
  const auto& tasks = v.at("tasks").as_array();
  ASSERT_EQ(tasks.size(), 4u);
  EXPECT_EQ(
      json::serialize(tasks[1]),
      R"({"task_id":"t2","partition":"2026-11-22T13","kind":"scheduled","state":"succeeded","attempts":2,)"
      R"("scheduled_ms":1795357800000,"started_ms":1795357801000,"finished_ms":1795357861000,"records":1200,)"
      R"("bytes":34567,"generation":3,"message":""})");
  EXPECT_EQ(tasks[2].at("state").as_string(), "failed");

  r = Post("timeline", {{"name", "p1"}, {"limit", "2"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(manager_.last_limit(), 2u);
  EXPECT_EQ(r.Json().at("tasks").as_array().size(), 2u);
  r = Get("timeline", {{"name", "p1"}, {"status", "succeeded"}});
  ASSERT_EQ(r.Json().at("tasks").as_array().size(), 2u);
  for (const char* bad : {"0", "-1", "10001", "ten"}) {
    auto b = Get("timeline", {{"name", "p1"}, {"limit", bad}});
    EXPECT_EQ(b.status, 400) << bad;
  }
  EXPECT_EQ(Get("timeline", {}).status, 400);
  EXPECT_EQ(Get("timeline", {{"name", "nope"}}).status, 404);
}

TEST_F(PipelineApiTest, TimelineAnswersMixpanelsDaySyncs) {
  AddPipeline("p1");
  manager_.SetTimeline(SampleTasks());
  manager_.SetDaySyncs(
      {DaySync{.date = "2026-11-20",
               .sync_times = {1795221100000, 1795307500040},
               .status = TaskState::kSucceeded},
       DaySync{.date = "2026-11-21", .sync_times = {}, .status = TaskState::kFailed},
       DaySync{.date = "2026-11-22", .sync_times = {1795393900123}, .status = TaskState::kRetried}});
  auto r = Get("timeline", {{"name", "p1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = r.Json().as_object();
  // Mixpanel's shape: sync times as Go's time.String() (here UTC), "synced" for a delivered day.
  EXPECT_EQ(
      json::serialize(v.at("day_syncs")),
      R"([{"date":"2026-11-20","sync_times":["2026-11-21 00:31:40 +0000 UTC","2026-11-22 00:31:40.04 +0000 UTC"],)"
      R"("status":"synced"},{"date":"2026-11-21","sync_times":[],"status":"failed"},)"
      R"({"date":"2026-11-22","sync_times":["2026-11-23 00:31:40.123 +0000 UTC"],"status":"retried"}])");
  // The task list stands beside it.
  EXPECT_EQ(v.at("tasks").as_array().size(), 4u);
  // status= filters days as it filters tasks.
  r = Get("timeline", {{"name", "p1"}, {"status", "failed"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::serialize(r.Json().at("day_syncs")),
            R"([{"date":"2026-11-21","sync_times":[],"status":"failed"}])");
  manager_.FailNext("DaySyncs", Unavailable("pipeline state is loading"));
  EXPECT_EQ(Get("timeline", {{"name", "p1"}}).status, 503);
}

// ---- the parsers on their own
// -----------------------------------------------------------------------------------

TEST(PipelineParamsTest, Booleans) {
  for (const char* t : {"true", "TRUE", "1", "yes", "on", " true "})
    EXPECT_TRUE(*api::ParseBoolParam("x", t)) << t;
  for (const char* f : {"false", "False", "0", "no", "off"}) EXPECT_FALSE(*api::ParseBoolParam("x", f)) << f;
  auto bad = api::ParseBoolParam("trial", "2");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "trial '2' is not a boolean: use true or false");
}

TEST(PipelineParamsTest, EventsWhitelist) {
  auto v = api::ParseEventsParam({"A", "", R"(["B", "A"])", " C "});
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(*v, (std::vector<std::string>{"A", "B", " C "}));
  EXPECT_TRUE(api::ParseEventsParam({"[]"})->empty());
  EXPECT_TRUE(api::ParseEventsParam({""})->empty());
  EXPECT_FALSE(api::ParseEventsParam({"[\"a\", {}]"}).ok());
  std::vector<std::string> many;
  for (int i = 0; i <= 10'000; ++i) many.push_back("e" + std::to_string(i));
  std::vector<std::string_view> views(many.begin(), many.end());
  EXPECT_FALSE(api::ParseEventsParam(views).ok());
}

TEST(PipelineParamsTest, TaskStates) {
  auto v = api::ParseTaskStatesParam({"failed, timed_out", "RETRIED", R"(["pending","failed"])"});
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(*v, (std::vector<TaskState>{TaskState::kFailed, TaskState::kTimedOut, TaskState::kRetried,
                                        TaskState::kPending}));
  EXPECT_TRUE(api::ParseTaskStatesParam({})->empty());
  EXPECT_FALSE(api::ParseTaskStatesParam({"done"}).ok());
}

TEST(PipelineParamsTest, RepeatedKeysFromQueryThenForm) {
  api::PipelineParams p(Params{{"events", "a"}, {"name", "n"}, {"events", "b"}});
  EXPECT_EQ(*p.Get("events"), "a");
  EXPECT_EQ(p.All("events"), (std::vector<std::string_view>{"a", "b"}));
  EXPECT_FALSE(p.Has("where"));

  http::Request req;
  req.query = {{"events", "q"}};
  req.headers.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
  req.body = "events=f1&events=f%202&name=x";
  api::PipelineParams from_req(req);
  EXPECT_EQ(from_req.All("events"), (std::vector<std::string_view>{"q", "f1", "f 2"}));
  EXPECT_EQ(*from_req.Get("name"), "x");
}

TEST(PipelineParamsTest, RoleArnsAcrossPartitionsAndPaths) {
  auto spec_with_role = [](const std::string& role) {
    return api::ParseCreateParams(api::PipelineParams(Params{{"type", "s3"},
                                                             {"from_date", "2026-11-01"},
                                                             {"s3_bucket", "acme.events-1"},
                                                             {"s3_region", "us-gov-west-1"},
                                                             {"s3_role", role}}),
                                  7, "2026-11-24");
  };
  EXPECT_TRUE(spec_with_role("arn:aws:iam::123456789012:role/sluice").ok());
  EXPECT_TRUE(spec_with_role("arn:aws-us-gov:iam::123456789012:role/path/to/Sluice+Export=1,a.b@c_d-e").ok());
  EXPECT_FALSE(spec_with_role("arn:aws:iam::123456789012:role/").ok());
  EXPECT_FALSE(spec_with_role("arn:aws:iam::123456789012:role/a/").ok());
  EXPECT_FALSE(spec_with_role("arn:aws:sts::123456789012:assumed-role/x/y").ok());
  EXPECT_FALSE(spec_with_role("arn:aws:iam::12345678901x:role/x").ok());
  EXPECT_FALSE(spec_with_role("arn:aws:iam::123456789012:role/has space").ok());
  EXPECT_EQ(spec_with_role("arn:aws:iam::123456789012:role/sluice")->project_id, 7u);
}

TEST(PipelineParamsTest, Formatting) {
  EXPECT_EQ(api::FormatDate(0), "1970-01-01");
  EXPECT_EQ(api::FormatDate(20781), "2026-11-24");
  EXPECT_EQ(api::FormatTimestampMs(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(api::FormatTimestampMs(kNowSeconds * 1000 + 999), "2026-11-24T12:00:00Z");
  EXPECT_EQ(api::FormatTimestampMs(951782400000), "2000-02-29T00:00:00Z");
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

// Issue 10 item 9: Mixpanel's UI spells the encryption modes AES and KMS.
TEST_F(PipelineApiTest, EncryptionModesAreCaseInsensitive) {
  const std::vector<std::pair<std::string, objstore::Encryption::Mode>> cases = {
      {"AES", objstore::Encryption::Mode::kAes256}, {"KMS", objstore::Encryption::Mode::kKms},
      {"Kms", objstore::Encryption::Mode::kKms},    {"NONE", objstore::Encryption::Mode::kNone},
      {"aes", objstore::Encryption::Mode::kAes256}};
  for (const auto& [value, mode] : cases) {
    auto r = Post("create", With(S3Create(), {{"s3_encryption", value}}));
    ASSERT_EQ(r.status, 200) << value << ": " << r.body;
    EXPECT_EQ(manager_.created().back().destination.encryption.mode, mode) << value;
  }
  auto bad = Post("create", With(S3Create(), {{"s3_encryption", "AES256"}}));
  EXPECT_EQ(bad.status, 400) << bad.body;
}

// Issue 10 item 9: trial=true is Mixpanel's trial pipeline — yesterday's data, daily, no sync, no filters.
TEST_F(PipelineApiTest, TrialPipelinesFollowMixpanelsTrialRules) {
  auto r = Post("create", With(Without(S3Create(), "from_date"), {{"trial", "true"}}));
  ASSERT_EQ(r.status, 200) << r.body;
  const PipelineSpec s = manager_.created().back();
  EXPECT_TRUE(s.trial);
  EXPECT_EQ(s.from_date, "2026-11-23");  // yesterday of kToday
  EXPECT_EQ(s.frequency, pipeline::Frequency::kDaily);
  EXPECT_FALSE(s.sync);
  EXPECT_TRUE(s.recurring());
  // Explicitly the same values are fine.
  auto same = Post("create", With(Without(S3Create(), "from_date"), {{"trial", "true"},
                                                                        {"from_date", "2026-11-23"},
                                                                        {"frequency", "daily"},
                                                                        {"sync", "false"}}));
  EXPECT_EQ(same.status, 200) << same.body;

  struct Case {
    const char* what;
    Params params;
    const char* message_part;
  };
  const Params trial = With(Without(S3Create(), "from_date"), {{"trial", "true"}});
  const std::vector<Case> cases = {
      {"another from_date", With(trial, {{"from_date", "2026-11-01"}}), "export from yesterday (2026-11-23)"},
      {"hourly", With(trial, {{"frequency", "hourly"}}), "run daily"},
      {"sync", With(trial, {{"sync", "true"}}), "do not sync late data"},
      {"events", With(trial, {{"events", "Signed Up"}}), "events filters are not available"},
      {"where", With(trial, {{"where", R"(properties["a"] == 1)"}}), "where filters are not available"},
      {"to_date", With(trial, {{"to_date", "2026-11-23"}}), "omit to_date"},
  };
  const size_t before = manager_.created().size();
  for (const auto& c : cases) {
    auto bad = Post("create", c.params);
    EXPECT_EQ(bad.status, 400) << c.what << ": " << bad.body;
    if (bad.status != 400) continue;
    EXPECT_NE(bad.Error().find(c.message_part), std::string::npos) << c.what << ": " << bad.body;
  }
  EXPECT_EQ(manager_.created().size(), before) << "a refused trial reached the manager";
}

}  // namespace
}  // namespace sluice
