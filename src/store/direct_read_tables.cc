#include "store/direct_read_tables.h"

#include <rocksdb/options.h>
#include <rocksdb/sst_file_reader.h>
#include <rocksdb/table_properties.h>

#include <utility>

namespace sluice::store::internal {
namespace {

bool IsTableFile(const std::string& fname) {
  constexpr std::string_view kSuffix = ".sst";
  return fname.size() > kSuffix.size() && fname.compare(fname.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
}

}  // namespace

DirectReadTables::DirectReadTables(const std::shared_ptr<rocksdb::FileSystem>& base, std::string column_family)
    : rocksdb::FileSystemWrapper(base), column_family_(std::move(column_family)) {}

rocksdb::IOStatus DirectReadTables::NewRandomAccessFile(const std::string& fname,
                                                        const rocksdb::FileOptions& options,
                                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* result,
                                                        rocksdb::IODebugContext* dbg) {
  if (options.use_direct_reads || !IsTableFile(fname)) {
    return target()->NewRandomAccessFile(fname, options, result, dbg);
  }
  const bool direct = IsColumnFamilyTable(fname);
  {
    std::lock_guard lock(mu_);
    ++(direct ? stats_.direct : stats_.buffered);
  }
  if (!direct) return target()->NewRandomAccessFile(fname, options, result, dbg);
  rocksdb::FileOptions with_direct = options;
  with_direct.use_direct_reads = true;
  return target()->NewRandomAccessFile(fname, with_direct, result, dbg);
}

bool DirectReadTables::IsColumnFamilyTable(const std::string& fname) {
  {
    std::lock_guard lock(mu_);
    if (auto it = known_.find(fname); it != known_.end()) return it->second;
  }
  // The table's own properties name its column family. Read through the default Env (the file system under
  // this one, page cache and all): only the file's tail is read. A file whose properties cannot be read is
  // opened as before, through the page cache; RocksDB's own open then reports what is wrong with it.
  rocksdb::Options options;
  rocksdb::SstFileReader reader(options);
  bool match = false;
  if (reader.Open(fname).ok()) {
    const auto props = reader.GetTableProperties();
    match = props != nullptr && props->column_family_name == column_family_;
  }
  std::lock_guard lock(mu_);
  // Bounded: names of deleted files are not removed one by one (RocksDB deletes them through its
  // SstFileManager, not through this file system); forgetting them all now and then costs one properties read
  // per table file opened again.
  if (known_.size() >= kMaxKnownFiles) known_.clear();
  known_.emplace(fname, match);
  return match;
}

DirectReadTables::Stats DirectReadTables::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace sluice::store::internal
