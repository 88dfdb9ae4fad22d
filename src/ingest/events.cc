// /import and /track payloads: simdjson On-Demand walk that validates every record by SPEC §3 and copies each
// property value, minified, as the exact JSON text that arrived.
//
// Decisions documented here (tests in tests/ingest/ pin them):
// - Nesting depth of a property value counts the objects/arrays along its deepest path: a scalar is depth 0,
//   `[1,2]` or `{"b":1}` depth 1, `{"a":{"b":{"c":1}}}` depth 3 (accepted); a fourth level is refused.
// - Duplicate keys: the last occurrence wins, as in JavaScript's JSON.parse and Go's encoding/json (which is what
//   the Mixpanel SDKs and Mixpanel's own servers use). This holds for the record's top-level keys and for the
//   keys of `properties`, compared after unescaping. Objects nested inside a property value are copied exactly as
//   they arrived (lossless), duplicates included.
// - The property count ("< 255 properties") counts every key of `properties` as sent, promoted ones included.
// - The event size ("< 1 MB") is measured on the event as stored: minified properties plus the promoted fields.
// - `properties.time` must be a JSON number; a numeric string is refused with a message that says so.
// - In a JSON array payload, a syntax error anywhere fails the request (the payload is not JSON); in NDJSON,
//   a malformed line is a per-record error and only a payload with no parseable line fails as a whole.
// - A `kJson` payload that is really NDJSON (an object followed by more objects on later lines) is parsed as
//   NDJSON, because SDKs and curl users often send it with Content-Type: application/json.
#include <simdjson.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include <fmt/format.h>

#include "common/crypto.h"
#include "common/json_text.h"
#include "ingest/ingest.h"
#include "ingest/internal.h"

namespace sluice::ingest {
namespace {

namespace od = simdjson::ondemand;
using internal::IsJsonNumber;
using internal::IsJsonSpace;

constexpr int64_t kUsPerDay = 86400LL * 1'000'000;

/// The minified properties of the record being parsed. Minified JSON is never longer than the text it came
/// from, so once Reserve()d for the payload (plus the client ip), writes need no capacity checks.
class OutBuffer {
 public:
  void Reserve(size_t n) {
    if (n <= capacity_) return;
    capacity_ = std::max(n, capacity_ * 2);
    data_ = std::make_unique_for_overwrite<char[]>(capacity_);  // no zero-fill: written before read
    end_ = data_.get();
  }
  void clear() { end_ = data_.get(); }
  void push_back(char c) { *end_++ = c; }
  void append(std::string_view s) {
    std::memcpy(end_, s.data(), s.size());
    end_ += s.size();
  }
  void assign(std::string_view s) {
    clear();
    append(s);
  }
  size_t size() const { return static_cast<size_t>(end_ - data_.get()); }
  /// Drops what was appended after the first `n` bytes.
  void truncate(size_t n) { end_ = data_.get() + n; }
  const char* data() const { return data_.get(); }
  std::string_view view() const { return {data_.get(), size()}; }

 private:
  std::unique_ptr<char[]> data_;
  char* end_ = nullptr;
  size_t capacity_ = 0;
};

/// Reused per thread so steady-state parsing allocates nothing but the output: simdjson's parser keeps its
/// index buffers, the padded copy of the input keeps its capacity.
struct Scratch {
  od::parser parser;
  OutBuffer out;
  std::unique_ptr<char[]> buffer;
  size_t capacity = 0;

  /// Copies `text` into the padded buffer (simdjson reads up to SIMDJSON_PADDING bytes past the end).
  const char* Pad(std::string_view text) {
    if (capacity < text.size() + simdjson::SIMDJSON_PADDING) {
      capacity = std::max(text.size() + simdjson::SIMDJSON_PADDING, capacity * 2);
      buffer = std::make_unique_for_overwrite<char[]>(capacity);
    }
    std::memcpy(buffer.get(), text.data(), text.size());
    std::memset(buffer.get() + text.size(), 0, simdjson::SIMDJSON_PADDING);
    return buffer.get();
  }

  /// Sizes the parser for a document of `len` bytes with a quarter to spare. simdjson reallocates its index
  /// buffers (~6 bytes per input byte) to the exact length of every document longer than all before it, so a
  /// fresh server's first batches, each a little longer than the last, each paid new buffers and the page
  /// faults of touching them (the slowest batches of bench/load); with the spare, a few times per thread.
  simdjson::error_code Reserve(size_t len) {
    if (parser.capacity() >= len) return simdjson::SUCCESS;
    const size_t spare = std::max(len + len / 4, size_t{64} << 10);
    return parser.allocate(std::min(spare, parser.max_capacity()));
  }
};

/// NDJSON sent as application/json (common with curl): the first line is one complete-looking object and the
/// next non-blank line starts another. A pretty-printed object starts with a line holding just "{", so it is
/// not mistaken for NDJSON.
bool LooksLikeNdjson(std::string_view trimmed) {
  const size_t newline = trimmed.find('\n');
  if (trimmed.front() != '{' || newline == std::string_view::npos) return false;
  const std::string_view first = internal::TrimJsonSpace(trimmed.substr(0, newline));
  const std::string_view rest = internal::TrimJsonSpace(trimmed.substr(newline));
  return first.size() >= 2 && first.back() == '}' && !rest.empty() && rest.front() == '{';
}

/// True when the document has been consumed up to its end (nothing but whitespace follows).
bool AtEnd(od::document& doc) {
  auto location = doc.current_location();
  return location.error() == simdjson::OUT_OF_BOUNDS;
}

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

std::string_view TypeName(od::json_type t) {
  switch (t) {
    case od::json_type::array:
      return "an array";
    case od::json_type::object:
      return "an object";
    case od::json_type::number:
      return "a number";
    case od::json_type::string:
      return "a string";
    case od::json_type::boolean:
      return "a boolean";
    case od::json_type::null:
      return "null";
  }
  return "an unknown value";
}

/// Length of a JSON string literal's escaped body, `raw` pointing just past its opening quote. The literal has
/// already been validated by simdjson, so the closing quote exists; `unescaped_len` gives a fast path for the
/// common case of a key without escapes.
size_t RawStringLength(const char* raw, size_t unescaped_len) {
  if (raw[unescaped_len] == '"' && std::memchr(raw, '\\', unescaped_len) == nullptr) return unescaped_len;
  size_t i = 0;
  while (raw[i] != '"') i += raw[i] == '\\' ? 2 : 1;
  return i;
}

/// Offset of the first '"' or '\\' at or after `p`. `p` points into a validated string inside simdjson's padded
/// buffer, so a closing quote exists and 16-byte loads past it stay inside the padding.
size_t FindQuoteOrBackslash(const char* p) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  for (size_t i = 0;; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const auto mask = static_cast<unsigned>(
        _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash))));
    if (mask != 0) return i + static_cast<size_t>(__builtin_ctz(mask));
  }
