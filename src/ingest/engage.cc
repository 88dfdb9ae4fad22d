// /engage and /groups: parse profile updates into Boost.JSON trees that keep numbers as they arrived
// (profiles are low volume; see ParseProfileJson) and apply them with Mixpanel's semantics and limits.
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "common/json_text.h"
#include "ingest/ingest.h"
#include "ingest/internal.h"

namespace sluice::ingest {
namespace {

namespace json = boost::json;

struct OpName {
  std::string_view name;
  ProfileOp op;
};
constexpr std::array<OpName, 8> kOps = {{{"$set", ProfileOp::kSet},
                                         {"$set_once", ProfileOp::kSetOnce},
                                         {"$add", ProfileOp::kAdd},
                                         {"$union", ProfileOp::kUnion},
                                         {"$append", ProfileOp::kAppend},
                                         {"$remove", ProfileOp::kRemove},
                                         {"$unset", ProfileOp::kUnset},
                                         {"$delete", ProfileOp::kDelete}}};

std::string_view KindName(const json::value& v) {
  if (IsProfileNumber(v)) return "a number";
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "an unknown value";
}

/// Parses one JSON text into a profile tree (numbers kept as text); on failure says at which byte.
Result<json::value> ParseJson(std::string_view text, size_t offset) {
  auto v = ParseProfileJson(text);
  if (!v.ok() && offset != 0) {
    // Re-base "at byte N" on the whole payload (NDJSON lines are parsed one by one).
    std::string_view m = v.error().message;
    constexpr std::string_view kAt = "malformed JSON at byte ";
    if (m.starts_with(kAt)) {
      size_t n = 0;
      auto r = std::from_chars(m.data() + kAt.size(), m.data() + m.size(), n);
      return InvalidArgument(
          fmt::format("{}{}{}", kAt, offset + n, std::string_view(r.ptr, m.data() + m.size() - r.ptr)));
    }
  }
  return v;
}

/// A flag such as $ignore_time: true, "true", "1" or a non-zero number.
bool Truthy(const json::value& v) {
  if (v.is_bool()) return v.get_bool();
  if (auto n = ProfileNumberValue(v)) return *n != 0;
  if (auto s = ProfileStringValue(v)) return *s == "true" || *s == "1";
  return false;
}

/// The first number inside `v` whose text does not fit a double (1e400, -1e999); nullptr when none.
const json::value* FindOutOfRangeNumber(const json::value& v) {
  if (IsProfileNumber(v)) {
    auto d = ProfileNumberValue(v);
    return d && !std::isfinite(*d) ? &v : nullptr;
  }
  if (v.is_array()) {
    for (const json::value& item : v.get_array()) {
      if (const json::value* bad = FindOutOfRangeNumber(item)) return bad;
    }
  } else if (v.is_object()) {
    for (const auto& [name, item] : v.get_object()) {
      if (const json::value* bad = FindOutOfRangeNumber(item)) return bad;
    }
  }
  return nullptr;
}

class ProfileParser {
 public:
  ProfileParser(int64_t now_us, bool groups, ParsedProfileUpdates& out)
      : now_us_(now_us), groups_(groups), out_(out) {}

  void Record(const json::value& record, size_t index);
  void Reject(size_t index, std::string field, std::string message, std::string reason) {
    out_.errors.push_back({.index = index,
                           .insert_id = {},
                           .field = std::move(field),
                           .message = std::move(message),
                           .reason = std::move(reason)});
  }

 private:
  /// Reads the id field `name` ($distinct_id or $group_id) into `out`; false after a rejection.
  bool ReadId(const json::object& obj, std::string_view name, size_t index, std::string& out);
  /// Refuses an id (`name` is $distinct_id, $group_id or $group_key) over kMaxProfileIdChars characters.
  bool CheckIdLength(std::string_view name, std::string_view id, size_t index, std::string_view reason);
  /// Checks one value of an operation against the profile limits; false after a rejection.
  bool CheckValue(std::string_view op_name, std::string_view name, const json::value& value, size_t index);

