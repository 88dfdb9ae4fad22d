#include "app/cmd_azure.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <iostream>
#include <string>

#include "azure/credentials.h"
#include "objstore/azure/blob_request.h"

namespace sluice::app {
namespace {

constexpr std::string_view kClientIdPlaceholder = "<SLUICE_CLIENT_ID>";
/// The built-in role a purpose needs, and its ID (the same in every tenant) for scripts that prefer it.
struct Role {
  std::string_view name;
  std::string_view id;
  std::string_view does;
};
constexpr Role kExportRole{"Storage Blob Data Contributor", "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
                           "JSON Pipelines write, read back, list and delete blobs"};
constexpr Role kImportRole{"Storage Blob Data Reader", "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
                           "Cloud Import lists and reads blobs, nothing more"};

struct RolesFlags {
  std::string account;
  std::string container;
  std::string client_id;
  std::string purpose = "export";
  bool json = false;
};

std::string ScopeCommand(const RolesFlags& f) {
  return fmt::format(
      "scope=\"$(az storage account show --name {} --query id --output tsv)/blobServices/default/containers/{}\"",
      f.account, f.container);
}

std::string AssignCommand(std::string_view client_id, const Role& role) {
  return fmt::format("az role assignment create --assignee {} \\\n    --role \"{}\" --scope \"$scope\"", client_id,
                     role.name);
}

void RunRoles(RolesFlags flags) {
  if (auto s = objstore::azure::ValidateAccountName(flags.account); !s.ok()) {
    throw CLI::ValidationError("--storage-account", s.error().message);
  }
  if (auto s = objstore::azure::ValidateContainerName(flags.container); !s.ok()) {
    throw CLI::ValidationError("--container", s.error().message);
  }
  std::string source = "--client-id";
  if (flags.client_id.empty()) {
    if (auto id = azure::SystemEnv()("AZURE_CLIENT_ID")) {
      flags.client_id = *id;
      source = "AZURE_CLIENT_ID";
    }
  }
  if (flags.client_id.empty()) {
    flags.client_id = std::string(kClientIdPlaceholder);
    std::cerr << "No service principal known: pass --client-id (the Application (client) ID Sluice signs in "
                 "with) or set AZURE_CLIENT_ID; replace "
              << kClientIdPlaceholder << " below.\n";
  } else {
    azure::ServicePrincipal probe{"contoso.onmicrosoft.com", flags.client_id, Secret("x")};
    if (auto s = azure::ValidateServicePrincipal(probe); !s.ok()) throw CLI::ValidationError(source, s.error().message);
  }

  const Role& role = flags.purpose == "import" ? kImportRole : kExportRole;
  if (flags.json) {
    std::cout << boost::json::serialize(boost::json::object{
                     {"storage_account", flags.account},
                     {"container", flags.container},
                     {"client_id", flags.client_id},
                     {"purpose", flags.purpose},
                     {"role", role.name},
                     {"role_id", role.id},
                     {"scope", fmt::format("/subscriptions/<SUBSCRIPTION_ID>/resourceGroups/<RESOURCE_GROUP>/"
                                           "providers/Microsoft.Storage/storageAccounts/{}/blobServices/default/"
                                           "containers/{}",
                                           flags.account, flags.container)},
                     {"az", ScopeCommand(flags) + "\n" + AssignCommand(flags.client_id, role)}})
              << "\n";
    return;
  }
  std::cout << fmt::format("# Role assignment for Sluice's service principal on container {} of storage account {}\n",
                           flags.container, flags.account)
            << fmt::format("# Service principal (client ID): {}{}\n", flags.client_id,
                           flags.client_id == kClientIdPlaceholder ? "" : fmt::format(" (from {})", source))
            << fmt::format("# {} ({}): {}.\n", role.name, role.id, role.does)
            << "# Scoped to the container: nothing else in the account.\n\n"
            << "# With the Azure CLI (az login first, as someone allowed to assign roles: Owner or User Access "
               "Administrator)\n"
            << ScopeCommand(flags) << "\n"
            << AssignCommand(flags.client_id, role) << "\n\n"
            << "# Check it:\n"
            << fmt::format("az role assignment list --assignee {} --scope \"$scope\" --output table\n\n",
                           flags.client_id)
            << "# No service principal yet? Create one (note appId, password and tenant: Sluice's client ID, client "
               "secret and tenant ID):\n"
            << "az ad sp create-for-rbac --name sluice-export\n\n"
            << "## Or in the Azure portal\n"
            << fmt::format("1. Storage accounts > {} > Data storage > Containers > {}.\n", flags.account,
                           flags.container)
            << "2. Access Control (IAM) > Add > Add role assignment.\n"
            << fmt::format("3. Role: \"{}\" > Next.\n", role.name)
            << fmt::format("4. Assign access to: User, group, or service principal > Select members > search the "
                           "app whose Application (client) ID is {}.\n",
                           flags.client_id)
            << "5. Review + assign. Role assignments can take a few minutes to apply.\n";
}

}  // namespace

void RegisterAzureCommands(CLI::App& app) {
  CLI::App* azure = app.add_subcommand("azure", "Helpers for giving Sluice access to an Azure storage container");
  azure->require_subcommand(1);
  auto flags = std::make_shared<RolesFlags>();
  CLI::App* roles = azure->add_subcommand(
      "roles",
      "Print the role assignment (az commands and portal steps) that gives Sluice's service principal what it "
      "needs on one container: Storage Blob Data Contributor for JSON Pipelines (--purpose export), Storage Blob "
      "Data Reader for Cloud Import (--purpose import)");
  roles->add_option("--storage-account", flags->account, "The storage account name")->required();
  roles->add_option("--container", flags->container, "The container name")->required();
  roles->add_option("--client-id", flags->client_id,
                    "Sluice's Application (client) ID (default: $AZURE_CLIENT_ID)");
  roles->add_option("--purpose", flags->purpose, "export (JSON Pipelines, the default) or import (Cloud Import)")
      ->check(CLI::IsMember({"export", "import"}))
      ->capture_default_str();
  roles->add_flag("--json", flags->json, "Print the assignment as JSON");
  roles->callback([flags] { RunRoles(*flags); });
}

}  // namespace sluice::app
