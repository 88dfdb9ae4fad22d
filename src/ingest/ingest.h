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
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/event.h"
#include "common/geoip.h"
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
// Profile limits. Mixpanel's (docs "Data types" / "User profiles FAQ"): a list or object property of a
// profile is at most 256 KB, a profile has at most 2000 properties. Mixpanel publishes no total size; Sluice
// caps a profile at 1 MB (its stored JSON) so one profile cannot grow without bound and every read of it
// stays cheap.
inline constexpr size_t kMaxProfileValueBytes = 256 * 1024;
inline constexpr size_t kMaxProfileProperties = 2000;
inline constexpr size_t kMaxProfileBytes = 1024 * 1024;
// $distinct_id, $group_id and $group_key are at most this many characters (Mixpanel's distinct_id cap), so an
// update cannot make a 10 MB key.
inline constexpr size_t kMaxProfileIdChars = 255;
/// Characters of UTF-8 text, counted as the bytes that are not continuation bytes (so invalid UTF-8 never
/// counts fewer characters than it has lead bytes): the unit of kMaxProfileIdChars.
inline size_t Utf8CharCount(std::string_view text) {
  size_t chars = 0;
  for (const char c : text) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return chars;
}
// Values a client sent are quoted in error messages only up to this many characters (then "…"), so a 10 MB
// value does not come back as a 10 MB error.
inline constexpr size_t kMaxEchoedChars = 64;

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
  /// /track with ip=1: the country of the request's address (ISO 3166-1 alpha-2), stored as Mixpanel's
  /// `mp_country_code` when the event has none; empty = none added. The address itself is never stored.
  std::string client_country;
  /// An event's own `ip` property (a string, as Mixpanel's server-side SDKs send the user's address): its
  /// country in this database becomes the event's mp_country_code when it has none (instead of
  /// client_country), and the property is not stored, as Mixpanel does not keep addresses. Null: no country
  /// from it (still not stored).
  const CountryLookup* geoip = nullptr;
  /// /import in its legacy forms (`data=` in a form body or the query, as Mixpanel's older SDKs send it): an
  /// event without $insert_id gets one derived from its content (DeriveInsertId), so a resend deduplicates
  /// instead of being refused. Strict JSON /import keeps requiring $insert_id.
  bool derive_insert_id = false;
  /// The payload is followed by at least kParsePadding readable bytes (GunzipBoundedPadded's buffer): a JSON
  /// array or object, or each line of NDJSON, is then parsed in place instead of copied into a padded buffer
  /// first.
  bool payload_padded = false;
  /// Events to fill instead of allocating new ones (taken from the back; every field is overwritten). A caller
  /// parsing batch after batch (Cloud Import) hands its written events back here, so their strings keep their
  /// capacity and a steady stream of batches allocates nothing per event. Null: new events.
  std::vector<Event>* recycled_events = nullptr;
  /// Each valid record is handed to `sink` as soon as it is accepted, with its properties, while they are
  /// still in the cache (the /import handler passes a store::EventStore::EventBatch here). The events in
  /// ParsedEvents then have empty `properties`. A request that fails as a whole (malformed JSON, too many
  /// records) may have handed some events over before failing: the caller drops the sink's work then.
  EventSink* sink = nullptr;
};

/// Written events kept for the next ParseEvents to refill (ParseOptions::recycled_events): their strings keep
/// their capacity, so a steady stream of batches allocates nothing per event (malloc and free were ~6% of
/// /import's CPU). Bounded: at most `max_events` spares, none holding more than `max_event_bytes` of strings.
class EventSpares {
 public:
  EventSpares(size_t max_events, size_t max_event_bytes) : max_events_(max_events), max_event_bytes_(max_event_bytes) {}

  /// For ParseOptions::recycled_events.
  std::vector<Event>* pool() { return &spare_; }
  /// Takes back the events of a finished batch (those within the bounds) and clears `events`.
  void Recycle(std::vector<Event>& events);
  size_t size() const { return spare_.size(); }

 private:
  size_t max_events_;
  size_t max_event_bytes_;
  std::vector<Event> spare_;
};

/// Readable bytes ParseOptions::payload_padded promises after the payload (simdjson's SIMDJSON_PADDING).
inline constexpr size_t kParsePadding = 64;

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

