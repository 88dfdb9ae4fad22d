// coord::Lease: exclusive ownership of one unit of work (a partition export, a file import) across Sluice
// nodes, with a fencing token.
//
// Layout under the coordination chroot:
//   /leases/NAME   ephemeral node of the holder's session; data = holder id; its czxid is the fencing token
//   /fences/NAME   persistent; data = the highest token that has taken the lease or written under it
//
// Why an ephemeral node: the ensemble deletes it when the holder's session expires (the holder died, or was
// cut off for longer than the session timeout), which is exactly "the lease expired" — no clock of ours is
// trusted. The session's heartbeats renew it; Renew() is the holder's check before each piece of work.
//
// Why a fencing token: a holder can be paused (GC, SIGSTOP, a slow disk) past its expiry and wake up
// believing it still holds the lease. Tokens are zxids, so a later holder's token is always larger; a fenced
// write (FencedSet) compares-and-sets /fences/NAME in the same ZooKeeper transaction as the write and refuses
// a token lower than the highest seen. Taking a lease advances the fence at once, so a stale holder is
// refused even before the new holder writes anything. State kept elsewhere (ClickHouse rows, object names)
// carries the token the same way.
//
//   auto lease = coord::Lease::TryAcquire(session, "export.p7.2026-12-06T04", "node-a");
//   if (!lease.ok()) { /* kConflict: another node holds it; try later */ }
//   while (work) {
//     SLUICE_TRY((*lease)->Renew());                     // lost → stop before doing more
//     ...; SLUICE_TRY((*lease)->FencedSet("/state/export.p7", progress));
//   }
//   (*lease)->Release();
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "coord/session.h"

namespace sluice::coord {

struct LeaseHolder {
  std::string holder;
  int64_t token = 0;
  int64_t session_id = 0;
};

class Lease {
 public:
  /// One attempt. kConflict naming the current holder when the lease is taken; kInvalidArgument for a name
  /// that is not one path segment of [A-Za-z0-9_.-].
  static Result<std::unique_ptr<Lease>> TryAcquire(std::shared_ptr<Session> session, std::string name,
                                                   std::string holder);
  /// Who holds `name` now, or nullopt.
  static Result<std::optional<LeaseHolder>> CurrentHolder(Session& session, std::string_view name);

  /// Releases if still held (best effort).
  ~Lease();
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  const std::string& name() const { return name_; }
  /// The fencing token: larger than the token of every earlier holder of this name.
  int64_t token() const { return token_; }

  /// Local, no network: true once the session that took the lease has expired or been replaced. A holder that
  /// sees true must stop; false does not prove the lease is still held (Renew() asks the ensemble).
  bool Lost() const;
  /// Confirms with the ensemble that the lease is still this holder's. kConflict "lost" after expiry or a
  /// takeover; kUnavailable while the ensemble cannot be asked (the holder must not assume it still holds
  /// it).
  Status Renew();
  /// Deletes the lease node if it is still this holder's. Idempotent.
  Status Release();
  /// Writes `data` to `path` (created with its parents when absent) fenced by this lease's token.
  Status FencedSet(std::string_view path, std::string_view data);

 private:
  Lease(std::shared_ptr<Session> session, std::string name, std::string holder, int64_t token,
        int64_t session_id, uint64_t generation)
      : session_(std::move(session)),
        name_(std::move(name)),
        holder_(std::move(holder)),
        token_(token),
        session_id_(session_id),
        generation_(generation) {}

  std::shared_ptr<Session> session_;
  std::string name_;
  std::string holder_;
  int64_t token_;
  int64_t session_id_;
  uint64_t generation_;
  bool released_ = false;
};

/// A fenced write with an explicit token (what a lease holder does through Lease::FencedSet; exposed so state
/// kept for a unit can be written by code that carries the token, and for tests of stale tokens). kConflict
/// "stale fencing token" when a holder with a larger token has taken the lease or written.
Status FencedSet(Session& session, std::string_view lease_name, int64_t token, std::string_view path,
                 std::string_view data);

/// The fence half of a fenced write, for a caller that puts its own writes in the same Session::Multi (the
/// shared metadata store's PutMetaFenced): reads /fences/NAME and returns the op that compare-and-sets it to
/// `token` (a Set at the version read, or a Create when no fence exists yet). kConflict "stale fencing token"
/// when a holder with a larger token has taken the lease or written. A Multi that fails with kConflict lost a
/// race with another writer of the fence: call again to decide again.
Result<Op> FenceOp(Session& session, std::string_view lease_name, int64_t token);

/// Raises /fences/NAME to `token` unless it is already higher (kConflict then). Lease::TryAcquire calls it.
Status AdvanceFence(Session& session, std::string_view lease_name, int64_t token);

}  // namespace sluice::coord
