// Several `sluice serve` nodes on one loopback ClickHouse cluster (1 shard × 2 replicas, Debian's 18.16) and
// ZooKeeper (issue 13 "Tests"): any node serves any request; duplicates sent to different nodes are stored
// once; concurrent profile updates through different nodes are exact; SIGKILL of a node during ingest loses
// no acknowledged event; SIGKILL of nodes during a backfill leaves the work to another node, which finishes
// it with every partition equal to the store and no stray file; a late event through one node re-exports the
// partition another node exported; a ClickHouse replica stopped during ingest and export loses nothing.
//
// One ZooKeeper and one ClickHouse cluster serve the whole binary; every test gets its own database and
// coordination chroot, so tests do not see each other's projects, pipelines or leases.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "common/crypto.h"
#include "coord/lease.h"
#include "coord/session.h"
#include "coord/url.h"
#include "objstore/local/local_object_store.h"
#include "pipeline/e2e_support.h"
#include "pipeline/layout.h"
#include "support/clickhouse_cluster.h"
#include "support/zookeeper_server.h"

namespace sluice::testing::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

std::unique_ptr<ZooKeeperServer>& Zk() {
  static std::unique_ptr<ZooKeeperServer> zk;
  return zk;
}
std::unique_ptr<ClickHouseCluster>& Ch() {
  static std::unique_ptr<ClickHouseCluster> ch;
  return ch;
}

class ClusterNodesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Every node of a shared store takes the admin token from the environment (the children inherit it).
    setenv("SLUICE_ADMIN_TOKEN", RandomHex(256).c_str(), 1);
    auto zk = ZooKeeperServer::Start();
    ASSERT_TRUE(zk.ok()) << zk.error().ToString();
    Zk() = std::move(zk).value();
    auto ch = ClickHouseCluster::Start({.shards = 1, .replicas = 2}, Zk()->HostPort());
    ASSERT_TRUE(ch.ok()) << ch.error().ToString();
    Ch() = std::move(ch).value();
  }
  static void TearDownTestSuite() {
    Ch().reset();
    Zk().reset();
  }

  void SetUp() override {
    ASSERT_TRUE(Zk() && Ch()) << "the loopback cluster did not start";
    const std::string tag = RandomHex(48);
    dir_ = std::filesystem::temp_directory_path() / ("sluice-cluster-nodes-" + tag);
    std::filesystem::create_directories(dir_ / "export");
    database_ = "t_" + tag;
    chroot_ = "/t_" + tag;
  }
  void TearDown() override {
    nodes_.clear();
    std::filesystem::remove_all(dir_);
  }

  /// Starts node `i` (data dir dir_/node<i>) on the test's database and chroot, sharing one export root.
  SluiceServer& StartNode(size_t i, std::vector<std::string> extra = {}) {
    if (nodes_.size() <= i) nodes_.resize(i + 1);
    std::vector<std::string> args = {"--store",
                                     Ch()->StoreUrl(database_),
                                     "--coordination",
                                     Zk()->Url(chroot_),
                                     "--node-id",
                                     fmt::format("node-{}", i),
                                     "--local-export-root",
                                     (dir_ / "export").string(),
                                     "--pipeline-unit-parallelism",
                                     "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    nodes_[i] = std::make_unique<SluiceServer>(dir_ / fmt::format("node{}", i), nullptr, std::move(args));
    std::string err;
    EXPECT_TRUE(nodes_[i]->Start(&err)) << "node " << i << ": " << err;
    return *nodes_[i];
  }
  SluiceServer& Node(size_t i) { return *nodes_.at(i); }

  /// Creates a project through node 0 and checks that every other started node accepts its secret at once
  /// (no wait, no retry): a node that misses a credential reads the projects' change stamp and reloads
  /// (docs/scale-out.md), so it knows a project created before the request arrived.
  Result<Project> CreateSharedProject(const std::string& name) {
    auto project = Node(0).CreateProject(name);
    if (!project.ok()) return project;
    for (size_t i = 1; i < nodes_.size(); ++i) {
      if (!nodes_[i]) continue;
      auto reply = nodes_[i]->process().Send(
          "POST", "/import?strict=1", "[]",
          {{"Authorization", project->Authorization()}, {"Content-Type", "application/json"}});
      if (reply.status != 200) {
        return Internal(fmt::format("node {} refused project {} right after its creation: {} {}", i,
                                    project->id, reply.status, reply.body));
      }
    }
    return project;
  }

  /// A coordination session of the test's own on the test's chroot, to see who holds which lease.
  std::shared_ptr<coord::Session> LeaseWatcher() {
    auto url = coord::ParseZooKeeperUrl(Zk()->Url(chroot_));
    EXPECT_TRUE(url.ok()) << url.error().ToString();
    if (!url.ok()) return nullptr;
    auto session = coord::Session::Open({.url = *url});
    EXPECT_TRUE(session.ok()) << session.error().ToString();
    return session.ok() ? *session : nullptr;
  }

  std::filesystem::path dir_;
  std::string database_;
  std::string chroot_;
  std::vector<std::unique_ptr<SluiceServer>> nodes_;
};

