// Issue 9 items 1 and 2 through the real binary (build/sluice serve): a tenant reaches only what the operator
// allowed.
//   * type=local is off without `--local-export-root`; with it, `..`, an absolute path outside the root and a
//     symbolic link inside the root that points outside are refused, nothing is created outside, and the
//     refusal is the same whether or not the outside path exists.
//   * a tenant's s3_endpoint that the operator did not allow (a loopback listener here) is refused at
//   pipeline
//     and connector create and receives no request at all; an allowed one passes the allow-list, and STS
//     still goes to the operator's STS endpoint, never to the tenant's host.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/json.hpp>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "common/crypto.h"
#include "pipeline/e2e_support.h"
#include "support/loopback_http.h"

namespace sluice::testing::e2e {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

/// Accepts connections on a loopback port and counts the requests it reads; answers each with a fixed
/// STS-style AccessDenied so a client that reaches it fails fast.
class CountingListener {
 public:
  CountingListener() {
    auto fd = ListenLoopback(port_);
    if (!fd.ok()) {
      error_ = fd.error().ToString();
      return;
    }
    fd_ = std::move(fd).value();
    thread_ = std::thread([this] { Loop(); });
  }
  ~CountingListener() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  const std::string& error() const { return error_; }
  std::string Url() const { return fmt::format("http://127.0.0.1:{}", port_); }
  int connections() const { return connections_; }
  std::vector<std::string> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      Fd client(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!client.valid()) continue;
      ++connections_;
      std::string buffer;
      auto msg =
          ReadMessage(client.get(), buffer, std::chrono::steady_clock::now() + 5s, /*is_response=*/false);
      if (msg.ok()) {
        std::lock_guard lock(mu_);
        requests_.push_back(msg->start_line + " " + msg->body.substr(0, 200));
      }
      const std::string body =
          "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>listener-own-text</"
          "Message>"
          "</Error><RequestId>test</RequestId></ErrorResponse>";
      (void)WriteAll(client.get(),
                     fmt::format("HTTP/1.1 403 Forbidden\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n"
                                 "Connection: close\r\n\r\n{}",
                                 body.size(), body),
                     std::chrono::steady_clock::now() + 5s);
    }
  }

  uint16_t port_ = 0;
  Fd fd_;
  std::string error_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::vector<std::string> requests_;
};

class TenantIsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sluice-isolation-" + RandomHex(64));
    fs::create_directories(dir_);
    // Sluice's own identity is a dummy key: nothing here may reach AWS. STS goes to a loopback listener the
    // operator names (AWS_ENDPOINT_URL_STS); no other endpoint is configured.
    for (const char* v : {"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                          "AWS_ENDPOINT_URL_STS", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"}) {
      unsetenv(v);
    }
    setenv("AWS_ACCESS_KEY_ID", "AKIAISOLATIONTEST01", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "isolation-test-secret", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    ASSERT_EQ(sts_.error(), "");
    ASSERT_EQ(tenant_.error(), "");
    setenv("AWS_ENDPOINT_URL_STS", sts_.Url().c_str(), 1);
  }
  void TearDown() override {
    unsetenv("AWS_ENDPOINT_URL_STS");
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static std::string ErrorOf(const ServerProcess::Reply& r) {
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("error") || !v.at("error").is_string()) return r.body;
    return std::string(v.at("error").as_string());
  }

  Params Local(const std::string& path) const {
    return {{"type", "local"}, {"local_path", path}, {"from_date", DateOf(TodayUtc() - 1)}};
  }
  Params S3(const std::string& endpoint) const {
    return {{"type", "s3"},
            {"s3_bucket", "tenant-bucket"},
            {"s3_region", "us-east-1"},
            {"s3_role", "arn:aws:iam::123456789012:role/tenant"},
            {"s3_endpoint", endpoint},
            {"from_date", DateOf(TodayUtc() - 1)}};
  }
  ServerProcess::Reply CreateConnector(SluiceServer& server, const Project& p, const std::string& endpoint) {
    json::object body{
        {"connector_type", "s3Import"},
        {"label", "isolation"},
        {"connector_properties", json::object{{"s3_bucket", "tenant-bucket"},
                                              {"s3_prefix", "in-"},
                                              {"s3_region", "us-east-1"},
                                              {"s3_role", "arn:aws:iam::123456789012:role/tenant"},
                                              {"s3_endpoint", endpoint}}},
        {"category_properties", json::object{{"data_format", "mixpanel_event"}}}};
    return server.process().Send(
        "POST", fmt::format("/api/app/projects/{}/connectors", p.id), json::serialize(body),
        {{"Authorization", p.Authorization()}, {"Content-Type", "application/json"}});
  }

  fs::path dir_;
  CountingListener sts_;
  CountingListener tenant_;
};

