// chstore::ClickHouseEventStore on a loopback 2 shards × 2 replicas ClickHouse 18.16 cluster with ZooKeeper:
// events of many distinct_ids spread over both shards (each shard's replicas hold the same rows, the shards
// disjoint ones), a rewrite by dedup key through another node lands on the original's shard and replaces it,
// and change tracking plus ScanPartitions read every event back exactly once. Its own binary: the one 2 × 2
// cluster start of the suite (events_test.cc keeps its 1 × 2 cluster).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "chstore/events.h"
#include "clickhouse/url.h"
#include "common/clock.h"
#include "support/clickhouse_cluster.h"
#include "support/clickhouse_environment.h"
#include "support/zookeeper_environment.h"

namespace sluice::chstore {
namespace {

using std::chrono::milliseconds;
using store::EventView;
using store::Hour;
using testing::ClickHouseCluster;

// 2023-11-14 22:00:00 UTC, an hour boundary.
constexpr int64_t kHourStartUs = 1'700'000'000'000'000 - (1'700'000'000'000'000 % 3'600'000'000);
const Hour kHour = store::HourOf(kHourStartUs);
constexpr uint32_t kProject = 4242;
constexpr char kDatabase[] = "ce_sharded";

std::shared_ptr<clickhouse::Client> MakeClient(const std::string& url) {
  clickhouse::ClientOptions o;
  auto parsed = clickhouse::ParseClickHouseUrl(url);
  EXPECT_TRUE(parsed.ok()) << url;
  o.url = *parsed;
  o.transport = http::MakeCurlTransport();
  o.max_attempts = 4;
  o.total_timeout = milliseconds(60'000);
  return std::shared_ptr<clickhouse::Client>(clickhouse::Client::Create(std::move(o)).value().release());
}

std::unique_ptr<ClickHouseEventStore> OpenNode(const std::string& url, const Clock* clock) {
  EventStoreOptions o;
  o.clock = clock;
  auto s = ClickHouseEventStore::Open(MakeClient(url), o);
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

// One server's own rows of the project (its local replicated table, deduplicated): which distinct_ids.
std::multiset<std::string> LocalDistinctIds(const ClickHouseCluster& c, size_t node) {
  auto client = MakeClient(fmt::format("clickhouse://127.0.0.1:{}/{}", c.node(node).http_port, kDatabase));
  auto rows = client->Query(fmt::format(
      "SELECT distinct_id FROM {}.events_local FINAL WHERE project_id = {} FORMAT TSV", kDatabase, kProject));
  EXPECT_TRUE(rows.ok()) << rows.error().ToString();
  std::multiset<std::string> out;
  if (!rows.ok()) return out;
  size_t start = 0;
  while (start < rows->size()) {
    size_t nl = rows->find('\n', start);
    if (nl == std::string::npos) nl = rows->size();
    out.insert(rows->substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

std::string Key(std::string_view name, std::string_view distinct_id, int64_t time_us,
                std::string_view insert_id) {
  return fmt::format("{}|{}|{}|{}", name, distinct_id, time_us / 1'000'000, insert_id);
}

TEST(ShardedEvents, ManyUsersSpreadOverBothShardsRewritesReplaceAndEveryEventIsReadOnce) {
  ClickHouseCluster* c = testing::ClickHouseClusterEnvironment::cluster();
  ASSERT_NE(c, nullptr) << "the 2 x 2 cluster did not start";
  FakeClock clock{std::chrono::system_clock::now()};
  // Node A prefers shard 1's first replica, node B shard 2's second one; a third reader knows every server.
  auto a = OpenNode(c->StoreUrlOf({c->IndexOf(1, 1), c->IndexOf(2, 1)}, kDatabase), &clock);
  auto b = OpenNode(c->StoreUrlOf({c->IndexOf(2, 2), c->IndexOf(1, 2)}, kDatabase), &clock);
  auto reader = OpenNode(c->StoreUrl(kDatabase), &clock);
  ASSERT_TRUE(a && b && reader);

  // 600 events of 200 users over two hours.
  constexpr int kEvents = 600;
  std::vector<Event> events;
  for (int i = 0; i < kEvents; ++i) {
    Event e;
    e.name = i % 3 == 0 ? "Signup" : "Played";
    e.time_us = kHourStartUs + int64_t{i} * 12'000'017;  // ~2 hours, distinct seconds
    e.distinct_id = "user-" + std::to_string(i % 200);
    e.insert_id = "ins-" + std::to_string(i);
    e.properties = fmt::format(R"({{"i":{},"v":"original"}})", i);
    events.push_back(std::move(e));
  }
  ASSERT_TRUE(a->WriteEvents(kProject, events).ok());
  const Hour end = store::HourOf(events.back().time_us) + 1;
  ASSERT_EQ(end - kHour, 2);

  // Rows landed on both shards; each shard's replicas agree (quorum inserts), the shards share no user.
  const auto s1r1 = LocalDistinctIds(*c, c->IndexOf(1, 1));
  const auto s1r2 = LocalDistinctIds(*c, c->IndexOf(1, 2));
  const auto s2r1 = LocalDistinctIds(*c, c->IndexOf(2, 1));
  const auto s2r2 = LocalDistinctIds(*c, c->IndexOf(2, 2));
  EXPECT_GT(s1r1.size(), 0u);
  EXPECT_GT(s2r1.size(), 0u);
  EXPECT_EQ(s1r1, s1r2);
  EXPECT_EQ(s2r1, s2r2);
  EXPECT_EQ(s1r1.size() + s2r1.size(), size_t{kEvents});
  for (const std::string& user : std::set<std::string>(s1r1.begin(), s1r1.end())) {
    EXPECT_EQ(s2r1.count(user), 0u) << user << " is on both shards";
  }

  // Everything settles; then node B rewrites every 7th event by its dedup key (same name, user, second and
  // insert id; new properties), as an SDK retry with corrected data through another node would.
  clock.Advance(a->settle_window() + std::chrono::seconds(1));
  const uint64_t settled = reader->LastChangeSeq();
  auto nothing = reader->ChangedPartitions(kProject, settled);
  ASSERT_TRUE(nothing.ok()) << nothing.error().ToString();
  EXPECT_TRUE(nothing->empty());
  std::vector<Event> rewrites;
  std::set<std::string> rewritten_users;
  for (int i = 0; i < kEvents; i += 7) {
    Event e = events[i];
    e.time_us += 1;  // the same second
    e.properties = fmt::format(R"({{"i":{},"v":"rewritten"}})", i);
    rewritten_users.insert(e.distinct_id);
    rewrites.push_back(std::move(e));
  }
  ASSERT_TRUE(b->WriteEvents(kProject, rewrites).ok());
  // The rewrites stayed on their users' shards: still no user on both, and as many rows per shard.
  EXPECT_EQ(LocalDistinctIds(*c, c->IndexOf(1, 2)), s1r1);
  EXPECT_EQ(LocalDistinctIds(*c, c->IndexOf(2, 1)), s2r1);

  // Change tracking names both hours (the rewrites touch both), the rewrites counted as writes.
  auto changed = reader->ChangedPartitions(kProject, settled);
  ASSERT_TRUE(changed.ok()) << changed.error().ToString();
  ASSERT_EQ(changed->size(), 2u);
  uint64_t writes = 0;
  for (const store::PartitionInfo& p : *changed) {
    EXPECT_GE(p.hour, kHour);
    EXPECT_LT(p.hour, end);
    EXPECT_GT(p.change_seq, settled);
    writes += p.writes;
  }
  EXPECT_EQ(writes, kEvents + rewrites.size());  // a partition's writes count every write to it, ever

  // Reading the changed hours back (what an export does) gives every event exactly once, the rewritten ones
  // with their new properties — through any node.
  for (ClickHouseEventStore* node : {reader.get(), a.get(), b.get()}) {
    std::map<std::string, std::string> by_key;
    size_t rows = 0;
    for (const store::PartitionInfo& p : *changed) {
      Status st = node->ScanPartitions(kProject, p.hour, p.hour + 1, [&](const EventView& v) {
        ++rows;
        by_key[Key(v.name, v.distinct_id, v.time_us, v.insert_id)] = std::string(v.properties);
        return true;
      });
      ASSERT_TRUE(st.ok()) << st.error().ToString();
    }
    EXPECT_EQ(rows, size_t{kEvents});
    ASSERT_EQ(by_key.size(), size_t{kEvents});
    for (int i = 0; i < kEvents; ++i) {
      const Event& e = events[i];
      const std::string want =
          fmt::format(R"({{"i":{},"v":"{}"}})", i, i % 7 == 0 ? "rewritten" : "original");
      EXPECT_EQ(by_key[Key(e.name, e.distinct_id, e.time_us, e.insert_id)], want) << i;
    }
  }
  EXPECT_GT(rewritten_users.size(), 50u);
}

}  // namespace
}  // namespace sluice::chstore

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new sluice::testing::ZooKeeperEnvironment());
  ::testing::AddGlobalTestEnvironment(
      new sluice::testing::ClickHouseClusterEnvironment(/*shards=*/2, /*replicas=*/2));
  return RUN_ALL_TESTS();
}
