// `sluice azure roles`: the az commands and portal steps, JSON, and refused names.
#include "app/cmd_azure.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <iostream>
#include <sstream>

#include "support/cli_capture.h"

namespace sluice::app {
namespace {

using ::testing::HasSubstr;

std::string RunCli(const std::vector<std::string>& args) {
  return sluice::testing::CaptureCli(&RegisterAzureCommands, args);
}

constexpr const char* kClient = "11111111-2222-3333-4444-555555555555";

TEST(CmdAzureTest, RolesPrintsTheContainerScopedAssignment) {
  std::string out = RunCli({"azure", "roles", "--storage-account", "acmeevents", "--container", "exports",
                            "--client-id", kClient});
  EXPECT_THAT(out, HasSubstr("scope=\"$(az storage account show --name acmeevents --query id --output tsv)"
                             "/blobServices/default/containers/exports\""));
  EXPECT_THAT(out, HasSubstr(std::string("az role assignment create --assignee ") + kClient +
                             " \\\n    --role \"Storage Blob Data Contributor\" --scope \"$scope\""));
  EXPECT_THAT(out, HasSubstr("Access Control (IAM) > Add > Add role assignment"));
  EXPECT_THAT(out, HasSubstr("Storage accounts > acmeevents > Data storage > Containers > exports"));
}

TEST(CmdAzureTest, RolesJson) {
  std::string out = RunCli({"azure", "roles", "--storage-account", "acmeevents", "--container", "exports",
                            "--client-id", kClient, "--json"});
  auto v = boost::json::parse(out).as_object();
  EXPECT_EQ(v["role"].as_string(), "Storage Blob Data Contributor");
  EXPECT_EQ(v["client_id"].as_string(), kClient);
  EXPECT_THAT(std::string(v["scope"].as_string()),
              HasSubstr("/storageAccounts/acmeevents/blobServices/default/containers/exports"));
}

// Cloud Import only reads: --purpose import prints the least role that does, Storage Blob Data Reader.
TEST(CmdAzureTest, RolesForImportIsTheReaderRole) {
  std::string out = RunCli({"azure", "roles", "--storage-account", "acmeevents", "--container", "history",
                            "--client-id", kClient, "--purpose", "import"});
  EXPECT_THAT(out, HasSubstr(std::string("az role assignment create --assignee ") + kClient +
                             " \\\n    --role \"Storage Blob Data Reader\" --scope \"$scope\""));
  EXPECT_THAT(out, HasSubstr("2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("Contributor")));
  auto v = boost::json::parse(RunCli({"azure", "roles", "--storage-account", "acmeevents", "--container", "history",
                                      "--client-id", kClient, "--purpose", "import", "--json"}))
               .as_object();
  EXPECT_EQ(v["role"].as_string(), "Storage Blob Data Reader");
  EXPECT_EQ(v["purpose"].as_string(), "import");
  EXPECT_THROW(RunCli({"azure", "roles", "--storage-account", "acmeevents", "--container", "history", "--purpose",
                       "admin"}),
               CLI::ValidationError);
}

TEST(CmdAzureTest, RefusesNamesThatAreNotAzureNames) {
  EXPECT_THROW(RunCli({"azure", "roles", "--storage-account", "acme;rm -rf", "--container", "exports"}),
               CLI::ValidationError);
  EXPECT_THROW(RunCli({"azure", "roles", "--storage-account", "acme", "--container", "$(id)"}), CLI::ValidationError);
  EXPECT_THROW(RunCli({"azure", "roles", "--storage-account", "acme", "--container", "exports", "--client-id",
                       "x; curl evil"}),
               CLI::ValidationError);
}

}  // namespace
}  // namespace sluice::app
