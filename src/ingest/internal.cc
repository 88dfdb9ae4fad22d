#include "ingest/internal.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <string>

namespace sluice::ingest::internal {
namespace {

// Howard Hinnant's civil_from_days: proleptic Gregorian date of a day count since 1970-01-01.
void CivilFromDays(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string FormatIsoUtc(int64_t time_us) {
  int64_t secs = time_us / 1'000'000;
  if (time_us % 1'000'000 < 0) --secs;  // floor, so pre-epoch times land on the right second
  int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  int64_t year = 0;
  unsigned month = 0;
  unsigned day = 0;
  CivilFromDays(days, year, month, day);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", year, month, day, rem / 3600, (rem / 60) % 60, rem % 60);
}

bool IsJsonNumber(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  if (i < n && s[i] == '-') ++i;
  if (i >= n) return false;
  if (s[i] == '0') {
    ++i;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && IsDigit(s[i])) ++i;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (i >= n || !IsDigit(s[i])) return false;
    while (i < n && IsDigit(s[i])) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (i >= n || !IsDigit(s[i])) return false;
    while (i < n && IsDigit(s[i])) ++i;
  }
  return i == n;
}

bool JsonNumberFitsDouble(std::string_view number) {
  // Without an exponent, only more than 309 integer digits can pass DBL_MAX (~1.8e308). Every number of every
  // event comes here, so the exponent is looked for with one branch-free pass ('E' | 0x20 == 'e'; no other
  // character of a number maps to 'e'), which the compiler vectorizes: find_first_of("eE") cost the Cloud
  // Import benchmark ~6% of its parsing CPU.
  if (number.size() <= 300) {
    bool exponent = false;
    for (const char c : number) exponent |= (c | 0x20) == 'e';
    if (!exponent) return true;
  }
  const std::string text(number);  // strtod needs a NUL (rare path); Sluice keeps the "C" locale
  const double v = std::strtod(text.c_str(), nullptr);
  return !std::isinf(v);
}

std::string_view TrimJsonSpace(std::string_view text) {
  size_t b = 0;
  size_t e = text.size();
  while (b < e && IsJsonSpace(text[b])) ++b;
  while (e > b && IsJsonSpace(text[e - 1])) --e;
  return text.substr(b, e - b);
}

size_t FirstInvalidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    uint32_t min = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return n;
}

}  // namespace sluice::ingest::internal
