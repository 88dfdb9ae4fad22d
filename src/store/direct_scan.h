// Event scans read table files with O_DIRECT; everything else (compaction, point lookups) as before.
//
// Why: an export scans a day of events once. Flushes and compactions write the events' table files with
// O_DIRECT, so a scan finds none of their pages in the page cache, and reading them through it cost the
// kernel page allocation, accounting and readahead for pages read once: ~13% of a whole-server export right
// after an import (`ksys_readahead` under the scan, bench/pipeline/bench_export_process). Opening the table
// files with O_DIRECT for every reader (RocksDB's use_direct_reads, or per file) was measured and reverted
// (docs/operations.md): compaction reads through the same files, and its synchronous direct reads drained L0
// slowly enough to stall ingest. So the choice is made per *thread*, not per file:
//
//   - DirectScanFileSystem wraps every table file (".sst") RocksDB opens for random access. A read on a
//     thread without a DirectScanScope (compaction, flush verification, point lookups) goes to the file as
//     RocksDB opened it, page cache, kernel readahead and all.
//   - A DirectScanScope, alive on the scanning thread for the length of one scan, makes that thread's reads
//     of table files go through its own O_DIRECT descriptors into a few aligned read-ahead windows
//     (kWindowBytes each, least recently used replaced), from which each block is copied into RocksDB's
//     buffer; RocksDB's prefetch hints become no-ops there. A window's reads start small and double while
//     they follow each other, so a point read (a table's footer and index at open) costs one small read. The
//     scope closes its descriptors and frees its windows when it ends.
//
// Table files are immutable once written, so a window never goes stale during a scan. A file system without
// O_DIRECT (tmpfs) or a read the windows cannot serve (larger than half a window) falls back to the file as
// RocksDB opened it. Checksums are verified by RocksDB on the copied blocks exactly as before.
#pragma once

#include <rocksdb/file_system.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sluice::store::internal {

class DirectScanFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  explicit DirectScanFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base);

  static const char* kClassName() { return "SluiceDirectScanFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewRandomAccessFile(const std::string& fname, const rocksdb::FileOptions& options,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* result,
                                        rocksdb::IODebugContext* dbg) override;
};

/// Makes this thread's table-file reads direct (see above) while it lives. Scopes nest: an inner one on a
/// thread that already has one does nothing. Not movable; one thread.
class DirectScanScope {
 public:
  static constexpr size_t kWindowBytes = 512u << 10;
  /// The first read of a file into a window (then doubling while reads continue each other).
  static constexpr size_t kFirstReadBytes = 64u << 10;
  static constexpr size_t kWindows = 8;

  DirectScanScope();
  ~DirectScanScope();
  DirectScanScope(const DirectScanScope&) = delete;
  DirectScanScope& operator=(const DirectScanScope&) = delete;

  /// What this scope did (for tests): window reads from the disk, reads served from windows, reads passed to
  /// the file as RocksDB opened it.
  struct Stats {
    uint64_t window_reads = 0;
    uint64_t bytes_read = 0;  // by the window reads
    uint64_t copies = 0;
    uint64_t fallbacks = 0;
  };
  const Stats& stats() const { return stats_; }

  /// The scope active on this thread, or nullptr.
  static DirectScanScope* Current();

  /// Reads [offset, offset + n) of `fname` into `scratch` through the windows. False when the windows cannot
  /// serve it (no O_DIRECT for this file, or n too large): the caller reads it the ordinary way. A read error
  /// is returned in *status with the file named.
  bool Read(const std::string& fname, uint64_t offset, size_t n, rocksdb::Slice* result, char* scratch,
            rocksdb::IOStatus* status);
  void CountFallback() { ++stats_.fallbacks; }

 private:
  struct Window {
    std::string fname;
    int fd = -1;           // O_DIRECT descriptor of fname (kept while the window holds this file)
    uint64_t offset = 0;   // file offset of data[0], aligned
    size_t length = 0;     // valid bytes in data
    size_t next_read = 0;  // the read-ahead ramp: the last disk read's length, unless a block needed more
    uint64_t last_use = 0;
    char* data = nullptr;  // kWindowBytes, aligned
  };
  /// The window holding fname (any range), or the least recently used one emptied for it; nullptr when
  /// fname cannot be opened with O_DIRECT.
  Window* WindowFor(const std::string& fname);
  static void Release(Window& w);

  bool active_ = false;  // false for a nested scope
  uint64_t clock_ = 0;
  std::vector<Window> windows_;
  std::vector<std::string> not_direct_;  // files O_DIRECT could not open (fallback for the rest of the scope)
  Stats stats_;
};

}  // namespace sluice::store::internal
