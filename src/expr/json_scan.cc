#include "expr/json_scan.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace sluice::expr::json {
namespace {

const char* SkipSpace(const char* p, const char* end) {
  while (p < end && IsSpace(*p)) ++p;
  return p;
}

/// `p` points at an opening '"'. Returns the position just past the closing quote, nullptr when unterminated.
const char* SkipString(const char* p, const char* end) {
  const char* q = p + 1;
  while (q < end) {
    const void* hit = std::memchr(q, '"', static_cast<size_t>(end - q));
    if (hit == nullptr) return nullptr;
    const char* quote = static_cast<const char*>(hit);
    // The quote is escaped when an odd number of backslashes precedes it.
    size_t backslashes = 0;
    for (const char* b = quote; b > p + 1 && b[-1] == '\\'; --b) ++backslashes;
    if (backslashes % 2 == 0) return quote + 1;
    q = quote + 1;
  }
  return nullptr;
}

bool IsScalarEnd(char c) { return c == ',' || c == '}' || c == ']' || c == ':' || IsSpace(c); }

/// Skips one value starting at `p` (no leading whitespace). Returns the position just past it, nullptr when
/// the text is malformed. Nested containers are skipped with a counter (no recursion, any depth).
const char* SkipValue(const char* p, const char* end) {
  if (p >= end) return nullptr;
  const char c = *p;
  if (c == '"') return SkipString(p, end);
  if (c == '{' || c == '[') {
    size_t depth = 0;
    while (p < end) {
      switch (*p) {
        case '"':
          p = SkipString(p, end);
          if (p == nullptr) return nullptr;
          continue;
        case '{':
        case '[':
          ++depth;
          break;
        case '}':
        case ']':
          if (--depth == 0) return p + 1;
          break;
        default:
          break;
      }
      ++p;
    }
    return nullptr;
  }
  const char* q = p;
  while (q < end && !IsScalarEnd(*q) && *q != '{' && *q != '[' && *q != '"') ++q;
  return q == p ? nullptr : q;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Reads 4 hex digits at body[i]; -1 when they are not there.
int32_t ReadHex4(std::string_view body, size_t i) {
  if (i + 4 > body.size()) return -1;
  int32_t v = 0;
  for (size_t k = 0; k < 4; ++k) {
    const int d = HexDigit(body[i + k]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

/// Converts validated decimal text (optional '-', digits, '.', exponent) to a double. Out-of-range values take
/// strtod's answer (±HUGE_VAL or 0) so that 1e999 is infinity as in JavaScript.
double ToDouble(std::string_view text) {
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc() && ptr == text.data() + text.size()) return v;
  std::string copy(text);  // rare: out of range
  return std::strtod(copy.c_str(), nullptr);
}

}  // namespace

MemberScanner::MemberScanner(std::string_view object) : p_(object.data()), end_(object.data() + object.size()) {
  p_ = SkipSpace(p_, end_);
  if (p_ < end_ && *p_ == '{') {
    ++p_;
  } else {
    done_ = true;
  }
}

bool MemberScanner::Next(std::string_view& raw_key, std::string_view& value) {
  if (done_) return false;
  done_ = true;  // until this member turns out well-formed
  const char* p = SkipSpace(p_, end_);
  if (p >= end_ || *p == '}') return false;
  if (!first_) {
    if (*p != ',') return false;
    p = SkipSpace(p + 1, end_);
  }
  if (p >= end_ || *p != '"') return false;
  const char* key_end = SkipString(p, end_);
  if (key_end == nullptr) return false;
  raw_key = std::string_view(p + 1, static_cast<size_t>(key_end - 1 - (p + 1)));
  p = SkipSpace(key_end, end_);
  if (p >= end_ || *p != ':') return false;
  p = SkipSpace(p + 1, end_);
  const char* value_end = SkipValue(p, end_);
  if (value_end == nullptr) return false;
  value = std::string_view(p, static_cast<size_t>(value_end - p));
  p_ = value_end;
  first_ = false;
  done_ = false;
  return true;
}

ElementScanner::ElementScanner(std::string_view array) : p_(array.data()), end_(array.data() + array.size()) {
  p_ = SkipSpace(p_, end_);
  if (p_ < end_ && *p_ == '[') {
    ++p_;
  } else {
    done_ = true;
  }
}

bool ElementScanner::Next(std::string_view& value) {
  if (done_) return false;
  done_ = true;
  const char* p = SkipSpace(p_, end_);
  if (p >= end_ || *p == ']') return false;
  if (!first_) {
    if (*p != ',') return false;
    p = SkipSpace(p + 1, end_);
  }
  const char* value_end = SkipValue(p, end_);
  if (value_end == nullptr) return false;
  value = std::string_view(p, static_cast<size_t>(value_end - p));
  p_ = value_end;
  first_ = false;
  done_ = false;
  return true;
}

bool Unescape(std::string_view body, std::string& out, UnescapeError* error) {
  size_t i = 0;
  while (i < body.size()) {
    const size_t slash = body.find('\\', i);
    if (slash == std::string_view::npos) {
      out.append(body.substr(i));
      return true;
    }
    out.append(body.substr(i, slash - i));
    if (slash + 1 >= body.size()) {
      if (error != nullptr) {
        *error = {slash, "a backslash must be followed by an escape character"};
        return false;
      }
      out += '\\';
      return true;
    }
    const char e = body[slash + 1];
    i = slash + 2;
    switch (e) {
      case '"': out += '"'; continue;
      case '\'': out += '\''; continue;
      case '\\': out += '\\'; continue;
      case '/': out += '/'; continue;
      case 'b': out += '\b'; continue;
      case 'f': out += '\f'; continue;
      case 'n': out += '\n'; continue;
      case 'r': out += '\r'; continue;
      case 't': out += '\t'; continue;
      case 'u': break;
      default:
        if (error != nullptr) {
          *error = {slash, "unknown escape (use \\\" \\' \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX)"};
          return false;
        }
        out.append(body.substr(slash, 2));
        continue;
    }
    const int32_t unit = ReadHex4(body, i);
    if (unit < 0) {
      if (error != nullptr) {
        *error = {slash, "\\u must be followed by 4 hexadecimal digits"};
        return false;
      }
      out.append(body.substr(slash, 2));
      continue;
    }
    i += 4;
    uint32_t cp = static_cast<uint32_t>(unit);
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      // A high surrogate must be followed by \u and a low surrogate.
      int32_t low = -1;
      if (i + 1 < body.size() && body[i] == '\\' && body[i + 1] == 'u') low = ReadHex4(body, i + 2);
      if (low >= 0xDC00 && low <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (static_cast<uint32_t>(low) - 0xDC00);
        i += 6;
      } else {
        if (error != nullptr) {
          *error = {slash, "unpaired UTF-16 surrogate in \\u escape"};
          return false;
        }
        cp = 0xFFFD;
      }
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      if (error != nullptr) {
        *error = {slash, "unpaired UTF-16 surrogate in \\u escape"};
        return false;
      }
      cp = 0xFFFD;
    }
    AppendUtf8(out, cp);
  }
  return true;
}

std::optional<double> ParseJsonNumber(std::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  if (i < n && text[i] == '-') ++i;
  if (i >= n || !IsDigit(text[i])) return std::nullopt;
  if (text[i] == '0') {
    ++i;
  } else {
    while (i < n && IsDigit(text[i])) ++i;
  }
  if (i < n && text[i] == '.') {
    ++i;
    if (i >= n || !IsDigit(text[i])) return std::nullopt;
    while (i < n && IsDigit(text[i])) ++i;
  }
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < n && (text[i] == '+' || text[i] == '-')) ++i;
    if (i >= n || !IsDigit(text[i])) return std::nullopt;
    while (i < n && IsDigit(text[i])) ++i;
  }
  if (i != n) return std::nullopt;
  return ToDouble(text);
}

