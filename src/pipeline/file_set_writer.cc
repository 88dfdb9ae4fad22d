#include "pipeline/file_set_writer.h"

#include <algorithm>

#include <fmt/format.h>

namespace sluice::pipeline {
namespace {

constexpr size_t kMinBlockBytes = 64 << 10;
constexpr size_t kMaxBlockBytes = 64 << 20;

Status ValidateOptions(const FileSetOptions& o) {
  if (o.max_file_uncompressed_bytes == 0) {
    return InvalidArgument("max_file_uncompressed_bytes must be greater than 0");
  }
  if (o.block_bytes < kMinBlockBytes || o.block_bytes > kMaxBlockBytes) {
    return InvalidArgument(fmt::format("compression block size {} is out of range ({}..{} bytes)", o.block_bytes,
                                       kMinBlockBytes, kMaxBlockBytes));
  }
  if (o.compress_threads < 0 || o.compress_threads > 64) {
    return InvalidArgument(fmt::format("compress_threads {} is out of range (0..64)", o.compress_threads));
  }
  auto level = ResolveLevel(o.compression, o.level);
  if (!level.ok()) return std::move(level).error();
  return OkStatus();
}

}  // namespace

FileSetWriter::FileSetWriter(objstore::ObjectStore& store, std::function<std::string(int part)> key_for_part,
                             FileSetOptions options, objstore::PutOptions put_options)
    : store_(store),
      key_for_part_(std::move(key_for_part)),
      options_(options),
      put_options_(std::move(put_options)) {
  status_ = ValidateOptions(options_);
  if (status_.ok() && !key_for_part_) status_ = InvalidArgument("FileSetWriter needs a key_for_part function");
}

FileSetWriter::~FileSetWriter() { Abort(); }

Status FileSetWriter::Fail(Error error) {
  // Abandon the open object at once: it must never become visible, and its buffers are released now.
  if (compressor_) compressor_->Cancel();
  if (writer_) {
    writer_->Abort();
    writer_.reset();
  }
  hasher_.reset();
  status_ = error;
  return error;
}

Status FileSetWriter::EnsureCompressor() {
  if (compressor_) return OkStatus();
  BlockCompressor::Options o{.compression = options_.compression,
                             .level = options_.level,
                             .threads = options_.compress_threads,
                             .max_blocks_in_flight = 0,
                             .block_bytes = options_.block_bytes};
  auto c = BlockCompressor::Create(o, [this](std::string_view bytes) { return WriteCompressed(bytes); });
  if (!c.ok()) return Fail(std::move(c).error());
  compressor_ = std::move(c).value();
  return OkStatus();
}

Status FileSetWriter::Append(std::string_view lines, uint64_t records) {
  if (!status_.ok()) return status_;
  if (done_) return Error(ErrorCode::kInternal, "FileSetWriter::Append after Finish or Abort");
  if (lines.empty()) return OkStatus();
  if (lines.back() != '\n') {
    return InvalidArgument("FileSetWriter::Append takes complete lines: the data does not end in '\\n'");
  }
  SLUICE_TRY(EnsureCompressor());

  const uint64_t limit = options_.max_file_uncompressed_bytes;
  while (!lines.empty()) {
    const uint64_t room = limit > part_uncompressed_ ? limit - part_uncompressed_ : 0;
    if (lines.size() <= room) return AppendToPart(lines, records);
    // Split at the last line boundary that fits, so the part stays within the limit.
    size_t cut = 0;
    if (room > 0) {
      size_t nl = lines.rfind('\n', static_cast<size_t>(room) - 1);
      if (nl != std::string_view::npos) cut = nl + 1;
    }
    if (cut == 0) {
      if (part_uncompressed_ > 0) {
        SLUICE_TRY(FinishPart());  // the next line does not fit: start a new part with it
        continue;
      }
      cut = lines.find('\n') + 1;  // one line longer than the limit: it gets a part of its own
    }
    const std::string_view piece = lines.substr(0, cut);
    const auto piece_records = static_cast<uint64_t>(std::count(piece.begin(), piece.end(), '\n'));
    if (piece_records > records) {
      return Fail(InvalidArgument(fmt::format("FileSetWriter::Append was told {} records but the data holds more "
                                              "lines than that",
                                              records)));
    }
    SLUICE_TRY(AppendToPart(piece, piece_records));
    SLUICE_TRY(FinishPart());
    lines.remove_prefix(cut);
    records -= piece_records;
  }
  return OkStatus();
}

Status FileSetWriter::AppendTaking(std::string& lines, uint64_t records) {
  const bool whole_block = status_.ok() && !done_ && lines.size() >= options_.block_bytes &&
                           lines.back() == '\n' &&
                           part_uncompressed_ + lines.size() <= options_.max_file_uncompressed_bytes;
  if (!whole_block) {
    Status st = Append(lines, records);
    lines.clear();
    return st;
  }
  SLUICE_TRY(EnsureCompressor());
  if (!writer_) SLUICE_TRY(OpenPart());
  // Bytes an earlier Append left in the block being filled (e.g. after a part roll) go out as a shorter
  // block, so that this one can be taken whole.
  if (!compressor_->buffer().empty()) {
    if (Status st = compressor_->Submit(); !st.ok()) return Fail(std::move(st).error());
  }
  part_records_ += records;
  part_uncompressed_ += lines.size();
  compressor_->buffer().swap(lines);
  lines.clear();
  if (Status st = compressor_->Submit(); !st.ok()) return Fail(std::move(st).error());
  return OkStatus();
}

Status FileSetWriter::AppendToPart(std::string_view piece, uint64_t records) {
  if (!writer_) SLUICE_TRY(OpenPart());
  part_records_ += records;
  part_uncompressed_ += piece.size();
  const size_t block = options_.block_bytes;
  while (!piece.empty()) {
    std::string& buf = compressor_->buffer();
    const size_t take = std::min(piece.size(), block - std::min(block, buf.size()));
    buf.append(piece.data(), take);
    piece.remove_prefix(take);
    if (buf.size() >= block) {
      Status st = compressor_->Submit();
      if (!st.ok()) return Fail(std::move(st).error());
    }
  }
  return OkStatus();
}

Status FileSetWriter::OpenPart() {
  part_key_ = key_for_part_(static_cast<int>(files_.size()));
  auto w = store_.NewWriter(part_key_, put_options_);
  if (!w.ok()) {
    return Fail(w.error().WithContext(fmt::format("opening {} in {}", part_key_, store_.Describe())));
  }
  writer_ = std::move(w).value();
  hasher_.emplace();
  part_records_ = 0;
  part_uncompressed_ = 0;
  part_bytes_ = 0;
  return OkStatus();
}

Status FileSetWriter::WriteCompressed(std::string_view bytes) {
  hasher_->Update(bytes);
  Status st = writer_->Write(bytes);
  if (!st.ok()) return st.error().WithContext(fmt::format("writing {} to {}", part_key_, store_.Describe()));
  part_bytes_ += bytes.size();
  return OkStatus();
}

Status FileSetWriter::FinishPart() {
  if (!writer_) return OkStatus();
  Status st = compressor_->Flush();
  if (!st.ok()) return Fail(std::move(st).error());
  auto info = writer_->Complete();
  if (!info.ok()) {
    return Fail(info.error().WithContext(fmt::format("completing {} in {}", part_key_, store_.Describe())));
  }
  writer_.reset();
  if (info->size != 0 && info->size != part_bytes_) {
    // The manifest's size and checksum describe what we wrote; a store that kept something else is broken.
    return Fail(Error(ErrorCode::kInternal, fmt::format("{} reports {} bytes for {} but {} were written",
                                                        store_.Describe(), info->size, part_key_, part_bytes_)));
  }
  FileEntry entry{.key = std::move(part_key_),
                  .records = part_records_,
                  .bytes = part_bytes_,
                  .uncompressed_bytes = part_uncompressed_,
                  .sha256 = HexEncode(hasher_->Finish())};
  hasher_.reset();
  done_records_ += part_records_;
  done_uncompressed_ += part_uncompressed_;
  part_records_ = 0;
  part_uncompressed_ = 0;
  part_bytes_ = 0;
  files_.push_back(std::move(entry));
  return OkStatus();
}

Result<std::vector<FileEntry>> FileSetWriter::Finish() {
  if (!status_.ok()) return status_.error();
  if (done_) return Error(ErrorCode::kInternal, "FileSetWriter::Finish called twice or after Abort");
  SLUICE_TRY(FinishPart());
  done_ = true;
  compressor_.reset();  // joins the workers now rather than at destruction
  return std::move(files_);
}

void FileSetWriter::Abort() {
  if (compressor_) compressor_->Cancel();
  if (writer_) {
    writer_->Abort();
    writer_.reset();
  }
  hasher_.reset();
  compressor_.reset();
  done_ = true;
}

}  // namespace sluice::pipeline
