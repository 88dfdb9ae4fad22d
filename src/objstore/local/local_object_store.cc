#include "objstore/local/local_object_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/crypto.h"

namespace sluice::objstore {
namespace fs = std::filesystem;
namespace {

// S3's key limit (1024 bytes of UTF-8); the same bound keeps local paths well under PATH_MAX.
constexpr size_t kMaxKeyBytes = 1024;
constexpr size_t kMaxSegmentBytes = 255;  // NAME_MAX on Linux file systems
constexpr size_t kStreamChunk = 1 << 20;

Error ErrnoError(int err, std::string_view what, const fs::path& path) {
  ErrorCode code = ErrorCode::kPermanent;
  switch (err) {
    case ENOENT: code = ErrorCode::kNotFound; break;
    case EACCES:
    case EPERM:
    case EROFS: code = ErrorCode::kAccessDenied; break;
    case ENOSPC:
    case EDQUOT:
    case EIO: code = ErrorCode::kUnavailable; break;
    case EISDIR:
    case ENOTDIR:
    case EEXIST:
    case ENOTEMPTY: code = ErrorCode::kConflict; break;
    default: break;
  }
  return Error(code, fmt::format("{} {}: {}", what, path.string(), std::strerror(err)));
}

Error FsError(const std::error_code& ec, std::string_view what, const fs::path& path) {
  return ErrnoError(ec.value(), what, path);
}

Status SyncDirectory(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open directory", dir);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError(err, "fsync directory", dir);
  return OkStatus();
}

ObjectInfo InfoFromStat(std::string key, const struct stat& st) {
  ObjectInfo info;
  info.key = std::move(key);
  info.size = static_cast<uint64_t>(st.st_size);
  int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  info.etag = fmt::format("{:x}-{:x}", info.size, mtime_ns);
  info.last_modified_ms = mtime_ns / 1'000'000;
  return info;
}

/// Removes the temporary files of writers that died (a crash, kill -9) from `dir`: those not written to for
/// kStaleTempAge. A live writer's file is written continuously, so it is never that old. Best effort.
void RemoveStaleTempFiles(const fs::path& dir) {
  constexpr auto kStaleTempAge = std::chrono::minutes(15);
  const auto now = fs::file_time_type::clock::now();
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(LocalObjectStore::kTempMarker, 0) != 0) continue;
    std::error_code stat_ec;
    if (!it->is_regular_file(stat_ec) || stat_ec) continue;
    const auto written = it->last_write_time(stat_ec);
    if (stat_ec || now - written < kStaleTempAge) continue;
    if (fs::remove(it->path(), stat_ec))
      spdlog::info("removed {}, left by a writer that stopped", it->path().string());
  }
}

// A temporary file in the key's directory that becomes the object on Commit().
class TempFile {
 public:
  ~TempFile() { Discard(); }

  static Result<TempFile> Create(const fs::path& final_path) {
    RemoveStaleTempFiles(final_path.parent_path());
    TempFile t;
    t.final_ = final_path;
    t.temp_ = final_path.parent_path() / fmt::format("{}{}", LocalObjectStore::kTempMarker, RandomHex(64));
    // A concurrent Delete may remove the directory (it prunes empty ones) between creating and using it.
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::error_code ec;
      fs::create_directories(final_path.parent_path(), ec);
      if (ec) return FsError(ec, "create directory", final_path.parent_path());
      t.fd_ = ::open(t.temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (t.fd_ >= 0 || errno != ENOENT) break;
    }
    if (t.fd_ < 0) return ErrnoError(errno, "create", t.temp_);
    return t;
  }

  TempFile(TempFile&& o) noexcept
      : final_(std::move(o.final_)), temp_(std::move(o.temp_)), fd_(std::exchange(o.fd_, -1)) {}
  TempFile& operator=(TempFile&&) = delete;

  Status Append(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError(errno, "write", temp_);
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return OkStatus();
  }

  /// fsync, rename over the final path, fsync the directory: after this the object is durable and visible.
  Status Commit() {
    if (::fsync(fd_) != 0) return ErrnoError(errno, "fsync", temp_);
    ::close(fd_);
    fd_ = -1;
    if (::rename(temp_.c_str(), final_.c_str()) != 0) return ErrnoError(errno, "rename to", final_);
    temp_.clear();
    return SyncDirectory(final_.parent_path());
  }

