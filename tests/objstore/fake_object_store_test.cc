#include "objstore/testing/fake_object_store.h"

#include <gtest/gtest.h>

namespace sluice::objstore::testing {
namespace {

using Op = FakeObjectStore::Op;

TEST(FakeObjectStoreTest, BehavesLikeAStore) {
  FakeClock clock(TimePoint(std::chrono::seconds(1'700'000'000)));
  FakeObjectStore store(&clock);
  ASSERT_TRUE(store.Put("b", "2").ok());
  ASSERT_TRUE(store.Put("a/1", "one").ok());
  ASSERT_TRUE(store.Put("a/2", "two", {.content_type = "application/json", .content_encoding = "gzip"}).ok());
  EXPECT_EQ(*store.Get("a/2"), "two");
  EXPECT_EQ(*store.Get("a/2", 1, 1), "w");
  EXPECT_EQ(store.Head("a/1")->last_modified_ms, 1'700'000'000'000);
  EXPECT_EQ(store.Object("a/2")->options.content_encoding, "gzip");
  auto list = store.List("a/");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].key, "a/1");
  EXPECT_EQ(store.Head("zz").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(store.Delete("zz").ok());
  EXPECT_TRUE(store.Delete("b").ok());
  EXPECT_EQ(store.Keys(), (std::vector<std::string>{"a/1", "a/2"}));
  std::vector<std::string> seen;
  ASSERT_TRUE(store.ListEach("", "a/1", [&](const ObjectInfo& o) {
                     seen.push_back(o.key);
                     return true;
                   })
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"a/2"}));
  EXPECT_EQ(store.calls(Op::kPut), 3);
  EXPECT_EQ(store.calls(Op::kDelete), 2);
}

TEST(FakeObjectStoreTest, FaultsFireByOpKeyAndCount) {
  FakeObjectStore store;
  store.InjectFault({.op = Op::kPut, .key_contains = "manifest", .error = Error(ErrorCode::kThrottled, "slow"),
                     .times = 2});
  EXPECT_TRUE(store.Put("data/1", "x").ok());
  EXPECT_EQ(store.Put("p/manifest.json", "x").error().code, ErrorCode::kThrottled);
  EXPECT_EQ(store.Put("p/manifest.json", "x").error().code, ErrorCode::kThrottled);
  EXPECT_TRUE(store.Put("p/manifest.json", "x").ok());
  EXPECT_EQ(store.faults_fired(), 2);
  EXPECT_EQ(store.calls(Op::kPut), 4);

  store.InjectFault({.op = Op::kGet, .times = -1});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(store.Get("data/1").error().code, ErrorCode::kTransient);
  store.ClearFaults();
  EXPECT_TRUE(store.Get("data/1").ok());
  store.ResetCounters();
  EXPECT_EQ(store.calls(Op::kGet), 0);
}

TEST(FakeObjectStoreTest, WritersAreInvisibleUntilCompleteAndFailuresLeaveNothing) {
  FakeObjectStore store;
  {
    auto w = store.NewWriter("obj");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write("abc").ok());
    ASSERT_TRUE((*w)->Write("def").ok());
    EXPECT_EQ(store.size(), 0u);
    EXPECT_EQ(store.open_writers(), 1);
    auto info = (*w)->Complete();
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->size, 6u);
  }
  EXPECT_EQ(*store.Get("obj"), "abcdef");
  EXPECT_EQ(store.open_writers(), 0);

  store.InjectFault({.op = Op::kWriterWrite, .key_contains = "doomed"});
  auto w = store.NewWriter("doomed");
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE((*w)->Write("x").ok());
  EXPECT_FALSE((*w)->Complete().ok());
  EXPECT_FALSE(store.Head("doomed").ok());
  EXPECT_EQ(store.aborted_writers(), 1);
  EXPECT_EQ(store.open_writers(), 0);
}

}  // namespace
}  // namespace sluice::objstore::testing
