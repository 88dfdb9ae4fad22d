// Cloud Import against moto in auth mode: Sluice's own user may only assume roles; the customer's import role
// holds only s3:GetObject and s3:ListBucket on the import bucket (tests/support/moto_setup.py). Connectors are
// created through the real HTTP API (Service + Server on a loopback port); files are uploaded with an admin key.
//
// moto rejects query values that need escaping (TESTING.md), so prefixes here contain no '/'.
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <thread>

#include "api/service.h"
#include "aws/providers.h"
#include "aws/errors.h"
#include "cloudimport/connector_manager.h"
#include "cloudimport/source.h"
#include "common/compression.h"
#include "common/crypto.h"
#include "common/metrics.h"
#include "http/server.h"
#include "http/transport.h"
#include "objstore/s3/s3_object_store.h"
#include "store/store.h"
#include "support/moto_server.h"

namespace sluice::cloudimport {
namespace {

namespace json = boost::json;
constexpr char kAdminToken[] = "import-test-admin-token-42";

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// A field of /proc/self/status in kB (VmRSS, VmHWM).
long StatusKb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

struct Reply {
  int status = 0;
  std::string body;
  json::object Json() const {
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    return !ec && v.is_object() ? v.as_object() : json::object{};
  }
};

class MotoImportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = sluice::testing::MotoServer::Start();
    if (!m.ok()) return Fail(m.error().ToString());
    moto_ = std::move(m).value().release();
    auto env = moto_->RunSetup();
    if (!env.ok()) return Fail(env.error().ToString());
    env_ = new sluice::testing::MotoEnvironment(std::move(env).value());
    if (Status s = moto_->EnableAuth(); !s.ok()) return Fail(s.error().ToString());
    // moto is the operator's endpoint (S3 and STS): connectors may name it as s3_endpoint, and STS goes there
    // because the operator said so, never because a connector did.
    setenv("AWS_ENDPOINT_URL", moto_->Endpoint().c_str(), 1);
    unsetenv("AWS_ENDPOINT_URL_S3");
    unsetenv("AWS_ENDPOINT_URL_STS");

    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() / ("sluice-import-moto-" + RandomHex(64)));
    // Small memtables so the large-file test measures the importer, not RocksDB's write buffers.
    auto store = store::Store::Open(*dir_, {.block_cache_bytes = 8ull << 20, .write_buffer_bytes = 8ull << 20});
    if (!store.ok()) return Fail(store.error().ToString());
    store_ = std::move(store).value().release();
    auto project = store_->CreateProject("import");
    if (!project.ok()) return Fail(project.error().ToString());
    project->external_id = env_->external_id;  // what the roles' trust policies require
    if (Status s = store_->UpdateProject(*project); !s.ok()) return Fail(s.error().ToString());
    project_ = new store::Project(*project);

    transport_ = new std::shared_ptr<http::HttpTransport>(http::MakeCurlTransport());
    metrics_ = new MetricsRegistry();
    ConnectorManager::Options o;
    o.store = store_;
    o.metrics = metrics_;
    o.transport = *transport_;
    aws::Credentials own;
    own.access_key_id = env_->access_key_id;
    own.secret_access_key = env_->secret_access_key;
    o.own_credentials = std::make_shared<aws::StaticCredentialsProvider>(own, "test user");
    auto manager = ConnectorManager::Create(std::move(o));
    if (!manager.ok()) return Fail(manager.error().ToString());
    manager_ = std::move(manager).value().release();
    manager_->Start();

