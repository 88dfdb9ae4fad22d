#include "cloudimport/line_reader.h"

#include <fmt/format.h>

#include <cstring>

#include "common/vector_state.h"

namespace sluice::cloudimport {
namespace {

// Inflate output per call: large enough that per-call overhead vanishes, small enough to stay in L2.
constexpr size_t kOutBytes = 256 * 1024;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string GzipDetectedMessage(std::string_view file) {
  return fmt::format(
      "No compression specified but Gzip detected in {}: the file starts with gzip's magic bytes "
      "1f 8b. Create the connector with category_properties.compression \"gzip\", or upload the "
      "file uncompressed",
      file);
}

std::string NotGzipMessage(std::string_view file) {
  return fmt::format(
      "Gzip compression specified but {} is not gzip (it does not start with gzip's magic bytes "
      "1f 8b). Create the connector with category_properties.compression \"none\", or upload the "
      "file gzipped",
      file);
}

LineReader::LineReader(Options options, LineFn fn) : options_(std::move(options)), fn_(std::move(fn)) {
  if (options_.compression == Compression::kGzip) out_ = std::make_unique<char[]>(kOutBytes);
}

LineReader::~LineReader() = default;

Status LineReader::Fail(Error e) {
  error_ = e;
  return e;
}

Status LineReader::CheckMagic(std::string_view first) {
  const bool gzip = first.size() >= 2 && static_cast<unsigned char>(first[0]) == 0x1f &&
                    static_cast<unsigned char>(first[1]) == 0x8b;
  if (options_.compression == Compression::kNone && gzip) {
    return Fail(InvalidArgument(GzipDetectedMessage(options_.file)));
  }
  if (options_.compression == Compression::kGzip && !gzip) {
    return Fail(InvalidArgument(NotGzipMessage(options_.file)));
  }
  return OkStatus();
}

Status LineReader::Feed(std::string_view data) {
  if (error_) return *error_;
  bytes_in_ += data.size();
  if (!magic_checked_) {
    // The check needs two bytes; a first chunk of one byte is held back.
    if (head_.size() + data.size() < 2) {
      head_.append(data);
      return OkStatus();
    }
    if (!head_.empty()) {
      head_.append(data);
      magic_checked_ = true;
      SLUICE_TRY(CheckMagic(head_));
      std::string held = std::move(head_);
      head_.clear();
      return options_.compression == Compression::kGzip ? Inflate(held) : Split(held);
    }
    magic_checked_ = true;
    SLUICE_TRY(CheckMagic(data));
  }
  return options_.compression == Compression::kGzip ? Inflate(data) : Split(data);
}

static const char* IsalInflateError(int rc) {
  switch (rc) {
    case ISAL_INVALID_BLOCK:
      return "invalid deflate block";
    case ISAL_INVALID_SYMBOL:
      return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK:
      return "invalid lookback distance";
    case ISAL_INVALID_WRAPPER:
      return "incorrect header check";
    case ISAL_INCORRECT_CHECKSUM:
      return "incorrect data check";
    default:
      return "corrupt stream";
  }
}

Status LineReader::Inflate(std::string_view data) {
  if (!z_ready_) {
    z_ = std::make_unique<inflate_state>();
    isal_inflate_init(z_.get());
    z_->crc_flag = ISAL_GZIP;  // parses the gzip header and checks the CRC32 and size trailer
    z_ready_ = true;
  }
  inflate_state& z = *z_;
  // isa-l counts input in 32 bits: feed larger chunks in pieces.
  while (data.size() > (1u << 30)) {
    SLUICE_TRY(Inflate(data.substr(0, 1u << 30)));
    data.remove_prefix(1u << 30);
  }
  z.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uint32_t>(data.size());
  while (true) {
    if (member_ended_) {
      // Zero bytes after a member are padding (tape blocks, preallocated files): gzip(1) ignores them too.
      while (z.avail_in > 0 && *z.next_in == 0) {
        ++z.next_in;
        --z.avail_in;
      }
      if (z.avail_in == 0) break;
      // Another gzip member follows the one that ended (concatenated gzip files are valid gzip).
      uint8_t* next_in = z.next_in;
      const uint32_t avail_in = z.avail_in;
      isal_inflate_reset(&z);
      z.crc_flag = ISAL_GZIP;
      z.next_in = next_in;
      z.avail_in = avail_in;
      member_ended_ = false;
    }
    z.next_out = reinterpret_cast<uint8_t*>(out_.get());
    z.avail_out = kOutBytes;
    const uint32_t before_in = z.avail_in;
    const int rc = isal_inflate(&z);
    ClearUpperVectorState();  // isa-l leaves the AVX upper state dirty (common/vector_state.h)
    const size_t produced = kOutBytes - z.avail_out;
    if (rc < 0) {
      return Fail(InvalidArgument(fmt::format("{} is not valid gzip data near compressed byte {}: {}",
                                              options_.file, bytes_in_ - z.avail_in, IsalInflateError(rc))));
    }
    if (produced > 0) {
      // Checked before the lines are handed on: a bomb stops after its first megabytes.
      const uint64_t consumed = bytes_in_ - z.avail_in;
      const uint64_t out_total = bytes_out_ + produced;
      if (out_total > options_.ratio_check_after && consumed > 0 &&
          out_total / consumed > options_.max_inflation_ratio) {
        return Fail(
            InvalidArgument(fmt::format("{} inflates more than {}:1 ({} bytes of data from its first {} "
                                        "compressed bytes): refused as a likely "
                                        "gzip bomb. NDJSON compresses far less than that; check the file's "
                                        "content, or upload it uncompressed",
                                        options_.file, options_.max_inflation_ratio, out_total, consumed)));
      }
      SLUICE_TRY(Split(std::string_view(out_.get(), produced)));
    }
    if (z.block_state == ISAL_BLOCK_FINISH) {
      member_ended_ = true;
      continue;
    }
    // isa-l keeps input and output of its own between calls: stop only when it has consumed every byte and
    // did not fill the output (a full output may hide more to drain), or when it made no progress at all.
    if (produced < kOutBytes && z.avail_in == 0) break;
    if (produced == 0 && z.avail_in == before_in) break;
  }
  return OkStatus();
}

bool LineReader::Emit(std::string_view raw, bool too_long) {
  ++line_number_;
  if (too_long) return fn_(Line{.text = {}, .number = line_number_, .too_long = true});
  // A UTF-8 byte order mark (as Windows tools write) at the start of the file is not part of the first line.
  constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
  if (line_number_ == 1 && raw.starts_with(kByteOrderMark)) raw.remove_prefix(kByteOrderMark.size());
  std::string_view text = Trim(raw);
  if (text.empty()) return true;
  return fn_(Line{.text = text, .number = line_number_, .too_long = false});
}

Status LineReader::Split(std::string_view data) {
  bytes_out_ += data.size();
  if (bytes_out_ > options_.max_output_bytes) {
    return Fail(InvalidArgument(fmt::format(
        "{} holds more than {} bytes of data{}: Cloud Import reads files of up to {} bytes (2 GB) of data "
        "each — "
        "the limit applies to the data, not to the compressed size. Split it into smaller files",
        options_.file, options_.max_output_bytes,
        options_.compression == Compression::kGzip ? " once inflated" : "", options_.max_output_bytes)));
  }
  while (!data.empty()) {
    const char* nl = static_cast<const char*>(std::memchr(data.data(), '\n', data.size()));
    if (nl == nullptr) {
      // No end of line in this chunk: carry it, unless the line is already too long.
      if (!skipping_) {
        if (partial_.size() + data.size() > options_.max_line_bytes) {
          skipping_ = true;
          partial_.clear();
          partial_.shrink_to_fit();
        } else {
          partial_.append(data);
        }
      }
      return OkStatus();
    }
    std::string_view piece(data.data(), static_cast<size_t>(nl - data.data()));
    data.remove_prefix(piece.size() + 1);
    bool keep_going;
    if (skipping_) {
      keep_going = Emit({}, true);
      skipping_ = false;
    } else if (partial_.empty()) {
      keep_going = piece.size() > options_.max_line_bytes ? Emit({}, true) : Emit(piece, false);
    } else if (partial_.size() + piece.size() > options_.max_line_bytes) {
      partial_.clear();
      keep_going = Emit({}, true);
    } else {
      partial_.append(piece);
      keep_going = Emit(partial_, false);
      partial_.clear();
    }
    if (!keep_going)
      return Fail(Error(ErrorCode::kCancelled, fmt::format("reading {} was stopped", options_.file)));
  }
  return OkStatus();
}

Status LineReader::Finish() {
  if (error_) return *error_;
  if (!magic_checked_) {
    // A one-byte file: too short to be gzip.
    if (!head_.empty()) {
      magic_checked_ = true;
      SLUICE_TRY(CheckMagic(head_));
      std::string held = std::move(head_);
      SLUICE_TRY(Split(held));
    }
  }
  if (options_.compression == Compression::kGzip && z_ready_ && !member_ended_) {
    return Fail(
        InvalidArgument(fmt::format("{} is a truncated gzip file: the stream ended before the end of its "
                                    "last member ({} compressed bytes read)",
                                    options_.file, bytes_in_)));
  }
  if (skipping_ || !partial_.empty()) {
    bool ok = skipping_ ? Emit({}, true) : Emit(partial_, false);
    skipping_ = false;
    partial_.clear();
    if (!ok) return Fail(Error(ErrorCode::kCancelled, fmt::format("reading {} was stopped", options_.file)));
  }
  return OkStatus();
}

}  // namespace sluice::cloudimport
