// `sluice gcp …` commands: helpers for setting up a customer's Google Cloud Storage bucket.
//
//   sluice gcp roles --bucket B [--service-account EMAIL] [--gcp-credentials KEY.json] [--json]
//
// prints the IAM bindings to give Sluice's service account on gs://B — Storage Object Admin for JSON
// Pipelines (export writes, reads back, lists and deletes), Storage Object Creator + Storage Object Viewer
// for Cloud Import (the roles Mixpanel's GCS guide names) — as `gcloud storage buckets
// add-iam-policy-binding` commands and console steps (docs/gcs.md). The email comes from --service-account,
// else the key file (--gcp-credentials or GOOGLE_APPLICATION_CREDENTIALS), else a placeholder.
#pragma once

#include <CLI/CLI.hpp>

namespace sluice::app {

/// Adds the `gcp` subcommand tree to `app`. The callbacks print to stdout and throw CLI::RuntimeError on
/// failure.
void RegisterGcpCommands(CLI::App& app);

}  // namespace sluice::app
