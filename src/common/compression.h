// Whole-buffer gzip (libdeflate). Streaming codecs live with the modules that stream.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice {

/// True when `data` starts with the gzip magic bytes 1f 8b.
bool LooksLikeGzip(std::string_view data);

/// Decompresses a gzip stream (one or several concatenated members). Fails with kTooLarge when the output
/// would exceed `max_output` bytes, and with kInvalidArgument naming the problem when the stream is corrupt
/// or truncated.
Result<std::string> GunzipBounded(std::string_view compressed, size_t max_output);

/// As GunzipBounded, into this thread's reused buffer, followed by `padding` readable zero bytes (what
/// simdjson needs to parse in place). The view is valid until the next call on the same thread.
Result<std::string_view> GunzipBoundedPadded(std::string_view compressed, size_t max_output, size_t padding);

/// Compresses `data` into one gzip member at `level` (1-12, libdeflate's scale; 6 is zlib's default).
std::string Gzip(std::string_view data, int level = 6);

}  // namespace sluice
