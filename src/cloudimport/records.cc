#include "cloudimport/records.h"

#include <boost/json.hpp>

#include <fmt/format.h>

#include "common/crypto.h"
#include "common/json_text.h"

namespace sluice::cloudimport {
namespace {

// Deepest nesting the scanner follows; ingest refuses anything deeper than 3 levels inside properties anyway.
constexpr int kMaxDepth = 64;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && IsSpace(s[i])) ++i;
  return i;
}

/// `i` at an opening quote: the index just past the closing quote, or npos.
size_t SkipString(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

/// `i` at the first character of a value: the index just past it, or npos.
size_t SkipValue(std::string_view s, size_t i) {
  if (i >= s.size()) return std::string_view::npos;
  const char c = s[i];
  if (c == '"') return SkipString(s, i);
  if (c == '{' || c == '[') {
    int depth = 0;
    while (i < s.size()) {
      const char d = s[i];
      if (d == '"') {
        i = SkipString(s, i);
        if (i == std::string_view::npos) return i;
        continue;
      }
      if (d == '{' || d == '[') {
        if (++depth > kMaxDepth) return std::string_view::npos;
      } else if (d == '}' || d == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return std::string_view::npos;
  }
  // A scalar (number, true, false, null): up to the next delimiter.
  size_t start = i;
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && !IsSpace(s[i])) ++i;
  return i == start ? std::string_view::npos : i;
}

/// Source field names compare against decoded keys.
bool KeyIs(std::string_view raw, std::string_view name) {
  if (raw.find('\\') == std::string_view::npos) return raw == name;
  return DecodeKey(raw) == name;
}

void AppendMember(std::string& out, bool& first, std::string_view raw_key, std::string_view value) {
  if (!first) out.push_back(',');
  first = false;
  out.push_back('"');
  out.append(raw_key);
  out.append("\":");
  out.append(value);
}

}  // namespace

bool ForEachMember(std::string_view s, const std::function<void(std::string_view, std::string_view)>& fn) {
  size_t i = SkipSpace(s, 0);
  if (i >= s.size() || s[i] != '{') return false;
  i = SkipSpace(s, i + 1);
  if (i < s.size() && s[i] == '}') return SkipSpace(s, i + 1) == s.size();
  while (i < s.size()) {
    if (s[i] != '"') return false;
    size_t key_end = SkipString(s, i);
    if (key_end == std::string_view::npos) return false;
    std::string_view key = s.substr(i + 1, key_end - i - 2);
    i = SkipSpace(s, key_end);
    if (i >= s.size() || s[i] != ':') return false;
    i = SkipSpace(s, i + 1);
    size_t value_end = SkipValue(s, i);
    if (value_end == std::string_view::npos) return false;
    fn(key, s.substr(i, value_end - i));
    i = SkipSpace(s, value_end);
    if (i >= s.size()) return false;
    if (s[i] == '}') return SkipSpace(s, i + 1) == s.size();
    if (s[i] != ',') return false;
    i = SkipSpace(s, i + 1);
  }
  return false;
}

std::string DecodeKey(std::string_view raw) {
  if (raw.find('\\') == std::string_view::npos) return std::string(raw);
  std::string quoted;
  quoted.reserve(raw.size() + 2);
  quoted.push_back('"');
  quoted.append(raw);
  quoted.push_back('"');
  boost::system::error_code ec;
  auto v = boost::json::parse(quoted, ec);
  if (ec || !v.is_string()) return std::string(raw);
  return std::string(v.get_string());
}

std::string FileTag(std::string_view key) { return HexEncode(Sha256(key)).substr(0, 16); }

std::string DerivedInsertId(std::string_view file_tag, uint64_t line) {
  // 16 + 1 + at most 16 hex digits = 33, within Mixpanel's 36.
  return fmt::format("{}-{:x}", file_tag, line);
}

bool AppendWithInsertId(std::string_view line, std::string_view insert_id, std::string& out) {
  // The last top-level "properties" member wins (as in ingest), so inject into that one.
  std::string_view props;
  bool ok = ForEachMember(line, [&](std::string_view key, std::string_view value) {
    if (KeyIs(key, "properties") && !value.empty() && value.front() == '{') props = value;
    else if (KeyIs(key, "properties")) props = {};
  });
  if (!ok || props.empty()) return false;
  const size_t brace = static_cast<size_t>(props.data() - line.data());
  const bool empty_object = SkipSpace(props, 1) < props.size() && props[SkipSpace(props, 1)] == '}';
  out.append(line.substr(0, brace + 1));
  out.append("\"$insert_id\":\"");
  out.append(insert_id);
  out.push_back('"');
  if (!empty_object) out.push_back(',');
  out.append(line.substr(brace + 1));
  return true;
}

bool AppendRemappedEvent(std::string_view line, const ConnectorSpec& spec, std::string_view derived_insert_id,
                         std::string& out, std::string& error) {
  // The mapped targets, in the order they are written (after the other fields, so they win over a source field
  // that happens to carry the same name).
  struct Target {
    std::string_view name;
    std::string_view source;
    std::string_view value;
  };
  Target targets[] = {{"event_name", {}, {}}, {"time", {}, {}}, {"distinct_id", {}, {}},
                      {"$insert_id", {}, {}}, {"ip", {}, {}}};
  for (auto& t : targets) t.source = spec.RemapOf(t.name).value_or(std::string_view());

  const size_t start = out.size();
  out.append("{\"properties\":{");
  bool first = true;
  bool ok = ForEachMember(line, [&](std::string_view key, std::string_view value) {
    for (auto& t : targets) {
      if (!t.source.empty() && KeyIs(key, t.source)) {
        t.value = value;
        return;
      }
    }
    AppendMember(out, first, key, value);
  });
  if (!ok) {
    out.resize(start);
    error = "the line is not a JSON object";
    return false;
  }
  for (int i = 0; i < 3; ++i) {  // event_name, time, distinct_id are required
    if (targets[i].value.empty() || targets[i].value == "null") {
      out.resize(start);
      error = fmt::format("source field '{}' (remapped to {}) is missing", targets[i].source, targets[i].name);
      return false;
    }
  }
  AppendMember(out, first, "time", targets[1].value);
  AppendMember(out, first, "distinct_id", targets[2].value);
  if (!targets[3].value.empty() && targets[3].value != "null") {
    AppendMember(out, first, "$insert_id", targets[3].value);
  } else {
    AppendMember(out, first, "$insert_id", {});
    out.push_back('"');
    out.append(derived_insert_id);
    out.push_back('"');
  }
  if (!targets[4].value.empty()) AppendMember(out, first, "ip", targets[4].value);
  out.append("},\"event\":");
  out.append(targets[0].value);
  out.push_back('}');
  return true;
}

bool AppendRemappedProfile(std::string_view line, const ConnectorSpec& spec, std::string_view token,
                           std::string& out, std::string& error) {
  std::string_view source = spec.RemapOf("$distinct_id").value_or(std::string_view());
  std::string_view distinct_id;
  const size_t start = out.size();
  out.append("{\"$set\":{");
  bool first = true;
  bool ok = ForEachMember(line, [&](std::string_view key, std::string_view value) {
    if (!source.empty() && KeyIs(key, source)) {
      distinct_id = value;
      return;
    }
    AppendMember(out, first, key, value);
  });
  if (!ok) {
    out.resize(start);
    error = "the line is not a JSON object";
    return false;
  }
  if (distinct_id.empty() || distinct_id == "null") {
    out.resize(start);
    error = fmt::format("source field '{}' (remapped to $distinct_id) is missing", source);
    return false;
  }
  out.append("},\"$token\":");
  AppendJsonString(out, token);
  out.append(",\"$distinct_id\":");
  out.append(distinct_id);
  out.push_back('}');
  return true;
}

bool AppendProfileWithToken(std::string_view line, std::string_view token, std::string& out, std::string& error) {
  const size_t start = out.size();
  out.append("{\"$token\":");
  AppendJsonString(out, token);
  bool first = false;
  bool ok = ForEachMember(line, [&](std::string_view key, std::string_view value) {
    if (KeyIs(key, "$token")) return;
    AppendMember(out, first, key, value);
  });
  if (!ok) {
    out.resize(start);
    error = "the line is not a JSON object";
    return false;
  }
  out.push_back('}');
  return true;
}

}  // namespace sluice::cloudimport
