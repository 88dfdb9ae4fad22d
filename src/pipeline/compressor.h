// Block compression for pipeline files: the data is cut into blocks (1 MiB by default) and each block becomes a
// self-contained unit, so blocks compress in parallel and the concatenation of their outputs is one valid file:
//   gzip  each block is one complete gzip member. RFC 1952 §2.2 lets a gzip file hold several members, read as
//         the concatenation of their data (gunzip/zcat, Python's gzip, zlib's inflateReset loop, Spark/Hadoop,
//         Athena, DuckDB, libdeflate all do). Produced by isa-l's igzip, 2-4x faster than libdeflate and ~10x
//         faster than zlib at a similar ratio (see kDefaultGzipLevel).
//   zstd  each block is one zstd frame (with content size and checksum); zstd readers decode concatenated frames.
//   none  the bytes as they are.
// Output is deterministic (gzip headers carry no time or name), so re-exporting the same data gives the same
// bytes and checksums.
//
//   BlockCompressor::Options o{.compression = Compression::kGzip, .threads = 2};
//   auto c = BlockCompressor::Create(o, [&](std::string_view bytes) { return object_writer->Write(bytes); });
//   (*c)->buffer().append(lines);           // fill the current block
//   SLUICE_TRY((*c)->Submit());             // hand it to a worker; finished blocks reach the sink, in order
//   SLUICE_TRY((*c)->Flush());              // everything submitted has reached the sink
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/result.h"
#include "pipeline/pipeline.h"

namespace sluice::pipeline {

/// Default levels (FileSetOptions::level = -1), chosen with bench/pipeline/export_bench.cc: realistic events of
/// ~806 encoded bytes, 1 MiB blocks, one core of the 2-vCPU AMD EPYC (AVX-512) dev VM; CPU s per million events
/// for the codec alone, ratio, and the whole exporter's events/s per core of CPU (scan + encode + compress +
/// SHA-256 + write; QUICK runs, ±10%):
///   igzip 0   0.94 s  4.2x  476k/core        zstd 1   1.41 s  6.8x  390k/core
///   igzip 1   1.06 s  5.4x  440k/core        zstd 3   2.30 s  6.6x  256k/core
///   igzip 2   1.07 s  5.5x  448k/core        libdeflate 1 (measured apart) ~1.8 s, ratio as igzip 1
///   igzip 3   2.44 s  5.5x  273k/core        zlib 6 (classic gzip -6)     11.7 s  6.9x
/// igzip 2 costs the same as 1 and compresses a little better; level 3 drops below the 300,000 events/s per core
/// target. zstd 1 compresses better than zstd 3 on this data and is faster.
inline constexpr int kDefaultGzipLevel = 2;
inline constexpr int kDefaultZstdLevel = 1;
/// Accepted levels: gzip is isa-l igzip's scale 0-3 (0 = fastest, 3 = smallest); zstd 1-19 (negative "fast"
/// levels -1..-7 too); none ignores the level.
inline constexpr int kMinGzipLevel = 0;
inline constexpr int kMaxGzipLevel = 3;
inline constexpr int kMinZstdLevel = -7;
inline constexpr int kMaxZstdLevel = 19;

/// The level -1 stands for.
int DefaultLevel(Compression compression);
/// kInvalidArgument naming the accepted range when `level` (after -1 → default) is out of range.
Status ValidateLevel(Compression compression, int level);
/// Resolves -1 to the default and validates.
Result<int> ResolveLevel(Compression compression, int level);

/// Compresses one block into one self-contained unit (gzip member, zstd frame, or a copy for none). Holds the
/// codec's working memory (isa-l level buffer, zstd context), so reuse one per thread. Not thread-safe.
class BlockCodec {
 public:
  /// kInvalidArgument for a level out of range (see ValidateLevel); -1 = the default.
  static Result<std::unique_ptr<BlockCodec>> Create(Compression compression, int level = -1);
  virtual ~BlockCodec() = default;

  Compression compression() const { return compression_; }
  int level() const { return level_; }

