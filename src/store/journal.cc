// The store's write-ahead journal (see journal.h for the format and the recovery rules).
#include "store/journal.h"

#include <fcntl.h>
#include <limits.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <system_error>

#include "common/crypto.h"
#include "store/codec.h"

namespace sluice::store::internal {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMagic = "SLJRNL01";
constexpr size_t kHeaderBytes = 24;  // length u32, crc u32, seq u64, group u64
constexpr std::string_view kSuffix = ".jnl";
constexpr size_t kBlock = 4096;  // O_DIRECT alignment of offsets, lengths and buffers

uint64_t RoundUp(uint64_t n) { return (n + kBlock - 1) & ~uint64_t{kBlock - 1}; }

uint32_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;  // little-endian hosts only (x86-64, arm64), as the rest of the store's codecs
}

void Store32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
void Store64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }

uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint32_t RecordCrc(uint64_t seq, uint64_t group, std::string_view payload) {
  char seq_bytes[16];
  Store64(seq_bytes, seq);
  Store64(seq_bytes + 8, group);
  return Crc32c(payload, Crc32c(std::string_view(seq_bytes, 16)));
}

/// The record starting at `at`, if it is whole and its CRC matches: its seq, group and end offset.
struct IntactRecord {
  uint64_t seq = 0;
  uint64_t group = 0;
  size_t end = 0;
};
std::optional<IntactRecord> RecordAt(std::string_view data, size_t at) {
  if (at > data.size() || data.size() - at < kHeaderBytes) return std::nullopt;
  const uint32_t length = Load32(data.data() + at);
  if (data.size() - at - kHeaderBytes < length) return std::nullopt;
  IntactRecord r{Load64(data.data() + at + 8), Load64(data.data() + at + 16), at + kHeaderBytes + length};
  if (RecordCrc(r.seq, r.group, data.substr(at + kHeaderBytes, length)) != Load32(data.data() + at + 4)) {
    return std::nullopt;
  }
  return r;
}

std::string SegmentName(uint64_t first_seq) {
  char name[32];
  std::snprintf(name, sizeof(name), "%020llu", static_cast<unsigned long long>(first_seq));
  return std::string(name) + std::string(kSuffix);
}

Error IoError(int err, const std::string& what, const fs::path& path) {
  if (err == ENOSPC || err == EDQUOT) {
    return Error(ErrorCode::kUnavailable, "disk full: no space left on device while " + what + " " +
                                              path.string() + "; free disk space or grow the volume");
  }
  if (err == EACCES || err == EPERM || err == EROFS) {
    return Error(ErrorCode::kAccessDenied, "permission denied while " + what + " " + path.string() + " (" +
                                               std::strerror(err) + "): the data dir must be writable by the "
                                               "user running sluice");
  }
  return Error(ErrorCode::kUnavailable, "I/O error while " + what + " " + path.string() + " (" +
                                            std::strerror(err) + "): check the disk and the kernel log");
}

Error Corrupted(const fs::path& path, uint64_t offset, const std::string& what) {
  std::string message = "journal " + path.string() + " is corrupted at byte offset " + std::to_string(offset) +
                        " (" + what + "): acknowledged writes follow it, so the store refuses to open; check the "
                        "disk and restore the data dir from a backup (moving the file away accepts losing the "
                        "writes it holds)";
  spdlog::error("CORRUPTION: {}", message);
  return Error(ErrorCode::kInternal, std::move(message));
}

Status SyncDir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError(errno, "opening the journal directory", dir);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return IoError(err, "syncing the journal directory", dir);
  return OkStatus();
}

