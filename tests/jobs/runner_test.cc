// The runner's one failure policy (retry with backoff, pause, cancel, skip), its scheduling with a bounded
// worker pool, and the history hooks.
#include "jobs/runner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

namespace sluice::jobs {
namespace {

using std::chrono::milliseconds;

TEST(FailurePolicy, ClassifiesEveryOutcome) {
  EXPECT_EQ(Classify(OkStatus()), Disposition::kDone);
  EXPECT_EQ(Classify(Error(ErrorCode::kThrottled, "slow down")), Disposition::kRetry);
  EXPECT_EQ(Classify(Error(ErrorCode::kUnavailable, "down")), Disposition::kRetry);
  EXPECT_EQ(Classify(Error(ErrorCode::kInternal, "store read")), Disposition::kRetry);
  EXPECT_EQ(Classify(Error(ErrorCode::kAccessDenied, "denied")), Disposition::kPause);
  EXPECT_EQ(Classify(Error(ErrorCode::kNotFound, "no bucket")), Disposition::kPause);
  EXPECT_EQ(Classify(Error(ErrorCode::kCancelled, "paused")), Disposition::kCancelled);
  Error held(ErrorCode::kConflict, "held");
  held.provider_code = std::string(kLeaseHeld);
  EXPECT_EQ(Classify(held), Disposition::kSkipped);
  EXPECT_EQ(Classify(Error(ErrorCode::kConflict, "a plain conflict")), Disposition::kPause);
}

TEST(FailurePolicy, BackoffDoublesUpToTheCap) {
  EXPECT_EQ(Backoff(milliseconds(100), milliseconds(1000), 1), milliseconds(100));
  EXPECT_EQ(Backoff(milliseconds(100), milliseconds(1000), 2), milliseconds(200));
  EXPECT_EQ(Backoff(milliseconds(100), milliseconds(1000), 4), milliseconds(800));
  EXPECT_EQ(Backoff(milliseconds(100), milliseconds(1000), 5), milliseconds(1000));
  EXPECT_EQ(Backoff(milliseconds(100), milliseconds(1000), 500), milliseconds(1000));
}

class NoSource : public Runner::Source {
 public:
  std::vector<Runner::Job> TakeDue(size_t) override { return {}; }
};

Runner::Options Fast(std::shared_ptr<LeaseService> leases = nullptr) {
  Runner::Options o;
  o.leases = std::move(leases);
  o.node_id = "node-a";
  o.workers = 2;
  o.poll_interval = milliseconds(10);
  o.retry.max_attempts = 3;
  o.retry.base_delay = milliseconds(1);
  o.retry.max_delay = milliseconds(4);
  return o;
}

TEST(RunUnit, RetriesRetryableErrorsWithTheHistoryHookThenSucceeds) {
  NoSource source;
  Runner runner(Fast(), source);
  int calls = 0;
  std::vector<std::pair<int, milliseconds>> retried;
  AttemptHooks hooks;
  hooks.on_retry = [&](int attempt, const Error& e, milliseconds delay) {
    EXPECT_EQ(e.code, ErrorCode::kThrottled);
    retried.emplace_back(attempt, delay);
  };
  Status s = runner.RunUnit(
      "u1",
      [&](UnitLease&) -> Status {
        return ++calls < 3 ? Status(Error(ErrorCode::kThrottled, "slow down")) : OkStatus();
      },
      hooks);
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(calls, 3);
  ASSERT_EQ(retried.size(), 2u);
  EXPECT_EQ(retried[0], std::make_pair(1, milliseconds(1)));
  EXPECT_EQ(retried[1], std::make_pair(2, milliseconds(2)));
}

TEST(RunUnit, GivesUpAfterMaxAttemptsAndNeverRetriesAPermanentError) {
  NoSource source;
  Runner runner(Fast(), source);
  int calls = 0;
  Status s = runner.RunUnit("u1", [&](UnitLease&) -> Status {
    ++calls;
    return Error(ErrorCode::kTransient, "503");
  });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(Classify(s), Disposition::kRetry);
  EXPECT_EQ(calls, 3);
  calls = 0;
  s = runner.RunUnit("u1", [&](UnitLease&) -> Status {
    ++calls;
    return Error(ErrorCode::kAccessDenied, "grant s3:PutObject");
  });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(Classify(s), Disposition::kPause);
  EXPECT_EQ(s.error().message, "grant s3:PutObject");  // the reason the owner shows, unchanged
  EXPECT_EQ(calls, 1);
}

TEST(RunUnit, AnInterruptedRetrySleepCancels) {
  NoSource source;
  Runner runner(Fast(), source);
  AttemptHooks hooks;
  hooks.sleep = [](milliseconds) { return false; };
  Status s = runner.RunUnit(
      "u1", [&](UnitLease&) -> Status { return Error(ErrorCode::kTransient, "x"); }, hooks);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(Classify(s), Disposition::kCancelled);
}

TEST(RunUnit, AUnitHeldByAnotherNodeIsSkippedWithoutRunning) {
  auto leases = std::make_shared<InProcessLeaseService>();
  NoSource source;
  Runner runner(Fast(leases), source);
  auto other = leases->TryAcquire("u1", "node-b");
  ASSERT_TRUE(other.ok());
  bool ran = false;
  Status s = runner.RunUnit("u1", [&](UnitLease&) {
    ran = true;
    return OkStatus();
  });
  EXPECT_FALSE(ran);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(Classify(s), Disposition::kSkipped);
  EXPECT_NE(s.error().message.find("node-b"), std::string::npos) << s.error().message;
}

TEST(RunUnit, ALeaseLostMidUnitStopsTheRetriesAndIsASkipNotAFailure) {
  auto leases = std::make_shared<InProcessLeaseService>();
  NoSource source;
  Runner runner(Fast(leases), source);
  int calls = 0;
  Status s = runner.RunUnit("u1", [&](UnitLease& lease) -> Status {
    ++calls;
    leases->ExpireForTesting("u1");
    EXPECT_FALSE(lease.Renew().ok());  // what a unit does before committing its state
    return Error(ErrorCode::kTransient, "503");
  });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(Classify(s), Disposition::kSkipped);
  EXPECT_EQ(s.error().provider_code, kLeaseLost);
}

// A source with N units, each due once; records what ran and what finished.
class CountingSource : public Runner::Source {
 public:
  explicit CountingSource(int units, std::function<Status(const std::string&)> work)
      : work_(std::move(work)) {
    for (int i = 0; i < units; ++i) pending_.push_back("unit" + std::to_string(i));
  }
  void Reload() override { ++reloads; }
  std::vector<Runner::Job> TakeDue(size_t limit) override {
    std::lock_guard lock(mu);
    std::vector<Runner::Job> out;
    while (!pending_.empty() && out.size() < limit) {
      std::string unit = pending_.back();
      pending_.pop_back();
      out.push_back({unit, [this, unit](UnitLease&) { return work_(unit); },
                     [this, unit](const Status& s) {
                       std::lock_guard g(mu);
                       finished[unit] = s.ok() ? "ok" : s.error().message;
                     }});
    }
    return out;
  }
  std::mutex mu;
  std::map<std::string, std::string> finished;
  std::atomic<int> reloads{0};

