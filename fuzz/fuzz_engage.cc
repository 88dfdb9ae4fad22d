// Fuzzes ParseProfileUpdates (both formats; the first byte picks) and applies every parsed update in order to
// one profile with ApplyProfileUpdates, as the /engage handler does: the result must be JSON that parses back
// to the same text (numbers kept as they arrived).
#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "ingest/ingest.h"

using namespace sluice::ingest;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
  const PayloadFormat format = (data[0] & 1) ? PayloadFormat::kNdjson : PayloadFormat::kJson;
  auto result = ParseProfileUpdates(payload, format, 1'714'564'800'000'000);
  if (!result.ok()) return 0;
  if (result->updates.size() + result->errors.size() != result->total_records) std::abort();
  std::vector<const ProfileUpdate*> updates;
  for (const ProfileUpdate& u : result->updates) {
    if (u.token.empty() || u.distinct_id.empty()) std::abort();
    updates.push_back(&u);
  }
  ProfileEdit edit = ApplyProfileUpdates(std::nullopt, updates);
  if (edit.profile) {
    auto back = ParseProfileJson(*edit.profile);
    if (!back.ok() || SerializeProfileJson(*back) != *edit.profile) std::abort();
  }
  return 0;
}
