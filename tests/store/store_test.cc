#include "store/store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"

namespace sluice::store {
namespace {

namespace fs = std::filesystem;

// 2023-11-14 22:00:00 UTC, an hour boundary.
constexpr int64_t kHourStartUs = 1'700'000'000'000'000 - (1'700'000'000'000'000 % 3'600'000'000);
const Hour kHour = HourOf(kHourStartUs);

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("sluice_store_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()) + "_" +
             std::to_string(counter_++));
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  static inline std::atomic<int> counter_{0};
  fs::path path_;
};

Event MakeEvent(std::string insert_id, int64_t time_us = kHourStartUs + 1'000'000, std::string name = "Played") {
  Event e;
  e.name = std::move(name);
  e.time_us = time_us;
  e.distinct_id = "user-1";
  e.insert_id = std::move(insert_id);
  e.properties = R"({"song":"x"})";
  return e;
}

std::unique_ptr<Store> OpenOrDie(const fs::path& dir, StoreOptions options = {}) {
  auto store = Store::Open(dir, options);
  if (!store.ok()) {
    ADD_FAILURE() << store.error().ToString();
    return nullptr;
  }
  return std::move(store).value();
}

std::vector<Event> Scan(Store& store, uint32_t project, Hour hour) {
  std::vector<Event> out;
  auto st = store.ScanPartition(project, hour, [&](const EventView& v) {
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

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenOrDie(dir_.path());
    ASSERT_NE(store_, nullptr);
  }
  void Reopen() {
    ASSERT_TRUE(store_->Close().ok());
    store_.reset();
    store_ = OpenOrDie(dir_.path());
    ASSERT_NE(store_, nullptr);
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, CreatesDataDirPrivate) {
  struct stat st {};
  ASSERT_EQ(::stat(dir_.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(StoreTest, RoundTripsEveryEventFieldLosslessly) {
  FakeClock clock(TimePoint(std::chrono::milliseconds(1'700'000'555'123)));
  StoreOptions options;
  options.clock = &clock;
  ASSERT_TRUE(store_->Close().ok());
  store_ = OpenOrDie(dir_.path(), options);
  ASSERT_NE(store_, nullptr);

  Event e;
  e.name = "Ünïcode \"quoted\" event";
  e.time_us = kHourStartUs + 1'234'567;  // microsecond precision kept
  e.distinct_id = "$device:abc";
  e.device_id = "abc";
  e.user_id = "";
  e.insert_id = "0123456789abcdef0123456789abcdef-xyz";
  e.properties = R"({"n":12345678901234567890.000001,"s":"a\u0000b","nested":{"a":[1,2,{"b":null}]}})" +
                 std::string(5000, ' ');
  ASSERT_TRUE(store_->WriteEvents(7, std::span<const Event>(&e, 1)).ok());
  Reopen();  // through disk, not only the memtable
  int seen = 0;
  ASSERT_TRUE(store_
                  ->ScanPartition(7, HourOf(e.time_us),
                                  [&](const EventView& v) {
                                    ++seen;
                                    EXPECT_EQ(v.name, e.name);
                                    EXPECT_EQ(v.time_us, e.time_us);
                                    EXPECT_EQ(v.distinct_id, e.distinct_id);
                                    EXPECT_EQ(v.device_id, e.device_id);
                                    EXPECT_EQ(v.user_id, e.user_id);
                                    EXPECT_EQ(v.insert_id, e.insert_id);
                                    EXPECT_EQ(v.properties, e.properties);
                                    EXPECT_EQ(v.ingested_ms, 1'700'000'555'123);
                                    return true;
                                  })
                  .ok());
  EXPECT_EQ(seen, 1);
}

// An event batch (what /import fills while it parses) writes exactly what WriteEvents writes for the same
// events and links, in another store: fields, partitions' counters, identity links.
TEST_F(StoreTest, AnEventBatchWritesWhatWriteEventsWritesForTheSameEvents) {
  std::vector<Event> events;
  for (int i = 0; i < 50; ++i) {
    Event e = MakeEvent("id-" + std::to_string(i), kHourStartUs + (i % 2 == 0 ? 1 : 3'600) * 1'000'000LL + i);
    e.device_id = "dev-" + std::to_string(i % 7);
    e.user_id = i % 3 == 0 ? "user-" + std::to_string(i % 5) : "";
    e.properties = R"({"i":)" + std::to_string(i) + R"(,"s":")" + std::string(i * 10, 'x') + R"("})";
    events.push_back(std::move(e));
  }
  events.push_back(events[4]);  // a duplicate in the same call: the later copy wins in both
  events.back().properties = R"({"dup":true})";
  const std::vector<IdentityLink> links = {{"dev-1", "alice"}, {"dev-2", "bob"}, {"dev-1", "mallory"}};

  TempDir other_dir;
  auto other = OpenOrDie(other_dir.path());
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(store_->WriteEvents(3, events, links).ok());
  auto batch = other->NewEventBatch(3, 4096);
  for (const Event& e : events) {
    Event without = e;
    without.properties.clear();  // the batch takes the properties separately, as the parser hands them over
    batch->Add(without, e.properties);
  }
  EXPECT_EQ(batch->size(), events.size());
  ASSERT_TRUE(other->WriteEventBatch(*batch, links).ok());

  for (Hour hour : {kHour, kHour + 1}) {
    auto a = Scan(*store_, 3, hour);
    auto b = Scan(*other, 3, hour);
    ASSERT_EQ(a.size(), b.size());
    ASSERT_FALSE(a.empty());
    std::map<std::string, std::string> by_id_b;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].name, b[i].name);
      EXPECT_EQ(a[i].time_us, b[i].time_us);
      EXPECT_EQ(a[i].distinct_id, b[i].distinct_id);
      EXPECT_EQ(a[i].device_id, b[i].device_id);
      EXPECT_EQ(a[i].user_id, b[i].user_id);
      EXPECT_EQ(a[i].insert_id, b[i].insert_id);
      EXPECT_EQ(a[i].properties, b[i].properties);
      by_id_b[b[i].insert_id] = b[i].properties;
    }
    if (hour == kHour) {
      EXPECT_EQ(by_id_b["id-4"], R"({"dup":true})");
    }
  }
  auto pa = store_->ListPartitions(3, kHour, kHour + 1);
  auto pb = other->ListPartitions(3, kHour, kHour + 1);
  ASSERT_TRUE(pa.ok() && pb.ok());
  ASSERT_EQ(pa->size(), 2u);
  ASSERT_EQ(pb->size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ((*pa)[i].hour, (*pb)[i].hour);
    EXPECT_EQ((*pa)[i].writes, (*pb)[i].writes);
    EXPECT_EQ((*pa)[i].bytes, (*pb)[i].bytes);
  }
  EXPECT_EQ(other->ResolveDevice(3, "dev-1")->value_or(""), "alice");
  EXPECT_EQ(other->ResolveDevice(3, "dev-2")->value_or(""), "bob");
  ASSERT_TRUE(other->Close().ok());
}

// A batch is all or nothing: one event before the epoch refuses the whole batch (as WriteEvents refuses the
// whole call), and a batch dropped without WriteEventBatch (a request that failed to parse) writes nothing.
TEST_F(StoreTest, AnEventBatchIsAllOrNothing) {
  {
    auto dropped = store_->NewEventBatch(1, 0);
    Event e = MakeEvent("dropped");
    dropped->Add(e, e.properties);
  }
  auto batch = store_->NewEventBatch(1, 0);
  Event good = MakeEvent("good");
  Event bad = MakeEvent("bad", -1'000'000);
  batch->Add(good, good.properties);
  batch->Add(bad, bad.properties);
  Status s = store_->WriteEventBatch(*batch);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message.find("before the Unix epoch"), std::string::npos) << s.error().message;
  batch.reset();
  Reopen();  // nothing reached the journal either
  EXPECT_TRUE(Scan(*store_, 1, kHour).empty());
  auto parts = store_->ListPartitions(1, 0, kHour + 24);
  ASSERT_TRUE(parts.ok());
  EXPECT_TRUE(parts->empty());

  // A batch made by one store cannot be written through another.
  TempDir other_dir;
  auto other = OpenOrDie(other_dir.path());
  ASSERT_NE(other, nullptr);
  auto foreign = other->NewEventBatch(1, 0);
  foreign->Add(good, good.properties);
  Status wrong = store_->WriteEventBatch(*foreign);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, ErrorCode::kInternal);
  foreign.reset();
  ASSERT_TRUE(other->Close().ok());
}

// A batch does not hold the store open: Close() does not wait for one still being filled, and the batch is
// then refused with a message naming the closed store instead of touching the closed database.
TEST_F(StoreTest, AnEventBatchAliveAtCloseIsRefusedAndDoesNotHoldCloseUp) {
  auto batch = store_->NewEventBatch(1, 0);
  Event e = MakeEvent("before-close");
  batch->Add(e, e.properties);
  ASSERT_TRUE(store_->Close().ok());
  Event later = MakeEvent("after-close");
  batch->Add(later, later.properties);  // only the batch's own memory
  Status s = store_->WriteEventBatch(*batch);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("closed"), std::string::npos) << s.error().message;
  batch.reset();
  store_ = OpenOrDie(dir_.path());
  ASSERT_NE(store_, nullptr);
  EXPECT_TRUE(Scan(*store_, 1, kHour).empty());
}

TEST_F(StoreTest, SameKeyWithinTheSecondReplacesEarlierCopy) {
  Event first = MakeEvent("id-1", kHourStartUs + 5'100'000);
  first.properties = R"({"v":1})";
  Event second = MakeEvent("id-1", kHourStartUs + 5'900'000);  // same second, other milliseconds
  second.properties = R"({"v":2})";
  ASSERT_TRUE(store_->WriteEvents(1, std::span<const Event>(&first, 1)).ok());
  ASSERT_TRUE(store_->WriteEvents(1, std::span<const Event>(&second, 1)).ok());
  auto events = Scan(*store_, 1, kHour);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].properties, R"({"v":2})");
  EXPECT_EQ(events[0].time_us, second.time_us);  // latest ingested copy wins, whole
  auto parts = store_->ListPartitions(1, kHour, kHour);
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].writes, 2u);  // replacements count as writes
}