  int64_t now_us_;
  bool groups_;
  ParsedProfileUpdates& out_;
};

bool ProfileParser::ReadId(const json::object& obj, std::string_view name, size_t index, std::string& out) {
  const json::value* id = obj.if_contains(name);
  if (id != nullptr && ProfileStringValue(*id)) {
    out = std::string(*ProfileStringValue(*id));
  } else if (id != nullptr && IsProfileNumber(*id)) {
    out = ProfileNumberText(*id);
  } else if (id != nullptr && !id->is_null()) {
    Reject(index, std::string(name),
           fmt::format("'{}' must be a string or a number, got {}", name, KindName(*id)),
           groups_ ? "invalid_group_id" : "invalid_distinct_id");
    return false;
  }
  if (out.empty()) {
    Reject(index, std::string(name),
           fmt::format("'{}' is missing: say which {} to update", name, groups_ ? "group" : "profile"),
           groups_ ? "missing_group_id" : "missing_distinct_id");
    return false;
  }
  if (!CheckIdLength(name, out, index, groups_ ? "invalid_group_id" : "invalid_distinct_id")) return false;
  if (IsPlaceholderId(out)) {
    Reject(index, std::string(name),
           fmt::format("'{}' is \"{}\", a placeholder value; send the real id of the {}", name, Echo(out),
                       groups_ ? "group" : "user"),
           groups_ ? "placeholder_group_id" : "placeholder_distinct_id");
    return false;
  }
  return true;
}

bool ProfileParser::CheckIdLength(std::string_view name, std::string_view id, size_t index,
                                  std::string_view reason) {
  const size_t chars = Utf8CharCount(id);
  if (chars <= kMaxProfileIdChars) return true;
  Reject(index, std::string(name),
         fmt::format("'{}' is {} characters long (\"{}\"); an id may be at most {} characters", name, chars,
                     Echo(id), kMaxProfileIdChars),
         std::string(reason));
  return false;
}

bool ProfileParser::CheckValue(std::string_view op_name, std::string_view name, const json::value& value,
                               size_t index) {
  if (const json::value* bad = FindOutOfRangeNumber(value)) {
    Reject(index, fmt::format("{}.{}", op_name, Echo(name)),
           fmt::format(
               "'{}.{}' holds the number {}, which is out of the range of a 64-bit floating-point number "
               "(about ±1.8e308); the update was not applied and the profile was left unchanged",
               op_name, Echo(name), Echo(ProfileNumberText(*bad))),
           "number_out_of_range");
    return false;
  }
  if (value.is_array() || value.is_object()) {
    const size_t bytes = SerializeProfileJson(value).size();
    if (bytes > kMaxProfileValueBytes) {
      Reject(index, fmt::format("{}.{}", op_name, Echo(name)),
             fmt::format(
                 "'{}.{}' is {} bytes of JSON{}; a list or object property of a profile may be at most {} "
                 "bytes (256 KB, Mixpanel's limit); send fewer or smaller items",
                 op_name, Echo(name), bytes,
                 value.is_array() ? fmt::format(" ({} items)", value.get_array().size()) : std::string(),
                 kMaxProfileValueBytes),
             "value_too_large");
      return false;
    }
  }
  return true;
}

void ProfileParser::Record(const json::value& record, size_t index) {
  const std::string_view id_name = groups_ ? "$group_id" : "$distinct_id";
  if (!record.is_object()) {
    Reject(
        index, "record",
        fmt::format("update {} is {}; each update must be a JSON object with $token, {}{} and one operation",
                    index, KindName(record), groups_ ? "$group_key, " : "", id_name),
        "not_an_object");
    return;
  }
  const json::object& obj = record.get_object();
  ProfileUpdate u;

  const json::value* token = obj.if_contains("$token");
  if (token == nullptr || !ProfileStringValue(*token) || ProfileStringValue(*token)->empty()) {
    Reject(index, "$token", "'$token' is missing: every profile update must carry its project token",
           "missing_token");
    return;
  }
  u.token = std::string(*ProfileStringValue(*token));

  if (groups_) {
    const json::value* key = obj.if_contains("$group_key");
    if (key == nullptr || !ProfileStringValue(*key) || ProfileStringValue(*key)->empty()) {
      Reject(index, "$group_key",
             key == nullptr
                 ? std::string("'$group_key' is missing: say which group key (e.g. \"company\") the group "
                               "belongs to")
                 : fmt::format("'$group_key' must be a non-empty string, got {}", KindName(*key)),
             "missing_group_key");
      return;
    }
    u.group_key = std::string(*ProfileStringValue(*key));
    if (!CheckIdLength("$group_key", u.group_key, index, "invalid_group_key")) return;
  }
  if (!ReadId(obj, id_name, index, u.distinct_id)) return;

  std::string found;
  const json::value* argument = nullptr;
  size_t ops = 0;
  for (const OpName& op : kOps) {
    if (const json::value* v = obj.if_contains(op.name)) {
      if (ops++ > 0) found += ", ";
      found += op.name;
      argument = v;
      u.op = op.op;
    }
  }
  const std::string_view expected = groups_
                                        ? "$set, $set_once, $unset, $remove, $union, $delete"
                                        : "$set, $set_once, $add, $union, $append, $remove, $unset, $delete";
  if (ops == 0) {
    Reject(index, "record", fmt::format("the update has no operation: expected exactly one of {}", expected),
           "missing_operation");
    return;
  }
  if (ops > 1) {
    Reject(
        index, "record",
        fmt::format("the update has {} operations ({}); send exactly one operation per update", ops, found),
        "multiple_operations");
    return;
  }
  const std::string_view op_name = found;
  if (groups_ && (u.op == ProfileOp::kAdd || u.op == ProfileOp::kAppend)) {
    Reject(index, std::string(op_name),
           fmt::format("'{}' is not an operation on group profiles; use one of {}", op_name, expected),
           "invalid_operation");
    return;
  }
  switch (u.op) {
    case ProfileOp::kSet:
    case ProfileOp::kSetOnce:
    case ProfileOp::kAdd:
    case ProfileOp::kUnion:
    case ProfileOp::kAppend:
    case ProfileOp::kRemove: {
      if (!argument->is_object()) {
        Reject(index, std::string(op_name),
               fmt::format("'{}' must be an object of property names to values, got {}", op_name,
                           KindName(*argument)),
               "invalid_operation");
        return;
      }
      if (argument->get_object().size() > kMaxProfileProperties) {
        Reject(index, std::string(op_name),
               fmt::format("'{}' names {} properties; a profile has at most {} properties", op_name,
                           argument->get_object().size(), kMaxProfileProperties),
               "too_many_properties");
        return;
      }
      for (const auto& [key, value] : argument->get_object()) {
        const std::string_view name(key.data(), key.size());
        if (u.op == ProfileOp::kAdd && !IsProfileNumber(value)) {
          Reject(index, fmt::format("$add.{}", Echo(name)),
                 fmt::format("'$add.{}' must be a number (the amount to add), got {}", Echo(name),
                             KindName(value)),
                 "invalid_operation");
          return;
        }
        if (u.op == ProfileOp::kUnion && !value.is_array()) {
          Reject(
              index, fmt::format("$union.{}", Echo(name)),
              fmt::format("'$union.{}' must be a list of values to add, got {}", Echo(name), KindName(value)),
              "invalid_operation");
          return;
        }
        if (!CheckValue(op_name, name, value, index)) return;
      }
      break;
    }
    case ProfileOp::kUnset: {
      const bool ok = argument->is_array() &&
                      std::all_of(argument->get_array().begin(), argument->get_array().end(),
                                  [](const json::value& v) { return ProfileStringValue(v).has_value(); });
      if (!ok) {
        Reject(index, "$unset",
               fmt::format("'$unset' must be a list of property names, got {}", KindName(*argument)),
               "invalid_operation");
        return;
      }
      break;
    }
    case ProfileOp::kDelete:
      break;
  }
  u.argument = *argument;

  u.time_ms = now_us_ / 1000;
  if (const json::value* t = obj.if_contains("$time"); t != nullptr && !t->is_null()) {
    std::optional<int64_t> us;
    if (auto n = ProfileNumberValue(*t)) us = NormaliseTimeToMicros(*n);
    if (!us) {
      Reject(index, "$time",
             fmt::format(
                 "'$time' must be a positive number of milliseconds (or seconds) since the epoch, got {}",
                 KindName(*t)),
             "invalid_time");
      return;
    }
    u.time_ms = *us / 1000;
  }
  if (const json::value* v = obj.if_contains("$ignore_time")) u.ignore_time = Truthy(*v);
  if (groups_) u.ignore_time = true;  // Mixpanel's group profiles have no $last_seen
  if (const json::value* v = obj.if_contains("$ignore_alias")) u.ignore_alias = Truthy(*v);
  if (const json::value* v = obj.if_contains("$ip"); v != nullptr) {
    if (auto text = ProfileStringValue(*v)) {
      u.ip = std::string(*text);
    } else if ((v->is_int64() && v->get_int64() == 0) || (v->is_uint64() && v->get_uint64() == 0)) {
      u.ip = "0";  // Mixpanel's SDKs send the number 0 as well as "0" to turn geolocation off
    }
  }
  out_.updates.push_back(std::move(u));
  out_.update_indexes.push_back(index);
}

/// An integer value of a profile tree as int64 (kept-text integers included); nullopt for any other number.
std::optional<int64_t> AsInt64(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<uint64_t>(INT64_MAX))
    return static_cast<int64_t>(v.get_uint64());
  return std::nullopt;
}

/// Adds two numbers of a profile tree: an int64 while both are integers and the sum fits, else a double
/// printed in its shortest round-trip form. Fails when the sum is not finite (1e308 + 1e308).
Result<json::value> AddNumbers(const json::value& a, const json::value& b) {
  auto x = AsInt64(a);
  auto y = AsInt64(b);
  int64_t sum = 0;
  if (x && y && !__builtin_add_overflow(*x, *y, &sum)) return json::value(sum);
  const double d = ProfileNumberValue(a).value_or(0) + ProfileNumberValue(b).value_or(0);
  if (!std::isfinite(d)) {
    return InvalidArgument(fmt::format("{} + {} is out of the range of a 64-bit floating-point number",
                                       Echo(ProfileNumberText(a)), Echo(ProfileNumberText(b))));
  }
  return MakeProfileNumber(d);
}

/// Adds `items` to `list` unless already present, in one pass: equal JSON is equal text, so a hash set of the
/// serialized items makes the union O(n + m) instead of comparing every pair (a 100k-item $union was O(n·m)).
void UnionInto(json::array& list, const json::array& items) {
  std::unordered_set<std::string> seen;
  seen.reserve(list.size() + items.size());
  for (const json::value& v : list) seen.insert(SerializeProfileJson(v));
  for (const json::value& item : items) {
    if (seen.insert(SerializeProfileJson(item)).second) list.push_back(item);
  }
}

}  // namespace

