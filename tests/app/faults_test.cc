// Faults seen from outside, through the real binary: a full disk, a damaged WAL or SST, a data dir whose
// store is missing, a weak admin token, and /metrics under a flood of odd HTTP methods. Each test starts
// build/sluice on 127.0.0.1 with its own data dir and stops it by PID.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/crypto.h"
#include "server_process.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

fs::path TempDir(const std::string& what) {
  return fs::temp_directory_path() / ("sluice-" + what + "-" + RandomHex(64));
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

/// `sluice serve` run to completion (for start-ups that must be refused): exit status and everything it wrote
/// to stderr. A server that is still running after `limit` has started after all: it is killed and reported
/// as `started`.
struct ServeOutcome {
  bool started = false;
  bool signaled = false;
  int exit_code = -1;
  std::string stderr_text;
};

ServeOutcome RunServe(const fs::path& data_dir, const std::vector<std::pair<std::string, std::string>>& env,
                      std::chrono::seconds limit = 20s) {
  const fs::path log = fs::temp_directory_path() / ("sluice-serve-stderr-" + RandomHex(64));
  std::vector<std::string> argv = {ServerProcess::Binary(), "serve",    "--data-dir",
                                   data_dir.string(),       "--listen", "127.0.0.1:0",
                                   "--log-level",           "info"};
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 2);
      dup2(fd, 1);
    }
    ::unsetenv("SLUICE_ADMIN_TOKEN");
    for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  // A server.url the test left there on purpose is not a sign of a start: only a new one is.
  const std::string stale_url = ReadFile(data_dir / "server.url");
  ServeOutcome outcome;
  int status = 0;
  bool exited = false;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    if (fs::exists(data_dir / "server.url") && ReadFile(data_dir / "server.url") != stale_url)
      break;  // serving
    std::this_thread::sleep_for(50ms);
  }
  if (!exited) {
    outcome.started = true;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  } else {
    outcome.signaled = WIFSIGNALED(status);
    outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  outcome.stderr_text = ReadFile(log);
  fs::remove(log);
  return outcome;
}

/// Redirects this process's stderr to a file while a ServerProcess is started, so the child inherits it.
class StderrToFile {
 public:
  explicit StderrToFile(const fs::path& path) {
    std::fflush(stderr);
    saved_ = dup(2);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(fd, 2);
    ::close(fd);
  }
  ~StderrToFile() {
    std::fflush(stderr);
    dup2(saved_, 2);
    ::close(saved_);
  }

 private:
  int saved_ = -1;
};

struct ProjectCredentials {
  int64_t id = 0;
  std::string basic_auth;
  std::string token;
};

ProjectCredentials CreateProject(ServerProcess& server) {
  auto created = server.Send("POST", "/api/app/projects", R"({"name":"faults"})",
                             {{"Authorization", "Bearer " + server.admin_token()}});
  EXPECT_EQ(created.status, 200) << created.body;
  if (created.status != 200) return {};
  auto project = json::parse(created.body).as_object();
  return {project.at("id").as_int64(),
          "Basic " + Base64Encode(json::value_to<std::string>(project.at("api_secret")) + ":"),
          json::value_to<std::string>(project.at("token"))};
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Day(int64_t unix_seconds) {
  std::chrono::sys_days days{std::chrono::days(unix_seconds / 86400)};
  std::chrono::year_month_day ymd{days};
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02u", int(ymd.year()), unsigned(ymd.month()),
                unsigned(ymd.day()));
  return buf;
}

/// A /import body of `count` events with insert ids prefix-0 … prefix-(count-1), each carrying `padding`
/// bytes.
std::string ImportBody(const std::string& prefix, int count, int64_t time, size_t padding,
                       std::vector<std::string>* ids) {
  const std::string pad(padding, 'p');
  std::string body = "[";
  for (int i = 0; i < count; ++i) {
    std::string id = prefix + "-" + std::to_string(i);
    body += (i ? "," : "");
    body += R"({"event":"fault","properties":{"time":)" + std::to_string(time) + R"(,"distinct_id":"u)" +
            std::to_string(i % 17) + R"(","$insert_id":")" + id + R"(","pad":")" + pad + R"("}})";
    if (ids) ids->push_back(std::move(id));
  }
  return body + "]";
}