TEST_F(StoreTest, DifferentInsertIdNameDistinctIdOrSecondAreDifferentEvents) {
  std::vector<Event> events = {MakeEvent("id-1"), MakeEvent("id-2"), MakeEvent("id-1", kHourStartUs + 2'000'000),
                               MakeEvent("id-1", kHourStartUs + 1'000'000, "Other")};
  events.push_back(MakeEvent("id-1"));
  events.back().distinct_id = "user-2";
  ASSERT_TRUE(store_->WriteEvents(1, events).ok());
  EXPECT_EQ(Scan(*store_, 1, kHour).size(), 5u);
  // Duplicates inside one call collapse too; the last one in the call wins.
  std::vector<Event> dup = {MakeEvent("d"), MakeEvent("d")};
  dup[1].properties = R"({"last":true})";
  ASSERT_TRUE(store_->WriteEvents(2, dup).ok());
  auto stored = Scan(*store_, 2, kHour);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].properties, R"({"last":true})");
}

TEST_F(StoreTest, RoutesEventsByUtcHour) {
  std::vector<Event> events = {MakeEvent("a", kHourStartUs - 1),              // previous hour, last µs
                               MakeEvent("b", kHourStartUs),                  // this hour, first µs
                               MakeEvent("c", kHourStartUs + 3'599'999'999),  // this hour, last µs
                               MakeEvent("d", kHourStartUs + 3'600'000'000)};
  ASSERT_TRUE(store_->WriteEvents(3, events).ok());
  auto ids = [&](Hour h) {
    std::set<std::string> out;
    for (const auto& e : Scan(*store_, 3, h)) out.insert(e.insert_id);
    return out;
  };
  EXPECT_EQ(ids(kHour - 1), std::set<std::string>{"a"});
  EXPECT_EQ(ids(kHour), (std::set<std::string>{"b", "c"}));
  EXPECT_EQ(ids(kHour + 1), std::set<std::string>{"d"});
  EXPECT_TRUE(Scan(*store_, 4, kHour).empty());  // other project
  EXPECT_TRUE(Scan(*store_, 3, kHour + 2).empty());

  auto parts = store_->ListPartitions(3, kHour - 1, kHour + 1);
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->size(), 3u);
  EXPECT_EQ((*parts)[0].hour, kHour - 1);
  EXPECT_EQ((*parts)[1].hour, kHour);
  EXPECT_EQ((*parts)[1].writes, 2u);
  EXPECT_GT((*parts)[1].bytes, 2 * 24u);
  EXPECT_EQ((*parts)[2].hour, kHour + 1);
  EXPECT_EQ((*parts)[0].project, 3u);
  auto middle = store_->ListPartitions(3, kHour, kHour);
  ASSERT_TRUE(middle.ok());
  ASSERT_EQ(middle->size(), 1u);
  auto none = store_->ListPartitions(3, kHour + 1, kHour);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(StoreTest, ScanStopsWhenCallbackReturnsFalse) {
  std::vector<Event> events;
  for (int i = 0; i < 100; ++i) events.push_back(MakeEvent("id-" + std::to_string(i)));
  ASSERT_TRUE(store_->WriteEvents(1, events).ok());
  int calls = 0;
  ASSERT_TRUE(store_->ScanPartition(1, kHour, [&](const EventView&) { return ++calls < 10; }).ok());
  EXPECT_EQ(calls, 10);
}

TEST_F(StoreTest, ScanSeesASnapshot) {
  std::vector<Event> events;
  for (int i = 0; i < 50; ++i) events.push_back(MakeEvent("id-" + std::to_string(i)));
  ASSERT_TRUE(store_->WriteEvents(1, events).ok());
  int calls = 0;
  ASSERT_TRUE(store_
                  ->ScanPartition(1, kHour,
                                  [&](const EventView&) {
                                    if (calls++ == 0) {
                                      std::vector<Event> more;
                                      for (int i = 0; i < 50; ++i) more.push_back(MakeEvent("new-" + std::to_string(i)));
                                      EXPECT_TRUE(store_->WriteEvents(1, more).ok());
                                    }
                                    return true;
                                  })
                  .ok());
  EXPECT_EQ(calls, 50);
  EXPECT_EQ(Scan(*store_, 1, kHour).size(), 100u);
}

TEST_F(StoreTest, ScanPartitionsReadsTheRangeHourByHour) {
  std::vector<Event> events;
  // Project 1: one event before the range, 3/2/1 events in its three hours, one at its end hour.
  events.push_back(MakeEvent("before", kHourStartUs - 1'000'000));
  for (int h = 0; h < 3; ++h) {
    for (int i = 0; i < 3 - h; ++i) {
      events.push_back(MakeEvent("h" + std::to_string(h) + "-" + std::to_string(i),
                                 kHourStartUs + h * 3'600'000'000LL + i * 1'000'000));
    }
  }
  events.push_back(MakeEvent("end", kHourStartUs + 3 * 3'600'000'000LL));
  ASSERT_TRUE(store_->WriteEvents(1, events).ok());
  Event other = MakeEvent("other-project");
  ASSERT_TRUE(store_->WriteEvents(2, std::span<const Event>(&other, 1)).ok());

  std::vector<std::string> seen;
  ASSERT_TRUE(store_
                  ->ScanPartitions(1, kHour, kHour + 3,
                                   [&](const EventView& v) {
                                     seen.emplace_back(v.insert_id);
                                     return true;
                                   })
                  .ok());
  ASSERT_EQ(seen.size(), 6u);
  // Hour by hour: the ids of hour 0 first, then hour 1, then hour 2.
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].substr(0, 2), i < 3 ? "h0" : i < 5 ? "h1" : "h2") << i;
  }

  int calls = 0;
  ASSERT_TRUE(
      store_->ScanPartitions(1, kHour, kHour + 3, [&](const EventView&) { return ++calls < 4; }).ok());
  EXPECT_EQ(calls, 4);
  calls = 0;
  ASSERT_TRUE(
      store_->ScanPartitions(1, kHour + 3, kHour + 3, [&](const EventView&) { return ++calls > 0; }).ok());
  EXPECT_EQ(calls, 0);
}

TEST_F(StoreTest, ChangeSeqIsMonotonicAcrossReopen) {
  EXPECT_EQ(store_->LastChangeSeq(), 0u);
  Event e = MakeEvent("a");
  ASSERT_TRUE(store_->WriteEvents(1, std::span<const Event>(&e, 1)).ok());
  ASSERT_TRUE(store_->WriteEvents(1, std::span<const Event>(&e, 1)).ok());
  const uint64_t before = store_->LastChangeSeq();
  EXPECT_EQ(before, 2u);
  Reopen();
  EXPECT_EQ(store_->LastChangeSeq(), before);
  ASSERT_TRUE(store_->WriteEvents(2, std::span<const Event>(&e, 1)).ok());
  EXPECT_EQ(store_->LastChangeSeq(), before + 1);
  auto parts = store_->ListPartitions(2, kHour, kHour);
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].change_seq, before + 1);
  // Reopen twice in a row (the counter record itself was flushed, then only replayed from the WAL).
  Reopen();
  Reopen();
  EXPECT_EQ(store_->LastChangeSeq(), before + 1);
}

TEST_F(StoreTest, LinksOnlyCallsDoNotIssueChangeSeq) {
  IdentityLink link{"dev", "user"};
  ASSERT_TRUE(store_->WriteEvents(1, {}, std::span<const IdentityLink>(&link, 1)).ok());
  EXPECT_EQ(store_->LastChangeSeq(), 0u);
}

TEST_F(StoreTest, ChangedPartitionsReturnsPartitionsWrittenAfterSeq) {
  std::vector<Event> both = {MakeEvent("a", kHourStartUs), MakeEvent("b", kHourStartUs + 3'600'000'000)};
  ASSERT_TRUE(store_->WriteEvents(1, both).ok());
  const uint64_t s1 = store_->LastChangeSeq();
  Event late = MakeEvent("c", kHourStartUs + 10);
  ASSERT_TRUE(store_->WriteEvents(1, std::span<const Event>(&late, 1)).ok());
  const uint64_t s2 = store_->LastChangeSeq();
  ASSERT_TRUE(store_->WriteEvents(9, both).ok());  // another project

  auto all = store_->ChangedPartitions(1, 0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].hour, kHour);
  EXPECT_EQ((*all)[0].change_seq, s2);
  EXPECT_EQ((*all)[0].writes, 2u);
  EXPECT_EQ((*all)[1].hour, kHour + 1);
  EXPECT_EQ((*all)[1].change_seq, s1);

  auto since = store_->ChangedPartitions(1, s1);
  ASSERT_TRUE(since.ok());
  ASSERT_EQ(since->size(), 1u);
  EXPECT_EQ((*since)[0].hour, kHour);
  auto nothing = store_->ChangedPartitions(1, s2);
  ASSERT_TRUE(nothing.ok());
  EXPECT_TRUE(nothing->empty());
  Reopen();  // counters merged from SST files give the same answer
  auto again = store_->ChangedPartitions(1, s1);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].writes, 2u);
  EXPECT_EQ((*again)[0].change_seq, s2);
}

TEST_F(StoreTest, ConcurrentWritersGetDistinctSeqsAndWatermarkCatchesUp) {
  constexpr int kThreads = 4;
  constexpr int kCalls = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        Event e = MakeEvent("t" + std::to_string(t) + "-" + std::to_string(i));
        ASSERT_TRUE(store_->WriteEvents(1, std::span<const Event>(&e, 1)).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store_->LastChangeSeq(), uint64_t{kThreads * kCalls});
  auto parts = store_->ListPartitions(1, kHour, kHour);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ((*parts)[0].writes, uint64_t{kThreads * kCalls});
  EXPECT_EQ((*parts)[0].change_seq, uint64_t{kThreads * kCalls});
}

TEST_F(StoreTest, IdentityFirstLinkWins) {
  std::vector<IdentityLink> first = {{"dev-1", "alice"}, {"dev-1", "mallory"}, {"dev-2", "bob"}};
  Event e = MakeEvent("a");
  ASSERT_TRUE(store_->WriteEvents(1, std::span<const Event>(&e, 1), first).ok());
  std::vector<IdentityLink> later = {{"dev-1", "carol"}, {"dev-3", "dave"}};
  ASSERT_TRUE(store_->WriteEvents(1, {}, later).ok());
  auto r1 = store_->ResolveDevice(1, "dev-1");
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->value_or(""), "alice");
  EXPECT_EQ(store_->ResolveDevice(1, "dev-2")->value_or(""), "bob");
  EXPECT_EQ(store_->ResolveDevice(1, "dev-3")->value_or(""), "dave");
  EXPECT_FALSE(store_->ResolveDevice(1, "dev-4")->has_value());
  EXPECT_FALSE(store_->ResolveDevice(2, "dev-1")->has_value());  // per project
  Reopen();
  std::map<std::string, std::string> scanned;
  ASSERT_TRUE(store_
                  ->ScanIdentity(1,
                                 [&](std::string_view d, std::string_view u) {
                                   scanned.emplace(d, u);
                                   return true;
                                 })
                  .ok());
  EXPECT_EQ(scanned, (std::map<std::string, std::string>{{"dev-1", "alice"}, {"dev-2", "bob"}, {"dev-3", "dave"}}));
}

