#include "coord/session.h"

#include <fmt/format.h>
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <cstring>
#include <mutex>

namespace sluice::coord {
namespace {

void Watcher(zhandle_t* zh, int type, int state, const char* /*path*/, void* context) {
  if (type == ZOO_SESSION_EVENT && context != nullptr)
    static_cast<Session*>(context)->OnSessionEvent(zh, state);
}

void QuietLibraryLogOnce() {
  // The library logs every reconnect at INFO to stderr; Sluice reports what matters through its own errors.
  static std::once_flag once;
  std::call_once(once, [] { zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR); });
}

NodeStat FromStat(const Stat& s) { return NodeStat{s.czxid, s.version, s.ephemeralOwner, s.mzxid}; }

constexpr int kMaxNodeBytes = 1 << 20;  // ZooKeeper's default jute.maxbuffer

}  // namespace

Error ZooError(int rc, std::string_view op, std::string_view path) {
  ErrorCode code;
  switch (rc) {
    case ZNONODE:
      code = ErrorCode::kNotFound;
      break;
    case ZNODEEXISTS:
    case ZBADVERSION:
    case ZNOTEMPTY:
      code = ErrorCode::kConflict;
      break;
    case ZCONNECTIONLOSS:
    case ZOPERATIONTIMEOUT:
    case ZSESSIONEXPIRED:
    case ZINVALIDSTATE:
    case ZCLOSING:
      code = ErrorCode::kUnavailable;
      break;
    case ZNOAUTH:
    case ZAUTHFAILED:
      code = ErrorCode::kAccessDenied;
      break;
    case ZBADARGUMENTS:
    case ZNOCHILDRENFOREPHEMERALS:
      code = ErrorCode::kInvalidArgument;
      break;
    default:
      code = ErrorCode::kInternal;
  }
  Error e(code, fmt::format("ZooKeeper {} {}: {}", op, path, zerror(rc)));
  e.provider_code = std::to_string(rc);
  return e;
}

Result<std::shared_ptr<Session>> Session::Open(Options options) {
  QuietLibraryLogOnce();
  std::shared_ptr<Session> session(new Session(std::move(options)));
  {
    std::unique_lock lock(session->mu_);
    SLUICE_TRY(session->OpenHandleLocked(lock));
  }
  if (!session->options_.url.chroot.empty()) {
    // Created without the chroot prefix (Full() would add it).
    std::string chroot = session->options_.url.chroot;
    SLUICE_ASSIGN_OR_RETURN(zhandle_t * zh, session->Handle());
    for (size_t pos = 1;;) {
      size_t next = chroot.find('/', pos);
      std::string prefix = chroot.substr(0, next);
      int rc = zoo_create(zh, prefix.c_str(), nullptr, -1, &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0);
      if (rc != ZOK && rc != ZNODEEXISTS) return ZooError(rc, "create chroot", prefix);
      if (next == std::string::npos) break;
      pos = next + 1;
    }
  }
  return session;
}

Session::~Session() {
  std::vector<zhandle_t*> handles;
  {
    std::lock_guard lock(mu_);
    handles = std::move(retired_);
    if (zh_ != nullptr) handles.push_back(zh_);
    zh_ = nullptr;
  }
  for (zhandle_t* zh : handles) zookeeper_close(zh);
}

void Session::OnSessionEvent(zhandle_t* zh, int state) {
  std::lock_guard lock(mu_);
  if (zh != zh_) return;  // a retired handle's late event
  state_ = state;
  cv_.notify_all();
}

Status Session::OpenHandleLocked(std::unique_lock<std::mutex>& lock) {
  if (zh_ != nullptr) retired_.push_back(zh_);
  zh_ = nullptr;
  state_ = 0;
  std::string hosts = options_.url.ConnectString();
  zhandle_t* zh = zookeeper_init(hosts.c_str(), Watcher, static_cast<int>(options_.session_timeout.count()),
                                 nullptr, this, 0);
  if (zh == nullptr) {
    return Unavailable(fmt::format("ZooKeeper {}: cannot start a client: {}", hosts, std::strerror(errno)));
  }
  zh_ = zh;
  bool ok = cv_.wait_for(lock, options_.connect_timeout, [&] {
    return state_ == ZOO_CONNECTED_STATE || state_ == ZOO_EXPIRED_SESSION_STATE ||
           state_ == ZOO_AUTH_FAILED_STATE;
  });
  if (!ok || state_ != ZOO_CONNECTED_STATE) {
    return Unavailable(
        fmt::format("ZooKeeper {} did not accept a session within {} ms (check --coordination and "
                    "that the ensemble runs)",
                    options_.url.ToString(), options_.connect_timeout.count()));
  }
  generation_.fetch_add(1);
  return OkStatus();
}

