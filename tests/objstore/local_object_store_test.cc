#include "objstore/local/local_object_store.h"

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/crypto.h"

namespace sluice::objstore {
namespace {
namespace fs = std::filesystem;

class LocalObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("sluice-local-" + RandomHex(64));
    auto s = LocalObjectStore::Open(root_);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    store_ = std::move(s).value();
  }
  void TearDown() override { fs::remove_all(root_); }

  std::vector<std::string> Keys(std::string_view prefix) {
    auto l = store_->List(prefix);
    EXPECT_TRUE(l.ok());
    std::vector<std::string> keys;
    for (const auto& o : *l) keys.push_back(o.key);
    return keys;
  }
  int FilesIn(const fs::path& dir) {
    int n = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
    return n;
  }

  fs::path root_;
  std::unique_ptr<LocalObjectStore> store_;
};

TEST_F(LocalObjectStoreTest, PutGetHeadRoundTrip) {
  auto put = store_->Put("p/2024/01/02/a.json.gz", "hello world");
  ASSERT_TRUE(put.ok()) << put.error().ToString();
  EXPECT_EQ(put->size, 11u);
  EXPECT_EQ(put->key, "p/2024/01/02/a.json.gz");
  auto got = store_->Get("p/2024/01/02/a.json.gz");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "hello world");
  auto head = store_->Head("p/2024/01/02/a.json.gz");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, 11u);
  EXPECT_EQ(head->etag, put->etag);
  EXPECT_GT(head->last_modified_ms, 0);
  EXPECT_TRUE(fs::is_regular_file(root_ / "p/2024/01/02/a.json.gz"));
}

// A writer killed mid-file (kill -9 during an export) leaves its temporary file: the next write into that
// directory removes it once nobody has written to it for 15 minutes; a live writer's file stays.
TEST_F(LocalObjectStoreTest, TemporaryFilesOfDeadWritersAreRemovedByTheNextWriteThere) {
  ASSERT_TRUE(store_->Put("p/2026/12/04/a.json.gz", "first").ok());
  const fs::path dir = root_ / "p/2026/12/04";
  const fs::path dead = dir / (std::string(LocalObjectStore::kTempMarker) + "dead");
  const fs::path live = dir / (std::string(LocalObjectStore::kTempMarker) + "live");
  std::ofstream(dead) << "partial part of a killed export";
  std::ofstream(live) << "a part being written";
  fs::last_write_time(dead, fs::file_time_type::clock::now() - std::chrono::minutes(16));
  ASSERT_TRUE(store_->Put("p/2026/12/04/manifest.json", "{}").ok());
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_EQ(store_->List("p/")->size(), 2u);
}

