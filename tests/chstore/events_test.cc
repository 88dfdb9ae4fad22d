// store::EventStore conformance, run over the embedded RocksStore and over chstore::ClickHouseEventStore on a
// loopback 1 shard × 2 replicas ClickHouse 18.16 cluster with ZooKeeper (and on one of its servers without a
// cluster, in another database); plus cluster-only cases: two Sluice "nodes" (two clients), a stopped
// replica, schema idempotence, an unreachable URL, the write deadline. One ZooKeeper and one cluster for the
// whole binary.
#include "chstore/events.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "clickhouse/url.h"
#include "support/child_process.h"
#include "support/clickhouse_cluster.h"
#include "support/clickhouse_environment.h"
#include "support/zookeeper_environment.h"

namespace sluice::chstore {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using store::EventStore;
using store::EventView;
using store::Hour;
using testing::ClickHouseCluster;

// 2023-11-14 22:00:00 UTC, an hour boundary.
constexpr int64_t kHourStartUs = 1'700'000'000'000'000 - (1'700'000'000'000'000 % 3'600'000'000);
const Hour kHour = store::HourOf(kHourStartUs);

// ---- one loopback cluster for the binary (testing::ClickHouseClusterEnvironment, 1 shard x 2 replicas) ----

using ClusterEnvironment = testing::ClickHouseClusterEnvironment;

std::shared_ptr<clickhouse::Client> MakeClient(const std::string& url, int max_attempts = 4) {
  clickhouse::ClientOptions o;
  auto parsed = clickhouse::ParseClickHouseUrl(url);
  EXPECT_TRUE(parsed.ok()) << url;
  o.url = *parsed;
  o.transport = http::MakeCurlTransport();
  o.max_attempts = max_attempts;
  o.total_timeout = milliseconds(60'000);
  return std::shared_ptr<clickhouse::Client>(clickhouse::Client::Create(std::move(o)).value().release());
}

std::string SingleServerUrl(const std::string& database) {
  return "clickhouse://127.0.0.1:" + std::to_string(ClusterEnvironment::cluster()->node(0).http_port) + "/" +
         database;
}

// Projects are never reused between tests (the ClickHouse databases live for the whole binary).
uint32_t NextProject() {
  static std::atomic<uint32_t> next{100};
  return next += 10;
}

// A fresh directory for a RocksStore, removed afterwards.
class TempDir {
 public:
  TempDir() : path_(testing::MakeTempDir("sluice_chstore_events_test_").value()) {}
  ~TempDir() { testing::RemoveTree(path_); }
  fs::path path() const { return path_; }

 private:
  std::string path_;
};

Event MakeEvent(std::string insert_id, int64_t time_us = kHourStartUs + 1'000'000,
                std::string name = "Played") {
  Event e;
  e.name = std::move(name);
  e.time_us = time_us;
  e.distinct_id = "user-1";
  e.insert_id = std::move(insert_id);
  e.properties = R"({"song":"x"})";
  return e;
}

std::vector<Event> ScanAll(EventStore& store, uint32_t project, Hour first, Hour end) {
  std::vector<Event> out;
  auto st = store.ScanPartitions(project, first, end, [&](const EventView& v) {
    Event e;
    e.name = std::string(v.name);
    e.time_us = v.time_us;
    e.distinct_id = std::string(v.distinct_id);
    e.device_id = std::string(v.device_id);
    e.user_id = std::string(v.user_id);
    e.insert_id = std::string(v.insert_id);
    e.properties = std::string(v.properties);
    out.push_back(std::move(e));
    return true;
  });
  EXPECT_TRUE(st.ok()) << st.error().ToString();
  return out;
}
std::vector<Event> Scan(EventStore& store, uint32_t project, Hour hour) {
  return ScanAll(store, project, hour, hour + 1);
}

// ---- the conformance suite ----

enum class Backend { kRocks, kClickHouseCluster, kClickHouseSingle };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  switch (info.param) {
    case Backend::kRocks:
      return "Rocks";
    case Backend::kClickHouseCluster:
      return "ClickHouseCluster";
    case Backend::kClickHouseSingle:
      return "ClickHouseOneServer";
  }
  return "?";
}

class EventStoreConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    project_ = NextProject();
    if (GetParam() == Backend::kRocks) {
      auto s = store::Store::Open(dir_.path());
      ASSERT_TRUE(s.ok()) << s.error().ToString();
      rocks_ = std::move(s).value();
      store_ = rocks_.get();
      return;
    }
    ASSERT_NE(ClusterEnvironment::cluster(), nullptr) << "the cluster did not start";
    EventStoreOptions o;
    o.clock = &clock_;
    auto client = GetParam() == Backend::kClickHouseCluster
                      ? MakeClient(ClusterEnvironment::cluster()->StoreUrl("ce_conf"))
                      : MakeClient(SingleServerUrl("ce_single"));
    auto s = ClickHouseEventStore::Open(client, o);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    ch_ = std::move(s).value();
    store_ = ch_.get();
  }
  /// Lets every write so far fall under the watermark: nothing for RocksStore (its watermark follows
  /// completed writes), the settle window of the fake clock for ClickHouse.
  void Settle() {
    if (ch_) clock_.Advance(ch_->settle_window() + std::chrono::seconds(1));
  }

  TempDir dir_;
  FakeClock clock_{std::chrono::system_clock::now()};
  std::unique_ptr<store::Store> rocks_;
  std::unique_ptr<ClickHouseEventStore> ch_;
  EventStore* store_ = nullptr;
  uint32_t project_ = 0;
};