/// Sizes the calling thread's JSON parser (reused by every ParseEvents on the thread) for documents of up to
/// `bytes` with some to spare. A server calls it on each request thread before the thread serves, so the
/// parser's index buffers (mostly never touched) are not carved out of the heap the first requests find warm
/// (http::ServerOptions::worker_heap_warmup_bytes). Returns false when the memory cannot be had.
bool ReserveThreadParser(size_t bytes);

namespace internal {
/// Bytes of document the calling thread's parser has buffers for (0 before its first parse).
size_t ThreadParserCapacity();
}  // namespace internal

/// Normalises Mixpanel's `time` (seconds or milliseconds, integer or fractional) to microseconds:
/// values below 1e11 are seconds, others milliseconds. nullopt when not a finite positive number.
std::optional<int64_t> NormaliseTimeToMicros(double value);

/// True for Mixpanel's placeholder ids that are refused as distinct_id/$insert_id (case-insensitive):
/// anon, anonymous, nil, none, null, n/a, na, undefined, unknown, <nil>, 0, -1, true, false, [], {},
/// 00000000-0000-0000-0000-000000000000.
bool IsPlaceholderId(std::string_view id);

/// `value` as error messages quote it: at most kMaxEchoedChars characters (never splitting a UTF-8 sequence),
/// followed by "…" when it was longer.
std::string Echo(std::string_view value);

/// A deterministic $insert_id for an event that arrived without one: 32 hex characters of SHA-256 over the
/// length-prefixed event name, distinct_id, time in microseconds, $device_id, $user_id and the property texts
/// in `sorted_properties` (each `"key":value` as stored, sorted so key order does not matter). The same event
/// sent twice gets the same id, so the store's dedup key makes the resend a replacement.
std::string DeriveInsertId(std::string_view name, std::string_view distinct_id, int64_t time_us,
                           std::string_view device_id, std::string_view user_id,
                           std::span<const std::string_view> sorted_properties);

// ---- /engage ------------------------------------------------------------------------------------------------

enum class ProfileOp { kSet, kSetOnce, kAdd, kUnion, kAppend, kRemove, kUnset, kDelete };
/// The operation's /engage name ("$add").
std::string_view ProfileOpName(ProfileOp op);
/// The operation an /engage name ("$add") stands for; nullopt for any other text.
std::optional<ProfileOp> ProfileOpFromName(std::string_view name);

struct ProfileUpdate {
  std::string token;
  /// The profile's id: $distinct_id for /engage, $group_id for /groups.
  std::string distinct_id;
  /// /groups only: the group key ($group_key, e.g. "company"); empty for user profiles.
  std::string group_key;
  ProfileOp op = ProfileOp::kSet;
  /// The operation's argument: an object for $set/$set_once/$add/$union/$append/$remove, an array of names for
  /// $unset, ignored for $delete.
  boost::json::value argument;
  bool ignore_time = false;   // $ignore_time: do not touch $last_seen
  bool ignore_alias = false;  // $ignore_alias (with $delete)
  int64_t time_ms = 0;        // $time when given (ms), else the server time
  /// $ip when given ("0": do not geolocate). Never stored: the edge turns it (or, with ip=1, the request's
  /// address) into `country`.
  std::string ip;
  /// The ISO 3166-1 country the edge geolocated for this update (ProfileCountry), or "": a $set makes it the
  /// profile's $country_code, a $set_once when the profile has none, as Mixpanel's profile geolocation does.
  std::string country;
};

struct ParsedProfileUpdates {
  std::vector<ProfileUpdate> updates;
  std::vector<size_t> update_indexes;
  std::vector<RecordError> errors;
  size_t total_records = 0;
};

/// Parses an /engage payload (array, single object, or NDJSON), ≤ 2000 updates. Each record must carry
/// $token, $distinct_id and exactly one operation. Values are checked against the profile limits (a number
/// that does not fit a double, such as 1e400, a list or object over kMaxProfileValueBytes, more than
/// kMaxProfileProperties names): such an update is refused.
Result<ParsedProfileUpdates> ParseProfileUpdates(std::string_view payload, PayloadFormat format,
                                                 int64_t now_us);

/// Mixpanel's profile geolocation: the country of the update's own $ip ("0": none), else of `request_ip` (the
/// request's address when /engage has ip=1; empty: none). "" without a database. Neither address is stored.
std::string ProfileCountry(const CountryLookup* geoip, const ProfileUpdate& update,
                           std::string_view request_ip);

