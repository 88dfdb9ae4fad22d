#include "app/param_flags.h"

#include <algorithm>

namespace sluice::app {

void AddParamFlags(CLI::App* cmd, std::span<const ParamFlag> flags,
                   std::map<std::string, std::string>& values, bool import_only) {
  for (const ParamFlag& f : flags) {
    if (import_only && !f.for_import) continue;
    cmd->add_option(std::string(f.flag), values[std::string(f.param)], std::string(f.help));
  }
}

bool AnyParamSet(const std::map<std::string, std::string>& values) {
  return std::any_of(values.begin(), values.end(), [](const auto& kv) { return !kv.second.empty(); });
}

}  // namespace sluice::app