namespace {

Result<ParsedProfileUpdates> ParseUpdates(std::string_view payload, PayloadFormat format, int64_t now_us,
                                          bool groups) {
  if (payload.size() > kMaxBatchBytes) {
    return Error(ErrorCode::kTooLarge,
                 fmt::format("payload is {} bytes of uncompressed JSON; the limit is {} bytes per request",
                             payload.size(), kMaxBatchBytes));
  }
  ParsedProfileUpdates out;
  ProfileParser parser(now_us, groups, out);
  auto too_many = [](size_t n) {
    return Error(ErrorCode::kTooLarge,
                 fmt::format("too many profile updates: {} > {} per request; split the batch", n,
                             kMaxProfileUpdatesPerBatch));
  };

  auto parse_ndjson = [&]() -> Result<ParsedProfileUpdates> {
    const size_t lines =
        internal::ForEachNdjsonLine(payload, [](std::string_view, size_t, size_t) { return true; });
    if (lines == 0) return InvalidArgument("empty payload: expected one JSON profile update per line");
    if (lines > kMaxProfileUpdatesPerBatch) return too_many(lines);
    out.total_records = lines;
    size_t index = 0;
    size_t malformed = 0;
    std::string first_problem;
    internal::ForEachNdjsonLine(payload, [&](std::string_view line, size_t line_number, size_t offset) {
      auto value = ParseJson(line, offset);
      if (!value.ok()) {
        ++malformed;
        std::string message =
            fmt::format("line {} is not valid JSON: {}", line_number, value.error().message);
        if (first_problem.empty()) first_problem = message;
        parser.Reject(index, "record", std::move(message), "malformed_json");
      } else {
        parser.Record(*value, index);
      }
      ++index;
      return true;
    });
    if (malformed == lines) {
      return InvalidArgument(
          fmt::format("malformed NDJSON: none of the {} lines is a JSON value ({})", lines, first_problem));
    }
    return std::move(out);
  };

  if (format == PayloadFormat::kNdjson) return parse_ndjson();

  std::string_view trimmed = internal::TrimJsonSpace(payload);
  if (trimmed.empty())
    return InvalidArgument("empty payload: expected a JSON array of profile updates or one update");
  auto value = ParseJson(payload, 0);
  if (!value.ok()) {
    // NDJSON sent as application/json: several objects on separate lines.
    if (trimmed.front() == '{' && trimmed.find('\n') != std::string_view::npos) {
      auto first_line = internal::TrimJsonSpace(trimmed.substr(0, trimmed.find('\n')));
      if (ParseJson(first_line, 0).ok()) return parse_ndjson();
    }
    return std::move(value).error();
  }
  if (value->is_array()) {
    const json::array& records = value->get_array();
    if (records.size() > kMaxProfileUpdatesPerBatch) return too_many(records.size());
    out.total_records = records.size();
    out.updates.reserve(records.size());
    for (size_t i = 0; i < records.size(); ++i) parser.Record(records[i], i);
    return out;
  }
  if (!value->is_object()) {
    return InvalidArgument(fmt::format(
        "expected a JSON array of profile updates or one update object, got {}", KindName(*value)));
  }
  out.total_records = 1;
  parser.Record(*value, 0);
  return out;
}

}  // namespace

