// Cloud Import from Azure Blob Storage (connector_type azureImport) through the real `sluice serve`, against
// Azurite in its OAuth mode (`--oauth basic` over HTTPS, a self-signed 127.0.0.1 certificate trusted through
// --ca-bundle) with a loopback Entra ID token endpoint (AZURE_AUTHORITY_HOST, the operator's): Sluice reads
// as the customer's service principal from an endpoint the operator allowed (--allow-azure-endpoint). The
// customer's files are uploaded with the account key, a credential used only by the test. Plain and gzip
// files with bad lines are imported with exact counts and the store equals their good lines; a wrong secret,
// a missing container, an endpoint the operator did not allow and abusive names are refused at create; the
// secret is never answered. The CLI: `sluice import run|create` with the --azure-* flags and `sluice
// destination check --provider azure` (also
// --purpose import). Azurite has no RBAC, so a principal without Storage Blob Data Reader cannot be produced
// here: tests/cloudimport/azure_source_test.cc checks that advice on a scripted transport.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>

#include <boost/json.hpp>
#include <cmath>
#include <fstream>
#include <set>
#include <thread>
#include <tuple>

#include "common/compression.h"
#include "common/crypto.h"
#include "pipeline/azure_e2e_support.h"
#include "pipeline/e2e_support.h"
#include "support/loopback_http.h"

namespace sluice::testing::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kTenant = kAzureTenant;
constexpr const char* kClient = kAzureClient;
constexpr const char* kSecret = kAzureSecret;
constexpr char kContainer[] = "acme-import";

std::pair<std::string, int> Shell(const std::string& cmd) { return RunShell(cmd); }

/// The last line of `out` that is a JSON object (the commands print their result last; progress goes before).
json::value LastJson(const std::string& out) {
  size_t end = out.size();
  while (end > 0) {
    size_t start = out.rfind('\n', end - 1);
    start = start == std::string::npos ? 0 : start + 1;
    std::string_view line(out.data() + start, end - start);
    if (line.starts_with("{")) {
      boost::system::error_code ec;
      json::value v = json::parse(line, ec);
      if (!ec) return v;
    }
    if (start == 0) break;
    end = start - 1;
  }
  return nullptr;
}

/// Whole seconds of a test event's `time` (seconds, milliseconds or fractional seconds).
int64_t EventSeconds(const json::value& time) {
  if (time.is_double()) return static_cast<int64_t>(std::floor(time.as_double()));
  const int64_t t = time.to_number<int64_t>();
  return t > 100'000'000'000 ? t / 1000 : t;
}

/// "" when the store's events are exactly `lines` (insert id, event name, time), else the differences.
std::string CompareWithLines(const EventsByInsertId& stored, const std::vector<std::string>& lines) {
  std::string diff;
  std::set<std::string> expected_ids;
  for (const auto& line : lines) {
    json::object o = json::parse(line).as_object();
    const json::object& props = o.at("properties").as_object();
    const std::string id(props.at("$insert_id").as_string());
    expected_ids.insert(id);
    auto it = stored.find(id);
    if (it == stored.end()) {
      diff += "missing " + id + "\n";
      continue;
    }
    if (it->second.event != o.at("event").as_string()) diff += "event of " + id + " differs\n";
    if (it->second.time_s != EventSeconds(props.at("time"))) diff += "time of " + id + " differs\n";
  }
  for (const auto& [id, e] : stored) {
    if (!expected_ids.contains(id)) diff += "unexpected " + id + "\n";
  }
  return diff.substr(0, 2000);
}

class AzureImportTest : public ::testing::Test {
 protected:
  /// What the suite's tests share; the destructor stops the server before the Azure environment.
  struct Suite {
    std::filesystem::path dir;
    std::unique_ptr<AzureE2e> env;
    std::unique_ptr<SluiceServer> server;
    std::string secret_file;  // the client secret, for the CLI (never a flag value)
    std::string error;
    ~Suite() {
      if (server) server->Terminate();
      server.reset();
      env.reset();
      std::filesystem::remove_all(dir);
    }
  };

