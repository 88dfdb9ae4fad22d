// jobs::Runner: the one job runner of the pipeline manager and the connector manager.
//
//  - scheduling: a scheduler thread asks its Source for due jobs every poll_interval (or at once after
//  Wake()),
//    after letting the Source reload what other nodes changed (Source::Reload);
//  - a bounded worker pool: at most `workers` jobs run at once;
//  - leases: every job runs under the lease of its unit (LeaseService); a unit held by another node is
//  skipped
//    and its job finishes with a lease error (Disposition kSkipped), so the Source retries it later;
//  - ONE failure policy (Classify, Backoff, RunUnit's attempts): retryable errors are retried with
//    exponential backoff, a permanent error pauses the owner with its reason, a cancellation is neither;
//  - history hooks: Job::finish and AttemptHooks::on_failed_attempt are where owners record runs and tasks.
//
//   class Pipelines : jobs::Runner::Source { std::vector<Job> TakeDue(size_t limit) override; ... };
//   jobs::Runner runner({.leases = leases, .node_id = "node-a", .workers = 2}, source);
//   runner.Start();  ...  runner.Stop();
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "jobs/lease.h"

namespace sluice::jobs {

/// provider_code of the errors the runner makes when a unit's lease is held by another holder, or was lost
/// while working on it: neither is the unit's failure; the unit is retried later (by whoever holds it then).
inline constexpr std::string_view kLeaseHeld = "SluiceLeaseHeld";
inline constexpr std::string_view kLeaseLost = "SluiceLeaseLost";

/// What to do after a unit's outcome.
enum class Disposition {
  kDone,       // succeeded
  kRetry,      // retryable error: retry with backoff
  kPause,      // permanent error: pause the owner with the reason until the user fixes it
  kCancelled,  // stopped on purpose (pause, cancel, shutdown): neither a failure nor a success
  kSkipped,    // another node holds (or took over) the unit: try again later
};

/// The error classes worth retrying (throttling, 5xx, timeouts, expired temporary credentials, an unreachable
/// dependency, a store read error); everything else is permanent.
bool IsRetryableError(ErrorCode code);
bool IsLeaseError(const Error& e);
Disposition Classify(const Status& status);

struct RetryPolicy {
  /// Attempts per unit in RunUnit (≥ 1).
  int max_attempts = 4;
  std::chrono::milliseconds base_delay{2000};
  std::chrono::milliseconds max_delay{60000};
};
/// base × 2^(attempt-1), capped at `max`.
std::chrono::milliseconds Backoff(std::chrono::milliseconds base, std::chrono::milliseconds max, int attempt);

/// History hooks and interruption of RunUnit.
struct AttemptHooks {
  /// After a failed attempt that will be retried after `delay` (the owner records a "retried" task).
  std::function<void(int attempt, const Error& error, std::chrono::milliseconds delay)> on_retry;
  /// Waits `delay`; false when the unit must stop instead (the runner then returns kCancelled). Default: the
  /// runner's own interruptible sleep (Stop() interrupts it).
  std::function<bool(std::chrono::milliseconds delay)> sleep;
};

class Runner {
 public:
  struct Job {
    /// Lease name of the unit (UnitName).
    std::string unit;
    /// The work, under the unit's lease: call lease.Renew() before each piece of work and before committing
    /// the unit's state.
    std::function<Status(UnitLease& lease)> run;
    /// Always called once, with run's status or the lease error (Classify → kSkipped) — the history hook.
    std::function<void(const Status& status)> finish;
  };

  class Source {
   public:
    virtual ~Source() = default;
    /// Called at the start of every scheduling round: pick up what other nodes created, paused, resumed or
    /// deleted in the shared store.
    virtual void Reload() {}
    /// Up to `limit` jobs due now, each marked running by the source so it is not returned again until its
    /// finish hook ran.
    virtual std::vector<Job> TakeDue(size_t limit) = 0;
  };

  struct Options {
    /// Null = in-process leases (one node).
    std::shared_ptr<LeaseService> leases;
    /// This node's holder id in leases; empty = "HOSTNAME-PID".
    std::string node_id;
    /// Jobs running at once (≥ 1).
    int workers = 2;
    /// How often the scheduler looks for due jobs (and reloads) without a Wake().
    std::chrono::milliseconds poll_interval{1000};
    RetryPolicy retry;
  };

  Runner(Options options, Source& source);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  /// Starts the scheduler thread. Idempotent.
  void Start();
  /// Interrupts sleeps, stops scheduling and waits for the running jobs (their owners cancel them).
  /// Idempotent.
  void Stop();
  /// Schedules a round now (something became due).
  void Wake();
  bool stopping() const;

  /// One synchronous round: reloads, then runs every due job on this thread (tests with a fake clock).
  /// Returns the first error among the jobs (lease skips included).
  Status RunDueNow();

  /// Runs `body` under the lease of `unit` with the retry policy: the lease is taken once (held elsewhere →
  /// kLeaseHeld error), renewed before each attempt (lost → kLeaseLost error), and released at the end.
  Status RunUnit(std::string_view unit, const std::function<Status(UnitLease&)>& body,
                 const AttemptHooks& hooks = {});
  /// The retry loop of RunUnit for a lease the caller holds: renews the lease before each attempt of `body`,
  /// retries retryable errors up to max_attempts with Backoff.
  Status Attempts(UnitLease& lease, const std::function<Status(UnitLease&)>& body,
                  const AttemptHooks& hooks = {});
  /// Runs `body` once under the lease of `unit` (no retries).
  Status RunLeased(std::string_view unit, const std::function<Status(UnitLease&)>& body);

  const std::string& node_id() const { return options_.node_id; }
  LeaseService& leases() { return *options_.leases; }
  const Options& options() const { return options_; }

 private:
  void Loop();
  void RunJob(Job& job);
  bool SleepInterruptible(std::chrono::milliseconds d);

  Options options_;
  Source& source_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool wake_ = false;
  size_t running_ = 0;
  std::thread scheduler_;
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<Worker> workers_;  // guarded by mu_; finished ones are joined by the scheduler
};

}  // namespace sluice::jobs
