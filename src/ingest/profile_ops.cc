#include "ingest/profile_ops.h"

#include <fmt/format.h>

#include <vector>

#include "common/json_text.h"

namespace sluice::ingest {
namespace {

Error Malformed(std::string_view what) {
  return InvalidArgument(fmt::format("encoded profile operation: {}", what));
}

}  // namespace

std::string EncodeProfileUpdate(const ProfileUpdate& update) {
  std::string out = "{\"op\":";
  AppendJsonString(out, ProfileOpName(update.op));
  out += ",\"arg\":";
  out += SerializeProfileJson(update.argument);
  out += ",\"time_ms\":";
  AppendInt(out, update.time_ms);
  out += ",\"ignore_time\":";
  out += update.ignore_time ? "true" : "false";
  out += ",\"ignore_alias\":";
  out += update.ignore_alias ? "true" : "false";
  out += ",\"country\":";
  AppendJsonString(out, update.country);
  out += '}';
  return out;
}

Result<ProfileUpdate> DecodeProfileUpdate(std::string_view encoded) {
  SLUICE_ASSIGN_OR_RETURN(boost::json::value v, ParseProfileJson(encoded));
  if (!v.is_object()) return Malformed("not a JSON object");
  const boost::json::object& o = v.get_object();
  ProfileUpdate d;
  const boost::json::value* op = o.if_contains("op");
  std::optional<std::string_view> op_name = op ? ProfileStringValue(*op) : std::nullopt;
  std::optional<ProfileOp> known = op_name ? ProfileOpFromName(*op_name) : std::nullopt;
  if (!known) return Malformed("'op' is missing or not a profile operation");
  d.op = *known;
  if (const boost::json::value* arg = o.if_contains("arg")) d.argument = *arg;
  const boost::json::value* t = o.if_contains("time_ms");
  if (t == nullptr || !t->is_int64()) return Malformed("'time_ms' is missing or not an integer");
  d.time_ms = t->get_int64();
  auto flag = [&](std::string_view name, bool& out) {
    const boost::json::value* b = o.if_contains(name);
    if (b == nullptr || !b->is_bool()) return false;
    out = b->get_bool();
    return true;
  };
  if (!flag("ignore_time", d.ignore_time) || !flag("ignore_alias", d.ignore_alias))
    return Malformed("'ignore_time' or 'ignore_alias' is missing or not a boolean");
  // "country" is absent from operations written before it existed (which carried addresses, now ignored).
  if (const boost::json::value* c = o.if_contains("country")) {
    std::optional<std::string_view> country = ProfileStringValue(*c);
    if (!country) return Malformed("'country' is not a string");
    d.country = std::string(*country);
  }
  return d;
}

store::ProfileFold ProfileUpdateFolder::Fold(const std::optional<std::string>& current,
                                             std::span<const std::string> ops) const {
  store::ProfileFold fold;
  std::vector<ProfileUpdate> decoded;
  std::vector<size_t> positions;  // the op index of each decoded update
  decoded.reserve(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    auto d = DecodeProfileUpdate(ops[i]);
    if (!d.ok()) {
      fold.refused.push_back(
          {.op = i, .field = "record", .message = d.error().message, .reason = "unreadable_operation"});
      continue;
    }
    decoded.push_back(std::move(d).value());
    positions.push_back(i);
  }
  std::vector<const ProfileUpdate*> span;
  span.reserve(decoded.size());
  for (const ProfileUpdate& u : decoded) span.push_back(&u);
  ProfileEdit edit = ApplyProfileUpdates(current, span);
  for (ProfileRefusal& r : edit.refused) {
    fold.refused.push_back({.op = positions[r.update],
                            .field = std::move(r.field),
                            .message = std::move(r.message),
                            .reason = std::move(r.reason)});
  }
  if (edit.changed) {
    fold.changed = true;
    fold.profile = std::move(edit.profile);
  }
  return fold;
}

}  // namespace sluice::ingest
