// Flags that each set one API parameter (a pipeline parameter or a connector property), registered from a
// table so every command that takes them spells and describes them alike: the --gcs-* table (gcs_flags.h) and
// the
// --azure-* table (azure_flags.h) share the row type and the registration.
//
//   std::map<std::string, std::string> gcs;   // parameter → value
//   AddParamFlags(cmd, GcsParamFlags(), gcs, /*import_only=*/true);
//   if (AnyParamSet(gcs)) …
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <span>
#include <string>

#include "app/gcs_flags.h"

namespace sluice::app {

/// One row: the flag, the parameter it sets, its help, and whether an import source takes it.
using ParamFlag = GcsParamFlag;

/// Registers each row of `flags` (only the rows with for_import when `import_only`) as an option that writes
/// `values[param]`.
void AddParamFlags(CLI::App* cmd, std::span<const ParamFlag> flags,
                   std::map<std::string, std::string>& values, bool import_only);

/// True when any value is non-empty (the user named that provider).
bool AnyParamSet(const std::map<std::string, std::string>& values);

}  // namespace sluice::app
