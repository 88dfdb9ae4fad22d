// sluice: parse flags, run the chosen command. Nothing else lives here.
#include <CLI/CLI.hpp>

#include "app/cmd_aws.h"
#include "app/cmd_azure.h"
#include "app/cmd_destination.h"
#include "app/cmd_gcp.h"
#include "app/cmd_import.h"
#include "app/cmd_pipeline.h"
#include "app/commands.h"
#include "common/log.h"

int main(int argc, char** argv) {
  // Logs go to stderr in every command, so stdout carries only the command's output (`--json | jq` works);
  // spdlog's default logger would write to stdout.
  sluice::InitLogging("info");
  CLI::App app{"Sluice: Mixpanel-compatible event ingestion, JSON Pipelines to your own S3 bucket, and Cloud "
               "Import.\nRun `sluice serve` to start the server; every other command is a client of it."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "sluice 0.1.0");
  int exit_code = 0;
  sluice::app::RegisterServeCommand(app, exit_code);
  sluice::app::RegisterClientCommands(app, exit_code);
  sluice::app::RegisterAwsCommands(app);
  sluice::app::RegisterDestinationCommands(app);
  sluice::app::RegisterGcpCommands(app);
  sluice::app::RegisterAzureCommands(app);
  sluice::app::RegisterImportCommands(app, exit_code);
  sluice::app::RegisterPipelineCommands(app, exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