  static void SetUpTestSuite() {
    suite_ = new Suite();
    suite_->dir = std::filesystem::temp_directory_path() / ("sluice-azure-import-" + RandomHex(64));
    std::filesystem::create_directories(suite_->dir);
    suite_->env = std::make_unique<AzureE2e>();
    if (!suite_->env->error().empty()) {
      suite_->error = "the Azure environment did not start: " + suite_->env->error();
      return;
    }
    if (Status created = suite_->env->CreateContainer(kContainer); !created.ok()) {
      suite_->error = "container: " + created.error().ToString();
      return;
    }
    suite_->server = std::make_unique<SluiceServer>(suite_->dir / "data", nullptr, suite_->env->ServeArgs());
    std::string err;
    if (!suite_->server->Start(&err)) suite_->error = "sluice serve did not start: " + err;
    suite_->secret_file = (suite_->dir / "client-secret").string();
    std::ofstream(suite_->secret_file) << kSecret << "\n";
  }

  static void TearDownTestSuite() {
    delete suite_;
    suite_ = nullptr;
  }

  void SetUp() override {
    ASSERT_EQ(suite_->error, "");
    today_ = TodayUtc();
  }

  static std::string Origin() { return suite_->env->Origin(); }

  /// The customer's view of the container (account key): uploads and assertions only.
  static std::shared_ptr<objstore::ObjectStore> Customer() {
    return suite_->env->Under("", kContainer);
  }

  static json::object Properties(const std::string& prefix, const std::string& secret = kSecret) {
    return json::object{{"storage_account", AzuriteServer::kAccount},
                        {"container_name", kContainer},
                        {"prefix", prefix},
                        {"client_id", kClient},
                        {"client_secret", secret},
                        {"tenant_id", kTenant},
                        {"azure_endpoint", Origin()}};
  }

  static json::object Body(json::object properties, const std::string& compression = "none") {
    return json::object{{"connector_type", "azureImport"},
                        {"label", "azure " + compression},
                        {"connector_properties", std::move(properties)},
                        {"category_properties",
                         json::object{{"data_format", "mixpanel_event"}, {"compression", compression}}}};
  }

  ServerProcess::Reply Post(const Project& p, const json::object& body) {
    return suite_->server->process().Send("POST", fmt::format("/api/app/projects/{}/connectors", p.id),
                                          json::serialize(body), Admin());
  }
  ServerProcess::Reply Get(const Project& p, const std::string& suffix = "") {
    return suite_->server->process().Send(
        "GET", fmt::format("/api/app/projects/{}/connectors{}", p.id, suffix), {}, Admin());
  }
  static std::vector<std::pair<std::string, std::string>> Admin() {
    return {{"Authorization", "Bearer " + suite_->server->process().admin_token()}};
  }

  /// The connector's first finished run.
  json::object WaitForRun(const Project& p, const std::string& id) {
    std::string run;
    EXPECT_EQ(WaitForConnectorRun(*suite_->server, p.id, id, &run), "");
    return run.empty() ? json::object() : json::parse(run).as_object();
  }

  /// " --server URL --admin-token T --project N"
  static std::string ClientFlags(const Project& p) {
    return fmt::format(" --server {} --admin-token {} --project {}", suite_->server->process().url(),
                       suite_->server->process().admin_token(), p.id);
  }
  /// The --azure-* flags of the suite's container (the secret not among them).
  static std::string AzureFlags(const std::string& prefix) {
    return fmt::format(
        " --azure-storage-account {} --azure-container {} --azure-prefix {} --azure-client-id {} "
        "--azure-tenant-id {} --azure-endpoint {}",
        AzuriteServer::kAccount, kContainer, prefix, kClient, kTenant, Origin());
  }