TEST_P(EventStoreConformance, RoundTripsEveryFieldWithMillisecondsAndOddBytes) {
  Event e;
  e.name = "Tab\there 'quoted' \\ \"x\" ünï";
  e.time_us = kHourStartUs + 1'234'567'000 + 890;  // milliseconds and Sluice's microseconds
  e.distinct_id = "d'1\n";
  e.device_id = "dev\\1";
  e.user_id = "usér";
  e.insert_id = std::string("ins\0x", 5);
  e.properties = R"({"a":1.50,"s":"line\nbreak","n":null,"big":12345678901234567890})";
  const int64_t before_ms = std::chrono::duration_cast<milliseconds>(clock_.Now().time_since_epoch()).count();
  ASSERT_TRUE(store_->WriteEvents(project_, std::span<const Event>(&e, 1)).ok());
  std::vector<int64_t> ingested;
  ASSERT_TRUE(store_
                  ->ScanPartition(project_, kHour,
                                  [&](const EventView& v) {
                                    ingested.push_back(v.ingested_ms);
                                    return true;
                                  })
                  .ok());
  auto got = Scan(*store_, project_, kHour);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].name, e.name);
  EXPECT_EQ(got[0].time_us, e.time_us);
  EXPECT_EQ(got[0].distinct_id, e.distinct_id);
  EXPECT_EQ(got[0].device_id, e.device_id);
  EXPECT_EQ(got[0].user_id, e.user_id);
  EXPECT_EQ(got[0].insert_id, e.insert_id);
  EXPECT_EQ(got[0].properties, e.properties);
  ASSERT_EQ(ingested.size(), 1u);
  EXPECT_GE(ingested[0], before_ms);
  EXPECT_TRUE(Scan(*store_, project_ + 1, kHour).empty());  // per project
}

