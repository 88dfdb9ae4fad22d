// `sluice gcp roles`: parsing and output in process and the email from the key file (the real binary:
// cmd_gcp_binary_test.cc).
#include "app/cmd_gcp.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "support/cli_capture.h"
#include "support/gcs_server.h"

namespace sluice::app {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string RunCli(const std::vector<std::string>& args) {
  return sluice::testing::CaptureCli(&RegisterGcpCommands, args);
}

TEST(CmdGcpTest, RolesPrintsGcloudCommandsAndConsoleSteps) {
  std::string out = RunCli({"gcp", "roles", "--bucket", "acme-events", "--service-account",
                            "sluice@acme.iam.gserviceaccount.com"});
  EXPECT_THAT(out, HasSubstr("gcloud storage buckets add-iam-policy-binding gs://acme-events \\\n"
                             "    --member=serviceAccount:sluice@acme.iam.gserviceaccount.com "
                             "--role=roles/storage.objectAdmin"));
  EXPECT_THAT(out, HasSubstr("--role=roles/storage.objectCreator"));
  EXPECT_THAT(out, HasSubstr("--role=roles/storage.objectViewer"));
  EXPECT_THAT(out, HasSubstr("## JSON Pipelines (export to the bucket)"));
  EXPECT_THAT(out, HasSubstr("## Cloud Import (import from the bucket)"));
  EXPECT_THAT(out, HasSubstr("https://console.cloud.google.com/storage/browser/acme-events;tab=permissions"));
  EXPECT_THAT(out, HasSubstr("New principals: sluice@acme.iam.gserviceaccount.com"));
  // Export needs delete: Admin is listed under export, Creator/Viewer under import.
  EXPECT_LT(out.find("objectAdmin"), out.find("## Cloud Import"));
  EXPECT_GT(out.find("objectCreator"), out.find("## Cloud Import"));
}

TEST(CmdGcpTest, RolesJson) {
  std::string out = RunCli({"gcp", "roles", "--bucket", "acme-events", "--service-account",
                            "s@p.iam.gserviceaccount.com", "--json"});
  auto v = boost::json::parse(out);
  EXPECT_EQ(v.at("bucket"), "acme-events");
  const auto& b = v.at("bindings").as_array();
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].at("use"), "export");
  EXPECT_EQ(b[0].at("role"), "roles/storage.objectAdmin");
  EXPECT_EQ(b[1].at("role"), "roles/storage.objectCreator");
  EXPECT_EQ(b[2].at("role"), "roles/storage.objectViewer");
  EXPECT_EQ(b[2].at("member"), "serviceAccount:s@p.iam.gserviceaccount.com");
}

TEST(CmdGcpTest, EmailComesFromTheKeyFile) {
  auto sa = testing::MakeTestServiceAccount("from-key@proj.iam.gserviceaccount.com", "k");
  ASSERT_TRUE(sa.ok());
  std::string path = fmt::format("/tmp/sluice-cmd-gcp-{}.json", ::getpid());
  std::ofstream(path) << testing::ServiceAccountKeyJson(*sa, "https://oauth2.googleapis.com/token");
  std::string out = RunCli({"gcp", "roles", "--bucket", "acme-events", "--gcp-credentials", path});
  EXPECT_THAT(out, HasSubstr("--member=serviceAccount:from-key@proj.iam.gserviceaccount.com"));
  EXPECT_THAT(out, HasSubstr("(from key file " + path + ")"));
  EXPECT_THAT(out, Not(HasSubstr("PRIVATE KEY")));
  ::setenv("GOOGLE_APPLICATION_CREDENTIALS", path.c_str(), 1);
  out = RunCli({"gcp", "roles", "--bucket", "acme-events"});
  ::unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
  ::unlink(path.c_str());
  EXPECT_THAT(out, HasSubstr("--member=serviceAccount:from-key@proj.iam.gserviceaccount.com"));
}

TEST(CmdGcpTest, BadInputFailsClearly) {
  EXPECT_THROW(RunCli({"gcp", "roles", "--bucket", "gs://Bad_Bucket", "--service-account", "a@b"}),
               CLI::ValidationError);
  EXPECT_THROW(RunCli({"gcp", "roles", "--service-account", "a@b"}), CLI::RequiredError);
  EXPECT_THROW(RunCli({"gcp", "roles", "--bucket", "ok-bucket", "--service-account", "not-an-email"}),
               CLI::ValidationError);
  try {
    RunCli({"gcp", "roles", "--bucket", "ok-bucket", "--gcp-credentials", "/nonexistent/key.json"});
    FAIL() << "expected an error";
  } catch (const CLI::RuntimeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/key.json"));
  }
  // Without any identity: a placeholder, and the output still lists every binding.
  ::unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
  std::string out = RunCli({"gcp", "roles", "--bucket", "ok-bucket"});
  EXPECT_THAT(out, HasSubstr("--member=serviceAccount:<SLUICE_SERVICE_ACCOUNT_EMAIL>"));
}

}  // namespace
}  // namespace sluice::app