 private:
  std::function<Status(const std::string&)> work_;
  std::vector<std::string> pending_;
};

TEST(Scheduling, AtMostWorkersJobsRunAtOnceAndEveryJobFinishesOnce) {
  std::atomic<int> now{0}, peak{0}, started{0};
  CountingSource source(7, [&](const std::string&) {
    ++started;
    int n = ++now;
    int p = peak.load();
    while (n > p && !peak.compare_exchange_weak(p, n)) {
    }
    // Wait (bounded) for a second job to run alongside, unless every job has started: two workers must
    // overlap however slowly the machine starts the second one.
    for (int i = 0; i < 2000 && now.load() < 2 && started.load() < 7; ++i)
      std::this_thread::sleep_for(milliseconds(1));
    std::this_thread::sleep_for(milliseconds(5));
    --now;
    return OkStatus();
  });
  Runner runner(Fast(), source);
  runner.Start();
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard lock(source.mu);
      if (source.finished.size() == 7) break;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  runner.Stop();
  std::lock_guard lock(source.mu);
  EXPECT_EQ(source.finished.size(), 7u);
  for (auto& [u, r] : source.finished) EXPECT_EQ(r, "ok") << u;
  EXPECT_LE(peak.load(), 2);
  EXPECT_EQ(peak.load(), 2);
  EXPECT_GE(source.reloads.load(), 1);
}

TEST(Scheduling, RunDueNowReloadsFirstAndReportsSkipsToTheFinishHook) {
  auto leases = std::make_shared<InProcessLeaseService>();
  CountingSource source(2, [](const std::string&) { return OkStatus(); });
  Runner runner(Fast(leases), source);
  auto held = leases->TryAcquire("unit1", "node-b");
  ASSERT_TRUE(held.ok());
  Status s = runner.RunDueNow();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(Classify(s), Disposition::kSkipped);
  EXPECT_EQ(source.reloads.load(), 1);
  EXPECT_EQ(source.finished["unit0"], "ok");
  EXPECT_NE(source.finished["unit1"].find("node-b"), std::string::npos);
}

}  // namespace
}  // namespace sluice::jobs
