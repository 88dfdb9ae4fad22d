// JSON Pipelines to Azure Blob Storage through the real `sluice serve`, against Azurite in its OAuth mode
// (`--oauth basic` over HTTPS, a self-signed 127.0.0.1 certificate the server trusts through --ca-bundle)
// with a loopback Entra ID token endpoint (AZURE_AUTHORITY_HOST, the operator's): Sluice writes as the
// customer's service principal (type=azure-raw, storage_account, container_name, prefix, client_id,
// client_secret, tenant_id) to an endpoint the operator allowed (--allow-azure-endpoint). Checked with the
// account key, a separate credential used only for assertions: every partition's manifest lists exactly the
// store's events, late data arrives as a new generation, the people snapshot equals the store's profiles; a
// wrong secret is refused at create naming the credential to check (and never echoed); the secret is never
// returned by the API; a tenant endpoint the operator did not allow is refused with no connection made; bad
// names are refused.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/json.hpp>
#include <fstream>
#include <set>
#include <thread>

#include "pipeline/azure_e2e_support.h"
#include "pipeline/e2e_support.h"
#include "pipeline/layout.h"
#include "support/loopback_http.h"

namespace sluice::testing::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kClient = kAzureClient;
constexpr const char* kSecret = kAzureSecret;
constexpr const char* kContainer = kAzureContainer;

std::string DayDir(uint32_t project, int64_t day) {
  return pipeline::EventsUnitDir(project, pipeline::Unit{day * 24, 24});
}

/// A loopback listener that only counts connections (a tenant endpoint no request may reach).
class ConnectionCounter {
 public:
  ConnectionCounter() {
    auto fd = ListenLoopback(port_);
    if (fd.ok()) listen_ = std::move(*fd);
    thread_ = std::thread([this] {
      while (!stop_ && listen_.valid()) {
        pollfd p{listen_.get(), POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        Fd client(::accept(listen_.get(), nullptr, nullptr));
        if (client.valid()) ++accepted_;
      }
    });
  }
  ~ConnectionCounter() {
    stop_ = true;
    thread_.join();
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  uint16_t port_ = 0;
  Fd listen_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

class AzurePipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    azure_ = new AzureE2e();
    if (!azure_->error().empty()) return;
    server_ = new SluiceServer(azure_->dir() / "data", nullptr,
                               azure_->ServeArgs({"--pipeline-unit-parallelism", "2"}));
    std::string err;
    if (!server_->Start(&err)) error_ = new std::string("sluice serve did not start: " + err);
  }

  static void TearDownTestSuite() {
    if (server_) server_->Terminate();
    delete server_;
    server_ = nullptr;
    delete azure_;
    azure_ = nullptr;
    delete error_;
    error_ = nullptr;
  }

  void SetUp() override {
    ASSERT_EQ(azure_->error(), "");
    ASSERT_EQ(error_, nullptr) << *error_;
    today_ = TodayUtc();
  }

  /// "https://127.0.0.1:PORT": the origin the operator allowed.
  static std::string Origin() { return azure_->Origin(); }

  /// The container under `prefix`, seen with the account key (assertions only).
  static std::shared_ptr<objstore::ObjectStore> Under(const std::string& prefix) { return azure_->Under(prefix); }

  static Params AzureParams(const std::string& secret = kSecret) { return azure_->PipelineParams(secret); }

  std::string Create(const Project& p, const Params& params) {
    auto r = server_->PipelinePost(p, "create", params);
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) return "";
    json::value v = json::parse(r.body);
    const json::array& names = v.at("pipeline_names").as_array();
    return names.empty() ? "" : std::string(names[0].as_string());
  }

  void WaitForPartitions(const Project& p, const std::string& name, const std::vector<std::string>& labels,
                         std::map<std::string, uint64_t> min_generation = {}) {
    ASSERT_EQ(WaitForSucceededPartitions(*server_, p, name, labels, std::move(min_generation)), "")
        << "pipeline " << name;
  }

  static AzureE2e* azure_;
  static SluiceServer* server_;
  static std::string* error_;
  int64_t today_ = 0;
};

AzureE2e* AzurePipelineTest::azure_ = nullptr;
SluiceServer* AzurePipelineTest::server_ = nullptr;
std::string* AzurePipelineTest::error_ = nullptr;

