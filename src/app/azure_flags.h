// The `--azure-*` flags of the CLI (`sluice import` for an azureImport source, `sluice destination check
// --provider azure`): the table of flag → API parameter (the Azure pipeline's and connector's names), and the
// client secret, which is never a flag value (it would show in `ps`): read from --azure-client-secret-file
// FILE, else from the environment variable AZURE_CLIENT_SECRET.
//
//   AzureFlagValues azure;
//   AddAzureFlags(cmd, azure);
//   …
//   SLUICE_ASSIGN_OR_RETURN(storage_access::AzureLocation l, AzureLocationFromFlags(azure,
//   azure::SystemEnv()));
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <span>
#include <string>

#include "app/param_flags.h"
#include "azure/credentials.h"
#include "common/result.h"
#include "common/secret.h"
#include "storage_access/location.h"

namespace sluice::app {

/// Every --azure-* flag that sets a parameter, in the order `--help` lists them.
std::span<const ParamFlag> AzureParamFlags();

inline constexpr char kAzureClientSecretFileFlag[] = "--azure-client-secret-file";
inline constexpr char kAzureClientSecretEnv[] = "AZURE_CLIENT_SECRET";

struct AzureFlagValues {
  /// API parameter (storage_account, container_name, prefix, client_id, tenant_id, azure_endpoint) → value.
  std::map<std::string, std::string> params;
  std::string client_secret_file;

  /// True when any --azure-* flag was given (the user named an Azure container).
  bool any() const { return AnyParamSet(params) || !client_secret_file.empty(); }
  std::string Get(const std::string& param) const {
    auto it = params.find(param);
    return it == params.end() ? std::string() : it->second;
  }
};

/// Registers the table and --azure-client-secret-file on `cmd`.
void AddAzureFlags(CLI::App* cmd, AzureFlagValues& values);

/// The client secret: the content of --azure-client-secret-file (a trailing newline dropped), else
/// AZURE_CLIENT_SECRET from `env`. kInvalidArgument naming both ways when neither gives one, or the file when
/// it cannot be read (never the secret itself).
Result<Secret> ReadAzureClientSecret(const AzureFlagValues& values, const azure::EnvGetter& env);

/// The location the flags name: the required flags checked (each missing one named), the secret read. Not yet
/// validated (storage_access::Validate decides, with the role the caller needs).
Result<storage_access::AzureLocation> AzureLocationFromFlags(const AzureFlagValues& values,
                                                             const azure::EnvGetter& env);

}  // namespace sluice::app
