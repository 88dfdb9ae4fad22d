// Mixpanel ingestion semantics, free of I/O: parse request payloads (JSON array, single object, NDJSON),
// validate every record by Mixpanel's rules (SPEC §3), normalise into sluice::Event, derive Simplified ID
// Merge identity, and parse and apply /engage profile updates.
//
// Everything here is a pure function of its inputs (the current time is passed in), so it is unit-tested and
// fuzzed without a server.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/event.h"
#include "common/result.h"

namespace sluice::ingest {

// Limits from Mixpanel's /import documentation (SPEC §3).
inline constexpr size_t kMaxEventsPerBatch = 2000;
inline constexpr size_t kMaxBatchBytes = 10 * 1000 * 1000;  // uncompressed JSON per request
inline constexpr size_t kMaxEventBytes = 1000 * 1000;       // "an event < 1 MB"
inline constexpr size_t kMaxProperties = 255;               // "< 255 properties"
inline constexpr size_t kMaxArrayItems = 255;               // "arrays < 255 items"
// Nesting depth of a property value = objects/arrays on its deepest path: a scalar is 0, [1] or {"b":1} is 1,
// {"a":{"b":{"c":1}}} is 3 (accepted); 4 is refused.
inline constexpr int kMaxNestingDepth = 3;
inline constexpr size_t kMaxInsertIdLength = 36;
inline constexpr int64_t kMinTimeUs = 31'536'000LL * 1'000'000;  // 1971-01-01T00:00:00Z
inline constexpr int64_t kMaxFutureUs = 3600LL * 1'000'000;      // at most 1 h in the future
inline constexpr int64_t kTrackWindowUs = 5LL * 86400 * 1'000'000;  // /track accepts the last 5 days
inline constexpr size_t kMaxProfileUpdatesPerBatch = 2000;

enum class Endpoint {
  kImport,  // server-side: time, distinct_id, $insert_id required
  kTrack,   // client-side: token per event, 5-day window, missing time = now, missing $insert_id generated
};

enum class PayloadFormat {
  kJson,    // a JSON array of records, or one record object
  kNdjson,  // one record per line; blank lines ignored
};

struct ParseOptions {
  Endpoint endpoint = Endpoint::kImport;
  PayloadFormat format = PayloadFormat::kJson;
  /// Server time in microseconds since the epoch, for the time rules and /track defaults.
  int64_t now_us = 0;
  /// /track with ip=1: the request's address, stored as the `ip` property when the event has none.
  std::string client_ip;
};

/// Why one record was refused; mirrors Mixpanel's strict-mode `failed_records` entries.
struct RecordError {
  size_t index = 0;         // position of the record in the request (0-based)
  std::string insert_id;    // the record's $insert_id when it had a readable one, else empty
  std::string field;        // e.g. "properties.time", "event", "properties.$insert_id"
  std::string message;      // human-readable, says what is wrong and what is allowed
  std::string reason;       // short stable label for metrics, e.g. "missing_time", "time_too_old"
};

struct ParsedEvents {
  std::vector<Event> events;          // valid records, in request order
  std::vector<size_t> event_indexes;  // the request index of each valid record
  std::vector<std::string> tokens;    // /track: properties.token of each valid record ("" when absent)
  std::vector<IdentityLink> links;    // identity links seen (events with both $device_id and $user_id)
  std::vector<RecordError> errors;    // invalid records
  size_t total_records = 0;           // records in the request
};

/// Parses and validates an /import or /track payload. A payload that is not JSON at all (or an NDJSON payload
/// whose every line is garbage), or that exceeds the batch limits, fails as a whole with kInvalidArgument /
/// kTooLarge and a message naming the problem (e.g. "malformed JSON at byte 812: expected ',' or '}'"); one bad
/// record only adds a RecordError and never affects the others. Duplicate keys in a record or its `properties`:
/// the last one wins (nested objects are copied as they arrived). Not reentrant per thread (thread-local
/// scratch buffers); safe to call from many threads.
Result<ParsedEvents> ParseEvents(std::string_view payload, const ParseOptions& options);

/// Normalises Mixpanel's `time` (seconds or milliseconds, integer or fractional) to microseconds:
/// values below 1e11 are seconds, others milliseconds. nullopt when not a finite positive number.
std::optional<int64_t> NormaliseTimeToMicros(double value);

/// True for Mixpanel's placeholder ids that are refused as distinct_id/$insert_id (case-insensitive):
/// anon, anonymous, nil, none, null, n/a, na, undefined, unknown, <nil>, 0, -1, true, false, [], {},
/// 00000000-0000-0000-0000-000000000000.
bool IsPlaceholderId(std::string_view id);

// ---- /engage ------------------------------------------------------------------------------------------------

enum class ProfileOp { kSet, kSetOnce, kAdd, kUnion, kAppend, kRemove, kUnset, kDelete };

struct ProfileUpdate {
  std::string token;
  std::string distinct_id;
  ProfileOp op = ProfileOp::kSet;
  /// The operation's argument: an object for $set/$set_once/$add/$union/$append/$remove, an array of names for
  /// $unset, ignored for $delete.
  boost::json::value argument;
  bool ignore_time = false;   // $ignore_time: do not touch $last_seen
  bool ignore_alias = false;  // $ignore_alias (with $delete)
  int64_t time_ms = 0;        // $time when given (ms), else the server time
  std::string ip;             // $ip when given
};

struct ParsedProfileUpdates {
  std::vector<ProfileUpdate> updates;
  std::vector<size_t> update_indexes;
  std::vector<RecordError> errors;
  size_t total_records = 0;
};

/// Parses an /engage payload (array, single object, or NDJSON), ≤ 2000 updates. Each record must carry $token,
/// $distinct_id and exactly one operation.
Result<ParsedProfileUpdates> ParseProfileUpdates(std::string_view payload, PayloadFormat format, int64_t now_us);

/// Applies one update to a profile's property object. Returns false when the profile is to be deleted
/// ($delete). Semantics: $set overwrites; $set_once only sets missing names; $add adds numeric deltas (missing
/// = 0, non-numeric values refused by the parser); $union set-adds list items; $append appends one item per
/// name; $remove removes every equal item from lists; $unset removes names. Unless ignore_time, $last_seen is
/// set to the update time (ISO-8601 UTC, as Mixpanel shows it).
bool ApplyProfileUpdate(boost::json::object& properties, const ProfileUpdate& update);

}  // namespace sluice::ingest
