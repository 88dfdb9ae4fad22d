// The embedded store: one RocksDB database in the data dir holding projects, events partitioned by
// (project, UTC hour), per-partition change tracking, profiles, the identity map and small metadata records
// for the modules above (pipelines, connectors).
//
// Thread-safety: every method may be called from any thread concurrently.
// Durability: every write method returns only after its data is in the synced journal (journal.h);
// concurrent writers are group-committed (one write and one fsync serve all writers waiting at that moment).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/event.h"
#include "common/result.h"
#include "common/secret.h"

namespace sluice::store {

/// Hours since the Unix epoch (UTC): the event partition unit.
using Hour = uint32_t;
inline Hour HourOf(int64_t time_us) { return static_cast<Hour>(time_us / 3'600'000'000LL); }

struct Project {
  uint32_t id = 0;
  std::string name;
  std::string token;  // public project token (SDKs embed it)
  Secret api_secret;  // server-side secret
  int64_t created_ms = 0;
  /// ExternalId used when assuming customer roles; empty = the project token (SPEC §5).
  std::string external_id;
  /// GCS buckets the operator bound to this project: the only ones its pipelines and imports may reach as
  /// Sluice's one service account (storage_access::CheckGcsBinding). Empty for projects stored before
  /// bindings.
  std::vector<std::string> gcs_buckets;
};

/// A read-only view of a stored event; the string_views point into storage owned by the scan and are valid
/// only during the callback.
struct EventView {
  std::string_view name;
  int64_t time_us = 0;
  std::string_view distinct_id;
  std::string_view device_id;
  std::string_view user_id;
  std::string_view insert_id;
  std::string_view properties;  // minified JSON object text (see common/event.h)
  int64_t ingested_ms = 0;
};

/// Change tracking of one partition. `change_seq` is the global store sequence of the last write that touched
/// the partition: it only grows, so "changed since I exported at seq S" is `change_seq > S`.
struct PartitionInfo {
  uint32_t project = 0;
  Hour hour = 0;
  uint64_t writes = 0;  // events written, counting replacements of an existing dedup key
  uint64_t bytes = 0;   // stored bytes written (same counting)
  uint64_t change_seq = 0;
};

struct StoreOptions {
  /// RocksDB block cache and write buffer sizes bound the store's memory.
  size_t block_cache_bytes = 64ull << 20;
  size_t write_buffer_bytes = 64ull << 20;
  /// Map and touch two events memtables (2 x write_buffer_bytes) at open and keep them, instead of
  /// taking fresh memory from the kernel as memtables fill: no page faults or kernel zeroing on the write path,
  /// at the price of that memory being resident from the start (the server's default; see memtable_pool.h).
  /// The journal's O_DIRECT write buffer is allocated and touched at open as well (one write group, 16 MB).
  bool reserve_memtables = false;
  /// Sync the WAL before a write returns (turn off only in benchmarks that say so).
  bool sync_writes = true;
  /// Stamps `ingested_ms` on written events; nullptr = SystemClock::Instance(). Not owned; must outlive the
  /// store.
  const Clock* clock = nullptr;
  /// Tests only: called by the write leader after a group is in the journal and before it is applied (a
  /// crash test kills the process there).
  std::function<void()> after_journal_append_for_testing;
  /// Tests only: called before each journaled record is applied; returning true makes that apply fail as a
  /// RocksDB write error would.
  std::function<bool()> fail_apply_for_testing;
};

// ---- Profile operations -------------------------------------------------------------------------------------
// Profile updates travel to the store as data, not as a read-modify-write callback: a backend shared by several
// nodes (ClickHouse) appends them to a log and folds the log when a profile is read, so two nodes updating one
// profile at once never lose an update ($add, $union). The store never interprets an operation: the
// ProfileFolder (implemented by ingest, which the store must not depend on) does.

/// One profile's operations in one call: its id (distinct_id, or group_id for group profiles) and its
/// operations in the order they apply, each encoded by the folder's module (ingest: one ProfileUpdate as JSON).
struct ProfileOps {
  std::string id;
  std::vector<std::string> ops;
};

/// An operation a fold did not apply, and why.
struct ProfileOpRefusal {
  size_t change = 0;  // index into ApplyProfileOps' `changes` (the store sets it; a folder leaves 0)
  size_t op = 0;      // index into that change's ops
  std::string field;  // e.g. "$add.score", "profile"
  std::string message;
  std::string reason;  // short stable label, e.g. "number_out_of_range", "profile_too_large"
};

/// What folding some operations into a profile gives.
struct ProfileFold {
  bool changed = false;                // false: the profile stays as it was
  std::optional<std::string> profile;  // when changed: the new JSON text, nullopt = no profile (deleted)
  std::vector<ProfileOpRefusal> refused;
};

/// Applies encoded profile operations. Must be a pure function of its arguments (a backend folds the same
/// operations again at read time, on any node) and thread-safe.
class ProfileFolder {
 public:
  virtual ~ProfileFolder() = default;
  /// Applies `ops` (one call's operations of one profile, in order) to `current` (nullopt = no profile).
  virtual ProfileFold Fold(const std::optional<std::string>& current, std::span<const std::string> ops) const = 0;
};

/// One part of a store and whether it answers (Store::CheckReachable).
struct Reachability {
  std::string part;
  Status status;
};

// The store is split by concern so a backend can be composed of parts that live in different systems (the
// ClickHouse backend keeps events and profiles in ClickHouse, projects and metadata in ZooKeeper): EventStore
// (events, change tracking, the identity map written with them), ProfileStore (user and group profiles),
// MetaStore (projects and small records of the modules above). Store is all three plus operations; callers
// that need one concern take that part.

class EventStore {
 public:
  virtual ~EventStore() = default;
  // ---- Events ---------------------------------------------------------------------------------------------
  /// Writes events (dedup key: name, distinct_id, time to the second, insert_id; a later write of the same
  /// key replaces the earlier one) and identity links (first link of a device wins) atomically, updates
  /// partition change tracking, and returns after the WAL is synced.
  virtual Status WriteEvents(uint32_t project, std::span<const Event> events,
                             std::span<const IdentityLink> links = {}) = 0;

  /// Events handed over one at a time and written together by WriteEventBatch: what WriteEvents does, for a
  /// producer that has each event's properties at hand only while it parses that event (ingest::ParseOptions
  /// ::sink). Nothing is written until WriteEventBatch; a batch that is dropped instead writes nothing.
  class EventBatch : public EventSink {
   public:
    /// Events added so far.
    virtual size_t size() const = 0;
  };
  /// A batch for `project`'s events; `bytes_hint` is about what they will take (e.g. the request's size).
  /// The default keeps copies of the events for WriteEvents; RocksStore encodes each into its write batch
  /// as it arrives, so the properties are copied once, while they are still in the cache.
  virtual std::unique_ptr<EventBatch> NewEventBatch(uint32_t project, size_t bytes_hint);
  /// Writes `batch` (made by this store's NewEventBatch) and `links` exactly as WriteEvents would write the
  /// same events and links: atomically, durable on return. The batch is emptied, written or not, and may be
  /// filled again (its memory is kept).
  virtual Status WriteEventBatch(EventBatch& batch, std::span<const IdentityLink> links = {});

  /// Calls `fn` for every stored event of one partition (order unspecified but stable). `fn` returns false to
  /// stop early. Reads a consistent snapshot.
  virtual Status ScanPartition(uint32_t project, Hour hour,
                               const std::function<bool(const EventView&)>& fn) = 0;
  /// Calls `fn` for every stored event of the partitions with hour in [first, end), hour by hour ascending
  /// (within an hour as ScanPartition), from one consistent snapshot. `fn` returns false to stop early. A
  /// day's export uses this: RocksStore sets up one iterator for the whole range, and setting one up sorts
  /// the unflushed events of the write buffer, which per hour cost 24 sorts a day (~45% of an export's CPU
  /// right after an import). The default scans hour by hour (one snapshot per hour).
  virtual Status ScanPartitions(uint32_t project, Hour first, Hour end,
                                const std::function<bool(const EventView&)>& fn) {
    bool stopped = false;
    for (Hour hour = first; hour < end && !stopped; ++hour) {
      Status s =
          ScanPartition(project, hour, [&](const EventView& e) { return fn(e) || (stopped = true, false); });
      if (!s.ok()) return s;
    }
    return OkStatus();
  }

  /// Partitions of `project` with hour in [from, to], ascending by hour.
  virtual Result<std::vector<PartitionInfo>> ListPartitions(uint32_t project, Hour from, Hour to) = 0;
  /// Partitions of any hour whose change_seq > `after_seq`, ascending by hour.
  virtual Result<std::vector<PartitionInfo>> ChangedPartitions(uint32_t project, uint64_t after_seq) = 0;
  /// The highest change sequence S such that every WriteEvents call issued a sequence <= S has finished
  /// (committed or failed). Concurrent writers can commit out of issue order, so the highest sequence issued
  /// may not be visible yet; an exporter that records S after reading partitions would then skip the
  /// lagging write. With this watermark, "export, then remember S read before the export" never misses data.
  virtual uint64_t LastChangeSeq() const = 0;

  // ---- Identity -------------------------------------------------------------------------------------------
  virtual Result<std::optional<std::string>> ResolveDevice(uint32_t project, std::string_view device_id) = 0;
  /// Every (device_id, user_id) link of the project.
  virtual Status ScanIdentity(
      uint32_t project,
      const std::function<bool(std::string_view device_id, std::string_view user_id)>& fn) = 0;
};

class ProfileStore {
 public:
  virtual ~ProfileStore() = default;

  // ---- Profiles -------------------------------------------------------------------------------------------
  /// Applies each change's operations in order with `folder`, to the user profiles of `project` (`group_key`
  /// empty) or to the group profiles of (project, group_key); changes naming the same id apply one after the
  /// other. The operations not applied are appended to `refused` (when not null) with their change and op
  /// index. Returns after the result is durable. The embedded store folds under per-profile locks and
  /// commits one synced batch, so the report is exact; a shared backend stores the operations and folds them
  /// in order at read time (the stored result is exact), and computes the report against the profile as read
  /// at write time (best effort when other nodes write the same profile at once).
  virtual Status ApplyProfileOps(uint32_t project, std::string_view group_key,
                                 std::span<const ProfileOps> changes, const ProfileFolder& folder,
                                 std::vector<ProfileOpRefusal>* refused) = 0;
  virtual Result<std::optional<std::string>> GetProfile(uint32_t project, std::string_view distinct_id) = 0;
  /// Every profile of the project whose distinct_id is greater than `after` (bytewise; empty: from the
  /// first), ascending by distinct_id; `fn` returns false to stop. A page of a long listing resumes after the
  /// last id of the one before without reading it again.
  virtual Status ScanProfiles(
      uint32_t project, std::string_view after,
      const std::function<bool(std::string_view distinct_id, std::string_view json)>& fn) = 0;

  // ---- Group profiles (/groups) ---------------------------------------------------------------------------
  /// Group profiles are written by ApplyProfileOps with a non-empty group_key.
  virtual Result<std::optional<std::string>> GetGroupProfile(uint32_t project, std::string_view group_key,
                                                             std::string_view group_id) = 0;
  /// Every group profile of (project, group_key) whose group_id is greater than `after` (as ScanProfiles),
  /// ascending by group_id; `fn` returns false to stop.
  virtual Status ScanGroupProfiles(
      uint32_t project, std::string_view group_key, std::string_view after,
      const std::function<bool(std::string_view group_id, std::string_view json)>& fn) = 0;
};

/// The lease a metadata write is fenced by (MetaStore::PutMetaFenced): its name and the writer's fencing
/// token.
struct Fence {
  std::string lease;
  int64_t token = 0;
};

class MetaStore {
 public:
  virtual ~MetaStore() = default;

  // ---- Projects -------------------------------------------------------------------------------------------
  /// Creates a project with a fresh id, a random token and API secret (128 bits each).
  virtual Result<Project> CreateProject(std::string_view name) = 0;
  virtual Result<std::vector<Project>> ListProjects() = 0;
  virtual Result<std::optional<Project>> GetProject(uint32_t id) = 0;
  virtual Status UpdateProject(const Project& project) = 0;
  /// A value that changes with every project write on any node sharing the store (create, update), for a
  /// registry to tell cheaply whether its view is stale: compare for equality with the stamp read before the
  /// last full ListProjects. nullopt = this store has no such stamp (the default: the embedded store, whose
  /// only writer is its own process).
  virtual Result<std::optional<int64_t>> ProjectsChangeStamp() { return std::optional<int64_t>(); }

  // ---- Metadata for upper modules (pipelines, connectors, checkpoints)
  // -------------------------------------
  /// Namespaced small records; `ns` like "pipeline", key free-form. Synced on write.
  virtual Status PutMeta(std::string_view ns, std::string_view key, std::string_view value) = 0;
  virtual Result<std::optional<std::string>> GetMeta(std::string_view ns, std::string_view key) = 0;
  /// PutMeta only while `fence` is current: the write and the fence's compare-and-set are one atomic step,
  /// and a token lower than the highest one seen for `fence.lease` (its lease was taken over since) is
  /// refused with kConflict "stale fencing token", the record unchanged. The shared store (ZkMetaStore)
  /// fences against coord's /fences/NAME, which the lease service advances on every takeover.
  /// Default (the embedded store, one node): a plain PutMeta. Its leases are in-process
  /// (jobs::InProcessLeaseService): they never expire on their own, only their holder releases them, so no
  /// other holder can take a unit over while this one still runs and a stale write cannot happen.
  virtual Status PutMetaFenced(std::string_view ns, std::string_view key, std::string_view value,
                               const Fence& fence) {
    (void)fence;
    return PutMeta(ns, key, value);
  }
  virtual Status DeleteMeta(std::string_view ns, std::string_view key) = 0;
  /// Records of `ns` whose key starts with `key_prefix`, ascending by key.
  virtual Status ScanMeta(std::string_view ns, std::string_view key_prefix,
                          const std::function<bool(std::string_view key, std::string_view value)>& fn) = 0;
};

class Store : public EventStore, public ProfileStore, public MetaStore {
 public:
  /// Opens (creating when missing) the store under `dir`. Fails with a message naming the directory when it
  /// cannot be opened (permissions, another process holding the lock, corruption).
  static Result<std::unique_ptr<Store>> Open(const std::filesystem::path& dir,
                                             const StoreOptions& options = {});

  ~Store() override = default;

  // ---- Operations -----------------------------------------------------------------------------------------
  /// Seconds writers have been held back by the store (RocksDB write stalls and slowdowns: flushes or L0
  /// compaction behind), for /metrics.
  virtual double StallSeconds() { return 0; }
  /// Approximate on-disk size (SST + WAL + blobs), for /metrics.
  virtual uint64_t ApproximateSizeBytes() = 0;
  /// Whether each system the store lives in answers now, for /healthz: one entry per part ("store", and
  /// "coordination" for the ClickHouse backend), OK or an error that says what to check (never a credential).
  /// The embedded store is always reachable once open.
  virtual std::vector<Reachability> CheckReachable() { return {{"store", OkStatus()}}; }
  /// Flushes memtables and closes cleanly; further calls fail. Also done by the destructor.
  virtual Status Close() = 0;
};

/// Parts of a store that lives in other systems, assembled into one Store (the ClickHouse backend: events and
/// profiles in ClickHouse, projects and metadata in ZooKeeper). The parts are closed in reverse order.
struct StoreParts {
  std::unique_ptr<EventStore> events;
  std::unique_ptr<ProfileStore> profiles;
  std::unique_ptr<MetaStore> meta;
  /// Answers CheckReachable(); nullptr = {"store": OK}.
  std::function<std::vector<Reachability>()> check_reachable;
  /// Approximate bytes at rest, for /metrics; nullptr = 0.
  std::function<uint64_t()> size_bytes;
};
std::unique_ptr<Store> ComposeStore(StoreParts parts);

}  // namespace sluice::store
