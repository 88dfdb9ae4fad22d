// Record encoder of JSON Pipelines (SPEC §4): one JSON object per line, each line ending in '\n', appended to a
// caller-owned buffer (no document tree, no allocation beyond the buffer's growth). The exporter's hot path:
//
//   std::string lines;
//   store.ScanPartition(project, hour, [&](const store::EventView& e) { AppendEventRecord(e, lines); ... });
//
// Encoding (documented for users in docs/pipelines.md):
//   events    {"event_name":…,"time":…,"distinct_id":…,"device_id":…,"user_id":…,"insert_id":…,"properties":{…}}
//   people    {"distinct_id":…,"properties":{…}}
//   identity  {"distinct_id":…,"resolved_distinct_id":…}
// Strings are escaped by common/json_text.h (quote, backslash, control characters; UTF-8 copied as is).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "store/store.h"

namespace sluice::pipeline {

/// Appends one event record and its '\n'.
///
/// `time` is epoch seconds: an integer when the stored time_us is a whole second, else seconds with the
/// fractional part (up to 6 digits, trailing zeros trimmed, e.g. 1700000000.123). Times arrive in seconds or
/// milliseconds and are stored in microseconds, so no precision that arrived is lost. Negative times are exact
/// too (-1500000 µs is -1.5). Empty device_id/user_id are emitted as null; `insert_id` is always a string;
/// `properties` is copied verbatim (the store keeps it as minified JSON with values byte-for-byte as received;
/// an empty text is written as {}). Field order exactly as above.
void AppendEventRecord(const store::EventView& event, std::string& out);

/// Appends {"distinct_id":…,"properties":{…}} and its '\n'. `profile_json` is the profile as the store keeps
/// it (Store::GetProfile/ScanProfiles: the minified JSON object of the profile's properties, as /engage built
/// it); it is copied verbatim under "properties" (an empty text is written as {}; numbers keep the text they
/// arrived with). A profile an older release stored with the non-JSON tokens Infinity/NaN is written with
/// null there.
void AppendPeopleRecord(std::string_view distinct_id, std::string_view profile_json, std::string& out);

/// Appends {"distinct_id":…,"resolved_distinct_id":…} and its '\n'.
void AppendIdentityRecord(std::string_view distinct_id, std::string_view resolved_distinct_id, std::string& out);

/// Appends `time_us` (microseconds since the epoch) as seconds, as the event record's `time` field writes it.
void AppendEpochSeconds(int64_t time_us, std::string& out);

}  // namespace sluice::pipeline
