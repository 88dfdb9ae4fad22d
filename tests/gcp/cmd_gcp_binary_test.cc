// `sluice gcp roles` through the real binary (build/sluice): the command is registered, prints the bindings
// and its --help names the flags. Integration label: it needs the binary built.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "support/test_paths.h"

namespace sluice::app {
namespace {

using ::testing::HasSubstr;

std::string RunShell(const std::string& cmd, int* rc) {
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  *rc = ::pclose(pipe);
  return out;
}

TEST(CmdGcpTest, TheRealBinaryPrintsTheRoles) {
  std::string cmd = fmt::format(
      "env -u GOOGLE_APPLICATION_CREDENTIALS '{}/sluice' gcp roles --bucket acme-events "
      "--service-account sluice@acme.iam.gserviceaccount.com 2>&1",
      testing::BinaryDir());
  int rc = -1;
  std::string out = RunShell(cmd, &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("--member=serviceAccount:sluice@acme.iam.gserviceaccount.com "
                             "--role=roles/storage.objectViewer"));
  std::string help_cmd = fmt::format("'{}/sluice' gcp roles --help 2>&1", testing::BinaryDir());
  std::string help = RunShell(help_cmd, &rc);
  EXPECT_EQ(rc, 0) << help;
  EXPECT_THAT(help, HasSubstr("--service-account"));
  std::string bad =
      RunShell(fmt::format("'{}/sluice' gcp roles --bucket Bad_Bucket 2>&1", testing::BinaryDir()), &rc);
  EXPECT_NE(rc, 0);
  EXPECT_THAT(bad, HasSubstr("is not a valid GCS bucket name"));
}

}  // namespace
}  // namespace sluice::app
