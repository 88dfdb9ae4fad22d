#include "pipeline/record_encoder.h"

#include <charconv>

#include "common/json_text.h"

namespace sluice::pipeline {
namespace {

constexpr uint64_t kMicrosPerSecond = 1'000'000;

void AppendJsonObjectOrEmpty(std::string_view object_text, std::string& out) {
  if (object_text.empty()) {
    out += "{}";
  } else {
    out.append(object_text);
  }
}

void AppendStringOrNull(std::string_view s, std::string& out) {
  if (s.empty()) {
    out += "null";
  } else {
    AppendJsonString(out, s);
  }
}

}  // namespace

void AppendEpochSeconds(int64_t time_us, std::string& out) {
  // Work on the magnitude as unsigned so INT64_MIN has no overflow; print the sign separately, so -1.5 s stays
  // "-1.5" (floor division would give "-2" plus a positive fraction).
  const bool negative = time_us < 0;
  const uint64_t magnitude = negative ? uint64_t{0} - static_cast<uint64_t>(time_us) : static_cast<uint64_t>(time_us);
  const uint64_t seconds = magnitude / kMicrosPerSecond;
  uint64_t fraction = magnitude % kMicrosPerSecond;
  char buf[32];
  char* p = buf;
  if (negative) *p++ = '-';
  p = std::to_chars(p, buf + sizeof(buf), seconds).ptr;
  if (fraction != 0) {
    int digits = 6;
    while (fraction % 10 == 0) {
      fraction /= 10;
      --digits;
    }
    *p++ = '.';
    // `fraction` now has at most `digits` significant digits; left-pad with zeros (0.000123 -> "000123").
    for (int i = digits - 1; i >= 0; --i) {
      p[i] = static_cast<char>('0' + fraction % 10);
      fraction /= 10;
    }
    p += digits;
  }
  out.append(buf, static_cast<size_t>(p - buf));
}

void AppendEventRecord(const store::EventView& event, std::string& out) {
  out += "{\"event_name\":";
  AppendJsonString(out, event.name);
  out += ",\"time\":";
  AppendEpochSeconds(event.time_us, out);
  out += ",\"distinct_id\":";
  AppendJsonString(out, event.distinct_id);
  out += ",\"device_id\":";
  AppendStringOrNull(event.device_id, out);
  out += ",\"user_id\":";
  AppendStringOrNull(event.user_id, out);
  out += ",\"insert_id\":";
  AppendJsonString(out, event.insert_id);
  out += ",\"properties\":";
  AppendJsonObjectOrEmpty(event.properties, out);
  out += "}\n";
}

void AppendPeopleRecord(std::string_view distinct_id, std::string_view profile_json, std::string& out) {
  out += "{\"distinct_id\":";
  AppendJsonString(out, distinct_id);
  out += ",\"properties\":";
  AppendJsonObjectOrEmpty(profile_json, out);
  out += "}\n";
}

void AppendIdentityRecord(std::string_view distinct_id, std::string_view resolved_distinct_id, std::string& out) {
  out += "{\"distinct_id\":";
  AppendJsonString(out, distinct_id);
  out += ",\"resolved_distinct_id\":";
  AppendJsonString(out, resolved_distinct_id);
  out += "}\n";
}

}  // namespace sluice::pipeline
