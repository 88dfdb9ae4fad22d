// Tests of the moto harness itself: start, setup, auth mode, reset, stop by PID.
#include "support/moto_server.h"

#include <signal.h>

#include <gtest/gtest.h>

#include "support/loopback_http.h"

namespace sluice::testing {
namespace {

TEST(MotoServerTest, StartsSetsUpEnforcesAuthAndStops) {
  auto moto = MotoServer::Start();
  ASSERT_TRUE(moto.ok()) << moto.error().ToString();
  pid_t pid = (*moto)->pid();
  ASSERT_GT(pid, 0);

  auto env = (*moto)->RunSetup();
  ASSERT_TRUE(env.ok()) << env.error().ToString();
  EXPECT_EQ(env->bucket, "sluice-customer-data");
  // full, no_delete, no_put, no_external_id, import, import_no_get, import_no_external_id
  EXPECT_EQ(env->roles.size(), 7u);
  EXPECT_TRUE(env->roles.contains("import_no_get"));
  EXPECT_TRUE(env->roles.contains("import_no_external_id"));
  EXPECT_NE(env->roles.at("full").find(":role/"), std::string::npos);
  EXPECT_FALSE(env->secret_access_key.empty());
  EXPECT_FALSE(env->kms_key_id.empty());

  // Before auth, anonymous listing works; after, it is rejected.
  auto before = LoopbackRequest((*moto)->port(), "GET", "/sluice-customer-data?list-type=2", {}, "",
                                std::chrono::milliseconds(5000));
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->Status(), 200);
  ASSERT_TRUE((*moto)->EnableAuth().ok());
  auto after = LoopbackRequest((*moto)->port(), "GET", "/sluice-customer-data?list-type=2", {}, "",
                               std::chrono::milliseconds(5000));
  ASSERT_TRUE(after.ok());
  // moto answers an unsigned request in auth mode with 500 (not 403); anything but success will do here.
  EXPECT_NE(after->Status(), 200) << after->body;

  // Reset wipes everything and turns auth off again.
  ASSERT_TRUE((*moto)->Reset().ok());
  auto wiped = LoopbackRequest((*moto)->port(), "GET", "/sluice-customer-data?list-type=2", {}, "",
                               std::chrono::milliseconds(5000));
  ASSERT_TRUE(wiped.ok());
  EXPECT_EQ(wiped->Status(), 404) << wiped->body;

  (*moto)->Stop();
  EXPECT_EQ((*moto)->pid(), -1);
  EXPECT_NE(::kill(pid, 0), 0) << "moto process still alive after Stop()";
}

}  // namespace
}  // namespace sluice::testing