TEST_F(TenantIsolationTest, LocalDestinationsAreOffWithoutTheOperatorsRoot) {
  SluiceServer server(dir_ / "data", nullptr);
  std::string err;
  ASSERT_TRUE(server.Start(&err)) << err;
  auto p = server.CreateProject("no-root");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  const fs::path target = dir_ / "would-be-written";
  auto r = server.PipelinePost(*p, "create", Local(target.string()));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(ErrorOf(r).find("--local-export-root"), std::string::npos) << r.body;
  EXPECT_FALSE(fs::exists(target));
  // Relative paths too: there is no root to take them under.
  r = server.PipelinePost(*p, "create", Local("relative/dir"));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(ErrorOf(r).find("--local-export-root"), std::string::npos) << r.body;
}

TEST_F(TenantIsolationTest, LocalPathsAreConfinedToTheRoot) {
  const fs::path root = dir_ / "exports";
  const fs::path outside = dir_ / "outside";
  fs::create_directories(root);
  fs::create_directories(outside / "exists");
  fs::create_symlink(outside, root / "link");
  SluiceServer server(dir_ / "data", nullptr, {"--local-export-root", root.string()});
  std::string err;
  ASSERT_TRUE(server.Start(&err)) << err;
  auto p = server.CreateProject("rooted");
  ASSERT_TRUE(p.ok()) << p.error().ToString();

  auto refused = [&](const std::string& path) {
    SCOPED_TRACE(path);
    auto r = server.PipelinePost(*p, "create", Local(path));
    EXPECT_EQ(r.status, 400) << r.body;
    std::string e = ErrorOf(r);
    // Nothing about the outside: the message only repeats what the tenant sent.
    const std::string quoted = "'" + path + "'";
    for (size_t at; (at = e.find(quoted)) != std::string::npos;) e.replace(at, quoted.size(), "'<path>'");
    return e;
  };
  const std::string dotdot = refused("../outside/new-a");
  EXPECT_NE(dotdot.find(".."), std::string::npos) << dotdot;
  EXPECT_EQ(refused("a/../../outside/new-b"), dotdot);
  // An absolute path outside the root: the same answer whether it exists or not.
  const std::string missing = refused((outside / "new-c").string());
  const std::string existing = refused((outside / "exists").string());
  EXPECT_EQ(missing, existing);
  EXPECT_NE(missing.find("local export root"), std::string::npos) << missing;
  // A symbolic link inside the root that points outside: refused the same way, nothing created behind it.
  EXPECT_EQ(refused("link/new-d"), missing);
  EXPECT_EQ(refused("link"), missing);
  EXPECT_EQ(refused((root / "link" / "exists").string()), missing);
  // The root's own prefix is not enough: /…/exports-evil is not under /…/exports.
  EXPECT_EQ(refused(root.string() + "-evil/x"), missing);
  EXPECT_FALSE(fs::exists(root.string() + "-evil"));

  // Nothing was created outside the root.
  std::vector<std::string> outside_entries;
  for (const auto& e : fs::recursive_directory_iterator(outside))
    outside_entries.push_back(e.path().string());
  EXPECT_EQ(outside_entries, std::vector<std::string>{(outside / "exists").string()});
  for (const char* name : {"new-a", "new-b", "new-c", "new-d"}) {
    EXPECT_FALSE(fs::exists(dir_ / name));
  }

  // Inside the root: a relative path and an absolute one under it are accepted and created there.
  auto rel = server.PipelinePost(*p, "create", Local("web/daily"));
  EXPECT_EQ(rel.status, 200) << rel.body;
  EXPECT_TRUE(fs::is_directory(root / "web" / "daily"));
  Params abs = Local((root / "abs").string());
  abs.push_back({"frequency", "hourly"});  // a second recurring pipeline needs another frequency
  auto in = server.PipelinePost(*p, "create", abs);
  EXPECT_EQ(in.status, 200) << in.body;
  EXPECT_TRUE(fs::is_directory(root / "abs"));
}

