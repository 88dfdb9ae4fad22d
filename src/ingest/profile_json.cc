// Profile JSON that keeps numbers as they arrived (see ingest.h, "Profile JSON").
//
// Boost.JSON turns every number into an int64/uint64/double and prints doubles in its own shortest form
// (19.90 -> 1.99E1, 1.5 -> 1.5E0, a 30-digit integer -> 1E29). Profiles must read back as they were sent, as
// events do, so the tree is built by a Boost.JSON basic_parser handler that sees each number's text and keeps
// it.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>

#include "common/json_text.h"
#include "ingest/ingest.h"

namespace sluice::ingest {
namespace {

namespace json = boost::json;
using boost::system::error_code;

/// A number kept as text is a string value that starts with this byte; a real string that starts with it gets
/// one more, so the encoding stays injective and "equal JSON text" is still "equal boost::json::value".
constexpr char kNumberTag = '\0';

bool IsTagged(const json::string& s) { return !s.empty() && s[0] == kNumberTag; }
bool IsTaggedNumber(const json::string& s) {
  return s.size() >= 2 && s[0] == kNumberTag && s[1] != kNumberTag;
}

/// Builds a boost::json::value with numbers kept as text (see kNumberTag).
class KeepNumbersHandler {
 public:
  static constexpr size_t max_object_size = static_cast<size_t>(-1);
  static constexpr size_t max_array_size = static_cast<size_t>(-1);
  static constexpr size_t max_key_size = static_cast<size_t>(-1);
  static constexpr size_t max_string_size = static_cast<size_t>(-1);

  json::value_stack stack;

  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }
  bool on_object_begin(error_code&) { return true; }
  bool on_object_end(size_t n, error_code&) {
    stack.push_object(n);
    return true;
  }
  bool on_array_begin(error_code&) { return true; }
  bool on_array_end(size_t n, error_code&) {
    stack.push_array(n);
    return true;
  }
  bool on_key_part(json::string_view s, size_t, error_code&) {
    stack.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, size_t, error_code&) {
    stack.push_key(s);
    return true;
  }
  bool on_string_part(json::string_view s, size_t, error_code&) {
    text_.append(s.data(), s.size());
    return true;
  }
  bool on_string(json::string_view s, size_t, error_code&) {
    text_.append(s.data(), s.size());
    if (!text_.empty() && text_[0] == kNumberTag) text_.insert(text_.begin(), kNumberTag);
    stack.push_string(text_);
    text_.clear();
    return true;
  }
  bool on_number_part(json::string_view s, error_code&) {
    text_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(int64_t, json::string_view s, error_code&) { return PushNumber(s); }
  bool on_uint64(uint64_t, json::string_view s, error_code&) { return PushNumber(s); }
  bool on_double(double, json::string_view s, error_code&) { return PushNumber(s); }
  bool on_bool(bool b, error_code&) {
    stack.push_bool(b);
    return true;
  }
  bool on_null(error_code&) {
    stack.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, error_code&) { return true; }
  bool on_comment(json::string_view, error_code&) { return true; }

 private:
  bool PushNumber(json::string_view last) {
    text_.append(last.data(), last.size());
    json::value v = MakeProfileNumber(text_);
    if (v.is_int64()) {
      stack.push_int64(v.get_int64());
    } else {
      stack.push_string(v.get_string());
    }
    text_.clear();
    return true;
  }

  std::string text_;  // the string or number being assembled from its parts
};

void AppendValue(const json::value& v, std::string& out);

void AppendDouble(double d, std::string& out) {
  // Integral values print as integers (3, not 3e0), like JavaScript up to 1e21; everything else in the
  // shortest form that reads back as the same double.
  char buf[64];
  std::to_chars_result r;
  if (d == std::trunc(d) && std::fabs(d) < 1e21) {
    r = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::fixed);
  } else {
    r = std::to_chars(buf, buf + sizeof(buf), d);
  }
  out.append(buf, r.ptr);
}

void AppendValue(const json::value& v, std::string& out) {
  switch (v.kind()) {
    case json::kind::null:
      out += "null";
      return;
    case json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return;
    case json::kind::int64:
      AppendInt(out, v.get_int64());
      return;
    case json::kind::uint64:
      out += std::to_string(v.get_uint64());
      return;
    case json::kind::double_:
      // Only hand-built trees hold doubles; a non-finite one has no JSON form.
      if (std::isfinite(v.get_double())) {
        AppendDouble(v.get_double(), out);
      } else {
        out += "null";
      }
      return;
    case json::kind::string: {
      const json::string& s = v.get_string();
      if (IsTaggedNumber(s)) {
        out.append(s.data() + 1, s.size() - 1);
      } else if (IsTagged(s)) {
        AppendJsonString(out, std::string_view(s.data() + 1, s.size() - 1));
      } else {
        AppendJsonString(out, std::string_view(s.data(), s.size()));
      }
      return;
    }
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const json::value& item : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        AppendValue(item, out);
      }
      out.push_back(']');
      return;
    }
    case json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        AppendJsonString(out, std::string_view(key.data(), key.size()));
        out.push_back(':');
        AppendValue(item, out);
      }
      out.push_back('}');
      return;
    }
  }
}

}  // namespace

