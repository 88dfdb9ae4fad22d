// Profiles as an operation log (issue 13): one profile suite run over the embedded RocksStore and over
// ClickHouseProfileStore on a loopback 1 shard × 2 replicas cluster (replicated, and one server without a
// cluster); then what only the shared store has to prove: two "nodes" (two stores, two clients) updating one
// profile at once lose nothing, $delete/$set order, a retried insert applied once. One ZooKeeper and one
// ClickHouse cluster for the binary.
#include "chstore/profiles.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

#include "chstore/open.h"
#include "clickhouse/client.h"
#include "clickhouse/schema.h"
#include "common/clock.h"
#include "http/transport.h"
#include "ingest/ingest.h"
#include "ingest/profile_ops.h"
#include "store/store.h"
#include "support/clickhouse_cluster.h"
#include "support/clickhouse_environment.h"
#include "support/zookeeper_environment.h"

namespace sluice::chstore {
namespace {

using std::chrono::milliseconds;
using testing::ClickHouseCluster;
using testing::ZooKeeperEnvironment;

constexpr int64_t kNowUs = 1'764'979'200'000'000;  // 2025-12-06T00:00:00Z

const ingest::ProfileUpdateFolder& Folder() {
  static const ingest::ProfileUpdateFolder folder;
  return folder;
}

/// The encoded operations of an /engage (or /groups) payload, in order.
std::vector<std::string> Ops(std::string_view payload, bool groups = false, std::string_view country = {}) {
  auto parsed = groups ? ingest::ParseGroupProfileUpdates(payload, ingest::PayloadFormat::kJson, kNowUs)
                       : ingest::ParseProfileUpdates(payload, ingest::PayloadFormat::kJson, kNowUs);
  EXPECT_TRUE(parsed.ok()) << parsed.error().ToString();
  if (!parsed.ok()) return {};
  EXPECT_TRUE(parsed->errors.empty()) << parsed->errors.front().message;
  std::vector<std::string> out;
  for (auto& u : parsed->updates) {
    u.country = std::string(country);
    out.push_back(ingest::EncodeProfileUpdate(u));
  }
  return out;
}

std::unique_ptr<clickhouse::Client> MakeClient(const std::string& url, int max_attempts = 4) {
  clickhouse::ClientOptions o;
  o.url = clickhouse::ParseClickHouseUrl(url).value();
  o.transport = http::MakeCurlTransport();
  o.max_attempts = max_attempts;
  o.total_timeout = milliseconds(60'000);
  return clickhouse::Client::Create(std::move(o)).value();
}

/// "clickhouse://…/DB?cluster=C" without the cluster: one server, no replication.
std::string WithoutCluster(std::string url) { return url.substr(0, url.find('?')); }

// ---- The loopback cluster, shared by every suite of the binary ----

const ::testing::Environment* const kZooKeeper =
    ::testing::AddGlobalTestEnvironment(new ZooKeeperEnvironment());
const ::testing::Environment* const kClickHouse =
    ::testing::AddGlobalTestEnvironment(new testing::ClickHouseClusterEnvironment());

ClickHouseCluster* Cluster() { return testing::ClickHouseClusterEnvironment::cluster(); }

struct Node {
  std::shared_ptr<clickhouse::Client> client;
  std::unique_ptr<ClickHouseProfileStore> store;
};

/// A "Sluice node": its own client (replicas in the given order) and store over database `db`.
Result<Node> OpenNode(const std::string& url, ProfileStoreOptions extra = {}) {
  Node node;
  node.client = MakeClient(url);
  SLUICE_ASSIGN_OR_RETURN(auto schema, clickhouse::DescribeEventsSchema(*node.client));
  extra.client = node.client;
  extra.database = schema.database;
  extra.cluster = schema.cluster;
  extra.insert_settings = schema.DurableInsertSettings();
  extra.folder = &Folder();
  SLUICE_ASSIGN_OR_RETURN(node.store, ClickHouseProfileStore::Open(std::move(extra)));
  return node;
}

// ---- One suite over every backend ----

enum class Backend { kRocks, kClickHouseReplicated, kClickHouseSingle };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  switch (info.param) {
    case Backend::kRocks:
      return "Rocks";
    case Backend::kClickHouseReplicated:
      return "ClickHouseReplicated";
    case Backend::kClickHouseSingle:
      return "ClickHouseSingle";
  }
  return "?";
}

class ProfileSuite : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    // A fresh database (or data dir) per test: every test starts with no profiles.
    static std::atomic<int> counter{0};
    const std::string db = "cp" + std::to_string(counter.fetch_add(1));
    if (GetParam() == Backend::kRocks) {
      dir_ =
          std::filesystem::temp_directory_path() / ("sluice-profiles-" + std::to_string(getpid()) + "-" + db);
      auto s = store::Store::Open(dir_);
      ASSERT_TRUE(s.ok()) << s.error().ToString();
      rocks_ = std::move(s).value();
      store_ = rocks_.get();
      return;
    }
    ASSERT_NE(Cluster(), nullptr) << "the ClickHouse cluster did not start";
    ProfileStoreOptions extra;
    extra.scan_page_profiles = 3;  // several pages in the scan tests
    const std::string url = Cluster()->StoreUrl(db);
    auto node = OpenNode(GetParam() == Backend::kClickHouseSingle ? WithoutCluster(url) : url, extra);
    ASSERT_TRUE(node.ok()) << node.error().ToString();
    node_ = std::move(node).value();
    store_ = node_.store.get();
  }
  void TearDown() override {
    rocks_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  Status Apply(uint32_t project, std::string_view group_key, std::vector<store::ProfileOps> changes,
               std::vector<store::ProfileOpRefusal>* refused = nullptr) {
    return store_->ApplyProfileOps(project, group_key, changes, Folder(), refused);
  }
  std::string Profile(uint32_t project, std::string_view id) {
    auto p = store_->GetProfile(project, id);
    EXPECT_TRUE(p.ok()) << p.error().ToString();
    return p.ok() && *p ? **p : "<none>";
  }
  std::vector<std::string> Scan(uint32_t project, size_t stop_after = SIZE_MAX, std::string_view after = {}) {
    std::vector<std::string> out;
    Status s = store_->ScanProfiles(project, after, [&](std::string_view id, std::string_view json) {
      out.push_back(std::string(id) + "=" + std::string(json));
      return out.size() < stop_after;
    });
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> rocks_;
  Node node_;
  store::ProfileStore* store_ = nullptr;
};

TEST_P(ProfileSuite, EveryOperationKeepsItsSemantics) {
  constexpr std::string_view kCommon = R"("$token":"t","$distinct_id":"u1","$ignore_time":true)";
  auto op = [&](std::string_view body) {
    return "[{" + std::string(kCommon) + "," + std::string(body) + "}]";
  };
  ASSERT_TRUE(Apply(1, {}, {{"u1", Ops(op(R"("$set":{"name":"Ann","plan":"free","price":19.90})"))}}).ok());
  ASSERT_TRUE(Apply(1, {}, {{"u1", Ops(op(R"("$set_once":{"name":"Bob","first":"2025"})"))}}).ok());
  ASSERT_TRUE(Apply(1, {}, {{"u1", Ops(op(R"("$add":{"n":5,"x":1.5})"))}}).ok());
  ASSERT_TRUE(Apply(1, {}, {{"u1", Ops(op(R"("$add":{"n":-2})"))}}).ok());
  ASSERT_TRUE(Apply(1, {}, {{"u1", Ops(op(R"("$union":{"tags":["a","b"]})"))}}).ok());
  ASSERT_TRUE(Apply(1, {}, {{"u1", Ops(op(R"("$union":{"tags":["b","c"]})"))}}).ok());
  ASSERT_TRUE(Apply(1, {}, {{"u1", Ops(op(R"("$append":{"log":"x"})"))}}).ok());
  ASSERT_TRUE(Apply(1, {}, {{"u1", Ops(op(R"("$append":{"log":"x"})"))}}).ok());
  ASSERT_TRUE(Apply(1, {}, {{"u1", Ops(op(R"("$remove":{"tags":"a"})"))}}).ok());
  ASSERT_TRUE(Apply(1, {}, {{"u1", Ops(op(R"("$unset":["plan"])"))}}).ok());
  EXPECT_EQ(Profile(1, "u1"),
            R"({"name":"Ann","log":["x","x"],"price":19.90,"first":"2025","n":3,"x":1.5,"tags":["b","c"]})");

  // A refused update is reported with its change and op index and changes nothing; its neighbours apply.
  std::vector<store::ProfileOpRefusal> refused;
  ASSERT_TRUE(Apply(1, {},
                    {{"u2", Ops(op(R"("$set":{"big":1e308})"))},
                     {"u1", Ops("[{" + std::string(kCommon) + R"(,"$add":{"n":1}},{)" + std::string(kCommon) +
                                R"(,"$add":{"price":1e308}},{)" + std::string(kCommon) +
                                R"(,"$add":{"price":1e308}}])")}},
                    &refused)
                  .ok());
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].change, 1u);
  EXPECT_EQ(refused[0].op, 2u);
  EXPECT_EQ(refused[0].reason, "number_out_of_range");
  EXPECT_NE(Profile(1, "u1").find(R"("n":4)"), std::string::npos) << Profile(1, "u1");