TEST_F(StoreTest, IdentityFirstWinsUnderConcurrentWriters) {
  constexpr int kThreads = 8;
  constexpr int kDevices = 200;
  std::barrier start(kThreads);
  // Each thread reports which links it believes it won; exactly one winner per device must be stored and the
  // stored user must be one of the claimants.
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int d = 0; d < kDevices; d += 10) {
        std::vector<IdentityLink> links;
        for (int k = d; k < d + 10; ++k) links.push_back({"dev-" + std::to_string(k), "user-" + std::to_string(t)});
        ASSERT_TRUE(store_->WriteEvents(1, {}, links).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  std::map<std::string, std::string> first_seen;
  ASSERT_TRUE(store_
                  ->ScanIdentity(1,
                                 [&](std::string_view d, std::string_view u) {
                                   first_seen.emplace(d, u);
                                   return true;
                                 })
                  .ok());
  EXPECT_EQ(first_seen.size(), size_t{kDevices});
  // Later attempts never change a link: rerun all threads and compare.
  std::vector<std::thread> again;
  for (int t = 0; t < kThreads; ++t) {
    again.emplace_back([&, t] {
      std::vector<IdentityLink> links;
      for (int k = 0; k < kDevices; ++k) links.push_back({"dev-" + std::to_string(k), "late-" + std::to_string(t)});
      ASSERT_TRUE(store_->WriteEvents(1, {}, links).ok());
    });
  }
  for (auto& t : again) t.join();
  for (const auto& [device, user] : first_seen) {
    EXPECT_EQ(store_->ResolveDevice(1, device)->value_or(""), user) << device;
  }
}

// Issue 12 item 3: AddIdentityLinks looks a call's devices up with one sorted MultiGet and looks a candidate up
// again under its lock only when another call committed links meanwhile. Every reader must still see one user
// per device, forever: if two racing calls both wrote a device, some reader would see the first user and a
// later one the second.
TEST_F(StoreTest, IdentityLinksStayFirstWinsWhenRacingCallsOverlapInAnyOrder) {
  // Within one call, the first link of a device wins even when its key sorts after the call's other devices.
  const std::vector<IdentityLink> mixed = {{"dev-b", "first"}, {"dev-a", "alone"}, {"dev-b", "second"}};
  ASSERT_TRUE(store_->WriteEvents(7, {}, mixed).ok());
  EXPECT_EQ(store_->ResolveDevice(7, "dev-b")->value_or(""), "first");
  EXPECT_EQ(store_->ResolveDevice(7, "dev-a")->value_or(""), "alone");

  constexpr int kThreads = 6;
  constexpr int kDevices = 300;
  constexpr int kBatch = 25;
  constexpr uint32_t kRounds = 12;  // the race is timing-dependent: each round (a project) tries again
  for (uint32_t project = 1; project <= kRounds; ++project) {
    std::barrier start(kThreads);
    std::mutex mu;
    std::map<std::string, std::set<std::string>> observed;  // device -> users any reader saw
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<int> devices(kDevices);
        for (int k = 0; k < kDevices; ++k) devices[k] = k;
        std::mt19937 rng(static_cast<unsigned>(t + 1 + 100 * project));
        std::shuffle(devices.begin(), devices.end(), rng);
        start.arrive_and_wait();
        for (int i = 0; i < kDevices; i += kBatch) {
          std::vector<IdentityLink> links;
          for (int k = i; k < i + kBatch; ++k)
            links.push_back({"dev-" + std::to_string(devices[k]), "user-" + std::to_string(t)});
          ASSERT_TRUE(store_->WriteEvents(project, {}, links).ok());
          for (const IdentityLink& l : links) {
            auto resolved = store_->ResolveDevice(project, l.device_id);
            ASSERT_TRUE(resolved.ok());
            // Unlinked yet when a racing call holds the claim and has not committed: that call writes it.
            if (!resolved->has_value()) continue;
            std::lock_guard lock(mu);
            observed[l.device_id].insert(**resolved);
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    for (int k = 0; k < kDevices; ++k) {
      const std::string device = "dev-" + std::to_string(k);
      auto resolved = store_->ResolveDevice(project, device);
      ASSERT_TRUE(resolved.ok() && resolved->has_value()) << device;
      observed[device].insert(**resolved);
    }
    for (const auto& [device, users] : observed) {
      ASSERT_EQ(users.size(), 1u) << device << " of project " << project << " was seen linked to " << users.size()
                                  << " users";
    }
  }
}

// A folder for store tests: "inc" increments {"n":N} (as text; enough JSON for a test), "del" deletes the
// profile, "bad" is refused and changes nothing.
class CounterFolder final : public ProfileFolder {
 public:
  ProfileFold Fold(const std::optional<std::string>& current, std::span<const std::string> ops) const override {
    ProfileFold fold;
    std::optional<std::string> p = current;
    for (size_t i = 0; i < ops.size(); ++i) {
      if (ops[i] == "inc") {
        const int n = p ? std::stoi(p->substr(5)) : 0;
        p = "{\"n\":" + std::to_string(n + 1) + "}";
      } else if (ops[i] == "del") {
        p.reset();
      } else {
        fold.refused.push_back({.op = i, .field = "record", .message = "not an op", .reason = "bad"});
        continue;
      }
      fold.changed = true;
    }
    if (fold.changed) fold.profile = std::move(p);
    return fold;
  }
};

std::vector<ProfileOps> Changes(const std::vector<std::string>& ids, std::vector<std::string> ops = {"inc"}) {
  std::vector<ProfileOps> changes;
  for (const std::string& id : ids) changes.push_back({id, ops});
  return changes;
}

TEST_F(StoreTest, ProfileReadModifyWriteIsAtomicUnderConcurrency) {
  constexpr int kThreads = 4;
  constexpr int kIncrements = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Overlapping multi-profile calls in opposite orders would deadlock without ordered stripe locking.
      std::vector<std::string> ids = {"shared", "p" + std::to_string(t), "other"};
      if (t % 2 == 1) std::reverse(ids.begin(), ids.end());
      for (int i = 0; i < kIncrements; ++i) {
        ASSERT_TRUE(store_->ApplyProfileOps(1, {}, Changes(ids), CounterFolder(), nullptr).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store_->GetProfile(1, "shared")->value_or(""), "{\"n\":" + std::to_string(kThreads * kIncrements) + "}");
  EXPECT_EQ(store_->GetProfile(1, "other")->value_or(""), "{\"n\":" + std::to_string(kThreads * kIncrements) + "}");
  EXPECT_EQ(store_->GetProfile(1, "p0")->value_or(""), "{\"n\":" + std::to_string(kIncrements) + "}");
}

TEST_F(StoreTest, ProfileOpsRefusalsDeletesAndDuplicateIdsInOneCall) {
  std::vector<std::string> ids = {"a", "b", "a"};  // "a" twice: the second change folds onto the first's result
  ASSERT_TRUE(store_->ApplyProfileOps(1, {}, Changes(ids), CounterFolder(), nullptr).ok());
  EXPECT_EQ(store_->GetProfile(1, "a")->value_or(""), "{\"n\":2}");
  EXPECT_EQ(store_->GetProfile(1, "b")->value_or(""), "{\"n\":1}");

  // A refused op changes nothing and is reported with its change and op index; a delete removes.
  std::vector<ProfileOps> changes = {{"a", {"bad"}}, {"b", {"inc", "bad", "del"}}, {"none", {"del"}}};
  std::vector<ProfileOpRefusal> refused;
  ASSERT_TRUE(store_->ApplyProfileOps(1, {}, changes, CounterFolder(), &refused).ok());
  ASSERT_EQ(refused.size(), 2u);
  EXPECT_EQ(refused[0].change, 0u);
  EXPECT_EQ(refused[0].op, 0u);
  EXPECT_EQ(refused[1].change, 1u);
  EXPECT_EQ(refused[1].op, 1u);
  EXPECT_EQ(store_->GetProfile(1, "a")->value_or(""), "{\"n\":2}");
  EXPECT_FALSE(store_->GetProfile(1, "b")->has_value());
  EXPECT_FALSE(store_->GetProfile(1, "none")->has_value());

  ASSERT_TRUE(store_->ApplyProfileOps(2, {}, Changes({"c", "aa"}), CounterFolder(), nullptr).ok());
  Reopen();
  std::vector<std::string> scanned;
  ASSERT_TRUE(store_
                  ->ScanProfiles(1, /*after=*/{},
                                 [&](std::string_view id, std::string_view json) {
                                   scanned.push_back(std::string(id) + "=" + std::string(json));
                                   return true;
                                 })
                  .ok());
  EXPECT_EQ(scanned, std::vector<std::string>{"a={\"n\":2}"});
  scanned.clear();
  ASSERT_TRUE(store_
                  ->ScanProfiles(2, /*after=*/{},
                                 [&](std::string_view id, std::string_view) {
                                   scanned.emplace_back(id);
                                   return true;
                                 })
                  .ok());
  EXPECT_EQ(scanned, (std::vector<std::string>{"aa", "c"}));  // ascending by distinct_id

  // From after an id (a page of a listing resumes there): only greater ids, whether or not `after` exists.
  ASSERT_TRUE(store_->ApplyProfileOps(2, {}, Changes({"b", "ab", "d"}), CounterFolder(), nullptr).ok());
  auto after = [&](std::string_view from) {
    std::vector<std::string> found;
    EXPECT_TRUE(store_
                    ->ScanProfiles(2, from,
                                   [&](std::string_view id, std::string_view) {
                                     found.emplace_back(id);
                                     return true;
                                   })
                    .ok());
    return found;
  };
  EXPECT_EQ(after("aa"), (std::vector<std::string>{"ab", "b", "c", "d"}));
  EXPECT_EQ(after("aaa"), (std::vector<std::string>{"ab", "b", "c", "d"}));
  EXPECT_EQ(after("c"), (std::vector<std::string>{"d"}));
  EXPECT_TRUE(after("d").empty());
  EXPECT_TRUE(after("zz").empty());  // and never another project's profiles
}

TEST_F(StoreTest, MetaCrudAndPrefixScan) {
  ASSERT_TRUE(store_->PutMeta("pipeline", "p/2", "two").ok());
  ASSERT_TRUE(store_->PutMeta("pipeline", "p/1", "one").ok());
  ASSERT_TRUE(store_->PutMeta("pipeline", "q/1", "q").ok());
  ASSERT_TRUE(store_->PutMeta("pipelines", "p/0", "other ns").ok());
  ASSERT_TRUE(store_->PutMeta("p", "ipeline", "tricky").ok());
  EXPECT_EQ(store_->GetMeta("pipeline", "p/1")->value_or(""), "one");
  EXPECT_FALSE(store_->GetMeta("pipeline", "p/9")->has_value());
  EXPECT_FALSE(store_->GetMeta("connector", "p/1")->has_value());
  ASSERT_TRUE(store_->PutMeta("pipeline", "p/1", "uno").ok());
  EXPECT_EQ(store_->GetMeta("pipeline", "p/1")->value_or(""), "uno");

  auto scan = [&](std::string_view ns, std::string_view prefix) {
    std::vector<std::string> out;
    EXPECT_TRUE(store_
                    ->ScanMeta(ns, prefix,
                               [&](std::string_view k, std::string_view v) {
                                 out.push_back(std::string(k) + "=" + std::string(v));
                                 return true;
                               })
                    .ok());
    return out;
  };
  EXPECT_EQ(scan("pipeline", "p/"), (std::vector<std::string>{"p/1=uno", "p/2=two"}));
  EXPECT_EQ(scan("pipeline", ""), (std::vector<std::string>{"p/1=uno", "p/2=two", "q/1=q"}));
  EXPECT_EQ(scan("p", ""), std::vector<std::string>{"ipeline=tricky"});
  ASSERT_TRUE(store_->DeleteMeta("pipeline", "p/1").ok());
  ASSERT_TRUE(store_->DeleteMeta("pipeline", "missing").ok());
  Reopen();
  EXPECT_EQ(scan("pipeline", "p/"), std::vector<std::string>{"p/2=two"});
  int calls = 0;
  ASSERT_TRUE(store_->ScanMeta("pipeline", "", [&](std::string_view, std::string_view) { return ++calls < 1; }).ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(store_->PutMeta("", "k", "v").error().code, ErrorCode::kInvalidArgument);
}

TEST_F(StoreTest, ProjectsCreateListGetUpdate) {
  auto a = store_->CreateProject("web");
  auto b = store_->CreateProject("ios");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->id, 1u);
  EXPECT_EQ(b->id, 2u);
  EXPECT_EQ(a->token.size(), 32u);  // 128 bits as hex
  EXPECT_EQ(a->api_secret.Reveal().size(), 32u);
  EXPECT_NE(a->token, b->token);
  EXPECT_NE(a->token, a->api_secret.Reveal());
  EXPECT_GT(a->created_ms, 1'600'000'000'000);

  auto got = store_->GetProject(1);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->name, "web");
  EXPECT_EQ((*got)->token, a->token);
  EXPECT_EQ((*got)->api_secret.Reveal(), a->api_secret.Reveal());
  EXPECT_FALSE(store_->GetProject(3)->has_value());

  Project updated = **got;
  updated.name = "website";
  updated.external_id = "ext-1";
  ASSERT_TRUE(store_->UpdateProject(updated).ok());
  Project ghost;
  ghost.id = 77;
  EXPECT_EQ(store_->UpdateProject(ghost).error().code, ErrorCode::kNotFound);

  Reopen();
  auto c = store_->CreateProject("android");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->id, 3u);  // the counter survives a restart
  auto list = store_->ListProjects();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].name, "website");
  EXPECT_EQ((*list)[0].external_id, "ext-1");
  EXPECT_EQ((*list)[1].name, "ios");
  EXPECT_EQ((*list)[2].id, 3u);
}

