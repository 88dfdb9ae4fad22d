// The event model shared by ingest (which produces it), the store (which persists it) and the exporters
// (which encode it). Plain data; no behaviour.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice {

/// One validated, normalised event.
///
/// Mixpanel's dedup key is (name, distinct_id, time to the second, insert_id). `properties` holds every
/// property that arrived, as a minified JSON object whose values are byte-for-byte the JSON text that was
/// sent (no number is re-formatted, so no precision is lost), except the ones promoted to fields here:
/// `time`, `distinct_id`, `$insert_id`, `$device_id`, `$user_id` and the project `token`.
struct Event {
  std::string name;
  /// Microseconds since the Unix epoch, UTC (seconds and milliseconds inputs both normalise to this).
  int64_t time_us = 0;
  std::string distinct_id;
  std::string device_id;  // "$device_id", empty when absent
  std::string user_id;    // "$user_id", empty when absent
  std::string insert_id;
  std::string properties = "{}";
};

/// Takes validated events one at a time, as their producer (the /import parser) accepts them, so each event
/// is written onward while its bytes are still in the CPU's cache. `properties` is the event's properties
/// (Event::properties is then left empty by the producer): valid for the duration of the call only.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void Add(const Event& event, std::string_view properties) = 0;
};

/// Simplified ID Merge: the first event carrying both ids maps the device to the user.
struct IdentityLink {
  std::string device_id;
  std::string user_id;
};

}  // namespace sluice
