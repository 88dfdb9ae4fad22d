// Each command group registers its subcommands on the root CLI11 app. The callbacks set the process exit code
// through `exit_code` (0 = success).
#pragma once

#include <CLI/CLI.hpp>

namespace sluice::app {

/// `serve`: runs the server.
void RegisterServeCommand(CLI::App& app, int& exit_code);
/// `project create|list`, `events export`, `profiles list`: clients of the server's HTTP API.
void RegisterClientCommands(CLI::App& app, int& exit_code);

}  // namespace sluice::app