#else
  size_t i = 0;
  while (p[i] != '"' && p[i] != '\\') ++i;
  return i;
#endif
}

/// True when p[0, n) holds a backslash; may read up to 15 bytes past p + n (inside simdjson's padding).
bool HasBackslash(const char* p, size_t n) {
#if defined(__SSE2__)
  const __m128i backslash = _mm_set1_epi8('\\');
  for (size_t i = 0; i < n; i += 16) {
    auto mask = static_cast<unsigned>(
        _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)), backslash)));
    if (n - i < 16) mask &= (1u << (n - i)) - 1;
    if (mask != 0) return true;
  }
  return false;
#else
  return std::memchr(p, '\\', n) != nullptr;
#endif
}

/// The key of `field`: `raw` is its escaped text between the quotes (as it arrived), `key` its unescaped value.
/// Keys without a backslash (nearly all) need no unescaping: simdjson's first pass has already validated UTF-8
/// and refused unescaped control characters, so their raw text is their value.
simdjson::error_code ReadKey(od::field& field, std::string_view& raw, std::string_view& key) {
  const char* p = field.key().raw();
  const size_t i = FindQuoteOrBackslash(p);
  if (p[i] == '"') {
    raw = key = std::string_view(p, i);
    return simdjson::SUCCESS;
  }
  raw = std::string_view(p, 0);  // where to point at if unescaping fails (the key is consumed by then)
  if (auto err = field.unescaped_key().get(key)) return err;
  raw = std::string_view(p, RawStringLength(p, key.size()));
  return simdjson::SUCCESS;
}

std::string_view TrimTrailingSpace(std::string_view token) {
  size_t n = token.size();
  while (n > 0 && IsJsonSpace(token[n - 1])) --n;
  return token.substr(0, n);
}

/// A cheap hash of a property name for duplicate detection; collisions only cost a string compare.
uint64_t HashKey(std::string_view k) {
  uint64_t a = 0;
  uint64_t b = 0;
  if (k.size() >= 8) {
    std::memcpy(&a, k.data(), 8);
    std::memcpy(&b, k.data() + k.size() - 8, 8);
  } else {
    for (char c : k) a = (a << 8) | static_cast<unsigned char>(c);
  }
  uint64_t h = (k.size() + 1) * 0x9E3779B97F4A7C15ULL;
  h ^= a * 0xff51afd7ed558ccdULL;
  h = (h << 31) | (h >> 33);
  h ^= b * 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 29;
  return h;
}

/// Keys of `properties` that become Event fields instead of staying in the properties object.
/// kServerSet: a property the server sets (Mixpanel's mp_processing_time_ms, the time the event was stored):
/// a client's value is validated and dropped, so no export line carries the key twice or a forged value.
/// kCountry: stays in the properties, but an event that has it gets no mp_country_code from ip=1.
/// kIp: a string `ip` is the address Mixpanel geolocates the event by (instead of the request's), and is not
/// stored; another type is an ordinary property.
enum class Promoted {
  kNone,
  kTime,
  kDistinctId,
  kInsertId,
  kDeviceId,
  kUserId,
  kToken,
  kCountry,
  kIp,
  kServerSet
};

Promoted Classify(std::string_view key) {
  switch (key.size()) {
    case 2:
      return key == "ip" ? Promoted::kIp : Promoted::kNone;
    case 4:
      return key == "time" ? Promoted::kTime : Promoted::kNone;
    case 5:
      return key == "token" ? Promoted::kToken : Promoted::kNone;
    case 8:
      return key == "$user_id" ? Promoted::kUserId : Promoted::kNone;
    case 10:
      if (key == "$insert_id") return Promoted::kInsertId;
      return key == "$device_id" ? Promoted::kDeviceId : Promoted::kNone;
    case 11:
      return key == "distinct_id" ? Promoted::kDistinctId : Promoted::kNone;
    case 15:
      return key == "mp_country_code" ? Promoted::kCountry : Promoted::kNone;
    case 21:
      return key == "mp_processing_time_ms" ? Promoted::kServerSet : Promoted::kNone;
    default:
      return Promoted::kNone;
  }
}

/// A promoted id as it arrived: a string (unescaped), a number (its JSON text), or something unusable.
struct IdValue {
  enum class Kind { kAbsent, kText, kNumber, kWrongType } kind = Kind::kAbsent;
  std::string_view text;            // valid for the lifetime of the simdjson document
  od::json_type type = od::json_type::null;

  bool present() const { return kind == Kind::kText || kind == Kind::kNumber; }
};

struct TimeValue {
  enum class Kind { kAbsent, kNumber, kWrongType, kOutOfRange } kind = Kind::kAbsent;
  double value = 0;
  std::string_view text;
  od::json_type type = od::json_type::null;
};

enum class Walk { kOk, kInvalid, kMalformed };

class EventParser {
 public:
  EventParser(const ParseOptions& options, ParsedEvents& out) : options_(options), out_(out) {}

  Result<ParsedEvents> Run(std::string_view payload);

 private:
  // A property copied into props_buf_: `"key":value` occupies [begin, end).
  struct Entry {
    uint32_t begin;
    uint32_t end;
    std::string_view key;  // unescaped
    bool live;
  };
  struct Slot {
    uint32_t stamp = 0;
    uint16_t entry = 0;
  };

  Result<ParsedEvents> RunJson(std::string_view payload);
  Result<ParsedEvents> RunNdjson(std::string_view payload);
  Error MalformedError(std::string_view context) const;
  Error MalformedAt(simdjson::error_code error, const char* where, std::string_view context) {
    Malformed(error, where);
    return MalformedError(context);
  }

  // Walks one record object into cur_*; returns kInvalid after pushing a RecordError.
  Walk ProcessRecord(od::object record, size_t index);
  Walk WalkProperties(od::object props);
  Walk WalkValue(od::value& value, int depth);
  Walk ReadId(od::value& value, IdValue& id);
  Walk ReadTime(od::value& value);
  /// The event's mp_country_code member: its own `ip`'s country when it has one (none for an address the
  /// database does not place), else the request's (ip=1); empty = none.
  std::string_view CountryJson() {
    if (!has_ip_) return country_json_;
    std::string country = options_.geoip != nullptr ? options_.geoip->CountryOf(ip_) : std::string();
    if (country.empty()) return {};
    ip_country_json_ = "\"mp_country_code\":";
    AppendJsonString(ip_country_json_, country);
    return ip_country_json_;
  }
  void Commit();
  Event& NewEvent();  // appended to out_.events, recycled when options_ offers one
  void Reject(std::string field, std::string message, std::string_view reason);
  bool Finish();  // post-walk validation; fills cur_event_ or a RecordError

