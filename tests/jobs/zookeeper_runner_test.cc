// Two job runners on two ZooKeeper sessions (two "nodes") against a real loopback ZooKeeper: a unit never
// runs on both at once, and when one node's session dies mid-unit the other takes the unit over after the
// expiry and finishes it exactly once; the dead node's late commit is refused.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "coord/session.h"
#include "jobs/lease.h"
#include "jobs/runner.h"
#include "support/zookeeper_environment.h"

namespace sluice::jobs {
namespace {

using std::chrono::milliseconds;
using testing::ZooKeeperEnvironment;

std::shared_ptr<coord::Session> OpenSession(milliseconds timeout = milliseconds(2000)) {
  coord::Session::Options o;
  o.url = coord::ParseZooKeeperUrl(ZooKeeperEnvironment::server()->Url("/jobs")).value();
  o.session_timeout = timeout;
  auto s = coord::Session::Open(o);
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  return s.ok() ? *s : nullptr;
}

class NoSource : public Runner::Source {
 public:
  std::vector<Runner::Job> TakeDue(size_t) override { return {}; }
};

Runner::Options NodeOptions(std::shared_ptr<coord::Session> session, std::string node) {
  Runner::Options o;
  o.leases = MakeZooKeeperLeaseService(std::move(session));
  o.node_id = std::move(node);
  o.retry.max_attempts = 1;
  return o;
}

/// Two nodes: runners on two ZooKeeper sessions.
class ZooKeeperLeases : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ZooKeeperEnvironment::server());
    sa = OpenSession();
    sb = OpenSession();
    ASSERT_TRUE(sa && sb);
    a = std::make_unique<Runner>(NodeOptions(sa, "node-a"), source);
    b = std::make_unique<Runner>(NodeOptions(sb, "node-b"), source);
  }
  std::shared_ptr<coord::Session> sa, sb;
  NoSource source;
  std::unique_ptr<Runner> a, b;
};

TEST_F(ZooKeeperLeases, AUnitNeverRunsOnBothNodesAtOnce) {
  std::atomic<int> inside{0}, overlap{0}, ran_a{0}, ran_b{0}, skipped{0};
  auto node = [&](Runner& r, std::atomic<int>& ran) {
    for (int i = 0; i < 25; ++i) {
      Status s = r.RunUnit("export.p1.shared.2026-12-06", [&](UnitLease& lease) -> Status {
        if (++inside > 1) ++overlap;
        std::this_thread::sleep_for(milliseconds(5));
        Status renewed = lease.Renew();
        --inside;
        if (renewed.ok()) ++ran;
        return renewed;
      });
      if (!s.ok()) {
        EXPECT_EQ(Classify(s), Disposition::kSkipped) << s.error().ToString();
        ++skipped;
      }
    }
  };
  std::thread ta([&] { node(*a, ran_a); });
  std::thread tb([&] { node(*b, ran_b); });
  ta.join();
  tb.join();
  EXPECT_EQ(overlap.load(), 0);
  EXPECT_EQ(ran_a + ran_b + skipped, 50);
  EXPECT_GT(ran_a + ran_b, 0);
}

