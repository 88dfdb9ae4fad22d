// JSON Pipelines to Google Cloud Storage through the real `sluice serve`, against tests/support/gcs_server.js
// (the suite's GCS JSON-API server, proven against Google's own client by gcs_server_oracle). Sluice
// authenticates as its own service account (GOOGLE_APPLICATION_CREDENTIALS, a key file whose token_uri is the
// test server's), reaches the server through STORAGE_EMULATOR_HOST, and is checked with a separate admin
// account: every partition's manifest lists exactly the store's events byte for byte, late data arrives as a
// new generation, the people snapshot equals the store's profiles, a service account without object-create is
// refused at create with the role named, and an export survives expiring tokens, 429/503/resets and SIGKILL
// with no loss or duplicate.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>
#include <tuple>

#include <fmt/format.h>

#include "common/compression.h"
#include "common/crypto.h"
#include "gcp/credentials.h"
#include "http/transport.h"
#include "objstore/gcs/gcs_object_store.h"
#include "pipeline/e2e_support.h"
#include "pipeline/layout.h"
#include "support/gcs_server.h"

namespace sluice::testing::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr char kSluiceEmail[] = "sluice@sluice-test.iam.gserviceaccount.com";
constexpr char kAdminEmail[] = "admin@sluice-test.iam.gserviceaccount.com";
constexpr char kBucket[] = "acme-exports";
constexpr char kReadOnlyBucket[] = "acme-readonly";

std::string DayDir(uint32_t project, int64_t day) {
  return pipeline::EventsUnitDir(project, pipeline::Unit{day * 24, 24});
}

std::map<std::string, std::string> SnapshotRecords(const std::vector<std::string>& lines, const char* value_field,
                                                   std::string* error) {
  std::map<std::string, std::string> out;
  for (const auto& line : lines) {
    json::value v = json::parse(line);
    const json::object& o = v.as_object();
    if (o.size() != 2 || !o.contains("distinct_id") || !o.contains(value_field)) {
      *error = "unexpected record shape: " + line;
      continue;
    }
    std::string id(o.at("distinct_id").as_string());
    if (out.contains(id)) *error = "distinct_id " + id + " appears twice";
    const json::value& val = o.at(value_field);
    out[id] = val.is_string() ? std::string(val.as_string()) : json::serialize(val);
  }
  return out;
}

/// Runs `cmd` through the shell; stdout and the exit status.
std::pair<std::string, int> Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) return {"", -1};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {out, WEXITSTATUS(status)};
}

class GcsPipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto sluice = MakeTestServiceAccount(kSluiceEmail, "k-sluice");
    auto admin = MakeTestServiceAccount(kAdminEmail, "k-admin");
    if (!sluice.ok() || !admin.ok()) {
      error_ = new std::string("could not make the test service accounts");
      return;
    }
    json::object config{
        {"accounts",
         json::object{{kSluiceEmail, json::object{{"public_key", sluice->public_pem}, {"key_id", "k-sluice"}}},
                      {kAdminEmail, json::object{{"public_key", admin->public_pem}, {"key_id", "k-admin"}}}}},
        {"buckets",
         json::object{
             {kBucket, json::object{{"bindings", json::object{{kSluiceEmail, json::array{"objectAdmin"}},
                                                               {kAdminEmail, json::array{"objectAdmin"}}}}}},
             {kReadOnlyBucket,
              json::object{{"bindings", json::object{{kSluiceEmail, json::array{"objectViewer"}}}}}}}}};
    auto gcs = GcsTestServer::Start(config);
    if (!gcs.ok()) {
      error_ = new std::string("gcs_server.js could not start: " + gcs.error().ToString());
      return;
    }
    gcs_ = gcs->release();
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() / ("sluice-gcs-e2e-" + RandomHex(64)));
    std::filesystem::create_directories(*dir_);
    key_path_ = new std::string((*dir_ / "sluice-key.json").string());
    std::ofstream(*key_path_) << ServiceAccountKeyJson(*sluice, gcs_->TokenUri());
    // Sluice's Google identity and the endpoint, as an operator sets them; no AWS identity at all.
    setenv("GOOGLE_APPLICATION_CREDENTIALS", key_path_->c_str(), 1);
    setenv("STORAGE_EMULATOR_HOST", fmt::format("127.0.0.1:{}", gcs_->port()).c_str(), 1);
    for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                          "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS"}) {
      unsetenv(v);
    }
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    server_ = new SluiceServer(*dir_ / "data", nullptr, {"--pipeline-unit-parallelism", "2"});
    std::string err;
    if (!server_->Start(&err)) {
      error_ = new std::string("sluice serve did not start: " + err);
      return;
    }
    // The admin's view of the bucket: a separate account, used only for assertions.
    auto key = gcp::ParseServiceAccountKey(ServiceAccountKeyJson(*admin, gcs_->TokenUri()));
    if (!key.ok()) {
      error_ = new std::string("admin key: " + key.error().ToString());
      return;
    }
    admin_tokens_ = new std::shared_ptr<gcp::TokenProvider>(
        std::make_shared<gcp::ServiceAccountTokenProvider>(*key, gcp::TokenSourceOptions{.transport = http::MakeCurlTransport()}));
    admin_ = new std::shared_ptr<objstore::ObjectStore>(Under(""));
    if (!*admin_) error_ = new std::string("admin GCS store could not be built");
  }

  /// The bucket under `prefix`, seen by the admin account.
  static std::shared_ptr<objstore::ObjectStore> Under(const std::string& prefix) {
    objstore::gcs::GcsStoreOptions o;
    o.bucket = kBucket;
    o.prefix = prefix;
    o.endpoint = gcs_->Endpoint();
    auto store = objstore::gcs::GcsObjectStore::Create(o, *admin_tokens_);
    if (!store.ok()) return nullptr;
    return std::shared_ptr<objstore::ObjectStore>(std::move(store).value());
  }

  static void TearDownTestSuite() {
    if (server_) server_->Terminate();
    delete server_;
    server_ = nullptr;
    delete admin_;
    admin_ = nullptr;
    delete admin_tokens_;
    admin_tokens_ = nullptr;
    delete gcs_;
    gcs_ = nullptr;
    if (dir_) std::filesystem::remove_all(*dir_);
    delete dir_;
    dir_ = nullptr;
    delete key_path_;
    key_path_ = nullptr;
    delete error_;
    error_ = nullptr;
  }

  void SetUp() override {
    ASSERT_EQ(error_, nullptr) << *error_;
    today_ = TodayUtc();
    ASSERT_TRUE(gcs_->SetFaults("[]").ok());
  }

  SluiceServer& server() { return *server_; }
  /// A project of the shared server with the suite's buckets bound to it (docs/gcs.md#binding). A bucket is
  /// bound to one project only, so the previous test's project gives them up first.
  Result<Project> BoundProject(const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(Project p, server().CreateProject(name));
    if (bound_project_ != 0) {
      auto r = server().UpdateProject(bound_project_, R"({"gcs_buckets":[]})");
      if (r.status != 200) return Internal("unbinding the previous project answered " + r.body);
    }
    SLUICE_TRY(server().BindGcsBuckets(p, {kBucket, kReadOnlyBucket}));
    bound_project_ = p.id;
    return p;
  }
  objstore::ObjectStore& bucket() { return **admin_; }

  /// The read-only bucket as the customer's admin sees it (to upload files), with Sluice granted only
  /// Storage Object Viewer on it.
  Result<std::shared_ptr<objstore::ObjectStore>> ReadOnlyBucketAsCustomer() {
    SLUICE_TRY(gcs_->SetBindings(kReadOnlyBucket, json::object{{kSluiceEmail, json::array{"objectViewer"}},
                                                                {kAdminEmail, json::array{"objectAdmin"}}}));
    objstore::gcs::GcsStoreOptions o;
    o.bucket = kReadOnlyBucket;
    o.endpoint = gcs_->Endpoint();
    SLUICE_ASSIGN_OR_RETURN(auto store, objstore::gcs::GcsObjectStore::Create(o, *admin_tokens_));
    return std::shared_ptr<objstore::ObjectStore>(std::move(store));
  }

  static Params GcsParams(const std::string& bucket_name = kBucket) {
    return {{"type", "gcs-raw"}, {"gcs_bucket", bucket_name}, {"gcs_region", "US"}};
  }

  std::string Create(const Project& p, const Params& params) {
    auto r = server().PipelinePost(p, "create", params);
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) return "";
    json::value v = json::parse(r.body);
    const json::array& names = v.at("pipeline_names").as_array();
    return names.empty() ? "" : std::string(names[0].as_string());
  }

  void WaitForPartitions(SluiceServer& srv, const Project& p, const std::string& name,
                         const std::vector<std::string>& labels, std::map<std::string, uint64_t> min_generation = {},
                         std::chrono::milliseconds timeout = 120s) {
    ASSERT_EQ(WaitForSucceededPartitions(srv, p, name, labels, std::move(min_generation), timeout), "")
        << "pipeline " << name;
  }

  static GcsTestServer* gcs_;
  static SluiceServer* server_;
  static std::shared_ptr<objstore::ObjectStore>* admin_;
  static std::shared_ptr<gcp::TokenProvider>* admin_tokens_;
  static std::filesystem::path* dir_;
  static std::string* key_path_;
  static std::string* error_;
  static uint32_t bound_project_;
  int64_t today_ = 0;
};

GcsTestServer* GcsPipelineTest::gcs_ = nullptr;
SluiceServer* GcsPipelineTest::server_ = nullptr;
std::shared_ptr<objstore::ObjectStore>* GcsPipelineTest::admin_ = nullptr;
std::shared_ptr<gcp::TokenProvider>* GcsPipelineTest::admin_tokens_ = nullptr;
std::filesystem::path* GcsPipelineTest::dir_ = nullptr;
std::string* GcsPipelineTest::key_path_ = nullptr;
std::string* GcsPipelineTest::error_ = nullptr;
uint32_t GcsPipelineTest::bound_project_ = 0;

