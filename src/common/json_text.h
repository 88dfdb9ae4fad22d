// Writing JSON text directly into a buffer, for hot paths that build NDJSON records by concatenation instead of
// building a document tree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

/// Appends `s` as a JSON string literal (quotes included). Escapes '"', '\\' and control characters; other bytes,
/// including UTF-8, are copied as they are (input is expected to be valid UTF-8 already).
void AppendJsonString(std::string& out, std::string_view s);

/// Appends a signed integer in decimal.
void AppendInt(std::string& out, int64_t v);

/// Older releases could store a profile holding the non-JSON tokens Infinity, -Infinity or NaN (an
/// overflowing $add printed by Boost.JSON). Returns the text with each such token outside strings replaced by
/// null, or nullopt when there is none (the common case: a quick search finds neither word), so readers never
/// hand out non-JSON.
std::optional<std::string> ReplaceNonFiniteTokens(std::string_view json);

}  // namespace sluice
