#include "store/memtable_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <utility>

namespace sluice::store::internal {
namespace {

/// Maps `bytes` (a multiple of kBlockBytes) aligned to kBlockBytes, so the block can be one huge page.
char* MapAligned(size_t bytes) {
  const size_t align = MemtableBlockPool::kBlockBytes;
  void* p = ::mmap(nullptr, bytes + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  char* raw = static_cast<char*>(p);
  char* aligned =
      reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(raw) + align - 1) & ~(uintptr_t{align} - 1));
  if (aligned > raw) ::munmap(raw, aligned - raw);
  const size_t tail = (raw + bytes + align) - (aligned + bytes);
  if (tail > 0) ::munmap(aligned + bytes, tail);
  // Advice only: without transparent huge pages (THP "never") the block still works with 4 KiB pages.
  (void)::madvise(aligned, bytes, MADV_HUGEPAGE);
  return aligned;
}

/// Entries larger than a block (rare: an event is at most 1 MiB, a block 2 MiB) take their own mapping.
struct LargeAllocation {
  char* data;
  size_t bytes;
};

/// The entries of a memtable in key order (all of a read-only one, a snapshot of a mutable one), shared by
/// its iterators.
using SortedEntries = std::vector<const char*>;

/// The entries of one memtable in insertion (= memory) order, for SortEntries. Appended by the memtable's one
/// writer (allow_concurrent_memtable_write=false) without a lock; copied by any thread at any time, also
/// while the writer appends: entries live in chunks that never move, and the count is published (release)
/// after the entry it covers is written. The writer takes the lock only to add a chunk.
class EntryLog {
 public:
  static constexpr size_t kChunkEntries = 8192;

  void Append(const char* entry) {
    const size_t n = size_.load(std::memory_order_relaxed);  // only this thread writes size_
    if (n / kChunkEntries == chunks_.size()) {
      auto chunk = std::make_unique<const char*[]>(kChunkEntries);
      std::lock_guard lock(mu_);
      chunks_.push_back(std::move(chunk));
      bytes_.store(chunks_.size() * kChunkEntries * sizeof(const char*), std::memory_order_relaxed);
    }
    chunks_[n / kChunkEntries][n % kChunkEntries] = entry;
    size_.store(n + 1, std::memory_order_release);
  }

  size_t size() const { return size_.load(std::memory_order_acquire); }

  /// The entries appended so far, in order.
  std::vector<const char*> Snapshot() const {
    std::lock_guard lock(mu_);
    const size_t n = size_.load(std::memory_order_acquire);
    std::vector<const char*> out(n);
    for (size_t c = 0, done = 0; done < n; ++c) {
      const size_t take = std::min(kChunkEntries, n - done);
      std::memcpy(out.data() + done, chunks_[c].get(), take * sizeof(const char*));
      done += take;
    }
    return out;
  }

  /// Bytes of its chunks (written by the writer, read by anyone).
  size_t MemoryBytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  mutable std::mutex mu_;  // guards chunks_ against the writer's push_back while a reader copies
  std::vector<std::unique_ptr<const char*[]>> chunks_;
  std::atomic<size_t> size_{0};
  std::atomic<size_t> bytes_{0};
};

/// Sorts memtable entries (varint32 length + internal key + value) in the memtable's order. A flush used to
/// spend ~11% of all ingest CPU in the vector memtable's std::sort, nearly all of it cache misses: every
/// comparison dereferenced two entries scattered over 64 MB. Here each entry's first 16 user-key bytes (an
/// event key's partition and the start of its hash) are read once, in memory order, into a compact array that
/// sorts inside the cache; only entries whose 16 bytes tie are compared by the memtable's comparator, so the
/// order is exactly the comparator's.
SortedEntries SortEntries(const std::vector<const char*>& entries,
                          const rocksdb::MemTableRep::KeyComparator& cmp) {
  struct Keyed {
    uint64_t k0, k1;
    const char* entry;
  };
  std::vector<Keyed> keyed;
  keyed.reserve(entries.size());
  for (const char* e : entries) {
    const rocksdb::Slice internal = rocksdb::GetLengthPrefixedSlice(e);
    const size_t user = internal.size() >= 8 ? internal.size() - 8 : internal.size();
    unsigned char prefix[16] = {};  // zero padded: a tie falls back to the comparator, which decides exactly
    std::memcpy(prefix, internal.data(), std::min<size_t>(user, sizeof(prefix)));
    uint64_t k0 = 0, k1 = 0;
    for (int i = 0; i < 8; ++i) k0 = (k0 << 8) | prefix[i];
    for (int i = 8; i < 16; ++i) k1 = (k1 << 8) | prefix[i];
    keyed.push_back({k0, k1, e});
  }
  std::sort(keyed.begin(), keyed.end(), [&cmp](const Keyed& a, const Keyed& b) {
    if (a.k0 != b.k0) return a.k0 < b.k0;
    if (a.k1 != b.k1) return a.k1 < b.k1;
    return cmp(a.entry, b.entry) < 0;
  });
  SortedEntries out;
  out.reserve(keyed.size());
  for (const Keyed& k : keyed) out.push_back(k.entry);
  return out;
}

/// Iterates a read-only memtable's sorted entries (what VectorRep's iterator does after its own sort).
class SortedIterator final : public rocksdb::MemTableRep::Iterator {
 public:
  static constexpr size_t kPrefetchAhead = 8;

