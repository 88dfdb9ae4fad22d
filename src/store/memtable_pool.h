// Memtable memory from a pool of transparent-huge-page blocks, recycled from one memtable to the next.
//
// Why: profiles of ingest charged ~15% of the server's CPU to the first touch of memtable memory (page faults
// under MemTable::Add, each costing several µs on paravirtualised VMs, plus the first store into every fresh
// line). RocksDB's arena takes its blocks from malloc, so every new memtable got memory the process had
// never touched (glibc's per-thread heaps: a block freed by one thread's arena is reused only by that
// thread). Here the events column family's memtable entries come from 2 MiB blocks advised as huge pages (one
// fault per 2 MiB instead of 512) that go back to a pool when the memtable is flushed, so the next memtable
// writes into memory that is already mapped.
//
// The same rep also sorts the entries for its iterators itself (memtable_pool.cc, SortEntries): a read-only
// memtable's for its flush, a snapshot of a mutable one's for a scan (an export right after an import); by
// the entries' first 16 key bytes in a compact array, instead of VectorRep's std::sort over pointers into
// 64 MB.
//
// The blocks are charged to the store's WriteBufferManager exactly as RocksDB's arena charges its own
// (reserved while the memtable is mutable, scheduled for release when it becomes immutable, released when it
// is destroyed), so the memtable budget, the writers' stall and the free-space check see the same numbers.
#pragma once

#include <rocksdb/memtablerep.h>
#include <rocksdb/write_buffer_manager.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace sluice::store::internal {

/// A process-local pool of equally sized, 2 MiB-aligned anonymous blocks. Thread-safe.
class MemtableBlockPool {
 public:
  static constexpr size_t kBlockBytes = 2u << 20;  // one x86-64 huge page

  /// Keeps at most `max_free_bytes` of returned blocks for reuse; more are unmapped. With `reserve_bytes`, that
  /// much is mapped and touched now (and kept: the pool then holds at least that much), so no memtable ever
  /// takes a page fault or waits for the kernel to zero a fresh page: the memory budget is reserved at start,
  /// as Seastar-style servers reserve theirs. Why: in a fresh server the kernel's zeroing of the first
  /// memtables' huge pages was ~13% of a 300,000-event ingest's CPU and made the first batches the slowest
  /// (bench/load). A reservation the kernel refuses is not an error: blocks are then mapped on demand.
  explicit MemtableBlockPool(size_t max_free_bytes, size_t reserve_bytes = 0);
  ~MemtableBlockPool();
  MemtableBlockPool(const MemtableBlockPool&) = delete;
  MemtableBlockPool& operator=(const MemtableBlockPool&) = delete;

  /// A block of kBlockBytes (a reused one when the pool has one), or nullptr when the kernel refuses memory.
  char* Take();
  void Return(char* block);

  struct Stats {
    uint64_t mapped = 0;  // blocks ever mapped
    uint64_t reused = 0;  // Take() calls served from the pool
    uint64_t reserved = 0;  // blocks mapped and touched at construction
    size_t free = 0;      // blocks in the pool now
  };
  Stats stats() const;

 private:
  const size_t max_free_;
  mutable std::mutex mu_;
  std::vector<char*> free_;
  Stats stats_;
};

/// A MemTableRepFactory that wraps `inner` (the events column family's VectorRepFactory) and serves the
/// memtable entries' memory from `pool`, charging it to `write_buffers` (may be null).
std::shared_ptr<rocksdb::MemTableRepFactory> NewPooledMemTableRepFactory(
    std::shared_ptr<rocksdb::MemTableRepFactory> inner, std::shared_ptr<MemtableBlockPool> pool,
    std::shared_ptr<rocksdb::WriteBufferManager> write_buffers);

}  // namespace sluice::store::internal
