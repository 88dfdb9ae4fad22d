// Independent readers for the pipeline tests: zlib (not the isa-l/libdeflate code under test) for gzip with
// several members, zstd's streaming decoder for several frames.
#pragma once

#include <zlib.h>
#include <zstd.h>

#include <string>
#include <string_view>

#include "common/result.h"
#include "pipeline/pipeline.h"

namespace sluice::pipeline::testutil {

/// Decompresses concatenated gzip members the way gunzip does: inflate one member, inflateReset, go on.
inline Result<std::string> GunzipWithZlib(std::string_view in) {
  std::string out;
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return Internal("inflateInit2 failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[1 << 16];
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    const int rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      inflateReset(&z);  // the next member
      continue;
    }
    if (rc != Z_OK) {
      inflateEnd(&z);
      return InvalidArgument("zlib: corrupt gzip data (rc " + std::to_string(rc) + ")");
    }
    if (z.avail_in == 0 && z.avail_out != 0) {
      inflateEnd(&z);
      return InvalidArgument("zlib: truncated gzip member");
    }
  }
  inflateEnd(&z);
  return out;
}

/// Number of gzip members in a stream (each inflated to its end).
inline Result<int> CountGzipMembers(std::string_view in) {
  int members = 0;
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return Internal("inflateInit2 failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[1 << 16];
  while (z.avail_in > 0) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    const int rc = inflate(&z, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      ++members;
      inflateReset(&z);
    } else if (rc != Z_OK) {
      inflateEnd(&z);
      return InvalidArgument("zlib: corrupt gzip data");
    }
  }
  inflateEnd(&z);
  return members;
}

/// Decompresses concatenated zstd frames with the streaming decoder.
inline Result<std::string> UnzstdMultiFrame(std::string_view in) {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  std::string out;
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  char buf[1 << 16];
  size_t last = 0;
  for (;;) {
    ZSTD_outBuffer output{buf, sizeof(buf), 0};
    last = ZSTD_decompressStream(d, &output, &input);
    if (ZSTD_isError(last)) {
      std::string msg = ZSTD_getErrorName(last);
      ZSTD_freeDCtx(d);
      return InvalidArgument("zstd: " + msg);
    }
    out.append(buf, output.pos);
    // All input consumed and either the last frame ended (0) or the decoder had nothing more to give.
    if (input.pos == input.size && (last == 0 || output.pos < output.size)) break;
  }
  ZSTD_freeDCtx(d);
  if (last != 0) return InvalidArgument("zstd: truncated frame");
  return out;
}

inline Result<std::string> Decompress(Compression c, std::string_view in) {
  switch (c) {
    case Compression::kGzip: return GunzipWithZlib(in);
    case Compression::kZstd: return UnzstdMultiFrame(in);
    case Compression::kNone: return std::string(in);
  }
  return Internal("unknown compression");
}

}  // namespace sluice::pipeline::testutil