// Backfill of closed days, late data into one of them (a new generation, the old files deleted), then a
// people snapshot: everything equal to the store, under the same layout as S3 and GCS.
TEST_F(AzurePipelineTest, BackfillLateDataAndPeopleSnapshotEqualTheStore) {
  auto p = server_->CreateProject("azure-backfill");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  const std::vector<int64_t> days = {today_ - 3, today_ - 2, today_ - 1};
  std::vector<std::string> first_day;
  for (int64_t day : days) {
    std::vector<std::string> events = MakeDayEvents(day, 1200, "az", 51);
    if (day == days.front()) first_day = events;
    ASSERT_TRUE(server_->Import(*p, events).ok());
  }
  Params params = AzureParams();
  params.insert(params.end(), {{"from_date", DateOf(days.front())}, {"prefix", "/mixpanel/"}});
  const std::string name = Create(*p, params);
  ASSERT_FALSE(name.empty());
  std::vector<std::string> labels;
  for (int64_t d : days) labels.push_back(DateOf(d));
  WaitForPartitions(*p, name, labels);

  auto under = Under("mixpanel");
  ASSERT_TRUE(under);
  PartitionContent before;
  for (int64_t day : days) {
    SCOPED_TRACE(DateOf(day));
    auto content = ReadPartition(*under, DayDir(p->id, day));
    ASSERT_TRUE(content.ok()) << content.error().ToString();
    EXPECT_TRUE(content->complete);
    auto expected = server_->ReadBack(*p, day);
    ASSERT_TRUE(expected.ok());
    EXPECT_EQ(expected->size(), 1200u);
    EXPECT_EQ(CompareEvents(content->lines, *expected), "");
    EXPECT_EQ(content->manifest.pipeline, name);
    if (day == days.front()) before = std::move(content).value();
  }

  // Late data: 80 new events and 20 re-sent with a change.
  std::vector<std::string> late = MakeDayEvents(days.front(), 80, "az-late", 52);
  for (size_t i = 0; i < 20; ++i) {
    std::string changed = first_day[i];
    changed.replace(changed.find("\"Linux\""), 7, "\"late-change\"");
    late.push_back(std::move(changed));
  }
  ASSERT_TRUE(server_->Import(*p, late).ok());
  auto sync = server_->PipelinePost(*p, "sync", {{"name", name}});
  ASSERT_EQ(sync.status, 200) << sync.body;
  WaitForPartitions(*p, name, {DateOf(days.front())}, {{DateOf(days.front()), before.manifest.generation}});
  auto after = ReadPartition(*under, DayDir(p->id, days.front()));
  ASSERT_TRUE(after.ok()) << after.error().ToString();
  auto expected = server_->ReadBack(*p, days.front());
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(expected->size(), 1280u);
  EXPECT_EQ(CompareEvents(after->lines, *expected), "");
  EXPECT_GT(after->manifest.generation, before.manifest.generation);
  for (const auto& f : before.manifest.files) {
    EXPECT_FALSE(under->Head(f.key).ok()) << "the old generation's file " << f.key << " is still there";
  }

  // People snapshot.
  std::vector<std::string> updates;
  for (int i = 0; i < 40; ++i) {
    updates.push_back(fmt::format(
        R"({{"$token":"{}","$distinct_id":"azperson-{}","$set":{{"name":"Zo\u00eb {}","n":{}}}}})", p->token,
        i, i, i));
  }
  ASSERT_TRUE(server_->Engage(updates).ok());
  Params people = AzureParams();
  people.insert(people.end(),
                {{"from_date", DateOf(today_ - 1)}, {"data_source", "people"}, {"prefix", "mixpanel"}});
  const std::string people_name = Create(*p, people);
  ASSERT_FALSE(people_name.empty());
  WaitForPartitions(*p, people_name, {"snapshot"});
  auto snapshot = ReadPartition(*under, pipeline::SnapshotDir(p->id, pipeline::DataSource::kPeople));
  ASSERT_TRUE(snapshot.ok()) << snapshot.error().ToString();
  EXPECT_TRUE(snapshot->complete);
  auto profiles = server_->ReadProfiles(*p);
  ASSERT_TRUE(profiles.ok()) << profiles.error().ToString();
  ASSERT_EQ(snapshot->lines.size(), profiles->size());
  for (const auto& line : snapshot->lines) {
    json::object o = json::parse(line).as_object();
    std::string id(o.at("distinct_id").as_string());
    ASSERT_TRUE(profiles->contains(id)) << id;
    EXPECT_EQ(o.at("properties"), json::parse(profiles->at(id))) << id;
  }

  // The API reports the destination without the client secret; the server's log never carries it.
  auto jobs = server_->PipelineGet(*p, "jobs", {});
  ASSERT_EQ(jobs.status, 200) << jobs.body;
  EXPECT_NE(jobs.body.find("\"storage_account\":\"devstoreaccount1\""), std::string::npos) << jobs.body;
  EXPECT_NE(jobs.body.find("\"prefix\":\"mixpanel\""), std::string::npos) << jobs.body;
  EXPECT_EQ(jobs.body.find(kSecret), std::string::npos) << jobs.body;
  auto status = server_->PipelineGet(*p, "status", {{"name", name}});
  EXPECT_EQ(status.body.find(kSecret), std::string::npos) << status.body;
}

