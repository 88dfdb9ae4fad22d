#include "jobs/lease.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "coord/lease.h"
#include "coord/session.h"

namespace sluice::jobs {
namespace {

bool ValidUnit(std::string_view unit) {
  if (unit.empty() || unit.size() > 255 || unit == "." || unit == "..") return false;
  for (char c : unit) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

Error BadUnit(std::string_view unit) {
  return InvalidArgument(
      fmt::format("bad job unit name '{}': use letters, digits, '-', '_' and '.' (jobs::UnitName builds one)",
                  unit.substr(0, 80)));
}

}  // namespace

// ---- in-process ------------------------------------------------------------------------------------------

struct InProcessLeaseService::State {
  struct Held {
    std::string holder;
    int64_t token = 0;
  };
  std::mutex mu;
  std::map<std::string, Held, std::less<>> held;
  int64_t next_token = 0;
};

namespace {

class InProcessLease final : public UnitLease {
 public:
  InProcessLease(std::shared_ptr<InProcessLeaseService::State> state, std::string unit, int64_t token)
      : state_(std::move(state)), unit_(std::move(unit)), token_(token) {}
  ~InProcessLease() override { (void)Release(); }
  const std::string& unit() const override { return unit_; }
  int64_t token() const override { return token_; }
  bool Lost() const override {
    std::lock_guard lock(state_->mu);
    return !HeldLocked();
  }
  Status Renew() override {
    std::lock_guard lock(state_->mu);
    if (HeldLocked()) return OkStatus();
    auto it = state_->held.find(unit_);
    return Error(ErrorCode::kConflict,
                 it == state_->held.end()
                     ? fmt::format("lease '{}' (token {}) lost: it expired", unit_, token_)
                     : fmt::format("lease '{}' (token {}) lost: now held by '{}' (token {})", unit_, token_,
                                   it->second.holder, it->second.token));
  }
  Status Release() override {
    std::lock_guard lock(state_->mu);
    if (HeldLocked()) state_->held.erase(unit_);
    released_ = true;
    return OkStatus();
  }

 private:
  bool HeldLocked() const {
    if (released_) return false;
    auto it = state_->held.find(unit_);
    return it != state_->held.end() && it->second.token == token_;
  }
  std::shared_ptr<InProcessLeaseService::State> state_;
  std::string unit_;
  int64_t token_;
  bool released_ = false;  // guarded by state_->mu
};

/// The units this process holds through one ZooKeeper lease service. coord::Lease takes a lease node its own
/// session owns as its own (an earlier create whose reply was lost), so two threads of one node would both
/// "hold" a unit, with one token, and the first to release would free it under the other: the service keeps
/// its threads apart itself.
struct HeldUnits {
  std::mutex mu;
  std::set<std::string, std::less<>> units;
};

class ZooKeeperLease final : public UnitLease {
 public:
  ZooKeeperLease(std::unique_ptr<coord::Lease> lease, std::shared_ptr<HeldUnits> held)
      : lease_(std::move(lease)), held_(std::move(held)) {}
  ~ZooKeeperLease() override { (void)Release(); }
  const std::string& unit() const override { return lease_->name(); }
  int64_t token() const override { return lease_->token(); }
  bool Lost() const override { return lease_->Lost(); }
  Status Renew() override { return lease_->Renew(); }
  Status Release() override {
    Status released = lease_->Release();
    // Another thread of this process may take the unit only once its node is gone from ZooKeeper.
    if (!released_.exchange(true)) {
      std::lock_guard lock(held_->mu);
      held_->units.erase(lease_->name());
    }
    return released;
  }
  bool coordinated() const override { return true; }

 private:
  std::unique_ptr<coord::Lease> lease_;
  std::shared_ptr<HeldUnits> held_;
  std::atomic<bool> released_{false};
};

class ZooKeeperLeaseService final : public LeaseService {
 public:
  explicit ZooKeeperLeaseService(std::shared_ptr<coord::Session> session) : session_(std::move(session)) {}
  Result<std::unique_ptr<UnitLease>> TryAcquire(std::string_view unit, std::string_view holder) override {
    if (!ValidUnit(unit)) return BadUnit(unit);
    {
      std::lock_guard lock(held_->mu);
      if (!held_->units.emplace(unit).second) {
        return Error(ErrorCode::kConflict,
                     fmt::format("lease '{}' is held by '{}' (this node)", unit, holder));
      }
    }
    auto lease = coord::Lease::TryAcquire(session_, std::string(unit), std::string(holder));
    if (!lease.ok()) {
      std::lock_guard lock(held_->mu);
      held_->units.erase(std::string(unit));
      return lease.error();
    }
    return std::unique_ptr<UnitLease>(new ZooKeeperLease(std::move(lease).value(), held_));
  }
  std::string Describe() const override { return "zookeeper"; }

 private:
  std::shared_ptr<coord::Session> session_;
  std::shared_ptr<HeldUnits> held_ = std::make_shared<HeldUnits>();
};

}  // namespace

InProcessLeaseService::InProcessLeaseService() : state_(std::make_shared<State>()) {}
InProcessLeaseService::~InProcessLeaseService() = default;

Result<std::unique_ptr<UnitLease>> InProcessLeaseService::TryAcquire(std::string_view unit,
                                                                     std::string_view holder) {
  if (!ValidUnit(unit)) return BadUnit(unit);
  std::lock_guard lock(state_->mu);
  if (auto it = state_->held.find(unit); it != state_->held.end()) {
    return Error(ErrorCode::kConflict, fmt::format("lease '{}' is held by '{}' (token {})", unit,
                                                   it->second.holder, it->second.token));
  }
  const int64_t token = ++state_->next_token;
  state_->held.emplace(std::string(unit), State::Held{std::string(holder), token});
  return std::unique_ptr<UnitLease>(new InProcessLease(state_, std::string(unit), token));
}

void InProcessLeaseService::ExpireForTesting(std::string_view unit) {
  std::lock_guard lock(state_->mu);
  if (auto it = state_->held.find(unit); it != state_->held.end()) state_->held.erase(it);
}

std::shared_ptr<LeaseService> MakeInProcessLeaseService() {
  return std::make_shared<InProcessLeaseService>();
}

std::shared_ptr<LeaseService> MakeZooKeeperLeaseService(std::shared_ptr<coord::Session> session) {
  return std::make_shared<ZooKeeperLeaseService>(std::move(session));
}

Result<ScopedLease> AcquireWithin(LeaseService& leases, std::string_view unit, std::string_view holder,
                                  std::chrono::milliseconds wait, std::string_view what,
                                  std::string_view busy) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::chrono::milliseconds pause{1};
  for (;;) {
    auto lease = leases.TryAcquire(unit, holder);
    if (lease.ok()) return ScopedLease(std::move(lease).value());
    if (lease.error().code != ErrorCode::kConflict) return lease.error().WithContext(what);
    if (std::chrono::steady_clock::now() >= deadline)
      return Error(ErrorCode::kUnavailable, std::string(busy));
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

std::string UnitName(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view part : parts) {
    if (!out.empty()) out.push_back('.');
    for (char c : part) {
      out.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ? c
                                                                                                    : '_');
    }
  }
  if (out.empty() || out == "." || out == "..") out = "_" + out;
  if (out.size() > 200) {
    // Distinct long names stay distinct: keep a prefix and a hash of the whole.
    const size_t h = std::hash<std::string>{}(out);
    out = fmt::format("{}.{:016x}", out.substr(0, 180), h);
  }
  return out;
}

}  // namespace sluice::jobs