  void Discard() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!temp_.empty()) ::unlink(temp_.c_str());
    temp_.clear();
  }

  const fs::path& final_path() const { return final_; }

 private:
  TempFile() = default;
  fs::path final_;
  fs::path temp_;
  int fd_ = -1;
};

class LocalWriter final : public ObjectWriter {
 public:
  LocalWriter(std::string key, TempFile file) : key_(std::move(key)), file_(std::move(file)) {}

  Status Write(std::string_view data) override {
    if (done_) return Error(ErrorCode::kInvalidArgument, "Write after Complete/Abort");
    Status st = file_.Append(data);
    if (!st.ok()) Abort();
    return st;
  }

  Result<ObjectInfo> Complete() override {
    if (done_) return Error(ErrorCode::kInvalidArgument, "Complete after Complete/Abort");
    done_ = true;
    Status st = file_.Commit();
    if (!st.ok()) {
      file_.Discard();
      return st.error();
    }
    struct stat sb {};
    if (::stat(file_.final_path().c_str(), &sb) != 0) return ErrnoError(errno, "stat", file_.final_path());
    return InfoFromStat(key_, sb);
  }

  void Abort() override {
    done_ = true;
    file_.Discard();
  }

 private:
  std::string key_;
  TempFile file_;
  bool done_ = false;
};

}  // namespace

Status ValidateLocalKey(std::string_view key) {
  if (key.empty()) return InvalidArgument("object key is empty");
  if (key.size() > kMaxKeyBytes) return InvalidArgument(fmt::format("object key longer than {} bytes", kMaxKeyBytes));
  if (key.front() == '/') return InvalidArgument(fmt::format("object key '{}' starts with '/'", key));
  if (key.find('\0') != std::string_view::npos) return InvalidArgument("object key contains NUL");
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view seg = key.substr(start, end - start);
    if (seg.empty() || seg == "." || seg == "..") {
      return InvalidArgument(
          fmt::format("object key '{}' has an empty, '.' or '..' segment (not allowed in a directory store)", key));
    }
    if (seg.size() > kMaxSegmentBytes) {
      return InvalidArgument(fmt::format("object key '{}' has a segment longer than {} bytes", key, kMaxSegmentBytes));
    }
    if (seg.find(LocalObjectStore::kTempMarker) != std::string_view::npos) {
      return InvalidArgument(fmt::format("object key '{}' contains the reserved marker '{}'", key,
                                         LocalObjectStore::kTempMarker));
    }
    start = end + 1;
  }
  return OkStatus();
}

LocalObjectStore::LocalObjectStore(fs::path root) : root_(std::move(root)) {}

Result<std::unique_ptr<LocalObjectStore>> LocalObjectStore::Open(const fs::path& root) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return FsError(ec, "create directory", root);
  if (!fs::is_directory(root, ec)) return InvalidArgument(fmt::format("{} is not a directory", root.string()));
  if (::access(root.c_str(), W_OK | X_OK) != 0) return ErrnoError(errno, "access", root);
  return std::make_unique<LocalObjectStore>(fs::absolute(root));
}

Result<fs::path> LocalObjectStore::PathForKey(std::string_view key) const {
  SLUICE_TRY(ValidateLocalKey(key));
  return root_ / fs::path(std::string(key));
}

std::string LocalObjectStore::Describe() const { return "file://" + root_.string(); }

Result<ObjectInfo> LocalObjectStore::Head(std::string_view key) {
  SLUICE_ASSIGN_OR_RETURN(fs::path path, PathForKey(key));
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0) return ErrnoError(errno, "stat", path);
  if (!S_ISREG(sb.st_mode)) return NotFound(fmt::format("{} is not an object", path.string()));
  return InfoFromStat(std::string(key), sb);
}