  // $delete removes the profile; a later $set starts a new one.
  ASSERT_TRUE(Apply(1, {}, {{"u1", Ops(op(R"("$delete":"")"))}}).ok());
  EXPECT_EQ(Profile(1, "u1"), "<none>");
  ASSERT_TRUE(Apply(1, {}, {{"u1", Ops(op(R"("$set":{"again":true})"))}}).ok());
  EXPECT_EQ(Profile(1, "u1"), R"({"again":true})");
  // In one call: $set, $delete, $set → only the last $set survives.
  ASSERT_TRUE(Apply(1, {},
                    {{"u3", Ops("[{" + std::string(kCommon) + R"(,"$set":{"a":1}},{)" + std::string(kCommon) +
                                R"(,"$delete":""},{)" + std::string(kCommon) + R"(,"$set":{"b":2}}])")}})
                  .ok());
  EXPECT_EQ(Profile(1, "u3"), R"({"b":2})");
  EXPECT_EQ(Profile(1, "nobody"), "<none>");
}

// A profile's operation log outgrows the profile (every update adds to it). ClickHouse's answer is folded as
// it streams in, so rows cut at any chunk boundary must fold exactly as whole ones: a log of 3 MB of long
// values, then a neighbour read in the same scan.
TEST_P(ProfileSuite, ALongOperationLogFoldsExactlyWhileItStreams) {
  std::string expected_bio;
  for (int i = 0; i < 60; ++i) {
    expected_bio = std::string(50'000 + i * 7, static_cast<char>('a' + i % 26));
    const std::string update = R"([{"$token":"t","$ignore_time":true,"$distinct_id":"hog","$set":{"bio":")" +
                               expected_bio +
                               R"("}},{"$token":"t","$ignore_time":true,)"
                               R"("$distinct_id":"hog","$add":{"n":1}},{"$token":"t","$ignore_time":true,)"
                               R"("$distinct_id":"hog","$add":{"n":1}}])";
    ASSERT_TRUE(Apply(3, {}, {{"hog", Ops(update)}}).ok()) << i;
  }
  ASSERT_TRUE(Apply(3, {},
                    {{"next", Ops(R"([{"$token":"t","$ignore_time":true,"$distinct_id":"next",)"
                                  R"("$set":{"k":"v\tw"}}])")}})
                  .ok());
  const std::string hog = R"({"bio":")" + expected_bio + R"(","n":120})";
  EXPECT_EQ(Profile(3, "hog"), hog);
  EXPECT_EQ(Scan(3), (std::vector<std::string>{"hog=" + hog, R"(next={"k":"v\tw"})"}));
  EXPECT_EQ(Scan(3, 1), std::vector<std::string>{"hog=" + hog});
}