TEST_F(StoreTest, ConcurrentProjectCreationAssignsUniqueIds) {
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<uint32_t> ids;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        auto p = store_->CreateProject("p");
        ASSERT_TRUE(p.ok());
        std::lock_guard lock(mu);
        ids.insert(p->id);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ids.size(), 40u);
  EXPECT_EQ(*ids.rbegin(), 40u);
}

TEST_F(StoreTest, DataSurvivesReopen) {
  std::vector<Event> events;
  for (int i = 0; i < 1000; ++i) events.push_back(MakeEvent("id-" + std::to_string(i), kHourStartUs + i * 1000));
  ASSERT_TRUE(store_->WriteEvents(5, events).ok());
  Reopen();
  EXPECT_EQ(Scan(*store_, 5, kHour).size(), 1000u);
  EXPECT_GT(store_->ApproximateSizeBytes(), 1000u * 20);
}

/// The `key=value` lines of one section (e.g. `[CFOptions "events"]`) of the OPTIONS file RocksDB wrote at the
/// store's latest open: what the store really configured.
std::map<std::string, std::string> LatestOptionsSection(const fs::path& dir, std::string_view section) {
  fs::path latest;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    // OPTIONS-<file number>: the highest number is the options of the latest open.
    if (name.starts_with("OPTIONS-") && !name.ends_with(".dbtmp") &&
        (latest.empty() || std::stoull(name.substr(8)) > std::stoull(latest.filename().string().substr(8)))) {
      latest = entry.path();
    }
  }
  std::map<std::string, std::string> out;
  std::ifstream in(latest);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line.starts_with("[")) inside = line == section;
    const size_t start = line.find_first_not_of(' ');
    const size_t eq = line.find('=');
    if (!inside || start == std::string::npos || eq == std::string::npos) continue;
    out[line.substr(start, eq - start)] = line.substr(eq + 1);
  }
  return out;
}

