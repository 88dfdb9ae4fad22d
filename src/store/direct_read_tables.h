// A RocksDB file system that opens one column family's table files for reading with O_DIRECT, and every other
// file as the file system underneath does.
//
// Why: the events column family is never read by key, only scanned, one partition (or one day of them) at a
// time, and each scan is the export of those hours: its blocks are read about once. Flushes and compactions
// already write them with O_DIRECT, so a scan found none of them in the page cache, and reading them through
// it cost the kernel its page allocation, accounting and readahead: ~13% of a whole-server export right after
// an import (`ksys_readahead` under the scan, bench/pipeline/bench_export_process). Read with O_DIRECT, the
// blocks go from the disk straight into RocksDB's buffers. The small column families (profiles, identity,
// metadata) are read by key and keep the page cache: their hot blocks outgrow the block cache.
//
// RocksDB's use_direct_reads is one switch for the whole database; this decides per table file, by the column
// family its table properties name (read once per file, at its first open).
#pragma once

#include <rocksdb/file_system.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace sluice::store::internal {

class DirectReadTables final : public rocksdb::FileSystemWrapper {
 public:
  /// Opens the table files (".sst") of `column_family` with O_DIRECT for reading; everything else goes to
  /// `base` unchanged. The file system must support O_DIRECT (RocksStore checks its data dir first).
  DirectReadTables(const std::shared_ptr<rocksdb::FileSystem>& base, std::string column_family);

  static const char* kClassName() { return "SluiceDirectReadTables"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewRandomAccessFile(const std::string& fname, const rocksdb::FileOptions& options,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* result,
                                        rocksdb::IODebugContext* dbg) override;

  struct Stats {
    uint64_t direct = 0;    // table files of the column family opened with O_DIRECT
    uint64_t buffered = 0;  // other table files (other column families, or properties that could not be read)
  };
  Stats stats() const;

 private:
  /// Whether `fname` is a table file of column_family_, from its table properties; remembered per file name
  /// (a table file is never rewritten under the same name).
  bool IsColumnFamilyTable(const std::string& fname);

  static constexpr size_t kMaxKnownFiles = 8192;

  const std::string column_family_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, bool> known_;  // guarded by mu_
  Stats stats_;                                  // guarded by mu_
};

}  // namespace sluice::store::internal
