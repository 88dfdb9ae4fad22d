// A small forward-only scanner over JSON text for the `where` evaluator: it finds top-level members and list
// elements and skips everything else without building a document. Stored properties are valid minified JSON,
// but the scanner assumes nothing: malformed input ends the scan, it never reads outside the given text, and it
// uses no recursion (nesting is skipped with a counter).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::expr::json {

/// Iterates the members of a JSON object text in order.
class MemberScanner {
 public:
  /// `object` should start (after whitespace) with '{'; anything else has no members.
  explicit MemberScanner(std::string_view object);
  /// The next member: `raw_key` is the key between its quotes, still escaped; `value` is the value's text.
  /// False at the end of the object and at the first malformed byte.
  bool Next(std::string_view& raw_key, std::string_view& value);

 private:
  const char* p_;
  const char* end_;
  bool first_ = true;
  bool done_ = false;
};

/// Iterates the elements of a JSON array text in order.
class ElementScanner {
 public:
  /// `array` should start (after whitespace) with '['; anything else has no elements.
  explicit ElementScanner(std::string_view array);
  /// The next element's text; false at the end of the array and at the first malformed byte.
  bool Next(std::string_view& value);

 private:
  const char* p_;
  const char* end_;
  bool first_ = true;
  bool done_ = false;
};

/// Where and why a strict Unescape failed: byte offset inside the string body.
struct UnescapeError {
  size_t offset = 0;
  const char* what = "";
};

/// Appends the value of a string body (the text between the quotes) to `out`, decoding the JSON escapes
/// \" \\ \/ \b \f \n \r \t \uXXXX (surrogate pairs become one UTF-8 sequence) and \' (for single-quoted
/// expression literals). With `error` set the decoding is strict: an unknown escape or an unpaired surrogate
/// returns false and says where. With `error` null it never fails: unpaired surrogates become U+FFFD and unknown
/// escapes are copied as they are.
bool Unescape(std::string_view body, std::string& out, UnescapeError* error);

/// Parses `text` as exactly one JSON number (RFC 8259 grammar, nothing around it). Values beyond the double
/// range become ±infinity or 0, as in JavaScript. nullopt when the text is not a JSON number.
std::optional<double> ParseJsonNumber(std::string_view text);

/// JavaScript's Number(string), minus its hexadecimal and "Infinity" forms: surrounding whitespace is ignored,
/// a leading '+' or '-' is allowed, as are "5." and ".5". nullopt when the text holds no number (including
/// the empty string, which JavaScript would make 0).
std::optional<double> ParseLooseNumber(std::string_view text);

/// Formats a number the way JavaScript's String(number) does: shortest round-trip digits, integers without a
/// fraction, exponent form below 1e-6 and from 1e21, "NaN", "Infinity", "-Infinity".
std::string FormatNumber(double value);

/// JSON whitespace (RFC 8259 §2).
inline bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace sluice::expr::json