  static inline Suite* suite_ = nullptr;
  int64_t today_ = 0;
};

// A plain and a gzip file with one bad line each, discovered under their prefixes: exact counts in the
// history, the bad lines reported with their numbers, and the store holding exactly the good lines. The
// connector's answers never carry the secret.
TEST_F(AzureImportTest, ImportsPlainAndGzipFilesWithBadLines) {
  auto p = suite_->server->CreateProject("azure-import");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  const int64_t day = today_ - 2;
  const auto lines = MakeDayEvents(day, 40, "azi", 81);
  std::string plain, gz_source;
  for (int i = 0; i < 20; ++i) plain += lines[i] + "\n";
  plain += "{not json\n";
  for (int i = 20; i < 40; ++i) gz_source += lines[i] + "\n";
  gz_source += "[1,2,3]\n";
  auto customer = Customer();
  ASSERT_TRUE(customer);
  ASSERT_TRUE(customer->Put("incoming/plain/a.json", plain).ok());
  ASSERT_TRUE(customer->Put("incoming/gz/b.json.gz", Gzip(gz_source)).ok());
  ASSERT_TRUE(customer->Put("elsewhere/c.json", lines[0] + "\n").ok());  // outside both prefixes

  for (const auto& [prefix, compression, file] :
       {std::tuple{"incoming/plain/", "none", "incoming/plain/a.json"},
        std::tuple{"incoming/gz/", "gzip", "incoming/gz/b.json.gz"}}) {
    SCOPED_TRACE(file);
    auto created = Post(*p, Body(Properties(prefix), compression));
    ASSERT_EQ(created.status, 200) << created.body;
    EXPECT_EQ(created.body.find(kSecret), std::string::npos) << created.body;
    const json::value v = json::parse(created.body);
    const json::object& cp = v.at("results").at("connector_properties").as_object();
    EXPECT_EQ(cp.at("prefix").as_string(), prefix);
    EXPECT_EQ(cp.at("container_name").as_string(), kContainer);
    EXPECT_FALSE(cp.contains("client_secret"));
    const std::string id(v.at("results").at("connector_id").as_string());
    json::object run = WaitForRun(*p, id);
    ASSERT_FALSE(run.empty());
    EXPECT_EQ(run.at("status").as_string(), "success") << json::serialize(run);
    EXPECT_EQ(run.at("num_files_found").to_number<uint64_t>(), 1u) << json::serialize(run);
    EXPECT_EQ(run.at("num_files_imported").to_number<uint64_t>(), 1u) << json::serialize(run);
    EXPECT_EQ(run.at("num_files_failed").to_number<uint64_t>(), 0u) << json::serialize(run);
    EXPECT_EQ(run.at("num_events_processed").to_number<uint64_t>(), 21u) << json::serialize(run);
    EXPECT_EQ(run.at("num_events_imported").to_number<uint64_t>(), 20u) << json::serialize(run);
    EXPECT_EQ(run.at("num_events_dropped").to_number<uint64_t>(), 1u) << json::serialize(run);
    const json::array& errors = run.at("errors").as_array();
    ASSERT_EQ(errors.size(), 1u) << json::serialize(run);
    EXPECT_EQ(errors[0].at("file").as_string(), file);
    EXPECT_EQ(errors[0].at("line").to_number<uint64_t>(), 21u);
  }
  auto stored = suite_->server->ReadBack(*p, day);
  ASSERT_TRUE(stored.ok()) << stored.error().ToString();
  EXPECT_EQ(stored->size(), 40u);
  EXPECT_EQ(CompareWithLines(*stored, lines), "");

  // Neither the list nor a connector's GET answers the secret.
  auto list = Get(*p);
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_NE(list.body.find("\"azureImport\""), std::string::npos) << list.body;
  EXPECT_EQ(list.body.find(kSecret), std::string::npos) << list.body;
  const json::value listed = json::parse(list.body);
  for (const auto& c : listed.at("results").at("data").as_array()) {
    auto one = Get(*p, "/" + std::string(c.at("connector_id").as_string()));
    EXPECT_EQ(one.status, 200) << one.body;
    EXPECT_EQ(one.body.find(kSecret), std::string::npos) << one.body;
  }
}