std::string ProfileCountry(const CountryLookup* geoip, const ProfileUpdate& update,
                           std::string_view request_ip) {
  if (geoip == nullptr || update.ip == "0") return {};
  if (!update.ip.empty()) return geoip->CountryOf(update.ip);
  return request_ip.empty() ? std::string() : geoip->CountryOf(request_ip);
}

Result<ParsedProfileUpdates> ParseProfileUpdates(std::string_view payload, PayloadFormat format,
                                                 int64_t now_us) {
  return ParseUpdates(payload, format, now_us, /*groups=*/false);
}

Result<ParsedProfileUpdates> ParseGroupProfileUpdates(std::string_view payload, PayloadFormat format,
                                                      int64_t now_us) {
  return ParseUpdates(payload, format, now_us, /*groups=*/true);
}

Result<bool> ApplyProfileUpdate(json::object& properties, const ProfileUpdate& update) {
  const json::object empty;
  const json::object& arg = update.argument.is_object() ? update.argument.get_object() : empty;
  switch (update.op) {
    case ProfileOp::kDelete:
      return false;
    case ProfileOp::kSet:
      for (const auto& [name, value] : arg) properties[name] = value;
      break;
    case ProfileOp::kSetOnce:
      for (const auto& [name, value] : arg) {
        if (!properties.contains(name)) properties[name] = value;
      }
      break;
    case ProfileOp::kAdd: {
      // Every sum is computed before any is stored, so a refused update changes nothing.
      std::vector<std::pair<std::string_view, json::value>> sums;
      for (const auto& [name, delta] : arg) {
        if (!IsProfileNumber(delta)) continue;  // the parser refuses these; be safe with hand-built updates
        const json::value* current = properties.if_contains(name);
        if (current == nullptr) {
          sums.emplace_back(name, delta);  // missing counts as 0
        } else if (IsProfileNumber(*current)) {
          auto sum = AddNumbers(*current, delta);
          if (!sum.ok()) {
            return InvalidArgument(
                fmt::format("'$add.{}': {}; the update was not applied and the profile was left "
                            "unchanged",
                            Echo(name), sum.error().message));
          }
          sums.emplace_back(name, std::move(sum).value());
        }
        // An existing non-numeric value is left alone, as Mixpanel does.
      }
      for (auto& [name, value] : sums) properties[name] = std::move(value);
      break;
    }
    case ProfileOp::kUnion:
      for (const auto& [name, items] : arg) {
        if (!items.is_array()) continue;
        json::value* current = properties.if_contains(name);
        if (current == nullptr) current = &(properties[name] = json::array());
        if (!current->is_array()) continue;  // not a list: nothing to union into
        UnionInto(current->get_array(), items.get_array());
      }
      break;
    case ProfileOp::kAppend:
      for (const auto& [name, item] : arg) {
        json::value* current = properties.if_contains(name);
        if (current == nullptr) {
          properties[name] = json::array{item};
        } else if (current->is_array()) {
          current->get_array().push_back(item);
        }
      }
      break;
    case ProfileOp::kRemove:
      for (const auto& [name, item] : arg) {
        json::value* current = properties.if_contains(name);
        if (current == nullptr || !current->is_array()) continue;
        json::array& list = current->get_array();
        list.erase(std::remove(list.begin(), list.end(), item), list.end());
      }
      break;
    case ProfileOp::kUnset:
      if (update.argument.is_array()) {
        for (const json::value& name : update.argument.get_array()) {
          if (auto n = ProfileStringValue(name)) properties.erase(*n);
        }
      }
      break;
  }
  if (!update.ignore_time) properties["$last_seen"] = internal::FormatIsoUtc(update.time_ms * 1000);
  return true;
}

