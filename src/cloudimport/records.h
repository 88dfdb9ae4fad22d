// Turning one line of a customer's file into the record /import or /engage would receive, without re-encoding
// any value: every JSON value is copied byte for byte as it arrived (no number is re-formatted, no precision
// is lost), only keys are added, renamed or dropped. Validation is NOT done here: the result goes through the
// same ingest::ParseEvents / ingest::ParseProfileUpdates as the HTTP endpoints.
//
// clang-format off
//   mixpanel_event  {"event":…,"properties":{…}}        as is; "$insert_id" added when absent (InsertIdDeriver)
//   remap_event     {"action":…,"ts":…,"user":…,"x":1}  → {"event":…,"properties":{"x":1,"time":…,
//                                                            "distinct_id":…,"$insert_id":…}}
//   mixpanel_people {"$distinct_id":…,"$set":{…}}        → "$token" set to the project's token
//   remap_people    {"uid":…,"plan":"pro"}               → {"$token":…,"$distinct_id":…,"$set":{"plan":"pro"}}
// clang-format on
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cloudimport/connector.h"

namespace sluice::cloudimport {

/// Calls `fn(key, value)` for every member of the top-level JSON object `text`: `key` is the key's text between
/// the quotes as written (escapes not decoded), `value` the exact text of the value. Returns false when `text`
/// is not a structurally well-formed object (the scan stops there; fn may have been called for earlier members).
/// Strings, nesting and scalars are delimited but not fully validated (ingest validates later).
bool ForEachMember(std::string_view text, const std::function<void(std::string_view key, std::string_view value)>& fn);

/// The decoded form of a raw key (`raw` as ForEachMember gives it). Keys without '\\' are returned as is.
std::string DecodeKey(std::string_view raw);

/// A deterministic $insert_id for line `line` of the object (`file_tag` from FileTag): ≤ 36 characters of
/// [0-9a-f-], so a re-import of the object produces the same ids and deduplicates. The ETag is deliberately not
/// part of it: the store's dedup key also holds the event name, distinct_id and time, so a different event on
/// the same line of a rewritten file never collides, while a file that grew by appending re-imports its old
/// lines as the same events instead of duplicating them.
std::string DerivedInsertId(std::string_view file_tag, uint64_t line);
/// 16 hex characters identifying the object key.
std::string FileTag(std::string_view key);

/// The $insert_ids of one file's lines that carry none, handed out in file order (every such line must be
/// passed to Next, those a resumed import skips included, for the counts of identical lines to hold).
///
/// kContent: 16 hex digits of the SHA-256 of the line's text (as read, trimmed), '-', and how many identical
/// lines of the file got an id before it (hex): a file rewritten with lines inserted, removed or reordered
/// gives every event the id it had, two identical lines stay two events, and a copy of the file under another
/// key deduplicates against it. The counts are kept for at most kMaxDistinctDerivedLines distinct lines (16
/// MB); later new lines get '-l' and their line number instead.
class InsertIdDeriver {
 public:
  InsertIdDeriver(InsertIdScheme scheme, std::string_view key);
  std::string Next(std::string_view text, uint64_t line);

 private:
  /// How many times the line with this hash was seen before; nullopt when the table is full.
  std::optional<uint32_t> Count(uint64_t hash48);
  void Grow();

  InsertIdScheme scheme_;
  std::string file_tag_;         // kLineNumber
  std::vector<uint64_t> slots_;  // kContent: open addressing, (48-bit hash << 16) | count; 0 = free
  size_t used_ = 0;
};
inline constexpr size_t kMaxDistinctDerivedLines = size_t{1} << 20;

/// Whether an event line of `spec`'s format gets a derived $insert_id: mixpanel_event lines whose last
/// "properties" object has no "$insert_id" member, or one that is null or ""; remap_event lines whose mapped
/// `$insert_id` source field is absent, null or "". (For a resumed import's skipped lines: the lines imported
/// go through the same rules as they are shaped and validated.)
bool NeedsDerivedInsertId(std::string_view line, const ConnectorSpec& spec);

/// Appends `line` to `out` with "$insert_id":"<id>" added as the last member of its top-level "properties"
/// object, in place of a "$insert_id" member the object has (null or "": no id). Returns false (appending
/// nothing) when the line has no "properties" object.
bool AppendWithInsertId(std::string_view line, std::string_view insert_id, std::string& out);

/// Builds the record for a remap format into `out` (appended). Returns false with `error` when the line is
/// not a JSON object or lacks a mapped source field; `error` names the source field and its target.
/// `derive_insert_id` is called when the line has no id of its own (as NeedsDerivedInsertId says).
bool AppendRemappedEvent(std::string_view line, const ConnectorSpec& spec,
                         const std::function<std::string()>& derive_insert_id, std::string& out,
                         std::string& error);
bool AppendRemappedProfile(std::string_view line, const ConnectorSpec& spec, std::string_view token,
                           std::string& out, std::string& error);
/// mixpanel_people: the update with "$token" replaced by (or set to) `token`.
bool AppendProfileWithToken(std::string_view line, std::string_view token, std::string& out, std::string& error);

}  // namespace sluice::cloudimport
