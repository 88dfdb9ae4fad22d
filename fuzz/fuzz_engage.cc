// Fuzzes ParseProfileUpdates (both formats; the first byte picks) and applies every parsed update in order to
// one profile, as the /engage handler does.
#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ingest/ingest.h"

using namespace sluice::ingest;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
  const PayloadFormat format = (data[0] & 1) ? PayloadFormat::kNdjson : PayloadFormat::kJson;
  auto result = ParseProfileUpdates(payload, format, 1'714'564'800'000'000);
  if (!result.ok()) return 0;
  if (result->updates.size() + result->errors.size() != result->total_records) std::abort();
  boost::json::object profile;
  for (const ProfileUpdate& u : result->updates) {
    if (u.token.empty() || u.distinct_id.empty()) std::abort();
    if (!ApplyProfileUpdate(profile, u)) profile.clear();
  }
  (void)boost::json::serialize(profile);
  return 0;
}