  Walk Malformed(simdjson::error_code error, const char* where) {
    malformed_error_ = error;
    if (where != nullptr) malformed_at_ = where;
    return Walk::kMalformed;
  }
  Walk Invalid(std::string field, std::string message, std::string_view reason) {
    Reject(std::move(field), std::move(message), reason);
    return Walk::kInvalid;
  }
  void NoteFirst(std::string field, std::string message, std::string_view reason) {
    if (!pending_reason_.empty()) return;
    pending_field_ = std::move(field);
    pending_message_ = std::move(message);
    pending_reason_ = reason;
  }

  const ParseOptions& options_;
  ParsedEvents& out_;
  Scratch& scratch_ = ThreadScratch();
  const char* base_ = nullptr;    // start of the padded buffer being parsed, for byte offsets
  size_t base_offset_ = 0;        // offset of base_ in the caller's payload (NDJSON lines)
  size_t line_number_ = 0;        // NDJSON: current line, for messages

  // Malformed-JSON diagnostics.
  simdjson::error_code malformed_error_ = simdjson::SUCCESS;
  const char* malformed_at_ = nullptr;

  // Per-record state.
  size_t index_ = 0;
  bool has_event_ = false;
  std::string_view event_name_;
  bool has_properties_ = false;
  TimeValue time_;
  IdValue distinct_id_, insert_id_, device_id_, user_id_, token_;
  bool has_country_ = false;
  bool has_ip_ = false;
  std::string_view ip_;       // the event's own address (kIp), valid for the lifetime of the document
  std::string_view top_key_;  // the top-level property being walked, for messages
  std::string pending_field_, pending_message_;
  std::string_view pending_reason_;

  OutBuffer& props_buf_ = scratch_.out;
  std::string country_json_;     // "mp_country_code":"<options_.client_country>"
  std::string ip_country_json_;  // "mp_country_code":"<the country of ip_>"
  std::vector<Entry> entries_;
  std::array<Slot, 1024> slots_{};
  uint32_t stamp_ = 0;
};

void EventParser::Reject(std::string field, std::string message, std::string_view reason) {
  RecordError e;
  e.index = index_;
  // failed_records quotes the record's $insert_id: an invalid one may be megabytes long.
  if (insert_id_.kind == IdValue::Kind::kText) e.insert_id = Echo(insert_id_.text);
  e.field = std::move(field);
  e.message = std::move(message);
  e.reason = std::string(reason);
  out_.errors.push_back(std::move(e));
}

Error EventParser::MalformedError(std::string_view context) const {
  std::string what = malformed_error_ == simdjson::INCOMPLETE_ARRAY_OR_OBJECT
                         ? std::string("the opening '[' or '{' is not matched by the last character (an array or "
                                       "object is not closed, or other content follows it)")
                         : std::string(simdjson::error_message(malformed_error_));
  if (malformed_at_ != nullptr) {
    return InvalidArgument(fmt::format("malformed JSON at byte {}{}: {}",
                                       base_offset_ + static_cast<size_t>(malformed_at_ - base_), context, what));
  }
  return InvalidArgument(fmt::format("malformed JSON{}: {}", context, what));
}

Walk EventParser::ReadId(od::value& value, IdValue& id) {
  id = IdValue{};
  od::json_type type;
  std::string_view token = value.raw_json_token();
  if (auto err = value.type().get(type)) return Malformed(err, token.data());
  id.type = type;
  if (type == od::json_type::string) {
    if (auto err = value.get_string().get(id.text)) return Malformed(err, token.data());
    id.kind = id.text.empty() ? IdValue::Kind::kAbsent : IdValue::Kind::kText;
  } else if (type == od::json_type::number) {
    id.text = TrimTrailingSpace(token);
    if (!IsJsonNumber(id.text)) return Malformed(simdjson::NUMBER_ERROR, token.data());
    id.kind = IdValue::Kind::kNumber;
  } else if (type == od::json_type::null) {
    id.kind = IdValue::Kind::kAbsent;  // "distinct_id": null is how some SDKs say "none"
  } else {
    id.kind = IdValue::Kind::kWrongType;
  }
  return Walk::kOk;
}

Walk EventParser::ReadTime(od::value& value) {
  time_ = TimeValue{};
  od::json_type type;
  std::string_view token = value.raw_json_token();
  if (auto err = value.type().get(type)) return Malformed(err, token.data());
  time_.type = type;
  if (type == od::json_type::null) return Walk::kOk;  // treated as absent
  if (type != od::json_type::number) {
    time_.kind = TimeValue::Kind::kWrongType;
    if (type == od::json_type::string) {
      std::string_view s;
      if (auto err = value.get_string().get(s)) return Malformed(err, token.data());
      time_.text = s;
    }
    return Walk::kOk;
  }
  time_.text = TrimTrailingSpace(token);
  if (!IsJsonNumber(time_.text)) return Malformed(simdjson::NUMBER_ERROR, token.data());
  double v = 0;
  if (value.get_double().get(v) != simdjson::SUCCESS || !std::isfinite(v)) {
    time_.kind = TimeValue::Kind::kOutOfRange;  // valid JSON (e.g. 1e400) but no usable time
    return Walk::kOk;
  }
  time_.kind = TimeValue::Kind::kNumber;
  time_.value = v;
  return Walk::kOk;
}

