// Writing JSON text directly into a buffer, for hot paths that build NDJSON records by concatenation instead of
// building a document tree.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice {

/// Appends `s` as a JSON string literal (quotes included). Escapes '"', '\\' and control characters; other bytes,
/// including UTF-8, are copied as they are (input is expected to be valid UTF-8 already).
void AppendJsonString(std::string& out, std::string_view s);

/// Appends a signed integer in decimal.
void AppendInt(std::string& out, int64_t v);

}  // namespace sluice
