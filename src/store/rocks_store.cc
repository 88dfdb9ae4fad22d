// Store on RocksDB: one DB in the data dir, one column family per record kind so each kind gets its own
// compaction, compression and filter settings and its scans never step over another kind's keys.
//
//   column family  key                                   value
//   default        "change_seq" | "project_id"           u64 LE, merged with max (persisted counters)
//   events         project BE32 | hour BE32 | hash[16]   event v1 (codec.h)
//   partitions     project BE32 | hour BE32              writes, bytes, change_seq (merged: sum, sum, max)
//   profiles       project BE32 | distinct_id            profile JSON
//   identity       project BE32 | device_id              user_id
//   meta           len(ns) u8 | ns | key                 caller's bytes
//   projects       id BE32                               project v1 (codec.h)
#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/sst_file_manager.h>
#include <rocksdb/statistics.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/crypto.h"
#include "store/codec.h"
#include "store/direct_scan.h"
#include "store/journal.h"
#include "store/memtable_pool.h"
#include "store/merge_operators.h"
#include "store/new_project.h"
#include "store/store.h"

namespace sluice::store {
namespace {

namespace fs = std::filesystem;
using internal::PartitionCounters;

constexpr char kChangeSeqKey[] = "change_seq";
constexpr char kProjectIdKey[] = "project_id";
/// Sequence number of the last journal record applied (journal.h), written in the same batch as the record's
/// data: the persisted value says which records a restart must apply again.
constexpr char kJournalSeqKey[] = "journal_seq";

/// A write group (one journal append + one fdatasync) takes queued writes up to this many bytes: ~10
/// concurrent 2000-event calls (~1.6 MB each) share one sync.
constexpr uint64_t kMaxGroupBytes = 16u << 20;

// Column family indexes, in the order Open() passes the descriptors.
enum Cf : size_t { kDefault, kEvents, kPartitions, kProfiles, kIdentity, kMeta, kProjects, kCfCount };
constexpr std::array<const char*, kCfCount> kCfNames = {"default",  "events", "partitions", "profiles",
                                                        "identity", "meta",   "projects"};

/// Profile locks: 1024 stripes keep unrelated profiles from contending while staying a few KB.
constexpr size_t kProfileStripes = 1024;

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

/// Free space the store keeps on its filesystem beyond what pending writes and flushes need (see
/// CheckFreeSpace): a sixteenth of the filesystem, at least 2 MiB and at most 1 GiB. It absorbs what
/// RocksDB writes besides the WAL and flushes (MANIFEST, OPTIONS, its info LOG, compaction output).
uint64_t HeadroomBytes(uint64_t filesystem_bytes) {
  return std::clamp<uint64_t>(filesystem_bytes / 16, 2ull << 20, 1ull << 30);
}

/// Whether files in `dir` can be opened with O_DIRECT (not on tmpfs, for one).
bool SupportsDirectIo(const fs::path& dir) {
  const fs::path probe = dir / ".direct-io-probe";
  const int fd = ::open(probe.c_str(), O_CREAT | O_WRONLY | O_DIRECT | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
  std::error_code ec;
  fs::remove(probe, ec);
  return fd >= 0;
}

/// Memtables are arenas of multi-MB blocks that live until their flush. glibc serves blocks that large with a
/// fresh mmap and returns them with munmap, so every memtable's every page took a page fault and a zeroing
/// again (~10% of all ingest CPU in profiles: exc_page_fault under MemTable::Add). Served from the heap and
/// not trimmed back, freed memtable blocks are reused by the next memtable. The memory kept is bounded by the
/// write-buffer budget the store already has. Process-wide, set once at the first Open.
void KeepMemtableMemory() {
  static std::once_flag once;
  std::call_once(once, [] {
    ::mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest glibc allows; arena blocks are 8 MB at most
    ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
  });
}

std::string Mib(uint64_t bytes) { return std::to_string((bytes + (1u << 19)) >> 20) + " MiB"; }

/// Maps a RocksDB failure to an Error saying what to check. `what` is the operation ("writing events").
Error FromRocks(const rocksdb::Status& s, const fs::path& dir, std::string_view what) {
  const std::string detail = s.ToString();
  const std::string d = dir.string();
  if (s.IsNoSpace() || Contains(detail, "No space left")) {
    return Error(ErrorCode::kUnavailable, "disk full: free space in " + d +
                                              " (no space left on device while " + std::string(what) +
                                              "); free disk space or grow the volume (" + detail + ")");
  }
  if (s.IsIOError() && (Contains(detail, "While lock file") || Contains(detail, "lock hold"))) {
    return Error(ErrorCode::kUnavailable, "data dir " + d +
                                              " is locked by another sluice process (LOCK held): stop the other "
                                              "process or give this one its own --data-dir (" +
                                              detail + ")");
  }
  if (Contains(detail, "Permission denied") || Contains(detail, "Read-only file system")) {
    return Error(ErrorCode::kAccessDenied, "permission denied while " + std::string(what) + " in data dir " +
                                               d +
                                               ": it must be a writable directory owned by the user running "
                                               "sluice (" +
                                               detail + ")");
  }
  if (s.IsCorruption()) {
    // Loud on purpose: whoever asked gets an error, but the operator must learn that stored data is damaged.
    spdlog::error("CORRUPTION in the store {} (found while {}): {}", d, what, detail);
    return Error(ErrorCode::kInternal, "data in " + d + " is corrupted (found while " + std::string(what) +
                                           "): check the disk and restore the data dir from a backup (" +
                                           detail + ")");
  }
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut() || s.IsIncomplete()) {
    return Error(ErrorCode::kTransient, "store busy while " + std::string(what) + " in " + d + ": " + detail);
  }
  if (s.IsShutdownInProgress()) {
    return Error(ErrorCode::kUnavailable, "store in " + d + " is shutting down (" + detail + ")");
  }
  if (s.IsIOError()) {
    return Error(ErrorCode::kUnavailable, "I/O error while " + std::string(what) + " in data dir " + d +
                                              ": check the disk and the kernel log (" + detail + ")");
  }
  return Error(ErrorCode::kInternal, "RocksDB error while " + std::string(what) + " in " + d + ": " + detail);
}

Error ClosedError(const fs::path& dir) {
  return Error(ErrorCode::kUnavailable, "store in " + dir.string() + " is closed");
}

std::string EncodeU64(uint64_t v) {
  std::string out;
  internal::AppendLittleEndian64(out, v);
  return out;
}

std::string BigEndian32(uint32_t v) {
  std::string out;
  internal::AppendBigEndian32(out, v);
  return out;
}

rocksdb::BlockBasedTableOptions PointLookupTable(const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  // Index and filter blocks live in the block cache so their memory is bounded by block_cache_bytes rather
  // than growing with the number of SST files; L0's are pinned because every read consults them.
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));  // ~1% false positives for Get()
  t.format_version = 5;
  // XXH3 block checksums: this librocksdb is a portable build whose CRC32C is the table-driven software
  // one; XXH3 verifies flush/compaction/scan blocks several times faster.
  t.checksum = rocksdb::kXXH3;
  return t;
}

/// Column family tuned for small records read by key (profiles, identity, meta, projects, counters).
rocksdb::ColumnFamilyOptions SmallRecordsCf(const std::shared_ptr<rocksdb::Cache>& cache, size_t write_buffer) {
  rocksdb::ColumnFamilyOptions o;
  o.write_buffer_size = write_buffer;
  o.max_write_buffer_number = 2;
  o.level_compaction_dynamic_level_bytes = true;
  o.compression = rocksdb::kLZ4Compression;
  o.bottommost_compression = rocksdb::kZSTD;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(PointLookupTable(cache)));
  return o;
}

