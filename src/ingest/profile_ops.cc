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

std::string EncodeProfileUpdate(const ProfileUpdate& update, std::string_view request_ip) {
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
  out += ",\"ip\":";
  AppendJsonString(out, update.ip);
  out += ",\"request_ip\":";
  AppendJsonString(out, request_ip);
  out += '}';
  return out;
}

Result<DecodedProfileUpdate> DecodeProfileUpdate(std::string_view encoded) {
  SLUICE_ASSIGN_OR_RETURN(boost::json::value v, ParseProfileJson(encoded));
  if (!v.is_object()) return Malformed("not a JSON object");
  const boost::json::object& o = v.get_object();
  DecodedProfileUpdate d;
  const boost::json::value* op = o.if_contains("op");
  std::optional<std::string_view> op_name = op ? ProfileStringValue(*op) : std::nullopt;
  std::optional<ProfileOp> known = op_name ? ProfileOpFromName(*op_name) : std::nullopt;
  if (!known) return Malformed("'op' is missing or not a profile operation");
  d.update.op = *known;
  if (const boost::json::value* arg = o.if_contains("arg")) d.update.argument = *arg;
  const boost::json::value* t = o.if_contains("time_ms");
  if (t == nullptr || !t->is_int64()) return Malformed("'time_ms' is missing or not an integer");
  d.update.time_ms = t->get_int64();
  auto flag = [&](std::string_view name, bool& out) {
    const boost::json::value* b = o.if_contains(name);
    if (b == nullptr || !b->is_bool()) return false;
    out = b->get_bool();
    return true;
  };
  if (!flag("ignore_time", d.update.ignore_time) || !flag("ignore_alias", d.update.ignore_alias))
    return Malformed("'ignore_time' or 'ignore_alias' is missing or not a boolean");
  auto text = [&](std::string_view name, std::string& out) {
    const boost::json::value* s = o.if_contains(name);
    std::optional<std::string_view> sv = s ? ProfileStringValue(*s) : std::nullopt;
    if (!sv) return false;
    out = std::string(*sv);
    return true;
  };
  if (!text("ip", d.update.ip) || !text("request_ip", d.request_ip))
    return Malformed("'ip' or 'request_ip' is missing or not a string");
  return d;
}

store::ProfileFold ProfileUpdateFolder::Fold(const std::optional<std::string>& current,
                                             std::span<const std::string> ops) const {
  store::ProfileFold fold;
  std::vector<DecodedProfileUpdate> decoded;
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
  // One call's operations share one request address; runs of equal addresses are folded as one span each
  // (ApplyProfileUpdates takes one address), so any mix still folds in order.
  std::optional<std::string> state = current;
  std::vector<const ProfileUpdate*> run;
  for (size_t begin = 0; begin < decoded.size();) {
    size_t end = begin;
    run.clear();
    while (end < decoded.size() && decoded[end].request_ip == decoded[begin].request_ip) {
      run.push_back(&decoded[end].update);
      ++end;
    }
    ProfileEdit edit = ApplyProfileUpdates(state, run, decoded[begin].request_ip);
    for (ProfileRefusal& r : edit.refused) {
      fold.refused.push_back({.op = positions[begin + r.update],
                              .field = std::move(r.field),
                              .message = std::move(r.message),
                              .reason = std::move(r.reason)});
    }
    if (edit.changed) {
      state = std::move(edit.profile);
      fold.changed = true;
    }
    begin = end;
  }
  if (fold.changed) fold.profile = std::move(state);
  return fold;
}

}  // namespace sluice::ingest