namespace {

/// Text that is equal for two profile values exactly when boost::json's operator== calls them equal (object
/// members in any order): SerializeProfileJson, with object members sorted by name.
std::string CanonicalProfileText(const json::value& v) {
  if (v.is_array()) {
    std::string out = "[";
    for (const json::value& item : v.get_array()) {
      if (out.size() > 1) out += ',';
      out += CanonicalProfileText(item);
    }
    return out + "]";
  }
  if (!v.is_object()) return SerializeProfileJson(v);
  std::vector<std::pair<std::string_view, std::string>> members;
  for (const auto& [name, value] : v.get_object()) members.emplace_back(name, CanonicalProfileText(value));
  std::sort(members.begin(), members.end());
  std::string out = "{";
  for (const auto& [name, text] : members) {
    if (out.size() > 1) out += ',';
    out += SerializeProfileJson(json::value(json::string(name))) + ":" + text;
  }
  return out + "}";
}

bool HoldsObject(const json::value& v) {
  if (v.is_object()) return true;
  if (!v.is_array()) return false;
  return std::any_of(v.get_array().begin(), v.get_array().end(), HoldsObject);
}

/// A list property of one ApplyProfileUpdates call while $union, $append and $remove edit it: the items with
/// their serialized text, counted by text, so each of those operations costs only its own items (a request of
/// 2000 updates to one long list was O(updates × list) before) and the list's JSON size is always known.
/// Removed items are only marked; Take() builds the list once.
class ListEdit {
 public:
  explicit ListEdit(json::array list) {
    for (json::value& v : list) {
      std::string text = SerializeProfileJson(v);
      Push(std::move(v), std::move(text));
    }
  }

