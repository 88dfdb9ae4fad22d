#include "coord/lease.h"

#include <fmt/format.h>

#include <charconv>

namespace sluice::coord {
namespace {

constexpr std::string_view kLeases = "/leases";
constexpr std::string_view kFences = "/fences";
// Compare-and-set rounds against concurrent fenced writers; each lost round means another writer succeeded.
constexpr int kMaxCasRounds = 32;

bool IsLeaseName(std::string_view name) {
  return !name.empty() && name.find('/') == std::string_view::npos &&
         IsValidNodePath("/" + std::string(name));
}

std::string LeasePath(std::string_view name) { return fmt::format("{}/{}", kLeases, name); }
std::string FencePath(std::string_view name) { return fmt::format("{}/{}", kFences, name); }

std::string ParentOf(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? "/" : std::string(path.substr(0, slash));
}

Error StaleToken(std::string_view lease_name, int64_t token, int64_t highest) {
  return Error(ErrorCode::kConflict,
               fmt::format("stale fencing token {} for '{}': a holder with token {} took the lease since; this "
                           "holder must stop",
                           token, lease_name, highest));
}

// The fenced write loop: data == nullopt only advances the fence.
Status FencedWrite(Session& session, std::string_view lease_name, int64_t token, std::string_view path,
                   const std::optional<std::string_view>& data) {
  if (!IsLeaseName(lease_name)) return InvalidArgument(fmt::format("bad lease name '{}'", lease_name));
  if (data && (!IsValidNodePath(path) || path == "/")) {
    return InvalidArgument(fmt::format("bad ZooKeeper path '{}'", path));
  }
  std::string fence = FencePath(lease_name);
  std::string token_text = std::to_string(token);
  for (int round = 0; round < kMaxCasRounds; ++round) {
    SLUICE_ASSIGN_OR_RETURN(auto current, session.Get(fence));
    if (!current) {
      SLUICE_TRY(session.EnsurePath(kFences));
      auto created = session.Create(fence, token_text);
      if (!created.ok() && created.error().code != ErrorCode::kConflict) return created.error();
      continue;  // re-read: the version to compare against, or another writer's token
    }
    int64_t highest = 0;
    std::from_chars(current->data.data(), current->data.data() + current->data.size(), highest);
    if (token < highest) return StaleToken(lease_name, token, highest);
    std::vector<Op> ops;
    ops.push_back(Op::Set(fence, token_text, current->stat.version));
    if (data) {
      SLUICE_ASSIGN_OR_RETURN(auto target, session.Get(path));
      ops.push_back(target ? Op::Set(std::string(path), std::string(*data), -1)
                           : Op::Create(std::string(path), std::string(*data)));
    }
    Status st = session.Multi(ops);
    if (st.ok()) return OkStatus();
    if (st.error().code == ErrorCode::kNotFound && data) {
      SLUICE_TRY(session.EnsurePath(ParentOf(path)));
      continue;
    }
    if (st.error().code != ErrorCode::kConflict) return st;
    // kConflict: the fence moved (another writer) or the target appeared; re-read and decide again.
  }
  return Error(ErrorCode::kTransient,
               fmt::format("fenced write to {}: too much contention on '{}'", path, lease_name));
}

}  // namespace

Status FencedSet(Session& session, std::string_view lease_name, int64_t token, std::string_view path,
                 std::string_view data) {
  return FencedWrite(session, lease_name, token, path, data);
}

Result<Op> FenceOp(Session& session, std::string_view lease_name, int64_t token) {
  if (!IsLeaseName(lease_name)) return InvalidArgument(fmt::format("bad lease name '{}'", lease_name));
  std::string fence = FencePath(lease_name);
  SLUICE_ASSIGN_OR_RETURN(auto current, session.Get(fence));
  if (!current) {
    SLUICE_TRY(session.EnsurePath(kFences));
    return Op::Create(std::move(fence), std::to_string(token));
  }
  int64_t highest = 0;
  std::from_chars(current->data.data(), current->data.data() + current->data.size(), highest);
  if (token < highest) return StaleToken(lease_name, token, highest);
  return Op::Set(std::move(fence), std::to_string(token), current->stat.version);
}

Status AdvanceFence(Session& session, std::string_view lease_name, int64_t token) {
  return FencedWrite(session, lease_name, token, {}, std::nullopt);
}

Result<std::unique_ptr<Lease>> Lease::TryAcquire(std::shared_ptr<Session> session, std::string name,
                                                 std::string holder) {
  if (!IsLeaseName(name)) {
    return InvalidArgument(fmt::format("lease name '{}' must be one path segment of [A-Za-z0-9_.-]", name));
  }
  SLUICE_TRY(session->EnsurePath(kLeases));
  std::string path = LeasePath(name);
  uint64_t generation = 0;
  int64_t session_id = 0;
  int64_t token = 0;
  // Bounded: another round only when the node vanished between our create and our read (its holder released).
  for (int round = 0;; ++round) {
    auto created = session->Create(path, holder, /*ephemeral=*/true);
    // Create reopens an expired session itself, so read the session after it.
    session_id = session->session_id();
    generation = session->generation();
    if (created.ok()) {
      token = created->czxid;
      break;
    }
    if (created.error().code != ErrorCode::kConflict) return created.error();
    // Taken — possibly by us, when an earlier attempt's reply was lost with the connection.
    SLUICE_ASSIGN_OR_RETURN(auto node, session->Get(path));
    if (node && node->stat.ephemeral_owner == session_id) {
      token = node->stat.czxid;
      break;
    }
    if (node || round == 2) {
      return Error(ErrorCode::kConflict, node ? fmt::format("lease '{}' is held by '{}' (token {})", name,
                                                            node->data, node->stat.czxid)
                                              : fmt::format("lease '{}' is changing hands; try again", name));
    }
  }
  std::unique_ptr<Lease> lease(
      new Lease(std::move(session), std::move(name), std::move(holder), token, session_id, generation));
  // Fence out every earlier holder now. A failure here leaves the lease held but unusable: release it.
  Status fenced = AdvanceFence(*lease->session_, lease->name_, token);
  if (!fenced.ok()) {
    (void)lease->Release();
    return fenced.error();
  }
  return lease;
}

Result<std::optional<LeaseHolder>> Lease::CurrentHolder(Session& session, std::string_view name) {
  if (!IsLeaseName(name)) return InvalidArgument(fmt::format("bad lease name '{}'", name));
  SLUICE_ASSIGN_OR_RETURN(auto node, session.Get(LeasePath(name)));
  if (!node) return std::optional<LeaseHolder>();
  return std::optional<LeaseHolder>(LeaseHolder{node->data, node->stat.czxid, node->stat.ephemeral_owner});
}

Lease::~Lease() { (void)Release(); }

bool Lease::Lost() const { return released_ || session_->generation() != generation_ || session_->expired(); }

Status Lease::Renew() {
  auto lost = [&](std::string_view why) {
    return Error(ErrorCode::kConflict, fmt::format("lease '{}' (token {}) lost: {}", name_, token_, why));
  };
  if (released_) return lost("released");
  if (Lost()) return lost("the ZooKeeper session that held it expired");
  SLUICE_ASSIGN_OR_RETURN(auto node, session_->Get(LeasePath(name_)));
  if (session_->generation() != generation_) return lost("the ZooKeeper session that held it expired");
  if (!node) return lost("its node is gone (session expired)");
  if (node->stat.czxid != token_ || node->stat.ephemeral_owner != session_id_) {
    return lost(fmt::format("now held by '{}' (token {})", node->data, node->stat.czxid));
  }
  return OkStatus();
}

Status Lease::Release() {
  if (released_) return OkStatus();
  if (Lost()) {
    released_ = true;  // the ensemble already removed it with the session
    return OkStatus();
  }
  std::string path = LeasePath(name_);
  SLUICE_ASSIGN_OR_RETURN(auto node, session_->Get(path));
  if (node && node->stat.czxid == token_ && node->stat.ephemeral_owner == session_id_) {
    // Version-checked: a delete can only hit the node this holder created.
    Status st = session_->Delete(path, node->stat.version);
    if (!st.ok() && st.error().code != ErrorCode::kNotFound) return st;
  }
  released_ = true;
  return OkStatus();
}

Status Lease::FencedSet(std::string_view path, std::string_view data) {
  SLUICE_TRY(Renew());
  return coord::FencedSet(*session_, name_, token_, path, data);
}

}  // namespace sluice::coord
