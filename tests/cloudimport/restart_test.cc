// SIGKILL the real `sluice serve` in the middle of importing a file, restart it, and prove that every line of
// the file ends up stored exactly once: the interrupted run is recorded as such, the next one resumes from
// the file's checkpoint, and whatever was written twice is deduplicated (lines without $insert_id included).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>

#include "aws/providers.h"
#include "common/crypto.h"
#include "http/transport.h"
#include "objstore/s3/s3_object_store.h"
#include "server_process.h"
#include "store/store.h"
#include "support/moto_server.h"

namespace sluice::testing {
namespace {

namespace json = boost::json;

/// Runs a shell command, returning stdout and the exit code.
std::pair<std::string, int> Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {"popen failed", -1};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {out, WEXITSTATUS(status)};
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(ImportRestartTest, SigkillMidFileThenRestartLosesNothingAndDuplicatesNothing) {
  auto moto = MotoServer::Start();
  ASSERT_TRUE(moto.ok()) << moto.error().ToString();
  auto env = (*moto)->RunSetup();
  ASSERT_TRUE(env.ok()) << env.error().ToString();
  ASSERT_TRUE((*moto)->EnableAuth().ok());

  // The customer's file: 300,000 events, every third without a $insert_id.
  constexpr int kEvents = 300000;
  {
    objstore::s3::S3StoreOptions o;
    o.bucket = env->import_bucket;
    o.region = env->region;
    o.endpoint = (*moto)->Endpoint();
    aws::Credentials admin;
    admin.access_key_id = env->admin_access_key_id;
    admin.secret_access_key = env->admin_secret_access_key;
    auto uploader = objstore::s3::S3ObjectStore::Create(
        o, std::make_shared<aws::StaticCredentialsProvider>(admin, "admin"));
    ASSERT_TRUE(uploader.ok()) << uploader.error().ToString();
    auto writer = (*uploader)->NewWriter("restart-events.json");
    ASSERT_TRUE(writer.ok());
    const int64_t t0 = NowSeconds() - 86400;
    std::string chunk;
    for (int i = 0; i < kEvents; ++i) {
      json::object props{{"time", t0 + i % 7200},
                         {"distinct_id", "u" + std::to_string(i % 5000)},
                         {"i", i},
                         {"text", "some realistic property value to make the line longer"}};
      if (i % 3 != 0) props["$insert_id"] = "rs-" + std::to_string(i);
      chunk += json::serialize(json::object{{"event", "Restart"}, {"properties", props}});
      chunk += '\n';
      if (chunk.size() > (4 << 20)) {
        ASSERT_TRUE((*writer)->Write(chunk).ok());
        chunk.clear();
      }
    }
    ASSERT_TRUE((*writer)->Write(chunk).ok());
    ASSERT_TRUE((*writer)->Complete().ok());
  }

  // A data dir with a project whose external ID is the one the role's trust policy requires.
  auto dir = std::filesystem::temp_directory_path() / ("sluice-import-restart-" + RandomHex(64));
  std::filesystem::create_directories(dir / "store");
  uint32_t project_id = 0;
  {
    auto store = store::Store::Open(dir / "store");
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    auto project = (*store)->CreateProject("restart");
    ASSERT_TRUE(project.ok());
    project->external_id = env->external_id;
    ASSERT_TRUE((*store)->UpdateProject(*project).ok());
    project_id = project->id;
    ASSERT_TRUE((*store)->Close().ok());
  }
  // Sluice's own identity for the child server: the assume-only user.
  ::setenv("AWS_ACCESS_KEY_ID", env->access_key_id.c_str(), 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", env->secret_access_key.Reveal().c_str(), 1);
  ::unsetenv("AWS_SESSION_TOKEN");
  ::unsetenv("AWS_PROFILE");
  // moto is the operator's endpoint (issue 9: a connector's s3_endpoint must be one the operator allowed, and
  // STS goes only to the operator's endpoint).
  ::setenv("AWS_ENDPOINT_URL", (*moto)->Endpoint().c_str(), 1);

  ServerProcess server(dir);
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  const std::vector<std::pair<std::string, std::string>> auth = {
      {"Authorization", "Bearer " + server.admin_token()}};
  const std::string base = "/api/app/projects/" + std::to_string(project_id) + "/connectors";
  json::object body{{"connector_type", "s3Import"},
                    {"label", "restart"},
                    {"connector_properties", json::object{{"s3_bucket", env->import_bucket},
                                                          {"s3_prefix", "restart-"},
                                                          {"s3_region", env->region},
                                                          {"s3_role", env->roles.at("import")},
                                                          {"s3_endpoint", (*moto)->Endpoint()}}},
                    {"category_properties", json::object{{"data_format", "mixpanel_event"}}}};
  auto created = server.Send("POST", base, json::serialize(body), auth);
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string id(json::parse(created.body).at("results").at("connector_id").as_string());
  const std::string history = base + "/" + id + "/history";

  // Kill it once half of the file is stored (bounded wait): by then checkpoints have been persisted (every
  // 64,000 lines at the latest).
  uint64_t imported_before_kill = 0;
  for (int i = 0; i < 2400 && imported_before_kill < kEvents / 2; ++i) {
    auto h = server.Send("GET", history, {}, auth);
    if (h.status == 200) {
      auto runs = json::parse(h.body).at("results").at("data").as_array();
      // "queued" until a runner takes it.
      if (!runs.empty() && runs.front().at("status").as_string() != "queued") {
        const auto& run = runs.front().as_object();
        ASSERT_EQ(run.at("status").as_string(), "running") << "the import finished before it could be killed";
        imported_before_kill = run.at("num_events_imported").to_number<uint64_t>();
      }
    }
    if (imported_before_kill < kEvents / 2) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_GE(imported_before_kill, static_cast<uint64_t>(kEvents / 2)) << "too little progress within 60 s";
  server.Kill();

  ASSERT_TRUE(server.Start(&error)) << error;
  json::object last;
  for (int i = 0; i < 1200; ++i) {
    auto h = server.Send("GET", history, {}, auth);
    if (h.status == 200) {
      auto runs = json::parse(h.body).at("results").at("data").as_array();
      const auto status = runs.empty() ? "" : runs.front().at("status").as_string();
      if (runs.size() >= 2 && status != "running" && status != "queued") {
        last = runs.front().as_object();
        ASSERT_EQ(runs.back().at("status").as_string(), "failed");
        EXPECT_NE(std::string(runs.back().at("failure_message").as_string()).find("interrupted"),
                  std::string::npos);
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(last.empty()) << "the import did not finish after the restart";
  EXPECT_EQ(last.at("status").as_string(), "success") << json::serialize(last);
  // It resumed: the second run stored fewer events than the file holds.
  EXPECT_LT(last.at("num_events_imported").to_number<uint64_t>(), static_cast<uint64_t>(kEvents));

  // `sluice import` reads the connectors API's Mixpanel shapes (connector_id, results.data, errorResponse).
  const std::string cli = ServerProcess::Binary() + " import ";
  const std::string args = " --project " + std::to_string(project_id) + " --data-dir " + dir.string();
  auto [listed, list_rc] = Shell(cli + "list" + args);
  ASSERT_EQ(list_rc, 0) << listed;
  json::array connectors = json::parse(listed).as_array();
  ASSERT_EQ(connectors.size(), 1u) << listed;
  EXPECT_EQ(connectors[0].at("connector_id").as_string(), id);
  EXPECT_TRUE(connectors[0].at("created_at").is_string());
  auto [runs, history_rc] = Shell(cli + "history --connector " + id + args);
  ASSERT_EQ(history_rc, 0) << runs;
  EXPECT_EQ(json::parse(runs.substr(0, runs.find('\n'))).at("status").as_string(), "success") << runs;
  auto [missing, missing_rc] = Shell(cli + "history --connector nope" + args + " 2>&1");
  EXPECT_NE(missing_rc, 0);
  EXPECT_NE(missing.find("HTTP 404: project " + std::to_string(project_id) + " has no connector nope"),
            std::string::npos)
      << missing;  // the errorResponse's message, not its raw JSON
  ASSERT_EQ(server.Terminate(), 0);

  // Every line exactly once.
  auto store = store::Store::Open(dir / "store");
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  std::map<int64_t, int> by_line;
  uint64_t total = 0;
  auto parts = (*store)->ListPartitions(project_id, 0, std::numeric_limits<store::Hour>::max());
  ASSERT_TRUE(parts.ok());
  for (const auto& p : *parts) {
    ASSERT_TRUE((*store)
                    ->ScanPartition(project_id, p.hour,
                                    [&](const store::EventView& e) {
                                      ++total;
                                      auto props = json::parse(e.properties).as_object();
                                      by_line[props.at("i").as_int64()]++;
                                      return true;
                                    })
                    .ok());
  }
  EXPECT_EQ(total, static_cast<uint64_t>(kEvents));
  EXPECT_EQ(by_line.size(), static_cast<size_t>(kEvents));
  for (const auto& [line, n] : by_line) {
    if (n != 1) {
      ADD_FAILURE() << "event " << line << " stored " << n << " times";
      break;
    }
  }
  (void)(*store)->Close();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::testing
