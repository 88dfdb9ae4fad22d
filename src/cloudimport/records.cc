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

InsertIdDeriver::InsertIdDeriver(InsertIdScheme scheme, std::string_view key) : scheme_(scheme) {
  if (scheme_ == InsertIdScheme::kLineNumber) file_tag_ = FileTag(key);
}

std::string InsertIdDeriver::Next(std::string_view text, uint64_t line) {
  if (scheme_ == InsertIdScheme::kLineNumber) return DerivedInsertId(file_tag_, line);
  const Sha256Digest digest = Sha256(text);
  uint64_t hash48 = 0;
  for (int i = 8; i < 14; ++i) hash48 = (hash48 << 8) | digest[static_cast<size_t>(i)];
  const std::string prefix = HexEncode(std::string_view(reinterpret_cast<const char*>(digest.data()), 8));
  // 16 + 1 + at most 8 (a count) or 1 + 16 (a line number) hex digits: within Mixpanel's 36.
  if (std::optional<uint32_t> before = Count(hash48)) return fmt::format("{}-{:x}", prefix, *before);
  return fmt::format("{}-l{:x}", prefix, line);
}

std::optional<uint32_t> InsertIdDeriver::Count(uint64_t hash48) {
  constexpr uint64_t kCountMask = 0xffff;
  if (hash48 == 0) hash48 = 1;  // 0 marks a free slot
  if (slots_.empty()) slots_.assign(4096, 0);
  const size_t mask = slots_.size() - 1;
  for (size_t i = static_cast<size_t>(hash48 * 0x9E3779B97F4A7C15ull >> 20) & mask;; i = (i + 1) & mask) {
    uint64_t& slot = slots_[i];
    if (slot == 0) {
      if (used_ >= kMaxDistinctDerivedLines) return std::nullopt;
      slot = hash48 << 16 | 1;
      if (++used_ * 2 > slots_.size()) Grow();
      return 0;
    }
    if (slot >> 16 == hash48) {
      const auto before = static_cast<uint32_t>(slot & kCountMask);
      if (before == kCountMask) return std::nullopt;  // 65,535 identical lines: no count left
      ++slot;
      return before;
    }
  }
}

void InsertIdDeriver::Grow() {
  std::vector<uint64_t> old = std::move(slots_);
  slots_.assign(old.size() * 2, 0);
  const size_t mask = slots_.size() - 1;
  for (uint64_t slot : old) {
    if (slot == 0) continue;
    size_t i = static_cast<size_t>((slot >> 16) * 0x9E3779B97F4A7C15ull >> 20) & mask;
    while (slots_[i] != 0) i = (i + 1) & mask;
    slots_[i] = slot;
  }
}

namespace {

/// A JSON value that is no $insert_id: absent, null or "".
bool NoId(std::string_view value) { return value.empty() || value == "null" || value == "\"\""; }

}  // namespace

bool NeedsDerivedInsertId(std::string_view line, const ConnectorSpec& spec) {
  if (spec.data_format == DataFormat::kRemapEvent) {
    const std::string_view source = spec.RemapOf("$insert_id").value_or("$insert_id");
    std::string_view value;
    ForEachMember(line, [&](std::string_view key, std::string_view v) {
      if (KeyIs(key, source)) value = v;
    });
    return NoId(value);
  }
  if (spec.data_format != DataFormat::kMixpanelEvent) return false;
  std::string_view props;
  ForEachMember(line, [&](std::string_view key, std::string_view value) {
    if (KeyIs(key, "properties")) props = !value.empty() && value.front() == '{' ? value : std::string_view();
  });
  if (props.empty()) return false;  // dropped by validation, never given an id
  std::string_view value;
  ForEachMember(props, [&](std::string_view key, std::string_view v) {
    if (KeyIs(key, "$insert_id")) value = v;
  });
  return NoId(value);
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
  constexpr std::string_view kKey = "\"$insert_id\"";
  bool first = true;
  out.append(line.substr(0, brace + 1));
  if (props.find(kKey) == std::string_view::npos) {
    out.append(props.substr(1, props.size() - 2));  // the members as they are
    first = SkipSpace(props, 1) == props.size() - 1;
  } else {
    // The object has one that is no id (null, ""): the derived one replaces it.
    ForEachMember(props, [&](std::string_view key, std::string_view value) {
      if (!KeyIs(key, "$insert_id")) AppendMember(out, first, key, value);
    });
  }
  AppendMember(out, first, "$insert_id", {});
  out.push_back('"');
  out.append(insert_id);
  out.push_back('"');
  out.append(line.substr(brace + props.size() - 1));
  return true;
}

bool AppendRemappedEvent(std::string_view line, const ConnectorSpec& spec,
                         const std::function<std::string()>& derive_insert_id, std::string& out,
                         std::string& error) {
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
  // Unmapped, a field the line names "$insert_id" itself is the event's id.
  if (targets[3].source.empty()) targets[3].source = "$insert_id";

  const size_t start = out.size();
  out.append("{\"properties\":{");
  bool first = true;
  bool ok = ForEachMember(line, [&](std::string_view key, std::string_view value) {
    bool mapped = false;  // every target mapped to this field gets its value
    for (auto& t : targets) {
      if (!t.source.empty() && KeyIs(key, t.source)) {
        t.value = value;
        mapped = true;
      }
    }
    if (!mapped) AppendMember(out, first, key, value);
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
  if (!NoId(targets[3].value)) {
    AppendMember(out, first, "$insert_id", targets[3].value);
  } else {
    AppendMember(out, first, "$insert_id", {});
    out.push_back('"');
    out.append(derive_insert_id());
    out.push_back('"');
  }
  if (!targets[4].value.empty() && targets[4].value != "null")
    AppendMember(out, first, "ip", targets[4].value);
  out.append("},\"event\":");
  out.append(targets[0].value);
  out.push_back('}');
  return true;
}

bool AppendRemappedProfile(std::string_view line, const ConnectorSpec& spec, std::string_view token,
                           std::string& out, std::string& error) {
  std::string_view source = spec.RemapOf("$distinct_id").value_or(std::string_view());
  std::string_view distinct_id;
  std::string_view ip;  // the line's "$ip": the update's address for geolocation, not a property
  const size_t start = out.size();
  out.append("{\"$set\":{");
  bool first = true;
  bool ok = ForEachMember(line, [&](std::string_view key, std::string_view value) {
    if (!source.empty() && KeyIs(key, source)) {
      distinct_id = value;
      return;
    }
    if (KeyIs(key, "$token")) return;  // updates go to the connector's project
    if (KeyIs(key, "$ip")) {
      ip = value;
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
  if (!ip.empty()) {
    out.append(",\"$ip\":");
    out.append(ip);
  }
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
