// Helpers shared by the event and profile parsers of the ingest module. Internal: not part of ingest.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::ingest::internal {

/// Formats microseconds since the epoch as ISO-8601 UTC without a zone suffix, to the second:
/// "2024-05-01T12:00:00" (the form Mixpanel shows for $last_seen). Times before the epoch are formatted too.
std::string FormatIsoUtc(int64_t time_us);

/// True when `text` is exactly one JSON number by RFC 8259's grammar (no surrounding whitespace). Numbers
/// that do not fit a double or an int64 are still valid JSON; we keep their text, so we only check grammar.
bool IsJsonNumber(std::string_view text);
/// For a valid JSON number: false when its magnitude exceeds the largest double (1e400, a 400-digit integer),
/// which strict parsers (Go's encoding/json, BigQuery's loaders, Python's with parse_float checks) refuse, or
/// read as infinity. Underflow (1e-400) reads as 0 everywhere and passes. Cheap for ordinary numbers: only
/// one with an exponent or more than 300 characters is parsed.
bool JsonNumberFitsDouble(std::string_view number);

/// JSON whitespace (RFC 8259 §2).
inline bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/// `text` without leading and trailing JSON whitespace.
std::string_view TrimJsonSpace(std::string_view text);

/// Byte offset of the first invalid UTF-8 sequence in `text`, or text.size() when it is all valid. Used only to
/// say where a rejected payload went wrong, so a plain scalar scan is fine.
size_t FirstInvalidUtf8(std::string_view text);

/// Calls `fn(line, line_number, byte_offset)` for every line of an NDJSON payload that is not blank, with
/// surrounding whitespace (including a trailing '\r') removed. Line numbers are 1-based. Returns the number of
/// non-blank lines. Stops early (returning the count so far) when `fn` returns false.
template <typename Fn>
size_t ForEachNdjsonLine(std::string_view payload, Fn&& fn) {
  size_t count = 0;
  size_t line_number = 0;
  size_t pos = 0;
  while (pos < payload.size()) {
    size_t end = payload.find('\n', pos);
    if (end == std::string_view::npos) end = payload.size();
    ++line_number;
    std::string_view line = TrimJsonSpace(payload.substr(pos, end - pos));
    if (!line.empty()) {
      ++count;
      if (!fn(line, line_number, static_cast<size_t>(line.data() - payload.data()))) return count;
    }
    pos = end + 1;
  }
  return count;
}

}  // namespace sluice::ingest::internal