// Issue 12 item 4: exports read their day from the events column family, often from its bottom level, so no
// level of it may be zstd (its decompression was ~22% of a whole-server export).
TEST_F(StoreTest, EventsColumnFamilyUsesNoZstdInAnyLevelExportsRead) {
  std::vector<Event> events;
  for (int i = 0; i < 100; ++i) events.push_back(MakeEvent("id-" + std::to_string(i), kHourStartUs + i * 1000));
  ASSERT_TRUE(store_->WriteEvents(5, events).ok());
  Reopen();
  auto events_cf = LatestOptionsSection(dir_.path(), "[CFOptions \"events\"]");
  ASSERT_FALSE(events_cf.empty()) << "no events column family options in " << dir_.path();
  EXPECT_EQ(events_cf["bottommost_compression"], "kLZ4Compression");
  ASSERT_FALSE(events_cf["compression_per_level"].empty());
  EXPECT_EQ(events_cf["compression_per_level"].find("ZSTD"), std::string::npos) << events_cf["compression_per_level"];
}

// Issue 12 item 3: every batch with new devices looks each one up in the identity map and almost always
// misses; a whole-key bloom filter over the identity memtables answers those misses without searching the skip
// list. Lookups must still find what the memtable holds and miss what it does not.
TEST_F(StoreTest, IdentityMemtableHasAWholeKeyBloomFilterAndLookupsStayExact) {
  std::vector<IdentityLink> links;
  for (int i = 0; i < 500; ++i) links.push_back({"dev-" + std::to_string(i), "user-" + std::to_string(i % 7)});
  const std::vector<Event> first = {MakeEvent("first", kHourStartUs)};
  ASSERT_TRUE(store_->WriteEvents(3, first, links).ok());
  // First link wins, also when the memtable (with its filter) already holds the device.
  const std::vector<Event> second = {MakeEvent("second", kHourStartUs + 1)};
  const std::vector<IdentityLink> relink = {{"dev-1", "someone-else"}};
  ASSERT_TRUE(store_->WriteEvents(3, second, relink).ok());
  for (int i = 0; i < 500; ++i) {
    EXPECT_EQ(store_->ResolveDevice(3, "dev-" + std::to_string(i))->value_or(""), "user-" + std::to_string(i % 7));
  }
  EXPECT_FALSE(store_->ResolveDevice(3, "dev-500")->has_value());
  EXPECT_FALSE(store_->ResolveDevice(4, "dev-1")->has_value());
  Reopen();
  auto identity_cf = LatestOptionsSection(dir_.path(), "[CFOptions \"identity\"]");
  ASSERT_FALSE(identity_cf.empty()) << "no identity column family options in " << dir_.path();
  EXPECT_EQ(identity_cf["memtable_whole_key_filtering"], "true");
  ASSERT_FALSE(identity_cf["memtable_prefix_bloom_size_ratio"].empty());
  EXPECT_GT(std::stod(identity_cf["memtable_prefix_bloom_size_ratio"]), 0.0);
  EXPECT_EQ(store_->ResolveDevice(3, "dev-1")->value_or(""), "user-1");
}