TEST_F(ZooKeeperLeases, ANodeWhoseSessionDiesMidUnitIsTakenOverAndTheUnitFinishesOnce) {
  const std::string unit = "export.p1.takeover.2026-12-06T04";

  // The "bucket": deterministic object names (the unit and its part), each write counted; and the unit's
  // committed state, written only after a successful Renew().
  std::mutex mu;
  std::map<std::string, int> bucket;
  std::vector<std::string> commits;
  std::atomic<bool> a_started{false}, a_may_commit{false};
  auto write_part = [&](std::string_view node) {
    std::lock_guard lock(mu);
    ++bucket[unit + "/part-00000.json.gz"];
    (void)node;
  };
  Status a_status;
  std::thread ta([&] {
    a_status = a->RunUnit(unit, [&](UnitLease& lease) -> Status {
      write_part("a");
      a_started = true;
      for (int i = 0; i < 1000 && !a_may_commit; ++i) std::this_thread::sleep_for(milliseconds(10));
      SLUICE_TRY(lease.Renew());  // the fenced step before committing the unit's state
      std::lock_guard lock(mu);
      commits.push_back("a");
      return OkStatus();
    });
  });
  for (int i = 0; i < 500 && !a_started; ++i) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_TRUE(a_started);

  // While A holds the unit, B is skipped.
  Status early = b->RunUnit(unit, [&](UnitLease&) -> Status {
    ADD_FAILURE() << "B ran a unit A holds";
    return OkStatus();
  });
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(Classify(early), Disposition::kSkipped);
  EXPECT_NE(early.error().message.find("node-a"), std::string::npos) << early.error().message;

  // A's node dies (its session is closed by the ensemble); B takes the unit over once the lease is gone.
  ASSERT_TRUE(sa->ExpireForTesting().ok());
  Status b_status = Error(ErrorCode::kInternal, "not run");
  int b_tries = 0;
  for (; b_tries < 200; ++b_tries) {
    b_status = b->RunUnit(unit, [&](UnitLease& lease) -> Status {
      write_part("b");
      SLUICE_TRY(lease.Renew());
      std::lock_guard lock(mu);
      commits.push_back("b");
      return OkStatus();
    });
    if (b_status.ok() || Classify(b_status) != Disposition::kSkipped) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_TRUE(b_status.ok()) << b_status.error().ToString();

  // A wakes up believing it still holds the unit: its commit is refused.
  a_may_commit = true;
  ta.join();
  ASSERT_FALSE(a_status.ok());
  EXPECT_EQ(Classify(a_status), Disposition::kSkipped) << a_status.error().ToString();

  std::lock_guard lock(mu);
  EXPECT_EQ(commits, std::vector<std::string>{"b"});
  EXPECT_EQ(bucket.size(), 1u);  // one object name: B's write replaced A's partial one
}

// A records lease (pipelines.records, connectors.records) is a lock across nodes and across the threads of
// one node: the service of one session must not hand a unit it holds to a second thread.
TEST_F(ZooKeeperLeases, ThreadsOfOneNodeNeverHoldAUnitAtOnceEither) {
  auto node_a = MakeZooKeeperLeaseService(sa);
  auto node_b = MakeZooKeeperLeaseService(sb);
  auto first = node_a->TryAcquire("records.test", "node-a");
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  auto second = node_a->TryAcquire("records.test", "node-a");
  ASSERT_FALSE(second.ok()) << "a second thread of the holding node got the lease too";
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  EXPECT_FALSE(node_b->TryAcquire("records.test", "node-b").ok());
  ASSERT_TRUE((*first)->Release().ok());
  auto again = node_a->TryAcquire("records.test", "node-a");
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_GT((*again)->token(), (*first)->token());
  again->reset();  // destroying a lease releases it
  ASSERT_TRUE(node_b->TryAcquire("records.test", "node-b").ok());

  // Several threads on each node take the lock in turn: never two inside at once.
  std::atomic<int> inside{0}, overlaps{0}, entered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      LeaseService& leases = t % 2 == 0 ? *node_a : *node_b;
      for (int i = 0; i < 15; ++i) {
        auto lock = AcquireWithin(leases, "records.turns", t % 2 == 0 ? "node-a" : "node-b",
                                  std::chrono::seconds(20), "locking", "busy");
        if (!lock.ok()) {
          ADD_FAILURE() << lock.error().ToString();
          return;
        }
        if (inside.fetch_add(1) != 0) ++overlaps;
        std::this_thread::sleep_for(milliseconds(1));
        inside.fetch_sub(1);
        ++entered;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(entered.load(), 90);
  EXPECT_EQ(overlaps.load(), 0) << "two holders of one lease at once";
}

}  // namespace
}  // namespace sluice::jobs

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new sluice::testing::ZooKeeperEnvironment());
  return RUN_ALL_TESTS();
}
