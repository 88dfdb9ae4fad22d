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
#include <set>
#include <thread>

#include "azure/credentials.h"
#include "azure/executor.h"
#include "common/crypto.h"
#include "http/transport.h"
#include "objstore/azure/azure_blob_store.h"
#include "pipeline/e2e_support.h"
#include "pipeline/layout.h"
#include "support/azurite_server.h"
#include "support/entra_token_endpoint.h"
#include "support/loopback_http.h"

namespace sluice::testing::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr char kTenant[] = "72f988bf-86f1-41af-91ab-2d7cd011db47";
constexpr char kClient[] = "11111111-2222-3333-4444-555555555555";
constexpr char kSecret[] = "az~Pipeline.secret_0123456789";
constexpr char kContainer[] = "acme-exports";

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
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     ("sluice-azure-e2e-" + RandomHex(64)));
    std::filesystem::create_directories(*dir_);
    cert_ = new TestCert(MakeLoopbackCert(dir_->string()));
    AzuriteServer::Options ao;
    ao.cert_path = cert_->cert_path;
    ao.key_path = cert_->key_path;
    auto azurite = AzuriteServer::Start(ao);
    if (!azurite.ok()) {
      error_ = new std::string("Azurite could not start: " + azurite.error().ToString());
      return;
    }
    azurite_ = azurite->release();
    entra_ = new EntraTokenEndpoint(kTenant, kClient, kSecret);
    http::TransportOptions tls;
    tls.ca_bundle = cert_->cert_path;
    transport_ = new std::shared_ptr<http::HttpTransport>(http::MakeCurlTransport(tls));
    // The container, created with the account key (the customer's own setup).
    {
      azure::Executor::Options o;
      o.transport = *transport_;
      o.credential =
          *azure::StorageCredential::SharedKey(AzuriteServer::kAccount, Secret(AzuriteServer::kAccountKey));
      azure::Executor ex(std::move(o));
      std::string url = azurite_->BlobEndpoint() + "/" + kContainer + "?restype=container";
      auto r = ex.Call([&] {
        return Result<http::OutboundRequest>(http::OutboundRequest{"PUT", url, {}, {}});
      });
      if (!r.ok()) {
        error_ = new std::string("container: " + r.error().ToString());
        return;
      }
    }
    // The operator's Entra ID authority; no AWS or Google identity at all.
    setenv("AZURE_AUTHORITY_HOST", entra_->Authority().c_str(), 1);
    for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                          "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS",
                          "GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST"}) {
      unsetenv(v);
    }
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    server_ = new SluiceServer(*dir_ / "data", nullptr,
                               {"--pipeline-unit-parallelism", "2", "--allow-azure-endpoint", Origin(),
                                "--ca-bundle", cert_->cert_path});
    std::string err;
    if (!server_->Start(&err)) error_ = new std::string("sluice serve did not start: " + err);
  }

  static void TearDownTestSuite() {
    if (server_) server_->Terminate();
    delete server_;
    server_ = nullptr;
    delete entra_;
    entra_ = nullptr;
    delete azurite_;
    azurite_ = nullptr;
    delete transport_;
    transport_ = nullptr;
    if (dir_) std::filesystem::remove_all(*dir_);
    delete dir_;
    dir_ = nullptr;
    delete cert_;
    cert_ = nullptr;
    delete error_;
    error_ = nullptr;
  }

  void SetUp() override {
    ASSERT_EQ(error_, nullptr) << *error_;
    today_ = TodayUtc();
  }

  /// "https://127.0.0.1:PORT": the origin the operator allowed.
  static std::string Origin() { return fmt::format("https://127.0.0.1:{}", azurite_->port()); }

  /// The container under `prefix`, seen with the account key (assertions only).
  static std::shared_ptr<objstore::ObjectStore> Under(const std::string& prefix) {
    objstore::azure::AzureStoreOptions o;
    o.account = AzuriteServer::kAccount;
    o.container = kContainer;
    o.prefix = prefix;
    o.endpoint = azurite_->BlobEndpoint();
    auto cred =
        azure::StorageCredential::SharedKey(AzuriteServer::kAccount, Secret(AzuriteServer::kAccountKey));
    auto store = objstore::azure::AzureBlobStore::Create(o, *cred, *transport_);
    if (!store.ok()) return nullptr;
    return std::shared_ptr<objstore::ObjectStore>(std::move(store).value());
  }

  static Params AzureParams(const std::string& secret = kSecret) {
    return {{"type", "azure-raw"},          {"storage_account", AzuriteServer::kAccount},
            {"container_name", kContainer}, {"client_id", kClient},
            {"client_secret", secret},      {"tenant_id", kTenant},
            {"azure_endpoint", Origin()}};
  }

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

  static AzuriteServer* azurite_;
  static EntraTokenEndpoint* entra_;
  static SluiceServer* server_;
  static std::shared_ptr<http::HttpTransport>* transport_;
  static std::filesystem::path* dir_;
  static TestCert* cert_;
  static std::string* error_;
  int64_t today_ = 0;
};

AzuriteServer* AzurePipelineTest::azurite_ = nullptr;
EntraTokenEndpoint* AzurePipelineTest::entra_ = nullptr;
SluiceServer* AzurePipelineTest::server_ = nullptr;
std::shared_ptr<http::HttpTransport>* AzurePipelineTest::transport_ = nullptr;
std::filesystem::path* AzurePipelineTest::dir_ = nullptr;
TestCert* AzurePipelineTest::cert_ = nullptr;
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
  const int tokens_before = entra_->requests();
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
  EXPECT_EQ(entra_->requests(), tokens_before);
}

// Names and ids are validated at the edge: path tricks in the account, container or tenant are refused before
// any request, each naming the parameter.
TEST_F(AzurePipelineTest, AbusiveNamesAreRefusedAtTheEdge) {
  auto p = server_->CreateProject("azure-names");
  ASSERT_TRUE(p.ok());
  const int tokens_before = entra_->requests();
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
  EXPECT_EQ(entra_->requests(), tokens_before);
}

}  // namespace
}  // namespace sluice::testing::e2e
