// FileSetWriter: turns a stream of encoded NDJSON lines into one or more compressed objects ("parts") of bounded
// size, streamed to an ObjectStore with bounded memory — the write side of a partition export (SPEC §4).
//
//   FileSetWriter w(store, [&](int part) { return fmt::format("{}/part-{:04d}.json.gz", dir, part); },
//                   {.compression = Compression::kGzip}, {.content_type = "application/x-ndjson",
//                                                          .content_encoding = "gzip"});
//   std::string lines;
//   ... AppendEventRecord(e, lines); if (lines.size() > 256 << 10) { SLUICE_TRY(w.Append(lines, n)); ... }
//   SLUICE_ASSIGN_OR_RETURN(std::vector<FileEntry> files, w.Finish());   // then the manifest lists `files`
//
// Each part is a sequence of independently compressed blocks (gzip members / zstd frames, see compressor.h)
// compressed on a small worker pool while the caller keeps scanning and encoding. A part is opened lazily on its
// first byte and rolls to the next part only at a line boundary once it would exceed
// max_file_uncompressed_bytes, so no file is empty and no line is split between files (a single line larger
// than the limit gets a file of its own).
//
// Memory: the block being filled + max in-flight blocks (2 × compress_threads) × (block + its compressed form)
// + the ObjectWriter's own buffer (S3 multipart: part_size × (parts_in_flight + 1)), whatever the data size.
//
// Errors: the first error (compression, ObjectWriter Write/Complete, opening the object) is returned from the
// Append or Finish that meets it and from every later call; the object being written is aborted at once (it
// never becomes visible). Parts completed before the error stay in the store: the caller's manifest decides
// what is current, and deterministic keys make a retry overwrite them.
//
// Thread-compatible: one thread drives a writer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto.h"
#include "common/result.h"
#include "objstore/object_store.h"
#include "pipeline/compressor.h"
#include "pipeline/pipeline.h"

namespace sluice::pipeline {

/// One object a FileSetWriter completed.
struct FileEntry {
  std::string key;  // object key as passed to the ObjectStore
  uint64_t records = 0;
  uint64_t bytes = 0;  // compressed object size
  uint64_t uncompressed_bytes = 0;
  std::string sha256;  // hex SHA-256 of the object bytes as stored
};

struct FileSetOptions {
  Compression compression = Compression::kGzip;
  /// -1 = the codec's default (compressor.h: kDefaultGzipLevel, kDefaultZstdLevel).
  int level = -1;
  /// Roll to a new file (part) beyond this many uncompressed bytes. Must be > 0.
  uint64_t max_file_uncompressed_bytes = 256ull << 20;
  /// Compression block (gzip member / zstd frame) size: 64 KiB .. 64 MiB.
  size_t block_bytes = 1 << 20;
  /// Compression worker threads; 0 = compress on the calling thread.
  int compress_threads = 2;
};

class FileSetWriter {
 public:
  /// `key_for_part(i)` gives the key of part i (0-based); the writer opens `store.NewWriter(key, put_options)`
  /// lazily on the first byte of a part. Invalid options are reported by the first Append/Finish. `store` must
  /// outlive the writer.
  FileSetWriter(objstore::ObjectStore& store, std::function<std::string(int part)> key_for_part,
                FileSetOptions options, objstore::PutOptions put_options);
  /// Aborts an object still being written (as Abort()).
  ~FileSetWriter();
  FileSetWriter(const FileSetWriter&) = delete;
  FileSetWriter& operator=(const FileSetWriter&) = delete;

  /// Appends complete lines (each ends in '\n'); `records` = the number of lines in `lines` (used for the
  /// per-file counts without rescanning the bytes; only a piece split off at a file roll is counted).
  /// kInvalidArgument when `lines` does not end in '\n'.
  Status Append(std::string_view lines, uint64_t records);
  /// As Append, and leaves `lines` empty; when `lines` holds at least a block and fits the open part, its
  /// buffer becomes the next compression block as it is (swapped for a recycled one) instead of being copied.
  /// The exporter's batches take this path: each byte is then written once, by the encoder.
  Status AppendTaking(std::string& lines, uint64_t records);
  /// Flushes, completes every object, returns the files in part order. A writer that got no records produces
  /// zero files. The writer is done afterwards (further calls fail).
  Result<std::vector<FileEntry>> Finish();
  /// Abandons the current object (ObjectWriter::Abort) and drops buffered data; safe after a failure and more
  /// than once. Completed parts are left as they are.
  void Abort();

  /// Totals so far (completed parts plus the open one), for progress reporting.
  uint64_t records() const { return done_records_ + part_records_; }
  uint64_t uncompressed_bytes() const { return done_uncompressed_ + part_uncompressed_; }
  /// Files completed so far.
  const std::vector<FileEntry>& files() const { return files_; }

 private:
  Status EnsureCompressor();
  Status AppendToPart(std::string_view piece, uint64_t records);
  Status OpenPart();
  Status FinishPart();
  /// The compressor's sink: hashes and uploads compressed bytes of the open part.
  Status WriteCompressed(std::string_view bytes);
  Status Fail(Error error);

  objstore::ObjectStore& store_;
  std::function<std::string(int part)> key_for_part_;
  FileSetOptions options_;
  objstore::PutOptions put_options_;

  Status status_;  // first error (sticky), or a done marker after Finish/Abort
  bool done_ = false;
  std::unique_ptr<BlockCompressor> compressor_;

  // The open part.
  std::unique_ptr<objstore::ObjectWriter> writer_;
  std::optional<Sha256Hasher> hasher_;
  std::string part_key_;
  uint64_t part_records_ = 0;
  uint64_t part_uncompressed_ = 0;
  uint64_t part_bytes_ = 0;

  std::vector<FileEntry> files_;
  uint64_t done_records_ = 0;
  uint64_t done_uncompressed_ = 0;
};

}  // namespace sluice::pipeline