  /// Upper bound of Compress's output for `input_size` bytes of input.
  virtual size_t MaxCompressedSize(size_t input_size) const = 0;
  /// Compresses `input` into out[0, capacity) (capacity >= MaxCompressedSize(input.size())) and returns the
  /// number of bytes written. kInternal when the codec fails (a bug or exhausted memory).
  virtual Result<size_t> Compress(std::string_view input, char* out, size_t capacity) = 0;
  /// Convenience: appends the compressed form of `input` to `out`.
  Status CompressAppend(std::string_view input, std::string& out);

 protected:
  BlockCodec(Compression compression, int level) : compression_(compression), level_(level) {}

 private:
  Compression compression_;
  int level_;
};

/// Compresses a stream of blocks on a small worker pool and hands the outputs, in submission order, to a sink.
///
/// Threading: one caller thread uses the compressor (buffer/Submit/Flush/Cancel); the sink runs only on that
/// thread, inside Submit or Flush, so it may use objects that are not thread-safe (an ObjectWriter). Memory is
/// bounded: at most `max_blocks_in_flight` blocks are queued, compressing or waiting for delivery (each holds
/// its input and compressed buffers, recycled), plus the block being filled; Submit blocks when all are busy.
///
/// Errors: a codec or sink error is returned from the Submit or Flush that meets it, and every later call
/// returns it again (the stream is broken; the caller abandons its output).
class BlockCompressor {
 public:
  struct Options {
    Compression compression = Compression::kGzip;
    int level = -1;
    /// Compression threads; 0 = compress on the caller's thread inside Submit (no pool).
    int threads = 2;
    /// Blocks submitted and not yet delivered to the sink; 0 = 2 × threads (1 without threads).
    int max_blocks_in_flight = 0;
    /// Expected block size: buffers are reserved for it (blocks may be larger or smaller).
    size_t block_bytes = 1 << 20;
  };
  using Sink = std::function<Status(std::string_view compressed)>;

  /// kInvalidArgument for a bad level or negative thread/in-flight counts.
  static Result<std::unique_ptr<BlockCompressor>> Create(const Options& options, Sink sink);
  /// Stops and joins the workers; blocks not yet delivered are dropped.
  ~BlockCompressor();
  BlockCompressor(const BlockCompressor&) = delete;
  BlockCompressor& operator=(const BlockCompressor&) = delete;

  /// The block being filled; append to it, then Submit().
  std::string& buffer() { return current_; }
  /// Hands buffer() to compression (nothing when it is empty) and gives the caller a fresh, empty buffer.
  /// Delivers every block that has finished to the sink; waits only when all in-flight slots are busy.
  Status Submit();
  /// Submits buffer() and waits until every submitted block has reached the sink.
  Status Flush();
  /// Drops queued and undelivered blocks and the current buffer (after an error, or to abandon a file); the
  /// compressor stays usable afterwards unless it had failed.
  void Cancel();

  /// Uncompressed bytes submitted and compressed bytes delivered, since creation.
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }
  const Options& options() const { return options_; }

 private:
  struct Slot;
  BlockCompressor(const Options& options, Sink sink);
  Status Start();
  void WorkerLoop(BlockCodec* codec);
  /// Delivers the oldest undelivered block; waits for it when `wait`. Returns false in `*delivered` when it was
  /// not finished yet (only without `wait`).
  Status DeliverOldest(bool wait, bool* delivered);
  Status Fail(Error error);

  Options options_;
  Sink sink_;
  std::string current_;
  std::vector<std::unique_ptr<BlockCodec>> codecs_;  // one per worker, or one for the caller thread
  std::vector<std::unique_ptr<Slot>> slots_;         // ring indexed by sequence % size
  uint64_t submitted_ = 0;                           // blocks handed to slots
  uint64_t delivered_ = 0;                           // blocks given to the sink (or cancelled)
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  Status failed_;

  std::mutex mu_;
  std::condition_variable work_cv_;  // workers wait for queued slots
  std::condition_variable done_cv_;  // the caller waits for a finished slot
  std::deque<Slot*> queue_;          // slots waiting for a worker
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace sluice::pipeline