Result<zhandle_t*> Session::Handle() {
  std::unique_lock lock(mu_);
  if (zh_ == nullptr || state_ == ZOO_EXPIRED_SESSION_STATE || state_ == ZOO_AUTH_FAILED_STATE) {
    SLUICE_TRY(OpenHandleLocked(lock));
  }
  return zh_;
}

std::string Session::Full(std::string_view path) const {
  if (path == "/") return options_.url.chroot.empty() ? "/" : options_.url.chroot;
  return options_.url.chroot + std::string(path);
}

int64_t Session::session_id() const {
  std::lock_guard lock(mu_);
  if (zh_ == nullptr) return 0;
  const clientid_t* id = zoo_client_id(zh_);
  return id == nullptr ? 0 : id->client_id;
}

std::chrono::milliseconds Session::negotiated_timeout() const {
  std::lock_guard lock(mu_);
  return std::chrono::milliseconds(zh_ == nullptr ? 0 : zoo_recv_timeout(zh_));
}

bool Session::connected() const {
  std::lock_guard lock(mu_);
  return state_ == ZOO_CONNECTED_STATE;
}

bool Session::expired() const {
  std::lock_guard lock(mu_);
  return state_ == ZOO_EXPIRED_SESSION_STATE;
}

Result<NodeStat> Session::Create(std::string_view path, std::string_view data, bool ephemeral) {
  if (!IsValidNodePath(path) || path == "/")
    return InvalidArgument(fmt::format("bad ZooKeeper path '{}'", path));
  SLUICE_ASSIGN_OR_RETURN(zhandle_t * zh, Handle());
  std::string full = Full(path);
  Stat stat{};
  int rc = zoo_create2(zh, full.c_str(), data.data(), static_cast<int>(data.size()), &ZOO_OPEN_ACL_UNSAFE,
                       ephemeral ? ZOO_EPHEMERAL : 0, nullptr, 0, &stat);
  if (rc != ZOK) return ZooError(rc, "create", path);
  return FromStat(stat);
}

Status Session::EnsurePath(std::string_view path) {
  if (!IsValidNodePath(path)) return InvalidArgument(fmt::format("bad ZooKeeper path '{}'", path));
  size_t pos = 0;
  while (pos != std::string_view::npos && path != "/") {
    pos = path.find('/', pos + 1);
    auto created = Create(path.substr(0, pos), "");
    if (!created.ok() && created.error().code != ErrorCode::kConflict) return created.error();
  }
  return OkStatus();
}

Result<std::optional<Node>> Session::Get(std::string_view path) {
  SLUICE_ASSIGN_OR_RETURN(zhandle_t * zh, Handle());
  std::string full = Full(path);
  // Sluice's nodes are small (holder ids, tokens, progress records): start small, and read again with the
  // exact size when the node is larger (the library truncates silently; Stat.dataLength has the real size).
  std::string buffer(4096, '\0');
  // Bounded: a second round only when the node grew between the reads.
  for (int round = 0; round < 3; ++round) {
    int len = static_cast<int>(buffer.size());
    Stat stat{};
    int rc = zoo_get(zh, full.c_str(), 0, buffer.data(), &len, &stat);
    if (rc == ZNONODE) return std::optional<Node>();
    if (rc != ZOK) return ZooError(rc, "get", path);
    if (stat.dataLength <= static_cast<int>(buffer.size())) {
      buffer.resize(len < 0 ? 0 : static_cast<size_t>(len));
      return std::optional<Node>(Node{std::move(buffer), FromStat(stat)});
    }
    buffer.assign(static_cast<size_t>(std::min(stat.dataLength, kMaxNodeBytes)), '\0');
  }
  return Error(ErrorCode::kTransient, fmt::format("ZooKeeper get {}: the node keeps growing", path));
}