TEST_F(StoreTest, SecondOpenOfSameDirFailsNamingTheLock) {
  auto second = Store::Open(dir_.path());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find(dir_.path().string()), std::string::npos) << second.error().message;
  EXPECT_NE(second.error().message.find("locked"), std::string::npos) << second.error().message;
}

// Root ignores directory permissions, so when the suite runs as root (CI does) the open runs in a child
// process that first drops to the unprivileged `nobody` user; the child prints the error message.
}  // namespace
inline constexpr char kUnwritableDirEnv[] = "SLUICE_STORE_UNWRITABLE_DIR";
namespace {

TEST(StoreOpenTest, UnwritableDirFailsWithAMessageNamingIt) {
  TempDir dir;
  fs::create_directories(dir.path());
  fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                  fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  std::string message;
  if (::geteuid() != 0) {
    auto store = Store::Open(dir.path());
    ASSERT_FALSE(store.ok());
    message = store.error().message;
  } else {
    // The temp dir's parents must be traversable by `nobody`; /tmp is.
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      ::dup2(fds[1], STDOUT_FILENO);
      ::setenv(kUnwritableDirEnv, dir.path().c_str(), 1);
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(126);
      ::execl("/proc/self/exe", "store_test", nullptr);
      ::_exit(127);
    }
    ::close(fds[1]);
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) message.append(buf, static_cast<size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << status;
    ASSERT_EQ(WEXITSTATUS(status), 0) << "the store opened an unwritable dir (or the child failed): " << message;
  }
  fs::permissions(dir.path(), fs::perms::owner_all);
  EXPECT_NE(message.find(dir.path().string()), std::string::npos) << message;
}

