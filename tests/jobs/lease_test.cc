// In-process unit leases: exclusion, tokens, loss, release, names.
#include "jobs/lease.h"

#include <gtest/gtest.h>

namespace sluice::jobs {
namespace {

TEST(InProcessLeases, OneHolderAtATimeAndTokensGrow) {
  InProcessLeaseService leases;
  auto a = leases.TryAcquire("export.p1.x.2026-12-06", "node-a");
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  auto b = leases.TryAcquire("export.p1.x.2026-12-06", "node-b");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, ErrorCode::kConflict);
  EXPECT_NE(b.error().message.find("node-a"), std::string::npos) << b.error().message;
  // Another unit is independent.
  EXPECT_TRUE(leases.TryAcquire("export.p1.x.2026-12-07", "node-b").ok());
  const int64_t first = (*a)->token();
  ASSERT_TRUE((*a)->Release().ok());
  EXPECT_TRUE((*a)->Lost());
  auto again = leases.TryAcquire("export.p1.x.2026-12-06", "node-b");
  ASSERT_TRUE(again.ok());
  EXPECT_GT((*again)->token(), first);
}

TEST(InProcessLeases, AnExpiredLeaseRefusesRenewAndTheOldHolderCannotReleaseTheNewOne) {
  InProcessLeaseService leases;
  auto a = leases.TryAcquire("u", "node-a");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE((*a)->Renew().ok());
  EXPECT_FALSE((*a)->Lost());
  leases.ExpireForTesting("u");
  EXPECT_TRUE((*a)->Lost());
  Status renew = (*a)->Renew();
  ASSERT_FALSE(renew.ok());
  EXPECT_EQ(renew.error().code, ErrorCode::kConflict);
  auto b = leases.TryAcquire("u", "node-b");
  ASSERT_TRUE(b.ok());
  renew = (*a)->Renew();
  ASSERT_FALSE(renew.ok());
  EXPECT_NE(renew.error().message.find("node-b"), std::string::npos) << renew.error().message;
  ASSERT_TRUE((*a)->Release().ok());  // must not free node-b's lease
  EXPECT_TRUE((*b)->Renew().ok());
  EXPECT_FALSE(leases.TryAcquire("u", "node-c").ok());
}

TEST(InProcessLeases, DestroyingALeaseReleasesIt) {
  InProcessLeaseService leases;
  { ASSERT_TRUE(leases.TryAcquire("u", "a").ok()); }
  EXPECT_TRUE(leases.TryAcquire("u", "b").ok());
}

TEST(InProcessLeases, BadUnitNamesAreRefused) {
  InProcessLeaseService leases;
  for (const char* bad : {"", "a/b", "..", "x y", "p1/../../etc"}) {
    auto l = leases.TryAcquire(bad, "a");
    ASSERT_FALSE(l.ok()) << bad;
    EXPECT_EQ(l.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(UnitNames, EscapeEverythingOutsideTheLeaseAlphabet) {
  EXPECT_EQ(UnitName({"export", "p7", "events daily", "2026-12-06T04"}),
            "export.p7.events_daily.2026-12-06T04");
  EXPECT_EQ(UnitName({"import", "../../x"}), "import..._.._x");
  InProcessLeaseService leases;
  EXPECT_TRUE(leases.TryAcquire(UnitName({"import", "../../x/\n"}), "a").ok());
  const std::string long_a = UnitName({std::string(300, 'a'), "1"});
  const std::string long_b = UnitName({std::string(300, 'a'), "2"});
  EXPECT_LE(long_a.size(), 200u);
  EXPECT_NE(long_a, long_b);
}

}  // namespace
}  // namespace sluice::jobs