// A wrong client secret is refused at create naming the credentials to check, without echoing it; a container
// that does not exist is refused naming container_name. Nothing is stored.
TEST_F(AzureImportTest, WrongSecretAndMissingContainerAreRefusedAtCreate) {
  auto p = suite_->server->CreateProject("azure-import-refused");
  ASSERT_TRUE(p.ok());
  const std::string wrong = "not-the-Secret-42";
  auto r = Post(*p, Body(Properties("incoming/", wrong)));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("invalid_permissions_azure"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("connector_properties.client_secret"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("check client_secret"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(kClient), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(wrong), std::string::npos) << r.body;

  json::object missing = Properties("incoming/");
  missing["container_name"] = "no-such-container";
  r = Post(*p, Body(missing));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("\"field\":\"connector_properties.container_name\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("container no-such-container of storage account devstoreaccount1 does not exist"),
            std::string::npos)
      << r.body;

  auto list = Get(*p);
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(json::parse(list.body).at("results").at("data").as_array().size(), 0u) << list.body;
}

// An azure_endpoint the operator did not allow is refused before anything is sent: no connection to it and no
// token request (the customer's secret goes nowhere).
TEST_F(AzureImportTest, EndpointNotAllowedIsRefusedWithNoConnection) {
  auto p = suite_->server->CreateProject("azure-import-endpoint");
  ASSERT_TRUE(p.ok());
  uint16_t port = 0;
  auto trap = ListenLoopback(port);
  ASSERT_TRUE(trap.ok()) << trap.error().ToString();
  const int tokens_before = suite_->env->entra().requests();
  for (const std::string& endpoint :
       {fmt::format("http://127.0.0.1:{}", port), fmt::format("https://127.0.0.1:{}", port)}) {
    SCOPED_TRACE(endpoint);
    json::object props = Properties("incoming/");
    props["azure_endpoint"] = endpoint;
    auto r = Post(*p, Body(props));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("connector_properties.azure_endpoint"), std::string::npos) << r.body;
    EXPECT_EQ(r.body.find(kSecret), std::string::npos) << r.body;
  }
  std::this_thread::sleep_for(300ms);
  // A connection attempt would be waiting in the listener's backlog.
  pollfd pending{trap->get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pending, 1, 0), 0) << "a connection reached the endpoint the operator did not allow";
  EXPECT_EQ(suite_->env->entra().requests(), tokens_before);
}

// Account, container, prefix, tenant and client are validated at the edge: path tricks, control characters
// and URLs are refused before any request, each naming the property.
TEST_F(AzureImportTest, AbusiveNamesAreRefusedAtTheEdge) {
  auto p = suite_->server->CreateProject("azure-import-names");
  ASSERT_TRUE(p.ok());
  const int tokens_before = suite_->env->entra().requests();
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"storage_account", "devstoreaccount1/../x"},
      {"storage_account", "https://evil.example"},
      {"storage_account", "dev\nstore"},
      {"container_name", "../acme-import"},
      {"container_name", "acme-import/x"},
      {"container_name", "acme\x01import"},
      {"prefix", "incoming/../../other"},
      {"prefix", "in\ncoming/"},
      {"prefix", "a\\b"},
      {"tenant_id", "../../common/oauth2"},
      {"tenant_id", "https://evil.example/t"},
      {"tenant_id", "contoso.com\r\nX: y"},
      {"client_id", "not-a-guid"},
      {"azure_endpoint", "https://127.0.0.1:1/devstoreaccount1?x"}};
  for (const auto& [field, value] : bad) {
    SCOPED_TRACE(field + "=" + value);
    json::object props = Properties("incoming/");
    props[field] = value;
    auto r = Post(*p, Body(props));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("\"field\":\"connector_properties." + field + "\""), std::string::npos) << r.body;
  }
  // The other providers' properties are named, not ignored.
  json::object props = Properties("incoming/");
  props["s3_bucket"] = "acme";
  auto r = Post(*p, Body(props));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("connector_properties.s3_bucket"), std::string::npos) << r.body;
  EXPECT_EQ(suite_->env->entra().requests(), tokens_before);
}