TEST_F(TenantIsolationTest, EndpointsTheOperatorDidNotAllowReceiveNothing) {
  SluiceServer server(dir_ / "data", nullptr);
  std::string err;
  ASSERT_TRUE(server.Start(&err)) << err;
  auto p = server.CreateProject("endpoints");
  ASSERT_TRUE(p.ok()) << p.error().ToString();

  for (const std::string& endpoint : std::vector<std::string>{
           tenant_.Url(), tenant_.Url() + "/", "HTTP://127.0.0.1:" + tenant_.Url().substr(17),
           "http://localhost:1", "http://10.0.0.1:9000", "http://169.254.169.254"}) {
    SCOPED_TRACE(endpoint);
    auto r = server.PipelinePost(*p, "create", S3(endpoint));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(ErrorOf(r).find("--allow-endpoint"), std::string::npos) << r.body;
    auto c = CreateConnector(server, *p, endpoint);
    EXPECT_EQ(c.status, 400) << c.body;
    // (The connector API's own syntax check refuses an upper-case scheme first.)
    if (!endpoint.starts_with("HTTP:")) {
      EXPECT_NE(c.body.find("--allow-endpoint"), std::string::npos) << c.body;
    }
  }
  // Paths, queries and user info are refused outright.
  for (const std::string& endpoint :
       std::vector<std::string>{tenant_.Url() + "/x", tenant_.Url() + "?a=b", "http://user:pw@127.0.0.1:1"}) {
    SCOPED_TRACE(endpoint);
    auto r = server.PipelinePost(*p, "create", S3(endpoint));
    EXPECT_EQ(r.status, 400) << r.body;
    auto c = CreateConnector(server, *p, endpoint);
    EXPECT_EQ(c.status, 400) << c.body;
  }
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(tenant_.connections(), 0) << "the tenant's endpoint was contacted";
  EXPECT_EQ(sts_.connections(), 0) << "STS was called for a refused destination";
}

TEST_F(TenantIsolationTest, AnAllowedEndpointStillNeverReceivesSts) {
  // The operator allows the tenant's endpoint (spelled differently: the comparison is normalised).
  const std::string allowed = "http://127.0.0.1:" + tenant_.Url().substr(17) + "/";
  SluiceServer server(dir_ / "data", nullptr, {"--allow-endpoint", allowed});
  std::string err;
  ASSERT_TRUE(server.Start(&err)) << err;
  auto p = server.CreateProject("allowed");
  ASSERT_TRUE(p.ok()) << p.error().ToString();

  auto r = server.PipelinePost(*p, "create", S3(tenant_.Url()));
  // Passed the allow-list; the destination check then fails at AssumeRole (the operator's STS says no).
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(ErrorOf(r).find("--allow-endpoint"), std::string::npos) << r.body;
  EXPECT_NE(ErrorOf(r).find("assume-role"), std::string::npos) << r.body;
  EXPECT_EQ(ErrorOf(r).find("listener-own-text"), std::string::npos)
      << "the endpoint's own text is echoed: " << r.body;
  auto c = CreateConnector(server, *p, tenant_.Url());
  EXPECT_EQ(c.status, 400) << c.body;
  EXPECT_EQ(c.body.find("--allow-endpoint"), std::string::npos) << c.body;

  EXPECT_GE(sts_.connections(), 2) << "AssumeRole went to the operator's STS endpoint";
  for (const auto& req : sts_.requests()) EXPECT_NE(req.find("Action="), std::string::npos) << req;
  EXPECT_EQ(tenant_.connections(), 0)
      << "STS (or anything before the role was assumed) reached the tenant's host";
}