/// Whether record `damaged` (which does not read back intact at `from`) was acknowledged: true when an intact
/// record of a LATER append group follows it. Every group is one write followed by one fdatasync, and the next
/// group is written only after that sync returned, so a later group on disk proves the damaged record's group
/// was synced (and acknowledged). Intact records of the damaged record's own group prove nothing: a power cut
/// may persist a group's blocks in any order, and none of that group was acknowledged.
bool AcknowledgedRecordAfter(std::string_view data, size_t from, uint64_t damaged) {
  uint64_t missing = damaged;  // the last record known not to read back intact
  size_t pos = from;
  // Bounded: every round moves `missing` forward by at least one and `pos` forward by at least one byte.
  for (size_t round = 0; round < data.size(); ++round) {
    // Records are consecutive, so anything written after `missing` includes record missing + 1.
    char pattern[8];
    Store64(pattern, missing + 1);
    std::optional<IntactRecord> next;
    size_t at = std::string_view::npos;
    for (size_t hit = data.find(std::string_view(pattern, 8), pos + 8); hit != std::string_view::npos;
         hit = data.find(std::string_view(pattern, 8), hit + 1)) {
      if (hit < pos + 8) continue;
      if ((next = RecordAt(data, hit - 8))) {
        at = hit - 8;
        break;
      }
    }
    if (!next) return false;
    // Walk the intact run that starts there.
    uint64_t want = missing + 1;
    while (next && next->seq == want) {
      if (next->group > damaged) return true;  // a later group: `damaged` was synced before it was written
      at = next->end;
      ++want;
      next = RecordAt(data, at);
    }
    const std::string_view rest = data.substr(std::min(at, data.size()));
    if (std::all_of(rest.begin(), rest.end(), [](char c) { return c == 0; })) return false;
    missing = want;  // record `want` is damaged too (or out of order): look past it
    pos = at;
  }
  return false;
}