rocksdb::ColumnFamilyOptions EventsCf(const std::shared_ptr<rocksdb::Cache>& cache, const StoreOptions& opts,
                                      std::shared_ptr<internal::MemtableBlockPool> memtable_blocks,
                                      std::shared_ptr<rocksdb::WriteBufferManager> write_buffers) {
  rocksdb::ColumnFamilyOptions o;
  // Ingest writes ~120 MB/s of values at peak. One big memtable per flush means fewer, larger L0 files and
  // fewer L0->L1 compactions; 4 buffers let two flushes run while the writers keep filling a third (the
  // WriteBufferManager below caps their sum).
  o.write_buffer_size = opts.write_buffer_bytes;
  o.max_write_buffer_number = 4;
  o.min_write_buffer_number_to_merge = 1;
  o.target_file_size_base = 64ull << 20;
  o.max_bytes_for_level_base = 512ull << 20;
  // Dynamic level sizing keeps ~90% of the data in the last level, which bounds space amplification when
  // late events replace old keys, and makes "bottommost" mean the level holding nearly all data.
  o.level_compaction_dynamic_level_bytes = true;
  // Ingest bursts should pile up L0 files rather than stall writers: the defaults (20/36 files) would slow
  // writers after ~1.2 GB of unflushed-to-L1 data; a durable 2xx is worth more than a tidy L0.
  // 8 rather than 4: events of several hours arrive together, so every L0 file overlaps most of the base
  // level and each L0->base compaction rewrites it; merging twice the L0 data per rewrite halves that cost.
  // A 5M-event ingest spent ~50% of the server's CPU in compaction with 4 (bench/load, per-thread CPU).
  o.level0_file_num_compaction_trigger = 8;
  o.level0_slowdown_writes_trigger = 30;
  o.level0_stop_writes_trigger = 50;
  // Compression by level, measured with bench/store (2 shared, oversubscribed cores, so figures are +-20%):
  //  - L0 none: a flush then costs a memcpy instead of LZ4 (LZ4 was ~10% of all write CPU in profiles;
  //    13.2 -> 9.0 CPU s per million events); L0 files are compacted within minutes, so their extra disk
  //    space (1.6 GB vs 1.2 GB written per million 800-byte events) is transient.
  //  - LZ4 in between: data passes through once or twice; ~5x cheaper than zstd.
  //  - LZ4 at the bottom too, where ~90% of bytes rest, although zstd is ~30% smaller there: every export
  //    reads its day back from the bottom level, and zstd's decompression was ~22% of a whole-server export's
  //    CPU after a restart (bench/pipeline/bench_export_process; issue 12 item 4 allows LZ4 in the levels
  //    exports read). Disk cost measured there: see docs/operations.md "Benchmarks".
  o.compression_per_level = {rocksdb::kNoCompression, rocksdb::kLZ4Compression, rocksdb::kLZ4Compression,
                             rocksdb::kLZ4Compression, rocksdb::kLZ4Compression, rocksdb::kLZ4Compression,
                             rocksdb::kLZ4Compression};
  o.bottommost_compression = rocksdb::kLZ4Compression;
  // Events are never read by key, only scanned per partition, so the memtable need not be sorted while it
  // fills: a vector memtable appends (O(1), no cache-missing skip-list search per key) and sorts once at
  // flush. Profiles showed the skip-list insert as the largest single write cost (10-15% of CPU); the vector
  // cut total CPU from 13.2 to 9.2 s per million events. The price: a scan of a partition still in the active memtable sorts a
  // snapshot of the memtable's entry pointers (by key prefix, memtable_pool.cc; again only when entries were
  // added since the last scan's sort).
  // Requires allow_concurrent_memtable_write=false (set in DBOptions).
  // Its entries live in pooled huge-page blocks reused from one memtable to the next (memtable_pool.h).
  o.memtable_factory = internal::NewPooledMemTableRepFactory(
      std::make_shared<rocksdb::VectorRepFactory>(/*reserve entries=*/64 * 1024), std::move(memtable_blocks),
      std::move(write_buffers));
  o.compaction_pri = rocksdb::kMinOverlappingRatio;
  // Every scan is one partition = one 8-byte prefix. A prefix bloom lets a scan skip L0 files (and files of
  // other levels) whose key range straddles the partition but which hold none of its keys; whole-key filters
  // would be dead weight since events are never read by key.
  o.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(internal::kPartitionPrefixBytes));
  rocksdb::BlockBasedTableOptions t = PointLookupTable(cache);
  t.whole_key_filtering = false;
  // Larger blocks for a scan-only CF: fewer index entries, better compression of ~800-byte JSON values.
  t.block_size = 32u << 10;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

class RocksStore;

/// The events column family as a write batch sees it (its id and comparator), apart from the open database:
/// an event batch fills its write batch before it is handed back to the store, and a handle of the database
/// may not outlive a Close(). (RocksDB's own write-batch tests use such a handle.)
class DetachedColumnFamily final : public rocksdb::ColumnFamilyHandle {
 public:
  explicit DetachedColumnFamily(const rocksdb::ColumnFamilyHandle& of)
      : id_(of.GetID()), name_(of.GetName()), comparator_(of.GetComparator()) {}
  const std::string& GetName() const override { return name_; }
  uint32_t GetID() const override { return id_; }
  rocksdb::Status GetDescriptor(rocksdb::ColumnFamilyDescriptor*) override {
    return rocksdb::Status::NotSupported("a detached column family handle has no descriptor");
  }
  /// The column family's comparator: RocksDB's bytewise one, a process-wide singleton.
  const rocksdb::Comparator* GetComparator() const override { return comparator_; }

 private:
  uint32_t id_;
  std::string name_;
  const rocksdb::Comparator* comparator_;
};

/// RocksStore's event batch: each event is encoded into the RocksDB write batch as it is added, so a parser
/// that hands events over as it accepts them (the /import handler) has its properties copied once, from the
/// parser's buffer while it is still in the cache, instead of into an Event first and out of it later. It
/// holds nothing of the open database: a batch still alive at Close() is refused by WriteEventBatch.
class RocksEventBatch final : public EventStore::EventBatch {
 public:
  RocksEventBatch(const RocksStore* store, std::shared_ptr<const rocksdb::ColumnFamilyHandle> events_cf,
                  uint32_t project, int64_t ingested_ms, size_t event_bytes, size_t events)
      : store_(store),
        events_cf_(std::move(events_cf)),
        project_(project),
        ingested_ms_(ingested_ms),
        // The key and value head of each event, the identity links and the per-hour merges go into the same
        // batch: a batch that outgrows its reservation is copied whole into one twice the size (~2 MB per
        // 2000-event call).
        batch_(event_bytes + events * 96 + 4096) {}

  void Add(const Event& e, std::string_view properties) override;
  size_t size() const override { return count_; }

 private:
  friend class RocksStore;
  /// Empty again, keeping the write batch's memory; events added from now on were ingested at `now_ms`.
  void Reset(int64_t now_ms) {
    batch_.Clear();
    hours_.clear();
    count_ = 0;
    status_ = OkStatus();
    ingested_ms_ = now_ms;
  }
  const RocksStore* store_;
  std::shared_ptr<const rocksdb::ColumnFamilyHandle> events_cf_;
  uint32_t project_;
  int64_t ingested_ms_;
  Status status_;  // the first event refused (a time before the epoch)
  rocksdb::WriteBatch batch_;
  // Per-hour counters of this batch; it almost always spans one or two hours, so a linear search over a
  // tiny vector beats any map.
  std::vector<std::pair<Hour, PartitionCounters>> hours_;
  std::string value_;
  size_t count_ = 0;
};

class RocksStore final : public Store {
  friend class RocksEventBatch;

 public:
  RocksStore(fs::path dir, const StoreOptions& options) : dir_(std::move(dir)), options_(options) {
    // Durability comes from the journal (journal.h); RocksDB's own WAL is not written. The WAL cost more than
    // the rest of a write together: a software CRC32C over every byte, its own copy of the batch, a write and
    // an fsync per group inside RocksDB's write thread.
    write_options_.disableWAL = true;
    write_options_.sync = false;
    if (options_.clock == nullptr) options_.clock = &SystemClock::Instance();
  }

  ~RocksStore() override { (void)Close(); }