// `sluice import` with the --azure-* flags through the real binary: `import run` imports the files under
// --azure-prefix (secret from --azure-client-secret-file) and prints the finished run; `import create` takes
// the secret from AZURE_CLIENT_SECRET and prints the connector without it; mixing S3/GCS and Azure flags, a
// missing secret and a secret given as a flag value are refused before anything is sent.
TEST_F(AzureImportTest, ImportCommandCreatesAndRunsAzureConnectors) {
  auto p = suite_->server->CreateProject("azure-import-cli");
  ASSERT_TRUE(p.ok());
  const int64_t day = today_ - 3;
  const auto lines = MakeDayEvents(day, 12, "azcli", 83);
  std::string file;
  for (const auto& l : lines) file += l + "\n";
  auto customer = Customer();
  ASSERT_TRUE(customer);
  ASSERT_TRUE(customer->Put("cli/in/a.json", file).ok());

  const std::string bin = ServerProcess::Binary();
  auto [run_out, run_rc] = Shell(bin + " import run" + ClientFlags(*p) + AzureFlags("cli/in/") +
                                 " --azure-client-secret-file " + suite_->secret_file);
  ASSERT_EQ(run_rc, 0) << run_out;
  json::value run = LastJson(run_out);
  ASSERT_TRUE(run.is_object()) << run_out;
  EXPECT_EQ(run.at("status").as_string(), "success") << run_out;
  EXPECT_EQ(run.at("num_events_imported").to_number<uint64_t>(), 12u) << run_out;
  EXPECT_EQ(run_out.find(kSecret), std::string::npos) << run_out;
  auto stored = suite_->server->ReadBack(*p, day);
  ASSERT_TRUE(stored.ok()) << stored.error().ToString();
  EXPECT_EQ(CompareWithLines(*stored, lines), "");

  auto [created_out, created_rc] =
      Shell(std::string("AZURE_CLIENT_SECRET='") + kSecret + "' " + bin + " import create" + ClientFlags(*p) +
            AzureFlags("cli/in/") + " --label from-cli");
  ASSERT_EQ(created_rc, 0) << created_out;
  json::value created = LastJson(created_out);
  ASSERT_TRUE(created.is_object()) << created_out;
  EXPECT_EQ(created.at("connector_type").as_string(), "azureImport") << created_out;
  EXPECT_EQ(created.at("connector_properties").at("container_name").as_string(), kContainer) << created_out;
  EXPECT_EQ(created.at("connector_properties").at("prefix").as_string(), "cli/in/") << created_out;
  EXPECT_EQ(created_out.find(kSecret), std::string::npos) << created_out;

  // Refused by the CLI itself: Azure with an S3 bucket, with a GCS bucket, without a secret, and a secret as
  // a flag value (no such flag).
  const std::string secret_file = " --azure-client-secret-file " + suite_->secret_file;
  auto [s3, s3_rc] = Shell(bin + " import create" + ClientFlags(*p) + AzureFlags("cli/in/") + secret_file +
                           " --bucket other --role arn:aws:iam::123456789012:role/r");
  EXPECT_NE(s3_rc, 0) << s3;
  EXPECT_NE(s3.find("give one of them"), std::string::npos) << s3;
  auto [gcs, gcs_rc] = Shell(bin + " import create" + ClientFlags(*p) + AzureFlags("cli/in/") + secret_file +
                             " --gcs-bucket other");
  EXPECT_NE(gcs_rc, 0) << gcs;
  auto [nosecret, nosecret_rc] = Shell(bin + " import create" + ClientFlags(*p) + AzureFlags("cli/in/"));
  EXPECT_NE(nosecret_rc, 0) << nosecret;
  EXPECT_NE(nosecret.find("AZURE_CLIENT_SECRET"), std::string::npos) << nosecret;
  auto [flag, flag_rc] = Shell(bin + " import create" + ClientFlags(*p) + AzureFlags("cli/in/") +
                               " --azure-client-secret " + kSecret);
  EXPECT_NE(flag_rc, 0) << flag;
  auto [still, still_rc] = Shell(bin + " import list" + ClientFlags(*p));
  ASSERT_EQ(still_rc, 0) << still;
  EXPECT_EQ(json::parse(still).as_array().size(), 1u) << "only `import create` made one: " << still;
}