TEST_P(ProfileSuite, LastSeenAndCountryTravelWithTheOperation) {
  ASSERT_TRUE(Apply(1, {},
                    {{"u", Ops(R"([{"$token":"t","$distinct_id":"u","$time":1764979200123,"$set":{"a":1}}])",
                               false, "NZ")}})
                  .ok());
  EXPECT_EQ(Profile(1, "u"), R"({"$country_code":"NZ","a":1,"$last_seen":"2025-12-06T00:00:00"})");
}

TEST_P(ProfileSuite, ScanIsAscendingSkipsDeletedStopsEarlyAndKeepsProjectsApart) {
  std::vector<store::ProfileOps> changes;
  for (int i = 9; i >= 0; --i) {
    const std::string id = "user-" + std::to_string(i);
    changes.push_back({id, Ops(R"([{"$token":"t","$ignore_time":true,"$distinct_id":")" + id +
                               R"(","$set":{"i":)" + std::to_string(i) + "}}]")});
  }
  ASSERT_TRUE(Apply(7, {}, changes).ok());
  ASSERT_TRUE(Apply(8, {}, {changes[0]}).ok());
  ASSERT_TRUE(
      Apply(7, {}, {{"user-4", Ops(R"([{"$token":"t","$distinct_id":"user-4","$delete":""}])")}}).ok());
  std::vector<std::string> expected;
  for (int i = 0; i < 10; ++i) {
    if (i != 4) expected.push_back("user-" + std::to_string(i) + R"(={"i":)" + std::to_string(i) + "}");
  }
  EXPECT_EQ(Scan(7), expected);
  EXPECT_EQ(Scan(7, 5), std::vector<std::string>(expected.begin(), expected.begin() + 5));
  EXPECT_EQ(Scan(8), std::vector<std::string>{R"(user-9={"i":9})"});
  EXPECT_TRUE(Scan(9).empty());
  // After an id (a listing's next page): only greater ids, the deleted one skipped, other projects apart.
  EXPECT_EQ(Scan(7, SIZE_MAX, "user-2"), std::vector<std::string>(expected.begin() + 3, expected.end()));
  EXPECT_EQ(Scan(7, SIZE_MAX, "user-3x"), std::vector<std::string>(expected.begin() + 4, expected.end()));
  EXPECT_EQ(Scan(7, 2, "user-5"), std::vector<std::string>(expected.begin() + 5, expected.begin() + 7));
  EXPECT_TRUE(Scan(7, SIZE_MAX, "user-9").empty());
}