  SortedIterator(std::shared_ptr<const SortedEntries> sorted, const rocksdb::MemTableRep::KeyComparator& cmp)
      : sorted_(std::move(sorted)), cmp_(cmp), pos_(sorted_->size()) {}

  bool Valid() const override { return pos_ < sorted_->size(); }
  const char* key() const override { return (*sorted_)[pos_]; }
  void Next() override {
    ++pos_;
    // Entries in key order are scattered over the memtable's blocks: without a prefetch every step of a flush
    // waited for a cache miss on the next entry (~3% of ingest CPU in MemTableIterator::key). Fetch a few ahead.
    if (pos_ + kPrefetchAhead < sorted_->size()) __builtin_prefetch((*sorted_)[pos_ + kPrefetchAhead]);
  }
  void Prev() override { pos_ = pos_ == 0 ? sorted_->size() : pos_ - 1; }
  void Seek(const rocksdb::Slice& internal_key, const char* memtable_key) override {
    auto it =
        memtable_key != nullptr
            ? std::lower_bound(sorted_->begin(), sorted_->end(), memtable_key,
                               [this](const char* a, const char* b) { return cmp_(a, b) < 0; })
            : std::lower_bound(sorted_->begin(), sorted_->end(), internal_key,
                               [this](const char* a, const rocksdb::Slice& k) { return cmp_(a, k) < 0; });
    pos_ = static_cast<size_t>(it - sorted_->begin());
  }
  void SeekForPrev(const rocksdb::Slice& internal_key, const char* memtable_key) override {
    Seek(internal_key, memtable_key);
    if (!Valid()) SeekToLast();
    while (Valid() && (memtable_key != nullptr ? cmp_(key(), memtable_key) : cmp_(key(), internal_key)) > 0)
      Prev();
  }
  void SeekToFirst() override { pos_ = 0; }
  void SeekToLast() override { pos_ = sorted_->empty() ? 0 : sorted_->size() - 1; }

 private:
  std::shared_ptr<const SortedEntries> sorted_;
  const rocksdb::MemTableRep::KeyComparator& cmp_;
  size_t pos_;  // == size(): not valid
};

class PooledRep final : public rocksdb::MemTableRep {
 public:
  PooledRep(std::unique_ptr<rocksdb::MemTableRep> inner, const KeyComparator& cmp,
            rocksdb::Allocator* allocator, std::shared_ptr<MemtableBlockPool> pool,
            std::shared_ptr<rocksdb::WriteBufferManager> write_buffers)
      : MemTableRep(allocator),
        inner_(std::move(inner)),
        cmp_(cmp),
        pool_(std::move(pool)),
        write_buffers_(std::move(write_buffers)) {}

  ~PooledRep() override {
    inner_.reset();  // nothing may point into the blocks past this
    sorted_.reset();
    for (char* b : blocks_) pool_->Return(b);
    for (const LargeAllocation& l : large_) ::munmap(l.data, l.bytes);
    if (write_buffers_ != nullptr && charged_ > 0) {
      if (!scheduled_) write_buffers_->ScheduleFreeMem(charged_);
      write_buffers_->FreeMem(charged_);
    }
  }

  rocksdb::KeyHandle Allocate(const size_t len, char** buf) override {
    if (len > MemtableBlockPool::kBlockBytes) {
      const size_t bytes = (len + MemtableBlockPool::kBlockBytes - 1) & ~(MemtableBlockPool::kBlockBytes - 1);
      char* p = MapAligned(bytes);
      if (p == nullptr) throw std::bad_alloc();  // what RocksDB's own arena (operator new) does
      large_.push_back({p, bytes});
      Charge(bytes);
      *buf = p;
      return p;
    }
    if (len > left_) {
      char* block = pool_->Take();
      if (block == nullptr) throw std::bad_alloc();
      blocks_.push_back(block);
      Charge(MemtableBlockPool::kBlockBytes);
      next_ = block;
      left_ = MemtableBlockPool::kBlockBytes;
    }
    char* p = next_;
    next_ += len;
    left_ -= len;
    *buf = p;
    return p;
  }

