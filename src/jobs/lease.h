// jobs::LeaseService: exclusive ownership of one unit of work (a partition export, a connector's import run)
// with a fencing token, so that two Sluice nodes never work on the same unit at once.
//
// Two implementations:
//   - in-process (MakeInProcessLeaseService): one node on the embedded store; leases live in memory and only
//     keep this process's own workers apart.
//   - ZooKeeper (MakeZooKeeperLeaseService): coord::Lease, an ephemeral node plus a fence; a dead node's
//   lease
//     goes away with its ZooKeeper session, and a later holder always has a larger token.
//
//   auto lease = leases->TryAcquire("export.p7.events-daily.2026-12-06", node_id);
//   if (!lease.ok()) { /* kConflict: another holder has it; try later */ }
//   SLUICE_TRY((*lease)->Renew());   // before each piece of work and before committing the unit's state
//   ...
//   (*lease)->Release();
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice::coord {
class Session;
}

namespace sluice::jobs {

class UnitLease {
 public:
  virtual ~UnitLease() = default;
  virtual const std::string& unit() const = 0;
  /// Larger than the token of every earlier holder of this unit.
  virtual int64_t token() const = 0;
  /// Local, cheap: true once the lease is known to be lost (must stop). False proves nothing: Renew() asks.
  virtual bool Lost() const = 0;
  /// Confirms the lease is still this holder's; kConflict "... lost ..." once it is not, kUnavailable when
  /// the lease service cannot be asked (the holder must not assume it still holds it either way).
  virtual Status Renew() = 0;
  /// Gives the lease up if still held. Idempotent.
  virtual Status Release() = 0;
  /// True when the lease lives in ZooKeeper (coord::Lease), whose fence /fences/NAME a fenced store write
  /// (store::MetaStore::PutMetaFenced, see PutMetaUnderLease) compares against; false for in-process leases,
  /// whose tokens mean nothing to another node.
  virtual bool coordinated() const { return false; }
};

class LeaseService {
 public:
  virtual ~LeaseService() = default;
  /// One attempt. kConflict naming the current holder when the unit is taken; kInvalidArgument for a unit
  /// name that is not [A-Za-z0-9_.-]+ (see UnitName).
  virtual Result<std::unique_ptr<UnitLease>> TryAcquire(std::string_view unit, std::string_view holder) = 0;
  /// "in-process" or the ZooKeeper URL's hosts, for logs.
  virtual std::string Describe() const = 0;
};

/// Leases in this process's memory (the embedded store: one node). Thread-safe.
class InProcessLeaseService final : public LeaseService {
 public:
  InProcessLeaseService();
  ~InProcessLeaseService() override;
  Result<std::unique_ptr<UnitLease>> TryAcquire(std::string_view unit, std::string_view holder) override;
  std::string Describe() const override { return "in-process"; }
  /// Test hook: takes the lease away from its holder as an expiry would (its Renew() then fails).
  void ExpireForTesting(std::string_view unit);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

std::shared_ptr<LeaseService> MakeInProcessLeaseService();
/// Leases as coord::Lease nodes in the session's chroot.
std::shared_ptr<LeaseService> MakeZooKeeperLeaseService(std::shared_ptr<coord::Session> session);

/// A held lease, released when this goes out of scope.
class ScopedLease {
 public:
  explicit ScopedLease(std::unique_ptr<UnitLease> lease) : lease_(std::move(lease)) {}
  ScopedLease(ScopedLease&&) noexcept = default;
  ScopedLease& operator=(ScopedLease&&) = delete;
  ~ScopedLease() {
    if (lease_) (void)lease_->Release();
  }
  UnitLease& operator*() const { return *lease_; }
  UnitLease* operator->() const { return lease_.get(); }

 private:
  std::unique_ptr<UnitLease> lease_;
};

/// Waits up to `wait` for `unit`: a lease every node sharing the store takes for a few store round trips
/// around a read-modify-write of shared records (a lock across nodes; see the pipeline and connector
/// managers). kUnavailable `busy` once the wait is over; another error of the service with `what` as context.
Result<ScopedLease> AcquireWithin(LeaseService& leases, std::string_view unit, std::string_view holder,
                                  std::chrono::milliseconds wait, std::string_view what,
                                  std::string_view busy);

/// A lease name from parts: every character outside [A-Za-z0-9_.-] becomes '_' and parts are joined with '.'
/// (so "p7", "events daily" → "p7.events_daily"); names longer than 200 characters keep a hash suffix.
std::string UnitName(std::initializer_list<std::string_view> parts);

}  // namespace sluice::jobs
