#include "jobs/runner.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>

#include "common/thread_name.h"

namespace sluice::jobs {

bool IsRetryableError(ErrorCode code) {
  switch (code) {
    case ErrorCode::kThrottled:
    case ErrorCode::kTransient:
    case ErrorCode::kExpiredToken:
    case ErrorCode::kClockSkew:
    case ErrorCode::kUnavailable:
    case ErrorCode::kDeadlineExceeded:
    case ErrorCode::kInternal:  // e.g. a store read error: worth retrying, and never a reason to pause
      return true;
    default:
      return false;
  }
}

bool IsLeaseError(const Error& e) { return e.provider_code == kLeaseHeld || e.provider_code == kLeaseLost; }

Disposition Classify(const Status& status) {
  if (status.ok()) return Disposition::kDone;
  const Error& e = status.error();
  if (IsLeaseError(e)) return Disposition::kSkipped;
  if (e.code == ErrorCode::kCancelled) return Disposition::kCancelled;
  return IsRetryableError(e.code) ? Disposition::kRetry : Disposition::kPause;
}

std::chrono::milliseconds Backoff(std::chrono::milliseconds base, std::chrono::milliseconds max,
                                  int attempt) {
  auto d = base * (1LL << std::clamp(attempt - 1, 0, 20));
  return std::min<std::chrono::milliseconds>(d, max);
}

namespace {

Error LeaseErrorFrom(const Error& e, std::string_view provider_code) {
  Error out = e;
  // A lease service that cannot be asked is retryable like any unreachable dependency, not a skip.
  if (e.code == ErrorCode::kConflict) out.provider_code = std::string(provider_code);
  return out;
}

std::string DefaultNodeId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof(host), "node");
  return fmt::format("{}-{}", host, getpid());
}

}  // namespace

Runner::Runner(Options options, Source& source) : options_(std::move(options)), source_(source) {
  if (!options_.leases) options_.leases = MakeInProcessLeaseService();
  if (options_.node_id.empty()) options_.node_id = DefaultNodeId();
  options_.workers = std::max(1, options_.workers);
  options_.retry.max_attempts = std::max(1, options_.retry.max_attempts);
}

Runner::~Runner() { Stop(); }

void Runner::Start() {
  std::lock_guard lock(mu_);
  if (scheduler_.joinable() || stopping_) return;
  scheduler_ = std::thread([this] {
    SetCurrentThreadName("sl-jobs");
    Loop();
  });
}

void Runner::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (scheduler_.joinable()) scheduler_.join();
  std::list<Worker> workers;
  {
    std::lock_guard lock(mu_);
    workers.swap(workers_);
  }
  for (Worker& w : workers) {
    if (w.thread.joinable()) w.thread.join();
  }
}

void Runner::Wake() {
  {
    std::lock_guard lock(mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

bool Runner::stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

bool Runner::SleepInterruptible(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [&] { return stopping_; });
  return !stopping_;
}

void Runner::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // Reap the workers that finished.
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    const size_t cap = static_cast<size_t>(options_.workers);
    const size_t free = cap > running_ ? cap - running_ : 0;
    wake_ = false;
    lock.unlock();
    source_.Reload();
    std::vector<Job> due;
    if (free > 0) due = source_.TakeDue(free);
    lock.lock();
    for (Job& job : due) {
      ++running_;
      auto done = std::make_shared<std::atomic<bool>>(false);
      workers_.push_back(Worker{std::thread([this, job = std::move(job), done]() mutable {
                                  // "sl-" + the unit's kind: sl-pipeline, sl-import, ...
                                  SetCurrentThreadName("sl-" + job.unit.substr(0, job.unit.find('.')));
                                  RunJob(job);
                                  {
                                    std::lock_guard g(mu_);
                                    --running_;
                                    wake_ = true;  // a worker is free: look again
                                  }
                                  done->store(true);
                                  cv_.notify_all();
                                }),
                                done});
    }
    if (stopping_) break;
    cv_.wait_for(lock, options_.poll_interval, [&] { return stopping_ || wake_; });
  }
}

void Runner::RunJob(Job& job) {
  Status status = RunLeased(job.unit, job.run);
  if (!status.ok() && Classify(status) == Disposition::kSkipped) {
    spdlog::debug("jobs: {} skipped on {}: {}", job.unit, options_.node_id, status.error().message);
  }
  if (job.finish) job.finish(status);
}

Status Runner::RunDueNow() {
  source_.Reload();
  std::vector<Job> due = source_.TakeDue(SIZE_MAX);
  Status first;
  for (Job& job : due) {
    Status s = RunLeased(job.unit, job.run);
    if (job.finish) job.finish(s);
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

Status Runner::RunLeased(std::string_view unit, const std::function<Status(UnitLease&)>& body) {
  auto lease = options_.leases->TryAcquire(unit, options_.node_id);
  if (!lease.ok()) return LeaseErrorFrom(lease.error(), kLeaseHeld);
  Status status = body(**lease);
  // A body that failed because its lease went away reports that, not the symptom (a cancelled write).
  if (!status.ok() && !IsLeaseError(status.error()) && (*lease)->Lost()) {
    Error lost(
        ErrorCode::kConflict,
        fmt::format("lease of {} lost while working on it ({}); the unit is retried by its next holder", unit,
                    status.error().message));
    lost.provider_code = std::string(kLeaseLost);
    status = lost;
  }
  (void)(*lease)->Release();
  return status;
}

Status Runner::Attempts(UnitLease& lease, const std::function<Status(UnitLease&)>& body,
                        const AttemptHooks& hooks) {
  for (int attempt = 1;; ++attempt) {
    if (Status renewed = lease.Renew(); !renewed.ok()) return LeaseErrorFrom(renewed.error(), kLeaseLost);
    Status s = body(lease);
    if (s.ok() || Classify(s) != Disposition::kRetry || attempt >= options_.retry.max_attempts) return s;
    const auto delay = Backoff(options_.retry.base_delay, options_.retry.max_delay, attempt);
    if (hooks.on_retry) hooks.on_retry(attempt, s.error(), delay);
    const bool slept = hooks.sleep ? hooks.sleep(delay) : SleepInterruptible(delay);
    if (!slept) return Error(ErrorCode::kCancelled, "interrupted while waiting to retry");
  }
}

Status Runner::RunUnit(std::string_view unit, const std::function<Status(UnitLease&)>& body,
                       const AttemptHooks& hooks) {
  return RunLeased(unit, [&](UnitLease& lease) { return Attempts(lease, body, hooks); });
}

}  // namespace sluice::jobs
