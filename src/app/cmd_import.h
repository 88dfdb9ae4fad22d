// `sluice import create|list|history|delete|run`: Cloud Import connectors (S3, GCS or Azure) from the command line. Every command is
// a client of the running server's connectors API (the server owns the store), authenticated with the admin
// token. `import run` is a one-off migration: it creates a connector, follows its first run with a progress bar
// (plain progress lines when stderr is not a terminal), prints the run's counters and deletes the connector
// again (the imported data stays; --keep leaves the connector to pick up new files every --frequency minutes).
#pragma once

#include <CLI/CLI.hpp>

namespace sluice::app {

void RegisterImportCommands(CLI::App& app, int& exit_code);

}  // namespace sluice::app