TEST(StoreOpenTest, PathThatIsAFileFailsWithAMessageNamingIt) {
  TempDir dir;
  fs::create_directories(dir.path());
  const fs::path file = dir.path() / "not-a-dir";
  { std::ofstream(file) << "x"; }
  auto store = Store::Open(file);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find(file.string()), std::string::npos) << store.error().message;
}

TEST_F(StoreTest, ClosedStoreRejectsCallsAndCloseIsIdempotent) {
  ASSERT_TRUE(store_->Close().ok());
  EXPECT_TRUE(store_->Close().ok());
  Event e = MakeEvent("a");
  EXPECT_FALSE(store_->WriteEvents(1, std::span<const Event>(&e, 1)).ok());
  EXPECT_FALSE(store_->GetMeta("ns", "k").ok());
  EXPECT_EQ(store_->ApproximateSizeBytes(), 0u);
  // The lock is released: another instance can open the dir.
  auto other = Store::Open(dir_.path());
  EXPECT_TRUE(other.ok());
}

TEST_F(StoreTest, RejectsEventsBeforeTheEpoch) {
  Event e = MakeEvent("a", -5);
  EXPECT_EQ(store_->WriteEvents(1, std::span<const Event>(&e, 1)).error().code, ErrorCode::kInvalidArgument);
}

// ---- Journaled writes whose apply fails ------------------------------------------------------------------

std::set<std::string> InsertIds(Store& store) {
  std::set<std::string> ids;
  for (const Event& e : Scan(store, 1, kHour)) ids.insert(e.insert_id);
  return ids;
}

uint64_t PartitionWrites(Store& store) {
  auto parts = store.ListPartitions(1, kHour, kHour);
  EXPECT_TRUE(parts.ok());
  return parts.ok() && !parts->empty() ? parts->front().writes : 0;
}

Status WriteOne(Store& store, const std::string& insert_id) {
  Event e = MakeEvent(insert_id);
  return store.WriteEvents(1, std::span<const Event>(&e, 1));
}

/// A store whose applies fail while `fail` is set, holding one applied event "a" (nullptr on failure).
std::unique_ptr<Store> OpenFailingApplies(const fs::path& dir, std::atomic<bool>& fail) {
  StoreOptions options;
  options.fail_apply_for_testing = [&fail] { return fail.load(); };
  auto store = OpenOrDie(dir, options);
  if (store == nullptr || !WriteOne(*store, "a").ok()) return nullptr;
  return store;
}

TEST(StoreApplyFailureTest, FailedApplyIsAnErrorAndIsAppliedOnceBeforeAnyLaterWrite) {
  TempDir dir;
  std::atomic<bool> fail{false};
  auto store = OpenFailingApplies(dir.path(), fail);
  ASSERT_NE(store, nullptr);

  fail = true;
  Status b = WriteOne(*store, "b");  // journaled, not applied: the caller is told (the API answers 503)
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, ErrorCode::kUnavailable) << b.error().ToString();
  EXPECT_NE(b.error().message.find("kept in the journal"), std::string::npos) << b.error().message;
  Status c = WriteOne(*store, "c");  // refused before the journal: nothing may be applied ahead of "b"
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("refused until earlier journaled writes are applied"), std::string::npos)
      << c.error().message;
  EXPECT_EQ(InsertIds(*store), (std::set<std::string>{"a"}));

  fail = false;
  ASSERT_TRUE(WriteOne(*store, "d").ok());  // applies "b" first, then "d"
  EXPECT_EQ(InsertIds(*store), (std::set<std::string>{"a", "b", "d"}));
  EXPECT_EQ(PartitionWrites(*store), 3u);

  // Replay after a restart applies nothing twice.
  ASSERT_TRUE(store->Close().ok());
  store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(InsertIds(*store), (std::set<std::string>{"a", "b", "d"}));
  EXPECT_EQ(PartitionWrites(*store), 3u);
}