ServerProcess::Reply Import(ServerProcess& server, const ProjectCredentials& p, const std::string& body) {
  return server.Send("POST", "/import", body,
                     {{"Authorization", p.basic_auth}, {"Content-Type", "application/json"}}, 30s);
}

ServerProcess::Reply Export(ServerProcess& server, const ProjectCredentials& p, int64_t time) {
  return server.Send("GET",
                     "/api/2.0/export?project_id=" + std::to_string(p.id) +
                         "&from_date=" + Day(time - 86400) + "&to_date=" + Day(time + 86400),
                     {}, {{"Authorization", "Bearer " + server.admin_token()}}, 120s);
}

std::set<std::string> InsertIds(const std::string& exported) {
  std::set<std::string> ids;
  size_t pos = 0;
  while (pos < exported.size()) {
    size_t nl = exported.find('\n', pos);
    if (nl == std::string::npos) nl = exported.size();
    auto line = json::parse(std::string_view(exported).substr(pos, nl - pos));
    ids.insert(json::value_to<std::string>(line.at("properties").at("$insert_id")));
    pos = nl + 1;
  }
  return ids;
}

/// /import batches of 200 events (~220 KB each) into a server, remembering the ids it acknowledged.
class AckedImports {
 public:
  AckedImports(ServerProcess& server, ProjectCredentials project)
      : server_(server), project_(std::move(project)) {}
  ServerProcess::Reply operator()(const std::string& prefix) {
    std::vector<std::string> ids;
    auto reply = Import(server_, project_, ImportBody(prefix, 200, time_, 1000, &ids));
    if (reply.status == 200) acked_.insert(ids.begin(), ids.end());
    return reply;
  }
  const std::set<std::string>& acked() const { return acked_; }
  int64_t time() const { return time_; }
  /// Restarts the server (its stderr to `log`) and counts the acknowledged events its export lacks.
  size_t MissingAfterRestart(const fs::path& log) {
    EXPECT_EQ(server_.Terminate(), 0);
    std::string error;
    {
      StderrToFile capture(log);
      EXPECT_TRUE(server_.Start(&error)) << error << "\n" << ReadFile(log);
    }
    auto exported = Export(server_, project_, time_);
    EXPECT_EQ(exported.status, 200);
    const std::set<std::string> stored = InsertIds(exported.body);
    size_t missing = 0;
    for (const auto& id : acked_) missing += stored.count(id) ? 0 : 1;
    return missing;
  }

 private:
  ServerProcess& server_;
  const ProjectCredentials project_;
  const int64_t time_ = NowSeconds() - 60;
  std::set<std::string> acked_;
};

/// The largest file in `dir` whose name ends with `suffix`.
fs::path LargestFile(const fs::path& dir, const std::string& suffix) {
  fs::path best;
  uintmax_t best_size = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() < suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    if (entry.file_size() > best_size) {
      best_size = entry.file_size();
      best = entry.path();
    }
  }
  return best;
}

void Damage(const fs::path& file, uintmax_t offset, size_t length) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  std::string garbage(length, '\0');
  for (size_t i = 0; i < length; ++i) garbage[i] = static_cast<char>(0xA5 ^ (i * 7));
  f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
}

