// Tests of the pooled memtable memory (store/memtable_pool.h): block reuse, the bound on kept blocks, and that
// the blocks are charged to the WriteBufferManager the way RocksDB's own arena charges memtable memory.
#include "store/memtable_pool.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <set>
#include <string>

#include <rocksdb/memtablerep.h>
#include <rocksdb/slice.h>
#include <rocksdb/write_buffer_manager.h>

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
    for (it->SeekToFirst(); it->Valid(); it->Next()) seen += rocksdb::GetLengthPrefixedSlice(it->key()).ToString();
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

}  // namespace
}  // namespace sluice::store::internal