TEST_P(EventStoreConformance, SameKeyWithinTheSecondReplacesAndOtherKeysDoNot) {
  Event a = MakeEvent("a", kHourStartUs + 5'100'000);
  a.properties = R"({"v":1})";
  ASSERT_TRUE(store_->WriteEvents(project_, std::span<const Event>(&a, 1)).ok());
  Event rewrite = a;
  rewrite.time_us = kHourStartUs + 5'900'000;  // same second
  rewrite.properties = R"({"v":2})";
  ASSERT_TRUE(store_->WriteEvents(project_, std::span<const Event>(&rewrite, 1)).ok());
  // Within one call the later copy wins too.
  Event b1 = MakeEvent("b"), b2 = MakeEvent("b");
  b1.properties = R"({"v":"first"})";
  b2.properties = R"({"v":"second"})";
  std::vector<Event> both = {b1, b2};
  ASSERT_TRUE(store_->WriteEvents(project_, both).ok());
  // Each part of the key makes another event.
  Event other_second = a, other_name = a, other_id = a, other_user = a;
  other_second.time_us += 1'000'000;
  other_name.name = "Other";
  other_id.insert_id = "a2";
  other_user.distinct_id = "user-2";
  std::vector<Event> others = {other_second, other_name, other_id, other_user};
  ASSERT_TRUE(store_->WriteEvents(project_, others).ok());

  std::map<std::string, std::string> by_key;
  auto got = Scan(*store_, project_, kHour);
  for (const Event& e : got) {
    by_key[e.name + "|" + e.distinct_id + "|" + std::to_string(e.time_us / 1'000'000) + "|" + e.insert_id] =
        e.properties;
  }
  EXPECT_EQ(got.size(), 6u);
  EXPECT_EQ(by_key.size(), 6u);
  EXPECT_EQ(by_key["Played|user-1|" + std::to_string(a.time_us / 1'000'000) + "|a"], R"({"v":2})");
  EXPECT_EQ(by_key["Played|user-1|" + std::to_string(b1.time_us / 1'000'000) + "|b"], R"({"v":"second"})");
}