Walk EventParser::WalkValue(od::value& value, int depth) {
  od::json_type type;
  if (auto err = value.type().get(type)) return Malformed(err, nullptr);
  switch (type) {
    case od::json_type::object: {
      if (depth + 1 > kMaxNestingDepth) {
        return Invalid(
            fmt::format("properties.{}", Echo(top_key_)),
            fmt::format("'properties.{}' nests objects/arrays more than {} levels deep; flatten it",
                        Echo(top_key_), kMaxNestingDepth),
            "too_deep");
      }
      od::object obj;
      if (auto err = value.get_object().get(obj)) return Malformed(err, nullptr);
      props_buf_.push_back('{');
      bool first = true;
      for (auto field_result : obj) {
        od::field field;
        if (auto err = std::move(field_result).get(field)) return Malformed(err, nullptr);
        std::string_view raw_key;
        std::string_view key;
        if (auto err = ReadKey(field, raw_key, key)) return Malformed(err, raw_key.data());
        if (!first) props_buf_.push_back(',');
        first = false;
        props_buf_.push_back('"');
        props_buf_.append(raw_key);
        props_buf_.append("\":");
        if (Walk w = WalkValue(field.value(), depth + 1); w != Walk::kOk) return w;
      }
      props_buf_.push_back('}');
      return Walk::kOk;
    }
    case od::json_type::array: {
      if (depth + 1 > kMaxNestingDepth) {
        return Invalid(
            fmt::format("properties.{}", Echo(top_key_)),
            fmt::format("'properties.{}' nests objects/arrays more than {} levels deep; flatten it",
                        Echo(top_key_), kMaxNestingDepth),
            "too_deep");
      }
      od::array arr;
      if (auto err = value.get_array().get(arr)) return Malformed(err, nullptr);
      props_buf_.push_back('[');
      size_t items = 0;
      for (auto item_result : arr) {
        od::value item;
        if (auto err = std::move(item_result).get(item)) return Malformed(err, nullptr);
        if (++items >= kMaxArrayItems) {
          return Invalid(
              fmt::format("properties.{}", Echo(top_key_)),
              fmt::format("'properties.{}' contains an array of {} or more items; arrays must have "
                          "fewer than {} items",
                          Echo(top_key_), kMaxArrayItems, kMaxArrayItems),
              "array_too_long");
        }
        if (items > 1) props_buf_.push_back(',');
        if (Walk w = WalkValue(item, depth + 1); w != Walk::kOk) return w;
      }
      props_buf_.push_back(']');
      return Walk::kOk;
    }
    case od::json_type::string: {
      const std::string_view token = TrimTrailingSpace(value.raw_json_token());
      if (token.size() < 2 || token.back() != '"') return Malformed(simdjson::STRING_ERROR, token.data());
      // Only escape sequences can still be invalid (simdjson's first pass checked UTF-8 and control characters),
      // so strings without a backslash skip unescaping.
      if (HasBackslash(token.data() + 1, token.size() - 2)) {
        std::string_view unescaped;
        if (auto err = value.get_string().get(unescaped)) return Malformed(err, token.data());
      }
      props_buf_.append(token);
      return Walk::kOk;
    }
    case od::json_type::number: {
      std::string_view token = value.raw_json_token();
      token = TrimTrailingSpace(token);
      if (!IsJsonNumber(token)) return Malformed(simdjson::NUMBER_ERROR, token.data());
      if (!internal::JsonNumberFitsDouble(token)) {
        // Valid JSON, but one such number makes a strict reader (Go, BigQuery) refuse the whole export file
        // that holds it; profiles refuse it the same way.
        return Invalid(
            fmt::format("properties.{}", Echo(top_key_)),
            fmt::format("'properties.{}' holds the number {}, which does not fit a 64-bit double: most "
                        "JSON readers refuse it or read infinity; send it as a string",
                        Echo(top_key_), Echo(token)),
            "number_out_of_range");
      }
      props_buf_.append(token);  // the exact text: big integers, 1.10 and 5e-324 survive unchanged
      return Walk::kOk;
    }
    case od::json_type::boolean:
    case od::json_type::null: {
      std::string_view token = value.raw_json_token();
      token = TrimTrailingSpace(token);
      if (token != "true" && token != "false" && token != "null") {
        return Malformed(simdjson::T_ATOM_ERROR, token.data());
      }
      props_buf_.append(token);
      return Walk::kOk;
    }
  }
  return Malformed(simdjson::TAPE_ERROR, nullptr);
}

Walk EventParser::WalkProperties(od::object props) {
  // A repeated "properties" key: the last one wins, so forget the earlier one (and any complaint about it).
  has_properties_ = true;
  pending_reason_ = {};
  time_ = TimeValue{};
  distinct_id_ = insert_id_ = device_id_ = user_id_ = token_ = IdValue{};
  has_country_ = false;
  has_ip_ = false;
  props_buf_.clear();
  props_buf_.push_back('{');
  entries_.clear();
  if (++stamp_ == 0) {
    slots_.fill(Slot{});
    stamp_ = 1;
  }
  bool duplicates = false;
  size_t count = 0;
  for (auto field_result : props) {
    od::field field;
    if (auto err = std::move(field_result).get(field)) return Malformed(err, nullptr);
    std::string_view raw_key;
    std::string_view key;
    if (auto err = ReadKey(field, raw_key, key)) return Malformed(err, raw_key.data());
    if (++count >= kMaxProperties) {
      return Invalid("properties",
                     fmt::format("'properties' has {} or more keys; an event must have fewer than {} properties",
                                 kMaxProperties, kMaxProperties),
                     "too_many_properties");
    }
    od::value& value = field.value();
    Walk w = Walk::kOk;
    Promoted kind = Classify(key);
    if (kind == Promoted::kIp) {
      std::string_view token = value.raw_json_token();
      od::json_type type;
      if (auto err = value.type().get(type)) return Malformed(err, token.data());
      if (type == od::json_type::string) {
        if (auto err = value.get_string().get(ip_)) return Malformed(err, token.data());
        has_ip_ = true;
        continue;
      }
      kind = Promoted::kNone;
    }
    switch (kind) {
      case Promoted::kTime:
        w = ReadTime(value);
        break;
      case Promoted::kDistinctId:
        w = ReadId(value, distinct_id_);
        break;
      case Promoted::kInsertId:
        w = ReadId(value, insert_id_);
        break;
      case Promoted::kDeviceId:
        w = ReadId(value, device_id_);
        break;
      case Promoted::kUserId:
        w = ReadId(value, user_id_);
        break;
      case Promoted::kToken:
        w = ReadId(value, token_);
        break;
      case Promoted::kServerSet: {
        const size_t mark = props_buf_.size();
        top_key_ = key;
        w = WalkValue(value, 0);
        props_buf_.truncate(mark);
        break;
      }
      case Promoted::kCountry:
        has_country_ = true;
        [[fallthrough]];
      case Promoted::kIp:
      case Promoted::kNone: {
        const size_t begin = props_buf_.size() + (entries_.empty() ? 0 : 1);
        if (!entries_.empty()) props_buf_.push_back(',');
        props_buf_.push_back('"');
        props_buf_.append(raw_key);
        props_buf_.append("\":");
        top_key_ = key;
        w = WalkValue(value, 0);
        if (w != Walk::kOk) break;
        if (props_buf_.size() >= kMaxEventBytes) {
          return Invalid("properties",
                         fmt::format("the event's properties exceed {} bytes; an event must be smaller than 1 MB",
                                     kMaxEventBytes),
                         "event_too_large");
        }
        const auto entry = static_cast<uint16_t>(entries_.size());
        entries_.push_back(
            {static_cast<uint32_t>(begin), static_cast<uint32_t>(props_buf_.size()), key, true});
        // Last occurrence wins: an earlier entry with the same name is dropped when the object is assembled.
        size_t slot = HashKey(key) & (slots_.size() - 1);
        while (slots_[slot].stamp == stamp_) {
          Entry& other = entries_[slots_[slot].entry];
          if (other.key == key) {
            other.live = false;
            duplicates = true;
            break;
          }
          slot = (slot + 1) & (slots_.size() - 1);
        }
        slots_[slot] = {stamp_, entry};
        break;
      }
    }
    if (w != Walk::kOk) return w;
  }
  if (duplicates) {
    std::string rebuilt = "{";
    for (const Entry& e : entries_) {
      if (!e.live) continue;
      if (rebuilt.size() > 1) rebuilt.push_back(',');
      rebuilt.append(props_buf_.data() + e.begin, e.end - e.begin);
    }
    props_buf_.assign(rebuilt);
  }
  if (!has_country_) {
    if (std::string_view country = CountryJson(); !country.empty()) {
      if (props_buf_.size() > 1) props_buf_.push_back(',');
      props_buf_.append(country);
    }
  }
  props_buf_.push_back('}');
  return Walk::kOk;
}

