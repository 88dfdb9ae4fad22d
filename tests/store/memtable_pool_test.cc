// Tests of the pooled memtable memory (store/memtable_pool.h): block reuse, the bound on kept blocks, and
// that the blocks are charged to the WriteBufferManager the way RocksDB's own arena charges memtable memory.
#include "store/memtable_pool.h"

#include <gtest/gtest.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/slice.h>
#include <rocksdb/write_buffer_manager.h>

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace sluice::store::internal {
namespace {

constexpr size_t kBlock = MemtableBlockPool::kBlockBytes;

TEST(MemtableBlockPool, ReturnedBlocksAreReusedAndTheFreeListIsBounded) {
  MemtableBlockPool pool(/*max_free_bytes=*/kBlock);  // keeps one free block
  char* a = pool.Take();
  char* b = pool.Take();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % kBlock, 0u) << "blocks are huge-page aligned";
  std::memset(a, 1, kBlock);  // writable over the whole block
  std::memset(b, 2, kBlock);
  pool.Return(a);
  pool.Return(b);  // beyond the bound: unmapped
  EXPECT_EQ(pool.stats().free, 1u);
  char* c = pool.Take();
  EXPECT_EQ(c, a) << "the kept block is handed out again, already mapped";
  EXPECT_EQ(pool.stats().mapped, 2u);
  EXPECT_EQ(pool.stats().reused, 1u);
  pool.Return(c);
}

TEST(MemtableBlockPool, AReservationIsMappedResidentAndKeptAcrossReuse) {
  MemtableBlockPool pool(/*max_free_bytes=*/kBlock, /*reserve_bytes=*/3 * kBlock);
  EXPECT_EQ(pool.stats().reserved, 3u);
  EXPECT_EQ(pool.stats().mapped, 3u);
  EXPECT_EQ(pool.stats().free, 3u);
  std::vector<char*> taken;
  for (int i = 0; i < 3; ++i) taken.push_back(pool.Take());
  for (char* b : taken) {
    ASSERT_NE(b, nullptr);
    // Resident before anything is written: every 4 KiB page of the block is in memory (no fault on first write).
    std::vector<unsigned char> resident(kBlock / 4096);
    ASSERT_EQ(::mincore(b, kBlock, resident.data()), 0);
    EXPECT_TRUE(std::all_of(resident.begin(), resident.end(), [](unsigned char r) { return (r & 1) != 0; }));
    EXPECT_EQ(b[0], 0) << "fresh anonymous memory reads as zero";
  }
  EXPECT_EQ(pool.stats().mapped, 3u) << "served from the reservation, nothing new mapped";
  EXPECT_EQ(pool.stats().reused, 3u);
  char* fourth = pool.Take();  // beyond the reservation: mapped on demand
  EXPECT_EQ(pool.stats().mapped, 4u);
  taken.push_back(fourth);
  for (char* b : taken) pool.Return(b);
  EXPECT_EQ(pool.stats().free, 3u) << "the pool keeps the reservation (max(max_free, reserve)), not just max_free";
}

/// Orders memtable keys (varint32 length + bytes) bytewise; enough for the vector rep's sort.
class BytewiseKeys : public rocksdb::MemTableRep::KeyComparator {
 public:
  int operator()(const char* a, const char* b) const override {
    return rocksdb::GetLengthPrefixedSlice(a).compare(rocksdb::GetLengthPrefixedSlice(b));
  }
  int operator()(const char* a, const rocksdb::Slice& key) const override {
    return rocksdb::GetLengthPrefixedSlice(a).compare(key);
  }
};

/// Writes a length-prefixed key (one byte of length: keys here are short) through the rep.
void AddKey(rocksdb::MemTableRep& rep, const std::string& key) {
  char* buf = nullptr;
  rocksdb::KeyHandle h = rep.Allocate(key.size() + 1, &buf);
  buf[0] = static_cast<char>(key.size());
  std::memcpy(buf + 1, key.data(), key.size());
  rep.Insert(h);
}

TEST(PooledMemTableRep, ChargesTheWriteBufferManagerLikeTheArenaAndRecyclesBlocks) {
  auto wbm = std::make_shared<rocksdb::WriteBufferManager>(64u << 20);
  auto pool = std::make_shared<MemtableBlockPool>(4 * kBlock);
  auto factory = NewPooledMemTableRepFactory(std::make_shared<rocksdb::VectorRepFactory>(), pool, wbm);
  BytewiseKeys keys;

  std::unique_ptr<rocksdb::MemTableRep> rep(factory->CreateMemTableRep(keys, nullptr, nullptr, nullptr));
  for (const char* k : {"c", "a", "b"}) AddKey(*rep, k);
  EXPECT_EQ(wbm->memory_usage(), kBlock);
  EXPECT_EQ(wbm->mutable_memtable_memory_usage(), kBlock);
  EXPECT_GE(rep->ApproximateMemoryUsage(), kBlock) << "the memtable's size counts the blocks (flush trigger)";

  // An entry larger than a block gets its own mapping, charged too.
  {
    char* buf = nullptr;
    rep->Allocate(kBlock + 100, &buf);
    std::memset(buf, 0, kBlock + 100);
  }
  EXPECT_EQ(wbm->memory_usage(), kBlock + 2 * kBlock);

  // Immutable: no longer mutable memory, still used.
  rep->MarkReadOnly();
  EXPECT_EQ(wbm->mutable_memtable_memory_usage(), 0u);
  EXPECT_EQ(wbm->memory_usage(), 3 * kBlock);

  // The entries are there, sorted by the inner vector rep.
  {
    std::unique_ptr<rocksdb::MemTableRep::Iterator> it(rep->GetIterator(nullptr));
    std::string seen;
    for (it->SeekToFirst(); it->Valid(); it->Next())
      seen += rocksdb::GetLengthPrefixedSlice(it->key()).ToString();
    EXPECT_EQ(seen, "abc");
  }

  rep.reset();  // flushed and dropped: memory released, the block kept for the next memtable
  EXPECT_EQ(wbm->memory_usage(), 0u);
  EXPECT_EQ(pool->stats().free, 1u);

  std::unique_ptr<rocksdb::MemTableRep> next(factory->CreateMemTableRep(keys, nullptr, nullptr, nullptr));
  AddKey(*next, "d");
  EXPECT_EQ(pool->stats().reused, 1u) << "the next memtable writes into the recycled block";
  next.reset();  // dropped while still mutable (a database closing): all charges released as well
  EXPECT_EQ(wbm->memory_usage(), 0u);
  EXPECT_EQ(wbm->mutable_memtable_memory_usage(), 0u);
}

/// RocksDB's memtable order: user key bytewise ascending, then the 8-byte trailer (sequence, type)
/// descending.
class InternalKeys : public rocksdb::MemTableRep::KeyComparator {
 public:
  int operator()(const char* a, const char* b) const override {
    return Compare(rocksdb::GetLengthPrefixedSlice(a), rocksdb::GetLengthPrefixedSlice(b));
  }
  int operator()(const char* a, const rocksdb::Slice& key) const override {
    return Compare(rocksdb::GetLengthPrefixedSlice(a), key);
  }
  static int Compare(rocksdb::Slice a, rocksdb::Slice b) {
    const rocksdb::Slice ua(a.data(), a.size() - 8), ub(b.data(), b.size() - 8);
    if (int c = ua.compare(ub); c != 0) return c;
    uint64_t ta = 0, tb = 0;
    std::memcpy(&ta, a.data() + ua.size(), 8);
    std::memcpy(&tb, b.data() + ub.size(), 8);
    return ta > tb ? -1 : ta < tb ? 1 : 0;
  }
};

/// A memtable entry: varint32 length (keys here are < 128 bytes: one byte) + user key + 8-byte trailer.
std::string Entry(const std::string& user_key, uint64_t trailer) {
  std::string internal = user_key;
  internal.append(reinterpret_cast<const char*>(&trailer), 8);
  return std::string(1, static_cast<char>(internal.size())) + internal;
}

// The flush reads a read-only memtable through the rep's own sort (16-byte key prefixes, the comparator on
// ties). Its order must be exactly the comparator's: keys sharing 16 or more bytes, keys shorter than 16
// bytes and prefixes of each other, and one user key with several sequence numbers.
TEST(PooledMemTableRep, ReadOnlyIteratorsFollowTheComparatorExactly) {
  auto pool = std::make_shared<MemtableBlockPool>(4 * kBlock);
  auto factory = NewPooledMemTableRepFactory(std::make_shared<rocksdb::VectorRepFactory>(), pool, nullptr);
  InternalKeys cmp;
  std::unique_ptr<rocksdb::MemTableRep> rep(factory->CreateMemTableRep(cmp, nullptr, nullptr, nullptr));

  std::mt19937_64 rng(7);
  std::vector<std::string> entries;
  const std::string shared(20, 'p');  // 20 equal leading bytes: the prefix ties, the comparator decides
  for (int i = 0; i < 3000; ++i) {
    std::string user;
    switch (i % 4) {
      case 0:
        user = shared + std::to_string(rng() % 1000);
        break;
      case 1:
        user = std::string(1 + rng() % 5, static_cast<char>('a' + rng() % 3));
        break;  // short, prefixes
      case 2:
        user = std::string(1 + rng() % 3, '\0') + std::to_string(rng() % 7);
        break;  // zero bytes
      default: {
        user.resize(8 + rng() % 24);
        for (char& c : user) c = static_cast<char>(rng());
      }
    }
    entries.push_back(Entry(user, rng() % 4));  // few trailers: equal user keys with different sequences
  }
  for (const std::string& e : entries) {
    char* buf = nullptr;
    rocksdb::KeyHandle h = rep->Allocate(e.size(), &buf);
    std::memcpy(buf, e.data(), e.size());
    rep->Insert(h);
  }
  rep->MarkReadOnly();

  std::vector<std::string> expected = entries;
  std::stable_sort(expected.begin(), expected.end(),
                   [&](const std::string& a, const std::string& b) { return cmp(a.data(), b.data()) < 0; });
  std::unique_ptr<rocksdb::MemTableRep::Iterator> it(rep->GetIterator(nullptr));
  std::vector<std::string> seen;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    seen.emplace_back(it->key(), rocksdb::GetLengthPrefixedSlice(it->key()).size() + 1);
  }
  ASSERT_EQ(seen.size(), expected.size());
  for (size_t i = 1; i < seen.size(); ++i) {
    ASSERT_LE(cmp(seen[i - 1].data(), seen[i].data()), 0) << "out of order at " << i;
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    ASSERT_EQ(cmp(seen[i].data(), expected[i].data()), 0) << "differs from the comparator's order at " << i;
  }

  // Seek, SeekForPrev, Prev and SeekToLast agree with that order.
  const std::string& target = expected[expected.size() / 2];
  it->Seek(rocksdb::GetLengthPrefixedSlice(target.data()), nullptr);
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(cmp(it->key(), target.data()), 0);
  it->Seek(rocksdb::Slice(), target.data());
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(cmp(it->key(), target.data()), 0);
  it->SeekForPrev(rocksdb::GetLengthPrefixedSlice(target.data()), nullptr);
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(cmp(it->key(), target.data()), 0);
  it->SeekToLast();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(cmp(it->key(), expected.back().data()), 0);
  it->Prev();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(cmp(it->key(), expected[expected.size() - 2].data()), 0);
  it->SeekToFirst();
  it->Prev();
  EXPECT_FALSE(it->Valid());
  const std::string past = Entry(std::string(40, '\xff'), 0);
  it->Seek(rocksdb::GetLengthPrefixedSlice(past.data()), nullptr);
  EXPECT_FALSE(it->Valid());
  it->SeekForPrev(rocksdb::GetLengthPrefixedSlice(past.data()), nullptr);
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(cmp(it->key(), expected.back().data()), 0);
  it.reset();
}

