#include "app/azure_flags.h"

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sluice::app {

std::span<const ParamFlag> AzureParamFlags() {
  static constexpr std::array<ParamFlag, 6> kFlags{{
      {"--azure-storage-account", "storage_account",
       "Azure storage account name (the NAME of https://NAME.blob.core.windows.net)", true},
      {"--azure-container", "container_name", "Azure blob container name", true},
      {"--azure-prefix", "prefix", "Blob name prefix inside the Azure container (optional)", true},
      {"--azure-client-id", "client_id",
       "Application (client) ID of the customer's Entra ID service principal", true},
      {"--azure-tenant-id", "tenant_id", "Directory (tenant) ID of the service principal", true},
      {"--azure-endpoint", "azure_endpoint",
       "Azure blob endpoint origin the server allows (--allow-azure-endpoint), addressed path-style as "
       "ORIGIN/ACCOUNT (default: https://ACCOUNT.blob.core.windows.net)",
       true},
  }};
  return kFlags;
}

void AddAzureFlags(CLI::App* cmd, AzureFlagValues& values) {
  AddParamFlags(cmd, AzureParamFlags(), values.params, /*import_only=*/true);
  cmd->add_option(kAzureClientSecretFileFlag, values.client_secret_file,
                  fmt::format("File holding the service principal's client secret (default: the environment "
                              "variable {}; never a flag value, which `ps` would show)",
                              kAzureClientSecretEnv));
}

Result<Secret> ReadAzureClientSecret(const AzureFlagValues& values, const azure::EnvGetter& env) {
  if (!values.client_secret_file.empty()) {
    std::ifstream in(values.client_secret_file, std::ios::binary);
    if (!in) {
      return InvalidArgument(fmt::format("{} {}: cannot read the file ({})", kAzureClientSecretFileFlag,
                                         values.client_secret_file, std::strerror(errno)));
    }
    std::ostringstream content;
    content << in.rdbuf();
    std::string secret = content.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (secret.empty()) {
      return InvalidArgument(fmt::format("{} {} is empty: write the client secret's Value into it",
                                         kAzureClientSecretFileFlag, values.client_secret_file));
    }
    return Secret(std::move(secret));
  }
  if (auto v = env ? env(kAzureClientSecretEnv) : std::nullopt; v && !v->empty()) return Secret(*v);
  return InvalidArgument(
      fmt::format("the service principal's client secret is required: {} FILE, or the environment variable "
                  "{} (not a flag "
                  "value, which `ps` would show)",
                  kAzureClientSecretFileFlag, kAzureClientSecretEnv));
}

Result<storage_access::AzureLocation> AzureLocationFromFlags(const AzureFlagValues& values,
                                                             const azure::EnvGetter& env) {
  for (const ParamFlag& f : AzureParamFlags()) {
    const std::string param(f.param);
    if (param == "prefix" || param == "azure_endpoint") continue;  // optional
    if (values.Get(param).empty()) {
      return InvalidArgument(fmt::format("{} is required for an Azure container ({})", f.flag, f.help));
    }
  }
  SLUICE_ASSIGN_OR_RETURN(Secret secret, ReadAzureClientSecret(values, env));
  std::string prefix = values.Get("prefix");
  while (prefix.starts_with('/')) prefix.erase(0, 1);
  std::string endpoint = values.Get("azure_endpoint");
  while (endpoint.ends_with('/')) endpoint.pop_back();
  return storage_access::AzureLocation{.storage_account = values.Get("storage_account"),
                                       .container = values.Get("container_name"),
                                       .prefix = std::move(prefix),
                                       .tenant_id = values.Get("tenant_id"),
                                       .client_id = values.Get("client_id"),
                                       .client_secret = std::move(secret),
                                       .endpoint = std::move(endpoint),
                                       .authority_host = ""};
}

}  // namespace sluice::app