TEST_F(LocalObjectStoreTest, RangesAreCutAtTheEnd) {
  ASSERT_TRUE(store_->Put("k", "0123456789").ok());
  EXPECT_EQ(*store_->Get("k", 2, 3), "234");
  EXPECT_EQ(*store_->Get("k", 7), "789");
  EXPECT_EQ(*store_->Get("k", 8, 100), "89");
  auto beyond = store_->Get("k", 11);
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(LocalObjectStoreTest, MissingKeysAreNotFoundAndDeleteIsIdempotent) {
  EXPECT_EQ(store_->Head("nope").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->Get("nope").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(store_->Delete("nope").ok());
  ASSERT_TRUE(store_->Put("a/b/c", "x").ok());
  EXPECT_TRUE(store_->Delete("a/b/c").ok());
  EXPECT_TRUE(store_->Delete("a/b/c").ok());
  EXPECT_FALSE(fs::exists(root_ / "a")) << "empty directories are pruned";
}

TEST_F(LocalObjectStoreTest, RejectsKeysThatEscapeOrAlias) {
  for (std::string_view bad : {"", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", ".", "..",
                               "a/.sluice-tmp-1"}) {
    auto r = store_->Put(bad, "x");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(store_->Get(std::string("a\0b", 3)).ok());
  EXPECT_EQ(FilesIn(root_), 0);
  // Dots inside a segment are ordinary characters.
  EXPECT_TRUE(store_->Put("a/..b/c..", "x").ok());
  EXPECT_TRUE(store_->Put("spaces and ünïcode/x y.json", "x").ok());
}

TEST_F(LocalObjectStoreTest, ListIsRecursiveSortedAndPrefixFiltered) {
  for (std::string k : {"p/b/2", "p/a/1", "p/a/10", "p/ab", "q/1", "p/a/0"}) ASSERT_TRUE(store_->Put(k, k).ok());
  EXPECT_EQ(Keys("p/"), (std::vector<std::string>{"p/a/0", "p/a/1", "p/a/10", "p/ab", "p/b/2"}));
  EXPECT_EQ(Keys("p/a"), (std::vector<std::string>{"p/a/0", "p/a/1", "p/a/10", "p/ab"}));
  EXPECT_EQ(Keys("p/a/1"), (std::vector<std::string>{"p/a/1", "p/a/10"}));
  EXPECT_EQ(Keys(""), (std::vector<std::string>{"p/a/0", "p/a/1", "p/a/10", "p/ab", "p/b/2", "q/1"}));
  EXPECT_TRUE(Keys("zzz/").empty());

  std::vector<std::string> seen;
  ASSERT_TRUE(store_->ListEach("p/", "p/a/1", [&](const ObjectInfo& o) {
                      seen.push_back(o.key);
                      return seen.size() < 2;
                    })
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"p/a/10", "p/ab"}));
}

TEST_F(LocalObjectStoreTest, WriterIsInvisibleUntilComplete) {
  auto w = store_->NewWriter("big/obj");
  ASSERT_TRUE(w.ok());
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    std::string chunk(1000, static_cast<char>('a' + i % 26));
    ASSERT_TRUE((*w)->Write(chunk).ok());
    expected += chunk;
  }
  EXPECT_TRUE(Keys("").empty()) << "temp files are not listed";
  EXPECT_EQ(store_->Head("big/obj").error().code, ErrorCode::kNotFound);
  auto info = (*w)->Complete();
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->size, expected.size());
  EXPECT_EQ(*store_->Get("big/obj"), expected);
  EXPECT_EQ(FilesIn(root_), 1) << "no temp file left";
}

TEST_F(LocalObjectStoreTest, AbortedWriterLeavesNothingAndOldVersionSurvives) {
  ASSERT_TRUE(store_->Put("k", "old").ok());
  {
    auto w = store_->NewWriter("k");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write("new data").ok());
    (*w)->Abort();
    EXPECT_FALSE((*w)->Write("more").ok());
  }
  {
    auto w = store_->NewWriter("k");
    ASSERT_TRUE((*w)->Write("dropped").ok());
    // Destroyed without Complete: the temp file goes away.
  }
  EXPECT_EQ(*store_->Get("k"), "old");
  EXPECT_EQ(FilesIn(root_), 1);
}

TEST_F(LocalObjectStoreTest, OverwriteIsAtomicForConcurrentReaders) {
  const std::string a(256 * 1024, 'a');
  const std::string b(256 * 1024, 'b');
  ASSERT_TRUE(store_->Put("k", a).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0};
  std::thread reader([&] {
    for (int i = 0; i < 200 && !stop; ++i) {
      auto got = store_->Get("k");
      if (got.ok() && *got != a && *got != b) ++torn;
    }
  });
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(store_->Put("k", i % 2 ? a : b).ok());
  stop = true;
  reader.join();
  EXPECT_EQ(torn.load(), 0);
}

TEST_F(LocalObjectStoreTest, StreamingGetAndCancel) {
  std::string data(3 * 1024 * 1024 + 17, 'z');
  ASSERT_TRUE(store_->Put("s", data).ok());
  std::string got;
  int chunks = 0;
  ASSERT_TRUE(store_->GetStreaming("s", [&](std::string_view c) {
                      got.append(c);
                      ++chunks;
                      return true;
                    })
                  .ok());
  EXPECT_EQ(got, data);
  EXPECT_GT(chunks, 1);
  Status cancelled = store_->GetStreaming("s", [](std::string_view) { return false; });
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.error().code, ErrorCode::kCancelled);
}

TEST_F(LocalObjectStoreTest, KeyThatIsADirectoryConflicts) {
  ASSERT_TRUE(store_->Put("d/x", "1").ok());
  auto r = store_->Put("d", "2");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kConflict) << r.error().ToString();
  EXPECT_EQ(FilesIn(root_), 1);
}

}  // namespace
}  // namespace sluice::objstore
