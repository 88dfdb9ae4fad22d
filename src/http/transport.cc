// Transport-independent helpers of http/transport.h.
#include "http/transport.h"

#include <cctype>

namespace sluice::http {

std::string_view OutboundResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() != name.size()) continue;
    bool equal = true;
    for (size_t i = 0; i < key.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(key[i])) != std::tolower(static_cast<unsigned char>(name[i]))) {
        equal = false;
        break;
      }
    }
    if (equal) return value;
  }
  return {};
}

}  // namespace sluice::http