TEST_P(ProfileSuite, GroupProfilesAreKeptPerGroupKeyAndHostileIdsStayData) {
  // Ids and keys a tenant may send: quotes, backslashes, tabs, newlines, SQL, non-ASCII. They must come back
  // byte for byte and never reach another key or project.
  const std::vector<std::string> hostile = {"o'brien",      R"(back\slash)", "tab\there", "new\nline",
                                            "x' OR 1=1 --", "ünï",           "a\\'b"};
  for (size_t i = 0; i < hostile.size(); ++i) {
    std::string payload =
        R"([{"$token":"t","$group_key":"company","$group_id":"g","$set":{"i":)" + std::to_string(i) + "}}]";
    auto ops = Ops(payload, /*groups=*/true);
    ASSERT_TRUE(Apply(1, "company", {{hostile[i], ops}}).ok()) << i;
  }
  ASSERT_TRUE(Apply(1, "compan'y",
                    {{"o'brien",
                      Ops(R"([{"$token":"t","$group_key":"k","$group_id":"g","$set":{"other":1}}])", true)}})
                  .ok());
  for (size_t i = 0; i < hostile.size(); ++i) {
    auto p = store_->GetGroupProfile(1, "company", hostile[i]);
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    EXPECT_EQ(p->value_or("<none>"), R"({"i":)" + std::to_string(i) + "}") << hostile[i];
  }
  std::vector<std::string> ids;
  ASSERT_TRUE(store_
                  ->ScanGroupProfiles(1, "company", /*after=*/{},
                                      [&](std::string_view id, std::string_view) {
                                        ids.emplace_back(id);
                                        return true;
                                      })
                  .ok());
  std::vector<std::string> sorted = hostile;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(ids, sorted);
  EXPECT_EQ(store_->GetGroupProfile(1, "compan'y", "o'brien")->value_or(""), R"({"other":1})");
  EXPECT_FALSE(store_->GetGroupProfile(1, "compan", "o'brien")->has_value());
  EXPECT_FALSE(store_->GetGroupProfile(2, "company", "o'brien")->has_value());
  EXPECT_EQ(Profile(1, "o'brien"), "<none>") << "group profiles are not user profiles";
  EXPECT_TRUE(Scan(1).empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, ProfileSuite,
                         ::testing::Values(Backend::kRocks, Backend::kClickHouseReplicated,
                                           Backend::kClickHouseSingle),
                         BackendName);

// ---- What only the shared store must prove ----

class SharedProfiles : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NE(Cluster(), nullptr) << "the ClickHouse cluster did not start"; }
  static std::string Get(ClickHouseProfileStore& s, std::string_view id) {
    auto p = s.GetProfile(1, id);
    EXPECT_TRUE(p.ok()) << p.error().ToString();
    return p.ok() && *p ? **p : "<none>";
  }
};