/// Parses a /groups payload: as ParseProfileUpdates, but each record carries $token, $group_key and $group_id
/// (a string or number, kept in ProfileUpdate::distinct_id) and one of Mixpanel's group operations: $set,
/// $set_once, $unset, $remove, $union, $delete. Group profiles get no $last_seen (ignore_time is always set).
Result<ParsedProfileUpdates> ParseGroupProfileUpdates(std::string_view payload, PayloadFormat format,
                                                      int64_t now_us);

/// Applies one update to a profile's property object (a tree from ParseProfileJson). Returns false when the
/// profile is to be deleted ($delete). Semantics: $set overwrites; $set_once only sets missing names; $add
/// adds numeric deltas (missing = 0, non-numeric values refused by the parser; integers stay integers while
/// they fit an int64, other sums are printed in the shortest form that reads back as the same double); $union
/// set-adds list items (hashing, so O(n + m)); $append appends one item per name; $remove removes every equal
/// item from lists; $unset removes names. Unless ignore_time, $last_seen is set to the update time (ISO-8601
/// UTC, as Mixpanel shows it). Fails, leaving `properties` unchanged, when a sum is not a finite double
/// (kInvalidArgument naming the property).
Result<bool> ApplyProfileUpdate(boost::json::object& properties, const ProfileUpdate& update);

/// An update of ApplyProfileUpdates that was not applied, and why.
struct ProfileRefusal {
  size_t update = 0;  // position in the `updates` span
  std::string field;  // e.g. "$add.score", "profile"
  std::string message;
  std::string reason;  // short stable label, e.g. "number_out_of_range", "profile_too_large"
};

struct ProfileEdit {
  bool changed = false;                // false: keep what is stored
  std::optional<std::string> profile;  // when changed: the new JSON text, nullopt = delete the profile
  std::vector<ProfileRefusal> refused;
};

/// Applies one profile's updates in order to its stored JSON text (nullopt = no profile yet), as /engage,
/// /groups and Cloud Import do. An update's `country` becomes the profile's $country_code (a $set overwrites
/// it, a $set_once sets it when absent; the operation's own $country_code wins). An update that cannot apply
/// is refused alone (the others still apply). When the result would break a profile limit (kMaxProfileBytes,
/// kMaxProfileProperties, kMaxProfileValueBytes) every update of the span is refused and the stored profile
/// is kept, as it is when the stored text cannot be read: nothing already stored is ever lost. The limits are
/// checked as each update applies (the refusal comes as soon as one is broken), and $union/$append/$remove of
/// one list cost only their own items across the span.
ProfileEdit ApplyProfileUpdates(const std::optional<std::string>& stored,
                                std::span<const ProfileUpdate* const> updates);

// ---- Profile JSON --------------------------------------------------------------------------------------------
// Profiles keep numbers as they arrived (19.90 stays 19.90, a 30-digit integer keeps every digit), as events
// do. Boost.JSON would turn them into doubles, so profile trees come from ParseProfileJson: an integer whose
// text is its int64's decimal form is an int64; any other number is a string value holding a tag byte and the
// number's text (a real string that starts with the tag byte gets a second one, so equal JSON stays equal
// values). Print such trees only with SerializeProfileJson, never with boost::json::serialize.

/// Parses one JSON text into a profile tree. Fails with "malformed JSON at byte N: …".
Result<boost::json::value> ParseProfileJson(std::string_view text);
/// Minified JSON text of a profile tree, numbers as they arrived.
std::string SerializeProfileJson(const boost::json::value& value);
/// True for a number of a profile tree (kept text or a plain int64/uint64/double).
bool IsProfileNumber(const boost::json::value& value);
/// The number's value as a double (±inf when its text overflows a double); nullopt when not a number.
std::optional<double> ProfileNumberValue(const boost::json::value& value);
/// The number's JSON text.
std::string ProfileNumberText(const boost::json::value& value);
/// The text of a string of a profile tree; nullopt when not a string.
std::optional<std::string_view> ProfileStringValue(const boost::json::value& value);
/// A profile-tree number from its JSON text (which must be a JSON number), or from a finite double (printed
/// as an integer when integral and below 1e21, else in the shortest form that reads back as the same double).
boost::json::value MakeProfileNumber(std::string_view text);
boost::json::value MakeProfileNumber(double value);

}  // namespace sluice::ingest