// Issue 10 item 9: trial=true is Mixpanel's trial pipeline — from yesterday, daily, no sync — and a project
// has one per data source (the manager's limit, through the real binary).
TEST_F(TenantIsolationTest, OneTrialPipelinePerDataSource) {
  const fs::path root = dir_ / "exports";
  SluiceServer server(dir_ / "data", nullptr, {"--local-export-root", root.string()});
  std::string err;
  ASSERT_TRUE(server.Start(&err)) << err;
  auto p = server.CreateProject("trial");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  auto first =
      server.PipelinePost(*p, "create", {{"type", "local"}, {"local_path", "trial-a"}, {"trial", "true"}});
  ASSERT_EQ(first.status, 200) << first.body;
  auto jobs = server.PipelineGet(*p, "jobs", {});
  EXPECT_NE(jobs.body.find("\"trial\":true"), std::string::npos) << jobs.body;
  EXPECT_NE(jobs.body.find(DateOf(TodayUtc() - 1)), std::string::npos)
      << "from_date is yesterday: " << jobs.body;
  auto second =
      server.PipelinePost(*p, "create", {{"type", "local"}, {"local_path", "trial-b"}, {"trial", "true"}});
  EXPECT_EQ(second.status, 400) << second.body;
  EXPECT_NE(ErrorOf(second).find("one trial pipeline per data source"), std::string::npos) << second.body;
  auto people = server.PipelinePost(
      *p, "create",
      {{"type", "local"}, {"local_path", "trial-c"}, {"trial", "true"}, {"data_source", "people"}});
  EXPECT_EQ(people.status, 200) << people.body;
}

// A pipeline stored with a local_path that is no longer under the root (here: the server restarted with
// another
// --local-export-root) fails at its run with a clear message instead of writing there.
TEST_F(TenantIsolationTest, StoredLocalPipelineOutsideTheRootPausesInsteadOfWriting) {
  const fs::path old_root = dir_ / "old-root";
  const fs::path new_root = dir_ / "new-root";
  std::string name;
  Project p;
  {
    SluiceServer server(dir_ / "data", nullptr,
                        {"--local-export-root", old_root.string(), "--pipeline-runs", "1"});
    std::string err;
    ASSERT_TRUE(server.Start(&err)) << err;
    auto project = server.CreateProject("moved");
    ASSERT_TRUE(project.ok()) << project.error().ToString();
    p = *project;
    auto created = server.PipelinePost(p, "create",
                                       {{"type", "local"},
                                        {"local_path", (old_root / "abs").string()},
                                        {"from_date", DateOf(TodayUtc() - 1)}});
    ASSERT_EQ(created.status, 200) << created.body;
    name = std::string(json::parse(created.body).at("pipeline_names").at(0).as_string());
    ASSERT_EQ(server.Terminate(), 0);
  }
  // Whatever the first run wrote stays; nothing new may appear there after the restart.
  std::set<std::string> before;
  for (const auto& e : fs::recursive_directory_iterator(old_root)) before.insert(e.path().string());

  SluiceServer server(dir_ / "data", nullptr, {"--local-export-root", new_root.string()});
  std::string err;
  ASSERT_TRUE(server.Start(&err)) << err;
  ASSERT_TRUE(server.Import(p, MakeDayEvents(TodayUtc() - 1, 20, "moved", 7)).ok());
  (void)server.PipelinePost(p, "sync", {{"name", name}});
  std::pair<std::string, std::string> state;
  for (int i = 0; i < 300; ++i) {
    auto st = PipelineState(server, p, name);
    ASSERT_TRUE(st.ok()) << st.error().ToString();
    state = *st;
    if (state.first == "paused") break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(state.first, "paused") << state.second;
  EXPECT_NE(state.second.find("local export root"), std::string::npos) << state.second;
  std::set<std::string> after;
  for (const auto& e : fs::recursive_directory_iterator(old_root)) after.insert(e.path().string());
  EXPECT_EQ(after, before) << "the pipeline wrote outside the new root";
}

}  // namespace
}  // namespace sluice::testing::e2e