  /// The list's size as SerializeProfileJson prints it.
  size_t bytes() const { return 2 + item_bytes_ + (live_ > 0 ? live_ - 1 : 0); }

  /// $union: adds each item whose text is not in the list yet (as UnionInto).
  void Union(const json::array& items) {
    for (const json::value& item : items) {
      std::string text = SerializeProfileJson(item);
      if (!count_.contains(text)) Push(item, std::move(text));
    }
  }
  void Append(const json::value& item) { Push(item, SerializeProfileJson(item)); }

  /// $remove: drops every item equal (operator==) to `item`.
  void Remove(const json::value& item) {
    auto it = removable_.find(Canonical(item));
    if (it == removable_.end()) return;
    for (size_t i : it->second) {
      if (!alive_[i]) continue;
      alive_[i] = false;
      item_bytes_ -= text_[i].size();
      --live_;
      auto c = count_.find(text_[i]);
      if (--c->second == 0) count_.erase(c);
    }
    removable_.erase(it);
  }

  json::array Take() {
    json::array out;
    out.reserve(live_);
    for (size_t i = 0; i < values_.size(); ++i) {
      if (alive_[i]) out.push_back(std::move(values_[i]));
    }
    return out;
  }

 private:
  static std::string Canonical(const json::value& v) {
    return HoldsObject(v) ? CanonicalProfileText(v) : SerializeProfileJson(v);
  }
  void Push(json::value v, std::string text) {
    item_bytes_ += text.size();
    ++live_;
    ++count_[text];
    removable_[HoldsObject(v) ? CanonicalProfileText(v) : text].push_back(values_.size());
    values_.push_back(std::move(v));
    text_.push_back(std::move(text));
    alive_.push_back(true);
  }