/// POST /import?strict=1 of events [from, to) through `node`; no retry (the caller decides what a refusal
/// means).
ServerProcess::Reply PostBatch(SluiceServer& node, const Project& p, const std::vector<std::string>& events,
                               size_t from, size_t to, std::chrono::seconds timeout) {
  std::string body = "[";
  for (size_t i = from; i < to; ++i) body += (i > from ? "," : "") + events[i];
  body += "]";
  return node.process().Send("POST", "/import?strict=1", std::move(body),
                             {{"Authorization", p.Authorization()}, {"Content-Type", "application/json"}},
                             timeout);
}

/// Adds the insert ids of events [from, to) to `ids`.
void AddInsertIds(const std::vector<std::string>& events, size_t from, size_t to,
                  std::set<std::string>& ids) {
  for (size_t i = from; i < to; ++i) {
    ids.insert(std::string(json::parse(events[i]).at("properties").at("$insert_id").as_string()));
  }
}

/// How many of `ids` the read-back lacks.
size_t Missing(const std::set<std::string>& ids, const EventsByInsertId& stored) {
  size_t missing = 0;
  for (const auto& id : ids) missing += stored.count(id) == 0;
  return missing;
}

TEST_F(ClusterNodesTest, AnyNodeServesAnyRequestDuplicatesAreStoredOnceAndProfilesAreExact) {
  for (size_t i = 0; i < 3; ++i) StartNode(i);
  ASSERT_FALSE(HasFailure());
  for (size_t i = 0; i < 3; ++i) {
    auto health = Node(i).process().Send("GET", "/healthz");
    EXPECT_EQ(health.status, 200) << health.body;
    EXPECT_NE(health.body.find(R"("store":"ok")"), std::string::npos) << health.body;
    EXPECT_NE(health.body.find(R"("coordination":"ok")"), std::string::npos) << health.body;
  }
  auto project = CreateSharedProject("shared");
  ASSERT_TRUE(project.ok()) << project.error().ToString();
  const Project p = *project;

  // The same events through node 1 and again through node 2: stored once, read back through node 0.
  const int64_t day = TodayUtc() - 1;
  auto events = MakeDayEvents(day, 3000, "dup", 7);
  Status first = Node(1).Import(p, events);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  Status again = Node(2).Import(p, events);
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  auto back = Node(0).ReadBack(p, day);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->size(), events.size());

  // $add and $union on one profile from two nodes at once: nothing lost to a read-modify-write race.
  constexpr int kPerNode = 40;
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (size_t n : {size_t{1}, size_t{2}}) {
    writers.emplace_back([&, n] {
      for (int i = 0; i < kPerNode; ++i) {
        std::string update = json::serialize(json::object{
            {"$token", p.token},
            {"$distinct_id", "shared-user"},
            {"$add", json::object{{"clicks", 1}}},
        });
        std::string tag = json::serialize(json::object{
            {"$token", p.token},
            {"$distinct_id", "shared-user"},
            {"$union", json::object{{"tags", json::array{fmt::format("n{}-{}", n, i)}}}},
        });
        if (!Node(n).Engage({update, tag}).ok()) ++failures;
      }
    });
  }
  for (auto& t : writers) t.join();
  ASSERT_EQ(failures.load(), 0);
  auto profiles = Node(0).ReadProfiles(p);
  ASSERT_TRUE(profiles.ok()) << profiles.error().ToString();
  ASSERT_EQ(profiles->count("shared-user"), 1u);
  json::object props = json::parse(profiles->at("shared-user")).as_object();
  EXPECT_EQ(props.at("clicks").to_number<int64_t>(), 2 * kPerNode) << profiles->at("shared-user");
  EXPECT_EQ(props.at("tags").as_array().size(), size_t{2 * kPerNode});

  // A project created through node 0 is known to node 2 (shared projects, shared admin token).
  auto listed =
      Node(2).process().Send("GET", "/api/app/projects", {},
                             {{"Authorization", std::string("Bearer ") + getenv("SLUICE_ADMIN_TOKEN")}});
  EXPECT_EQ(listed.status, 200) << listed.body;
  EXPECT_NE(listed.body.find(p.token), std::string::npos);
}

