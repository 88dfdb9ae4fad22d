// The `--gcs-*` flags of the CLI: which API parameter each one sets, in one table that `sluice pipeline`
// (a GCS destination, type=gcs) and `sluice import` (a GCS source, connector_type=gcsImport) both register,
// so the two commands spell and describe them alike.
//
//   for (const GcsParamFlag& g : GcsParamFlags()) {
//     if (g.for_import) cmd->add_option(std::string(g.flag), values[std::string(g.param)],
//     std::string(g.help));
//   }
#pragma once

#include <span>
#include <string_view>

namespace sluice::app {

struct GcsParamFlag {
  std::string_view flag;   // "--gcs-bucket"
  std::string_view param;  // "gcs_bucket": the pipeline parameter and the connector property
  std::string_view help;
  /// Whether a gcsImport connector takes it too (its properties are gcs_bucket, gcs_prefix, gcs_endpoint).
  bool for_import = false;
};

/// Every --gcs-* flag, in the order `--help` lists them.
std::span<const GcsParamFlag> GcsParamFlags();

}  // namespace sluice::app