std::optional<double> ParseLooseNumber(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  size_t i = 0;
  const size_t n = text.size();
  size_t digits = 0;
  while (i < n && IsDigit(text[i])) ++i, ++digits;
  if (i < n && text[i] == '.') {
    ++i;
    while (i < n && IsDigit(text[i])) ++i, ++digits;
  }
  if (digits == 0) return std::nullopt;
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < n && (text[i] == '+' || text[i] == '-')) ++i;
    if (i >= n || !IsDigit(text[i])) return std::nullopt;
    while (i < n && IsDigit(text[i])) ++i;
  }
  if (i != n) return std::nullopt;
  const double v = ToDouble(text);
  return negative ? -v : v;
}

std::string FormatNumber(double value) {
  if (std::isnan(value)) return "NaN";
  if (value == 0) return "0";  // also -0, as in JavaScript
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  std::string out;
  if (value < 0) {
    out += '-';
    value = -value;
  }
  // Shortest round-trip digits in scientific form: "d[.ddd]e±XX".
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  if (ec != std::errc()) return out + "NaN";  // cannot happen with 64 bytes
  std::string_view sci(buf, static_cast<size_t>(ptr - buf));
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits += c;
  }
  int exponent = 0;
  std::from_chars(sci.data() + e_pos + 1 + (sci[e_pos + 1] == '+' ? 1 : 0), sci.data() + sci.size(), exponent);
  const int k = static_cast<int>(digits.size());
  const int point = exponent + 1;  // digits * 10^(point - k)
  if (k <= point && point <= 21) {
    out += digits;
    out.append(static_cast<size_t>(point - k), '0');
  } else if (0 < point && point <= 21) {
    out.append(digits, 0, static_cast<size_t>(point));
    out += '.';
    out.append(digits, static_cast<size_t>(point));
  } else if (-6 < point && point <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-point), '0');
    out += digits;
  } else {
    out += digits[0];
    if (k > 1) {
      out += '.';
      out.append(digits, 1);
    }
    out += 'e';
    out += exponent < 0 ? '-' : '+';
    out += std::to_string(exponent < 0 ? -exponent : exponent);
  }
  return out;
}

}  // namespace sluice::expr::json