Result<std::string> ReadWholeFile(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError(errno, "opening journal segment", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return IoError(err, "reading journal segment", path);
  }
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pread(fd, data.data() + done, data.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      return IoError(err, "reading journal segment", path);
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return data;
}

Status TruncateFile(const fs::path& path, uint64_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return IoError(errno, "cutting the torn tail off", path);
  int rc = ::ftruncate(fd, static_cast<off_t>(size));
  if (rc == 0) rc = ::fdatasync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return IoError(err, "cutting the torn tail off", path);
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<Journal>> Journal::Open(const fs::path& dir, uint64_t applied_seq,
                                               const JournalOptions& options, const ReplayFn& replay) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return IoError(ec.value(), "creating the journal directory", dir);
  std::unique_ptr<Journal> journal(new Journal(dir, options));

  std::vector<Segment> found;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != 20 + kSuffix.size() || !name.ends_with(kSuffix)) continue;
    if (!std::all_of(name.begin(), name.begin() + 20, [](char c) { return c >= '0' && c <= '9'; })) continue;
    found.push_back(Segment{std::stoull(name.substr(0, 20)), entry.path(), 0});
  }
  if (ec) return IoError(ec.value(), "listing the journal directory", dir);
  std::sort(found.begin(), found.end(), [](const Segment& a, const Segment& b) { return a.first_seq < b.first_seq; });

  uint64_t expected = 0;  // seq the next record must carry; 0 = not known yet
  bool removed_any = false;
  for (size_t i = 0; i < found.size(); ++i) {
    Segment& seg = found[i];
    const bool last = i + 1 == found.size();
    if (!last && found[i + 1].first_seq <= applied_seq + 1) {
      // Every record of this segment is already persisted in the database: nothing to read.
      fs::remove(seg.path, ec);
      removed_any = true;
      continue;
    }
    if (expected == 0 && seg.first_seq > applied_seq + 1) {
      return Corrupted(seg.path, 0, "records " + std::to_string(applied_seq + 1) + " to " +
                                        std::to_string(seg.first_seq - 1) + " are missing");
    }
    if (expected != 0 && seg.first_seq != expected) {
      return Corrupted(seg.path, 0, "expected a segment starting at record " + std::to_string(expected));
    }
    expected = seg.first_seq;
    SLUICE_ASSIGN_OR_RETURN(std::string data, ReadWholeFile(seg.path));
    uint64_t good = 0;      // bytes up to the end of the last intact record
    std::string torn;       // why the tail was cut (newest segment only)
    if (data.size() < kMagic.size() || std::string_view(data).substr(0, kMagic.size()) != kMagic) {
      if (!last || data.size() >= kMagic.size()) {
        return Corrupted(seg.path, 0, "not a journal segment (bad magic)");
      }
      torn = "incomplete segment header";
    } else {
      good = kMagic.size();
      while (good < data.size()) {
        const size_t left = data.size() - good;
        const char* p = data.data() + good;
        // Zeros from here on: the padding of an O_DIRECT append (or a file system that extended the file
        // before a crash). The sequence checks across segments still catch records missing before the end.
        if (std::all_of(p, static_cast<const char*>(data.data() + data.size()), [](char c) { return c == 0; })) {
          break;
        }
        // A damaged record is a torn tail only in the newest segment and only if no record of a later append
        // group follows it (an interrupted append leaves nothing of a later group after what it failed to write).
        auto torn_or_damaged = [&](const std::string& what) -> Status {
          if (last && !AcknowledgedRecordAfter(data, good, expected)) {
            torn = what;
            return OkStatus();
          }
          return Corrupted(seg.path, good, what + " in record " + std::to_string(expected));
        };
        if (left < kHeaderBytes) {
          torn = "incomplete record header";
          break;
        }
        const uint32_t length = Load32(p);
        const uint32_t crc = Load32(p + 4);
        const uint64_t seq = Load64(p + 8);
        const uint64_t group = Load64(p + 16);
        if (left - kHeaderBytes < length) {
          SLUICE_TRY(torn_or_damaged("record of " + std::to_string(length) + " bytes cut short"));
          break;
        }
        const std::string_view payload(p + kHeaderBytes, length);
        if (RecordCrc(seq, group, payload) != crc) {
          SLUICE_TRY(torn_or_damaged("CRC32C mismatch"));
          break;
        }
        if (seq != expected) {
          return Corrupted(seg.path, good, "record " + std::to_string(seq) + " where record " +
                                               std::to_string(expected) + " was expected");
        }
        if (seq > applied_seq) {
          Status s = replay(seq, payload);
          if (!s.ok()) {
            Error e = s.error();
            e.message = "replaying record " + std::to_string(seq) + " of journal " + seg.path.string() + ": " +
                        e.message;
            return e;
          }
        }
        ++expected;
        good += kHeaderBytes + length;
      }
    }
    if (!torn.empty()) {
      spdlog::warn("journal {}: cutting off a torn tail at byte offset {} ({}, {} bytes): a write that was "
                   "interrupted by a crash and never acknowledged",
                   seg.path.string(), good, torn, data.size() - good);
      SLUICE_TRY(TruncateFile(seg.path, good));
    }
    if (expected == seg.first_seq) {  // no records: nothing to keep
      fs::remove(seg.path, ec);
      removed_any = true;
      continue;
    }
    seg.bytes = good;
    journal->closed_.push_back(seg);
    journal->closed_bytes_ += good;
  }
  journal->next_seq_ = std::max(expected, applied_seq + 1);
  if (removed_any && options.sync) SLUICE_TRY(SyncDir(dir));
  journal->Trim(applied_seq);
  SLUICE_TRY(journal->StartSegment());
  return journal;
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
  std::free(buffer_);
}