  // Every entry is also recorded here, in insertion (= memory) order, for SortEntries (flushes and scans).
  void Insert(rocksdb::KeyHandle handle) override {
    inner_->Insert(handle);
    Record(handle);
  }
  bool InsertKey(rocksdb::KeyHandle handle) override { return inner_->InsertKey(handle) && Record(handle); }
  void InsertWithHint(rocksdb::KeyHandle handle, void** hint) override {
    inner_->InsertWithHint(handle, hint);
    Record(handle);
  }
  bool InsertKeyWithHint(rocksdb::KeyHandle handle, void** hint) override {
    return inner_->InsertKeyWithHint(handle, hint) && Record(handle);
  }
  bool Contains(const char* key) const override { return inner_->Contains(key); }

  /// The memtable became immutable: like RocksDB's AllocTracker, its memory stops counting as mutable.
  void MarkReadOnly() override {
    inner_->MarkReadOnly();
    if (write_buffers_ != nullptr && !scheduled_ && charged_ > 0) write_buffers_->ScheduleFreeMem(charged_);
    scheduled_ = true;
  }
  void MarkFlushed() override { inner_->MarkFlushed(); }
  void Get(const rocksdb::LookupKey& k, void* callback_args,
           bool (*callback_func)(void* arg, const char* entry)) override {
    inner_->Get(k, callback_args, callback_func);
  }
  uint64_t ApproximateNumEntries(const rocksdb::Slice& start_ikey, const rocksdb::Slice& end_key) override {
    return inner_->ApproximateNumEntries(start_ikey, end_key);
  }
  void UniqueRandomSample(const uint64_t num_entries, const uint64_t target_sample_size,
                          std::unordered_set<const char*>* entries) override {
    inner_->UniqueRandomSample(num_entries, target_sample_size, entries);
  }
  /// The entries' blocks count here: MemTable::ShouldFlushNow adds this to its arena's usage, so the memtable
  /// still flushes at write_buffer_size.
  size_t ApproximateMemoryUsage() override {
    return inner_->ApproximateMemoryUsage() + charged_atomic_.load(std::memory_order_relaxed) +
           entries_.MemoryBytes();
  }
  /// Iterators read the entries sorted by SortEntries: all of a read-only memtable (the flush, scans of a
  /// memtable waiting for its flush), sorted once; a snapshot of a mutable one (a scan of the partitions still
  /// being written, e.g. an export right after an import), sorted again only when entries were added since
  /// the last one. The vector rep's own iterator std::sorts a copy of its pointers for every iterator, each
  /// comparison two cache misses into 64 MB: ~7% of an export right after an import
  /// (bench/pipeline/bench_export_process). The snapshot holds every entry inserted before the iterator was
  /// made; RocksDB's memtable iterator skips those newer than its read's sequence number.
  /// RocksDB destroys an iterator made "in its arena" by calling only its destructor, so such iterators live
  /// in storage this rep frees when it is destroyed (a memtable outlives its iterators).
  Iterator* GetIterator(rocksdb::Arena* arena) override {
    std::lock_guard lock(iterators_mu_);
    if (sorted_ == nullptr || sorted_->size() != entries_.size()) {
      sorted_ = std::make_shared<const SortedEntries>(SortEntries(entries_.Snapshot(), cmp_));
    }
    if (arena == nullptr) return new SortedIterator(sorted_, cmp_);
    iterator_storage_.push_back(std::make_unique<unsigned char[]>(sizeof(SortedIterator)));
    return new (iterator_storage_.back().get()) SortedIterator(sorted_, cmp_);
  }
  // The vector rep has no prefix index: its prefix iterator is its plain one (prefix scans of partitions).
  Iterator* GetDynamicPrefixIterator(rocksdb::Arena* arena) override { return GetIterator(arena); }
  bool IsMergeOperatorSupported() const override { return inner_->IsMergeOperatorSupported(); }
  bool IsSnapshotSupported() const override { return inner_->IsSnapshotSupported(); }

 private:
  bool Record(rocksdb::KeyHandle handle) {
    entries_.Append(static_cast<const char*>(handle));
    return true;
  }

  void Charge(size_t bytes) {
    charged_ += bytes;
    charged_atomic_.store(charged_, std::memory_order_relaxed);
    if (write_buffers_ != nullptr) write_buffers_->ReserveMem(bytes);
  }

