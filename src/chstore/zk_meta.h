// chstore::ZkMetaStore: the store::MetaStore every Sluice node shares — projects (tokens, API secrets,
// external ids, GCS bindings) and the small records of the upper modules (pipelines, their unit states and
// task history, connectors, their runs and checkpoints, static credentials) — kept in ZooKeeper, the
// coordination service ClickHouse replication already needs.
//
// Layout under `root` (relative to the session's chroot):
//   /projects                  its data is rewritten on every project change (ProjectsChangeStamp)
//   /projects/0000000042       one project, store codec (store/codec.h Project v2)
//   /project_ids               the last id handed out (decimal); CreateProject compare-and-sets it together
//                              with creating the project node, so ids are unique across nodes
//   /meta/<ns>                 one namespace; its data is rewritten on every write to it (ChangeStamp)
//   /meta/<ns>/<dir>/<leaf>    one record: <dir> is the key up to and including its last '/', <leaf> the
//                              rest, each encoded into a node name (EncodeNodeName). Splitting at the last
//                              '/' keeps each node's child list small: the keys of the upper modules are
//                              "<project>/<pipeline>/<unit>", "<connector>/<seq>" and the like, so one
//                              directory holds the units of one pipeline, not of the whole deployment.
//                              A part too long for a node name is named by its hash (RecordNodes).
//
// Durability: ZooKeeper acknowledges a write only after a quorum of the ensemble has logged it (fsync'd), so
// a returned PutMeta / CreateProject / UpdateProject survives the loss of a minority of the ensemble.
// Atomicity: each write is one ZooKeeper multi (record + change stamp); CreateProject and ModifyProject
// compare-and-set. Reads are not a snapshot: ScanMeta lists, then reads each record (a record deleted in
// between is skipped).
//
// Thread-safety: every method may be called from any thread concurrently (coord::Session is thread-safe and
// the store keeps no state of its own besides paths).
//
// Errors: ZooKeeper unreachable → kUnavailable naming the coordination service (its zookeeper:// URL, which
// holds no credentials) and what Sluice was doing; a value over kMaxMetaValueBytes → kTooLarge naming the
// namespace and key (never the value).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "coord/session.h"
#include "store/store.h"

namespace sluice::chstore {

/// Largest metadata value ZkMetaStore accepts. ZooKeeper refuses requests over jute.maxbuffer (1 MiB by
/// default, path and multi framing included); 768 KiB leaves room for those. The largest real records are
/// pipeline unit states (JSON listing a unit's published and undeleted file keys: ~100 bytes per file, so
/// ~7,000 files) and task / run records (a few KiB); tests/chstore/meta_test.cc checks that a unit state
/// with 2,000 files of realistic names fits.
inline constexpr size_t kMaxMetaValueBytes = 768 * 1024;
/// Largest metadata key, in bytes (node names escape most bytes, up to 3× longer).
inline constexpr size_t kMaxMetaKeyBytes = 1024;

struct ZkMetaOptions {
  /// Node under the session's chroot holding everything of this store: "/" segments of [A-Za-z0-9_.-].
  std::string root = "/store";
  /// Stamps created_ms of new projects; nullptr = SystemClock::Instance(). Not owned; must outlive the store.
  const Clock* clock = nullptr;
};

/// Encodes arbitrary bytes into a ZooKeeper node name (and back). Bytes [A-Za-z0-9-] stay as they are, every
/// other byte becomes "_XX" (uppercase hex), and a leading "k" makes the empty string a valid name. The
/// encoding is prefix-preserving (encode(p) is a prefix of encode(k) exactly when p is a prefix of k), never
/// yields "." or "..", and only uses characters coord::IsValidNodePath accepts.
std::string EncodeNodeName(std::string_view bytes);
/// nullopt when `name` is not an EncodeNodeName result.
std::optional<std::string> DecodeNodeName(std::string_view name);

class ZkMetaStore final : public store::MetaStore {
 public:
  /// Creates the layout under `options.root` when missing (idempotent; several nodes may open at once).
  /// kUnavailable when ZooKeeper does not answer, kInvalidArgument for a bad root.
  static Result<std::unique_ptr<ZkMetaStore>> Open(std::shared_ptr<coord::Session> session,
                                                   ZkMetaOptions options);