// A project created through one node is accepted by every other node on the very next request: no wait, no
// retry, also for projects created in quick succession (each node's last reload is then only milliseconds
// old; before the change stamp, a node reloaded on a miss at most every 0.5 s and answered 401 meanwhile).
TEST_F(ClusterNodesTest, AProjectCreatedThroughOneNodeIsAcceptedByTheOthersAtOnce) {
  for (size_t i = 0; i < 3; ++i) StartNode(i);
  ASSERT_FALSE(HasFailure());
  const int64_t day = TodayUtc() - 1;
  for (int round = 0; round < 6; ++round) {
    auto project = Node(0).CreateProject(fmt::format("at-once-{}", round));
    ASSERT_TRUE(project.ok()) << project.error().ToString();
    auto events = MakeDayEvents(day, 2, fmt::format("r{}", round), 20 + round);
    auto track = [&](size_t n) {  // the public token (/track), one event
      auto reply = Node(n).process().Send(
          "POST", "/track?verbose=1",
          fmt::format(R"([{{"event":"e","properties":{{"token":"{}","distinct_id":"u","time":{}}}}}])",
                      project->token, day * 86400 + 3600),
          {{"Content-Type", "application/json"}});
      EXPECT_EQ(reply.status, 200) << "round " << round << ", node " << n << ": " << reply.body;
      EXPECT_NE(reply.body.find(R"("status":1)"), std::string::npos)
          << "round " << round << ": " << reply.body;
    };
    // Odd rounds: node 1's first request carries the token rather than the secret.
    if (round % 2 == 1) track(1);
    for (size_t n : {size_t{1}, size_t{2}}) {
      auto reply = PostBatch(Node(n), *project, events, n - 1, n, 30s);
      EXPECT_EQ(reply.status, 200) << "round " << round << ", node " << n << ": " << reply.body;
    }
  }
}