/// One keep-alive TCP connection speaking raw HTTP/1.1 (odd method tokens are not something a client library
/// sends).
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }

  /// Sends `raw` and reads one response with a Content-Length body; returns its status (0 on failure).
  int RoundTrip(const std::string& raw) {
    if (::send(fd_, raw.data(), raw.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(raw.size())) return 0;
    size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return 0;
    }
    const std::string head = buffer_.substr(0, header_end);
    size_t length = 0;
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (size_t cl = lower.find("content-length:"); cl != std::string::npos) {
      length = std::stoul(head.substr(cl + 15));
    }
    while (buffer_.size() < header_end + 4 + length) {
      if (!Fill()) return 0;
    }
    buffer_.erase(0, header_end + 4 + length);
    return head.size() > 12 ? std::stoi(head.substr(9, 3)) : 0;
  }

 private:
  bool Fill() {
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

uint16_t PortOf(const std::string& url) {
  return static_cast<uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
}

// ---- /metrics cardinality
// ------------------------------------------------------------------------------------

TEST(FaultsTest, MetricsStaySmallAfterThousandsOfOddMethods) {
  auto dir = TempDir("metrics");
  ServerProcess server(dir);
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  {
    RawConnection connection(PortOf(server.url()));
    ASSERT_TRUE(connection.connected());
    for (int i = 0; i < 4000; ++i) {
      const std::string method = "ODD" + std::to_string(i) + "X";
      const std::string path = (i % 2 == 0) ? "/healthz" : "/no/such/route/" + std::to_string(i);
      const int status =
          connection.RoundTrip(method + " " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
      ASSERT_TRUE(status == 405 || status == 404) << "request " << i << " got " << status;
    }
  }
  auto metrics = server.Send("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_LT(metrics.body.size(), 64u * 1024) << "a label per method token or path makes /metrics grow";
  EXPECT_FALSE(Contains(metrics.body, "ODD")) << "odd method tokens became metric labels";
  EXPECT_FALSE(Contains(metrics.body, "/no/such/route")) << "unrouted paths became metric labels";
  EXPECT_TRUE(Contains(metrics.body, R"(method="other")")) << metrics.body.substr(0, 2000);
  EXPECT_EQ(server.Terminate(), 0);
  fs::remove_all(dir);
}

// ---- admin token and data dir checks ---------------------------------------------------------------------

TEST(FaultsTest, ShortAdminTokenIsRefusedAtStart) {
  auto dir = TempDir("short-token");
  const std::string weak = "abc123weak";
  ServeOutcome outcome = RunServe(dir, {{"SLUICE_ADMIN_TOKEN", weak}});
  EXPECT_FALSE(outcome.started) << outcome.stderr_text;
  EXPECT_FALSE(outcome.signaled);
  EXPECT_NE(outcome.exit_code, 0);
  EXPECT_TRUE(Contains(outcome.stderr_text, "SLUICE_ADMIN_TOKEN is 10 characters; it must be at least 32"))
      << outcome.stderr_text;
  EXPECT_FALSE(Contains(outcome.stderr_text, weak)) << "the token value was logged";

  // 32 characters are enough.
  ServeOutcome ok = RunServe(dir, {{"SLUICE_ADMIN_TOKEN", std::string(32, 'k')}});
  EXPECT_TRUE(ok.started) << ok.stderr_text;
  fs::remove_all(dir);
}

TEST(FaultsTest, DataDirWithServerStateButNoStoreRefusesToStart) {
  // admin-token written by an earlier start, store/ missing (the volume is not mounted).
  auto dir = TempDir("no-store");
  fs::create_directories(dir);
  WriteFile(dir / "admin-token", RandomHex(256) + "\n");
  ServeOutcome outcome = RunServe(dir, {});
  EXPECT_FALSE(outcome.started) << outcome.stderr_text;
  EXPECT_FALSE(outcome.signaled);
  EXPECT_EQ(outcome.exit_code, 1) << outcome.stderr_text;
  EXPECT_TRUE(Contains(outcome.stderr_text, (dir / "admin-token").string())) << outcome.stderr_text;
  EXPECT_TRUE(Contains(outcome.stderr_text, (dir / "store").string())) << outcome.stderr_text;
  EXPECT_TRUE(Contains(outcome.stderr_text, "mounted")) << outcome.stderr_text;
  EXPECT_FALSE(fs::exists(dir / "store")) << "an empty store was created";

  // The same with SLUICE_ADMIN_TOKEN set: the env token must not bypass the check.
  ServeOutcome with_env = RunServe(dir, {{"SLUICE_ADMIN_TOKEN", RandomHex(256)}});
  EXPECT_FALSE(with_env.started) << with_env.stderr_text;
  EXPECT_EQ(with_env.exit_code, 1) << with_env.stderr_text;
  EXPECT_FALSE(fs::exists(dir / "store"));

  // With SLUICE_ADMIN_TOKEN no admin-token is written; the server.url an earlier run left behind marks it.
  fs::remove(dir / "admin-token");
  WriteFile(dir / "server.url", "http://127.0.0.1:1\n");
  ServeOutcome url_only = RunServe(dir, {{"SLUICE_ADMIN_TOKEN", RandomHex(256)}});
  EXPECT_FALSE(url_only.started) << url_only.stderr_text;
  EXPECT_EQ(url_only.exit_code, 1) << url_only.stderr_text;
  EXPECT_TRUE(Contains(url_only.stderr_text, (dir / "server.url").string())) << url_only.stderr_text;
  EXPECT_FALSE(fs::exists(dir / "store"));

  // A first start (nothing there yet) creates the store.
  fs::remove(dir / "server.url");
  ServeOutcome first = RunServe(dir, {});
  EXPECT_TRUE(first.started) << first.stderr_text;
  EXPECT_TRUE(fs::exists(dir / "store"));
  EXPECT_TRUE(fs::exists(dir / "admin-token"));
  fs::remove_all(dir);
}

// ---- corruption
// -------------------------------------------------------------------------------------------------

TEST(FaultsTest, JournalDamagedInTheMiddleRefusesToStartNamingTheDamage) {
  auto dir = TempDir("wal-damage");
  ServerProcess server(dir);
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  const ProjectCredentials project = CreateProject(server);
  const int64_t time = NowSeconds() - 60;
  for (int b = 0; b < 40; ++b) {
    auto r = Import(server, project, ImportBody("w" + std::to_string(b), 500, time, 64, nullptr));
    ASSERT_EQ(r.status, 200) << r.body;
  }
  // SIGKILL: the 20,000 acknowledged events live only in the store's journal (a clean stop would flush them
  // to an SST and delete it).
  server.Kill();
  const fs::path wal = LargestFile(dir / "store" / "journal", ".jnl");
  ASSERT_FALSE(wal.empty());
  const uintmax_t size = fs::file_size(wal);
  ASSERT_GT(size, 1u << 20);
  Damage(wal, size / 2, 512);

  ServeOutcome outcome = RunServe(dir, {});
  EXPECT_FALSE(outcome.started) << "the server started on a journal damaged in the middle:\n"
                                << outcome.stderr_text;
  EXPECT_FALSE(outcome.signaled) << outcome.stderr_text;
  EXPECT_EQ(outcome.exit_code, 1) << outcome.stderr_text;
  EXPECT_TRUE(Contains(outcome.stderr_text, "corrupt")) << outcome.stderr_text;
  EXPECT_TRUE(Contains(outcome.stderr_text, wal.filename().string())) << outcome.stderr_text;
  fs::remove_all(dir);
}

TEST(FaultsTest, DamagedSstMakesTheExportFailVisiblyAndIsLogged) {
  auto dir = TempDir("sst-damage");
  ServerProcess server(dir);
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  const ProjectCredentials project = CreateProject(server);
  const int64_t time = NowSeconds() - 60;
  for (int b = 0; b < 40; ++b) {
    auto r = Import(server, project, ImportBody("s" + std::to_string(b), 500, time, 64, nullptr));
    ASSERT_EQ(r.status, 200) << r.body;
  }
  auto before = Export(server, project, time);
  ASSERT_EQ(before.status, 200);
  ASSERT_EQ(InsertIds(before.body).size(), 20000u);
  ASSERT_EQ(server.Terminate(), 0);  // a clean stop flushes the events into an SST
  const fs::path sst = LargestFile(dir / "store", ".sst");
  ASSERT_FALSE(sst.empty());
  const uintmax_t size = fs::file_size(sst);
  ASSERT_GT(size, 256u << 10);
  Damage(sst, size / 3, 4096);  // inside the data blocks, far from the index and footer at the end

  const fs::path log = TempDir("sst-damage-log");
  {
    StderrToFile capture(log);
    ASSERT_TRUE(server.Start(&error)) << error;
  }
  auto after = Export(server, project, time);
  // The transport reports a failed transfer as status 0: the stream must not end as a clean, shorter 200.
  EXPECT_EQ(after.status, 0) << "export of a damaged SST ended like a complete response ("
                             << after.body.size() << " bytes)";
  // It stops on SIGTERM; closing a store that met corruption may report it (exit status 1) when a background
  // compaction read the damaged file too — either way it must exit, not hang or die by a signal.
  const int stopped = server.Terminate();
  EXPECT_TRUE(stopped == 0 || stopped == 256) << "exit status " << stopped;
  const std::string logged = ReadFile(log);
  EXPECT_TRUE(Contains(logged, "CORRUPTION")) << logged;
  EXPECT_TRUE(Contains(logged, sst.filename().string())) << logged;
  fs::remove(log);
  fs::remove_all(dir);
}

// ---- full disk
// -----------------------------------------------------------------------------------------------

/// A small tmpfs mounted for the test and unmounted when it ends.
class TmpfsMount {
 public:
  TmpfsMount(fs::path where, const std::string& size) : where_(std::move(where)) {
    fs::create_directories(where_);
    const std::string options = "size=" + size + ",mode=0700";
    if (::mount("tmpfs", where_.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      error_ =
          std::string("mount -t tmpfs -o ") + options + " " + where_.string() + ": " + std::strerror(errno);
    } else {
      mounted_ = true;
    }
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(where_.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove(where_, ec);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  fs::path where_;
  bool mounted_ = false;
  std::string error_;
};

// A small volume can fill with the store's own journal while the memtables it backs are not flushed yet:
// refusing writes then must not last forever (nothing else would flush). The store flushes, the journal's
// segments go, and writes are accepted again with nothing freed from outside and no restart.
TEST(FaultsTest, AVolumeFullOfItsOwnUnflushedJournalAcceptsWritesAgainByItself) {
  ASSERT_EQ(geteuid(), 0u) << "this test mounts a tmpfs as the data dir and must run as root (CI does); it "
                              "does not skip";
  const fs::path mount_point = TempDir("own-journal");
  TmpfsMount tmpfs(mount_point, "128m");
  ASSERT_TRUE(tmpfs.mounted()) << tmpfs.error();
  const fs::path log = TempDir("own-journal-log");
  ServerProcess server(mount_point, {"--no-reserve-memtables"});
  std::string error;
  {
    StderrToFile capture(log);
    ASSERT_TRUE(server.Start(&error)) << error;
  }
  AckedImports ingest(server, CreateProject(server));
  // Until the first refusal (bounded: 128 MiB hold well under 1000 batches).
  int batch = 0;
  for (; batch < 1000 && ingest("a" + std::to_string(batch)).status == 200; ++batch) {
  }
  ASSERT_LT(batch, 1000) << "the volume never filled";
  // Then writes are accepted again by themselves (bounded: 30 s).
  bool accepted = false;
  for (int i = 0; i < 300 && !accepted; ++i) {
    accepted = ingest("b" + std::to_string(i)).status == 200;
    if (!accepted) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(accepted) << "writes stayed refused on a volume full of the store's own journal\n" << ReadFile(log);
  EXPECT_EQ(ingest.MissingAfterRestart(log), 0u) << "acknowledged events lost";
  EXPECT_EQ(server.Terminate(), 0);
  fs::remove(log);
}

TEST(FaultsTest, FullDiskAnswers503KeepsServingReadsAndRecoversWithoutLosingEvents) {
  ASSERT_EQ(geteuid(), 0u) << "this test mounts a tmpfs as the data dir and must run as root (CI does); it "
                              "does not skip";
  const fs::path mount_point = TempDir("full-disk");
  TmpfsMount tmpfs(mount_point, "32m");
  ASSERT_TRUE(tmpfs.mounted()) << tmpfs.error();
  // The filler is what the test deletes to give the space back.
  WriteFile(mount_point / "filler", std::string(8u << 20, 'f'));

  const fs::path log = TempDir("full-disk-log");
  ServerProcess server(mount_point);
  std::string error;
  {
    StderrToFile capture(log);
    ASSERT_TRUE(server.Start(&error)) << error;
  }
  const ProjectCredentials project = CreateProject(server);
  AckedImports ingest(server, project);
  const int64_t time = ingest.time();
  const std::set<std::string>& acked = ingest.acked();

  // Ingest until the disk is full (bounded: 32 MiB hold well under 200 batches of ~220 KB).
  ServerProcess::Reply full;
  int batch = 0;
  for (; batch < 200; ++batch) {
    full = ingest("a" + std::to_string(batch));
    if (full.status != 200) break;
  }
  ASSERT_EQ(full.status, 503) << "after " << batch << " batches: " << full.body;
  // The client is told to retry; where the server keeps its data is for the operator's log only.
  EXPECT_TRUE(Contains(full.body, "events were not stored: the store is unavailable; retry the request"))
      << full.body;
  EXPECT_FALSE(Contains(full.body, mount_point.string())) << full.body;
  EXPECT_TRUE(Contains(ReadFile(log), "disk full: free space in " + (mount_point / "store").string()));
  ASSERT_GT(acked.size(), 0u);

  // More writes while full: still 503, the server stays up; health and reads are served.
  for (int i = 0; i < 5; ++i) {
    auto again = ingest("full" + std::to_string(i));
    EXPECT_EQ(again.status, 503) << again.body;
  }
  // Profile and group-profile writes as large as an import batch are refused the same way (every store write
  // checks the free space it needs).
  const std::string big(220'000, 'x');
  for (const char* path : {"/engage", "/groups"}) {
    const std::string update =
        std::string(path) == "/engage"
            ? R"([{"$token":")" + project.token + R"(","$distinct_id":"u1","$set":{"bio":")" + big + R"("}}])"
            : R"([{"$token":")" + project.token + R"(","$group_key":"company","$group_id":"acme","$set":{"bio":")" +
                  big + R"("}}])";
    auto refused = server.Send("POST", std::string(path) + "?verbose=1", update,
                               {{"Content-Type", "application/json"}});
    EXPECT_EQ(refused.status, 503) << path << ": " << refused.body;
    EXPECT_TRUE(Contains(refused.body, "updates were not stored: the store is unavailable")) << refused.body;
    EXPECT_FALSE(Contains(refused.body, mount_point.string())) << refused.body;
  }
  EXPECT_EQ(server.Send("GET", "/healthz").status, 200);
  auto read_while_full = Export(server, project, time);
  ASSERT_EQ(read_while_full.status, 200);
  EXPECT_EQ(InsertIds(read_while_full.body), acked);

  // A restart with the disk still full must not crash: it starts (or refuses with a message, not a signal).
  ASSERT_EQ(server.Terminate(), 0);
  {
    StderrToFile capture(log);
    ASSERT_TRUE(server.Start(&error)) << error << "\n" << ReadFile(log);
  }
  EXPECT_EQ(server.Send("GET", "/healthz").status, 200);
  for (int i = 0; i < 3; ++i) {
    auto r = ingest("restarted" + std::to_string(i));
    EXPECT_TRUE(r.status == 200 || r.status == 503) << r.status << " " << r.body;
  }

  // Space returns: writes succeed again without a restart (bounded wait).
  fs::remove(mount_point / "filler");
  bool recovered = false;
  for (int i = 0; i < 100 && !recovered; ++i) {
    recovered = ingest("after" + std::to_string(i)).status == 200;
    if (!recovered) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(recovered) << "writes did not resume after space was freed";
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ingest("more" + std::to_string(i)).status, 200);

  // Every acknowledged event survives a restart.
  EXPECT_EQ(ingest.MissingAfterRestart(log), 0u) << "acknowledged events lost after the disk was full";
  EXPECT_EQ(server.Terminate(), 0);
  const std::string logged = ReadFile(log);
  EXPECT_TRUE(Contains(logged, "disk full")) << logged;
  EXPECT_FALSE(Contains(logged, "Assertion")) << logged;
  fs::remove(log);
}

}  // namespace
}  // namespace sluice::testing
