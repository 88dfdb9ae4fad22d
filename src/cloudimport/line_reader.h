// LineReader: the bytes of one object, as they stream in, to NDJSON lines — gzip inflated on the fly (isa-l;
// concatenated members allowed), with bounded memory whatever the file size: one inflate window, one output
// buffer and at most one partial line of `max_line_bytes` (longer lines are skipped and reported, not
// buffered).
//
//   LineReader reader({.compression = Compression::kGzip, .file = "2024/01/events.json.gz"},
//                     [&](const Line& line) { batch.Add(line.text, line.number); return true; });
//   store->GetStreaming(key, [&](std::string_view chunk) { return reader.Feed(chunk).ok(); });
//   SLUICE_TRY(reader.Finish());
//
// The declared compression is checked against the first bytes (gzip's magic 1f 8b): a mismatch fails the file
// with Mixpanel's message ("No compression specified but Gzip detected…", and the converse).
//
// Bounded work per file: the data (after inflation) may not exceed `max_output_bytes` (Mixpanel's 2 GB per
// file applies to the data, not to the compressed object), and a gzip stream that inflates more than
// `max_inflation_ratio`:1 once it has produced `ratio_check_after` bytes is refused as a gzip bomb. Deflate
// tops out near 1000:1 (zlib ~1030:1, libdeflate ~990:1 on zeros), so the bound must sit well below that to
// catch bombs from any encoder; real NDJSON compresses 5–50:1, so 500:1 leaves it a tenfold margin and only
// refuses degenerate input (megabytes of one repeated byte). Both fail the file (kInvalidArgument) with a
// message saying what to do.
#pragma once

#include <isa-l/igzip_lib.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cloudimport/connector.h"
#include "common/result.h"

namespace sluice::cloudimport {

/// Longest line kept: an event must be < 1 MB (SPEC §3), plus room for whitespace. Longer lines are reported
/// as too long without being buffered.
inline constexpr size_t kMaxLineBytes = 1024 * 1024 + 4096;
/// Refuse a gzip stream inflating more than this many times its compressed size…
inline constexpr uint64_t kMaxInflationRatio = 500;
/// …once it has produced this much data (small files may legitimately be all padding).
inline constexpr uint64_t kInflationCheckAfterBytes = 16ull * 1024 * 1024;

struct Line {
  /// The line without surrounding whitespace (never empty: blank lines are skipped). Valid only during the
  /// callback. Empty when `too_long`.
  std::string_view text;
  /// 1-based line number in the decompressed file (blank lines count).
  uint64_t number = 0;
  /// The line exceeded max_line_bytes and was skipped.
  bool too_long = false;
};

class LineReader {
 public:
  struct Options {
    Compression compression = Compression::kNone;
    /// For messages.
    std::string file;
    size_t max_line_bytes = kMaxLineBytes;
    /// Bytes of data (inflated) the file may hold; more fails it. Default: Cloud Import's 2 GB.
    uint64_t max_output_bytes = kMaxFileBytes;
    uint64_t max_inflation_ratio = kMaxInflationRatio;
    uint64_t ratio_check_after = kInflationCheckAfterBytes;
  };
  /// Called for every non-blank line, in order; returning false stops the reader (Feed then fails
  /// kCancelled).
  using LineFn = std::function<bool(const Line& line)>;

  LineReader(Options options, LineFn fn);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  /// Consumes the next bytes of the object. kInvalidArgument for a compression mismatch or corrupt gzip data,
  /// kCancelled when the callback stopped. After an error, further calls return the same error.
  Status Feed(std::string_view data);
  /// End of the object: delivers a last line without a newline; fails when a gzip stream is truncated.
  Status Finish();

  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }

 private:
  Status CheckMagic(std::string_view first_bytes);
  Status Inflate(std::string_view data);
  Status Split(std::string_view data);
  bool Emit(std::string_view raw, bool too_long);
  Status Fail(Error e);

  Options options_;
  LineFn fn_;
  std::unique_ptr<inflate_state> z_;  // isa-l: ~3x zlib's inflate speed on NDJSON
  bool z_ready_ = false;
  bool member_ended_ = false;  // the last inflate call finished a gzip member
  std::unique_ptr<char[]> out_;
  std::string head_;  // first bytes until the magic check is possible
  bool magic_checked_ = false;
  std::string partial_;    // an incomplete line carried between chunks
  bool skipping_ = false;  // inside a too-long line
  uint64_t line_number_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  std::optional<Error> error_;
};

/// Mixpanel's message for a gzip file on a connector without compression, and the converse.
std::string GzipDetectedMessage(std::string_view file);
std::string NotGzipMessage(std::string_view file);

}  // namespace sluice::cloudimport