  Status OpenDb() {
    auto cache = rocksdb::NewLRUCache(options_.block_cache_bytes);
    rocksdb::DBOptions db;
    db.create_if_missing = true;
    db.create_missing_column_families = true;
    // Flush and compaction share 2 threads: the server has one core for ingest and one for everything else;
    // more jobs would only steal the ingest core.
    db.max_background_jobs = 2;
    db.bytes_per_sync = 1u << 20;  // smooth SST writeback instead of a burst at file close
    // Flushes and compactions write with O_DIRECT where the file system allows it: an L0 file is as large as
    // its memtable and copying it into the page cache was ~11% of ingest CPU (copy_folio_from_iter under
    // BlockBasedTableBuilder), for pages nobody reads soon.
    const bool direct_io = SupportsDirectIo(dir_);
    db.use_direct_io_for_flush_and_compaction = direct_io;
    // Scans of events read their table files with O_DIRECT too, on the scanning thread only (direct_scan.h):
    // compaction reads and point lookups keep the page cache and the kernel's readahead.
    if (direct_io) {
      env_ = rocksdb::NewCompositeEnv(
          std::make_shared<internal::DirectScanFileSystem>(rocksdb::FileSystem::Default()));
      db.env = env_.get();
    }
    db.compaction_readahead_size = 2u << 20;
    // Memtables of all column families together may use at most 3 write buffers; writers stall (briefly)
    // rather than letting RSS grow when flushes fall behind. Block cache + this budget bound the store's
    // memory: 64 MB + 192 MB by default.
    write_buffers_ = std::make_shared<rocksdb::WriteBufferManager>(options_.write_buffer_bytes * 3, nullptr,
                                                                   /*allow_stall=*/true);
    db.write_buffer_manager = write_buffers_;
    // Writes skip RocksDB's WAL (the journal holds them until they are in SSTs), so a flush must persist all
    // column families at one point: then the persisted `journal_seq` record (default column family) says
    // exactly which journal records every column family holds, and replay after a crash applies the rest
    // once. Any flush (a full memtable, or the journal asking to be trimmed) flushes every column family.
    db.atomic_flush = true;
    // Only the journal's write leader writes (one thread at a time): no write grouping to pipeline.
    db.enable_pipelined_write = false;
    // Tickers only (no timers or histograms): STALL_MICROS feeds sluice_store_stall_seconds_total.
    db.statistics = rocksdb::CreateDBStatistics();
    db.statistics->set_stats_level(rocksdb::StatsLevel::kExceptHistogramOrTimers);
    // One thread inserts a whole write group into the memtables: the events column family's vector memtable
    // requires it, and concurrent inserts would need several cores to pay off (we budget one).
    db.allow_concurrent_memtable_write = false;
    db.keep_log_file_num = 5;
    db.max_log_file_size = 16u << 20;
    // Bounded so the HTTP server keeps file descriptors under the usual 1024 soft limit.
    db.max_open_files = 512;
    // Full disk. A failed WAL append must never happen: this librocksdb is built with assertions, and the
    // next append to a WAL that saw ENOSPC aborts the process (WritableFileWriter's
    // `sync_without_flush_called_`). Commit() therefore refuses writes while free space is short (see
    // CheckFreeSpace). What may still fail for lack of space is background work (flush, compaction): RocksDB
    // stops writes with a background error and, with an SstFileManager, polls free space and resumes by
    // itself once there is room again.
    db.sst_file_manager.reset(rocksdb::NewSstFileManager(rocksdb::Env::Default()));
    // Corruption. The default WAL recovery (point in time) stops replaying at the first damaged record and
    // opens normally, silently dropping every acknowledged write after it. Only a torn last record (a crash
    // in the middle of an append, never acknowledged) may be dropped; damage anywhere else fails Open with a
    // Corruption error naming the file, and the server refuses to start.
    db.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
    db.paranoid_checks = true;  // the default, stated: verify SST checksums and file sizes where RocksDB can

    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (size_t i = 0; i < kCfCount; ++i) {
      rocksdb::ColumnFamilyOptions o;
      switch (static_cast<Cf>(i)) {
        case kEvents:
          // The pool keeps one memtable's worth of free blocks: what the next memtable needs after a flush.
          // With reserve_memtables it holds two memtables (the one filling and the one flushing: what a server
          // whose flushes keep up uses), mapped and touched now; a third, while a flush lags, is mapped on demand
          // and given back after. Not the whole 3-buffer budget: an idle server would then hold ~190 MB, more
          // than an export may use (issue 12: export and import <= 256 MB).
          o = EventsCf(cache, options_,
                       std::make_shared<internal::MemtableBlockPool>(
                           options_.write_buffer_bytes, options_.reserve_memtables ? options_.write_buffer_bytes * 2 : 0),
                       write_buffers_);
          break;
        case kPartitions:
          o = SmallRecordsCf(cache, 4u << 20);
          o.merge_operator = internal::NewPartitionCountersMergeOperator();
          break;
        case kDefault:
          o = SmallRecordsCf(cache, 1u << 20);
          o.merge_operator = internal::NewMaxU64MergeOperator();
          break;
        case kProfiles:
          o = SmallRecordsCf(cache, 16u << 20);
          break;
        case kIdentity:
          o = SmallRecordsCf(cache, 4u << 20);
          // Every event batch with a new $device_id looks its device up here (AddIdentityLinks, first link
          // wins) and almost always misses. A miss searched the skip lists of the active and immutable
          // memtables (~80% of those lookups' cost, ~15% of a Cloud Import's CPU: bench/cloudimport); a
          // whole-key bloom filter over each memtable answers most misses without touching the skip list.
          // SST files already have their own bloom filters (PointLookupTable).
          o.memtable_prefix_bloom_size_ratio = 0.1;
          o.memtable_whole_key_filtering = true;
          // A batch's links enter in key order (AddIdentityLinks sorts them), all under one project prefix:
          // with an insert hint per project, each insert starts its skip-list search where the last one
          // ended instead of at the top (8.9% -> 5.2% of Cloud Import's importer thread, docs/operations.md).
          o.memtable_insert_with_hint_prefix_extractor.reset(
              rocksdb::NewFixedPrefixTransform(internal::kProjectKeyPrefixBytes));
          break;
        default:
          o = SmallRecordsCf(cache, 4u << 20);
          break;
      }
      cfs.emplace_back(kCfNames[i], o);
    }
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::Status s = rocksdb::DB::Open(db, dir_.string(), cfs, &handles, &raw);
    if (!s.ok() && s.IsCorruption()) {
      return FromRocks(s, dir_, "opening the store, " + DescribeWalDamage());
    }
    if (!s.ok()) return FromRocks(s, dir_, "opening the store");
    db_.reset(raw);
    handles_ = std::move(handles);
    events_cf_ = std::make_shared<const DetachedColumnFamily>(*handles_[kEvents]);
    statistics_ = db.statistics;

    // Replays what the journal holds beyond the last record the database persisted (a data dir written by a
    // version without the journal has none; RocksDB replayed its own WAL above).
    SLUICE_ASSIGN_OR_RETURN(uint64_t applied, ReadCounter(kJournalSeqKey));
    internal::JournalOptions jo;
    jo.segment_bytes = std::max<uint64_t>(options_.write_buffer_bytes, 8u << 20);
    jo.sync = options_.sync_writes;
    // A full write group (plus record headers and block padding), faulted in now rather than by the first
    // requests; part of the memory reserved at open with the memtables.
    if (options_.reserve_memtables) jo.reserve_buffer_bytes = kMaxGroupBytes + (64u << 10);
    uint64_t replayed = 0;
    auto journal = internal::Journal::Open(dir_ / "journal", applied, jo, [&](uint64_t seq, std::string_view payload) {
      rocksdb::WriteBatch batch{std::string(payload)};
      Check(batch.Put(cf(kDefault), kJournalSeqKey, EncodeU64(seq)));
      rocksdb::Status written = db_->Write(write_options_, &batch);
      if (!written.ok()) return Status(FromRocks(written, dir_, "replaying the journal"));
      ++replayed;
      return OkStatus();
    });
    if (!journal.ok()) return journal.error();
    journal_ = std::move(*journal);
    journal_bytes_.store(journal_->Bytes());
    if (replayed > 0) {
      spdlog::info("store {}: replayed {} journal records after the last persisted one ({})", dir_.string(),
                   replayed, applied);
    }

    SLUICE_ASSIGN_OR_RETURN(uint64_t seq, ReadCounter(kChangeSeqKey));
    issued_seq_ = seq;
    visible_seq_.store(seq);
    SLUICE_ASSIGN_OR_RETURN(uint64_t project_id, ReadCounter(kProjectIdKey));
    last_project_id_ = static_cast<uint32_t>(project_id);
    return OkStatus();
  }

  // ---- Projects -------------------------------------------------------------------------------------------

  Result<Project> CreateProject(std::string_view name) override {
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    std::lock_guard lock(projects_mu_);
    Project project = NewProject(name, options_.clock->NowMillis());
    project.id = last_project_id_ + 1;
    rocksdb::WriteBatch batch;
    Check(batch.Put(cf(kProjects), BigEndian32(project.id), internal::EncodeProject(project)));
    Check(batch.Merge(cf(kDefault), kProjectIdKey, EncodeU64(project.id)));
    SLUICE_TRY(Commit(batch, "creating a project"));
    last_project_id_ = project.id;
    return project;
  }