  std::vector<json::value> values_;
  std::vector<std::string> text_;
  std::vector<bool> alive_;
  std::unordered_map<std::string, size_t> count_;                   // live items by text
  std::unordered_map<std::string, std::vector<size_t>> removable_;  // item positions by canonical text
  size_t item_bytes_ = 0;
  size_t live_ = 0;
};

}  // namespace

ProfileEdit ApplyProfileUpdates(const std::optional<std::string>& stored,
                                std::span<const ProfileUpdate* const> updates) {
  ProfileEdit edit;
  auto refuse_all = [&](std::string field, std::string message, std::string reason) {
    edit.changed = false;
    edit.profile.reset();
    edit.refused.clear();
    for (size_t i = 0; i < updates.size(); ++i) edit.refused.push_back({i, field, message, reason});
    return edit;
  };
  std::optional<json::object> props;
  if (stored) {
    // A profile an older release stored with Infinity/NaN in it is repaired (those values become null)
    // instead of being unreadable.
    const std::optional<std::string> repaired = ReplaceNonFiniteTokens(*stored);
    auto v = ParseProfileJson(repaired ? *repaired : *stored);
    if (!v.ok() || !v->is_object()) {
      // Never replace a profile we cannot read: that silently lost every property before.
      return refuse_all(
          "profile",
          fmt::format("the stored profile cannot be read ({}); it was left unchanged and these updates "
                      "were not applied",
                      v.ok() ? std::string("not a JSON object") : v.error().message),
          "unreadable_profile");
    }
    props = std::move(v->get_object());
  }
  // List properties being edited by $union/$append/$remove live in `lists` (their entry in *props is a stale
  // placeholder) until another operation touches them or the loop ends.
  std::unordered_map<std::string, ListEdit> lists;
  size_t list_bytes = 0;  // sum of bytes() of `lists`: a lower bound of the profile's size
  auto flush = [&](std::string_view name) {
    auto it = lists.find(std::string(name));
    if (it == lists.end()) return;
    list_bytes -= it->second.bytes();
    (*props)[name] = it->second.Take();
    lists.erase(it);
  };
  auto flush_all = [&] {
    for (auto& [name, list] : lists) (*props)[name] = list.Take();
    lists.clear();
    list_bytes = 0;
  };
  for (size_t i = 0; i < updates.size(); ++i) {
    const ProfileUpdate& u = *updates[i];
    const bool created = !props.has_value();
    if (created) props.emplace();
    // Geolocation first, so the operation's own $country_code wins.
    if (!u.country.empty() &&
        (u.op == ProfileOp::kSet || (u.op == ProfileOp::kSetOnce && !props->contains("$country_code")))) {
      (*props)["$country_code"] = u.country;
    }
    const bool list_op =
        u.op == ProfileOp::kUnion || u.op == ProfileOp::kAppend || u.op == ProfileOp::kRemove;
    bool over_limit = false;
    const size_t list_bytes_before = list_bytes;
    const size_t names_before = props->size();
    if (list_op && u.argument.is_object()) {
      for (const auto& [name, item] : u.argument.get_object()) {
        if (u.op == ProfileOp::kUnion && !item.is_array()) continue;
        auto it = lists.find(std::string(name));
        if (it == lists.end()) {
          json::value* current = props->if_contains(name);
          if (current == nullptr) {
            if (u.op == ProfileOp::kRemove) continue;
            current = &((*props)[name] = json::array());
          }
          if (!current->is_array()) continue;  // not a list: left alone
          it = lists.emplace(std::string(name), ListEdit(std::move(current->get_array()))).first;
          current->get_array().clear();
          list_bytes += it->second.bytes();
        }
        ListEdit& list = it->second;
        const size_t before = list.bytes();
        if (u.op == ProfileOp::kUnion) {
          list.Union(item.get_array());
        } else if (u.op == ProfileOp::kAppend) {
          list.Append(item);
        } else {
          list.Remove(item);
        }
        list_bytes = list_bytes - before + list.bytes();
        // Refused as soon as a list breaks its limit, not after the whole request grew it further.
        if (list.bytes() > kMaxProfileValueBytes && list.bytes() > before) over_limit = true;
      }
      if (!u.ignore_time) {
        flush("$last_seen");
        (*props)["$last_seen"] = internal::FormatIsoUtc(u.time_ms * 1000);
      }
      edit.changed = true;
    } else {
      if (u.op == ProfileOp::kDelete) {
        lists.clear();
        list_bytes = 0;
      } else if (u.op == ProfileOp::kUnset && u.argument.is_array()) {
        for (const json::value& name : u.argument.get_array()) {
          if (auto n = ProfileStringValue(name)) flush(*n);
        }
      } else if (u.argument.is_object()) {
        for (const auto& [name, value] : u.argument.get_object()) flush(name);
      }
      if (!u.ignore_time) flush("$last_seen");
      auto kept = ApplyProfileUpdate(*props, u);
      if (!kept.ok()) {
        edit.refused.push_back(
            {i, u.op == ProfileOp::kAdd ? "$add" : "record", kept.error().message, "number_out_of_range"});
        if (created) props.reset();  // this update would have created the profile
        continue;
      }
      edit.changed = true;
      if (!*kept) props.reset();
    }
    // An update that breaks a limit stops the loop: the checks below refuse them all and name the limit.
    // (Only growth counts, so a profile stored over a limit before it existed can still shrink.)
    if (props && (over_limit || (list_bytes > kMaxProfileBytes && list_bytes > list_bytes_before) ||
                  (props->size() > kMaxProfileProperties && props->size() > names_before))) {
      break;
    }
  }
  if (props) flush_all();
  if (!edit.changed) return edit;
  if (props) {
    if (props->size() > kMaxProfileProperties) {
      return refuse_all(
          "profile",
          fmt::format("the profile would have {} properties; a profile has at most {} (Mixpanel's "
                      "limit); these updates were not applied and the profile was left unchanged",
                      props->size(), kMaxProfileProperties),
          "too_many_properties");
    }
    for (const auto& [name, value] : *props) {
      if (!value.is_array() && !value.is_object()) continue;
      const size_t bytes = SerializeProfileJson(value).size();
      if (bytes > kMaxProfileValueBytes) {
        return refuse_all(
            std::string(name),
            fmt::format("property '{}' would grow to {} bytes of JSON; a list or object property of a "
                        "profile may be at most {} bytes (256 KB, Mixpanel's limit); these updates "
                        "were not applied and the profile was left unchanged",
                        Echo(name), bytes, kMaxProfileValueBytes),
            "value_too_large");
      }
    }
    std::string text = SerializeProfileJson(*props);
    if (text.size() > kMaxProfileBytes) {
      return refuse_all(
          "profile",
          fmt::format("the profile would be {} bytes of JSON; a profile may be at most {} bytes "
                      "(1 MB); these updates were not applied and the profile was left unchanged",
                      text.size(), kMaxProfileBytes),
          "profile_too_large");
    }
    edit.profile = std::move(text);
  }
  return edit;
}

std::string_view ProfileOpName(ProfileOp op) {
  for (const OpName& n : kOps) {
    if (n.op == op) return n.name;
  }
  return "$set";  // unreachable: kOps names every operation
}

std::optional<ProfileOp> ProfileOpFromName(std::string_view name) {
  for (const OpName& n : kOps) {
    if (n.name == name) return n.op;
  }
  return std::nullopt;
}

}  // namespace sluice::ingest