TEST_F(ClusterNodesTest, SigkillOfANodeDuringIngestLosesNoAcknowledgedEvent) {
  StartNode(0);
  StartNode(1);
  ASSERT_FALSE(HasFailure());
  auto project = CreateSharedProject("kill-ingest");
  ASSERT_TRUE(project.ok()) << project.error().ToString();
  const Project p = *project;
  const int64_t day = TodayUtc() - 1;
  auto events = MakeDayEvents(day, 20'000, "k", 11);

  // Two senders, one per node, each sending its own batches; node 1 is killed while they run.
  // The kill is aimed: it comes once node 1 has acknowledged kKillAfter batches, with most of its batches
  // still to send, so it lands in the middle of node 1's stream (not after it, however fast ingest is).
  constexpr size_t kBatch = 500;
  constexpr int kKillAfter = 3;
  std::mutex mu;
  std::set<std::string> acknowledged;  // insert ids of acknowledged batches
  std::atomic<int> acked_by[2] = {0, 0};
  auto send = [&](size_t node, size_t first_batch) {
    for (size_t b = first_batch; b * kBatch < events.size(); b += 2) {
      const size_t from = b * kBatch, to = std::min(events.size(), from + kBatch);
      auto r = PostBatch(Node(node), p, events, from, to, 30s);
      if (r.status != 200) continue;  // refused or cut off: not acknowledged, may or may not be stored
      std::lock_guard lock(mu);
      AddInsertIds(events, from, to, acknowledged);
      ++acked_by[node];
    }
  };
  std::thread a(send, 0, 0);
  std::thread b(send, 1, 1);
  const std::string waited =
      WaitUntil([&] { return acked_by[1].load() >= kKillAfter; }, 60s,
                [&] { return fmt::format("node 1 acknowledged {} batches", acked_by[1].load()); }, 1ms);
  Node(1).Kill();
  a.join();
  b.join();
  ASSERT_EQ(waited, "");
  const int node1_batches = static_cast<int>((events.size() / kBatch) / 2);
  EXPECT_LT(acked_by[1].load(), node1_batches)
      << "the kill came after node 1's last batch: it tested nothing";
  ASSERT_GT(acknowledged.size(), 0u);

  auto back = Node(0).ReadBack(p, day);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(Missing(acknowledged, *back), 0u) << "of " << acknowledged.size() << " acknowledged events";
  std::cout << acknowledged.size() << " events acknowledged, " << back->size() << " stored" << std::endl;
}

/// "" when every partition of `days` under the export root equals the store and no data file is stray.
std::string CompareDays(SluiceServer& reader, const Project& p, const std::vector<int64_t>& days,
                        objstore::ObjectStore& bucket) {
  std::string problems;
  for (int64_t day : days) {
    auto expected = reader.ReadBack(p, day);
    if (!expected.ok()) return "read-back: " + expected.error().ToString();
    const std::string dir = pipeline::EventsUnitDir(p.id, pipeline::Unit{day * 24, 24});
    auto content = ReadPartition(bucket, dir);
    if (!content.ok()) {
      problems += fmt::format("\n{}: {}", dir, content.error().ToString());
    } else if (!content->complete) {
      problems += fmt::format("\n{}: no complete marker", dir);
    } else if (std::string diff = CompareEvents(content->lines, *expected); !diff.empty()) {
      problems += fmt::format("\n{} (generation {}): {}", dir, content->manifest.generation, diff);
    }
  }
  auto keys = AllKeys(bucket);
  if (!keys.ok()) return problems + "\nlisting: " + keys.error().ToString();
  for (const auto& stray : StrayDataFiles(*keys, p.id, bucket)) problems += "\nstray data file " + stray;
  return problems;
}

TEST_F(ClusterNodesTest, BackfillSurvivesSigkilledNodesAndLateDataThroughAnotherNodeIsReexported) {
  // A short coordination session, so leases of killed nodes expire within seconds.
  const std::vector<std::string> fast = {"--coordination-session-timeout", "4"};
  // Nodes 0 and 1 first; node 2 joins after both are killed, and must finish the backfill.
  for (size_t i = 0; i < 2; ++i) StartNode(i, fast);
  ASSERT_FALSE(HasFailure());
  auto project = CreateSharedProject("backfill");
  ASSERT_TRUE(project.ok()) << project.error().ToString();
  const Project p = *project;
  const int64_t today = TodayUtc();
  // Six days (one partition each) of 4000 events: a run of several partitions, so a kill at the first sight
  // of a lease lands before its end.
  std::vector<int64_t> days;
  for (int64_t d = today - 7; d < today - 1; ++d) days.push_back(d);
  for (int64_t day : days) ASSERT_TRUE(Node(0).Import(p, MakeDayEvents(day, 4000, "b", 3)).ok());
  auto watcher = LeaseWatcher();  // before the pipeline exists, so its first lease is seen
  ASSERT_NE(watcher, nullptr);

  auto created = Node(0).PipelinePost(p, "create",
                                      {{"type", "local"},
                                       {"local_path", (dir_ / "export").string()},
                                       {"from_date", DateOf(days.front())},
                                       {"frequency", "daily"}});
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string name(json::parse(created.body).at("pipeline_names").as_array().at(0).as_string());

  auto bucket = objstore::LocalObjectStore::Open(dir_ / "export");
  ASSERT_TRUE(bucket.ok()) << bucket.error().ToString();

  // Nodes 0 and 1 die while the backfill runs, each killed at a moment it holds a lease of it (the pipeline's
  // run or a partition's export), seen through a coordination session of the test's own (polled every ~1 ms):
  // the kills are aimed, so they interrupt the work however fast an export is. The second node can take over
  // only once the first one's session expires (4 s); should it not hold a lease within 20 s of the first kill
  // (the backfill was done before it), it is killed anyway and only the first kill counts. Node 2 must then
  // finish what is left.
  std::vector<std::string> interrupted;  // "node-i held LEASE"
  std::set<size_t> killed;
  auto deadline = std::chrono::steady_clock::now() + 120s;
  while (killed.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    auto names = watcher->Children("/leases");
    for (const std::string& lease : names.ok() ? *names : std::vector<std::string>{}) {
      auto holder = coord::Lease::CurrentHolder(*watcher, lease);
      if (!holder.ok() || !*holder) continue;
      for (size_t i = 0; i < 2; ++i) {
        if (killed.count(i) == 0 && (*holder)->holder == fmt::format("node-{}", i)) {
          Node(i).Kill();
          killed.insert(i);
          interrupted.push_back(fmt::format("node-{} held {}", i, lease));
          // The other node can take over once this one's session expires (4 s) and its scheduler sees the
          // pipeline due: 20 s covers that; past it, the backfill was done before the kill.
          deadline = std::min(deadline, std::chrono::steady_clock::now() + 20s);
        }
      }
    }
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_FALSE(interrupted.empty()) << "no node was seen holding a lease of the backfill within 120 s";
  for (size_t i = 0; i < 2; ++i) {
    if (killed.count(i) == 0) Node(i).Kill();
  }
  std::cout << "kills that interrupted the backfill: " << fmt::format("{}", fmt::join(interrupted, "; "))
            << std::endl;
  StartNode(2, fast);
  ASSERT_FALSE(HasFailure());

  std::string last;
  EXPECT_EQ(WaitUntil(
                [&] {
                  last = CompareDays(Node(2), p, days, **bucket);
                  return last.empty();
                },
                180s, [&] { return last; }, 2s),
            "");

  // A late event through a restarted node 1 into a day already exported: re-exported, equal to the store.
  StartNode(1, fast);
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(Node(1).Import(p, MakeDayEvents(days[1], 50, "late", 5)).ok());
  EXPECT_EQ(Node(2).PipelinePost(p, "sync", {{"name", name}}).status, 200);
  EXPECT_EQ(WaitUntil(
                [&] {
                  last = CompareDays(Node(2), p, days, **bucket);
                  return last.empty();
                },
                180s, [&] { return last; }, 2s),
            "");
  auto state = PipelineState(Node(1), p, name);
  ASSERT_TRUE(state.ok()) << state.error().ToString();
  EXPECT_EQ(state->first, "active") << state->second;
}

TEST_F(ClusterNodesTest, AClickHouseReplicaStoppedDuringIngestAndExportLosesNothing) {
  StartNode(0);
  StartNode(1);
  ASSERT_FALSE(HasFailure());
  auto project = CreateSharedProject("replica-down");
  ASSERT_TRUE(project.ok()) << project.error().ToString();
  const Project p = *project;
  const int64_t day = TodayUtc() - 2;
  auto events = MakeDayEvents(day, 6000, "r", 13);
  ASSERT_TRUE(Node(0).Import(p, std::vector<std::string>(events.begin(), events.begin() + 2000)).ok());

  // Replica 2 stops: a quorum insert cannot be acknowledged, so ingest answers a retryable error (never a
  // false 2xx) naming the store; what was acknowledged stays readable through the remaining replica.
  const size_t replica = Ch()->IndexOf(1, 2);
  Ch()->StopNode(replica);
  std::set<std::string> acknowledged;
  for (size_t from = 2000; from < 4000; from += 500) {
    auto r = PostBatch(Node(1), p, events, from, from + 500, 90s);
    if (r.status == 200) {
      AddInsertIds(events, from, from + 500, acknowledged);
    } else {
      EXPECT_TRUE(r.status == 503 || r.status == 500) << r.status << ": " << r.body;
    }
  }
  auto created = Node(0).PipelinePost(p, "create",
                                      {{"type", "local"},
                                       {"local_path", (dir_ / "export").string()},
                                       {"from_date", DateOf(day)},
                                       {"frequency", "daily"}});
  ASSERT_EQ(created.status, 200) << created.body;
  std::this_thread::sleep_for(2s);
  ASSERT_TRUE(Ch()->StartNode(replica).ok());

  // After the replica is back: the rest goes in, every acknowledged event is stored, and the export equals
  // the store.
  ASSERT_TRUE(Node(1).Import(p, std::vector<std::string>(events.begin() + 4000, events.end())).ok());
  auto back = Node(0).ReadBack(p, day);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  AddInsertIds(events, 0, 2000, acknowledged);
  EXPECT_EQ(Missing(acknowledged, *back), 0u);
  const std::string name(json::parse(created.body).at("pipeline_names").as_array().at(0).as_string());
  auto synced = Node(0).PipelinePost(p, "sync", {{"name", name}});
  EXPECT_EQ(synced.status, 200) << synced.body;
  auto bucket = objstore::LocalObjectStore::Open(dir_ / "export");
  ASSERT_TRUE(bucket.ok()) << bucket.error().ToString();
  std::string last;
  EXPECT_EQ(WaitUntil(
                [&] {
                  last = CompareDays(Node(0), p, {day}, **bucket);
                  return last.empty();
                },
                180s, [&] { return last; }, 2s),
            "");
}

}  // namespace
}  // namespace sluice::testing::e2e
