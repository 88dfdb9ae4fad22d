#include "common/compression.h"

#include <libdeflate.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include <fmt/format.h>

namespace sluice {
namespace {

struct DecompressorDeleter {
  void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
};
struct CompressorDeleter {
  void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
};

libdeflate_decompressor* ThreadDecompressor() {
  thread_local std::unique_ptr<libdeflate_decompressor, DecompressorDeleter> d(libdeflate_alloc_decompressor());
  return d.get();
}

}  // namespace

bool LooksLikeGzip(std::string_view data) {
  return data.size() >= 2 && static_cast<uint8_t>(data[0]) == 0x1f && static_cast<uint8_t>(data[1]) == 0x8b;
}

namespace {

/// A growable output buffer whose growth neither zero-fills nor frees what it held: reused per thread by
/// GunzipBoundedPadded, with `padding` zero bytes kept after the data.
class PaddedBuffer {
 public:
  size_t size() const { return size_; }
  char* data() { return data_.get(); }
  void resize(size_t n) {
    if (n + padding_ > capacity_) {
      const size_t capacity = std::max(n + padding_, capacity_ * 2);
      auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
      if (size_ > 0) std::memcpy(bigger.get(), data_.get(), std::min(size_, n));
      data_ = std::move(bigger);
      capacity_ = capacity;
    }
    size_ = n;
  }
  void Reset(size_t padding) {
    size_ = 0;
    padding_ = padding;
  }
  void ZeroPadding() {
    if (data_) std::memset(data_.get() + size_, 0, padding_);
  }

 private:
  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
  size_t padding_ = 0;
};

/// The loop of GunzipBounded, over std::string or PaddedBuffer (size, resize, data).
template <typename Buffer>
Status GunzipInto(std::string_view in, size_t max_output, Buffer& out) {
  if (!LooksLikeGzip(in)) {
    return InvalidArgument("body is not gzip (Content-Encoding: gzip was sent but the gzip magic bytes are missing)");
  }
  libdeflate_decompressor* d = ThreadDecompressor();
  size_t in_pos = 0;
  while (in_pos < in.size()) {
    std::string_view member = in.substr(in_pos);
    if (!LooksLikeGzip(member)) {
      return InvalidArgument(fmt::format("gzip body has trailing garbage at byte {}", in_pos));
    }
    // ISIZE (last 4 bytes of the whole stream) is exact for the common single-member case; it is only a hint.
    size_t guess = 0;
    if (in.size() >= 4) {
      const auto* t = reinterpret_cast<const uint8_t*>(in.data() + in.size() - 4);
      guess = size_t(t[0]) | size_t(t[1]) << 8 | size_t(t[2]) << 16 | size_t(t[3]) << 24;
    }
    size_t capacity = std::max<size_t>(std::min(guess, max_output - std::min(max_output, out.size())), 4096);
    for (;;) {
      size_t base = out.size();
      if (base + capacity > max_output + 1) capacity = max_output + 1 - base;
      out.resize(base + capacity);
      size_t in_used = 0, out_used = 0;
      libdeflate_result r = libdeflate_gzip_decompress_ex(d, member.data(), member.size(), out.data() + base,
                                                           capacity, &in_used, &out_used);
      if (r == LIBDEFLATE_SUCCESS) {
        out.resize(base + out_used);
        in_pos += in_used;
        if (out.size() > max_output) break;
        break;
      }
      out.resize(base);
      if (r == LIBDEFLATE_INSUFFICIENT_SPACE) {
        if (base + capacity > max_output) {
          return Error(ErrorCode::kTooLarge,
                       fmt::format("gzip body expands beyond the {} byte limit", max_output));
        }
        capacity *= 2;
        continue;
      }
      return InvalidArgument(in_pos == 0 ? "gzip body is corrupt or truncated"
                                         : fmt::format("gzip member at byte {} is corrupt or truncated", in_pos));
    }
    if (out.size() > max_output) {
      return Error(ErrorCode::kTooLarge, fmt::format("gzip body expands beyond the {} byte limit", max_output));
    }
  }
  return OkStatus();
}

}  // namespace

Result<std::string> GunzipBounded(std::string_view in, size_t max_output) {
  std::string out;
  SLUICE_TRY(GunzipInto(in, max_output, out));
  return out;
}

Result<std::string_view> GunzipBoundedPadded(std::string_view in, size_t max_output, size_t padding) {
  // A fresh std::string per request zero-filled ~1.6 MB and page-faulted it in again for every 2000-event
  // batch (~3% of ingest CPU); the thread's buffer keeps its pages and is written only by the inflater.
  thread_local PaddedBuffer buffer;
  buffer.Reset(padding);
  SLUICE_TRY(GunzipInto(in, max_output, buffer));
  buffer.ZeroPadding();
  return std::string_view(buffer.data() == nullptr ? "" : buffer.data(), buffer.size());
}

std::string Gzip(std::string_view data, int level) {
  std::unique_ptr<libdeflate_compressor, CompressorDeleter> c(libdeflate_alloc_compressor(level));
  std::string out(libdeflate_gzip_compress_bound(c.get(), data.size()), '\0');
  size_t n = libdeflate_gzip_compress(c.get(), data.data(), data.size(), out.data(), out.size());
  out.resize(n);
  return out;
}

}  // namespace sluice
