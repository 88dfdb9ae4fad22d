// `sluice azure …` commands: helpers for setting up a customer's Azure storage container.
//
//   sluice azure roles --storage-account A --container C [--client-id ID] [--json]
//
// prints the role assignment that gives Sluice's service principal Storage Blob Data Contributor scoped to the
// container (read, write, list and delete blobs; nothing on the rest of the account) as `az` commands and portal
// steps (docs/azure.md). The client ID comes from --client-id, else AZURE_CLIENT_ID, else a placeholder.
#pragma once

#include <CLI/CLI.hpp>

namespace sluice::app {

/// Adds the `azure` subcommand tree to `app`. The callbacks print to stdout and throw CLI errors on failure.
void RegisterAzureCommands(CLI::App& app);

}  // namespace sluice::app