Result<json::value> ParseProfileJson(std::string_view text) {
  json::basic_parser<KeepNumbersHandler> parser(json::parse_options{});
  parser.handler().stack.reset();
  error_code ec;
  const size_t consumed = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && consumed < text.size()) ec = json::error::extra_data;
  if (ec) {
    return InvalidArgument(fmt::format("malformed JSON at byte {}: {}", consumed, ec.message()));
  }
  return parser.handler().stack.release();
}

std::string SerializeProfileJson(const json::value& value) {
  std::string out;
  AppendValue(value, out);
  return out;
}

bool IsProfileNumber(const json::value& v) {
  return v.is_number() || (v.is_string() && IsTaggedNumber(v.get_string()));
}

std::optional<std::string_view> ProfileStringValue(const json::value& v) {
  if (!v.is_string()) return std::nullopt;
  const json::string& s = v.get_string();
  if (IsTaggedNumber(s)) return std::nullopt;
  if (IsTagged(s)) return std::string_view(s.data() + 1, s.size() - 1);
  return std::string_view(s.data(), s.size());
}

std::string ProfileNumberText(const json::value& v) {
  if (v.is_string() && IsTaggedNumber(v.get_string())) {
    return std::string(v.get_string().data() + 1, v.get_string().size() - 1);
  }
  return SerializeProfileJson(v);
}

std::optional<double> ProfileNumberValue(const json::value& v) {
  if (v.is_number()) return v.to_number<double>();
  if (!v.is_string() || !IsTaggedNumber(v.get_string())) return std::nullopt;
  // strtod needs a terminated string; the text is a JSON number (no locale-dependent characters besides '.',
  // and the server never changes LC_NUMERIC from "C").
  std::string text(v.get_string().data() + 1, v.get_string().size() - 1);
  errno = 0;
  const double d = std::strtod(text.c_str(), nullptr);
  return d;  // ±HUGE_VAL (infinite) when the text overflows a double
}

json::value MakeProfileNumber(std::string_view text) {
  // An integer whose text is exactly its int64's decimal form stays an int64 (compact, compares equal to the
  // same integer however it arrived); any other text (19.90, 1e3, -0, a 30-digit integer) is kept as it is.
  int64_t i = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), i);
  if (ec == std::errc() && ptr == text.data() + text.size() && !text.empty() && text != "-0" &&
      !(text.size() > 1 && text[0] == '0') && !(text.size() > 2 && text[0] == '-' && text[1] == '0')) {
    return i;
  }
  std::string tagged;
  tagged.reserve(text.size() + 1);
  tagged.push_back(kNumberTag);
  tagged.append(text);
  return json::string(tagged);
}

json::value MakeProfileNumber(double value) {
  std::string text;
  AppendDouble(value, text);
  return MakeProfileNumber(std::string_view(text));
}

}  // namespace sluice::ingest
