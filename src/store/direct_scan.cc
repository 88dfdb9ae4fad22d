#include "store/direct_scan.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace sluice::store::internal {
namespace {

/// O_DIRECT offsets, lengths and buffers are multiples of the device's logical block size; 4 KiB covers every
/// device Linux has (512-byte and 4 KiB sectors).
constexpr size_t kAlign = 4096;

thread_local DirectScanScope* t_scope = nullptr;

bool IsTableFile(const std::string& fname) {
  constexpr std::string_view kSuffix = ".sst";
  return fname.size() > kSuffix.size() &&
         fname.compare(fname.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
}

/// A table file as RocksDB opened it, whose reads on a thread with a DirectScanScope go through the scope.
class ScanAwareFile final : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  ScanAwareFile(std::string fname, std::unique_ptr<rocksdb::FSRandomAccessFile> file)
      : rocksdb::FSRandomAccessFileOwnerWrapper(std::move(file)), fname_(std::move(fname)) {}

  rocksdb::IOStatus Read(uint64_t offset, size_t n, const rocksdb::IOOptions& options, rocksdb::Slice* result,
                         char* scratch, rocksdb::IODebugContext* dbg) const override {
    if (DirectScanScope* scope = DirectScanScope::Current(); scope != nullptr && !target()->use_direct_io()) {
      rocksdb::IOStatus status;
      if (scope->Read(fname_, offset, n, result, scratch, &status)) return status;
      scope->CountFallback();
    }
    return target()->Read(offset, n, options, result, scratch, dbg);
  }

  rocksdb::IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs,
                              const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (DirectScanScope::Current() == nullptr) return target()->MultiRead(reqs, num_reqs, options, dbg);
    for (size_t i = 0; i < num_reqs; ++i) {
      reqs[i].status = Read(reqs[i].offset, reqs[i].len, options, &reqs[i].result, reqs[i].scratch, dbg);
    }
    return rocksdb::IOStatus::OK();
  }

  /// The kernel's readahead fills the page cache the scope's reads bypass: skipped on a scanning thread.
  rocksdb::IOStatus Prefetch(uint64_t offset, size_t n, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    if (DirectScanScope::Current() != nullptr && !target()->use_direct_io()) return rocksdb::IOStatus::OK();
    return target()->Prefetch(offset, n, options, dbg);
  }

 private:
  const std::string fname_;
};

}  // namespace

DirectScanFileSystem::DirectScanFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base)
    : rocksdb::FileSystemWrapper(base) {}

rocksdb::IOStatus DirectScanFileSystem::NewRandomAccessFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSRandomAccessFile>* result, rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s = target()->NewRandomAccessFile(fname, options, result, dbg);
  if (s.ok() && IsTableFile(fname)) *result = std::make_unique<ScanAwareFile>(fname, std::move(*result));
  return s;
}

DirectScanScope::DirectScanScope() {
  if (t_scope != nullptr) return;  // nested: the outer scope serves
  active_ = true;
  t_scope = this;
}

DirectScanScope::~DirectScanScope() {
  if (!active_) return;
  t_scope = nullptr;
  for (Window& w : windows_) {
    Release(w);
    std::free(w.data);
  }
}

DirectScanScope* DirectScanScope::Current() { return t_scope; }

void DirectScanScope::Release(Window& w) {
  if (w.fd >= 0) ::close(w.fd);
  w.fd = -1;
  w.fname.clear();
  w.length = 0;
}

DirectScanScope::Window* DirectScanScope::WindowFor(const std::string& fname) {
  Window* victim = nullptr;
  for (Window& w : windows_) {
    if (w.fname == fname) return &w;
    if (victim == nullptr || w.last_use < victim->last_use) victim = &w;
  }
  if (std::find(not_direct_.begin(), not_direct_.end(), fname) != not_direct_.end()) return nullptr;
  const int fd = ::open(fname.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) {
    // EINVAL: no O_DIRECT on this file system. Anything else (a file gone) is for RocksDB's own read to
    // report.
    not_direct_.push_back(fname);
    return nullptr;
  }
  if (windows_.size() < kWindows) {
    void* data = std::aligned_alloc(kAlign, kWindowBytes);
    if (data != nullptr) {
      victim = &windows_.emplace_back();
      victim->data = static_cast<char*>(data);
    }
  }
  if (victim == nullptr) {  // no window could be allocated at all
    ::close(fd);
    return nullptr;
  }
  Release(*victim);
  victim->fname = fname;
  victim->fd = fd;
  return victim;
}

bool DirectScanScope::Read(const std::string& fname, uint64_t offset, size_t n, rocksdb::Slice* result,
                           char* scratch, rocksdb::IOStatus* status) {
  if (n > kWindowBytes / 2) return false;
  Window* w = WindowFor(fname);
  if (w == nullptr) return false;
  w->last_use = ++clock_;
  const bool covered = w->length > 0 && offset >= w->offset && offset + n <= w->offset + w->length;
  if (!covered) {
    // A new window from the block's aligned start. Its length ramps up as RocksDB's own readahead does: the
    // first read of a file (or one that jumps) reads kFirstReadBytes, each read continuing the last one twice
    // as much, up to kWindowBytes; so a point read costs one small read and a scan soon reads large ones. A
    // window that ends short is the file's end.
    const uint64_t start = offset & ~static_cast<uint64_t>(kAlign - 1);
    const bool continues = w->length > 0 && start >= w->offset && start <= w->offset + w->length;
    w->next_read = continues ? std::min(w->next_read * 2, kWindowBytes) : kFirstReadBytes;
    const size_t needed = (offset - start + n + kAlign - 1) & ~(kAlign - 1);
    const size_t want = std::max(w->next_read, needed);  // needed <= kWindowBytes / 2 + kAlign
    ssize_t got;
    do {
      got = ::pread(w->fd, w->data, want, static_cast<off_t>(start));
    } while (got < 0 && errno == EINTR);
    if (got < 0 && errno == EINVAL) {
      // O_DIRECT opened but its reads are refused (a device with larger sectors than kAlign, or a file system
      // that only pretends): this file is read the ordinary way from now on.
      not_direct_.push_back(fname);
      Release(*w);
      return false;
    }
    if (got < 0) {
      const int err = errno;
      w->length = 0;
      *status = rocksdb::IOStatus::IOError("reading " + fname + " (direct scan read)", std::strerror(err));
      return true;
    }
    ++stats_.window_reads;
    stats_.bytes_read += static_cast<uint64_t>(got);
    w->offset = start;
    w->length = static_cast<size_t>(got);
  }
  ++stats_.copies;
  // At the file's end fewer than n bytes exist, as pread would return.
  const size_t begin = static_cast<size_t>(std::min<uint64_t>(offset - w->offset, w->length));
  const size_t len = std::min(n, w->length - begin);
  std::memcpy(scratch, w->data + begin, len);
  *result = rocksdb::Slice(scratch, len);
  *status = rocksdb::IOStatus::OK();
  return true;
}

}  // namespace sluice::store::internal