TEST_F(SharedProfiles, TwoNodesAddingAndUnioningAtOnceLoseNothing) {
  // Node A prefers replica 0, node B replica 1: each writes through its own server.
  auto a = OpenNode(Cluster()->StoreUrlOf({0, 1}, "concurrent"));
  auto b = OpenNode(Cluster()->StoreUrlOf({1, 0}, "concurrent"));
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  ASSERT_TRUE(b.ok()) << b.error().ToString();
  constexpr int kThreadsPerNode = 2;
  constexpr int kCalls = 15;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2 * kThreadsPerNode; ++t) {
    ClickHouseProfileStore* store = (t % 2 == 0 ? a : b)->store.get();
    threads.emplace_back([&, store, t] {
      for (int i = 0; i < kCalls; ++i) {
        const std::string tag = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto ops =
            Ops(R"([{"$token":"t","$distinct_id":"shared","$ignore_time":true,"$add":{"n":1,"half":0.5}},)"
                R"({"$token":"t","$distinct_id":"shared","$ignore_time":true,"$union":{"tags":[")" +
                tag + R"(","common"]}}])");
        std::vector<store::ProfileOpRefusal> refused;
        std::vector<store::ProfileOps> changes = {{"shared", ops}};
        Status s = store->ApplyProfileOps(1, {}, changes, Folder(), &refused);
        if (!s.ok() || !refused.empty()) {
          if (failures++ == 0) ADD_FAILURE() << (s.ok() ? refused.front().message : s.error().ToString());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  const int total = 2 * kThreadsPerNode * kCalls;
  for (ClickHouseProfileStore* s : {a->store.get(), b->store.get()}) {
    auto p = ingest::ParseProfileJson(Get(*s, "shared"));
    ASSERT_TRUE(p.ok());
    const auto& o = p->get_object();
    EXPECT_EQ(ingest::ProfileNumberValue(o.at("n")), total);
    EXPECT_EQ(ingest::ProfileNumberValue(o.at("half")), total * 0.5);
    EXPECT_EQ(o.at("tags").get_array().size(), static_cast<size_t>(total + 1));  // every tag + "common"
  }
}

