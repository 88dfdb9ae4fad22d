// `sluice pipeline create|edit|list|status|timeline|pause|resume|cancel|sync`: a client of the running
// server's JSON Pipelines management API (/api/2.0/nessie/pipeline/*, docs/pipelines.md), authenticated with
// the admin token.
#pragma once

#include <CLI/CLI.hpp>

namespace sluice::app {

/// Adds the `pipeline` command group to `app`. Output is human-readable text, or the server's JSON answer
/// with
/// --json. A refused request prints "error: server answered HTTP <status>: <message>" and sets `exit_code`
/// to 1.
void RegisterPipelineCommands(CLI::App& app, int& exit_code);

}  // namespace sluice::app
