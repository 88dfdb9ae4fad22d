// Fuzzes ParseEvents over both payload formats and both endpoints. The first input byte picks the mode; the rest
// is the payload. Beyond "no crash, no sanitizer report" it checks the contract's invariants: every record is
// either an event or an error, every stored properties object is valid minified JSON without promoted keys, and
// every accepted event obeys the SPEC §3 rules.
#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ingest/ingest.h"

namespace {

using namespace sluice::ingest;

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
  constexpr int64_t kNowUs = 1'714'564'800'000'000;
  ParseOptions options{.endpoint = (mode & 1) ? Endpoint::kTrack : Endpoint::kImport,
                       .format = (mode & 2) ? PayloadFormat::kNdjson : PayloadFormat::kJson,
                       .now_us = kNowUs};
  if (mode & 4) options.client_ip = "2001:db8::1";

  auto result = ParseEvents(payload, options);
  if (!result.ok()) {
    Check(!result.error().message.empty());
    return 0;
  }
  const ParsedEvents& p = *result;
  Check(p.events.size() + p.errors.size() == p.total_records);
  Check(p.events.size() == p.event_indexes.size() && p.events.size() == p.tokens.size());
  Check(p.total_records <= kMaxEventsPerBatch);
  for (const RecordError& e : p.errors) {
    Check(e.index < p.total_records && !e.reason.empty() && !e.message.empty());
  }
  for (const sluice::Event& e : p.events) {
    Check(!e.name.empty());
    Check(e.time_us >= kMinTimeUs && e.time_us <= kNowUs + kMaxFutureUs);
    if (options.endpoint == Endpoint::kTrack) Check(e.time_us >= kNowUs - kTrackWindowUs);
    if (options.endpoint == Endpoint::kImport) Check(!e.distinct_id.empty());
    Check(!e.insert_id.empty() && e.insert_id.size() <= kMaxInsertIdLength);
    Check(!IsPlaceholderId(e.insert_id) && (e.distinct_id.empty() || !IsPlaceholderId(e.distinct_id)));
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(e.properties, ec);
    Check(!ec && v.is_object());
    for (std::string_view promoted : {"time", "distinct_id", "$insert_id", "$device_id", "$user_id", "token"}) {
      Check(!v.as_object().contains(promoted));
    }
    Check(v.as_object().size() < kMaxProperties + 1);
    if (!options.client_ip.empty()) Check(v.as_object().contains("ip"));
    // Minified: boost's serializer never emits whitespace outside strings, and neither may we.
    bool in_string = false;
    for (size_t i = 0; i < e.properties.size(); ++i) {
      const char c = e.properties[i];
      if (in_string) {
        if (c == '\\') ++i;
        else if (c == '"') in_string = false;
      } else {
        Check(c != ' ' && c != '\n' && c != '\t' && c != '\r');
        if (c == '"') in_string = true;
      }
    }
  }
  return 0;
}