TEST_F(SharedProfiles, DeleteThenSetAcrossNodesKeepsOnlyTheSet) {
  auto a = OpenNode(Cluster()->StoreUrlOf({0, 1}, "ordering"));
  auto b = OpenNode(Cluster()->StoreUrlOf({1, 0}, "ordering"));
  ASSERT_TRUE(a.ok() && b.ok());
  auto apply = [&](ClickHouseProfileStore& s, std::string body) {
    std::vector<store::ProfileOps> c = {
        {"p", Ops(R"([{"$token":"t","$distinct_id":"p","$ignore_time":true,)" + body + "}]")}};
    return s.ApplyProfileOps(1, {}, c, Folder(), nullptr);
  };
  ASSERT_TRUE(apply(*a->store, R"("$set":{"old":1})").ok());
  ASSERT_TRUE(apply(*b->store, R"("$delete":"")").ok());
  EXPECT_EQ(Get(*a->store, "p"), "<none>");
  ASSERT_TRUE(apply(*a->store, R"("$set":{"new":2})").ok());
  EXPECT_EQ(Get(*a->store, "p"), R"({"new":2})");
  EXPECT_EQ(Get(*b->store, "p"), R"({"new":2})");
}

TEST_F(SharedProfiles, ARetriedInsertIsAppliedOnce) {
  // The hook re-sends every acknowledged insert twice, as a client whose answer was lost would: once as is
  // (the replicated table drops the block) and once with insert_deduplicate=0 on the other replica, so the
  // duplicate rows are really stored and only the fold's operation ids keep them from counting twice.
  std::shared_ptr<clickhouse::Client> raw = MakeClient(Cluster()->StoreUrl("retried"));
  std::atomic<int> resent{0};
  ProfileStoreOptions extra;
  extra.after_insert_for_testing = [&](const std::string& table, const http::RequestBody& body) {
    clickhouse::RequestOptions again;
    again.settings = {{"insert_distributed_sync", "1"}, {"insert_quorum", "2"}};
    if (raw->InsertJsonEachRow(table, body, again).ok()) ++resent;
    again.settings.emplace_back("insert_deduplicate", "0");
    again.only_host = 1;
    if (raw->InsertJsonEachRow(table, body, again).ok()) ++resent;
  };
  auto node = OpenNode(Cluster()->StoreUrl("retried"), extra);
  ASSERT_TRUE(node.ok()) << node.error().ToString();
  for (int i = 0; i < 3; ++i) {
    std::vector<store::ProfileOps> c = {
        {"r", Ops(R"([{"$token":"t","$distinct_id":"r","$ignore_time":true,"$add":{"n":1}},)"
                  R"({"$token":"t","$distinct_id":"r","$ignore_time":true,"$append":{"log":"x"}}])")}};
    ASSERT_TRUE(node->store->ApplyProfileOps(1, {}, c, Folder(), nullptr).ok());
  }
  ASSERT_EQ(resent.load(), 6);
  auto rows = raw->Query("SELECT count() FROM retried.profile_ops WHERE profile_id = 'r' FORMAT TSV");
  ASSERT_TRUE(rows.ok()) << rows.error().ToString();
  EXPECT_EQ(*rows, "12\n") << "3 calls × 2 operations, each stored twice (the second copy forced in)";
  EXPECT_EQ(Get(*node->store, "r"), R"({"n":3,"log":["x","x","x"]})");
}