// A wrong client secret: create is refused, naming the credential to check, and the secret is not echoed.
TEST_F(AzurePipelineTest, WrongSecretIsRefusedNamingTheCredential) {
  auto p = server_->CreateProject("azure-wrong-secret");
  ASSERT_TRUE(p.ok());
  Params params = AzureParams("not-the-Secret-42");
  params.emplace_back("from_date", DateOf(today_ - 1));
  auto r = server_->PipelinePost(*p, "create", params);
  EXPECT_NE(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("client_secret"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(kClient), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("not-the-Secret-42"), std::string::npos) << r.body;
  auto list = server_->PipelineGet(*p, "jobs", {});
  EXPECT_EQ(list.body.find("azure"), std::string::npos) << "a refused pipeline was stored: " << list.body;
}

// A tenant's azure_endpoint the operator did not allow is refused before anything is sent: no connection to
// it and no token request (the customer's secret goes nowhere).
TEST_F(AzurePipelineTest, EndpointNotAllowedIsRefusedWithNoConnection) {
  auto p = server_->CreateProject("azure-endpoint");
  ASSERT_TRUE(p.ok());
  ConnectionCounter trap;
  const int tokens_before = azure_->entra().requests();
  for (const std::string& endpoint :
       {fmt::format("http://127.0.0.1:{}", trap.port()), fmt::format("https://127.0.0.1:{}", trap.port())}) {
    SCOPED_TRACE(endpoint);
    Params params = AzureParams();
    for (auto& [k, v] : params) {
      if (k == "azure_endpoint") v = endpoint;
    }
    params.emplace_back("from_date", DateOf(today_ - 1));
    auto r = server_->PipelinePost(*p, "create", params);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("azure_endpoint"), std::string::npos) << r.body;
  }
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(trap.accepted(), 0);
  EXPECT_EQ(azure_->entra().requests(), tokens_before);
}