Walk EventParser::ProcessRecord(od::object record, size_t index) {
  index_ = index;
  has_event_ = false;
  event_name_ = {};
  has_properties_ = false;
  time_ = TimeValue{};
  distinct_id_ = insert_id_ = device_id_ = user_id_ = token_ = IdValue{};
  has_country_ = false;
  has_ip_ = false;
  pending_reason_ = {};
  props_buf_.assign("{}");

  for (auto field_result : record) {
    od::field field;
    if (auto err = std::move(field_result).get(field)) return Malformed(err, nullptr);
    std::string_view raw_key;
    std::string_view key;
    if (auto err = ReadKey(field, raw_key, key)) return Malformed(err, raw_key.data());
    od::value& value = field.value();
    if (key == "event") {
      std::string_view token = value.raw_json_token();
      od::json_type type;
      if (auto err = value.type().get(type)) return Malformed(err, token.data());
      has_event_ = type == od::json_type::string;
      if (has_event_) {
        if (auto err = value.get_string().get(event_name_)) return Malformed(err, token.data());
      } else {
        event_name_ = TypeName(type);  // for the message below
      }
    } else if (key == "properties") {
      std::string_view token = value.raw_json_token();
      od::json_type type;
      if (auto err = value.type().get(type)) return Malformed(err, token.data());
      if (type != od::json_type::object) {
        has_properties_ = false;
        NoteFirst("properties", fmt::format("'properties' must be a JSON object, got {}", TypeName(type)),
                  "not_an_object");
        continue;
      }
      od::object props;
      if (auto err = value.get_object().get(props)) return Malformed(err, token.data());
      if (Walk w = WalkProperties(props); w != Walk::kOk) return w;
    }
    // Other top-level keys (e.g. "$mp_metadata") are not part of an event and are ignored, unvalidated.
  }
  return Finish() ? Walk::kOk : Walk::kInvalid;
}

