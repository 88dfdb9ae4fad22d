#include "store/memtable_pool.h"

#include <sys/mman.h>

#include <atomic>
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
  char* aligned = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(raw) + align - 1) & ~(uintptr_t{align} - 1));
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

class PooledRep final : public rocksdb::MemTableRep {
 public:
  PooledRep(std::unique_ptr<rocksdb::MemTableRep> inner, rocksdb::Allocator* allocator,
            std::shared_ptr<MemtableBlockPool> pool, std::shared_ptr<rocksdb::WriteBufferManager> write_buffers)
      : MemTableRep(allocator),
        inner_(std::move(inner)),
        pool_(std::move(pool)),
        write_buffers_(std::move(write_buffers)) {}

  ~PooledRep() override {
    inner_.reset();  // nothing may point into the blocks past this
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

  void Insert(rocksdb::KeyHandle handle) override { inner_->Insert(handle); }
  bool InsertKey(rocksdb::KeyHandle handle) override { return inner_->InsertKey(handle); }
  void InsertWithHint(rocksdb::KeyHandle handle, void** hint) override { inner_->InsertWithHint(handle, hint); }
  bool InsertKeyWithHint(rocksdb::KeyHandle handle, void** hint) override {
    return inner_->InsertKeyWithHint(handle, hint);
  }
  void InsertWithHintConcurrently(rocksdb::KeyHandle handle, void** hint) override {
    inner_->InsertWithHintConcurrently(handle, hint);
  }
  bool InsertKeyWithHintConcurrently(rocksdb::KeyHandle handle, void** hint) override {
    return inner_->InsertKeyWithHintConcurrently(handle, hint);
  }
  void InsertConcurrently(rocksdb::KeyHandle handle) override { inner_->InsertConcurrently(handle); }
  bool InsertKeyConcurrently(rocksdb::KeyHandle handle) override { return inner_->InsertKeyConcurrently(handle); }
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
    return inner_->ApproximateMemoryUsage() + charged_atomic_.load(std::memory_order_relaxed);
  }
  Iterator* GetIterator(rocksdb::Arena* arena) override { return inner_->GetIterator(arena); }
  Iterator* GetDynamicPrefixIterator(rocksdb::Arena* arena) override {
    return inner_->GetDynamicPrefixIterator(arena);
  }
  bool IsMergeOperatorSupported() const override { return inner_->IsMergeOperatorSupported(); }
  bool IsSnapshotSupported() const override { return inner_->IsSnapshotSupported(); }

 private:
  void Charge(size_t bytes) {
    charged_ += bytes;
    charged_atomic_.store(charged_, std::memory_order_relaxed);
    if (write_buffers_ != nullptr) write_buffers_->ReserveMem(bytes);
  }

  std::unique_ptr<rocksdb::MemTableRep> inner_;
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
};

class PooledFactory final : public rocksdb::MemTableRepFactory {
 public:
  PooledFactory(std::shared_ptr<rocksdb::MemTableRepFactory> inner, std::shared_ptr<MemtableBlockPool> pool,
                std::shared_ptr<rocksdb::WriteBufferManager> write_buffers)
      : inner_(std::move(inner)), pool_(std::move(pool)), write_buffers_(std::move(write_buffers)) {}

  using rocksdb::MemTableRepFactory::CreateMemTableRep;
  rocksdb::MemTableRep* CreateMemTableRep(const rocksdb::MemTableRep::KeyComparator& cmp,
                                          rocksdb::Allocator* allocator, const rocksdb::SliceTransform* transform,
                                          rocksdb::Logger* logger) override {
    std::unique_ptr<rocksdb::MemTableRep> inner(inner_->CreateMemTableRep(cmp, allocator, transform, logger));
    return new PooledRep(std::move(inner), allocator, pool_, write_buffers_);
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

MemtableBlockPool::MemtableBlockPool(size_t max_free_bytes) : max_free_(max_free_bytes / kBlockBytes) {}

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
