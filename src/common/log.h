// Logging set-up. Modules log through spdlog directly; this only configures the sink and level.
// Never log a Secret's revealed value, an Authorization header, a token or an API secret.
#pragma once

#include <string_view>

namespace sluice {

/// level: trace|debug|info|warn|error|off. Logs go to stderr with UTC timestamps.
void InitLogging(std::string_view level);

}  // namespace sluice
