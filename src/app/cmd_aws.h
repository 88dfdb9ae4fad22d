// `sluice aws …` commands: helpers for setting up a customer's AWS account.
//
//   sluice aws policies --bucket B [--kms-key-arn K] [--external-id E] [--principal ARN] [--import] [--json]
//
// prints the data policy, the KMS key policy (with --kms-key-arn) and the trust policy to paste into IAM
// (docs/security.md). The principal defaults to Sluice's own identity (sts:GetCallerIdentity through the default
// credential chain); the external ID defaults to a placeholder for the project token.
#pragma once

#include <CLI/CLI.hpp>

namespace sluice::app {

/// Adds the `aws` subcommand tree to `app`. The callbacks print to stdout and throw CLI::RuntimeError on failure.
void RegisterAwsCommands(CLI::App& app);

}  // namespace sluice::app