  // ---- store::MetaStore -----------------------------------------------------------------------------------
  /// The id is the last one handed out + 1, compare-and-set across nodes; token and API secret 128 random
  /// bits each, as the embedded store makes them.
  Result<store::Project> CreateProject(std::string_view name) override;
  /// Ascending by id.
  Result<std::vector<store::Project>> ListProjects() override;
  Result<std::optional<store::Project>> GetProject(uint32_t id) override;
  /// Replaces the whole record (as the embedded store does), kNotFound when the project does not exist. The
  /// set is versioned against the record read for the existence check, so a concurrent update is never mixed
  /// into this one: the result is one caller's record, whole.
  Status UpdateProject(const store::Project& project) override;

  Status PutMeta(std::string_view ns, std::string_view key, std::string_view value) override;
  /// The record write and the compare-and-set of the lease's fence (coord: /fences/NAME, advanced by every
  /// lease takeover) in one ZooKeeper multi: a token lower than the fence's is refused with kConflict "stale
  /// fencing token", the record unchanged. Requires the lease service on the same session chroot.
  Status PutMetaFenced(std::string_view ns, std::string_view key, std::string_view value,
                       const store::Fence& fence) override;
  Result<std::optional<std::string>> GetMeta(std::string_view ns, std::string_view key) override;
  Status DeleteMeta(std::string_view ns, std::string_view key) override;
  /// Records of `ns` whose key starts with `key_prefix`, ascending by (decoded) key.
  Status ScanMeta(std::string_view ns, std::string_view key_prefix,
                  const std::function<bool(std::string_view key, std::string_view value)>& fn) override;

  // ---- Shared-state extras --------------------------------------------------------------------------------
  /// Read-modify-write of one project without losing a concurrent change made by another node: reads the
  /// record, calls `mutate` on it (an error from `mutate` aborts and is returned), and writes it back only if
  /// nobody changed it in between; otherwise reads again and calls `mutate` again (bounded). The id cannot be
  /// changed. kNotFound when the project does not exist.
  Status ModifyProject(uint32_t id, const std::function<Status(store::Project&)>& mutate);

  /// Change stamps, for callers on other nodes to notice changes cheaply (one small ZooKeeper read) — the job
  /// runner polls the stamps of its namespaces, the project registry ProjectsChangeStamp(). A stamp is the
  /// ZooKeeper transaction id of the last write to the namespace (PutMeta, DeleteMeta) or to the projects
  /// (CreateProject, UpdateProject, ModifyProject): it grows with every such write on any node and is equal
  /// between two reads exactly when nothing was written in between. 0 = never written. Compare for equality
  /// with the stamp seen at the last full read; do not do arithmetic on it.
  Result<int64_t> ChangeStamp(std::string_view ns);
  /// Always a value (store::MetaStore's nullopt means "no stamp"); the registry of every node reads it on a
  /// lookup miss (api::ProjectRegistry).
  Result<std::optional<int64_t>> ProjectsChangeStamp() override;

  /// Whether ZooKeeper answers now (one read of the root), for /healthz's "coordination" part: OK, or
  /// kUnavailable naming the coordination service. Bounded by the session's timeouts (an expired session is
  /// reopened within connect_timeout).
  Status CheckReachable();

  const std::string& root() const { return options_.root; }

 private:
  ZkMetaStore(std::shared_ptr<coord::Session> session, ZkMetaOptions options);

  std::string ProjectPath(uint32_t id) const;
  std::string NamespacePath(std::string_view ns) const;
  /// Where one record lives: its key split at the last '/' into the directory part (with the '/') and the
  /// leaf, and their nodes. A part whose encoded name is over a path segment's 255 characters gets the name
  /// "h" + SHA-256(part) instead, and keeps the part in its node's data (a directory: the part; a record:
  /// varint length + leaf + value) so scans can still recover the key.
  struct RecordNodes {
    std::string ns_path;
    std::string_view dir;
    std::string_view leaf;
    std::string dir_path;
    std::string leaf_path;
    bool dir_hashed = false;
    bool leaf_hashed = false;
  };
  RecordNodes RecordPaths(std::string_view ns, std::string_view key) const;
  /// PutMeta, fenced by `fence` when not null.
  Status Upsert(std::string_view ns, std::string_view key, std::string_view value, const store::Fence* fence);
  /// kUnavailable rewritten to name the coordination service and `what`; other errors prefixed by `what`.
  Error Describe(const Error& error, std::string_view what) const;
  Result<std::optional<store::Project>> ReadProject(uint32_t id, int32_t* version);
  Error CorruptProject(uint32_t id) const;

  std::shared_ptr<coord::Session> session_;
  ZkMetaOptions options_;
  const Clock* clock_;
  std::string projects_path_;
  std::string ids_path_;
  std::string meta_path_;
};

}  // namespace sluice::chstore