Result<std::string> LocalObjectStore::Get(std::string_view key, uint64_t offset, std::optional<uint64_t> length) {
  SLUICE_ASSIGN_OR_RETURN(fs::path path, PathForKey(key));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open", path);
  struct stat sb {};
  ::fstat(fd, &sb);
  uint64_t size = static_cast<uint64_t>(sb.st_size);
  if (!S_ISREG(sb.st_mode)) {
    ::close(fd);
    return NotFound(fmt::format("{} is not an object", path.string()));
  }
  if (offset > size || (offset == size && size > 0 && length.has_value())) {
    ::close(fd);
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("range starts at {} beyond the end of {} ({} bytes)", offset, key, size));
  }
  // Like an HTTP range, a length past the end is cut at the end.
  uint64_t want = std::min(size - offset, length.value_or(size - offset));
  std::string out(want, '\0');
  size_t got = 0;
  while (got < want) {
    ssize_t n = ::pread(fd, out.data() + got, want - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::close(fd);
      return ErrnoError(err, "read", path);
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  return out;
}

Status LocalObjectStore::GetStreaming(std::string_view key, const std::function<bool(std::string_view)>& sink) {
  SLUICE_ASSIGN_OR_RETURN(fs::path path, PathForKey(key));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open", path);
  std::string buf(kStreamChunk, '\0');
  Status result;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      result = ErrnoError(errno, "read", path);
      break;
    }
    if (n == 0) break;
    if (!sink(std::string_view(buf.data(), static_cast<size_t>(n)))) {
      result = Error(ErrorCode::kCancelled, fmt::format("reading {} stopped by the consumer", key));
      break;
    }
  }
  ::close(fd);
  return result;
}

Result<ObjectInfo> LocalObjectStore::Put(std::string_view key, std::string data, const PutOptions& /*options*/) {
  SLUICE_ASSIGN_OR_RETURN(fs::path path, PathForKey(key));
  SLUICE_ASSIGN_OR_RETURN(TempFile file, TempFile::Create(path));
  SLUICE_TRY(file.Append(data));
  SLUICE_TRY(file.Commit());
  return Head(key);
}

Result<std::unique_ptr<ObjectWriter>> LocalObjectStore::NewWriter(std::string_view key,
                                                                  const PutOptions& /*options*/) {
  SLUICE_ASSIGN_OR_RETURN(fs::path path, PathForKey(key));
  SLUICE_ASSIGN_OR_RETURN(TempFile file, TempFile::Create(path));
  return std::unique_ptr<ObjectWriter>(std::make_unique<LocalWriter>(std::string(key), std::move(file)));
}

Result<std::vector<ObjectInfo>> LocalObjectStore::List(std::string_view prefix) {
  std::vector<ObjectInfo> out;
  SLUICE_TRY(ListEach(prefix, {}, [&](const ObjectInfo& info) {
    out.push_back(info);
    return true;
  }));
  return out;
}

Status LocalObjectStore::ListEach(std::string_view prefix, std::string_view start_after,
                                  const std::function<bool(const ObjectInfo&)>& fn) {
  // Walk only the deepest directory the prefix names completely ("a/b/c" -> a/b).
  std::string dir_part;
  if (auto slash = prefix.rfind('/'); slash != std::string_view::npos) dir_part = std::string(prefix.substr(0, slash));
  fs::path start = dir_part.empty() ? root_ : root_ / dir_part;
  std::error_code ec;
  if (!fs::is_directory(start, ec)) return OkStatus();

  std::vector<std::pair<std::string, struct stat>> found;
  fs::recursive_directory_iterator it(start, fs::directory_options::skip_permission_denied, ec);
  if (ec) return FsError(ec, "list", start);
  for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
    if (ec) return FsError(ec, "list", start);
    const fs::path& p = it->path();
    std::string name = p.filename().string();
    if (name.find(kTempMarker) != std::string::npos) continue;
    struct stat sb {};
    if (::lstat(p.c_str(), &sb) != 0 || !S_ISREG(sb.st_mode)) continue;  // dirs, symlinks, vanished files
    std::string key = fs::relative(p, root_, ec).generic_string();
    if (ec) continue;
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    if (!start_after.empty() && key <= start_after) continue;
    found.emplace_back(std::move(key), sb);
  }
  // S3 lists in UTF-8 byte order; std::string compares bytes the same way.
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [key, sb] : found) {
    if (!fn(InfoFromStat(std::move(key), sb))) break;
  }
  return OkStatus();
}

Status LocalObjectStore::Delete(std::string_view key) {
  SLUICE_ASSIGN_OR_RETURN(fs::path path, PathForKey(key));
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return OkStatus();
    return ErrnoError(errno, "delete", path);
  }
  // Remove directories the delete left empty; rmdir fails harmlessly on a non-empty one.
  for (fs::path dir = path.parent_path(); dir != root_ && dir.string().size() > root_.string().size();
       dir = dir.parent_path()) {
    if (::rmdir(dir.c_str()) != 0) break;
  }
  return OkStatus();
}

}  // namespace sluice::objstore
