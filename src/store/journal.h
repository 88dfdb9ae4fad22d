// The store's own write-ahead journal. Every store write is appended here (one write() and one fdatasync per
// group of concurrent writers, CRC32C from isa-l's hardware implementation) before it is applied to RocksDB
// with RocksDB's WAL disabled. After a crash, Open() hands every record the database had not yet persisted
// back to the store, which applies it again; each applied record also writes its sequence number into the
// database (in the same atomic batch), so replay applies a record exactly once however often it runs.
//
//   <dir>/<first seq, 20 digits>.jnl   one segment: "SLJRNL01" then records
//   record = payload length u32 LE | CRC32C(seq | group | payload) u32 LE | seq u64 LE | group u64 LE | payload
//   (group = seq of the first record of the append the record was written and synced with)
//
// Where the file system allows it, segments are written with O_DIRECT (the page-cache copy of every byte was
// the largest single cost of the old WAL on the VMs we run on): each append rewrites the last partial 4 KiB
// block and pads with zeros, so a segment may end in zeros, which mark the end of its records.
//
// Sequence numbers are consecutive across segments. Only the newest segment may end in a torn append (a crash
// in the middle of an append that was never acknowledged; a power cut may persist its blocks in any order, so
// records of that last group may read back intact after a damaged one): Open() cuts it off. Damage followed by
// a record of a later group, or in an older segment, fails Open() with a message naming the file and offset,
// because that record was acknowledged.
//
// Thread-safety: none; the store serialises Append/Trim (its write leader) and Open/RemoveAll (open/close).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::store::internal {

struct JournalOptions {
  /// A segment is closed and a new one started once it holds this many bytes; whole segments are trimmed.
  uint64_t segment_bytes = 64ull << 20;
  /// fdatasync every append (off only in benchmarks that say so).
  bool sync = true;
  /// Write with O_DIRECT when the file system supports it.
  bool direct_io = true;
  /// With O_DIRECT, the aligned write buffer is allocated at this size and touched when the journal opens, so
  /// the first appends after a start do not fault it in page by page (~4 µs a page on this VM: 16 MB cost the
  /// first batches of a fresh server ~15 ms each). It still grows for a larger append. 0: grown on demand.
  size_t reserve_buffer_bytes = 0;
  /// Tests only: called before each append's fdatasync; returning true makes that sync fail with EIO.
  std::function<bool()> fail_sync_for_testing;
};

class Journal {
 public:
  /// Called by Open() for every intact record with seq > applied_seq, in sequence order.
  using ReplayFn = std::function<Status(uint64_t seq, std::string_view payload)>;

  /// Opens (creating when missing) the journal in `dir`, replays records after `applied_seq`, cuts a torn
  /// tail off the newest segment, deletes segments that hold only records <= applied_seq, and starts a new
  /// segment. Fails naming the file and offset on damage before the tail, or when `replay` fails.
  static Result<std::unique_ptr<Journal>> Open(const std::filesystem::path& dir, uint64_t applied_seq,
                                               const JournalOptions& options, const ReplayFn& replay);

  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  /// Appends one record per payload with consecutive sequence numbers, in one write, then syncs. Returns the
  /// first record's sequence number. On failure nothing was appended (a partial write is cut off again); if
  /// even that fails, the journal refuses every later append until the store is reopened.
  Result<uint64_t> Append(std::span<const std::string_view> payloads);

  /// Deletes closed segments whose every record has seq <= `persisted_seq` (applied and flushed to SSTs).
  void Trim(uint64_t persisted_seq);

  /// Deletes every segment (call only when everything appended is persisted, e.g. after a final flush).
  Status RemoveAll();

  /// Sequence number the next appended record gets.
  uint64_t NextSeq() const { return next_seq_; }
  /// Bytes of all segments on disk.
  uint64_t Bytes() const { return closed_bytes_ + current_bytes_; }
  /// Whether there is a closed segment Trim() could delete.
  bool HasClosedSegments() const { return !closed_.empty(); }
  /// Bytes of the aligned write buffer of O_DIRECT appends (0 when the segment is written through the page cache).
  size_t WriteBufferBytes() const { return direct_ ? buffer_bytes_ : 0; }

 private:
  struct Segment {
    uint64_t first_seq = 0;
    std::filesystem::path path;
    uint64_t bytes = 0;
  };

  Journal(std::filesystem::path dir, const JournalOptions& options) : dir_(std::move(dir)), options_(options) {}
  Status StartSegment();
  Status CloseCurrent();

  std::filesystem::path dir_;
  JournalOptions options_;
  std::vector<Segment> closed_;  // ascending by first_seq
  Segment current_;
  int fd_ = -1;
  uint64_t current_bytes_ = 0;
  uint64_t closed_bytes_ = 0;
  uint64_t next_seq_ = 1;
  std::string broken_;  // non-empty: why appends are refused
  // O_DIRECT: the current segment's fd has it; appends go through this 4 KiB-aligned buffer, whose first
  // `current_bytes_ % 4096` bytes are the segment's last partial block as written.
  bool direct_ = false;
  char* buffer_ = nullptr;
  size_t buffer_bytes_ = 0;
};

}  // namespace sluice::store::internal
