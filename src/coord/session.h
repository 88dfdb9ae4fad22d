// coord::Session: one ZooKeeper session (libzookeeper-mt) for a zookeeper:// URL, reopened when it expires.
//
// The C library keeps a session alive across dropped connections by itself (it reconnects to any host of the
// ensemble within the negotiated session timeout). What it cannot do is survive an EXPIRED session: the
// server has then deleted the session's ephemeral nodes (leases!) and the handle is dead. Session opens a new
// handle on the next call and bumps generation(), so whoever held something under the old session
// (coord::Lease) can tell that it no longer does.
//
// Paths are relative to the URL's chroot, which Session creates on open. Operations are synchronous and
// thread-safe; each returns kUnavailable while the ensemble is unreachable (ZCONNECTIONLOSS is "unknown
// outcome": callers re-read before acting), kNotFound / kConflict for ZNONODE / ZNODEEXISTS, ZBADVERSION.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "coord/url.h"

typedef struct _zhandle zhandle_t;

namespace sluice::coord {

/// The parts of a ZooKeeper node's Stat that Sluice uses.
struct NodeStat {
  /// zxid of the transaction that created the node: unique and increasing across the whole ensemble, so the
  /// czxid of a re-created node is always larger — the fencing token of a lease.
  int64_t czxid = 0;
  int32_t version = 0;          // data version, for compare-and-set
  int64_t ephemeral_owner = 0;  // session id owning an ephemeral node, 0 for persistent nodes
  /// zxid of the last change of the node's data: grows with every set, across the ensemble (a cheap "did it
  /// change since I looked" stamp).
  int64_t mzxid = 0;
};

struct Node {
  std::string data;
  NodeStat stat;
};

/// One operation of an atomic Session::Multi.
struct Op {
  enum class Kind { kCreate, kSet, kCheck, kDelete } kind;
  std::string path;
  std::string data;
  int32_t version = -1;  // -1 = any
  static Op Create(std::string path, std::string data) {
    return {Kind::kCreate, std::move(path), std::move(data)};
  }
  static Op Set(std::string path, std::string data, int32_t version) {
    return {Kind::kSet, std::move(path), std::move(data), version};
  }
  static Op Check(std::string path, int32_t version) { return {Kind::kCheck, std::move(path), {}, version}; }
  static Op Delete(std::string path, int32_t version) {
    return {Kind::kDelete, std::move(path), {}, version};
  }
};

class Session {
 public:
  struct Options {
    ZooKeeperUrl url;
    /// Requested session timeout: how long the ensemble keeps a silent client's session (and its leases). The
    /// server clamps it to [2, 20] × its tickTime.
    std::chrono::milliseconds session_timeout{10'000};
    /// How long Open() and a reopen wait for the first connection.
    std::chrono::milliseconds connect_timeout{10'000};
  };

  /// Connects (bounded wait) and creates the chroot. kUnavailable naming the hosts when nothing answers.
  static Result<std::shared_ptr<Session>> Open(Options options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// Creates a node; `ephemeral` ties it to this session. Returns its stat.
  Result<NodeStat> Create(std::string_view path, std::string_view data, bool ephemeral = false);
  /// Creates `path` and any missing parents as empty persistent nodes; existing ones are fine.
  Status EnsurePath(std::string_view path);
  /// The node, or nullopt when it does not exist.
  Result<std::optional<Node>> Get(std::string_view path);
  /// Sets data if the node's version is `version` (-1 = any); kConflict on a version mismatch.
  Result<NodeStat> Set(std::string_view path, std::string_view data, int32_t version = -1);
  Status Delete(std::string_view path, int32_t version = -1);
  /// Names (not paths) of the node's children, unordered; kNotFound when the node does not exist.
  Result<std::vector<std::string>> Children(std::string_view path);
  /// Get() of many nodes with the requests pipelined (a bounded window in flight instead of one round trip
  /// each): element i is paths[i]'s node, or nullopt when it does not exist. Fails as a whole on any other
  /// error.
  Result<std::vector<std::optional<Node>>> GetMany(const std::vector<std::string>& paths);
  /// All-or-nothing; kConflict when a version check fails, kNotFound / kConflict for the failing op
  /// otherwise.
  Status Multi(const std::vector<Op>& ops);

  /// The current session's id (0 before the first connection).
  int64_t session_id() const;
  /// Increments every time a new session replaces an expired one.
  uint64_t generation() const { return generation_.load(); }
  /// Negotiated session timeout of the current session.
  std::chrono::milliseconds negotiated_timeout() const;
  /// True while connected (false while the library reconnects, and after expiry until the next call).
  bool connected() const;
  /// True once the current session has expired (until a call reopens it).
  bool expired() const;
  const ZooKeeperUrl& url() const { return options_.url; }

  /// Test hook: makes the ensemble expire this session now (the ZooKeeper test idiom: a second handle joins
  /// the session with its id and password, then closes it). Ephemeral nodes vanish; this handle then sees
  /// expiry.
  Status ExpireForTesting();

  /// Internal: the library's watcher callback lands here.
  void OnSessionEvent(zhandle_t* zh, int state);

 private:
  explicit Session(Options options) : options_(std::move(options)) {}
  /// The live handle, opening a new session first when the current one expired.
  Result<zhandle_t*> Handle();
  Status OpenHandleLocked(std::unique_lock<std::mutex>& lock);
  std::string Full(std::string_view path) const;

  Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  zhandle_t* zh_ = nullptr;  // guarded by mu_ for replacement; the library is thread-safe for calls
  int state_ = 0;            // last session state seen for zh_, guarded by mu_
  std::atomic<uint64_t> generation_{0};
  std::vector<zhandle_t*> retired_;  // expired handles, closed in the destructor (calls may still use them)
};

/// Maps a ZooKeeper C client return code to an Error for `op` on `path`.
Error ZooError(int rc, std::string_view op, std::string_view path);

}  // namespace sluice::coord