// A scan of a memtable still being written (an export right after an import) reads a sorted snapshot: what was
// inserted before the iterator was made, in the comparator's order, unchanged by later inserts; a new iterator
// sees those too. Readers copy the entries while the one writer appends (more than one chunk of the entry
// log, so its chunks are added under the readers' feet).
TEST(PooledMemTableRep, MutableIteratorsReadASortedSnapshotWhileTheWriterAppends) {
  auto pool = std::make_shared<MemtableBlockPool>(4 * kBlock);
  auto factory = NewPooledMemTableRepFactory(std::make_shared<rocksdb::VectorRepFactory>(), pool, nullptr);
  InternalKeys cmp;
  std::unique_ptr<rocksdb::MemTableRep> rep(factory->CreateMemTableRep(cmp, nullptr, nullptr, nullptr));
  auto insert = [&](const std::string& e) {
    char* buf = nullptr;
    rocksdb::KeyHandle h = rep->Allocate(e.size(), &buf);
    std::memcpy(buf, e.data(), e.size());
    rep->Insert(h);
  };
  auto read_all = [&](rocksdb::MemTableRep::Iterator& it) {
    std::vector<std::string> seen;
    for (it.SeekToFirst(); it.Valid(); it.Next())
      seen.emplace_back(it.key(), rocksdb::GetLengthPrefixedSlice(it.key()).size() + 1);
    return seen;
  };
  auto sorted = [&](std::vector<std::string> v) {
    std::sort(v.begin(), v.end(),
              [&](const std::string& a, const std::string& b) { return cmp(a.data(), b.data()) < 0; });
    return v;
  };

  std::mt19937_64 rng(11);
  std::vector<std::string> first;
  for (int i = 0; i < 1000; ++i) first.push_back(Entry("k" + std::to_string(rng() % 100000), i));
  for (const auto& e : first) insert(e);
  std::unique_ptr<rocksdb::MemTableRep::Iterator> early(rep->GetIterator(nullptr));

  std::vector<std::string> second;
  for (int i = 0; i < 1000; ++i) second.push_back(Entry("k" + std::to_string(rng() % 100000), 1000 + i));
  for (const auto& e : second) insert(e);
  EXPECT_EQ(read_all(*early), sorted(first)) << "an iterator reads what was there when it was made";
  std::vector<std::string> both = first;
  both.insert(both.end(), second.begin(), second.end());
  std::unique_ptr<rocksdb::MemTableRep::Iterator> late(rep->GetIterator(nullptr));
  EXPECT_EQ(read_all(*late), sorted(both)) << "a new iterator reads the entries added since";
  late->Seek(rocksdb::GetLengthPrefixedSlice(second[5].data()), nullptr);
  ASSERT_TRUE(late->Valid());
  EXPECT_EQ(cmp(late->key(), second[5].data()), 0);

  // The writer appends ~5 chunks' worth while a reader makes iterators; every one is sorted and holds a
  // prefix of the insertion order (the entries before it was made: at least what was there at its start).
  constexpr int kMore = 40000;
  std::vector<std::string> more;
  for (int i = 0; i < kMore; ++i) more.push_back(Entry("m" + std::to_string(rng()), 2000 + i));
  std::atomic<int> inserted{0};
  std::thread writer([&] {
    for (const auto& e : more) {
      insert(e);
      inserted.fetch_add(1, std::memory_order_release);
    }
  });
  size_t last = 0;
  for (int round = 0; round < 200 && inserted.load(std::memory_order_acquire) < kMore; ++round) {
    const size_t at_least = 2000 + static_cast<size_t>(inserted.load(std::memory_order_acquire));
    std::unique_ptr<rocksdb::MemTableRep::Iterator> it(rep->GetIterator(nullptr));
    size_t n = 0;
    const char* prev = nullptr;
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++n) {
      if (prev != nullptr) {
        ASSERT_LE(cmp(prev, it->key()), 0) << "round " << round << " entry " << n;
      }
      prev = it->key();
    }
    ASSERT_GE(n, at_least) << "round " << round;
    ASSERT_GE(n, last) << "round " << round;
    last = n;
  }
  writer.join();
  rep->MarkReadOnly();
  std::unique_ptr<rocksdb::MemTableRep::Iterator> all(rep->GetIterator(nullptr));
  both.insert(both.end(), more.begin(), more.end());
  EXPECT_EQ(read_all(*all), sorted(both)) << "the flush reads every entry once the memtable is read-only";
}

}  // namespace
}  // namespace sluice::store::internal