TEST_F(SharedProfiles, SchemaIsReplicatedAndOpeningAgainIsHarmless) {
  auto first = OpenNode(Cluster()->StoreUrl("schema"));
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  auto again = OpenNode(Cluster()->StoreUrl("schema"));
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  for (size_t host = 0; host < 2; ++host) {
    clickhouse::RequestOptions o;
    o.only_host = host;
    auto engine = first->client->Query(
        "SELECT name, engine FROM system.tables WHERE database = 'schema' ORDER BY name FORMAT TSV", o);
    ASSERT_TRUE(engine.ok()) << engine.error().ToString();
    EXPECT_EQ(*engine, "profile_ops\tDistributed\nprofile_ops_local\tReplicatedReplacingMergeTree\n");
  }
  // A table of the same name without Sluice's columns is refused with a message naming them.
  ASSERT_TRUE(first->client->Execute("CREATE DATABASE IF NOT EXISTS odd", {.only_host = 0}).ok());
  ASSERT_TRUE(
      first->client
          ->Execute("CREATE TABLE IF NOT EXISTS odd.profile_ops (x UInt8) ENGINE = Memory", {.only_host = 0})
          .ok());
  auto odd = OpenNode(WithoutCluster(Cluster()->StoreUrlOf({0}, "odd")));
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.error().message.find("without the columns project_id"), std::string::npos)
      << odd.error().message;
}

TEST(ProfileStoreOpen, AnUnreachableServerIsAClearErrorAndOptionsAreChecked) {
  ProfileStoreOptions o;
  EXPECT_EQ(ClickHouseProfileStore::Open(o).error().code, ErrorCode::kInvalidArgument);
  o.client = MakeClient("clickhouse://127.0.0.1:1/db", /*max_attempts=*/1);
  o.database = "db";
  o.folder = &Folder();
  auto open = ClickHouseProfileStore::Open(o);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.error().message.find("127.0.0.1:1"), std::string::npos) << open.error().message;
  o.database = "db; DROP TABLE x";
  EXPECT_EQ(ClickHouseProfileStore::Open(o).error().code, ErrorCode::kInvalidArgument);
}

// Rows are versioned, and exports find late events, by the nodes' clocks: a node whose clock is far from
// ClickHouse's is refused at open (the scale-out audit's node 120 s behind had its late events left out of
// exports), and /healthz names the clock while it is off.
TEST(ClusterStoreOpen, ANodeWhoseClockIsFarFromClickHousesIsRefusedAndReported) {
  const int64_t now_us =
      std::chrono::duration_cast<std::chrono::microseconds>(SystemClock::Instance().Now().time_since_epoch())
          .count();
  FakeClock clock(TimePoint(std::chrono::microseconds(now_us - 120'000'000)));
  ClusterStoreOptions o;
  o.store_url = Cluster()->StoreUrl("clock");
  o.coordination_url = ZooKeeperEnvironment::server()->Url("/clock");
  o.transport = http::MakeCurlTransport();
  o.profile_folder = &Folder();
  o.clock = &clock;
  auto refused = OpenClusterStore(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kClockSkew);
  EXPECT_NE(refused.error().message.find("s behind ClickHouse's"), std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("NTP"), std::string::npos) << refused.error().message;

  clock.Set(TimePoint(std::chrono::microseconds(now_us + 800'000)));  // within the 2 s allowed
  auto opened = OpenClusterStore(o);
  ASSERT_TRUE(opened.ok()) << opened.error().ToString();
  auto clock_part = [&] {
    for (const store::Reachability& r : opened->store->CheckReachable()) {
      if (r.part == "clock") return r.status;
    }
    return Status(Error(ErrorCode::kNotFound, "no clock part"));
  };
  EXPECT_TRUE(clock_part().ok()) << clock_part().error().message;
  clock.Set(TimePoint(std::chrono::microseconds(now_us + 60'000'000)));  // stepped a minute ahead
  Status reported = clock_part();
  ASSERT_FALSE(reported.ok());
  EXPECT_NE(reported.error().message.find("s ahead of ClickHouse's"), std::string::npos)
      << reported.error().message;
}

}  // namespace
}  // namespace sluice::chstore
