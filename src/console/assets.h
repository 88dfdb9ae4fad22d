// The console's static files, compiled into the binary by embed_assets.py (see CMakeLists.txt).
#pragma once

#include <span>
#include <string_view>

namespace sluice::console {

/// One embedded file. All views point into static storage.
struct Asset {
  std::string_view name;          // file name under /ui/, e.g. "console.js"
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view etag;          // strong ETag with its quotes: "\"3fa1…\"" (SHA-256 prefix of the bytes)
  std::string_view body;
};

/// Every embedded asset, sorted by name.
std::span<const Asset> Assets();

}  // namespace sluice::console