// Backfill of closed days, then late data into one of them (a new generation; the old files deleted), then a
// people snapshot: everything equal to the store byte for byte, under the same layout as S3.
TEST_F(GcsPipelineTest, BackfillLateDataAndPeopleSnapshotEqualTheStore) {
  auto p = BoundProject("gcs-backfill");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  const std::vector<int64_t> days = {today_ - 3, today_ - 2, today_ - 1};
  std::vector<std::string> first_day;
  for (int64_t day : days) {
    std::vector<std::string> events = MakeDayEvents(day, 1500, "gb", 41);
    if (day == days.front()) first_day = events;
    ASSERT_TRUE(server().Import(*p, events).ok());
  }
  Params params = GcsParams();
  params.insert(params.end(), {{"from_date", DateOf(days.front())}, {"gcs_prefix", "/mixpanel/"}});
  const std::string name = Create(*p, params);
  ASSERT_FALSE(name.empty());
  std::vector<std::string> labels;
  for (int64_t d : days) labels.push_back(DateOf(d));
  WaitForPartitions(server(), *p, name, labels);

  // The admin reads under the prefix the pipeline was given (normalised to "mixpanel").
  auto under = Under("mixpanel");
  ASSERT_TRUE(under);
  PartitionContent before;
  for (int64_t day : days) {
    SCOPED_TRACE(DateOf(day));
    auto content = ReadPartition(*under, DayDir(p->id, day));
    ASSERT_TRUE(content.ok()) << content.error().ToString();
    EXPECT_TRUE(content->complete);
    auto expected = server().ReadBack(*p, day);
    ASSERT_TRUE(expected.ok());
    EXPECT_EQ(expected->size(), 1500u);
    EXPECT_EQ(CompareEvents(content->lines, *expected), "");
    EXPECT_EQ(content->manifest.pipeline, name);
    EXPECT_EQ(content->manifest.compression, "gzip");
    if (day == days.front()) before = std::move(content).value();
  }

  // Late data: 100 new events and 30 re-sent with a change.
  std::vector<std::string> late = MakeDayEvents(days.front(), 100, "gb-late", 42);
  for (size_t i = 0; i < 30; ++i) {
    std::string changed = first_day[i];
    changed.replace(changed.find("\"Linux\""), 7, "\"late-change\"");
    late.push_back(std::move(changed));
  }
  ASSERT_TRUE(server().Import(*p, late).ok());
  auto sync = server().PipelinePost(*p, "sync", {{"name", name}});
  ASSERT_EQ(sync.status, 200) << sync.body;
  WaitForPartitions(server(), *p, name, {DateOf(days.front())},
                    {{DateOf(days.front()), before.manifest.generation}});
  auto after = ReadPartition(*under, DayDir(p->id, days.front()));
  ASSERT_TRUE(after.ok()) << after.error().ToString();
  auto expected = server().ReadBack(*p, days.front());
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(expected->size(), 1600u);
  EXPECT_EQ(CompareEvents(after->lines, *expected), "");
  EXPECT_GT(after->manifest.generation, before.manifest.generation);
  size_t changed = 0;
  for (const auto& line : after->lines) changed += line.find("late-change") != std::string::npos;
  EXPECT_EQ(changed, 30u);
  for (const auto& f : before.manifest.files) {
    auto head = under->Head(f.key);
    EXPECT_FALSE(head.ok()) << "the old generation's file " << f.key << " is still in the bucket";
  }

  // People snapshot.
  std::vector<std::string> updates;
  for (int i = 0; i < 60; ++i) {
    updates.push_back(fmt::format(
        R"({{"$token":"{}","$distinct_id":"gperson-{}","$set":{{"name":"Ren\u00e9e {}","ltv":123456789012345678901234.5,"n":{}}}}})",
        p->token, i, i, i));
  }
  ASSERT_TRUE(server().Engage(updates).ok());
  Params people = GcsParams();
  people.insert(people.end(),
                {{"from_date", DateOf(today_ - 1)}, {"data_source", "people"}, {"gcs_prefix", "mixpanel"}});
  const std::string people_name = Create(*p, people);
  ASSERT_FALSE(people_name.empty());
  WaitForPartitions(server(), *p, people_name, {"snapshot"});
  auto snapshot = ReadPartition(*under, pipeline::SnapshotDir(p->id, pipeline::DataSource::kPeople));
  ASSERT_TRUE(snapshot.ok()) << snapshot.error().ToString();
  EXPECT_TRUE(snapshot->complete);
  std::string error;
  auto records = SnapshotRecords(snapshot->lines, "properties", &error);
  EXPECT_EQ(error, "");
  auto profiles = server().ReadProfiles(*p);
  ASSERT_TRUE(profiles.ok()) << profiles.error().ToString();
  ASSERT_EQ(records.size(), profiles->size());
  for (const auto& [id, props] : *profiles) {
    ASSERT_TRUE(records.contains(id)) << id;
    EXPECT_EQ(json::parse(records[id]), json::parse(props)) << id;
  }

  // The pipeline's destination as the API reports it.
  auto jobs = server().PipelineGet(*p, "jobs", {});
  ASSERT_EQ(jobs.status, 200) << jobs.body;
  EXPECT_NE(jobs.body.find("\"gcs_bucket\":\"acme-exports\""), std::string::npos) << jobs.body;
  EXPECT_NE(jobs.body.find("\"gcs_prefix\":\"mixpanel\""), std::string::npos) << jobs.body;
}