Result<NodeStat> Session::Set(std::string_view path, std::string_view data, int32_t version) {
  SLUICE_ASSIGN_OR_RETURN(zhandle_t * zh, Handle());
  std::string full = Full(path);
  Stat stat{};
  int rc = zoo_set2(zh, full.c_str(), data.data(), static_cast<int>(data.size()), version, &stat);
  if (rc != ZOK) return ZooError(rc, "set", path);
  return FromStat(stat);
}

Status Session::Delete(std::string_view path, int32_t version) {
  SLUICE_ASSIGN_OR_RETURN(zhandle_t * zh, Handle());
  std::string full = Full(path);
  int rc = zoo_delete(zh, full.c_str(), version);
  if (rc != ZOK) return ZooError(rc, "delete", path);
  return OkStatus();
}

Result<std::vector<std::string>> Session::Children(std::string_view path) {
  SLUICE_ASSIGN_OR_RETURN(zhandle_t * zh, Handle());
  std::string full = Full(path);
  String_vector names{};
  int rc = zoo_get_children(zh, full.c_str(), 0, &names);
  if (rc != ZOK) return ZooError(rc, "list children of", path);
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(names.count));
  for (int32_t i = 0; i < names.count; ++i) out.emplace_back(names.data[i]);
  deallocate_String_vector(&names);
  return out;
}

namespace {

// One GetMany window: the completions of its zoo_aget calls fill `nodes` and count down `pending`. Owned
// jointly by the caller and every outstanding completion, so a caller that stops waiting leaves it valid.
struct GetBatch {
  std::mutex mu;
  std::condition_variable cv;
  size_t pending = 0;
  std::vector<std::optional<Node>> nodes;
  int first_error = ZOK;
  size_t error_index = 0;
};
struct GetSlot {
  std::shared_ptr<GetBatch> batch;
  size_t index;
};

void GetCompletion(int rc, const char* value, int value_len, const Stat* stat, const void* data) {
  std::unique_ptr<GetSlot> slot(static_cast<GetSlot*>(const_cast<void*>(data)));
  GetBatch& b = *slot->batch;
  std::lock_guard lock(b.mu);
  if (rc == ZOK && stat != nullptr) {
    b.nodes[slot->index] =
        Node{std::string(value != nullptr ? value : "", value_len > 0 ? static_cast<size_t>(value_len) : 0),
             FromStat(*stat)};
  } else if (rc != ZNONODE && b.first_error == ZOK) {
    b.first_error = rc;
    b.error_index = slot->index;
  }
  if (--b.pending == 0) b.cv.notify_all();
}

}  // namespace

Result<std::vector<std::optional<Node>>> Session::GetMany(const std::vector<std::string>& paths) {
  // Outstanding requests per window: enough to hide the round trip, small enough to bound memory.
  constexpr size_t kWindow = 128;
  std::vector<std::optional<Node>> out(paths.size());
  for (size_t begin = 0; begin < paths.size(); begin += kWindow) {
    const size_t end = std::min(paths.size(), begin + kWindow);
    SLUICE_ASSIGN_OR_RETURN(zhandle_t * zh, Handle());
    auto batch = std::make_shared<GetBatch>();
    batch->nodes.resize(end - begin);
    for (size_t i = begin; i < end; ++i) {
      std::string full = Full(paths[i]);
      auto* slot = new GetSlot{batch, i - begin};
      {
        std::lock_guard lock(batch->mu);
        ++batch->pending;
      }
      int rc = zoo_aget(zh, full.c_str(), 0, GetCompletion, slot);
      if (rc != ZOK) {  // not queued: its completion never runs
        delete slot;
        std::unique_lock lock(batch->mu);
        --batch->pending;
        if (batch->first_error == ZOK) {
          batch->first_error = rc;
          batch->error_index = i - begin;
        }
        break;
      }
    }
    std::unique_lock lock(batch->mu);
    // Bounded: the library completes every queued request (with ZCONNECTIONLOSS at the latest when the
    // connection is given up, ZCLOSING on close); the deadline is a backstop.
    const auto limit = std::chrono::milliseconds(zoo_recv_timeout(zh)) * 2 + options_.connect_timeout;
    if (!batch->cv.wait_for(lock, limit, [&] { return batch->pending == 0; })) {
      return Unavailable(fmt::format("ZooKeeper {}: no answer to reads within {} ms", options_.url.ToString(),
                                     limit.count()));
    }
    if (batch->first_error != ZOK) {
      return ZooError(batch->first_error, "get", paths[begin + batch->error_index]);
    }
    for (size_t i = begin; i < end; ++i) out[i] = std::move(batch->nodes[i - begin]);
  }
  return out;
}

