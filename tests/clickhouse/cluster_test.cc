// The ClickHouse client and events schema against real loopback clusters of Debian's clickhouse-server 18.16
// with ZooKeeper: 1 shard × 2 replicas and 2 shards × 2 replicas. One ZooKeeper for the binary, one cluster
// per suite.
#include <gtest/gtest.h>

#include <charconv>
#include <map>
#include <set>
#include <thread>

#include "clickhouse/client.h"
#include "clickhouse/schema.h"
#include "support/clickhouse_cluster.h"
#include "support/zookeeper_environment.h"
#include "support/zookeeper_server.h"

namespace sluice::clickhouse {
namespace {

using std::chrono::milliseconds;
using testing::ClickHouseCluster;
using testing::ZooKeeperEnvironment;
using testing::ZooKeeperServer;

std::unique_ptr<Client> MakeClient(const std::string& url, int max_attempts = 4) {
  ClientOptions o;
  o.url = ParseClickHouseUrl(url).value();
  o.transport = http::MakeCurlTransport();
  o.max_attempts = max_attempts;
  o.total_timeout = milliseconds(60'000);
  return Client::Create(std::move(o)).value();
}

Event MakeEvent(int i, std::string properties = "{}") {
  Event e;
  e.name = i % 3 == 0 ? "Signup" : "Page View";
  e.distinct_id = "user-" + std::to_string(i % 97);
  e.time_us = 1'764'979'200'000'000 + int64_t{i} * 1'000'123;  // 2025-12-06, one event per second or so
  e.insert_id = "ins-" + std::to_string(i);
  e.properties = std::move(properties);
  return e;
}

http::RequestBody Batch(uint32_t project, int first, int count, uint64_t version,
                        const std::string& props = "{}") {
  InsertBody body;
  for (int i = first; i < first + count; ++i) AppendEventRow(body, project, MakeEvent(i, props), version);
  return body.Finish();
}

int64_t Count(Client& client, const std::string& sql, std::optional<size_t> host = std::nullopt) {
  RequestOptions o;
  o.only_host = host;
  auto text = client.Query(sql + " FORMAT TSV", o);
  EXPECT_TRUE(text.ok()) << text.error().ToString();
  if (!text.ok()) return -1;
  int64_t n = -1;
  std::from_chars(text->data(), text->data() + text->size(), n);
  return n;
}

class ClusterSuite : public ::testing::Test {
 protected:
  static void StartCluster(int shards, int replicas, const std::string& database) {
    ASSERT_NE(ZooKeeperEnvironment::server(), nullptr);
    testing::ClickHouseClusterOptions o;
    o.shards = shards;
    o.replicas = replicas;
    auto ch = ClickHouseCluster::Start(o, ZooKeeperEnvironment::server()->HostPort());
    ASSERT_TRUE(ch.ok()) << ch.error().ToString();
    cluster_ = std::move(ch).value().release();
    client_ = MakeClient(cluster_->StoreUrl(database)).release();
    ASSERT_TRUE(client_->CheckServer().ok());
    auto schema = DescribeEventsSchema(*client_);
    ASSERT_TRUE(schema.ok()) << schema.error().ToString();
    schema_ = new EventsSchema(*schema);
    auto st = EnsureEventsSchema(*client_, *schema_);
    ASSERT_TRUE(st.ok()) << st.error().ToString();
  }
  static void TearDownTestSuite() {
    delete schema_;
    delete client_;
    delete cluster_;
    schema_ = nullptr;
    client_ = nullptr;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (cluster_ == nullptr || schema_ == nullptr) GTEST_FAIL() << "the cluster did not start";
  }

  static ClickHouseCluster* cluster_;
  static Client* client_;
  static EventsSchema* schema_;
};
ClickHouseCluster* ClusterSuite::cluster_ = nullptr;
Client* ClusterSuite::client_ = nullptr;
EventsSchema* ClusterSuite::schema_ = nullptr;

// ---- 1 shard × 2 replicas ----

class OneShardTwoReplicas : public ClusterSuite {
 protected:
  static void SetUpTestSuite() { StartCluster(1, 2, "s12"); }
};

TEST_F(OneShardTwoReplicas, SchemaIsReplicatedAndCreatingItAgainIsHarmless) {
  EXPECT_EQ(schema_->replicas_per_shard, 2);
  ASSERT_TRUE(EnsureEventsSchema(*client_, *schema_).ok());
  for (size_t host = 0; host < 2; ++host) {
    RequestOptions o;
    o.only_host = host;
    auto engine = client_->Query(
        "SELECT engine FROM system.tables WHERE database = 's12' AND name = 'events_local' FORMAT TSV", o);
    ASSERT_TRUE(engine.ok()) << engine.error().ToString();
    EXPECT_EQ(*engine, "ReplicatedReplacingMergeTree\n");
  }
  EXPECT_EQ(schema_->DurableInsertSettings(),
            (Settings{{"insert_distributed_sync", "1"}, {"insert_quorum", "2"}}));
}

TEST_F(OneShardTwoReplicas, AQuorumInsertIsOnBothReplicasWhenAcknowledged) {
  RequestOptions durable;
  durable.settings = schema_->DurableInsertSettings();
  ASSERT_TRUE(client_->InsertJsonEachRow(schema_->EventsTable(), Batch(1, 0, 500, 1), durable).ok());
  // No waiting: the 2xx already means both replicas have the rows.
  EXPECT_EQ(Count(*client_, "SELECT count() FROM s12.events_local WHERE project_id = 1", 0), 500);
  EXPECT_EQ(Count(*client_, "SELECT count() FROM s12.events_local WHERE project_id = 1", 1), 500);
}

TEST_F(OneShardTwoReplicas, TheSameBatchSentThroughBothReplicasIsStoredOnce) {
  RequestOptions durable;
  durable.settings = schema_->DurableInsertSettings();
  auto body = Batch(2, 0, 300, 1);
  for (size_t host : {0u, 1u, 0u}) {  // a retry through the other replica, then again through the first
    durable.only_host = host;
    ASSERT_TRUE(client_->InsertJsonEachRow(schema_->EventsTable(), body, durable).ok());
  }
  // Block deduplication: no FINAL needed, not even a merge.
  EXPECT_EQ(Count(*client_, "SELECT count() FROM s12.events WHERE project_id = 2"), 300);
  EXPECT_EQ(Count(*client_, "SELECT count() FROM s12.events_local WHERE project_id = 2", 1), 300);
}

TEST_F(OneShardTwoReplicas, FinalKeepsOnlyTheLatestVersionOfADedupKey) {
  RequestOptions durable;
  durable.settings = schema_->DurableInsertSettings();
  ASSERT_TRUE(
      client_->InsertJsonEachRow(schema_->EventsTable(), Batch(3, 0, 200, 1, R"({"v":1})"), durable).ok());
  // The same dedup keys again with other properties: a different block, so it is stored; FINAL collapses it.
  durable.only_host = 1;
  ASSERT_TRUE(
      client_->InsertJsonEachRow(schema_->EventsTable(), Batch(3, 0, 200, 2, R"({"v":2})"), durable).ok());
  EXPECT_EQ(Count(*client_, "SELECT count() FROM s12.events FINAL WHERE project_id = 3"), 200);
  EXPECT_EQ(Count(*client_,
                  "SELECT count() FROM s12.events FINAL WHERE project_id = 3 AND properties = '{\"v\":2}'"),
            200);
  // An older version arriving late does not win.
  ASSERT_TRUE(
      client_->InsertJsonEachRow(schema_->EventsTable(), Batch(3, 0, 10, 1, R"({"v":0})"), durable).ok());
  EXPECT_EQ(Count(*client_,
                  "SELECT count() FROM s12.events FINAL WHERE project_id = 3 AND properties = '{\"v\":2}'"),
            200);
  // Milliseconds and the microseconds Sluice keeps survive the round trip.
  auto text = client_->Query(
      "SELECT time_us, toUnixTimestamp(time) FROM s12.events FINAL WHERE project_id = 3 AND insert_id = "
      "'ins-7' "
      "FORMAT TSV");
  ASSERT_TRUE(text.ok());
  Event e = MakeEvent(7);
  EXPECT_EQ(*text, std::to_string(e.time_us) + "\t" + std::to_string(e.time_us / 1'000'000) + "\n");
}

TEST_F(OneShardTwoReplicas, AStoppedReplica) {
  cluster_->StopNode(1);
  // Reads fail over: a client that lists the stopped replica first still answers.
  auto stopped_first = MakeClient(cluster_->StoreUrlOf({1, 0}, "s12"));
  EXPECT_EQ(Count(*stopped_first, "SELECT count() FROM s12.events WHERE project_id = 1"), 500);
  EXPECT_EQ(stopped_first->preferred_host(), 1u);

  // A quorum of 2 cannot be met: the insert fails (retryable) instead of acknowledging a single copy.
  auto impatient = MakeClient(cluster_->StoreUrl("s12"), /*max_attempts=*/2);
  RequestOptions durable;
  durable.settings = schema_->DurableInsertSettings();
  durable.only_host = 0;
  auto st = impatient->InsertJsonEachRow(schema_->EventsTable(), Batch(4, 0, 100, 1), durable);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(IsRetryable(st.error().code)) << st.error().ToString();
  EXPECT_EQ(st.error().provider_code, "285") << st.error().ToString();  // TOO_FEW_LIVE_REPLICAS

  // Without the quorum the surviving replica takes the rows; the stopped one catches up after its restart.
  RequestOptions single;
  single.settings = {{"insert_distributed_sync", "1"}};
  ASSERT_TRUE(client_->InsertJsonEachRow(schema_->EventsTable(), Batch(5, 0, 100, 1), single).ok());
  ASSERT_TRUE(cluster_->StartNode(1).ok());
  int64_t on_restarted = -1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {  // bounded: replication fetches the missing part
    on_restarted = Count(*client_, "SELECT count() FROM s12.events_local WHERE project_id = 5", 1);
    if (on_restarted == 100) break;
    std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_EQ(on_restarted, 100);
  // And quorum inserts work again once both replicas are back (the replica may need a moment to re-register).
  Status again = Error(ErrorCode::kTransient, "not tried");
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    again = client_->InsertJsonEachRow(schema_->EventsTable(), Batch(4, 0, 100, 1), durable);
    if (again.ok() || !IsRetryable(again.error().code)) break;
  }
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(Count(*client_, "SELECT count() FROM s12.events_local WHERE project_id = 4", 1), 100);
}

// ---- 2 shards × 2 replicas ----

class TwoShardsTwoReplicas : public ClusterSuite {
 protected:
  static void SetUpTestSuite() { StartCluster(2, 2, "s22"); }
};

TEST_F(TwoShardsTwoReplicas, RowsAreShardedByDistinctIdAndDeduplicatedThroughTheDistributedTable) {
  EXPECT_EQ(schema_->replicas_per_shard, 2);
  RequestOptions durable;
  durable.settings = schema_->DurableInsertSettings();
  ASSERT_TRUE(client_->InsertJsonEachRow(schema_->EventsTable(), Batch(9, 0, 2000, 1), durable).ok());
  // The same keys, newer version, through another server of the other shard.
  durable.only_host = cluster_->IndexOf(2, 2);
  ASSERT_TRUE(
      client_->InsertJsonEachRow(schema_->EventsTable(), Batch(9, 0, 2000, 2, R"({"v":2})"), durable).ok());

  EXPECT_EQ(Count(*client_, "SELECT count() FROM s22.events FINAL WHERE project_id = 9"), 2000);
  EXPECT_EQ(Count(*client_,
                  "SELECT count() FROM s22.events FINAL WHERE project_id = 9 AND properties = '{\"v\":2}'"),
            2000);

  // Each shard holds a part of the rows, each distinct_id lives on exactly one shard, and the quorum put
  // every row on both replicas of its shard.
  std::map<std::string, std::set<int>> shards_of;
  int64_t total = 0;
  for (int shard = 1; shard <= 2; ++shard) {
    RequestOptions o;
    o.only_host = cluster_->IndexOf(shard, 1);
    auto ids = client_->Query(
        "SELECT DISTINCT distinct_id FROM s22.events_local WHERE project_id = 9 FORMAT TSV", o);
    ASSERT_TRUE(ids.ok()) << ids.error().ToString();
    size_t start = 0;
    while (start < ids->size()) {
      size_t nl = ids->find('\n', start);
      shards_of[ids->substr(start, nl - start)].insert(shard);
      start = nl + 1;
    }
    int64_t here = Count(*client_, "SELECT count() FROM s22.events_local FINAL WHERE project_id = 9",
                         cluster_->IndexOf(shard, 1));
    EXPECT_GT(here, 0);
    EXPECT_EQ(Count(*client_, "SELECT count() FROM s22.events_local FINAL WHERE project_id = 9",
                    cluster_->IndexOf(shard, 2)),
              here);
    total += here;
  }
  EXPECT_EQ(total, 2000);
  EXPECT_EQ(shards_of.size(), 97u);
  for (const auto& [id, shards] : shards_of) EXPECT_EQ(shards.size(), 1u) << id;
}

}  // namespace
}  // namespace sluice::clickhouse

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new sluice::testing::ZooKeeperEnvironment());
  return RUN_ALL_TESTS();
}