TEST_P(EventStoreConformance, RoutesByUtcHourAndScansHoursAscendingAndStops) {
  std::vector<Event> events;
  for (int h : {3, 0, 1, 3}) {
    for (int i = 0; i < 5; ++i) {
      events.push_back(
          MakeEvent("h" + std::to_string(h) + "-" + std::to_string(i) + "-" + std::to_string(events.size()),
                    kHourStartUs + h * 3'600'000'000LL + i * 1'000'000));
    }
  }
  ASSERT_TRUE(store_->WriteEvents(project_, events).ok());
  EXPECT_EQ(Scan(*store_, project_, kHour).size(), 5u);
  EXPECT_EQ(Scan(*store_, project_, kHour + 1).size(), 5u);
  EXPECT_TRUE(Scan(*store_, project_, kHour + 2).empty());
  EXPECT_EQ(Scan(*store_, project_, kHour + 3).size(), 10u);
  auto all = ScanAll(*store_, project_, kHour, kHour + 4);
  ASSERT_EQ(all.size(), 20u);
  for (size_t i = 1; i < all.size(); ++i) {
    EXPECT_LE(store::HourOf(all[i - 1].time_us), store::HourOf(all[i].time_us)) << i;
  }
  int seen = 0;
  ASSERT_TRUE(
      store_->ScanPartitions(project_, kHour, kHour + 4, [&](const EventView&) { return ++seen < 7; }).ok());
  EXPECT_EQ(seen, 7);
}

TEST_P(EventStoreConformance, ALargePartitionStreamsEveryEventOnce) {
  // Several MB: the answer arrives in many chunks, and rows are cut at chunk boundaries.
  std::vector<Event> events;
  for (int i = 0; i < 6000; ++i) {
    Event e = MakeEvent("big-" + std::to_string(i), kHourStartUs + int64_t{i} * 500'000);
    e.distinct_id = "user-" + std::to_string(i % 37);
    e.properties = R"({"pad":")" + std::string(200 + i % 700, 'a' + i % 26) + R"("})";
    events.push_back(std::move(e));
  }
  for (size_t at = 0; at < events.size(); at += 2000) {
    ASSERT_TRUE(store_->WriteEvents(project_, std::span<const Event>(events).subspan(at, 2000)).ok());
  }
  std::map<std::string, std::string> want, got;
  for (const Event& e : events) want[e.insert_id] = e.properties;
  size_t rows = 0;
  ASSERT_TRUE(store_
                  ->ScanPartition(project_, kHour,
                                  [&](const EventView& v) {
                                    ++rows;
                                    got[std::string(v.insert_id)] = std::string(v.properties);
                                    return true;
                                  })
                  .ok());
  EXPECT_EQ(rows, events.size());
  EXPECT_TRUE(got == want);
}

TEST_P(EventStoreConformance, ChangeTrackingListsChangedPartitionsAfterAWatermark) {
  const uint64_t s0 = store_->LastChangeSeq();
  IdentityLink link{"dev-only", "user-only"};
  ASSERT_TRUE(store_->WriteEvents(project_, {}, std::span<const IdentityLink>(&link, 1)).ok());
  auto none = store_->ListPartitions(project_, 0, kHour + 100);
  ASSERT_TRUE(none.ok()) << none.error().ToString();
  EXPECT_TRUE(none->empty());  // a links-only call changes no partition

  std::vector<Event> two = {MakeEvent("a", kHourStartUs), MakeEvent("b", kHourStartUs + 3'600'000'000)};
  ASSERT_TRUE(store_->WriteEvents(project_, two).ok());
  auto listed = store_->ListPartitions(project_, kHour, kHour + 1);
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].hour, kHour);
  EXPECT_EQ((*listed)[1].hour, kHour + 1);
  EXPECT_EQ((*listed)[0].project, project_);
  EXPECT_EQ((*listed)[0].writes, 1u);
  EXPECT_GT((*listed)[0].bytes, 0u);
  EXPECT_GT((*listed)[0].change_seq, s0);  // a write in flight when s0 was read is after s0
  EXPECT_EQ(store_->ListPartitions(project_, kHour + 1, kHour + 1)->size(), 1u);

  Settle();
  const uint64_t s1 = store_->LastChangeSeq();
  EXPECT_GE(s1, (*listed)[0].change_seq);  // once finished and settled, a write is under the watermark
  EXPECT_GE(s1, (*listed)[1].change_seq);
  auto nothing = store_->ChangedPartitions(project_, s1);
  ASSERT_TRUE(nothing.ok());
  EXPECT_TRUE(nothing->empty());

  // A late event into the first hour, and a write to another project.
  Event late = MakeEvent("late", kHourStartUs + 10);
  ASSERT_TRUE(store_->WriteEvents(project_, std::span<const Event>(&late, 1)).ok());
  ASSERT_TRUE(store_->WriteEvents(project_ + 1, two).ok());
  auto changed = store_->ChangedPartitions(project_, s1);
  ASSERT_TRUE(changed.ok());
  ASSERT_EQ(changed->size(), 1u);
  EXPECT_EQ((*changed)[0].hour, kHour);
  EXPECT_EQ((*changed)[0].writes, 2u);
  EXPECT_GT((*changed)[0].change_seq, s1);
  auto since_start = store_->ChangedPartitions(project_, s0);
  ASSERT_TRUE(since_start.ok());
  ASSERT_EQ(since_start->size(), 2u);
  EXPECT_EQ((*since_start)[0].hour, kHour);
  EXPECT_EQ((*since_start)[1].hour, kHour + 1);
  Settle();
  const uint64_t s2 = store_->LastChangeSeq();
  EXPECT_GE(s2, s1);
  EXPECT_TRUE(store_->ChangedPartitions(project_, s2)->empty());
}

TEST_P(EventStoreConformance, IdentityFirstLinkWinsAndTenantValuesAreNotSql) {
  std::vector<IdentityLink> first = {{"dev-1", "alice"}, {"dev-1", "mallory"}, {"dev-2", "bob"}};
  Event e = MakeEvent("a");
  ASSERT_TRUE(store_->WriteEvents(project_, std::span<const Event>(&e, 1), first).ok());
  std::vector<IdentityLink> later = {{"dev-1", "carol"}, {"dev-3", "dave"}, {"x' OR '1'='1", "eve\\'"}};
  ASSERT_TRUE(store_->WriteEvents(project_, {}, later).ok());
  auto r1 = store_->ResolveDevice(project_, "dev-1");
  ASSERT_TRUE(r1.ok()) << r1.error().ToString();
  EXPECT_EQ(r1->value_or(""), "alice");
  EXPECT_EQ(store_->ResolveDevice(project_, "dev-2")->value_or(""), "bob");
  EXPECT_EQ(store_->ResolveDevice(project_, "dev-3")->value_or(""), "dave");
  EXPECT_FALSE(store_->ResolveDevice(project_, "dev-4")->has_value());
  EXPECT_FALSE(store_->ResolveDevice(project_ + 1, "dev-1")->has_value());  // per project
  // A device id crafted as SQL is a value, nothing more.
  EXPECT_EQ(store_->ResolveDevice(project_, "x' OR '1'='1")->value_or(""), "eve\\'");
  EXPECT_FALSE(store_->ResolveDevice(project_, "nope' OR '1'='1")->has_value());
  EXPECT_FALSE(store_->ResolveDevice(project_, "\\")->has_value());
  std::map<std::string, std::string> scanned;
  ASSERT_TRUE(store_
                  ->ScanIdentity(project_,
                                 [&](std::string_view d, std::string_view u) {
                                   scanned.emplace(d, u);
                                   return true;
                                 })
                  .ok());
  EXPECT_EQ(scanned,
            (std::map<std::string, std::string>{
                {"dev-1", "alice"}, {"dev-2", "bob"}, {"dev-3", "dave"}, {"x' OR '1'='1", "eve\\'"}}));
}

TEST_P(EventStoreConformance, RejectsEventsBeforeTheEpoch) {
  Event e = MakeEvent("neg", -1'000'000);
  auto st = store_->WriteEvents(project_, std::span<const Event>(&e, 1));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(st.error().message.find("before the Unix epoch"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Backends, EventStoreConformance,
                         ::testing::Values(Backend::kRocks, Backend::kClickHouseCluster,
                                           Backend::kClickHouseSingle),
                         BackendName);

// ---- cluster-only cases ----

class ClickHouseEventsCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(ClusterEnvironment::cluster(), nullptr) << "the cluster did not start";
    project_ = NextProject();
  }
  static std::unique_ptr<ClickHouseEventStore> OpenNode(const std::string& url, int max_attempts = 4,
                                                        EventStoreOptions o = {}) {
    auto s = ClickHouseEventStore::Open(MakeClient(url, max_attempts), o);
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  static std::vector<Event> Batch(int first, int count) {
    std::vector<Event> out;
    for (int i = first; i < first + count; ++i) {
      Event e = MakeEvent("n-" + std::to_string(i), kHourStartUs + int64_t{i} * 1'000'123);
      e.distinct_id = "user-" + std::to_string(i % 31);
      out.push_back(std::move(e));
    }
    return out;
  }
  uint32_t project_ = 0;
};

TEST_F(ClickHouseEventsCluster, TheSameBatchThroughTwoNodesIsStoredOnceAndTheFirstLinkWinsAcrossNodes) {
  ClickHouseCluster& c = *ClusterEnvironment::cluster();
  auto a = OpenNode(c.StoreUrlOf({0, 1}, "ce_nodes"));
  auto b = OpenNode(c.StoreUrlOf({1, 0}, "ce_nodes"));
  ASSERT_TRUE(a && b);
  auto batch = Batch(0, 500);
  ASSERT_TRUE(a->WriteEvents(project_, batch).ok());
  ASSERT_TRUE(b->WriteEvents(project_, batch).ok());  // an SDK retry that went to another node
  auto hours = store::HourOf(batch.back().time_us) + 1 - kHour;
  EXPECT_EQ(ScanAll(*a, project_, kHour, kHour + hours).size(), 500u);
  EXPECT_EQ(ScanAll(*b, project_, kHour, kHour + hours).size(), 500u);

  // Both nodes race to link the same devices to different users: each device gets one user, the same on
  // both nodes, and it stays that way.
  constexpr int kDevices = 50;
  std::barrier start(2);
  auto link_all = [&](ClickHouseEventStore* node, std::string user) {
    start.arrive_and_wait();
    for (int d = 0; d < kDevices; ++d) {
      IdentityLink l{"race-" + std::to_string(d), user};
      Status st = node->WriteEvents(project_, {}, std::span<const IdentityLink>(&l, 1));
      EXPECT_TRUE(st.ok()) << st.error().ToString();
    }
  };
  std::thread ta(link_all, a.get(), "user-a");
  std::thread tb(link_all, b.get(), "user-b");
  ta.join();
  tb.join();
  std::map<std::string, std::string> seen_a, seen_b;
  ASSERT_TRUE(a->ScanIdentity(project_, [&](auto d, auto u) { return seen_a.emplace(d, u), true; }).ok());
  ASSERT_TRUE(b->ScanIdentity(project_, [&](auto d, auto u) { return seen_b.emplace(d, u), true; }).ok());
  EXPECT_EQ(seen_a.size(), size_t{kDevices});
  EXPECT_EQ(seen_a, seen_b);
  // A later link from a third node (no cache) does not change the winner, also after a merge.
  auto c3 = OpenNode(c.StoreUrl("ce_nodes"));
  std::vector<IdentityLink> late;
  for (int d = 0; d < kDevices; ++d) late.push_back({"race-" + std::to_string(d), "user-late"});
  ASSERT_TRUE(c3->WriteEvents(project_, {}, late).ok());
  // Merges keep the first link too (ReplacingMergeTree on the inverted version). 18.16 fails OPTIMIZE on a
  // replicated table with "Unknown log entry type", so this is shown on the one-server database.
  auto one = OpenNode(SingleServerUrl("ce_single"));
  auto other = OpenNode(SingleServerUrl("ce_single"));
  ASSERT_TRUE(one && other);
  IdentityLink first{"merge-dev", "first"}, second{"merge-dev", "second"};
  ASSERT_TRUE(one->WriteEvents(project_, {}, std::span<const IdentityLink>(&first, 1)).ok());
  ASSERT_TRUE(other->WriteEvents(project_, {}, std::span<const IdentityLink>(&second, 1)).ok());
  auto admin = MakeClient(SingleServerUrl("ce_single"));
  ASSERT_TRUE(admin->Execute("OPTIMIZE TABLE ce_single.identity FINAL").ok());
  auto raw = admin->Query(fmt::format(
      "SELECT user_id FROM ce_single.identity WHERE project_id = {} AND device_id = 'merge-dev' FORMAT TSV",
      project_));
  ASSERT_TRUE(raw.ok()) << raw.error().ToString();
  EXPECT_EQ(*raw, "first\n");
  std::map<std::string, std::string> after;
  ASSERT_TRUE(c3->ScanIdentity(project_, [&](auto d, auto u) { return after.emplace(d, u), true; }).ok());
  EXPECT_EQ(after, seen_a);
}

TEST_F(ClickHouseEventsCluster, AStoppedReplicaFailsWritesClearlyAndAcknowledgedEventsAreAllThere) {
  ClickHouseCluster& c = *ClusterEnvironment::cluster();
  auto node = OpenNode(c.StoreUrl("ce_quorum"), /*max_attempts=*/2);
  ASSERT_TRUE(node);
  EXPECT_EQ(node->schema().replicas_per_shard, 2);
  std::set<std::string> acknowledged;
  auto write = [&](int first) {
    auto batch = Batch(first, 200);
    Status st = node->WriteEvents(project_, batch);
    if (st.ok()) {
      for (const Event& e : batch) acknowledged.insert(e.insert_id);
    }
    return st;
  };
  ASSERT_TRUE(write(0).ok());
  c.StopNode(1);
  Status down = write(200);
  ASSERT_FALSE(down.ok()) << "a write acknowledged while the quorum could not be met";
  EXPECT_TRUE(IsRetryable(down.error().code)) << down.error().ToString();
  EXPECT_NE(down.error().message.find("2 of 2 replicas"), std::string::npos) << down.error().ToString();
  EXPECT_NE(down.error().message.find("retry the batch"), std::string::npos) << down.error().ToString();
  ASSERT_TRUE(c.StartNode(1).ok());
  // Bounded: the restarted replica re-registers in ZooKeeper, then quorum inserts succeed again.
  Status again = Error(ErrorCode::kTransient, "not tried");
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       std::chrono::steady_clock::now() < deadline;) {
    again = write(200);  // the SDK's retry of the refused batch
    if (again.ok() || !IsRetryable(again.error().code)) break;
    std::this_thread::sleep_for(milliseconds(500));
  }
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  ASSERT_TRUE(write(400).ok());
  std::set<std::string> stored;
  size_t rows = 0;
  for (const Event& e : ScanAll(*node, project_, kHour, kHour + 2)) {
    stored.insert(e.insert_id);
    ++rows;
  }
  EXPECT_EQ(rows, stored.size());  // no duplicates
  EXPECT_EQ(stored, acknowledged);
  EXPECT_EQ(acknowledged.size(), 600u);
}

TEST_F(ClickHouseEventsCluster, OpeningTwiceIsIdempotentAndCreatesReplicatedTables) {
  ClickHouseCluster& c = *ClusterEnvironment::cluster();
  auto first = OpenNode(c.StoreUrl("ce_twice"));
  auto second = OpenNode(c.StoreUrl("ce_twice"));
  ASSERT_TRUE(first && second);
  auto client = MakeClient(c.StoreUrl("ce_twice"));
  for (size_t host = 0; host < 2; ++host) {
    clickhouse::RequestOptions o;
    o.only_host = host;
    auto engines = client->Query(
        "SELECT name, engine FROM system.tables WHERE database = 'ce_twice' ORDER BY name FORMAT TSV", o);
    ASSERT_TRUE(engines.ok()) << engines.error().ToString();
    EXPECT_EQ(*engines,
              "events\tDistributed\n"
              "events_changes\tDistributed\n"
              "events_changes_local\tReplicatedMergeTree\n"
              "events_local\tReplicatedReplacingMergeTree\n"
              "identity\tDistributed\n"
              "identity_local\tReplicatedReplacingMergeTree\n");
  }
  // An older database (events table only, as the first scale-out version made it) is migrated.
  auto legacy = MakeClient(SingleServerUrl("ce_legacy"));
  clickhouse::EventsSchema old{"ce_legacy", "", 1};
  for (const std::string& sql : old.Statements()) ASSERT_TRUE(legacy->Execute(sql).ok());
  auto migrated = ClickHouseEventStore::Open(legacy, {});
  ASSERT_TRUE(migrated.ok()) << migrated.error().ToString();
  Event e = MakeEvent("m");
  ASSERT_TRUE((*migrated)->WriteEvents(project_, std::span<const Event>(&e, 1)).ok());
  EXPECT_EQ((*migrated)->ListPartitions(project_, kHour, kHour)->size(), 1u);
}

TEST_F(ClickHouseEventsCluster, AnUnreachableUrlGivesAClearError) {
  auto ports = testing::FindFreeLoopbackPorts(1);
  ASSERT_TRUE(ports.ok());
  const std::string url = "clickhouse://127.0.0.1:" + std::to_string((*ports)[0]) + "/ce_nowhere";
  auto s = ClickHouseEventStore::Open(MakeClient(url, 1), {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("127.0.0.1:" + std::to_string((*ports)[0])), std::string::npos)
      << s.error().ToString();
  EXPECT_NE(s.error().message.find("not answering"), std::string::npos) << s.error().ToString();
}

// A clock that jumps 10 s at every reading: every write outlives a 5 s deadline.
class JumpingClock final : public Clock {
 public:
  TimePoint Now() const override {
    return TimePoint(std::chrono::microseconds(1'700'000'000'000'000 + 10'000'000 * calls_.fetch_add(1)));
  }

 private:
  mutable std::atomic<int64_t> calls_{0};
};

TEST_F(ClickHouseEventsCluster, AWriteThatOutlivesItsDeadlineIsNotAcknowledged) {
  JumpingClock clock;
  EventStoreOptions o;
  o.clock = &clock;
  o.write_deadline = milliseconds(5000);
  auto s = ClickHouseEventStore::Open(MakeClient(SingleServerUrl("ce_single")), o);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  Event e = MakeEvent("slow");
  auto st = (*s)->WriteEvents(project_, std::span<const Event>(&e, 1));
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(IsRetryable(st.error().code)) << st.error().ToString();
}

}  // namespace
}  // namespace sluice::chstore

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new sluice::testing::ZooKeeperEnvironment());
  ::testing::AddGlobalTestEnvironment(new sluice::testing::ClickHouseClusterEnvironment());
  return RUN_ALL_TESTS();
}