bool EventParser::Finish() {
  if (!has_event_ || event_name_.empty()) {
    const bool wrong_type = !has_event_ && !event_name_.empty();
    Reject("event",
           wrong_type
               ? fmt::format("'event' must be a non-empty string (the event name), got {}", Echo(event_name_))
               : std::string("'event' is missing or empty: every record needs an event name"),
           "missing_event");
    return false;
  }
  if (!pending_reason_.empty()) {
    Reject(std::move(pending_field_), std::move(pending_message_), pending_reason_);
    return false;
  }
  const bool track = options_.endpoint == Endpoint::kTrack;
  const int64_t now = options_.now_us;
  if (!has_properties_ && !country_json_.empty()) {
    props_buf_.assign("{");
    props_buf_.append(country_json_);
    props_buf_.push_back('}');
  }

  // ---- time
  int64_t time_us = 0;
  switch (time_.kind) {
    case TimeValue::Kind::kAbsent:
      if (!track) {
        Reject("properties.time",
               "'properties.time' is missing: /import needs the event time as a number of seconds or "
               "milliseconds since the Unix epoch",
               "missing_time");
        return false;
      }
      time_us = now;
      break;
    case TimeValue::Kind::kWrongType:
      Reject("properties.time",
             time_.type == od::json_type::string
                 ? fmt::format("'properties.time' must be a JSON number of seconds or milliseconds since the "
                               "epoch, got the string \"{}\"; send it without quotes",
                               Echo(time_.text))
                 : fmt::format("'properties.time' must be a JSON number of seconds or milliseconds since the "
                               "epoch, got {}",
                               TypeName(time_.type)),
             "invalid_time");
      return false;
    case TimeValue::Kind::kOutOfRange:
    case TimeValue::Kind::kNumber: {
      std::optional<int64_t> us;
      if (time_.kind == TimeValue::Kind::kNumber) us = NormaliseTimeToMicros(time_.value);
      if (!us) {
        if (time_.kind == TimeValue::Kind::kNumber && time_.value <= 0) {
          Reject(
              "properties.time",
              fmt::format("'properties.time' is {}: it must be a positive number of seconds or milliseconds "
                          "since the epoch, after 1971-01-01",
                          Echo(time_.text)),
              "invalid_time");
        } else {
          Reject(
              "properties.time",
              fmt::format("'properties.time' ({}) is too large to be a time in seconds or milliseconds since "
                          "the epoch",
                          Echo(time_.text)),
              "time_in_future");
        }
        return false;
      }
      time_us = *us;
      break;
    }
  }
  if (time_us < kMinTimeUs) {
    Reject("properties.time",
           fmt::format("'properties.time' is {} ({} days in the past); events before 1971-01-01 are rejected",
                       internal::FormatIsoUtc(time_us), (now - time_us) / kUsPerDay),
           "time_too_old");
    return false;
  }
  if (time_us > now + kMaxFutureUs) {
    Reject("properties.time",
           fmt::format("'properties.time' is {} ({} minutes ahead of the server clock); events more than 1 hour in "
                       "the future are rejected — check that the sender's clock and time unit (seconds or "
                       "milliseconds) are right",
                       internal::FormatIsoUtc(time_us), (time_us - now) / 60'000'000),
           "time_in_future");
    return false;
  }
  if (track && time_us < now - kTrackWindowUs) {
    Reject("properties.time",
           fmt::format("'properties.time' is {} ({} days old); /track accepts only events from the last 5 days, "
                       "send older events to /import",
                       internal::FormatIsoUtc(time_us), (now - time_us) / kUsPerDay),
           "time_outside_track_window");
    return false;
  }

  // ---- identity (Simplified ID Merge)
  for (auto [id, name] : {std::pair{&device_id_, "$device_id"}, std::pair{&user_id_, "$user_id"},
                          std::pair{&distinct_id_, "distinct_id"}}) {
    if (id->kind == IdValue::Kind::kWrongType) {
      Reject(fmt::format("properties.{}", name),
             fmt::format("'properties.{}' must be a string or a number, got {}", name, TypeName(id->type)),
             "invalid_distinct_id");
      return false;
    }
    if (id->present() && IsPlaceholderId(id->text)) {
      Reject(fmt::format("properties.{}", name),
             fmt::format(
                 "'properties.{}' is \"{}\", a placeholder value; send the real id of the user or device, "
                 "or leave it out",
                 name, Echo(id->text)),
             "placeholder_distinct_id");
      return false;
    }
  }
  // The distinct_id as stored: `distinct_id` (kept exactly as it arrived), or "$device:" + $device_id. Views
  // into the document until the event is built, so a refused record copies nothing.
  constexpr std::string_view kDevicePrefix = "$device:";
  std::string_view distinct_id;
  bool device_prefixed = false;
  if (distinct_id_.present()) {
    distinct_id = distinct_id_.text;
  } else if (user_id_.present()) {
    distinct_id = user_id_.text;
  } else if (device_id_.present()) {
    distinct_id = device_id_.text;
    device_prefixed = true;
  } else if (!track && distinct_id_.type != od::json_type::string) {
    // "distinct_id": "" is Mixpanel's import API's way to say the event belongs to no user (kept as ""); only
    // a missing (or null) one is refused.
    Reject("properties.distinct_id",
           "'properties.distinct_id' is missing: /import needs the user's id (or $user_id / $device_id to "
           "derive it), or \"\" for an event that belongs to no user",
           "missing_distinct_id");
    return false;
  }

  // ---- $insert_id
  std::string generated_id;  // a derived or random id; otherwise insert_id views the document
  std::string_view insert_id;
  if (insert_id_.kind == IdValue::Kind::kAbsent) {
    if (options_.derive_insert_id) {
      // Legacy /import (Mixpanel's older SDKs never send $insert_id): the id is derived from the event's
      // content, so a resend of the same event replaces it instead of duplicating it.
      std::vector<std::string_view> texts;
      texts.reserve(entries_.size());
      for (const Entry& entry : entries_) {
        if (entry.live) texts.emplace_back(props_buf_.data() + entry.begin, entry.end - entry.begin);
      }
      std::sort(texts.begin(), texts.end());
      generated_id = DeriveInsertId(
          event_name_, device_prefixed ? std::string(kDevicePrefix).append(distinct_id) : std::string(distinct_id),
          time_us, device_id_.text, user_id_.text, texts);
      insert_id = generated_id;
    } else if (!track) {
      Reject("properties.$insert_id",
             "'properties.$insert_id' is missing: /import needs a unique id per event (up to 36 characters of "
             "A-Z, a-z, 0-9 and '-') so retries are deduplicated",
             "missing_insert_id");
      return false;
    } else {
      generated_id = RandomHex(128);
      insert_id = generated_id;
    }
  } else if (insert_id_.kind != IdValue::Kind::kText) {
    Reject("properties.$insert_id",
           fmt::format("'properties.$insert_id' must be a string, got {}", TypeName(insert_id_.type)),
           "invalid_insert_id");
    return false;
  } else {
    std::string_view id = insert_id_.text;
    if (IsPlaceholderId(id)) {
      Reject("properties.$insert_id",
             fmt::format("'properties.$insert_id' is \"{}\", a placeholder value; send a unique id per event",
                         Echo(id)),
             "placeholder_insert_id");
      return false;
    }
    const bool charset_ok = std::all_of(id.begin(), id.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
    });
    if (id.size() > kMaxInsertIdLength || !charset_ok) {
      Reject("properties.$insert_id",
             charset_ok
                 ? fmt::format("'properties.$insert_id' is {} characters long; at most {} characters of "
                               "A-Z, a-z, 0-9 and '-' are allowed",
                               id.size(), kMaxInsertIdLength)
                 : fmt::format("'properties.$insert_id' may contain only A-Z, a-z, 0-9 and '-' (at most {} "
                               "characters); \"{}\" has other characters",
                               kMaxInsertIdLength, Echo(id)),
             "invalid_insert_id");
      return false;
    }
    insert_id = id;
  }

  // ---- size (the event as stored)
  const size_t size = props_buf_.size() + event_name_.size() + (device_prefixed ? kDevicePrefix.size() : 0) +
                      distinct_id.size() + insert_id.size() + device_id_.text.size() + user_id_.text.size();
  if (size >= kMaxEventBytes) {
    Reject("properties",
           fmt::format("the event is {} bytes; an event must be smaller than 1 MB ({} bytes)", size, kMaxEventBytes),
           "event_too_large");
    return false;
  }

  Event& e = NewEvent();
  // Every field is assigned (a recycled event holds an earlier event's values); assign() reuses capacity.
  static_assert(sizeof(Event) == 6 * sizeof(std::string) + sizeof(int64_t), "assign every field of Event here");
  e.name.assign(event_name_);
  e.time_us = time_us;
  if (device_prefixed) {
    e.distinct_id.assign(kDevicePrefix).append(distinct_id);
  } else {
    e.distinct_id.assign(distinct_id);
  }
  e.device_id.assign(device_id_.present() ? device_id_.text : std::string_view());
  e.user_id.assign(user_id_.present() ? user_id_.text : std::string_view());
  e.insert_id.assign(insert_id);
  if (options_.sink == nullptr) {
    e.properties.assign(props_buf_.data(), props_buf_.size());
  } else {
    e.properties.clear();  // handed to the sink with the event (Commit)
  }
  out_.event_indexes.push_back(index_);
  out_.tokens.emplace_back(token_.present() ? token_.text : std::string_view());
  return true;
}

Event& EventParser::NewEvent() {
  std::vector<Event>* spare = options_.recycled_events;
  if (spare == nullptr || spare->empty()) return out_.events.emplace_back();
  Event& e = out_.events.emplace_back(std::move(spare->back()));
  spare->pop_back();
  return e;
}

void EventParser::Commit() {
  const Event& e = out_.events.back();
  if (!e.device_id.empty() && !e.user_id.empty()) out_.links.push_back({e.device_id, e.user_id});
  // props_buf_ still holds this record's properties: the next record clears it.
  if (options_.sink != nullptr) options_.sink->Add(e, std::string_view(props_buf_.data(), props_buf_.size()));
}

Result<ParsedEvents> EventParser::Run(std::string_view payload) {
  if (payload.size() > kMaxBatchBytes) {
    return Error(ErrorCode::kTooLarge,
                 fmt::format("payload is {} bytes of uncompressed JSON; the limit is {} bytes per request",
                             payload.size(), kMaxBatchBytes));
  }
  if (!options_.client_country.empty()) {
    country_json_ = "\"mp_country_code\":";
    AppendJsonString(country_json_, options_.client_country);
  }
  props_buf_.Reserve(payload.size() + country_json_.size() + 64);
  if (options_.format == PayloadFormat::kNdjson) return RunNdjson(payload);
  return RunJson(payload);
}