Status Session::Multi(const std::vector<Op>& ops) {
  if (ops.empty()) return OkStatus();
  SLUICE_ASSIGN_OR_RETURN(zhandle_t * zh, Handle());
  std::vector<std::string> full;
  full.reserve(ops.size());
  for (const Op& op : ops) full.push_back(Full(op.path));
  std::vector<zoo_op_t> zops(ops.size());
  std::vector<zoo_op_result_t> results(ops.size());
  std::vector<Stat> stats(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    switch (op.kind) {
      case Op::Kind::kCreate:
        zoo_create_op_init(&zops[i], full[i].c_str(), op.data.data(), static_cast<int>(op.data.size()),
                           &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0);
        break;
      case Op::Kind::kSet:
        zoo_set_op_init(&zops[i], full[i].c_str(), op.data.data(), static_cast<int>(op.data.size()),
                        op.version, &stats[i]);
        break;
      case Op::Kind::kCheck:
        zoo_check_op_init(&zops[i], full[i].c_str(), op.version);
        break;
      case Op::Kind::kDelete:
        zoo_delete_op_init(&zops[i], full[i].c_str(), op.version);
        break;
    }
  }
  int rc = zoo_multi(zh, static_cast<int>(zops.size()), zops.data(), results.data());
  if (rc == ZOK) return OkStatus();
  // Name the op that failed (the others report ZRUNTIMEINCONSISTENCY or ZOK).
  for (size_t i = 0; i < ops.size(); ++i) {
    if (results[i].err != ZOK && results[i].err != ZRUNTIMEINCONSISTENCY) {
      return ZooError(results[i].err, "multi", ops[i].path);
    }
  }
  return ZooError(rc, "multi", ops.front().path);
}

Status Session::ExpireForTesting() {
  std::string hosts = options_.url.ConnectString();
  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    int state = 0;
  };
  auto watcher = [](zhandle_t*, int type, int state, const char*, void* ctx) {
    if (type != ZOO_SESSION_EVENT) return;
    auto* w = static_cast<Waiter*>(ctx);
    std::lock_guard lock(w->mu);
    w->state = state;
    w->cv.notify_all();
  };
  // The twin taking the session over makes the server drop this handle's connection; if this handle
  // reconnects before the twin's close arrives it takes the session back and the close does nothing. So:
  // bounded rounds.
  for (int round = 0; round < 8; ++round) {
    clientid_t id{};
    {
      std::lock_guard lock(mu_);
      if (zh_ == nullptr) return Internal("no session to expire");
      if (state_ == ZOO_EXPIRED_SESSION_STATE) return OkStatus();
      id = *zoo_client_id(zh_);
    }
    Waiter waiter;
    zhandle_t* twin = zookeeper_init(hosts.c_str(), watcher,
                                     static_cast<int>(options_.session_timeout.count()), &id, &waiter, 0);
    if (twin == nullptr) return Unavailable("cannot open the twin handle");
    {
      std::unique_lock lock(waiter.mu);
      waiter.cv.wait_for(lock, options_.connect_timeout, [&] { return waiter.state != 0; });
    }
    zookeeper_close(twin);  // closing the joined session ends it for this handle too
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, std::chrono::milliseconds(1500),
                     [&] { return state_ == ZOO_EXPIRED_SESSION_STATE; })) {
      return OkStatus();
    }
  }
  return Internal("the session did not expire");
}

}  // namespace sluice::coord
