// The CLI against the real server: project create, events export, profiles list, HTTPS, clean SIGTERM.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "server_process.h"

namespace sluice::testing {
namespace {

namespace json = boost::json;

/// Runs a shell command, returning stdout and the exit code.
std::pair<std::string, int> Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {out, WEXITSTATUS(status)};
}

/// The UTC day of `unix_seconds`.
std::string Day(int64_t unix_seconds) {
  std::chrono::sys_days days{std::chrono::days(unix_seconds / 86400)};
  std::chrono::year_month_day ymd{days};
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02u", int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()));
  return buf;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = std::filesystem::temp_directory_path() / ("sluice-cli-" + RandomHex(64)); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(CliTest, ProjectEventsAndProfilesThroughTheCli) {
  ServerProcess server(dir_);
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  struct stat st {};
  ASSERT_EQ(stat((dir_ / "admin-token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  const std::string cli = ServerProcess::Binary() + " ";
  const std::string dd = " --data-dir " + dir_.string();
  auto [created, rc] = Shell(cli + "project create --name shop" + dd);
  ASSERT_EQ(rc, 0) << created;
  auto project = json::parse(created).as_object();
  const auto id = project.at("id").as_int64();
  const std::string token = json::value_to<std::string>(project.at("token"));
  const std::string secret = json::value_to<std::string>(project.at("api_secret"));

  auto [listed, rc2] = Shell(cli + "project list" + dd);
  ASSERT_EQ(rc2, 0);
  EXPECT_NE(listed.find(token), std::string::npos);

  // The operator binds GCS buckets to the project (docs/gcs.md#binding); the list replaces; bad names refused.
  const std::string pid = " --project " + std::to_string(id);
  auto [bound, rc_bind] = Shell(cli + "project bind-gcs" + pid + " --bucket shop-events --bucket shop-archive" + dd);
  ASSERT_EQ(rc_bind, 0) << bound;
  EXPECT_EQ(json::serialize(json::parse(bound).at("gcs_buckets")), R"(["shop-events","shop-archive"])");
  auto [bad, rc_bad] = Shell(cli + "project bind-gcs" + pid + " --bucket gs://shop-events" + dd);
  EXPECT_NE(rc_bad, 0) << bad;
  auto [none, rc_none] = Shell(cli + "project bind-gcs" + pid + " --none" + dd);
  ASSERT_EQ(rc_none, 0) << none;
  EXPECT_EQ(json::serialize(json::parse(none).at("gcs_buckets")), "[]");

  int64_t t = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch()).count() - 10;
  std::string batch = R"([{"event":"Bought","properties":{"time":)" + std::to_string(t) +
                      R"(,"distinct_id":"c1","$insert_id":"cli-1","sku":"A-1"}}])";
  auto r = server.Send("POST", "/import", batch, {{"Authorization", "Basic " + Base64Encode(secret + ":")}});
  ASSERT_EQ(r.status, 200) << r.body;
  std::string upd = R"({"$token":")" + token + R"(","$distinct_id":"c1","$set":{"tier":"gold"}})";
  ASSERT_EQ(server.Send("GET", "/engage?data=" + Base64Encode(upd)).body, "1");

  auto [events, rc3] = Shell(cli + "events export --project " + std::to_string(id) + " --from " + Day(t) + " --to " +
                           Day(t) + dd);
  ASSERT_EQ(rc3, 0);
  auto line = json::parse(events.substr(0, events.find('\n'))).as_object();
  EXPECT_EQ(line.at("event").as_string(), "Bought");
  EXPECT_EQ(line.at("properties").at("sku").as_string(), "A-1");
  EXPECT_EQ(line.at("properties").at("time").as_int64(), t);

  auto [profiles, rc4] = Shell(cli + "profiles list --project " + std::to_string(id) + dd);
  ASSERT_EQ(rc4, 0);
  auto p = json::parse(profiles.substr(0, profiles.find('\n'))).as_object();
  EXPECT_EQ(p.at("$distinct_id").as_string(), "c1");
  EXPECT_EQ(p.at("$properties").at("tier").as_string(), "gold");

  // A wrong admin token gets a clear failure, not a crash.
  auto [denied, rc5] = Shell(cli + "project list --admin-token wrong" + dd);
  EXPECT_NE(rc5, 0);

  // SIGTERM drains and exits 0; the data survives a restart.
  EXPECT_EQ(server.Terminate(), 0);
  ASSERT_TRUE(server.Start(&error)) << error;
  auto [again, rc6] = Shell(cli + "events export --project " + std::to_string(id) + " --from " + Day(t) + " --to " +
                          Day(t) + dd);
  EXPECT_EQ(rc6, 0);
  EXPECT_EQ(again, events);
}

TEST_F(CliTest, ServesHttpsWithTheGivenCertificate) {
  std::filesystem::create_directories(dir_);
  const auto key = dir_ / "key.pem", cert = dir_ / "cert.pem";
  auto [out, rc] = Shell("openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key.string() + " -out " +
                       cert.string() + " -days 1 -subj /CN=127.0.0.1");
  ASSERT_EQ(rc, 0) << "the openssl command is needed to make a test certificate";
  ServerProcess server(dir_ / "data", {"--tls-cert", cert.string(), "--tls-key", key.string()});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  EXPECT_EQ(server.url().rfind("https://", 0), 0u) << server.url();
  EXPECT_EQ(server.Send("GET", "/healthz").status, 200);
  // Plain HTTP to the TLS port is refused rather than answered in clear text.
  auto [plain, rc2] = Shell("curl -s -o /dev/null -w '%{http_code}' http" + server.url().substr(5) + "/healthz");
  EXPECT_NE(plain, "200");
}

/// A /proc/PID/status field in kB ("VmRSS"), or -1.
long ProcStatusKb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

/// Nice values of the process's threads named `name` (field 19 of /proc/PID/task/TID/stat).
std::vector<int> ThreadNiceValues(pid_t pid, const std::string& name) {
  std::vector<int> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string c;
    std::getline(comm, c);
    if (c != name) continue;
    std::ifstream stat(task.path() / "stat");
    std::string s((std::istreambuf_iterator<char>(stat)), {});
    std::istringstream rest(s.substr(s.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 19 && rest >> field; ++i) {
      if (i == 19) out.push_back(std::stoi(field));
    }
  }
  return out;
}

// Issue 12: two of the embedded store's memtables (2 x 64 MB) are mapped and touched at start, so ingest never
// waits for fresh memory; --no-reserve-memtables takes it as memtables fill. The request threads run at nice 5
// so a memtable flush is not queued behind them on a busy core.
TEST_F(CliTest, ServeReservesTheMemtableBudgetAndLetsFlushesOutrankRequests) {
  ServerProcess reserved(dir_ / "a", {"--threads", "3"});
  ServerProcess lazy(dir_ / "b", {"--no-reserve-memtables"});
  std::string error;
  ASSERT_TRUE(reserved.Start(&error)) << error;
  ASSERT_TRUE(lazy.Start(&error)) << error;
  const long with = ProcStatusKb(reserved.pid(), "VmRSS");
  const long without = ProcStatusKb(lazy.pid(), "VmRSS");
  EXPECT_GE(with - without, 120 * 1024) << "resident kB with the reservation " << with << ", without " << without;
  const std::vector<int> http = ThreadNiceValues(reserved.pid(), "sl-http");
  EXPECT_EQ(http, std::vector<int>(3, 5)) << "the 3 request threads (named sl-http), each at nice 5";
  std::vector<int> others = ThreadNiceValues(reserved.pid(), "sluice");  // the main thread, RocksDB's timer
  const std::vector<int> jobs = ThreadNiceValues(reserved.pid(), "sl-jobs");
  others.insert(others.end(), jobs.begin(), jobs.end());
  EXPECT_GE(others.size(), 2u);
  EXPECT_EQ(std::count(others.begin(), others.end(), 0), static_cast<long>(others.size()))
      << "the main thread and the job schedulers unchanged";
  EXPECT_EQ(reserved.Send("GET", "/healthz").status, 200);
}

// Every thread Sluice starts names itself "sl-<role>" (src/common/thread_name.h), so top -H, ps -L and perf
// say which part of the server uses the CPU; the main thread keeps the binary's name, RocksDB names its own.
TEST_F(CliTest, TheServersThreadsAreNamedForTheirRole) {
  ServerProcess server(dir_, {"--threads", "2"});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  // A thread names itself once it runs, which may be a moment after the server answers: read the names until
  // both schedulers have theirs (bounded: 5 s).
  const std::string tasks = "/proc/" + std::to_string(server.pid()) + "/task";
  std::multiset<std::string> names;
  for (int attempt = 0; attempt < 100; ++attempt) {
    names.clear();
    for (const auto& task : std::filesystem::directory_iterator(tasks)) {
      std::ifstream comm(task.path() / "comm");
      std::string c;
      std::getline(comm, c);
      names.insert(c);
    }
    if (names.count("sl-jobs") >= 2 && names.count("sl-http") >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string all;
  for (const auto& n : names) all += n + " ";
  EXPECT_EQ(names.count("sl-http"), 2u) << all;
  EXPECT_EQ(names.count("sl-jobs"), 2u) << all;  // the pipelines' and Cloud Import's schedulers
  // The main thread keeps the binary's name; so does RocksDB's periodic-task timer (RocksDB leaves it
  // unnamed).
  EXPECT_LE(names.count("sluice"), 2u) << all;
  EXPECT_GE(names.count("rocksdb:high"), 1u) << all;
}

// --max-connections needs a file descriptor per connection: serve raises its soft open-file limit to the hard
// one (the soft 1024 exists for select(), which Sluice does not use), and when even the hard limit cannot
// hold the connections asked for, it lowers --max-connections and says so.
TEST_F(CliTest, ServeRaisesItsOpenFileLimitAndFitsMaxConnectionsToIt) {
  rlimit mine{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &mine), 0);
  ASSERT_GE(mine.rlim_max, 2048u) << "this test needs a hard open-file limit of at least 2048";
  rlimit lowered = mine;
  lowered.rlim_cur = 1100;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
  ServerProcess server(dir_ / "raised");
  std::string error;
  const bool started = server.Start(&error);  // the server inherits the soft limit of 1100
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &mine), 0);
  ASSERT_TRUE(started) << error;
  std::ifstream limits("/proc/" + std::to_string(server.pid()) + "/limits");
  std::string line, soft, hard;
  while (std::getline(limits, line)) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(std::string("Max open files").size()));
    fields >> soft >> hard;
  }
  EXPECT_EQ(soft, std::to_string(mine.rlim_max));
  EXPECT_EQ(hard, std::to_string(mine.rlim_max));
  // What the limit does is on /metrics.
  const auto metrics = server.Send("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  const size_t open_at = metrics.body.find("\nsluice_http_connections ");
  ASSERT_NE(open_at, std::string::npos);
  EXPECT_GE(std::stoi(metrics.body.substr(open_at + 25)), 1) << "the scrape's own connection is open";
  for (const char* series : {"\nsluice_http_connections_closed_idle_at_limit_total 0\n",
                             "\nsluice_http_accept_paused_at_limit_total 0\n",
                             "# TYPE sluice_http_accept_paused_at_limit_total counter\n"}) {
    EXPECT_NE(metrics.body.find(series), std::string::npos) << series;
  }

  // A hard limit of 1100 leaves 76 descriptors for connections after the 1024 kept for the store and the
  // rest: a value given is lowered with a warning, the default with an info line (no warning at every start).
  const auto log_of = [&](const std::string& name, const std::string& flag) {
    const auto log = dir_ / (name + ".log");
    auto [pid_text, rc] =
        Shell("(ulimit -n 1100; " + ServerProcess::Binary() + " serve --listen 127.0.0.1:0 " + flag +
              " --data-dir " + (dir_ / name).string() + " > " + log.string() + " 2>&1 & echo $!)");
    EXPECT_EQ(rc, 0);
    const pid_t pid = std::stoi(pid_text);
    std::string text;
    for (int i = 0; i < 600 && text.find("listening on") == std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::ifstream in(log);
      text.assign(std::istreambuf_iterator<char>(in), {});
    }
    ::kill(pid, SIGKILL);
    EXPECT_NE(text.find("listening on"), std::string::npos) << text;
    return text;
  };
  const std::string given = log_of("given", "--max-connections 5000");
  EXPECT_NE(given.find(" warning --max-connections 5000 lowered to 76: the open-file limit is 1100"),
            std::string::npos)
      << given;
  const std::string by_default = log_of("default", "");
  EXPECT_NE(by_default.find(" info --max-connections 10000 lowered to 76: the open-file limit is 1100"),
            std::string::npos)
      << by_default;
}

TEST_F(CliTest, HelpDescribesEveryCommand) {
  auto [help, rc] = Shell(ServerProcess::Binary() + " --help");
  EXPECT_EQ(rc, 0);
  for (const char* cmd : {"serve", "project", "events", "profiles"}) {
    EXPECT_NE(help.find(cmd), std::string::npos) << cmd;
  }
  auto [bad, rc2] = Shell(ServerProcess::Binary() + " serve --listen nonsense --data-dir " + dir_.string());
  EXPECT_NE(rc2, 0);
}

// The listen port is read whole (issue 9 item 4): " 0", "+0" and "-1" are refused, not read as 0 or wrapped.
// (Bounded by `timeout`: a server that started anyway would otherwise keep running.)
TEST_F(CliTest, ListenPortIsParsedStrictly) {
  for (const std::string port : {"' 0'", "+0", "-1", "0x50", "65536", "''"}) {
    // Shell() drops stderr: the group sends the server's log to stdout first.
    auto [out, rc] = Shell("(timeout 10 " + ServerProcess::Binary() + " serve --listen 127.0.0.1:" + port +
                           " --data-dir " + dir_.string() + " 2>&1)");
    EXPECT_EQ(rc, 2) << port << ": " << out;
    EXPECT_NE(out.find("must be HOST:PORT"), std::string::npos) << port << ": " << out;
  }
}

/// A loopback port nothing listens on (bound, then closed): AWS calls sent there fail at once, on this
/// machine.
int ClosedLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    return 1;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

/// Whether `text` is exactly one JSON value (whitespace around it allowed), as `| jq` and `python3 -m
/// json.tool` need.
bool IsOnlyJson(const std::string& text, std::string* error) {
  boost::system::error_code ec;
  json::parse(text, ec);
  if (ec) *error = ec.message() + " in stdout: " + text.substr(0, 300);
  return !ec;
}

TEST_F(CliTest, JsonOutputIsOnlyJsonWithLogsOnStderr) {
  // Credentials in the environment make the AWS code log where they came from (an [info] line); every AWS
  // call goes to a closed loopback port, so nothing leaves the machine and the commands fail fast.
  const std::string aws = "http://127.0.0.1:" + std::to_string(ClosedLoopbackPort());
  const std::string env =
      "env -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID=AKIDEXAMPLE "
      "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY AWS_REGION=us-east-1 "
      "AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent "
      "AWS_ENDPOINT_URL=" +
      aws + " AWS_ENDPOINT_URL_STS=" + aws + " ";
  const std::string bin = ServerProcess::Binary();
  std::string error;

  auto [policies, rc] = Shell(env + bin + " aws policies --json --bucket acme-events --external-id tok123");
  EXPECT_EQ(rc, 0) << policies;
  EXPECT_TRUE(IsOnlyJson(policies, &error)) << error;
  auto [tool, rc_tool] = Shell(
      env + bin + " aws policies --json --bucket acme-events --external-id tok123 | python3 -m json.tool");
  EXPECT_EQ(rc_tool, 0) << tool;

  auto [check, rc2] =
      Shell(env + bin + " destination check --json --bucket acme-events --region us-east-1 " +
            "--role arn:aws:iam::111122223333:role/sluice-export --external-id tok123 --endpoint " + aws +
            " --sts-endpoint " + aws);
  EXPECT_NE(rc2, 0) << "the check cannot pass against a closed port";
  ASSERT_TRUE(IsOnlyJson(check, &error)) << error;
  EXPECT_TRUE(json::parse(check).is_object()) << check;

  // The logs are still there, on stderr.
  auto [logs, rc3] = Shell("( " + env + bin + " aws policies --json --bucket acme-events 2>&1 >/dev/null )");
  EXPECT_EQ(rc3, 0);
  EXPECT_NE(logs.find("credentials"), std::string::npos) << logs;
}

}  // namespace
}  // namespace sluice::testing