  Result<std::vector<Project>> ListProjects() override {
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    std::vector<Project> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kProjects)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto project = internal::DecodeProject(it->value().ToStringView());
      if (!project) return CorruptRecord("project", it->key().ToStringView());
      out.push_back(std::move(*project));
    }
    if (!it->status().ok()) return FromRocks(it->status(), dir_, "listing projects");
    return out;
  }

  Result<std::optional<Project>> GetProject(uint32_t id) override {
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    return GetProjectLocked(id);
  }

  Status UpdateProject(const Project& project) override {
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    std::lock_guard lock(projects_mu_);  // no CreateProject can race the existence check
    SLUICE_ASSIGN_OR_RETURN(auto existing, GetProjectLocked(project.id));
    if (!existing) return NotFound("project " + std::to_string(project.id) + " does not exist");
    rocksdb::WriteBatch batch;
    Check(batch.Put(cf(kProjects), BigEndian32(project.id), internal::EncodeProject(project)));
    return Commit(batch, "updating project " + std::to_string(project.id));
  }

  // ---- Events ---------------------------------------------------------------------------------------------

  Status WriteEvents(uint32_t project, std::span<const Event> events,
                     std::span<const IdentityLink> links) override {
    if (events.empty() && links.empty()) return OkStatus();
    size_t estimate = 0;
    for (const Event& e : events) {
      estimate += e.name.size() + e.distinct_id.size() + e.device_id.size() + e.user_id.size() +
                  e.insert_id.size() + e.properties.size();
    }
    RocksEventBatch batch(this, events_cf_, project, options_.clock->NowMillis(), estimate, events.size());
    for (const Event& e : events) batch.Add(e, e.properties);
    return WriteEventBatch(batch, links);
  }

  std::unique_ptr<EventBatch> NewEventBatch(uint32_t project, size_t bytes_hint) override {
    // A request's events take about its JSON's size (properties as sent, minus the promoted fields) plus each
    // event's key and value head; an /import batch of ~750-byte events has one event per ~750 bytes.
    return std::make_unique<RocksEventBatch>(this, events_cf_, project, options_.clock->NowMillis(), bytes_hint,
                                             bytes_hint / 512 + 1);
  }

  Status WriteEventBatch(EventBatch& given, std::span<const IdentityLink> links) override {
    auto* batch = dynamic_cast<RocksEventBatch*>(&given);
    if (batch == nullptr || batch->store_ != this) {
      return Error(ErrorCode::kInternal, "an event batch was handed to a store other than the one that made it");
    }
    // Emptied whatever happens, for the caller to fill again (Cloud Import reuses one batch per file).
    struct Empty {
      RocksEventBatch* batch;
      int64_t now_ms;
      ~Empty() { batch->Reset(now_ms); }
    } empty{batch, options_.clock->NowMillis()};
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    if (!batch->status_.ok()) return batch->status_;
    if (batch->size() == 0 && links.empty()) return OkStatus();
    rocksdb::WriteBatch& wb = batch->batch_;

    LinkClaims claims(this);
    SLUICE_TRY(AddIdentityLinks(batch->project_, links, wb, claims));

    uint64_t seq = 0;
    if (!batch->hours_.empty()) {
      seq = BeginChange();
      for (auto& [hour, counters] : batch->hours_) {
        counters.change_seq = seq;
        Check(wb.Merge(cf(kPartitions), internal::PartitionPrefix(batch->project_, hour),
                       internal::EncodePartitionCounters(counters)));
      }
      // Persisted in the same batch as the partition records it stamps, so after any crash the recovered
      // counter is at least every change_seq that survived.
      Check(wb.Merge(cf(kDefault), kChangeSeqKey, EncodeU64(seq)));
    }
    if (wb.Count() == 0) return OkStatus();
    Status committed = Commit(wb, "writing events");
    if (seq != 0) EndChange(seq);
    return committed;
  }

  Status ScanPartition(uint32_t project, Hour hour, const std::function<bool(const EventView&)>& fn) override {
    return ScanEvents(project, hour, hour + 1, fn);
  }

  Status ScanPartitions(uint32_t project, Hour first, Hour end,
                        const std::function<bool(const EventView&)>& fn) override {
    if (first >= end) return OkStatus();
    return ScanEvents(project, first, end, fn);
  }

  /// Events of the partitions [first, end) with one iterator (hours are adjacent key prefixes, ascending).
  Status ScanEvents(uint32_t project, Hour first, Hour end, const std::function<bool(const EventView&)>& fn) {
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    const std::string prefix = internal::PartitionPrefix(project, first);
    // The end hour's prefix, or the successor of the last hour's when `end` wraps around to the next project.
    const std::string upper = end != 0
                                  ? internal::PartitionPrefix(project, end)
                                  : internal::PrefixSuccessor(internal::PartitionPrefix(project, end - 1));
    const rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    // One consistent view of the whole range: the iterator's implicit snapshot (the sequence at its creation,
    // its files and memtables pinned). Not an explicit GetSnapshot(): releasing one makes RocksDB re-mark the
    // bottommost files for a compaction that rewrites them (compaction_reason BottommostFiles) — after a
    // fresh import, every export re-compressed the day's data it had just read (~0.2 CPU s per 300,000
    // events).
    ro.iterate_upper_bound = upper.empty() ? nullptr : &upper_slice;
    // One partition: its prefix bloom filters skip SST files without it. Several: auto_prefix_mode uses the
    // filters only where the bounds allow it, so the scan never stops at the first prefix's end.
    if (end - first == 1) {
      ro.prefix_same_as_start = true;
    } else {
      ro.auto_prefix_mode = true;
    }
    // A partition scan reads each block once: caching it would only evict the profile/identity blocks that
    // point lookups need.
    ro.fill_cache = false;
    // No explicit readahead: an explicit readahead_size copies through RocksDB's prefetch buffer first, a
    // second memcpy of every byte the scan reads. The scan's reads ahead are the DirectScanScope's windows
    // below (RocksDB's implicit prefetch hints are no-ops on this thread; without O_DIRECT they ask the
    // kernel to read ahead into the page cache).
    ro.readahead_size = 0;
    // This thread's table-file reads bypass the page cache while the scan runs (direct_scan.h); declared
    // before the iterator, so the iterator is gone before the scope's windows are.
    internal::DirectScanScope direct_reads;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(kEvents)));
    EventView view;
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      if (!internal::DecodeEventValue(it->value().ToStringView(), &view)) {
        return CorruptRecord("event", it->key().ToStringView());
      }
      if (!fn(view)) return OkStatus();
    }
    if (!it->status().ok()) return FromRocks(it->status(), dir_, "scanning a partition");
    return OkStatus();
  }

  Result<std::vector<PartitionInfo>> ListPartitions(uint32_t project, Hour from, Hour to) override {
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    if (from > to) return std::vector<PartitionInfo>{};
    return ReadPartitions(internal::PartitionPrefix(project, from),
                          internal::PrefixSuccessor(internal::PartitionPrefix(project, to)), 0);
  }

  Result<std::vector<PartitionInfo>> ChangedPartitions(uint32_t project, uint64_t after_seq) override {
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    const std::string start = BigEndian32(project);
    return ReadPartitions(start, internal::PrefixSuccessor(start), after_seq);
  }

  uint64_t LastChangeSeq() const override { return visible_seq_.load(std::memory_order_acquire); }

  // ---- Profiles -------------------------------------------------------------------------------------------

  Status ApplyProfileOps(uint32_t project, std::string_view group_key, std::span<const ProfileOps> changes,
                         const ProfileFolder& folder, std::vector<ProfileOpRefusal>* refused) override {
    if (changes.empty()) return OkStatus();
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    if (group_key.empty()) {
      return MutateProfiles(
          project, changes, kProfiles, [&](std::string_view id) { return std::string(id); },
          [&](std::string_view id) { return internal::ProjectKey(project, id); }, folder, refused,
          "reading a profile", "writing profiles");
    }
    // Group profiles are kept in the metadata column family (codec.h kGroupProfileNamespace) and locked with
    // the profile stripes.
    auto key_of = [&](std::string_view id) {
      return internal::MetaKey(internal::kGroupProfileNamespace,
                               internal::GroupProfileKey(project, group_key, id));
    };
    return MutateProfiles(project, changes, kMeta, key_of, key_of, folder, refused, "reading a group profile",
                          "writing group profiles");
  }

  Result<std::optional<std::string>> GetProfile(uint32_t project, std::string_view distinct_id) override {
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    return GetString(kProfiles, internal::ProjectKey(project, distinct_id), "reading a profile");
  }

  Status ScanProfiles(
      uint32_t project, std::string_view after,
      const std::function<bool(std::string_view distinct_id, std::string_view json)>& fn) override {
    return ScanProjectRange(kProfiles, project, "scanning profiles", fn, after);
  }

  // ---- Group profiles -------------------------------------------------------------------------------------
  // Kept in the metadata column family (codec.h kGroupProfileNamespace) and locked with the profile stripes.

  Result<std::optional<std::string>> GetGroupProfile(uint32_t project, std::string_view group_key,
                                                     std::string_view group_id) override {
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    return GetString(kMeta,
                     internal::MetaKey(internal::kGroupProfileNamespace,
                                       internal::GroupProfileKey(project, group_key, group_id)),
                     "reading a group profile");
  }

  Status ScanGroupProfiles(
      uint32_t project, std::string_view group_key, std::string_view after,
      const std::function<bool(std::string_view group_id, std::string_view json)>& fn) override {
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    const std::string start =
        internal::MetaKey(internal::kGroupProfileNamespace, internal::GroupProfilePrefix(project, group_key));
    return ScanRange(kMeta, start, start.size(), "scanning group profiles", fn, after);
  }

  // ---- Identity -------------------------------------------------------------------------------------------

  Result<std::optional<std::string>> ResolveDevice(uint32_t project, std::string_view device_id) override {
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    return GetString(kIdentity, internal::ProjectKey(project, device_id), "resolving a device");
  }

  Status ScanIdentity(uint32_t project,
                      const std::function<bool(std::string_view device_id, std::string_view user_id)>& fn) override {
    return ScanProjectRange(kIdentity, project, "scanning the identity map", fn);
  }

  // ---- Metadata -------------------------------------------------------------------------------------------

  Status PutMeta(std::string_view ns, std::string_view key, std::string_view value) override {
    SLUICE_TRY(CheckNamespace(ns));
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    rocksdb::WriteBatch batch;
    Check(batch.Put(cf(kMeta), internal::MetaKey(ns, key), value));
    return Commit(batch, "writing a metadata record");
  }

  Result<std::optional<std::string>> GetMeta(std::string_view ns, std::string_view key) override {
    SLUICE_TRY(CheckNamespace(ns));
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    return GetString(kMeta, internal::MetaKey(ns, key), "reading a metadata record");
  }

  Status DeleteMeta(std::string_view ns, std::string_view key) override {
    SLUICE_TRY(CheckNamespace(ns));
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    rocksdb::WriteBatch batch;
    Check(batch.Delete(cf(kMeta), internal::MetaKey(ns, key)));
    return Commit(batch, "deleting a metadata record");
  }

  Status ScanMeta(std::string_view ns, std::string_view key_prefix,
                  const std::function<bool(std::string_view key, std::string_view value)>& fn) override {
    SLUICE_TRY(CheckNamespace(ns));
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    const std::string start = internal::MetaKey(ns, key_prefix);
    return ScanRange(kMeta, start, 1 + ns.size(), "scanning metadata records", fn);
  }

  // ---- Operations -----------------------------------------------------------------------------------------

  double StallSeconds() override {
    return statistics_ ? static_cast<double>(statistics_->getTickerCount(rocksdb::STALL_MICROS)) / 1e6 : 0;
  }

  uint64_t ApproximateSizeBytes() override {
    std::shared_lock life(life_mu_);
    if (closed_) return 0;
    uint64_t total = 0;
    uint64_t v = 0;
    if (db_->GetAggregatedIntProperty("rocksdb.total-sst-files-size", &v)) total += v;
    if (db_->GetAggregatedIntProperty("rocksdb.total-blob-file-size", &v)) total += v;
    total += journal_bytes_.load(std::memory_order_relaxed);
    rocksdb::VectorLogPtr wals;
    if (db_->GetSortedWalFiles(wals).ok()) {
      for (const auto& wal : wals) total += wal->SizeFileBytes();
    }
    return total;
  }

  Status Close() override {
    std::unique_lock life(life_mu_);
    if (closed_) return OkStatus();
    closed_ = true;
    if (!db_) return OkStatus();  // Open failed half-way
    // Flushing is not needed for durability (the journal is synced) but makes the next Open skip replay:
    // once every column family is in SSTs the journal is deleted.
    // Records a failed apply left behind are applied now if the database allows; otherwise the journal is
    // kept and the next Open replays them.
    Status unapplied = ApplyUnapplied();
    if (!unapplied.ok()) {
      spdlog::warn("store {}: {}; the next start replays them", dir_.string(), unapplied.error().message);
    }
    rocksdb::FlushOptions fo;
    fo.wait = true;
    rocksdb::Status flush = db_->Flush(fo, handles_);
    if (flush.ok() && journal_ && unapplied.ok()) {
      Status removed = journal_->RemoveAll();
      if (!removed.ok()) spdlog::warn("store {}: {}", dir_.string(), removed.error().message);
    }
    journal_.reset();
    // Stops a long compaction instead of waiting for it: shutdown should take seconds, not minutes.
    rocksdb::CancelAllBackgroundWork(db_.get(), /*wait=*/true);
    for (auto* h : handles_) (void)db_->DestroyColumnFamilyHandle(h);
    handles_.clear();
    rocksdb::Status close = db_->Close();
    db_.reset();
    if (!flush.ok()) return FromRocks(flush, dir_, "flushing on close");
    if (!close.ok()) return FromRocks(close, dir_, "closing the store");
    return OkStatus();
  }

 private:
  /// Identity link keys this call reserved; released when the call's batch has committed (or failed), after
  /// which the links are visible to Get().
  class LinkClaims {
   public:
    explicit LinkClaims(RocksStore* store) : store_(store) {}
    ~LinkClaims() {
      if (keys_.empty()) return;
      std::lock_guard lock(store_->identity_mu_);
      for (const auto& k : keys_) store_->pending_links_.erase(k);
      store_->links_released_.fetch_add(1);
    }
    LinkClaims(const LinkClaims&) = delete;
    LinkClaims& operator=(const LinkClaims&) = delete;
    std::vector<std::string> keys_;

   private:
    RocksStore* store_;
  };

  rocksdb::ColumnFamilyHandle* cf(Cf which) const { return handles_[which]; }

  /// For a corruption found while opening: RocksDB's status says what ("checksum mismatch") but not where. Its
  /// info LOG does ("<dir>/000012.log: dropping 512 bytes; Corruption: checksum mismatch"); the last such
  /// line names the damaged file for the operator. Falls back to listing the WAL files.
  std::string DescribeWalDamage() const {
    std::ifstream log(dir_ / "LOG");
    std::string line;
    std::string last;
    while (std::getline(log, line)) {
      if (Contains(line, ": dropping ")) last = line;
    }
    if (!last.empty()) {
      const size_t start = last.find(dir_.string());
      return "replaying the write-ahead log: " + last.substr(start == std::string::npos ? 0 : start);
    }
    std::string wals;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
      if (entry.path().extension() == ".log") wals += (wals.empty() ? "" : ", ") + entry.path().filename().string();
    }
    return "write-ahead logs " + (wals.empty() ? std::string("(none)") : wals);
  }

  /// The read-modify-write of ApplyProfileOps: the profiles of the changes' ids (store key `key_of(id)` in
  /// column `column`) are read, folded with their operations in order, and the changed ones written in one
  /// batch. Every profile stripe involved (chosen by `stripe_key_of(id)`) is locked once, in ascending order,
  /// so two calls with overlapping profiles acquire their common stripes in the same order and cannot
  /// deadlock. An id listed twice folds its second change onto its first's result. Caller holds life_mu_
  /// shared.
  template <typename KeyOf, typename StripeKeyOf>
  Status MutateProfiles(uint32_t project, std::span<const ProfileOps> changes, Cf column,
                        const StripeKeyOf& stripe_key_of, const KeyOf& key_of, const ProfileFolder& folder,
                        std::vector<ProfileOpRefusal>* refused, std::string_view what_read,
                        std::string_view what_write) {
    std::vector<size_t> stripes;
    stripes.reserve(changes.size());
    for (const ProfileOps& change : changes) stripes.push_back(StripeOf(project, stripe_key_of(change.id)));
    std::sort(stripes.begin(), stripes.end());
    stripes.erase(std::unique(stripes.begin(), stripes.end()), stripes.end());
    std::vector<std::unique_lock<std::mutex>> locks;
    locks.reserve(stripes.size());
    for (size_t stripe : stripes) locks.emplace_back(profile_mu_[stripe]);

    struct Slot {
      std::optional<std::string> profile;
      bool dirty = false;
    };
    std::unordered_map<std::string_view, Slot> slots;
    std::vector<std::string_view> order;  // first-seen order, for a deterministic batch
    for (size_t c = 0; c < changes.size(); ++c) {
      const std::string& id = changes[c].id;
      auto it = slots.find(id);
      if (it == slots.end()) {
        SLUICE_ASSIGN_OR_RETURN(auto current, GetString(column, key_of(id), what_read));
        it = slots.emplace(id, Slot{std::move(current), false}).first;
        order.push_back(id);
      }
      Slot& slot = it->second;
      ProfileFold fold = folder.Fold(slot.profile, changes[c].ops);
      if (refused != nullptr) {
        for (ProfileOpRefusal& r : fold.refused) {
          r.change = c;
          refused->push_back(std::move(r));
        }
      }
      if (!fold.changed || (!fold.profile && !slot.profile)) continue;
      slot.profile = std::move(fold.profile);  // nullopt deletes
      slot.dirty = true;
    }
    rocksdb::WriteBatch batch;
    for (std::string_view id : order) {
      const Slot& slot = slots.at(id);
      if (!slot.dirty) continue;
      if (slot.profile) {
        Check(batch.Put(cf(column), key_of(id), *slot.profile));
      } else {
        Check(batch.Delete(cf(column), key_of(id)));
      }
    }
    if (batch.Count() == 0) return OkStatus();
    return Commit(batch, what_write);
  }

  /// Every write goes through here: admitted only while the disk has room for it (CheckFreeSpace), then
  /// committed to the synced WAL. Caller holds life_mu_ shared.
  Status Commit(rocksdb::WriteBatch& batch, std::string_view what) {
    // The WAL record is the batch's representation plus a few header bytes per 32 KiB log block.
    const uint64_t bytes = batch.GetDataSize() + batch.GetDataSize() / 4096 + 64;
    const uint64_t pending = pending_write_bytes_.fetch_add(bytes) + bytes;
    struct Release {
      std::atomic<uint64_t>& counter;
      uint64_t bytes;
      ~Release() { counter.fetch_sub(bytes); }
    } release{pending_write_bytes_, bytes};
    SLUICE_TRY(CheckFreeSpace(pending, what));
    MaybeResume();

    // Group commit: writers queue; the one at the front with no group in progress becomes the leader, takes
    // the queued writes (up to kMaxGroupBytes), appends them to the journal in one write + one fdatasync and
    // applies them to RocksDB in journal order, then wakes the others with their results. One leader at a
    // time keeps apply order = journal order, which replay relies on.
    PendingWrite self{&batch, what};
    std::unique_lock lock(write_mu_);
    write_queue_.push_back(&self);
    write_cv_.wait(lock, [&] { return self.done || (!leader_active_ && write_queue_.front() == &self); });
    if (self.done) return std::move(self.status);
    leader_active_ = true;
    std::vector<PendingWrite*> group;
    uint64_t group_bytes = 0;
    for (PendingWrite* w : write_queue_) {
      const uint64_t size = w->batch->GetDataSize();
      if (!group.empty() && group_bytes + size > kMaxGroupBytes) break;
      group.push_back(w);
      group_bytes += size;
    }
    lock.unlock();
    // Releases the group and the leadership on every way out of WriteGroup, an exception included: a leader
    // that left `leader_active_` set would block every later writer of the store forever.
    struct LeaderRelease {
      RocksStore* store;
      size_t count;
      ~LeaderRelease() {
        std::unique_lock held(store->write_mu_);
        for (size_t i = 0; i < count; ++i) {
          store->write_queue_.front()->done = true;
          store->write_queue_.pop_front();
        }
        store->leader_active_ = false;
        held.unlock();
        store->write_cv_.notify_all();
      }
    } release_leader{this, group.size()};
    for (PendingWrite* w : group) {
      w->status = Error(ErrorCode::kInternal,
                        std::string(w->what) + ": the write was interrupted before it was stored; retry it");
    }
    try {
      WriteGroup(group);
    } catch (const std::exception& e) {
      // WriteGroup keeps the journal and the database consistent itself (see ApplyGroup); what is left is to
      // tell the writers whose status it had not set yet.
      spdlog::error("store {}: a write group failed: {}", dir_.string(), e.what());
    }
    return std::move(self.status);
  }

  struct PendingWrite {
    rocksdb::WriteBatch* batch;
    std::string_view what;
    Status status;
    bool done = false;  // guarded by write_mu_
  };

  /// The leader's work for one group (see Commit): journal, then apply, then trim.
  void WriteGroup(const std::vector<PendingWrite*>& group) {
    if (!unapplied_.empty()) {
      // Nothing new is journaled (or applied) behind a record that is not applied yet (see ApplyGroup).
      Status s = ApplyUnapplied();
      if (!s.ok()) {
        for (PendingWrite* w : group) {
          Error e = s.error();
          e.message = std::string(w->what) + ": refused until earlier journaled writes are applied (" +
                      e.message + "); check the disk and the server log, then retry";
          w->status = std::move(e);
        }
        return;
      }
    }
    std::vector<std::string_view> payloads;
    payloads.reserve(group.size());
    for (PendingWrite* w : group) payloads.emplace_back(w->batch->Data());
    auto first = journal_->Append(payloads);
    if (!first.ok()) {
      for (PendingWrite* w : group) {
        Error e = first.error();
        e.message = std::string(w->what) + ": " + e.message;
        w->status = std::move(e);
      }
      return;
    }
    ApplyGroup(group, *first);
    MaybeTrimJournal();
    journal_bytes_.store(journal_->Bytes(), std::memory_order_relaxed);
  }

  /// Applies the journaled records of `group` (sequence numbers first, first + 1, ...) in order. The records
  /// applied are always a prefix of the journal, so the persisted `journal_seq` says exactly what a replay
  /// must apply: from the first record whose apply fails (or throws), the rest of the group is not applied
  /// now but queued in unapplied_, its writers are answered an error (the API turns it into a 5xx), and
  /// ApplyUnapplied applies the queue before anything later is journaled. Applying a failed record later
  /// (or, after a crash, at replay) is what its 5xx allows; applying a later record first is not: a replay
  /// would then skip the failed one, or apply its stale profile over a newer one.
  void ApplyGroup(const std::vector<PendingWrite*>& group, uint64_t first) {
    size_t applied = 0;
    std::optional<Error> failure;
    try {
      if (options_.after_journal_append_for_testing) options_.after_journal_append_for_testing();
      for (; applied < group.size(); ++applied) {
        PendingWrite* w = group[applied];
        rocksdb::Status s = ApplyRecord(w->batch, first + applied);
        if (!s.ok()) {
          failure = FromRocks(s, dir_, w->what);
          break;
        }
        w->status = OkStatus();
      }
    } catch (const std::exception& e) {
      failure = Internal(std::string("applying a journaled write failed: ") + e.what());
    }
    last_write_failed_.store(failure.has_value());
    if (!failure) return;
    for (size_t i = applied; i < group.size(); ++i) {
      PendingWrite* w = group[i];
      unapplied_.push_back(UnappliedRecord{first + i, std::string(w->batch->Data())});
      Error e = *failure;
      e.message = std::string(w->what) + ": " + e.message +
                  " (the write is kept in the journal and applied before any later write; retrying is safe)";
      w->status = std::move(e);
    }
    spdlog::error("store {}: {} journaled write(s) could not be applied: {}", dir_.string(),
                  group.size() - applied, failure->message);
  }

  /// Applies one journaled record: its batch plus its sequence number as `journal_seq`, atomically.
  rocksdb::Status ApplyRecord(rocksdb::WriteBatch* batch, uint64_t seq) {
    // A batch queued after a failure may hold this Put already; a second one of the same value is harmless.
    Check(batch->Put(cf(kDefault), kJournalSeqKey, EncodeU64(seq)));
    if (options_.fail_apply_for_testing && options_.fail_apply_for_testing()) {
      return rocksdb::Status::IOError("apply failure injected for testing");
    }
    return db_->Write(write_options_, batch);
  }

  /// Applies the records left by a failed ApplyGroup, oldest first. Called by the write leader before it
  /// journals a new group, and by Close(); fails (applying nothing later) while the database still refuses.
  Status ApplyUnapplied() {
    while (!unapplied_.empty()) {
      UnappliedRecord& r = unapplied_.front();
      rocksdb::WriteBatch batch{r.data};
      rocksdb::Status s = ApplyRecord(&batch, r.seq);
      if (!s.ok()) {
        last_write_failed_.store(true);
        return FromRocks(s, dir_, "applying journal record " + std::to_string(r.seq) + " again");
      }
      unapplied_.pop_front();
    }
    last_write_failed_.store(false);
    return OkStatus();
  }

  /// Deletes journal segments whose records are all flushed to SSTs (their `journal_seq` is persisted), and
  /// asks for a flush when the journal outgrows the memtable budget: a bound on its disk use and on replay
  /// time after a crash. Called by the write leader only.
  void MaybeTrimJournal() {
    if (journal_->HasClosedSegments()) {
      rocksdb::ReadOptions ro;
      ro.read_tier = rocksdb::kPersistedTier;  // with the WAL disabled: SSTs only, not the memtables
      std::string value;
      rocksdb::Status s = db_->Get(ro, cf(kDefault), kJournalSeqKey, &value);
      if (s.ok() && value.size() == 8) journal_->Trim(internal::LoadLittleEndian64(value.data()));
    }
    const uint64_t limit = options_.write_buffer_bytes * 4;
    if (journal_->Bytes() > limit && !flush_requested_.exchange(true)) {
      rocksdb::FlushOptions fo;
      fo.wait = false;
      fo.allow_write_stall = true;
      rocksdb::Status s = db_->Flush(fo, handles_);
      if (!s.ok()) spdlog::warn("store {}: flush to trim the journal failed: {}", dir_.string(), s.ToString());
    } else if (journal_->Bytes() <= limit) {
      flush_requested_.store(false);
    }
  }

  /// A write may append to the WAL only if, after all writes in flight, the filesystem still has room for
  /// flushing every memtable (an L0 file is about as large as its memtable) plus HeadroomBytes(). statvfs is
  /// a microsecond next to the synced write it guards, and checking every write means writes are accepted
  /// again as soon as space returns, with no restart. Another process filling the disk between the check
  /// and the append can still beat it; the headroom makes that unlikely.
  Status CheckFreeSpace(uint64_t pending_bytes, std::string_view what) {
    struct statvfs st {};
    if (::statvfs(dir_.c_str(), &st) != 0) return OkStatus();  // cannot tell: let the write decide
    const uint64_t free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
    const uint64_t headroom = HeadroomBytes(static_cast<uint64_t>(st.f_blocks) * st.f_frsize);
    const uint64_t memtables = write_buffers_ ? write_buffers_->memory_usage() : 0;
    const uint64_t needed = pending_bytes + memtables + headroom;
    if (free_bytes >= needed) {
      if (disk_full_.exchange(false)) {
        spdlog::warn("disk space in {} is available again ({} free): writes are accepted again",
                     dir_.string(), Mib(free_bytes));
      }
      return OkStatus();
    }
    std::string message = "disk full: free space in " + dir_.string() + " is " + Mib(free_bytes) +
                          ", below the " + Mib(needed) + " that " + std::string(what) +
                          " needs (pending writes, flushing the memtables and a reserve of " + Mib(headroom) +
                          "); free disk space or grow the volume. Reads keep working and writes resume by "
                          "themselves once there is room";
    if (!disk_full_.exchange(true)) spdlog::error("{}", message);
    // What the memtables hold is in the journal too, and a flush frees the journal's segments (the L0 file is
    // smaller than they are): a volume full only of this store's own unflushed journal must not stay full
    // while writes are refused (nothing else would flush). Asked at most every 5 s, and only when it fits.
    if (memtables > 0 && free_bytes > memtables + headroom / 2) FlushToFreeJournal();
    return Error(ErrorCode::kUnavailable, std::move(message));
  }

  void FlushToFreeJournal() {
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    int64_t last = last_space_flush_ms_.load();
    if (now - last < 5000 || !last_space_flush_ms_.compare_exchange_strong(last, now)) return;
    spdlog::warn("store {}: flushing the memtables to free the journal's disk space", dir_.string());
    rocksdb::FlushOptions fo;
    fo.wait = false;
    fo.allow_write_stall = true;
    rocksdb::Status s = db_->Flush(fo, handles_);
    if (!s.ok()) spdlog::warn("store {}: flush to free disk space failed: {}", dir_.string(), s.ToString());
  }

  /// After a failed write (RocksDB stops writes on a background error, e.g. a flush that found the disk
  /// full), asks RocksDB to resume, at most once every 5 seconds. RocksDB's own recovery usually gets there
  /// first; Resume() then returns OK (nothing to do) or Busy (recovery in progress).
  void MaybeResume() {
    if (!last_write_failed_.load()) return;
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    int64_t last = last_resume_ms_.load();
    if (now - last < 5000 || !last_resume_ms_.compare_exchange_strong(last, now)) return;
    rocksdb::Status s = db_->Resume();
    if (!s.ok() && !s.IsBusy())
      spdlog::warn("store {}: resuming after a write error failed: {}", dir_.string(), s.ToString());
  }

  /// WriteBatch appends only fail on exceeding max_bytes, which we never set.
  static void Check(const rocksdb::Status& s) { (void)s; }

  Error CorruptRecord(std::string_view kind, std::string_view key) const {
    return Internal("data in " + dir_.string() + " is corrupted: undecodable " + std::string(kind) +
                    " record (key " + HexEncode(key) + "); check the disk and restore from a backup");
  }

  static Status CheckNamespace(std::string_view ns) {
    if (ns.empty() || ns.size() > 255) {
      return InvalidArgument("metadata namespace must be 1..255 bytes, got " + std::to_string(ns.size()));
    }
    return OkStatus();
  }

  Result<uint64_t> ReadCounter(std::string_view key) {
    SLUICE_ASSIGN_OR_RETURN(auto v, GetString(kDefault, key, "reading a counter"));
    if (!v) return uint64_t{0};
    if (v->size() != 8) return CorruptRecord("counter", key);
    return internal::LoadLittleEndian64(v->data());
  }

  Result<std::optional<std::string>> GetString(Cf which, std::string_view key, std::string_view what) {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(which), key, &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocks(s, dir_, what);
    return std::optional<std::string>(std::move(value));
  }

  Result<std::optional<Project>> GetProjectLocked(uint32_t id) {
    SLUICE_ASSIGN_OR_RETURN(auto value, GetString(kProjects, BigEndian32(id), "reading a project"));
    if (!value) return std::optional<Project>();
    auto project = internal::DecodeProject(*value);
    if (!project) return CorruptRecord("project", BigEndian32(id));
    return project;
  }

  /// Calls fn(key without its first `strip` bytes, value) for keys in [start, PrefixSuccessor(start)).
  /// The keys that start with `start`, each handed over without its first `strip` bytes; with `after`, only
  /// those greater than start + after (the scan seeks straight to the first of them).
  Status ScanRange(Cf which, const std::string& start, size_t strip, std::string_view what,
                   const std::function<bool(std::string_view, std::string_view)>& fn,
                   std::string_view after = {}) {
    const std::string upper = internal::PrefixSuccessor(start);
    const rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = upper.empty() ? nullptr : &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(which)));
    std::string seek = start;
    if (!after.empty()) seek.append(after).push_back('\0');  // the smallest key greater than start + after
    for (it->Seek(seek); it->Valid(); it->Next()) {
      if (!fn(it->key().ToStringView().substr(strip), it->value().ToStringView())) return OkStatus();
    }
    if (!it->status().ok()) return FromRocks(it->status(), dir_, what);
    return OkStatus();
  }

  Status ScanProjectRange(Cf which, uint32_t project, std::string_view what,
                          const std::function<bool(std::string_view, std::string_view)>& fn,
                          std::string_view after = {}) {
    std::shared_lock life(life_mu_);
    if (closed_) return ClosedError(dir_);
    return ScanRange(which, BigEndian32(project), 4, what, fn, after);
  }

  Result<std::vector<PartitionInfo>> ReadPartitions(const std::string& start, const std::string& upper,
                                                    uint64_t after_seq) {
    const rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = upper.empty() ? nullptr : &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(kPartitions)));
    std::vector<PartitionInfo> out;
    for (it->Seek(start); it->Valid(); it->Next()) {
      const std::string_view key = it->key().ToStringView();
      PartitionCounters c;
      if (key.size() != internal::kPartitionPrefixBytes ||
          !internal::DecodePartitionCounters(it->value().ToStringView(), &c)) {
        return CorruptRecord("partition", key);
      }
      if (c.change_seq <= after_seq) continue;
      out.push_back(PartitionInfo{internal::LoadBigEndian32(key.data()), internal::LoadBigEndian32(key.data() + 4),
                                  c.writes, c.bytes, c.change_seq});
    }
    if (!it->status().ok()) return FromRocks(it->status(), dir_, "reading partition records");
    return out;
  }

  /// First link per device wins, across concurrent calls too. The common case (device already linked) is
  /// settled by lock-free lookups; only candidates take identity_mu_, where a device is either already claimed
  /// by an in-flight batch (skip it: that batch will write it), already committed (skip), or claimed by us.
  /// A claim is released only after our batch committed, when a Get sees it, so the check-then-put cannot
  /// interleave. If our batch fails, the link is written by the next event that carries it.
  ///
  /// Cost per new device (Cloud Import writes one for most events of a first import): the call's keys are
  /// built in one buffer, sorted, and looked up with one MultiGet; a candidate is looked up again under the
  /// lock only when some other call released claims since our lookups began (links_released_), since only
  /// such a call can have committed a link our lookups missed. The puts go into the batch in key order, so
  /// the identity memtable's skip list inserts each one next to the previous one instead of searching from
  /// its top.
  Status AddIdentityLinks(uint32_t project, std::span<const IdentityLink> links, rocksdb::WriteBatch& batch,
                          LinkClaims& claims) {
    if (links.empty()) return OkStatus();
    // Read before the lookups: a claim released after this (its link committed) makes us look again.
    const uint64_t released_before = links_released_.load();
    struct Link {
      uint32_t begin;  // the key in `keys`
      uint32_t size;
      const IdentityLink* link;
    };
    std::string keys;
    std::vector<Link> order;
    order.reserve(links.size());
    for (const IdentityLink& link : links) {
      if (link.device_id.empty() || link.user_id.empty()) continue;
      const size_t begin = keys.size();
      internal::AppendProjectKey(keys, project, link.device_id);
      order.push_back({static_cast<uint32_t>(begin), static_cast<uint32_t>(keys.size() - begin), &link});
    }
    if (order.empty()) return OkStatus();
    auto key_of = [&keys](const Link& l) { return std::string_view(keys).substr(l.begin, l.size); };
    // Stable: of one device's links, the first in the call stays first and wins.
    std::stable_sort(order.begin(), order.end(),
                     [&](const Link& a, const Link& b) { return key_of(a) < key_of(b); });
    order.erase(std::unique(order.begin(), order.end(),
                            [&](const Link& a, const Link& b) { return key_of(a) == key_of(b); }),
                order.end());
    std::vector<rocksdb::Slice> slices;
    slices.reserve(order.size());
    for (const Link& l : order) slices.emplace_back(keys.data() + l.begin, l.size);
    std::vector<rocksdb::PinnableSlice> values(order.size());
    std::vector<rocksdb::Status> statuses(order.size());
    db_->MultiGet(rocksdb::ReadOptions(), cf(kIdentity), slices.size(), slices.data(), values.data(),
                  statuses.data(), /*sorted_input=*/true);
    std::vector<size_t> candidates;
    for (size_t i = 0; i < order.size(); ++i) {
      if (statuses[i].IsNotFound()) {
        candidates.push_back(i);
      } else if (!statuses[i].ok()) {
        return FromRocks(statuses[i], dir_, "reading the identity map");
      }
    }
    if (candidates.empty()) return OkStatus();
    std::lock_guard lock(identity_mu_);
    const bool look_again = links_released_.load() != released_before;
    for (size_t i : candidates) {
      std::string key(key_of(order[i]));
      if (pending_links_.contains(key)) continue;
      if (look_again) {
        SLUICE_ASSIGN_OR_RETURN(auto existing, GetString(kIdentity, key, "reading the identity map"));
        if (existing) continue;
      }
      Check(batch.Put(cf(kIdentity), key, order[i].link->user_id));
      pending_links_.insert(key);
      claims.keys_.push_back(std::move(key));
    }
    return OkStatus();
  }

  uint64_t BeginChange() {
    std::lock_guard lock(seq_mu_);
    const uint64_t seq = ++issued_seq_;
    in_flight_.insert(seq);
    return seq;
  }

  void EndChange(uint64_t seq) {
    std::lock_guard lock(seq_mu_);
    in_flight_.erase(seq);
    visible_seq_.store(in_flight_.empty() ? issued_seq_ : *in_flight_.begin() - 1, std::memory_order_release);
  }

  static size_t StripeOf(uint32_t project, std::string_view distinct_id) {
    return (std::hash<std::string_view>()(distinct_id) ^ (size_t{project} * 0x9e3779b97f4a7c15ull)) %
           kProfileStripes;
  }

  const fs::path dir_;
  StoreOptions options_;
  rocksdb::WriteOptions write_options_;

  // Shared by every operation, exclusive in Close(): no call can use the DB while it is being closed.
  mutable std::shared_mutex life_mu_;
  bool closed_ = false;
  // The database's Env (when the data dir allows O_DIRECT): declared before db_, so it outlives the database.
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  // What event batches put their events under (set with handles_, kept past Close: see DetachedColumnFamily).
  std::shared_ptr<const rocksdb::ColumnFamilyHandle> events_cf_;
  // Memtable budget shared by all column families; its memory_usage() is about what flushing them will write.
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers_;
  std::shared_ptr<rocksdb::Statistics> statistics_;

  // The write path (Commit): queued writers, whether a leader is at work, and the journal it alone uses.
  std::mutex write_mu_;
  std::condition_variable write_cv_;
  std::deque<PendingWrite*> write_queue_;  // guarded by write_mu_
  bool leader_active_ = false;             // guarded by write_mu_
  std::unique_ptr<internal::Journal> journal_;
  std::atomic<bool> flush_requested_{false};
  // Journaled records not applied yet because their apply failed (ApplyGroup), oldest first. Write leader
  // and Close() only.
  struct UnappliedRecord {
    uint64_t seq;
    std::string data;  // the WriteBatch representation
  };
  std::deque<UnappliedRecord> unapplied_;
  std::atomic<uint64_t> journal_bytes_{0};  // journal_->Bytes() as of the last group, for other threads

  // Full-disk handling (Commit): WAL bytes of writes between admission and commit, whether the disk was
  // last found too full (to log once per episode), and the state of MaybeResume.
  std::atomic<uint64_t> pending_write_bytes_{0};
  std::atomic<bool> disk_full_{false};
  std::atomic<bool> last_write_failed_{false};
  std::atomic<int64_t> last_resume_ms_{0};  // steady clock
  std::atomic<int64_t> last_space_flush_ms_{0};  // steady clock: FlushToFreeJournal

  std::mutex seq_mu_;
  uint64_t issued_seq_ = 0;       // guarded by seq_mu_
  std::set<uint64_t> in_flight_;  // guarded by seq_mu_
  std::atomic<uint64_t> visible_seq_{0};

  std::mutex identity_mu_;
  std::unordered_set<std::string> pending_links_;  // guarded by identity_mu_
  // Bumped (under identity_mu_) each time a call releases its claims, i.e. after its links committed.
  std::atomic<uint64_t> links_released_{0};

  std::array<std::mutex, kProfileStripes> profile_mu_;

  std::mutex projects_mu_;
  uint32_t last_project_id_ = 0;  // guarded by projects_mu_
};

