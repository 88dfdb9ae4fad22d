#include "pipeline/record_encoder.h"

#include <charconv>
#include <cstring>
#include <optional>
#include <string>

#include "common/json_text.h"

namespace sluice::pipeline {
namespace {

constexpr uint64_t kMicrosPerSecond = 1'000'000;

/// True when some byte of `s` must be escaped in a JSON string: a control character (< 0x20), '"' or '\\'.
/// Checks 8 bytes at a time (the "has less than" / "has zero byte" word tricks; exact for "any byte"), since the
/// ids of almost every record need no escaping and a byte-by-byte loop was a visible share of export CPU.
bool NeedsEscape(std::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  const char* p = s.data();
  size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    const uint64_t quote = v ^ (kOnes * '"');
    const uint64_t backslash = v ^ (kOnes * '\\');
    const uint64_t hits = ((v - kOnes * 0x20) & ~v) | ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash);
    if ((hits & kHighs) != 0) return true;
  }
  for (; n > 0; ++p, --n) {
    const auto c = static_cast<unsigned char>(*p);
    if (c < 0x20 || c == '"' || c == '\\') return true;
  }
  return false;
}

/// AppendJsonString with a fast path for strings that need no escaping.
void AppendString(std::string_view s, std::string& out) {
  if (NeedsEscape(s)) {
    AppendJsonString(out, s);
    return;
  }
  out.push_back('"');
  out.append(s);
  out.push_back('"');
}

void AppendJsonObjectOrEmpty(std::string_view object_text, std::string& out) {
  if (object_text.empty()) {
    out += "{}";
  } else {
    out.append(object_text);
  }
}

void AppendStringOrNull(std::string_view s, std::string& out) {
  if (s.empty()) {
    out += "null";
  } else {
    AppendString(s, out);
  }
}

}  // namespace

void AppendEpochSeconds(int64_t time_us, std::string& out) {
  // Work on the magnitude as unsigned so INT64_MIN has no overflow; print the sign separately, so -1.5 s stays
  // "-1.5" (floor division would give "-2" plus a positive fraction).
  const bool negative = time_us < 0;
  const uint64_t magnitude = negative ? uint64_t{0} - static_cast<uint64_t>(time_us) : static_cast<uint64_t>(time_us);
  const uint64_t seconds = magnitude / kMicrosPerSecond;
  uint64_t fraction = magnitude % kMicrosPerSecond;
  char buf[32];
  char* p = buf;
  if (negative) *p++ = '-';
  p = std::to_chars(p, buf + sizeof(buf), seconds).ptr;
  if (fraction != 0) {
    int digits = 6;
    while (fraction % 10 == 0) {
      fraction /= 10;
      --digits;
    }
    *p++ = '.';
    // `fraction` now has at most `digits` significant digits; left-pad with zeros (0.000123 -> "000123").
    for (int i = digits - 1; i >= 0; --i) {
      p[i] = static_cast<char>('0' + fraction % 10);
      fraction /= 10;
    }
    p += digits;
  }
  out.append(buf, static_cast<size_t>(p - buf));
}

void AppendEventRecord(const store::EventView& event, std::string& out) {
  out += "{\"event_name\":";
  AppendString(event.name, out);
  out += ",\"time\":";
  AppendEpochSeconds(event.time_us, out);
  out += ",\"distinct_id\":";
  AppendString(event.distinct_id, out);
  out += ",\"device_id\":";
  AppendStringOrNull(event.device_id, out);
  out += ",\"user_id\":";
  AppendStringOrNull(event.user_id, out);
  out += ",\"insert_id\":";
  AppendString(event.insert_id, out);
  out += ",\"properties\":";
  AppendJsonObjectOrEmpty(event.properties, out);
  out += "}\n";
}

void AppendPeopleRecord(std::string_view distinct_id, std::string_view profile_json, std::string& out) {
  out += "{\"distinct_id\":";
  AppendString(distinct_id, out);
  out += ",\"properties\":";
  // Profiles keep numbers as they arrived and never store a non-finite one; a profile an older release stored
  // with Infinity/NaN in it is written with null there, so every line stays JSON.
  if (std::optional<std::string> repaired = ReplaceNonFiniteTokens(profile_json)) {
    AppendJsonObjectOrEmpty(*repaired, out);
  } else {
    AppendJsonObjectOrEmpty(profile_json, out);
  }
  out += "}\n";
}

void AppendIdentityRecord(std::string_view distinct_id, std::string_view resolved_distinct_id, std::string& out) {
  out += "{\"distinct_id\":";
  AppendString(distinct_id, out);
  out += ",\"resolved_distinct_id\":";
  AppendString(resolved_distinct_id, out);
  out += "}\n";
}

}  // namespace sluice::pipeline
