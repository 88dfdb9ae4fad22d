// /engage: parse profile updates with Boost.JSON (profiles are low volume, and ApplyProfileUpdate works on
// boost::json objects anyway) and apply them with Mixpanel's semantics.
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include <fmt/format.h>

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

/// Parses one JSON text; on failure says at which byte.
Result<json::value> ParseJson(std::string_view text, size_t offset) {
  json::stream_parser parser;
  boost::system::error_code ec;
  const size_t consumed = parser.write(text.data(), text.size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    return InvalidArgument(fmt::format("malformed JSON at byte {}: {}", offset + std::min(consumed, text.size()),
                                       ec.message()));
  }
  return parser.release();
}

/// A flag such as $ignore_time: true, "true", "1" or a non-zero number.
bool Truthy(const json::value& v) {
  if (v.is_bool()) return v.get_bool();
  if (v.is_string()) return v.get_string() == "true" || v.get_string() == "1";
  if (v.is_int64()) return v.get_int64() != 0;
  if (v.is_uint64()) return v.get_uint64() != 0;
  if (v.is_double()) return v.get_double() != 0;
  return false;
}

class ProfileParser {
 public:
  ProfileParser(int64_t now_us, ParsedProfileUpdates& out) : now_us_(now_us), out_(out) {}

  void Record(const json::value& record, size_t index);
  void Reject(size_t index, std::string field, std::string message, std::string reason) {
    out_.errors.push_back({.index = index,
                           .insert_id = {},
                           .field = std::move(field),
                           .message = std::move(message),
                           .reason = std::move(reason)});
  }

 private:
  int64_t now_us_;
  ParsedProfileUpdates& out_;
};

void ProfileParser::Record(const json::value& record, size_t index) {
  if (!record.is_object()) {
    Reject(index, "record",
           fmt::format("update {} is {}; each update must be a JSON object with $token, $distinct_id and one "
                       "operation",
                       index, KindName(record)),
           "not_an_object");
    return;
  }
  const json::object& obj = record.get_object();
  ProfileUpdate u;

  const json::value* token = obj.if_contains("$token");
  if (token == nullptr || !token->is_string() || token->get_string().empty()) {
    Reject(index, "$token", "'$token' is missing: every profile update must carry its project token",
           "missing_token");
    return;
  }
  u.token = std::string(token->get_string());

  const json::value* id = obj.if_contains("$distinct_id");
  if (id != nullptr && id->is_string()) {
    u.distinct_id = std::string(id->get_string());
  } else if (id != nullptr && id->is_number()) {
    u.distinct_id = json::serialize(*id);
  } else if (id != nullptr && !id->is_null()) {
    Reject(index, "$distinct_id", fmt::format("'$distinct_id' must be a string or a number, got {}", KindName(*id)),
           "invalid_distinct_id");
    return;
  }
  if (u.distinct_id.empty()) {
    Reject(index, "$distinct_id", "'$distinct_id' is missing: say which profile to update", "missing_distinct_id");
    return;
  }
  if (IsPlaceholderId(u.distinct_id)) {
    Reject(index, "$distinct_id",
           fmt::format("'$distinct_id' is \"{}\", a placeholder value; send the real id of the user",
                       u.distinct_id),
           "placeholder_distinct_id");
    return;
  }

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
  if (ops == 0) {
    Reject(index, "record",
           "the update has no operation: expected exactly one of $set, $set_once, $add, $union, $append, $remove, "
           "$unset, $delete",
           "missing_operation");
    return;
  }
  if (ops > 1) {
    Reject(index, "record",
           fmt::format("the update has {} operations ({}); send exactly one operation per update", ops, found),
           "multiple_operations");
    return;
  }
  const std::string_view op_name = found;
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
      for (const auto& [name, value] : argument->get_object()) {
        if (u.op == ProfileOp::kAdd && !value.is_number()) {
          Reject(index, fmt::format("$add.{}", std::string_view(name)),
                 fmt::format("'$add.{}' must be a number (the amount to add), got {}", std::string_view(name),
                             KindName(value)),
                 "invalid_operation");
          return;
        }
        if (u.op == ProfileOp::kUnion && !value.is_array()) {
          Reject(index, fmt::format("$union.{}", std::string_view(name)),
                 fmt::format("'$union.{}' must be a list of values to add, got {}", std::string_view(name),
                             KindName(value)),
                 "invalid_operation");
          return;
        }
      }
      break;
    }
    case ProfileOp::kUnset: {
      const bool ok = argument->is_array() && std::all_of(argument->get_array().begin(), argument->get_array().end(),
                                                          [](const json::value& v) { return v.is_string(); });
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
    if (t->is_number()) us = NormaliseTimeToMicros(t->to_number<double>());
    if (!us) {
      Reject(index, "$time",
             fmt::format("'$time' must be a positive number of milliseconds (or seconds) since the epoch, got {}",
                         KindName(*t)),
             "invalid_time");
      return;
    }
    u.time_ms = *us / 1000;
  }
  if (const json::value* v = obj.if_contains("$ignore_time")) u.ignore_time = Truthy(*v);
  if (const json::value* v = obj.if_contains("$ignore_alias")) u.ignore_alias = Truthy(*v);
  if (const json::value* v = obj.if_contains("$ip"); v != nullptr && v->is_string()) {
    u.ip = std::string(v->get_string());
  }
  out_.updates.push_back(std::move(u));
  out_.update_indexes.push_back(index);
}