// `sluice destination check --provider azure` through the real binary: the export check (put, get, list,
// delete) and the import check (--purpose import: list and read only) pass on the container; a wrong secret
// fails at the identity step naming the credentials; S3 flags with --provider azure are a usage error.
TEST_F(AzureImportTest, DestinationCheckCommandCoversAzure) {
  auto customer = Customer();
  ASSERT_TRUE(customer);
  ASSERT_TRUE(customer->Put("check/in/a.json", "{}\n").ok());
  const std::string bin = ServerProcess::Binary();
  const std::string base = bin + " destination check --provider azure" + AzureFlags("check/in/") +
                           " --ca-bundle " + suite_->env->cert().cert_path + " --azure-client-secret-file " +
                           suite_->secret_file;

  auto [exported, export_rc] = Shell(base + " --json");
  EXPECT_EQ(export_rc, 0) << exported;
  json::value report = LastJson(exported);
  ASSERT_TRUE(report.is_object()) << exported;
  EXPECT_TRUE(report.at("ok").as_bool()) << exported;
  EXPECT_EQ(report.at("steps").as_array().size(), 6u)
      << exported;  // identity, put, get, encryption, list, delete

  auto [imported, import_rc] = Shell(base + " --purpose import");
  EXPECT_EQ(import_rc, 0) << imported;
  EXPECT_NE(imported.find("[ok  ] identity"), std::string::npos) << imported;
  EXPECT_NE(imported.find("[ok  ] list"), std::string::npos) << imported;
  EXPECT_NE(imported.find("the first blob is check/in/a.json"), std::string::npos) << imported;
  EXPECT_NE(imported.find("[ok  ] get"), std::string::npos) << imported;
  EXPECT_EQ(imported.find("put"), std::string::npos) << "the import check writes nothing: " << imported;
  auto keys = customer->Get("check/in/a.json");
  EXPECT_TRUE(keys.ok());

  const std::string wrong_file = (suite_->dir / "wrong-secret").string();
  std::ofstream(wrong_file) << "not-the-Secret-42\n";
  auto [wrong, wrong_rc] =
      Shell(bin + " destination check --provider azure --purpose import" + AzureFlags("check/in/") +
            " --ca-bundle " + suite_->env->cert().cert_path + " --azure-client-secret-file " + wrong_file);
  EXPECT_EQ(wrong_rc, 1) << wrong;
  EXPECT_NE(wrong.find("[FAIL] identity"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("check client_secret"), std::string::npos) << wrong;
  EXPECT_EQ(wrong.find("not-the-Secret-42"), std::string::npos) << wrong;

  auto [usage, usage_rc] = Shell(base + " --bucket acme --role arn:aws:iam::123456789012:role/r");
  EXPECT_EQ(usage_rc, 2) << usage;
  auto [gcs_import, gcs_import_rc] =
      Shell(bin + " destination check --provider gcs --purpose import --bucket acme");
  EXPECT_EQ(gcs_import_rc, 2) << gcs_import;
}

}  // namespace
}  // namespace sluice::testing::e2e