Status Journal::StartSegment() {
  Segment seg{next_seq_, dir_ / SegmentName(next_seq_), 0};
  int fd = -1;
  direct_ = false;
  if (options_.direct_io) {
    fd = ::open(seg.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0600);
    direct_ = fd >= 0;  // EINVAL on file systems without O_DIRECT (tmpfs): buffered below
  }
  if (fd < 0) fd = ::open(seg.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return IoError(errno, "creating journal segment", seg.path);
  if (direct_ && buffer_ == nullptr) {
    buffer_bytes_ = std::max<size_t>(2 * kBlock, RoundUp(options_.reserve_buffer_bytes));
    if (::posix_memalign(reinterpret_cast<void**>(&buffer_), kBlock, buffer_bytes_) != 0) {
      ::close(fd);
      return Error(ErrorCode::kUnavailable, "out of memory for the journal's write buffer");
    }
    if (options_.reserve_buffer_bytes > 0) std::memset(buffer_, 0, buffer_bytes_);
  }
  ssize_t n;
  const size_t header_bytes = direct_ ? kBlock : kMagic.size();
  if (direct_) {
    std::memset(buffer_, 0, kBlock);
    std::memcpy(buffer_, kMagic.data(), kMagic.size());
  }
  do {
    n = ::pwrite(fd, direct_ ? buffer_ : kMagic.data(), header_bytes, 0);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(header_bytes) || (options_.sync && ::fdatasync(fd) != 0)) {
    const int err = n < 0 ? errno : (errno != 0 ? errno : EIO);
    ::close(fd);
    std::error_code ec;
    fs::remove(seg.path, ec);
    return IoError(err, "creating journal segment", seg.path);
  }
  if (options_.sync) {
    Status s = SyncDir(dir_);
    if (!s.ok()) {
      ::close(fd);
      return s;
    }
  }
  fd_ = fd;
  current_ = std::move(seg);
  current_bytes_ = kMagic.size();
  return OkStatus();
}

Status Journal::CloseCurrent() {
  if (fd_ < 0) return OkStatus();
  // Drops the zero padding of the last O_DIRECT block (harmless if it survives a crash: zeros end records).
  if (direct_) (void)::ftruncate(fd_, static_cast<off_t>(current_bytes_));
  ::close(fd_);
  fd_ = -1;
  current_.bytes = current_bytes_;
  closed_bytes_ += current_bytes_;
  closed_.push_back(std::move(current_));
  current_ = Segment{};
  current_bytes_ = 0;
  return OkStatus();
}

Result<uint64_t> Journal::Append(std::span<const std::string_view> payloads) {
  if (!broken_.empty()) return Error(ErrorCode::kUnavailable, broken_);
  if (payloads.empty()) return next_seq_;
  if (fd_ < 0 || current_bytes_ >= options_.segment_bytes) {
    if (fd_ >= 0 && next_seq_ == current_.first_seq) {
      // An empty current segment cannot be rolled (the new one would have its name): keep appending to it.
    } else {
      SLUICE_TRY(CloseCurrent());
      SLUICE_TRY(StartSegment());
    }
  }
  const uint64_t first = next_seq_;
  std::vector<std::array<char, kHeaderBytes>> headers(payloads.size());
  std::vector<iovec> iov;
  iov.reserve(payloads.size() * 2);
  uint64_t total = 0;
  for (size_t i = 0; i < payloads.size(); ++i) {
    const uint64_t seq = first + i;
    if (payloads[i].size() > UINT32_MAX) {
      return InvalidArgument("a store write of " + std::to_string(payloads[i].size()) +
                             " bytes is larger than a journal record can hold (4 GiB)");
    }
    Store32(headers[i].data(), static_cast<uint32_t>(payloads[i].size()));
    Store32(headers[i].data() + 4, RecordCrc(seq, first, payloads[i]));
    Store64(headers[i].data() + 8, seq);
    Store64(headers[i].data() + 16, first);  // the group: records appended (and synced) together
    iov.push_back(iovec{headers[i].data(), kHeaderBytes});
    if (!payloads[i].empty()) iov.push_back(iovec{const_cast<char*>(payloads[i].data()), payloads[i].size()});
    total += kHeaderBytes + payloads[i].size();
  }

  int err = 0;
  std::string what = "appending to journal";
  uint64_t written = 0;
  size_t next_iov = 0;
  if (direct_) {
    // One aligned write from the start of the last partial block: its bytes already written, the records,
    // zeros up to the next block boundary.
    const uint64_t block_start = current_bytes_ & ~uint64_t{kBlock - 1};
    const size_t head = static_cast<size_t>(current_bytes_ - block_start);
    const size_t padded = RoundUp(head + total);
    if (padded > buffer_bytes_) {
      char* bigger = nullptr;
      const size_t size = std::max(padded, buffer_bytes_ * 2);
      if (::posix_memalign(reinterpret_cast<void**>(&bigger), kBlock, size) != 0) {
        return Error(ErrorCode::kUnavailable, "out of memory for the journal's write buffer");
      }
      std::memcpy(bigger, buffer_, head);
      std::free(buffer_);
      buffer_ = bigger;
      buffer_bytes_ = size;
    }
    char* out = buffer_ + head;
    for (const iovec& v : iov) {
      std::memcpy(out, v.iov_base, v.iov_len);
      out += v.iov_len;
    }
    std::memset(out, 0, padded - head - total);
    while (written < padded) {
      const ssize_t n = ::pwrite(fd_, buffer_ + written, padded - written, static_cast<off_t>(block_start + written));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n < 0 ? errno : EIO;
        break;
      }
      written += static_cast<uint64_t>(n);
    }
    next_iov = iov.size();
  }
  while (next_iov < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - next_iov, IOV_MAX));
    const ssize_t n = ::pwritev(fd_, &iov[next_iov], count, static_cast<off_t>(current_bytes_ + written));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    written += static_cast<uint64_t>(n);
    size_t consumed = static_cast<size_t>(n);
    while (consumed > 0 && next_iov < iov.size()) {  // advance past fully written vectors, trim a partial one
      if (consumed >= iov[next_iov].iov_len) {
        consumed -= iov[next_iov].iov_len;
        ++next_iov;
      } else {
        iov[next_iov].iov_base = static_cast<char*>(iov[next_iov].iov_base) + consumed;
        iov[next_iov].iov_len -= consumed;
        consumed = 0;
      }
    }
  }
  if (err == 0 && options_.sync) {
    const bool fail = options_.fail_sync_for_testing && options_.fail_sync_for_testing();
    if (fail || ::fdatasync(fd_) != 0) {
      err = fail ? EIO : errno;
      what = "syncing journal";
    }
  }
  if (err != 0) {
    // Cut the partial append off so that the next record follows the last acknowledged one. After a failed
    // fdatasync the kernel may have dropped dirty pages, so the cut is synced too before trusting the file.
    if (::ftruncate(fd_, static_cast<off_t>(current_bytes_)) != 0 || (options_.sync && ::fdatasync(fd_) != 0)) {
      broken_ = "the journal " + current_.path.string() + " could not be repaired after a failed append (" +
                std::strerror(errno) + "): writes are refused until sluice is restarted";
      spdlog::error("{}", broken_);
    }
    return IoError(err, what, current_.path);
  }
  if (direct_) {
    // Only now, with the append durable, does the buffer's front become the new last partial block; after a
    // failure it must keep the old one, which the next append rewrites in place.
    const uint64_t block_start = current_bytes_ & ~uint64_t{kBlock - 1};
    const size_t end = static_cast<size_t>(current_bytes_ - block_start) + total;
    const size_t tail_start = end & ~size_t{kBlock - 1};
    if (tail_start > 0) std::memmove(buffer_, buffer_ + tail_start, end - tail_start);
  }
  current_bytes_ += total;
  next_seq_ += payloads.size();
  return first;
}

void Journal::Trim(uint64_t persisted_seq) {
  std::error_code ec;
  while (!closed_.empty()) {
    const uint64_t next_first = closed_.size() > 1 ? closed_[1].first_seq : (fd_ >= 0 ? current_.first_seq : next_seq_);
    if (next_first - 1 > persisted_seq) break;
    fs::remove(closed_.front().path, ec);
    if (ec) {
      spdlog::warn("journal: cannot delete {}: {}", closed_.front().path.string(), ec.message());
      break;
    }
    closed_bytes_ -= closed_.front().bytes;
    closed_.erase(closed_.begin());
  }
}

Status Journal::RemoveAll() {
  SLUICE_TRY(CloseCurrent());
  std::error_code ec;
  for (const Segment& seg : closed_) fs::remove(seg.path, ec);
  closed_.clear();
  closed_bytes_ = 0;
  broken_ = "the journal in " + dir_.string() + " is closed";
  if (options_.sync) return SyncDir(dir_);
  return OkStatus();
}

}  // namespace sluice::store::internal