    auto service = api::Service::Create(
        *store_, api::ServiceOptions{.admin_token = Secret(kAdminToken), .metrics = metrics_, .connectors = manager_});
    if (!service.ok()) return Fail(service.error().ToString());
    service_ = std::move(service).value().release();
    auto server = http::Server::Create(http::ServerOptions{.listen_port = 0, .threads = 2}, service_->router(),
                                       service_->observer());
    if (!server.ok()) return Fail(server.error().ToString());
    server_ = std::move(server).value().release();
    server_->Start();
  }

  static void TearDownTestSuite() {
    if (server_) server_->Shutdown(std::chrono::seconds(5));
    delete server_;
    delete service_;
    if (manager_) manager_->Stop();
    delete manager_;
    delete store_;
    delete metrics_;
    delete transport_;
    delete project_;
    if (dir_) std::filesystem::remove_all(*dir_);
    delete dir_;
    delete env_;
    delete moto_;
    delete error_;
    server_ = nullptr;
    service_ = nullptr;
    manager_ = nullptr;
    store_ = nullptr;
    metrics_ = nullptr;
    transport_ = nullptr;
    project_ = nullptr;
    dir_ = nullptr;
    env_ = nullptr;
    moto_ = nullptr;
    error_ = nullptr;
  }

  static void Fail(std::string message) {
    if (!error_) error_ = new std::string(std::move(message));
  }

  void SetUp() override {
    // Fail (never skip) without moto: CI must have it (TESTING.md).
    ASSERT_EQ(error_, nullptr) << "cloud import integration test could not start: " << *error_;
  }

  /// An S3 client with the admin key, to put the customer's files in place.
  std::unique_ptr<objstore::s3::S3ObjectStore> Uploader() const {
    objstore::s3::S3StoreOptions o;
    o.bucket = env_->import_bucket;
    o.region = env_->region;
    o.endpoint = moto_->Endpoint();
    aws::Credentials admin;
    admin.access_key_id = env_->admin_access_key_id;
    admin.secret_access_key = env_->admin_secret_access_key;
    auto s = objstore::s3::S3ObjectStore::Create(o, std::make_shared<aws::StaticCredentialsProvider>(admin, "admin"),
                                                 *transport_);
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    return std::move(s).value();
  }

  void Upload(const std::string& key, std::string data) {
    auto r = Uploader()->Put(key, std::move(data));
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }

  Reply Send(const std::string& method, const std::string& path, std::string body = {}, bool auth = true,
             std::string authorization = {}) {
    http::OutboundRequest req{.method = method,
                              .url = "http://127.0.0.1:" + std::to_string(server_->port()) + path};
    if (auth) {
      req.headers.emplace_back("Authorization", authorization.empty()
                                                    ? "Basic " + Base64Encode(project_->api_secret.Reveal() + ":")
                                                    : authorization);
    }
    if (!body.empty() || method == "POST") {
      req.headers.emplace_back("Content-Type", "application/json");
      req.body = http::RequestBody::FromString(std::move(body));
    }
    auto resp = (*transport_)->Send(req, std::chrono::steady_clock::now() + std::chrono::seconds(120));
    if (!resp.ok()) return {};
    return {resp->status, resp->body};
  }

  std::string Base() const { return "/api/app/projects/" + std::to_string(project_->id) + "/connectors"; }

  json::object Body(const std::string& prefix, const std::string& format = "mixpanel_event",
                    const std::string& compression = "none", const std::string& role = "import",
                    json::object remap = {}) {
    json::object cat{{"data_format", format}, {"compression", compression}};
    if (!remap.empty()) cat["property_remap"] = std::move(remap);
    return {{"connector_type", "s3Import"},
            {"label", "test " + prefix},
            {"connector_properties", json::object{{"s3_bucket", env_->import_bucket},
                                                  {"s3_prefix", prefix},
                                                  {"s3_region", env_->region},
                                                  {"s3_role", env_->roles.at(role)},
                                                  {"s3_endpoint", moto_->Endpoint()}}},
            {"category_properties", std::move(cat)}};
  }

  /// Creates a connector through the API and returns its id.
  std::string Create(const json::object& body) {
    Reply r = Send("POST", Base(), json::serialize(body));
    EXPECT_EQ(r.status, 200) << r.body;
    auto o = r.Json();
    if (!o.contains("results")) return {};
    return std::string(o.at("results").at("connector_id").as_string());
  }

  /// Polls the history API (bounded) until run `seq` finished; returns it.
  json::object WaitForRun(const std::string& id, uint64_t seq, int max_seconds = 120) {
    for (int i = 0; i < max_seconds * 10; ++i) {
      Reply r = Send("GET", Base() + "/" + id + "/history");
      auto o = r.Json();
      if (o.contains("results")) {
        for (const auto& run : o.at("results").at("data").as_array()) {
          const auto& ro = run.as_object();
          std::string status(ro.at("status").as_string());
          if (ro.at("seq").to_number<uint64_t>() == seq && status != "running" && status != "queued") return ro;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "run " << seq << " of connector " << id << " did not finish";
    return {};
  }

  static uint64_t U(const json::object& o, std::string_view k) { return o.at(k).to_number<uint64_t>(); }
  static std::string S(const json::object& o, std::string_view k) { return std::string(o.at(k).as_string()); }

  std::string Event(const std::string& name, const std::string& user, const std::string& insert_id, int i = 0) {
    json::object props{{"time", NowSeconds() - 3600 - i % 1000}, {"distinct_id", user}, {"n", i}};
    if (!insert_id.empty()) props["$insert_id"] = insert_id;
    return json::serialize(json::object{{"event", name}, {"properties", props}});
  }

  /// Stored events of the project whose name starts with `name_prefix`: insert_id → copies.
  std::map<std::string, int> Stored(const std::string& name_prefix) {
    std::map<std::string, int> out;
    auto parts = store_->ListPartitions(project_->id, 0, std::numeric_limits<store::Hour>::max());
    EXPECT_TRUE(parts.ok());
    for (const auto& p : *parts) {
      EXPECT_TRUE(store_->ScanPartition(project_->id, p.hour, [&](const store::EventView& e) {
                          if (e.name.starts_with(name_prefix)) out[std::string(e.insert_id)]++;
                          return true;
                        }).ok());
    }
    return out;
  }

  static sluice::testing::MotoServer* moto_;
  static sluice::testing::MotoEnvironment* env_;
  static std::string* error_;
  static std::filesystem::path* dir_;
  static store::Store* store_;
  static store::Project* project_;
  static std::shared_ptr<http::HttpTransport>* transport_;
  static MetricsRegistry* metrics_;
  static ConnectorManager* manager_;
  static api::Service* service_;
  static http::Server* server_;
};

sluice::testing::MotoServer* MotoImportTest::moto_ = nullptr;
sluice::testing::MotoEnvironment* MotoImportTest::env_ = nullptr;
std::string* MotoImportTest::error_ = nullptr;
std::filesystem::path* MotoImportTest::dir_ = nullptr;
store::Store* MotoImportTest::store_ = nullptr;
store::Project* MotoImportTest::project_ = nullptr;
std::shared_ptr<http::HttpTransport>* MotoImportTest::transport_ = nullptr;
MetricsRegistry* MotoImportTest::metrics_ = nullptr;
ConnectorManager* MotoImportTest::manager_ = nullptr;
api::Service* MotoImportTest::service_ = nullptr;
http::Server* MotoImportTest::server_ = nullptr;

TEST_F(MotoImportTest, PlainFileWithBadAndEmptyLinesAndAnEmptyFile) {
  Upload("plain-a.json", Event("PlainA", "u1", "pa-1") + "\n\n" + Event("PlainA", "u2", "", 1) + "\n" +
                             "{not json}\n" + R"({"event":"PlainA","properties":{"distinct_id":"u3"}})" + "\n" +
                             Event("PlainA", "u4", "pa-4", 4) + "\n");
  Upload("plain-empty.json", "");
  std::string id = Create(Body("plain-"));
  json::object run = WaitForRun(id, 1);
  EXPECT_EQ(S(run, "status"), "success") << json::serialize(run);
  EXPECT_EQ(U(run, "num_events_imported"), 3u);
  EXPECT_EQ(U(run, "num_events_processed"), 5u);
  EXPECT_EQ(U(run, "num_events_dropped"), 2u);
  EXPECT_EQ(U(run, "num_files_imported"), 2u);
  EXPECT_EQ(run.at("progress").to_number<double>(), 1.0);
  const auto& errors = run.at("errors").as_array();
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(S(errors[0].as_object(), "file"), "plain-a.json");
  EXPECT_EQ(U(errors[0].as_object(), "line"), 4u);
  EXPECT_EQ(U(errors[1].as_object(), "line"), 5u);
  EXPECT_NE(S(errors[1].as_object(), "reason").find("'properties.time' is missing"), std::string::npos);
  auto stored = Stored("PlainA");
  EXPECT_EQ(stored.size(), 3u);
  EXPECT_EQ(stored.count("pa-1"), 1u);

  // The connector as GET and list show it.
  Reply got = Send("GET", Base() + "/" + id);
  ASSERT_EQ(got.status, 200) << got.body;
  auto c = got.Json().at("results").as_object();
  EXPECT_EQ(S(c, "status"), "active");
  EXPECT_EQ(S(c.at("connector_properties").as_object(), "s3_prefix"), "plain-");
  EXPECT_EQ(S(c.at("last_run").as_object(), "status"), "success");
  Reply list = Send("GET", Base());
  ASSERT_EQ(list.status, 200);
  bool listed = false;
  const json::object listing = list.Json();
  for (const auto& v : listing.at("results").at("data").as_array())
    listed |= S(v.as_object(), "connector_id") == id;
  EXPECT_TRUE(listed);
  Reply metrics = Send("GET", "/metrics", {}, false);
  EXPECT_NE(metrics.body.find("sluice_import_events_total{result=\"imported\"}"), std::string::npos);
  EXPECT_NE(metrics.body.find("sluice_import_files_total{result=\"imported\"}"), std::string::npos);
}

TEST_F(MotoImportTest, GzipFilesAndAMismatchedOne) {
  std::string part1, part2;
  for (int i = 0; i < 300; ++i) part1 += Event("GzipE", "u" + std::to_string(i % 9), "gz-" + std::to_string(i), i) + "\n";
  for (int i = 300; i < 500; ++i) part2 += Event("GzipE", "u" + std::to_string(i % 9), "", i) + "\n";
  Upload("gzip-a.json.gz", Gzip(part1) + Gzip(part2));  // two gzip members
  std::string id = Create(Body("gzip-", "mixpanel_event", "gzip"));
  json::object run = WaitForRun(id, 1);
  EXPECT_EQ(S(run, "status"), "success") << json::serialize(run);
  EXPECT_EQ(U(run, "num_events_imported"), 500u);
  EXPECT_EQ(Stored("GzipE").size(), 500u);

  Upload("mismatch-a.json", Gzip(Event("Mismatch", "u", "m-1") + "\n"));
  std::string mid = Create(Body("mismatch-"));
  json::object failed = WaitForRun(mid, 1);
  EXPECT_EQ(S(failed, "status"), "failed");
  EXPECT_NE(S(failed, "failure_message").find("No compression specified but Gzip detected"), std::string::npos)
      << json::serialize(failed);
}

TEST_F(MotoImportTest, RemappedEventsAndProfiles) {
  Upload("remap-rows.json", R"({"action":"RemapPlay","ts":)" + std::to_string((NowSeconds() - 7200) * 1000) +
                                R"(,"user":"r1","song":"a"})" + "\n" +
                                R"({"action":"RemapPlay","ts":1700000000,"song":"no user"})" + "\n");
  std::string id = Create(Body("remap-", "remap_event", "none", "import",
                               json::object{{"event_name", "action"}, {"time", "ts"}, {"distinct_id", "user"}}));
  json::object run = WaitForRun(id, 1);
  EXPECT_EQ(U(run, "num_events_imported"), 1u);
  EXPECT_EQ(U(run, "num_events_dropped"), 1u);
  EXPECT_EQ(Stored("RemapPlay").size(), 1u);

  Upload("people-rows.json", R"({"uid":"p1","plan":"pro"})" "\n" R"({"uid":"p2","plan":"free"})" "\n");
  std::string pid = Create(Body("people-", "remap_people", "none", "import", json::object{{"$distinct_id", "uid"}}));
  json::object prun = WaitForRun(pid, 1);
  EXPECT_EQ(U(prun, "num_events_imported"), 2u);
  auto p1 = store_->GetProfile(project_->id, "p1");
  ASSERT_TRUE(p1.ok() && p1->has_value());
  EXPECT_EQ(json::parse(**p1).at("plan").as_string(), "pro");
}

TEST_F(MotoImportTest, FileAddedBetweenRunsIsImportedByTheNextAndNothingTwice) {
  Upload("incr-1.json", Event("Incr", "u1", "i-1") + "\n" + Event("Incr", "u2", "", 2) + "\n");
  std::string id = Create(Body("incr-"));
  EXPECT_EQ(U(WaitForRun(id, 1), "num_events_imported"), 2u);
  Upload("incr-2.json", Event("Incr", "u3", "i-3") + "\n");
  ASSERT_EQ(Send("POST", Base() + "/" + id + "/run").status, 200);
  json::object second = WaitForRun(id, 2);
  EXPECT_EQ(U(second, "num_files_imported"), 1u);
  EXPECT_EQ(U(second, "num_events_imported"), 1u);
  ASSERT_EQ(Send("POST", Base() + "/" + id + "/run").status, 200);
  json::object third = WaitForRun(id, 3);
  EXPECT_EQ(U(third, "num_files_found"), 0u);
  EXPECT_EQ(U(third, "num_events_imported"), 0u);
  auto stored = Stored("Incr");
  EXPECT_EQ(stored.size(), 3u);
  for (const auto& [insert_id, n] : stored) EXPECT_EQ(n, 1) << insert_id;
  Reply history = Send("GET", Base() + "/" + id + "/history?limit=2");
  EXPECT_EQ(history.Json().at("results").at("data").as_array().size(), 2u);
  ASSERT_EQ(Send("DELETE", Base() + "/" + id).status, 200);
  EXPECT_EQ(Send("GET", Base() + "/" + id).status, 404);
  EXPECT_EQ(Stored("Incr").size(), 3u);
}

TEST_F(MotoImportTest, RoleWithoutGetObjectIsRefusedAtCreate) {
  Upload("noget-a.json", Event("NoGet", "u1", "ng-1") + "\n");
  for (const std::string prefix : {"noget-", "nothing-here-"}) {
    Reply r = Send("POST", Base(), json::serialize(Body(prefix, "mixpanel_event", "none", "import_no_get")));
    EXPECT_EQ(r.status, 400) << r.body;
    auto o = r.Json();
    EXPECT_EQ(S(o, "status"), "error");
    EXPECT_EQ(S(o, "code"), "invalid_permissions_s3") << r.body;
    EXPECT_NE(S(o, "message").find("s3:GetObject"), std::string::npos) << r.body;
    EXPECT_NE(S(o, "message").find(env_->roles.at("import_no_get")), std::string::npos) << r.body;
  }
  // A wrong external ID cannot assume the role: also refused, naming the trust policy.
  auto project = *project_;
  project.external_id = "not-the-right-one";
  ASSERT_TRUE(store_->UpdateProject(project).ok());
  Reply wrong = Send("POST", Base(), json::serialize(Body("noget-")));
  ASSERT_TRUE(store_->UpdateProject(*project_).ok());
  EXPECT_EQ(wrong.status, 400) << wrong.body;
  EXPECT_EQ(S(wrong.Json(), "code"), "invalid_permissions_s3");
  EXPECT_NE(S(wrong.Json(), "message").find("trust policy"), std::string::npos) << wrong.body;
}

// Issue 9 item 3: a role whose trust policy takes any ExternalId would let every project that learns its ARN
// import the bucket (confused deputy): refused at create, naming sts:ExternalId and the statement to add, as the
// pipelines' destination check does.
TEST_F(MotoImportTest, RoleWithoutExternalIdConditionIsRefusedAtCreate) {
  Upload("noext-a.json", Event("NoExt", "u1", "ne-1") + "\n");
  Reply r = Send("POST", Base(), json::serialize(Body("noext-", "mixpanel_event", "none", "import_no_external_id")));
  EXPECT_EQ(r.status, 400) << r.body;
  auto o = r.Json();
  EXPECT_EQ(S(o, "status"), "error") << r.body;
  EXPECT_EQ(S(o, "code"), "invalid_permissions_s3") << r.body;
  const std::string error = S(o, "message");
  EXPECT_NE(error.find("sts:ExternalId"), std::string::npos) << r.body;
  EXPECT_NE(error.find(env_->roles.at("import_no_external_id")), std::string::npos) << r.body;
  EXPECT_NE(error.find(env_->external_id), std::string::npos) << "the statement names the external ID: " << r.body;
  EXPECT_NE(error.find(env_->user_arn), std::string::npos) << "the statement names Sluice's principal: " << r.body;
  // The same bucket with the role that requires the external ID is accepted.
  Reply ok = Send("POST", Base(), json::serialize(Body("noext-")));
  EXPECT_EQ(ok.status, 200) << ok.body;
}

// Review of issue 9: the external-ID probe also runs at every import run, so a connector stored before the
// probe existed (or whose role's trust policy was loosened after create) pauses with the trust statement and
// imports nothing. Its own store: the connector is written by a manager whose create skips the probe, then
// run by an ordinary one.
TEST_F(MotoImportTest, RoleWithoutExternalIdConditionPausesAnExistingConnectorAtItsNextRun) {
  Upload("noext-run-a.json", Event("NoExtRun", "u1", "ner-1") + "\n");
  const auto dir = std::filesystem::temp_directory_path() / ("sluice-import-moto-probe-" + RandomHex(64));
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  auto store = store::Store::Open(dir, {.block_cache_bytes = 8ull << 20, .write_buffer_bytes = 8ull << 20});
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  auto project = (*store)->CreateProject("probe");
  ASSERT_TRUE(project.ok());
  project->external_id = env_->external_id;
  ASSERT_TRUE((*store)->UpdateProject(*project).ok());
  MetricsRegistry old_metrics, metrics;  // one registration per manager
  aws::Credentials own;
  own.access_key_id = env_->access_key_id;
  own.secret_access_key = env_->secret_access_key;
  auto options = [&](MetricsRegistry& registry) {
    ConnectorManager::Options o;
    o.store = store->get();
    o.metrics = &registry;
    o.transport = *transport_;
    o.own_credentials = std::make_shared<aws::StaticCredentialsProvider>(own, "test user");
    return o;
  };

  ConnectorSpec spec;
  spec.project_id = project->id;
  spec.label = "stored before the probe";
  spec.s3_bucket = env_->import_bucket;
  spec.s3_prefix = "noext-run-";
  spec.s3_region = env_->region;
  spec.s3_role = env_->roles.at("import_no_external_id");
  spec.s3_endpoint = moto_->Endpoint();
  std::string id;
  {
    // Create as a server without the probe did: the same source, without its STS client.
    ConnectorManager::Options o = options(old_metrics);
    SourceContext ctx{.own_credentials = o.own_credentials, .transport = o.transport};
    o.source_factory = [ctx](const ConnectorSpec& s, const store::Project& p) -> Result<Source> {
      SLUICE_ASSIGN_OR_RETURN(Source source, OpenS3Source(s, p, ctx));
      source.sts.reset();
      return source;
    };
    auto old = ConnectorManager::Create(std::move(o));
    ASSERT_TRUE(old.ok()) << old.error().ToString();
    ValidationIssue issue;
    auto created = (*old)->CreateConnector(spec, &issue);
    ASSERT_TRUE(created.ok()) << created.error().ToString();
    id = created->spec.id;
  }  // never started: nothing ran

  auto manager = ConnectorManager::Create(options(metrics));
  ASSERT_TRUE(manager.ok()) << manager.error().ToString();
  (*manager)->Start();
  std::optional<ConnectorRecord> record;
  for (int i = 0; i < 1200; ++i) {
    auto got = (*manager)->Get(project->id, id);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    if (got->paused || got->last_run_seq > 0) {
      auto history = (*manager)->History(project->id, id);
      ASSERT_TRUE(history.ok());
      if (!history->empty() && history->front().status != RunStatus::kRunning &&
          history->front().status != RunStatus::kQueued) {
        record = *got;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(record.has_value()) << "the run did not finish";
  EXPECT_TRUE(record->paused);
  EXPECT_NE(record->failure_message.find("sts:ExternalId"), std::string::npos) << record->failure_message;
  EXPECT_NE(record->failure_message.find(spec.s3_role), std::string::npos) << record->failure_message;
  EXPECT_NE(record->failure_message.find(env_->user_arn), std::string::npos) << record->failure_message;
  auto history = (*manager)->History(project->id, id);
  ASSERT_TRUE(history.ok());
  ASSERT_FALSE(history->empty());
  EXPECT_EQ(history->front().num_events_imported, 0u);
  EXPECT_EQ(history->front().num_files_imported, 0u);
  (*manager)->Stop();
  auto parts = (*store)->ListPartitions(project->id, 0, std::numeric_limits<store::Hour>::max());
  ASSERT_TRUE(parts.ok());
  EXPECT_TRUE(parts->empty()) << "nothing is imported";
}

// Issue 9 item 2: a connector may only name an endpoint the operator allowed (here moto, the server's
// AWS_ENDPOINT_URL); any other, loopback included, is refused at create before any request.
TEST_F(MotoImportTest, EndpointTheOperatorDidNotAllowIsRefusedAtCreate) {
  auto body = Body("noext-");
  body["connector_properties"].as_object()["s3_endpoint"] = "http://127.0.0.1:9";
  Reply r = Send("POST", Base(), json::serialize(body));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("--allow-endpoint"), std::string::npos) << r.body;
  body["connector_properties"].as_object()["s3_endpoint"] = moto_->Endpoint() + "/path?x=1";
  r = Send("POST", Base(), json::serialize(body));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("path, query"), std::string::npos) << r.body;
}

TEST_F(MotoImportTest, ApiRefusesBadBodiesAndCredentials) {
  json::object body = Body("x-");
  body.at("connector_properties").as_object().erase("s3_bucket");
  Reply r = Send("POST", Base(), json::serialize(body));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(S(r.Json(), "code"), "missing_required_property");
  EXPECT_EQ(S(r.Json(), "field"), "connector_properties.s3_bucket");

  body = Body("x-", "remap_event");
  r = Send("POST", Base(), json::serialize(body));
  EXPECT_EQ(S(r.Json(), "code"), "missing_required_property");
  EXPECT_EQ(S(r.Json(), "field"), "category_properties.property_remap");

  body = Body("x-");
  body.at("connector_properties").as_object()["s3_bucket"] = "no-such-bucket-here";
  r = Send("POST", Base(), json::serialize(body));
  EXPECT_EQ(r.status, 400) << r.body;

  EXPECT_EQ(Send("GET", Base(), {}, false).status, 401);
  EXPECT_EQ(Send("GET", Base(), {}, true, "Basic " + Base64Encode("wrong-secret:")).status, 401);
  EXPECT_EQ(Send("GET", "/api/app/projects/999999/connectors").status, 401);
  EXPECT_EQ(Send("GET", Base(), {}, true, std::string("Bearer ") + kAdminToken).status, 200);
  EXPECT_EQ(Send("GET", "/api/app/projects/999999/connectors", {}, true, std::string("Bearer ") + kAdminToken).status,
            404);
  EXPECT_EQ(Send("GET", Base() + "/nope").status, 404);
  EXPECT_EQ(Send("GET", Base() + "/nope/history").status, 404);
}

TEST_F(MotoImportTest, LargeFileStreamsWithinTheMemoryBound) {
  // ≥ 200 MB of NDJSON generated while it uploads (multipart), so neither side holds the file.
  constexpr uint64_t kTargetBytes = 210ull * 1000 * 1000;
  const std::string padding(180, 'p');
  uint64_t lines = 0, bytes = 0;
  {
    auto uploader = Uploader();
    auto writer = uploader->NewWriter("large-file.json", {.content_type = "application/x-ndjson"});
    ASSERT_TRUE(writer.ok()) << writer.error().ToString();
    std::string chunk;
    const int64_t t0 = NowSeconds() - 7200;
    while (bytes < kTargetBytes) {
      chunk.clear();
      for (int i = 0; i < 5000; ++i, ++lines) {
        chunk += R"({"event":"Large","properties":{"time":)" + std::to_string(t0 - static_cast<int64_t>(lines % 5000)) +
                 R"(,"distinct_id":"u)" + std::to_string(lines % 1000) + R"(","$insert_id":"lg-)" +
                 std::to_string(lines) + R"(","pad":")" + padding + "\"}}\n";
      }
      bytes += chunk.size();
      ASSERT_TRUE((*writer)->Write(chunk).ok());
    }
    auto done = (*writer)->Complete();
    ASSERT_TRUE(done.ok()) << done.error().ToString();
    ASSERT_GE(done->size, 200ull * 1000 * 1000);
  }
  // Peak RSS from here on: reset the high-water mark (Linux ≥ 4.0: "5" > /proc/self/clear_refs).
  { std::ofstream("/proc/self/clear_refs") << "5"; }
  const long rss_before_kb = StatusKb("VmRSS");
  std::string id = Create(Body("large-"));
  json::object run = WaitForRun(id, 1, 110);
  EXPECT_EQ(S(run, "status"), "success") << json::serialize(run);
  EXPECT_EQ(U(run, "num_events_imported"), lines);
  EXPECT_EQ(U(run, "size_imported"), bytes);
  const long peak_kb = StatusKb("VmHWM");
  const long growth_mb = (peak_kb - rss_before_kb) / 1024;
  std::printf("large file: %.1f MB, %llu lines; RSS before %ld MB, peak %ld MB (+%ld MB)\n", bytes / 1e6,
              static_cast<unsigned long long>(lines), rss_before_kb / 1024, peak_kb / 1024, growth_mb);
  // The file is 210 MB; streaming keeps the importer's own memory to a few batches (RocksDB's memtables are 8 MB
  // here). The bound is far below the file size, so buffering the file would fail it.
  EXPECT_LT(growth_mb, 120) << "peak RSS grew by " << growth_mb << " MB while importing a " << bytes / 1000000
                            << " MB file";
  EXPECT_EQ(Stored("Large").size(), lines);
}

// Issue 10 item 9: SignatureDoesNotMatch / InvalidAccessKeyId / ExpiredToken are credential problems, reported
// with the same classification (aws::FixAreaOf) as the destination check — never "add to its policy".
TEST(SourceErrorTest, RejectedCredentialsAreNotReportedAsMissingPermissions) {
  ConnectorSpec spec;
  spec.s3_bucket = "import-bucket";
  spec.s3_region = "cn-north-1";
  spec.s3_role = "arn:aws-cn:iam::123456789012:role/import";
  for (const char* code : {"SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken"}) {
    http::OutboundResponse response;
    response.status = 403;
    response.body = std::string("<Error><Code>") + code + "</Code><Message>m</Message></Error>";
    Error e = aws::ErrorFromResponse(response, "ListObjectsV2");
    std::string message = DescribeSourceError(e, spec, SourceOperation::kList);
    EXPECT_NE(message.find("credentials"), std::string::npos) << code << ": " << message;
    EXPECT_NE(message.find(code), std::string::npos) << message;
    EXPECT_EQ(message.find("was denied"), std::string::npos) << code << ": " << message;
    EXPECT_EQ(message.find("permission policy"), std::string::npos) << code << ": " << message;
  }
  http::OutboundResponse denied;
  denied.status = 403;
  denied.body = "<Error><Code>AccessDenied</Code><Message>m</Message></Error>";
  std::string message =
      DescribeSourceError(aws::ErrorFromResponse(denied, "ListObjectsV2"), spec, SourceOperation::kList);
  EXPECT_NE(message.find("was denied"), std::string::npos) << message;
  EXPECT_NE(message.find("arn:aws-cn:s3:::import-bucket"), std::string::npos) << "partition of cn-*: " << message;
}

}  // namespace
}  // namespace sluice::cloudimport