// The CLI drives an Azure pipeline like the API: `sluice pipeline create --type azure-raw` with the --azure-*
// flags and the client secret from --azure-client-secret-file (never a flag value, which `ps` would show),
// the day exported equal to the store, `list` showing the container, `edit --azure-prefix` refused (the
// location is fixed), `edit --no-sync` keeping the secret. Without a secret file or AZURE_CLIENT_SECRET,
// create is refused before anything is sent.
TEST_F(AzurePipelineTest, CliCreatesListsAndEditsAnAzurePipelineWithTheSecretFromAFile) {
  auto p = server_->CreateProject("azure-cli");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  const int64_t day = today_ - 1;
  ASSERT_TRUE(server_->Import(*p, MakeDayEvents(day, 300, "azcli", 53)).ok());
  const std::filesystem::path secret_file = azure_->dir() / "azure-cli-secret";
  {
    std::ofstream out(secret_file);
    out << kSecret << "\n";
  }
  const std::string cli = ServerProcess::Binary() + " pipeline ";
  const std::string common = fmt::format(" --project {} --data-dir {}", p->id, server_->data_dir().string());
  const std::string azure = fmt::format(
      " --type azure-raw --azure-storage-account {} --azure-container {} --azure-client-id {} "
      "--azure-tenant-id {} --azure-endpoint {} --azure-prefix cli-first --from-date {}",
      AzuriteServer::kAccount, kContainer, kClient, kAzureTenant, Origin(), DateOf(day));

  auto [refused, refused_rc] =
      RunShell("env -u AZURE_CLIENT_SECRET " + cli + "create --name cli-azure" + azure + common);
  EXPECT_EQ(refused_rc, 1) << refused;
  EXPECT_NE(refused.find("--azure-client-secret-file"), std::string::npos) << refused;
  EXPECT_NE(refused.find("AZURE_CLIENT_SECRET"), std::string::npos) << refused;

  auto [created, rc] = RunShell(cli + "create --name cli-azure --azure-client-secret-file " +
                                secret_file.string() + azure + common);
  ASSERT_EQ(rc, 0) << created;
  EXPECT_EQ(created, "created pipeline cli-azure\n");
  WaitForPartitions(*p, "cli-azure", {DateOf(day)});
  auto under = Under("cli-first");
  ASSERT_TRUE(under);
  auto content = ReadPartition(*under, DayDir(p->id, day));
  ASSERT_TRUE(content.ok()) << content.error().ToString();
  auto expected = server_->ReadBack(*p, day);
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(CompareEvents(content->lines, *expected), "");

  auto [listed, list_rc] = RunShell(cli + "list" + common);
  EXPECT_EQ(list_rc, 0) << listed;
  EXPECT_NE(listed.find(Origin() + "/" + AzuriteServer::kAccount + "/" + kContainer + "/cli-first"),
            std::string::npos)
      << listed;
  EXPECT_EQ(listed.find(kSecret), std::string::npos) << listed;

  // The prefix is where the pipeline delivered: it cannot move (a new pipeline can), and the CLI says so.
  auto [moved, moved_rc] = RunShell("env -u AZURE_CLIENT_SECRET " + cli +
                                    "edit --name cli-azure --azure-prefix cli-second" + common);
  EXPECT_NE(moved_rc, 0) << moved;
  EXPECT_NE(moved.find("location"), std::string::npos) << moved;
  // An edit of sync alone keeps the pipeline's secret (none is sent, none is needed).
  auto [edited, edit_rc] =
      RunShell("env -u AZURE_CLIENT_SECRET " + cli + "edit --name cli-azure --no-sync" + common);
  EXPECT_EQ(edit_rc, 0) << edited;
  auto [relisted, relist_rc] = RunShell(cli + "list" + common);
  EXPECT_EQ(relist_rc, 0) << relisted;
  EXPECT_NE(relisted.find(kContainer + std::string("/cli-first")), std::string::npos) << relisted;
  EXPECT_NE(relisted.find(" off "), std::string::npos) << relisted;
  EXPECT_EQ(relisted.find(kSecret), std::string::npos) << relisted;
}

// Names and ids are validated at the edge: path tricks in the account, container or tenant are refused before
// any request, each naming the parameter.
TEST_F(AzurePipelineTest, AbusiveNamesAreRefusedAtTheEdge) {
  auto p = server_->CreateProject("azure-names");
  ASSERT_TRUE(p.ok());
  const int tokens_before = azure_->entra().requests();
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"storage_account", "devstoreaccount1/../x"},
      {"storage_account", "ab"},
      {"storage_account", "UPPERCASE"},
      {"container_name", "acme--exports"},
      {"container_name", "../acme"},
      {"tenant_id", "../../common/oauth2"},
      {"client_id", "not-a-guid"},
      {"prefix", "a/../../b"},
      {"azure_endpoint", "https://127.0.0.1:1/devstoreaccount1?x"}};
  for (const auto& [field, value] : bad) {
    SCOPED_TRACE(field + "=" + value);
    Params params = AzureParams();
    bool replaced = false;
    for (auto& [k, v] : params) {
      if (k == field) {
        v = value;
        replaced = true;
      }
    }
    if (!replaced) params.emplace_back(field, value);
    params.emplace_back("from_date", DateOf(today_ - 1));
    auto r = server_->PipelinePost(*p, "create", params);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find(field), std::string::npos) << r.body;
  }
  // Azure parameters on another type are a mistake worth naming.
  auto r = server_->PipelinePost(*p, "create",
                                 {{"type", "gcs-raw"},
                                  {"gcs_bucket", "acme"},
                                  {"container_name", kContainer},
                                  {"from_date", DateOf(today_ - 1)}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("container_name does not apply"), std::string::npos) << r.body;
  EXPECT_EQ(azure_->entra().requests(), tokens_before);
}

}  // namespace
}  // namespace sluice::testing::e2e
