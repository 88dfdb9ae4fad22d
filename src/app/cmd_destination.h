// `sluice destination check`: runs the destination check (storage_access/destination_check.h) from the command line
// with Sluice's own AWS identity (default credential chain) or Google service account, or the customer's Azure
// service principal, before a pipeline (or, --purpose import, an Azure import connector) is created.
#pragma once

#include <CLI/CLI.hpp>

namespace sluice::app {

/// Adds `destination check --bucket B --region R --role ARN --external-id E [--prefix P]
/// [--encryption none|aes|kms] [--kms-key-id K] [--endpoint URL] [--sts-endpoint URL] [--json]` (S3) and
/// `destination check --provider gcs --bucket B [--prefix P] [--kms-key-name K] [--endpoint URL]
/// [--gcp-credentials KEY.json] [--json]` and `destination check --provider azure --azure-storage-account A
/// --azure-container C --azure-client-id ID --azure-tenant-id T [--azure-prefix P] [--azure-endpoint URL]
/// [--azure-client-secret-file FILE] [--purpose export|import] [--ca-bundle PEM] [--json]` (the secret from the
/// file or AZURE_CLIENT_SECRET) to `app`.
/// Prints the report (text or JSON) to stdout; exits 0 only when every step passed (CLI::RuntimeError(1)
/// otherwise, 2 for invalid flags).
void RegisterDestinationCommands(CLI::App& app);

}  // namespace sluice::app