// A bucket where Sluice's service account has only Storage Object Viewer: create is refused, naming the
// missing permission, the role and the account to grant it to.
TEST_F(GcsPipelineTest, ServiceAccountWithoutObjectCreateIsRefusedWithTheRoleNamed) {
  auto p = BoundProject("gcs-readonly");
  ASSERT_TRUE(p.ok());
  Params params = GcsParams(kReadOnlyBucket);
  params.insert(params.end(), {{"from_date", DateOf(today_ - 1)}});
  auto r = server().PipelinePost(*p, "create", params);
  EXPECT_NE(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("storage.objects.create"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("Storage Object Creator"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(kSluiceEmail), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("gs://acme-readonly"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("storage.objects.delete"), std::string::npos) << "one pass names every missing one: "
                                                                      << r.body;

  // A tenant's gcs_endpoint must be one the operator allowed: refused before any request.
  Params elsewhere = GcsParams();
  elsewhere.insert(elsewhere.end(), {{"from_date", DateOf(today_ - 1)}, {"gcs_endpoint", "http://127.0.0.1:9"}});
  auto refused = server().PipelinePost(*p, "create", elsewhere);
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_NE(refused.body.find("gcs_endpoint"), std::string::npos) << refused.body;
}

// Cloud Import from GCS (connector_type gcsImport): a plain and a gzip file with bad lines, read with viewer
// rights only (the read-only bucket), discovered under the prefix; the good lines are stored, the bad ones
// reported with their line numbers.
TEST_F(GcsPipelineTest, GcsImportReadsPlainAndGzipFilesWithBadLines) {
  auto p = BoundProject("gcs-import");
  ASSERT_TRUE(p.ok());
  const int64_t day = today_ - 2;
  auto lines = MakeDayEvents(day, 40, "gi", 71);
  std::string plain, gz_source;
  for (int i = 0; i < 20; ++i) plain += lines[i] + "\n";
  plain += "{not json\n";
  for (int i = 20; i < 40; ++i) gz_source += lines[i] + "\n";
  gz_source += "[1,2,3]\n";
  const std::string gz = Gzip(gz_source);
  // The customer's files, uploaded by the admin into the bucket where Sluice may only read.
  auto customer = ReadOnlyBucketAsCustomer();
  ASSERT_TRUE(customer.ok()) << customer.error().ToString();
  ASSERT_TRUE((*customer)->Put("incoming/plain/a.json", plain).ok());
  ASSERT_TRUE((*customer)->Put("incoming/gz/b.json.gz", gz).ok());
  ASSERT_TRUE((*customer)->Put("elsewhere/c.json", lines[0] + "\n").ok());

  const std::vector<std::pair<std::string, std::string>> auth = {
      {"Authorization", "Bearer " + server().process().admin_token()}};
  const std::string base = fmt::format("/api/app/projects/{}/connectors", p->id);
  // s3_* properties do not apply to gcsImport (named, not ignored).
  json::object wrong{{"connector_type", "gcsImport"},
                     {"connector_properties", json::object{{"gcs_bucket", kReadOnlyBucket}, {"s3_role", "x"}}},
                     {"category_properties", json::object{{"data_format", "mixpanel_event"}}}};
  auto refused = server().process().Send("POST", base, json::serialize(wrong), auth);
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_NE(refused.body.find("connector_properties.s3_role"), std::string::npos) << refused.body;

  auto body_for = [&](const std::string& prefix, const std::string& compression) {
    return json::object{
        {"connector_type", "gcsImport"},
        {"label", "gcs " + compression},
        {"connector_properties", json::object{{"gcs_bucket", kReadOnlyBucket}, {"gcs_prefix", prefix}}},
        {"category_properties", json::object{{"data_format", "mixpanel_event"}, {"compression", compression}}}};
  };
  // Creates the connector and returns its first finished run.
  auto import = [&](const std::string& prefix, const std::string& compression) -> json::object {
    auto created = server().process().Send("POST", base, json::serialize(body_for(prefix, compression)), auth);
    EXPECT_EQ(created.status, 200) << created.body;
    if (created.status != 200) return {};
    const json::value created_json = json::parse(created.body);
    const std::string id(created_json.at("results").at("connector_id").as_string());
    EXPECT_EQ(created_json.at("results").at("connector_properties").at("gcs_prefix").as_string(), prefix);
    json::object run;
    std::string last;
    std::string err = WaitUntil(
        [&] {
          auto h = server().process().Send("GET", base + "/" + id + "/history", {}, auth);
          last = h.body;
          if (h.status != 200) return false;
          auto runs = json::parse(h.body).at("results").at("data").as_array();
          if (runs.empty() || runs.front().at("status").as_string() == "running" ||
              runs.front().at("status").as_string() == "queued") {
            return false;
          }
          run = runs.front().as_object();
          return true;
        },
        60s, [&] { return last; });
    EXPECT_EQ(err, "");
    return run;
  };
  for (const auto& [prefix, compression, file] :
       {std::tuple{"incoming/plain/", "none", "incoming/plain/a.json"},
        std::tuple{"incoming/gz/", "gzip", "incoming/gz/b.json.gz"}}) {
    SCOPED_TRACE(file);
    json::object run = import(prefix, compression);
    ASSERT_FALSE(run.empty());
    EXPECT_EQ(run.at("status").as_string(), "success") << json::serialize(run);
    EXPECT_EQ(run.at("num_files_imported").to_number<uint64_t>(), 1u) << json::serialize(run);
    EXPECT_EQ(run.at("num_events_imported").to_number<uint64_t>(), 20u) << json::serialize(run);
    const std::string errors = json::serialize(run.at("errors"));
    EXPECT_NE(errors.find(file), std::string::npos) << errors;
    EXPECT_NE(errors.find("\"line\":21"), std::string::npos) << errors;
  }

  auto stored = server().ReadBack(*p, day);
  ASSERT_TRUE(stored.ok()) << stored.error().ToString();
  EXPECT_EQ(stored->size(), 40u);

  // With no read permission at all, create is refused with the role and the account named.
  ASSERT_TRUE(gcs_->SetBindings(kReadOnlyBucket, json::object{{kAdminEmail, json::array{"objectAdmin"}}}).ok());
  auto denied = server().process().Send("POST", base, json::serialize(body_for("incoming/plain/", "none")), auth);
  EXPECT_NE(denied.status, 200) << denied.body;
  EXPECT_NE(denied.body.find("invalid_permissions_gcs"), std::string::npos) << denied.body;
  EXPECT_NE(denied.body.find("Storage Object Viewer"), std::string::npos) << denied.body;
  EXPECT_NE(denied.body.find(kSluiceEmail), std::string::npos) << denied.body;
  ASSERT_TRUE(gcs_->SetBindings(kReadOnlyBucket, json::object{{kSluiceEmail, json::array{"objectViewer"}},
                                                               {kAdminEmail, json::array{"objectAdmin"}}})
                  .ok());
}

// `sluice import` with the --gcs-* flags through the real binary: `import create` makes a gcsImport connector,
// `import run` imports the files under --gcs-prefix and prints the finished run; mixing S3 and GCS flags is
// refused before anything is sent.
TEST_F(GcsPipelineTest, ImportCommandCreatesAndRunsGcsConnectors) {
  auto p = BoundProject("gcs-import-cli");
  ASSERT_TRUE(p.ok());
  const int64_t day = today_ - 3;
  auto lines = MakeDayEvents(day, 12, "cli", 73);
  std::string file;
  for (const auto& l : lines) file += l + "\n";
  auto customer = ReadOnlyBucketAsCustomer();
  ASSERT_TRUE(customer.ok()) << customer.error().ToString();
  ASSERT_TRUE((*customer)->Put("cli/in/a.json", file).ok());

  const std::string bin = ServerProcess::Binary();
  const std::string client =
      " --server " + server().process().url() + " --admin-token " + server().process().admin_token();
  const std::string project = " --project " + std::to_string(p->id);

  auto [run_out, run_rc] =
      Shell(bin + " import run" + project + " --gcs-bucket " + kReadOnlyBucket + " --gcs-prefix cli/in/" + client);
  ASSERT_EQ(run_rc, 0) << run_out;
  json::value run = json::parse(run_out);
  EXPECT_EQ(run.at("status").as_string(), "success") << run_out;
  EXPECT_EQ(run.at("num_events_imported").to_number<uint64_t>(), 12u) << run_out;
  auto stored = server().ReadBack(*p, day);
  ASSERT_TRUE(stored.ok()) << stored.error().ToString();
  EXPECT_EQ(stored->size(), 12u);

  auto [created_out, created_rc] = Shell(bin + " import create" + project + " --gcs-bucket " + kReadOnlyBucket +
                                         " --gcs-prefix cli/in/ --label from-cli" + client);
  ASSERT_EQ(created_rc, 0) << created_out;
  json::value created = json::parse(created_out);
  EXPECT_EQ(created.at("connector_type").as_string(), "gcsImport") << created_out;
  EXPECT_EQ(created.at("connector_properties").at("gcs_bucket").as_string(), kReadOnlyBucket) << created_out;
  EXPECT_EQ(created.at("connector_properties").at("gcs_prefix").as_string(), "cli/in/") << created_out;
  auto [listed, list_rc] = Shell(bin + " import list" + project + client);
  ASSERT_EQ(list_rc, 0) << listed;
  EXPECT_NE(listed.find("\"gcsImport\""), std::string::npos) << listed;

  // An S3 bucket and a GCS bucket at once, or an S3 role on a GCS source, are refused by the CLI itself.
  auto [both, both_rc] = Shell(bin + " import create" + project + " --gcs-bucket " + kReadOnlyBucket +
                               " --bucket other --role arn:aws:iam::123456789012:role/r" + client);
  EXPECT_NE(both_rc, 0);
  auto [role, role_rc] = Shell(bin + " import create" + project + " --gcs-bucket " + kReadOnlyBucket +
                               " --role arn:aws:iam::123456789012:role/r" + client);
  EXPECT_NE(role_rc, 0);
  auto [none, none_rc] = Shell(bin + " import create" + project + client);
  EXPECT_NE(none_rc, 0);
  auto [still, still_rc] = Shell(bin + " import list" + project + client);
  ASSERT_EQ(still_rc, 0) << still;
  EXPECT_EQ(json::parse(still).as_array().size(), 1u) << "nothing created by the refused commands: " << still;
}

// `sluice destination check --provider gcs` through the real binary: passes on the export bucket, and on the
// read-only one fails naming each missing permission, the role and the gcloud binding to run.
TEST_F(GcsPipelineTest, DestinationCheckCommandCoversGcs) {
  const std::string bin = ServerProcess::Binary();
  auto [ok, ok_rc] = Shell(bin + " destination check --provider gcs --bucket " + kBucket + " --prefix cli --json");
  EXPECT_EQ(ok_rc, 0) << ok;
  json::value report = json::parse(ok);
  EXPECT_TRUE(report.at("ok").as_bool()) << ok;
  EXPECT_EQ(report.at("steps").as_array().size(), 6u) << ok;  // identity, put, get, encryption, list, delete

  auto [bad, bad_rc] = Shell(bin + " destination check --provider gcs --bucket " + kReadOnlyBucket);
  EXPECT_EQ(bad_rc, 1) << bad;
  EXPECT_NE(bad.find("[FAIL] put"), std::string::npos) << bad;
  EXPECT_NE(bad.find("storage.objects.create is missing. Grant Storage Object Creator"), std::string::npos) << bad;
  EXPECT_NE(bad.find("[ok  ] list"), std::string::npos) << bad;
  EXPECT_NE(bad.find("[FAIL] delete"), std::string::npos) << bad;
  EXPECT_NE(bad.find(std::string("--member=serviceAccount:") + kSluiceEmail + " --role=roles/storage.objectCreator"),
            std::string::npos)
      << bad;

  // S3 flags with --provider gcs are a usage error.
  auto [usage, usage_rc] =
      Shell(bin + " destination check --provider gcs --bucket " + kBucket + " --role arn:aws:iam::123456789012:role/r");
  EXPECT_EQ(usage_rc, 2) << usage;
}

// Every token expires mid-backfill and the server answers 429, 503 and resets on uploads: the export still
// completes with each event exactly once.
TEST_F(GcsPipelineTest, BackfillSurvivesExpiringTokensThrottlingAndResets) {
  auto p = BoundProject("gcs-faults");
  ASSERT_TRUE(p.ok());
  const std::vector<int64_t> days = {today_ - 5, today_ - 4, today_ - 3, today_ - 2};
  for (int64_t day : days) ASSERT_TRUE(server().Import(*p, MakeDayEvents(day, 600, "gf", 51)).ok());
  ASSERT_TRUE(gcs_->SetFaults(R"([
      {"match":"POST /upload","nth":2,"type":"expire_tokens"},
      {"match":"POST /upload","nth":3,"type":"429"},
      {"match":"POST /upload","nth":5,"type":"503","count":2},
      {"match":"POST /upload","nth":9,"type":"reset"},
      {"match":"GET /storage/v1/b/acme-exports/o","nth":2,"type":"rateLimit"},
      {"match":"DELETE","nth":1,"type":"503"}])")
                  .ok());
  Params params = GcsParams();
  params.insert(params.end(), {{"from_date", DateOf(days.front())}, {"gcs_prefix", "faults"}});
  const std::string name = Create(*p, params);
  ASSERT_FALSE(name.empty());
  std::vector<std::string> labels;
  for (int64_t d : days) labels.push_back(DateOf(d));
  WaitForPartitions(server(), *p, name, labels);
  auto under = Under("faults");
  ASSERT_TRUE(under);
  for (int64_t day : days) {
    SCOPED_TRACE(DateOf(day));
    auto content = ReadPartition(*under, DayDir(p->id, day));
    ASSERT_TRUE(content.ok()) << content.error().ToString();
    EXPECT_TRUE(content->complete);
    auto expected = server().ReadBack(*p, day);
    ASSERT_TRUE(expected.ok());
    EXPECT_EQ(CompareEvents(content->lines, *expected), "");
  }
  auto log = gcs_->RequestLog();
  ASSERT_TRUE(log.ok());
  // The first token, and new ones after every token expired mid-backfill.
  size_t token_requests = 0;
  for (size_t pos = log->find("/token"); pos != std::string::npos; pos = log->find("/token", pos + 1)) {
    ++token_requests;
  }
  EXPECT_GE(token_requests, 2u) << "no new token after expiry";
  auto keys = AllKeys(*under);
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(StrayDataFiles(*keys, p->id, *under).empty());
}

// SIGKILL while a GCS export is running; after a restart every partition is complete, each event exactly once,
// and no data file is left that no manifest lists.
TEST_F(GcsPipelineTest, SigkillDuringAnExportLosesAndDuplicatesNothing) {
  std::filesystem::path data = *dir_ / "kill-data";
  SluiceServer victim(data, nullptr, {"--pipeline-unit-parallelism", "1"});
  std::string err;
  ASSERT_TRUE(victim.Start(&err)) << err;
  auto p = victim.CreateProject("gcs-kill");
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(victim.BindGcsBuckets(*p, {kBucket}).ok());
  std::vector<int64_t> days;
  for (int64_t d = today_ - 20; d < today_; ++d) days.push_back(d);
  for (int64_t day : days) ASSERT_TRUE(victim.Import(*p, MakeDayEvents(day, 1000, "gk", 61)).ok());
  Params params = GcsParams();
  params.insert(params.end(), {{"from_date", DateOf(days.front())}, {"gcs_prefix", "kill"}});
  auto r = victim.PipelinePost(*p, "create", params);
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string name(json::parse(r.body).at("pipeline_names").as_array()[0].as_string());
  // Kill once some but not all partitions are done (one partition at a time: the others are being exported or
  // wait their turn).
  size_t done_at_kill = 0;
  std::string wait_err = WaitUntil(
      [&] {
        auto tasks = Timeline(victim, *p, name);
        if (!tasks.ok()) return false;
        done_at_kill = 0;
        for (const auto& t : *tasks) done_at_kill += t.state == "succeeded";
        return done_at_kill >= 3;
      },
      60s, [] { return std::string("no partition finished"); }, 10ms);
  ASSERT_EQ(wait_err, "");
  victim.Kill();
  EXPECT_LT(done_at_kill, days.size()) << "the kill came after the whole export";
  SluiceServer again(data, nullptr, {"--pipeline-unit-parallelism", "2"});
  ASSERT_TRUE(again.Start(&err)) << err;
  std::vector<std::string> labels;
  for (int64_t d : days) labels.push_back(DateOf(d));
  WaitForPartitions(again, *p, name, labels);
  auto under = Under("kill");
  ASSERT_TRUE(under);
  for (int64_t day : days) {
    SCOPED_TRACE(DateOf(day));
    auto content = ReadPartition(*under, DayDir(p->id, day));
    ASSERT_TRUE(content.ok()) << content.error().ToString();
    EXPECT_TRUE(content->complete);
    auto expected = again.ReadBack(*p, day);
    ASSERT_TRUE(expected.ok());
    EXPECT_EQ(CompareEvents(content->lines, *expected), "");
  }
  auto keys = AllKeys(*under);
  ASSERT_TRUE(keys.ok());
  auto stray = StrayDataFiles(*keys, p->id, *under);
  EXPECT_TRUE(stray.empty()) << stray.size() << " data file(s) no manifest lists, e.g. " << stray.front();
  again.Terminate();
}

// GCS bucket binding through the admin API (docs/gcs.md#binding): a new project binds nothing, the list is
// set and replaced, bad names and more than 100 are refused without changing anything, and a bucket is bound
// to one project only (409 that says nothing about the other project).
TEST_F(GcsPipelineTest, AdminApiBindsEachGcsBucketToOneProject) {
  auto a = server().CreateProject("bind-alpha");
  auto b = server().CreateProject("bind-bravo");
  ASSERT_TRUE(a.ok() && b.ok());
  auto buckets_of = [](const ServerProcess::Reply& r) {
    if (r.status != 200) return "HTTP " + std::to_string(r.status) + ": " + r.body;
    return json::serialize(json::parse(r.body).at("gcs_buckets"));
  };
  auto listed = [&](uint32_t id) {
    auto r = server().process().Send("GET", "/api/app/projects", {},
                                     {{"Authorization", "Bearer " + server().process().admin_token()}});
    const json::value answer = json::parse(r.body);  // named: a temporary would die before the loop body
    for (const auto& v : answer.at("projects").as_array()) {
      if (v.at("id").to_number<uint32_t>() == id) return json::serialize(v.at("gcs_buckets"));
    }
    return std::string("missing");
  };
  auto ext = server().UpdateProject(a->id, R"({"external_id":"bind-alpha-ext"})");
  EXPECT_EQ(buckets_of(ext), "[]");
  EXPECT_EQ(buckets_of(server().UpdateProject(a->id, R"({"gcs_buckets":["a-one","a.two","a-one"]})")),
            R"(["a-one","a.two"])");
  auto replaced = server().UpdateProject(a->id, R"({"gcs_buckets":["a-three"]})");
  EXPECT_EQ(buckets_of(replaced), R"(["a-three"])");
  EXPECT_EQ(json::parse(replaced.body).at("external_id").as_string(), "bind-alpha-ext") << "left alone";
  EXPECT_EQ(listed(a->id), R"(["a-three"])");

  std::string too_many = R"({"gcs_buckets":[)";
  for (int i = 0; i <= 100; ++i) too_many += fmt::format(R"({}"b-{}")", i ? "," : "", i);
  too_many += "]}";
  for (const std::string& bad :
       {std::string(R"({"gcs_buckets":["gs://a-four"]})"), std::string(R"({"gcs_buckets":["A-FOUR"]})"),
        std::string(R"({"gcs_buckets":["a-four/x"]})"), std::string(R"({"gcs_buckets":["../a"]})"),
        std::string(R"({"gcs_buckets":"a-four"})"), std::string(R"({"gcs_buckets":[7]})"),
        std::string(R"({"gcs_buckets":["a-four"],"external_id":"x"})"), too_many}) {
    SCOPED_TRACE(bad.substr(0, 80));
    auto r = server().UpdateProject(a->id, bad);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_TRUE(r.body.find("gcs_buckets") != std::string::npos || r.body.find("external_id") != std::string::npos)
        << r.body;
    EXPECT_EQ(listed(a->id), R"(["a-three"])") << "a refused update changed the binding";
  }
  auto r100 = too_many.substr(0, too_many.rfind(",")) + "]}";
  EXPECT_EQ(server().UpdateProject(a->id, r100).status, 200);
  EXPECT_EQ(server().UpdateProject(a->id, R"({"gcs_buckets":["a-three"]})").status, 200);

  // One project per bucket: the answer names the bucket, not who holds it.
  auto taken = server().UpdateProject(b->id, R"({"gcs_buckets":["b-own","a-three"]})");
  EXPECT_EQ(taken.status, 409) << taken.body;
  EXPECT_NE(taken.body.find("gs://a-three is already bound to another project"), std::string::npos) << taken.body;
  EXPECT_EQ(taken.body.find("bind-alpha"), std::string::npos) << taken.body;
  EXPECT_EQ(taken.body.find(fmt::format("project {}", a->id)), std::string::npos) << taken.body;
  EXPECT_EQ(listed(b->id), "[]");
  // Unbound there, it can be bound here.
  EXPECT_EQ(buckets_of(server().UpdateProject(a->id, R"({"gcs_buckets":[]})")), "[]");
  EXPECT_EQ(buckets_of(server().UpdateProject(b->id, R"({"gcs_buckets":["a-three"]})")), R"(["a-three"])");
  EXPECT_EQ(server().UpdateProject(b->id, R"({"gcs_buckets":[]})").status, 200);

  // Only the operator binds: a tenant's own API secret is not enough.
  auto tenant = server().process().Send("POST", fmt::format("/api/app/projects/{}", a->id),
                                        R"({"gcs_buckets":["a-three"]})", {{"Authorization", a->Authorization()}});
  EXPECT_EQ(tenant.status, 401) << tenant.body;
  EXPECT_EQ(listed(a->id), "[]");
}

// The confused deputy (docs/gcs.md#binding): a tenant naming a bucket not bound to its project — bound to
// another project, to none, or not existing — gets one and the same refusal for a gcs-raw pipeline and a
// gcsImport connector. Bound, both are accepted; unbound later, the next run pauses the pipeline.
TEST_F(GcsPipelineTest, UnboundGcsBucketIsRefusedAtCreateAndAtEveryRun) {
  auto owner = BoundProject("gcs-owner");
  auto tenant = server().CreateProject("gcs-tenant");
  ASSERT_TRUE(owner.ok() && tenant.ok());
  ASSERT_TRUE(server().BindGcsBuckets(*tenant, {"tenant-own"}).ok());
  auto refusal = [](const std::string& bucket) {
    return "gs://" + bucket +
           " is not bound to this project: ask the Sluice operator to bind it (docs/gcs.md#binding)";
  };
  const std::vector<std::pair<std::string, std::string>> admin = {
      {"Authorization", "Bearer " + server().process().admin_token()}};
  auto import_body = [](const std::string& bucket) {
    return json::serialize(json::object{
        {"connector_type", "gcsImport"},
        {"connector_properties", json::object{{"gcs_bucket", bucket}, {"gcs_prefix", "binding/"}}},
        {"category_properties", json::object{{"data_format", "mixpanel_event"}}}});
  };
  for (const std::string& bucket : {std::string(kBucket), std::string(kReadOnlyBucket),
                                    std::string("no-such-bucket-anywhere"), std::string("tenant-other")}) {
    SCOPED_TRACE(bucket);
    Params params = GcsParams(bucket);
    params.insert(params.end(), {{"from_date", DateOf(today_ - 1)}, {"gcs_prefix", "stolen"}});
    auto pipeline = server().PipelinePost(*tenant, "create", params);
    EXPECT_EQ(pipeline.status, 400) << pipeline.body;
    EXPECT_NE(pipeline.body.find(refusal(bucket)), std::string::npos) << pipeline.body;
    auto connector = server().process().Send(
        "POST", fmt::format("/api/app/projects/{}/connectors", tenant->id), import_body(bucket), admin);
    EXPECT_EQ(connector.status, 400) << connector.body;
    EXPECT_NE(connector.body.find(refusal(bucket)), std::string::npos) << connector.body;
    for (const std::string& body : {pipeline.body, connector.body}) {
      EXPECT_EQ(body.find("gcs-owner"), std::string::npos) << body;
      EXPECT_EQ(body.find(kSluiceEmail), std::string::npos) << "nothing was sent: " << body;
    }
  }
  auto stolen = Under("stolen")->List("");
  ASSERT_TRUE(stolen.ok());
  EXPECT_TRUE(stolen->empty()) << "a refused pipeline wrote into the bucket";

  // The owner may use its buckets.
  auto accepted = server().process().Send(
      "POST", fmt::format("/api/app/projects/{}/connectors", owner->id), import_body(kReadOnlyBucket), admin);
  EXPECT_EQ(accepted.status, 200) << accepted.body;
  const int64_t day = today_ - 1;
  ASSERT_TRUE(server().Import(*owner, MakeDayEvents(day, 50, "gbind", 91)).ok());
  Params params = GcsParams();
  params.insert(params.end(), {{"from_date", DateOf(day)}, {"gcs_prefix", "bound"}});
  const std::string name = Create(*owner, params);
  ASSERT_FALSE(name.empty());
  WaitForPartitions(server(), *owner, name, {DateOf(day)});

  // The operator unbinds the bucket: the next run is refused and the pipeline paused, saying why.
  ASSERT_TRUE(server().BindGcsBuckets(*owner, {kReadOnlyBucket}).ok());
  ASSERT_TRUE(server().Import(*owner, MakeDayEvents(day, 10, "gbind-late", 92)).ok());
  ASSERT_EQ(server().PipelinePost(*owner, "sync", {{"name", name}}).status, 200);
  std::string last;
  std::string err = WaitUntil(
      [&] {
        auto state = PipelineState(server(), *owner, name);
        if (!state.ok()) return false;
        last = state->first + ": " + state->second;
        return state->first == "paused";
      },
      60s, [&] { return last; });
  ASSERT_EQ(err, "");
  EXPECT_NE(last.find(refusal(kBucket)), std::string::npos) << last;
  EXPECT_EQ(last.find("roles/storage"), std::string::npos) << "binding advice, not a role to grant: " << last;
  ASSERT_TRUE(server().BindGcsBuckets(*owner, {kBucket, kReadOnlyBucket}).ok());
}

}  // namespace
}  // namespace sluice::testing::e2e