/// Describes a stage-1 (whole document) simdjson failure, locating invalid UTF-8 ourselves.
Error StageOneError(simdjson::error_code err, std::string_view text, size_t offset, std::string_view context) {
  if (err == simdjson::UTF8_ERROR) {
    return InvalidArgument(fmt::format("malformed JSON at byte {}{}: invalid UTF-8 (JSON text must be UTF-8)",
                                       offset + internal::FirstInvalidUtf8(text), context));
  }
  return InvalidArgument(fmt::format("malformed JSON{}: {}", context, simdjson::error_message(err)));
}

Result<ParsedEvents> EventParser::RunJson(std::string_view payload) {
  std::string_view trimmed = internal::TrimJsonSpace(payload);
  if (trimmed.empty()) {
    return InvalidArgument("empty payload: expected a JSON array of events or one event object");
  }
  const size_t lead = static_cast<size_t>(trimmed.data() - payload.data());
  if (trimmed.front() != '[' && trimmed.front() != '{') {
    return InvalidArgument(fmt::format("malformed JSON at byte {}: expected a JSON array of events or one event "
                                       "object, found '{}'",
                                       lead, trimmed.front()));
  }
  if (LooksLikeNdjson(trimmed)) return RunNdjson(payload);
  static_assert(kParsePadding >= simdjson::SIMDJSON_PADDING);
  base_ = options_.payload_padded ? payload.data() : scratch_.Pad(payload);
  base_offset_ = 0;
  if (auto err = scratch_.Reserve(payload.size())) return StageOneError(err, payload, 0, "");
  auto doc_result = scratch_.parser.iterate(
      base_, payload.size(), options_.payload_padded ? payload.size() + kParsePadding : scratch_.capacity);
  if (doc_result.error()) return StageOneError(doc_result.error(), payload, 0, "");
  od::document& doc = doc_result.value_unsafe();

  if (trimmed.front() == '[') {
    od::array records;
    if (auto err = doc.get_array().get(records)) return MalformedAt(err, base_ + lead, "");
    // Sized for the common case without reserving 2000 events for a one-event request.
    const size_t expected = std::min(kMaxEventsPerBatch, payload.size() / 64 + 1);
    out_.events.reserve(expected);
    out_.event_indexes.reserve(expected);
    out_.tokens.reserve(expected);
    size_t index = 0;
    const char* where = base_ + lead;
    for (auto record_result : records) {
      od::value record;
      // Where this record starts (or, when the iterator cannot say, where the previous one did).
      if (auto loc = doc.current_location(); !loc.error()) where = loc.value_unsafe();
      if (auto err = std::move(record_result).get(record)) {
        return MalformedAt(err, where, fmt::format(" (record {})", index));
      }
      if (index >= kMaxEventsPerBatch) {
        ++index;  // over the limit: only count the rest, for the message
        continue;
      }
      od::json_type type;
      if (auto err = record.type().get(type)) {
        return MalformedAt(err, where, fmt::format(" (record {})", index));
      }
      malformed_at_ = where;
      if (type != od::json_type::object) {
        index_ = index;
        insert_id_ = IdValue{};
        Reject("record",
               fmt::format("record {} is {}; each record must be a JSON object "
                           "{{\"event\":…,\"properties\":{{…}}}}",
                           index, TypeName(type)),
               "not_an_object");
      } else {
        od::object obj;
        if (auto err = record.get_object().get(obj)) {
          return MalformedAt(err, where, fmt::format(" (record {})", index));
        }
        switch (ProcessRecord(obj, index)) {
          case Walk::kOk:
            Commit();
            break;
          case Walk::kInvalid:
            break;
          case Walk::kMalformed:
            return MalformedError(fmt::format(" (record {})", index));
        }
      }
      ++index;
    }
    if (index > kMaxEventsPerBatch) {
      return Error(ErrorCode::kTooLarge, fmt::format("too many events: {} > {} per request; split the batch",
                                                     index, kMaxEventsPerBatch));
    }
    if (!AtEnd(doc)) {
      malformed_error_ = simdjson::TRAILING_CONTENT;
      return MalformedError(" (after the array)");
    }
    out_.total_records = index;
    return std::move(out_);
  }

  // One record object.
  od::object obj;
  if (auto err = doc.get_object().get(obj)) return MalformedAt(err, base_ + lead, "");
  const Walk walk = ProcessRecord(obj, 0);
  if (walk == Walk::kMalformed) return MalformedError("");
  if (walk == Walk::kInvalid) {
    // The walk may have stopped inside the object; skip the rest of it to look past it.
    doc.rewind();
    od::object again;
    std::string_view raw;
    if (auto err = doc.get_object().get(again)) return MalformedAt(err, base_ + lead, "");
    if (auto err = again.raw_json().get(raw)) return MalformedAt(err, nullptr, "");
  }
  if (!AtEnd(doc)) {
    malformed_error_ = simdjson::TRAILING_CONTENT;
    malformed_at_ = nullptr;
    if (auto loc = doc.current_location(); !loc.error()) malformed_at_ = loc.value_unsafe();
    return MalformedError(" (after the event object; send several events as a JSON array, or as NDJSON with "
                          "Content-Type: application/x-ndjson)");
  }
  out_.total_records = 1;
  if (walk == Walk::kOk) Commit();
  return std::move(out_);
}