void RocksEventBatch::Add(const Event& e, std::string_view properties) {
  if (!status_.ok()) return;
  if (e.time_us < 0) {
    status_ = InvalidArgument("event time " + std::to_string(e.time_us) + " is before the Unix epoch");
    return;
  }
  const Hour hour = HourOf(e.time_us);
  const internal::EventKeyArray key_bytes = internal::MakeEventKey(project_, e);
  const rocksdb::Slice key(key_bytes.data(), key_bytes.size());
  value_.clear();
  internal::EncodeEventValueHead(e, ingested_ms_, properties.size(), value_);
  const rocksdb::Slice value_parts[2] = {rocksdb::Slice(value_), rocksdb::Slice(properties)};
  // The handle is only read (its id and comparator); WriteBatch's interface takes it non-const.
  RocksStore::Check(batch_.Put(const_cast<rocksdb::ColumnFamilyHandle*>(events_cf_.get()), rocksdb::SliceParts(&key, 1), rocksdb::SliceParts(value_parts, 2)));
  ++count_;
  auto it = hours_.end();
  if (hours_.empty() || hours_.back().first != hour) {
    it = std::find_if(hours_.begin(), hours_.end(), [hour](const auto& h) { return h.first == hour; });
    if (it == hours_.end()) it = hours_.insert(hours_.end(), {hour, PartitionCounters{}});
  } else {
    it = hours_.end() - 1;
  }
  it->second.writes += 1;
  it->second.bytes += key.size() + value_.size() + properties.size();
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const std::filesystem::path& dir, const StoreOptions& options) {
  std::error_code ec;
  const bool existed = fs::exists(dir, ec);
  if (!existed) {
    if (!fs::create_directories(dir, ec) && ec) {
      return Error(ErrorCode::kAccessDenied, "cannot create data dir " + dir.string() + ": " + ec.message() +
                                                 "; check that its parent exists and is writable");
    }
    // The store holds API secrets and customer data: only the service user may read it.
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec) {
      return Error(ErrorCode::kAccessDenied, "cannot set mode 0700 on data dir " + dir.string() + ": " +
                                                 ec.message());
    }
  } else if (!fs::is_directory(dir, ec)) {
    return InvalidArgument("data dir " + dir.string() + " exists but is not a directory");
  }
  if (::access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return Error(ErrorCode::kAccessDenied, "data dir " + dir.string() + " is not writable by this user (" +
                                               std::strerror(errno) + "): fix its owner or mode");
  }
  KeepMemtableMemory();
  auto store = std::make_unique<RocksStore>(dir, options);
  SLUICE_TRY(store->OpenDb());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace sluice::store
