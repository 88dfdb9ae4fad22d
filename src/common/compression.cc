#include "common/compression.h"

#include <libdeflate.h>

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

Result<std::string> GunzipBounded(std::string_view in, size_t max_output) {
  if (!LooksLikeGzip(in)) {
    return InvalidArgument("body is not gzip (Content-Encoding: gzip was sent but the gzip magic bytes are missing)");
  }
  std::string out;
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
  return out;
}

std::string Gzip(std::string_view data, int level) {
  std::unique_ptr<libdeflate_compressor, CompressorDeleter> c(libdeflate_alloc_compressor(level));
  std::string out(libdeflate_gzip_compress_bound(c.get(), data.size()), '\0');
  size_t n = libdeflate_gzip_compress(c.get(), data.data(), data.size(), out.data(), out.size());
  out.resize(n);
  return out;
}

}  // namespace sluice
