// Leases with fencing against a real ZooKeeper 3.8 on loopback (one server for the whole binary).
// The binary re-executes itself with --hold-lease to be a lease holder the test can SIGKILL.
#include "coord/lease.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "coord/session.h"
#include "support/child_process.h"
#include "support/loopback_http.h"
#include "support/moto_server.h"
#include "support/zookeeper_environment.h"
#include "support/zookeeper_server.h"

namespace sluice::coord {
namespace {

using std::chrono::milliseconds;
using testing::ZooKeeperEnvironment;

std::shared_ptr<Session> OpenSession(const std::string& chroot = "/t",
                                     milliseconds timeout = milliseconds(2000)) {
  Session::Options o;
  o.url = ParseZooKeeperUrl(ZooKeeperEnvironment::server()->Url(chroot)).value();
  o.session_timeout = timeout;
  auto s = Session::Open(o);
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  return s.ok() ? *s : nullptr;
}

TEST(ZooKeeperSession, ChrootIsCreatedAndApplied) {
  auto s = OpenSession("/sluice/chroot_test");
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->Create("/x", "hello").ok());
  auto root = OpenSession("");
  auto node = root->Get("/sluice/chroot_test/x");
  ASSERT_TRUE(node.ok()) << node.error().ToString();
  ASSERT_TRUE(node->has_value());
  EXPECT_EQ((*node)->data, "hello");
  auto again = s->Create("/x", "again");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
  auto missing = s->Get("/nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST(ZooKeeperSession, UnreachableEnsembleFailsWithinTheConnectTimeout) {
  Session::Options o;
  auto port = testing::FindFreeLoopbackPort();
  ASSERT_TRUE(port.ok());
  o.url = ParseZooKeeperUrl("zookeeper://127.0.0.1:" + std::to_string(*port)).value();
  o.connect_timeout = milliseconds(1500);
  auto start = std::chrono::steady_clock::now();
  auto s = Session::Open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(s.error().message.find("zookeeper://127.0.0.1:"), std::string::npos) << s.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(ZooKeeperSession, AnExpiredSessionIsReplacedOnTheNextCall) {
  auto s = OpenSession();
  ASSERT_TRUE(s);
  int64_t first_id = s->session_id();
  uint64_t generation = s->generation();
  ASSERT_TRUE(s->ExpireForTesting().ok());
  EXPECT_TRUE(s->expired());
  ASSERT_TRUE(s->EnsurePath("/after_expiry").ok());
  EXPECT_EQ(s->generation(), generation + 1);
  EXPECT_NE(s->session_id(), first_id);
  EXPECT_TRUE(s->connected());
}

TEST(Lease, TwoContendersNeverBothHold) {
  auto a = OpenSession();
  auto b = OpenSession();
  ASSERT_TRUE(a && b);
  auto la = Lease::TryAcquire(a, "unit.contended", "node-a");
  ASSERT_TRUE(la.ok()) << la.error().ToString();
  auto lb = Lease::TryAcquire(b, "unit.contended", "node-b");
  ASSERT_FALSE(lb.ok());
  EXPECT_EQ(lb.error().code, ErrorCode::kConflict);
  EXPECT_NE(lb.error().message.find("held by 'node-a'"), std::string::npos) << lb.error().message;
  auto holder = Lease::CurrentHolder(*b, "unit.contended");
  ASSERT_TRUE(holder.ok() && holder->has_value());
  EXPECT_EQ((*holder)->holder, "node-a");
  EXPECT_EQ((*holder)->token, (*la)->token());

  ASSERT_TRUE((*la)->Release().ok());
  EXPECT_EQ((*la)->Renew().error().code, ErrorCode::kConflict);
  lb = Lease::TryAcquire(b, "unit.contended", "node-b");
  ASSERT_TRUE(lb.ok()) << lb.error().ToString();
  EXPECT_GT((*lb)->token(), (*la)->token());
  ASSERT_TRUE((*lb)->Release().ok());

  // Concurrently: two nodes race for the same unit many times; at most one holds it at any moment.
  std::atomic<int> holding{0};
  std::atomic<int> violations{0};
  std::atomic<int> acquired{0};
  auto contender = [&](std::shared_ptr<Session> s, std::string id) {
    for (int round = 0; round < 40; ++round) {
      auto lease = Lease::TryAcquire(s, "unit.race", id);
      if (!lease.ok()) {
        EXPECT_EQ(lease.error().code, ErrorCode::kConflict) << lease.error().ToString();
        continue;
      }
      ++acquired;
      if (holding.fetch_add(1) != 0) ++violations;
      // "Work" while holding: two round trips that confirm the lease.
      if (!(*lease)->Renew().ok() || !(*lease)->Renew().ok()) ++violations;
      holding.fetch_sub(1);
      EXPECT_TRUE((*lease)->Release().ok());
    }
  };
  std::thread ta(contender, a, "node-a");
  std::thread tb(contender, b, "node-b");
  ta.join();
  tb.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_GT(acquired.load(), 0);
}

TEST(Lease, NamesAreOnePathSegment) {
  auto s = OpenSession();
  ASSERT_TRUE(s);
  for (const char* bad : {"", "a/b", "..", "a b", "x:y"}) {
    auto lease = Lease::TryAcquire(s, bad, "n");
    ASSERT_FALSE(lease.ok()) << bad;
    EXPECT_EQ(lease.error().code, ErrorCode::kInvalidArgument) << bad;
  }
}

// Reads the holder child's "token N" line from its log (bounded wait).
int64_t WaitForChildToken(testing::ChildProcess& child) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline && !child.Exited()) {
    std::string log = testing::TailOfFile(child.log_path());
    if (size_t at = log.find("token "); at != std::string::npos && log.find('\n', at) != std::string::npos) {
      return std::stoll(log.substr(at + 6));
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  return 0;
}

TEST(Lease, AKilledHoldersLeaseIsTakenOverAfterItsSessionExpires) {
  auto dir = testing::MakeTempDir("sluice-lease");
  ASSERT_TRUE(dir.ok());
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  auto child = testing::ChildProcess::Spawn(
      {self, "--hold-lease", ZooKeeperEnvironment::server()->Url("/t"), "unit.killed", "1000"},
      *dir + "/holder.log");
  ASSERT_TRUE(child.ok()) << child.error().ToString();
  int64_t child_token = WaitForChildToken(*child);
  ASSERT_GT(child_token, 0) << testing::TailOfFile(child->log_path());

  auto s = OpenSession();
  ASSERT_TRUE(s);
  auto early = Lease::TryAcquire(s, "unit.killed", "node-b");
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code, ErrorCode::kConflict);

  child->Kill();  // SIGKILL: no release, the session just stops heartbeating
  auto killed_at = std::chrono::steady_clock::now();
  Result<std::unique_ptr<Lease>> taken = Error(ErrorCode::kConflict, "not yet");
  // Bounded: the 1 s session expires within a few seconds (the server checks expiry every tick).
  while (std::chrono::steady_clock::now() - killed_at < std::chrono::seconds(20)) {
    taken = Lease::TryAcquire(s, "unit.killed", "node-b");
    if (taken.ok() || taken.error().code != ErrorCode::kConflict) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_TRUE(taken.ok()) << taken.error().ToString();
  auto waited = std::chrono::steady_clock::now() - killed_at;
  EXPECT_GE(waited, milliseconds(500));  // not before the session timeout
  EXPECT_GT((*taken)->token(), child_token);
  EXPECT_TRUE((*taken)->Renew().ok());
  testing::RemoveTree(*dir);
}

TEST(Lease, AnExpiredHolderLearnsItLostAndItsStaleTokenIsRefused) {
  auto a = OpenSession();
  auto b = OpenSession();
  ASSERT_TRUE(a && b);
  auto la = Lease::TryAcquire(a, "unit.fenced", "node-a");
  ASSERT_TRUE(la.ok()) << la.error().ToString();
  int64_t stale = (*la)->token();
  ASSERT_TRUE((*la)->FencedSet("/state/unit.fenced", "a:1").ok());
  EXPECT_FALSE((*la)->Lost());
  ASSERT_TRUE((*la)->Renew().ok());

  // The holder is cut off long enough for the ensemble to expire its session (e.g. a long GC pause).
  ASSERT_TRUE(a->ExpireForTesting().ok());
  EXPECT_TRUE((*la)->Lost());  // known locally, before any more work
  auto renew = (*la)->Renew();
  ASSERT_FALSE(renew.ok());
  EXPECT_EQ(renew.error().code, ErrorCode::kConflict);
  EXPECT_NE(renew.error().message.find("lost"), std::string::npos) << renew.error().message;
  EXPECT_FALSE((*la)->FencedSet("/state/unit.fenced", "a:2").ok());

  auto lb = Lease::TryAcquire(b, "unit.fenced", "node-b");
  ASSERT_TRUE(lb.ok()) << lb.error().ToString();
  EXPECT_GT((*lb)->token(), stale);

  // A paused holder that skips its checks and writes with its old token is refused by the fence — even
  // before the new holder has written anything (taking the lease advanced the fence).
  auto refused = FencedSet(*a, "unit.fenced", stale, "/state/unit.fenced", "a:stale");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("stale fencing token"), std::string::npos)
      << refused.error().message;

  ASSERT_TRUE((*lb)->FencedSet("/state/unit.fenced", "b:1").ok());
  refused = FencedSet(*b, "unit.fenced", stale, "/state/unit.fenced", "a:stale");
  EXPECT_FALSE(refused.ok());
  auto state = b->Get("/state/unit.fenced");
  ASSERT_TRUE(state.ok() && state->has_value());
  EXPECT_EQ((*state)->data, "b:1");

  // The old holder's session object works again (a new session), but the lease stays lost.
  EXPECT_TRUE(a->EnsurePath("/state").ok());
  EXPECT_FALSE((*la)->Renew().ok());
  EXPECT_TRUE((*la)->Release().ok());  // nothing to delete; must not delete B's node
  EXPECT_TRUE((*lb)->Renew().ok());
}

// Child mode: take the lease, report the token, then hold it until killed (bounded at 120 s).
int HoldLease(const std::string& url, const std::string& name, int timeout_ms) {
  Session::Options o;
  o.url = ParseZooKeeperUrl(url).value();
  o.session_timeout = milliseconds(timeout_ms);
  auto s = Session::Open(o);
  if (!s.ok()) {
    std::fprintf(stderr, "open: %s\n", s.error().ToString().c_str());
    return 1;
  }
  auto lease = Lease::TryAcquire(*s, name, "child-" + std::to_string(::getpid()));
  if (!lease.ok()) {
    std::fprintf(stderr, "acquire: %s\n", lease.error().ToString().c_str());
    return 1;
  }
  std::printf("token %lld\n", static_cast<long long>((*lease)->token()));
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(120));
  return 0;
}

}  // namespace
}  // namespace sluice::coord

int main(int argc, char** argv) {
  if (argc == 5 && std::strcmp(argv[1], "--hold-lease") == 0) {
    return sluice::coord::HoldLease(argv[2], argv[3], std::atoi(argv[4]));
  }
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new sluice::testing::ZooKeeperEnvironment());
  return RUN_ALL_TESTS();
}