Result<ParsedEvents> EventParser::RunNdjson(std::string_view payload) {
  const size_t lines = internal::ForEachNdjsonLine(payload, [](std::string_view, size_t, size_t) { return true; });
  if (lines == 0) return InvalidArgument("empty payload: expected one JSON event object per line");
  if (lines > kMaxEventsPerBatch) {
    return Error(ErrorCode::kTooLarge, fmt::format("too many events: {} > {} per request; split the batch", lines,
                                                   kMaxEventsPerBatch));
  }
  out_.total_records = lines;
  out_.events.reserve(lines);
  out_.event_indexes.reserve(lines);
  out_.tokens.reserve(lines);
  size_t index = 0;
  size_t malformed = 0;
  auto line_error = [&](size_t line_number, std::string what) {
    ++malformed;
    std::string message = fmt::format("line {} is not valid JSON: {}", line_number, what);
    index_ = index;
    insert_id_ = IdValue{};
    Reject("record", std::move(message), "malformed_json");
  };
  // A padded payload is parsed line by line in place: simdjson may read up to its padding past a line's end,
  // which there is the rest of the payload (then the padding), always readable. Its contents do not matter:
  // stage 1 indexes only the line's bytes, and simdjson copies a root scalar before parsing it.
  const char* readable_end = payload.data() + payload.size() + kParsePadding;
  internal::ForEachNdjsonLine(payload, [&](std::string_view line, size_t line_number, size_t offset) {
    size_t capacity = scratch_.capacity;
    if (options_.payload_padded) {
      base_ = line.data();
      capacity = static_cast<size_t>(readable_end - line.data());
    } else {
      base_ = scratch_.Pad(line);
      capacity = scratch_.capacity;
    }
    base_offset_ = offset;
    line_number_ = line_number;
    malformed_at_ = base_;
    simdjson::error_code reserved = scratch_.Reserve(line.size());
    auto doc_result = reserved ? simdjson::simdjson_result<od::document>(reserved)
                               : scratch_.parser.iterate(base_, line.size(), capacity);
    if (doc_result.error()) {
      line_error(line_number, StageOneError(doc_result.error(), line, offset, "").message);
      ++index;
      return true;
    }
    od::document& doc = doc_result.value_unsafe();
    od::json_type type;
    if (auto err = doc.type().get(type)) {
      malformed_error_ = err;
      line_error(line_number, MalformedError("").message);
      ++index;
      return true;
    }
    if ((type == od::json_type::null || type == od::json_type::boolean) && line != "null" && line != "true" &&
        line != "false") {
      malformed_error_ = simdjson::T_ATOM_ERROR;
      line_error(line_number, MalformedError("").message);
      ++index;
      return true;
    }
    if (type != od::json_type::object) {
      ++malformed;  // valid JSON perhaps, but not a record: counts towards "every line is garbage"
      index_ = index;
      insert_id_ = IdValue{};
      Reject("record",
             fmt::format("line {} is {}; each line must be one JSON object {{\"event\":…,\"properties\":{{…}}}}",
                         line_number, TypeName(type)),
             "not_an_object");
      ++index;
      return true;
    }
    od::object obj;
    Walk walk = Walk::kMalformed;
    if (auto err = doc.get_object().get(obj)) {
      malformed_error_ = err;
    } else {
      walk = ProcessRecord(obj, index);
    }
    if (walk == Walk::kOk && !AtEnd(doc)) {
      // The record was fine but the line holds more than one JSON value: take back the event.
      out_.events.pop_back();
      out_.event_indexes.pop_back();
      out_.tokens.pop_back();
      malformed_error_ = simdjson::TRAILING_CONTENT;
      if (auto loc = doc.current_location(); !loc.error()) malformed_at_ = loc.value_unsafe();
      walk = Walk::kMalformed;
    }
    if (walk == Walk::kMalformed) line_error(line_number, MalformedError("").message);
    if (walk == Walk::kOk) Commit();
    ++index;
    return true;
  });
  if (malformed == lines) {
    return InvalidArgument(fmt::format("malformed NDJSON: none of the {} lines is a JSON object ({})", lines,
                                       out_.errors.front().message));
  }
  return std::move(out_);
}

}  // namespace

Result<ParsedEvents> ParseEvents(std::string_view payload, const ParseOptions& options) {
  ParsedEvents out;
  EventParser parser(options, out);
  return parser.Run(payload);
}

void EventSpares::Recycle(std::vector<Event>& events) {
  for (Event& e : events) {
    if (spare_.size() >= max_events_) break;
    const size_t bytes = e.name.capacity() + e.distinct_id.capacity() + e.device_id.capacity() +
                         e.user_id.capacity() + e.insert_id.capacity() + e.properties.capacity();
    if (bytes > max_event_bytes_) continue;
    spare_.push_back(std::move(e));
  }
  events.clear();
}

bool ReserveThreadParser(size_t bytes) { return ThreadScratch().Reserve(bytes) == simdjson::SUCCESS; }

size_t internal::ThreadParserCapacity() { return ThreadScratch().parser.capacity(); }

std::optional<int64_t> NormaliseTimeToMicros(double value) {
  if (!std::isfinite(value) || value <= 0) return std::nullopt;
  // Mixpanel's rule: values below 1e11 are seconds (1e11 s is the year 5138), larger ones milliseconds.
  const double us = value < 1e11 ? value * 1e6 : value * 1e3;
  if (us >= 9.2e18) return std::nullopt;
  return static_cast<int64_t>(std::llround(us));
}

bool IsPlaceholderId(std::string_view id) {
  static constexpr std::string_view kPlaceholders[] = {
      "anon", "anonymous", "nil",   "none",  "null", "n/a", "na", "undefined", "unknown", "<nil>",
      "0",    "-1",        "true",  "false", "[]",   "{}",  "00000000-0000-0000-0000-000000000000"};
  switch (id.size()) {  // the placeholders' lengths; real ids are usually longer and leave here
    case 1: case 2: case 3: case 4: case 5: case 7: case 9: case 36:
      break;
    default:
      return false;
  }
  for (std::string_view p : kPlaceholders) {
    if (p.size() != id.size()) continue;
    bool equal = true;
    for (size_t i = 0; i < p.size(); ++i) {
      const char c = (id[i] >= 'A' && id[i] <= 'Z') ? static_cast<char>(id[i] - 'A' + 'a') : id[i];
      if (c != p[i]) {
        equal = false;
        break;
      }
    }
    if (equal) return true;
  }
  return false;
}

std::string Echo(std::string_view value) {
  // Count characters, not bytes, and never cut inside a UTF-8 sequence (continuation bytes are 10xxxxxx).
  size_t chars = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    if ((static_cast<unsigned char>(value[i]) & 0xC0) == 0x80) continue;
    if (chars++ == kMaxEchoedChars) return std::string(value.substr(0, i)) + "\u2026";
  }
  return std::string(value);
}

std::string DeriveInsertId(std::string_view name, std::string_view distinct_id, int64_t time_us,
                           std::string_view device_id, std::string_view user_id,
                           std::span<const std::string_view> sorted_properties) {
  Sha256Hasher hasher;
  // Length prefixes keep ("ab","c") and ("a","bc") apart.
  auto field = [&](std::string_view text) {
    const uint64_t n = text.size();
    hasher.Update(std::string_view(reinterpret_cast<const char*>(&n), sizeof(n)));
    hasher.Update(text);
  };
  field("sluice-legacy-import-v1");
  field(name);
  field(distinct_id);
  field(std::string_view(reinterpret_cast<const char*>(&time_us), sizeof(time_us)));
  field(device_id);
  field(user_id);
  for (std::string_view p : sorted_properties) field(p);
  const Sha256Digest digest = hasher.Finish();
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest.data()), 16));
}

}  // namespace sluice::ingest