TEST(StoreApplyFailureTest, RecordStillUnappliedAtCloseIsReplayedOnceAtOpen) {
  TempDir dir;
  std::atomic<bool> fail{false};
  auto store = OpenFailingApplies(dir.path(), fail);
  ASSERT_NE(store, nullptr);
  fail = true;
  ASSERT_FALSE(WriteOne(*store, "b").ok());
  (void)store->Close();  // still failing: the journal is kept for the next start
  store.reset();

  store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(InsertIds(*store), (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(PartitionWrites(*store), 2u);
  ASSERT_TRUE(store->Close().ok());
  store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(PartitionWrites(*store), 2u);
}

TEST(StoreApplyFailureTest, LeaderWhoseWriteThrowsStillHandsOverTheWritePath) {
  TempDir dir;
  std::atomic<bool> throw_once{true};
  StoreOptions options;
  options.after_journal_append_for_testing = [&throw_once] {
    if (throw_once.exchange(false)) throw std::runtime_error("injected failure of the write leader");
  };
  auto store = OpenOrDie(dir.path(), options);
  ASSERT_NE(store, nullptr);
  Status first;
  ASSERT_NO_THROW(first = WriteOne(*store, "first"));
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.error().message.find("injected failure of the write leader"), std::string::npos)
      << first.error().message;

  // Later writers, concurrent ones included, still get a leader: each must finish (bounded wait).
  constexpr int kThreads = 4;
  constexpr int kWritesPerThread = 10;
  std::atomic<int> ok{0};
  std::atomic<int> finished{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kWritesPerThread; ++i) {
        if (WriteOne(*store, "w" + std::to_string(t) + "-" + std::to_string(i)).ok()) ++ok;
      }
      ++finished;
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (finished.load() < kThreads && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (finished.load() < kThreads) {
    ADD_FAILURE() << "writers are stuck behind a leader that never handed over; aborting";
    std::abort();  // joining would hang the test binary
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(ok.load(), kThreads * kWritesPerThread);
  // The thrown-out write was journaled: it is applied (once) before the later ones, not lost half-way.
  const auto ids = InsertIds(*store);
  EXPECT_TRUE(ids.contains("first"));
  EXPECT_EQ(ids.size(), size_t{kThreads * kWritesPerThread + 1});
  EXPECT_EQ(PartitionWrites(*store), uint64_t{kThreads * kWritesPerThread + 1});
}

// ---- Crash durability ------------------------------------------------------------------------------------
// The parent re-executes this binary in child mode (see main below; fork without exec
// would inherit RocksDB's background threads' locks in an undefined state). The child writes numbered
// batches and reports each acknowledged one on a pipe until it is SIGKILLed.

}  // namespace
inline constexpr char kCrashDirEnv[] = "SLUICE_STORE_CRASH_DIR";
inline constexpr char kCrashFdEnv[] = "SLUICE_STORE_CRASH_FD";
/// When set to K, the child kills itself with SIGKILL after batch K is in the journal, before it is applied.
inline constexpr char kCrashAtBatchEnv[] = "SLUICE_STORE_CRASH_AT_BATCH";
namespace {
constexpr int kCrashEventsPerBatch = 20;
constexpr uint32_t kCrashMaxBatches = 200'000;

Event CrashEvent(uint32_t batch, int j) {
  Event e = MakeEvent("b" + std::to_string(batch) + "-" + std::to_string(j), kHourStartUs + batch * 1000);
  e.properties = R"({"pad":")" + std::string(200, 'p') + "\"}";
  return e;
}

}  // namespace
/// The crash test's child: writes numbered batches and reports each acknowledged one on `fd` until killed.
int RunCrashChild(const char* dir, int fd) {
  StoreOptions options;
  if (const char* at = std::getenv(kCrashAtBatchEnv)) {
    const uint32_t kill_at = static_cast<uint32_t>(std::atoi(at));
    options.after_journal_append_for_testing = [kill_at, groups = uint32_t{0}]() mutable {
      if (++groups == kill_at) ::raise(SIGKILL);
    };
  }
  auto store = OpenOrDie(dir, options);
  if (store == nullptr) return 2;
  for (uint32_t batch = 1; batch <= kCrashMaxBatches; ++batch) {
    std::vector<Event> events;
    for (int j = 0; j < kCrashEventsPerBatch; ++j) events.push_back(CrashEvent(batch, j));
    IdentityLink link{"dev-" + std::to_string(batch), "user"};
    if (!store->WriteEvents(1, events, std::span<const IdentityLink>(&link, 1)).ok()) return 3;
    if (::write(fd, &batch, sizeof batch) != static_cast<ssize_t>(sizeof batch)) return 4;
  }
  return 0;
}
namespace {

TEST(StoreCrashTest, SigkillBetweenJournalAndApplyLosesNothingAndAppliesOnce) {
  // One writer, one batch per group: group K is batch K. Batch K is journaled, never applied nor acknowledged.
  constexpr uint32_t kKillAt = 40;
  TempDir dir;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::setenv(kCrashDirEnv, dir.path().c_str(), 1);
    ::setenv(kCrashFdEnv, std::to_string(fds[1]).c_str(), 1);
    ::setenv(kCrashAtBatchEnv, std::to_string(kKillAt).c_str(), 1);
    ::execl("/proc/self/exe", "store_test", nullptr);
    ::_exit(127);
  }
  ::close(fds[1]);
  uint32_t acked = 0;
  uint32_t batch = 0;
  while (::read(fds[0], &batch, sizeof batch) == static_cast<ssize_t>(sizeof batch)) acked = batch;
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  ASSERT_EQ(acked, kKillAt - 1);

  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  std::set<std::string> present;
  uint64_t writes = 0;
  auto parts = store->ListPartitions(1, 0, ~Hour{0});
  ASSERT_TRUE(parts.ok());
  for (const auto& part : *parts) {
    writes += part.writes;
    ASSERT_TRUE(store->ScanPartition(1, part.hour, [&](const EventView& v) {
                       present.emplace(v.insert_id);
                       return true;
                     }).ok());
  }
  // Every journaled batch is there (the unacknowledged last one too: it was in the synced journal), once.
  EXPECT_EQ(present.size(), size_t{kKillAt} * kCrashEventsPerBatch);
  EXPECT_EQ(writes, uint64_t{kKillAt} * kCrashEventsPerBatch);
  for (uint32_t b = 1; b <= kKillAt; ++b) {
    ASSERT_TRUE(present.contains(CrashEvent(b, 0).insert_id)) << "batch " << b;
    ASSERT_TRUE(store->ResolveDevice(1, "dev-" + std::to_string(b))->has_value()) << b;
  }
  // And replaying it again (reopen without new writes) changes nothing.
  ASSERT_TRUE(store->Close().ok());
  store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  uint64_t writes_again = 0;
  auto parts_again = store->ListPartitions(1, 0, ~Hour{0});
  ASSERT_TRUE(parts_again.ok());
  for (const auto& part : *parts_again) writes_again += part.writes;
  EXPECT_EQ(writes_again, writes);
}

TEST(StoreCrashTest, AcknowledgedBatchesSurviveSigkill) {
  TempDir dir;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::setenv(kCrashDirEnv, dir.path().c_str(), 1);
    ::setenv(kCrashFdEnv, std::to_string(fds[1]).c_str(), 1);
    ::execl("/proc/self/exe", "store_test", nullptr);
    ::_exit(127);
  }
  ::close(fds[1]);

  // Read acknowledgements; kill the child mid-stream once it has acknowledged enough, with a deadline so a
  // wedged child fails the test instead of hanging it.
  uint32_t acked = 0;
  bool killed = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (true) {
    if (!killed && (acked >= 150 || std::chrono::steady_clock::now() > deadline)) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    uint32_t batch = 0;
    const ssize_t n = ::read(fds[0], &batch, sizeof batch);
    if (n <= 0) break;  // EOF: the child is gone and everything it acknowledged has been read
    ASSERT_EQ(n, static_cast<ssize_t>(sizeof batch));
    ASSERT_EQ(batch, acked + 1);
    acked = batch;
  }
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child exited early, status " << status;
  ASSERT_GE(acked, 150u) << "child too slow: acknowledged only " << acked;

  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  std::set<std::string> present;
  auto parts = store->ListPartitions(1, 0, ~Hour{0});
  ASSERT_TRUE(parts.ok());
  uint64_t max_seq = 0;
  for (const auto& part : *parts) {
    max_seq = std::max(max_seq, part.change_seq);
    ASSERT_TRUE(store->ScanPartition(1, part.hour, [&](const EventView& v) {
                       present.emplace(v.insert_id);
                       return true;
                     }).ok());
  }
  for (uint32_t batch = 1; batch <= acked; ++batch) {
    for (int j = 0; j < kCrashEventsPerBatch; ++j) {
      ASSERT_TRUE(present.contains(CrashEvent(batch, j).insert_id)) << "acked batch " << batch << " lost";
    }
    ASSERT_TRUE(store->ResolveDevice(1, "dev-" + std::to_string(batch))->has_value()) << batch;
  }
  // The recovered sequence covers every surviving write, so new writes get strictly larger ones.
  EXPECT_GE(store->LastChangeSeq(), max_seq);
  EXPECT_GE(store->LastChangeSeq(), acked);
  Event e = MakeEvent("after");
  ASSERT_TRUE(store->WriteEvents(1, std::span<const Event>(&e, 1)).ok());
  EXPECT_GT(store->LastChangeSeq(), max_seq);
}

}  // namespace
}  // namespace sluice::store

// The crash and permission tests re-execute this binary as a child; the environment says which role it plays.
int main(int argc, char** argv) {
  using namespace sluice::store;
  if (const char* dir = std::getenv(kCrashDirEnv)) {
    const char* fd_text = std::getenv(kCrashFdEnv);
    return fd_text ? RunCrashChild(dir, std::atoi(fd_text)) : 2;
  }
  if (const char* dir = std::getenv(kUnwritableDirEnv)) {
    auto store = Store::Open(dir);
    if (store.ok()) return 1;
    std::fputs(store.error().message.c_str(), stdout);
    return 0;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