  std::unique_ptr<rocksdb::MemTableRep> inner_;
  const KeyComparator& cmp_;  // owned by the MemTable, which owns this rep
  std::shared_ptr<MemtableBlockPool> pool_;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers_;
  // Written only by the one thread inserting into the memtable (allow_concurrent_memtable_write=false).
  std::vector<char*> blocks_;
  std::vector<LargeAllocation> large_;
  char* next_ = nullptr;
  size_t left_ = 0;
  size_t charged_ = 0;
  std::atomic<size_t> charged_atomic_{0};  // read by other threads (memtable size properties)
  bool scheduled_ = false;
  EntryLog entries_;
  std::mutex iterators_mu_;  // iterators may be made by several threads at once (guards sorted_)
  std::shared_ptr<const SortedEntries> sorted_;
  std::vector<std::unique_ptr<unsigned char[]>> iterator_storage_;
};

class PooledFactory final : public rocksdb::MemTableRepFactory {
 public:
  PooledFactory(std::shared_ptr<rocksdb::MemTableRepFactory> inner, std::shared_ptr<MemtableBlockPool> pool,
                std::shared_ptr<rocksdb::WriteBufferManager> write_buffers)
      : inner_(std::move(inner)), pool_(std::move(pool)), write_buffers_(std::move(write_buffers)) {}

  using rocksdb::MemTableRepFactory::CreateMemTableRep;
  rocksdb::MemTableRep* CreateMemTableRep(const rocksdb::MemTableRep::KeyComparator& cmp,
                                          rocksdb::Allocator* allocator,
                                          const rocksdb::SliceTransform* transform,
                                          rocksdb::Logger* logger) override {
    std::unique_ptr<rocksdb::MemTableRep> inner(inner_->CreateMemTableRep(cmp, allocator, transform, logger));
    return new PooledRep(std::move(inner), cmp, allocator, pool_, write_buffers_);
  }
  const char* Name() const override { return "SluicePooledMemTableRepFactory"; }
  bool IsInsertConcurrentlySupported() const override { return false; }
  bool CanHandleDuplicatedKey() const override { return inner_->CanHandleDuplicatedKey(); }

 private:
  std::shared_ptr<rocksdb::MemTableRepFactory> inner_;
  std::shared_ptr<MemtableBlockPool> pool_;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers_;
};

}  // namespace

MemtableBlockPool::MemtableBlockPool(size_t max_free_bytes, size_t reserve_bytes)
    : max_free_(std::max(max_free_bytes, reserve_bytes) / kBlockBytes) {
  const size_t blocks = reserve_bytes / kBlockBytes;
  free_.reserve(blocks);
  for (size_t i = 0; i < blocks; ++i) {
    char* b = MapAligned(kBlockBytes);
    if (b == nullptr) break;
    // Populate (and zero) the whole block now. MADV_POPULATE_WRITE (Linux 5.14) does it in one call; an older
    // kernel refuses it and the block is touched page by page instead.
    if (::madvise(b, kBlockBytes, MADV_POPULATE_WRITE) != 0) {
      for (size_t off = 0; off < kBlockBytes; off += 4096) static_cast<volatile char*>(b)[off] = 0;
    }
    free_.push_back(b);
  }
  stats_.mapped = stats_.reserved = free_.size();
}

MemtableBlockPool::~MemtableBlockPool() {
  for (char* b : free_) ::munmap(b, kBlockBytes);
}

char* MemtableBlockPool::Take() {
  {
    std::lock_guard lock(mu_);
    if (!free_.empty()) {
      char* b = free_.back();
      free_.pop_back();
      ++stats_.reused;
      return b;
    }
    ++stats_.mapped;
  }
  return MapAligned(kBlockBytes);
}

void MemtableBlockPool::Return(char* block) {
  {
    std::lock_guard lock(mu_);
    if (free_.size() < max_free_) {
      free_.push_back(block);
      return;
    }
  }
  ::munmap(block, kBlockBytes);
}

MemtableBlockPool::Stats MemtableBlockPool::stats() const {
  std::lock_guard lock(mu_);
  Stats s = stats_;
  s.free = free_.size();
  return s;
}

std::shared_ptr<rocksdb::MemTableRepFactory> NewPooledMemTableRepFactory(
    std::shared_ptr<rocksdb::MemTableRepFactory> inner, std::shared_ptr<MemtableBlockPool> pool,
    std::shared_ptr<rocksdb::WriteBufferManager> write_buffers) {
  return std::make_shared<PooledFactory>(std::move(inner), std::move(pool), std::move(write_buffers));
}

}  // namespace sluice::store::internal