/// Adds two JSON numbers, staying an integer while the sum fits in int64.
json::value AddNumbers(const json::value& a, const json::value& b) {
  auto as_int = [](const json::value& v, int64_t& out) {
    if (v.is_int64()) {
      out = v.get_int64();
      return true;
    }
    if (v.is_uint64() && v.get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
      out = static_cast<int64_t>(v.get_uint64());
      return true;
    }
    return false;
  };
  int64_t x = 0;
  int64_t y = 0;
  int64_t sum = 0;
  if (as_int(a, x) && as_int(b, y) && !__builtin_add_overflow(x, y, &sum)) return sum;
  return a.to_number<double>() + b.to_number<double>();
}

}  // namespace

Result<ParsedProfileUpdates> ParseProfileUpdates(std::string_view payload, PayloadFormat format, int64_t now_us) {
  if (payload.size() > kMaxBatchBytes) {
    return Error(ErrorCode::kTooLarge,
                 fmt::format("payload is {} bytes of uncompressed JSON; the limit is {} bytes per request",
                             payload.size(), kMaxBatchBytes));
  }
  ParsedProfileUpdates out;
  ProfileParser parser(now_us, out);
  auto too_many = [](size_t n) {
    return Error(ErrorCode::kTooLarge, fmt::format("too many profile updates: {} > {} per request; split the batch",
                                                   n, kMaxProfileUpdatesPerBatch));
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
        std::string message = fmt::format("line {} is not valid JSON: {}", line_number, value.error().message);
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
  if (trimmed.empty()) return InvalidArgument("empty payload: expected a JSON array of profile updates or one update");
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
    return InvalidArgument(fmt::format("expected a JSON array of profile updates or one update object, got {}",
                                       KindName(*value)));
  }
  out.total_records = 1;
  parser.Record(*value, 0);
  return out;
}

bool ApplyProfileUpdate(json::object& properties, const ProfileUpdate& update) {
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
    case ProfileOp::kAdd:
      for (const auto& [name, delta] : arg) {
        if (!delta.is_number()) continue;  // the parser refuses these; be safe with hand-built updates
        json::value* current = properties.if_contains(name);
        if (current == nullptr) {
          properties[name] = delta;  // missing counts as 0
        } else if (current->is_number()) {
          *current = AddNumbers(*current, delta);
        }
        // An existing non-numeric value is left alone, as Mixpanel does.
      }
      break;
    case ProfileOp::kUnion:
      for (const auto& [name, items] : arg) {
        if (!items.is_array()) continue;
        json::value* current = properties.if_contains(name);
        if (current == nullptr) current = &(properties[name] = json::array());
        if (!current->is_array()) continue;  // not a list: nothing to union into
        json::array& list = current->get_array();
        for (const json::value& item : items.get_array()) {
          if (std::find(list.begin(), list.end(), item) == list.end()) list.push_back(item);
        }
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
          if (name.is_string()) properties.erase(name.get_string());
        }
      }
      break;
  }
  if (!update.ignore_time) properties["$last_seen"] = internal::FormatIsoUtc(update.time_ms * 1000);
  return true;
}

}  // namespace sluice::ingest
