#include "chstore/zk_meta.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <random>
#include <thread>
#include <utility>

#include "common/crypto.h"
#include "coord/lease.h"
#include "coord/url.h"
#include "store/codec.h"
#include "store/new_project.h"

namespace sluice::chstore {
namespace {

using coord::Op;

// Compare-and-set rounds before giving up: each lost round means another writer succeeded, so only heavy
// contention on one project (or on the id counter) gets anywhere near this.
constexpr int kMaxCasRounds = 200;
// Rounds of the create/set upsert of a record (a round is lost only to a concurrent create or delete).
constexpr int kMaxUpsertRounds = 16;

bool IsPlainByte(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Status CheckNamespace(std::string_view ns) {
  if (ns.empty() || ns.size() > 255) {
    return InvalidArgument("metadata namespace must be 1..255 bytes, got " + std::to_string(ns.size()));
  }
  return OkStatus();
}

Status CheckKey(std::string_view ns, std::string_view key) {
  if (key.size() > kMaxMetaKeyBytes) {
    return Error(ErrorCode::kTooLarge,
                 fmt::format("metadata key in namespace '{}' is {} bytes, over the limit of {} bytes", ns,
                             key.size(), kMaxMetaKeyBytes));
  }
  return OkStatus();
}

// Sleeps a little before the next compare-and-set round, randomized so two losers do not collide again.
void BackOff(int round) {
  thread_local std::minstd_rand rng(std::random_device{}());
  const int cap_us = std::min(200 * (round + 1), 5000);
  std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, cap_us)(rng)));
}

std::string Join(const std::string& parent, std::string_view name) {
  return parent + "/" + std::string(name);
}

// coord::IsValidNodePath's limit for one path segment.
constexpr size_t kMaxNodeNameChars = 255;

// The node name of one part of a key: EncodeNodeName when it fits in a segment, else "h" + the part's
// SHA-256 (hex), with the part itself kept in the node's data (ZkMetaStore::RecordNodes).
struct PartName {
  std::string name;
  bool hashed = false;
};
PartName NameFor(std::string_view part) {
  std::string plain = EncodeNodeName(part);
  if (plain.size() <= kMaxNodeNameChars) return {std::move(plain), false};
  return {"h" + HexEncode(Sha256(part)), true};
}

// Data of a record node with a hashed name: varint32 len(leaf) + leaf + value.
std::string HashedLeafData(std::string_view leaf, std::string_view value) {
  std::string out;
  store::internal::AppendVarint32(out, static_cast<uint32_t>(leaf.size()));
  out.append(leaf);
  out.append(value);
  return out;
}

bool ParseHashedLeafData(std::string_view data, std::string_view* leaf, std::string_view* value) {
  const char* p = data.data();
  const char* end = data.data() + data.size();
  uint32_t len = 0;
  if (!store::internal::ReadVarint32(&p, end, &len) || static_cast<size_t>(end - p) < len) return false;
  *leaf = std::string_view(p, len);
  *value = std::string_view(p + len, static_cast<size_t>(end - p) - len);
  return true;
}

}  // namespace

std::string EncodeNodeName(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(1 + bytes.size());
  out.push_back('k');
  for (char c : bytes) {
    if (IsPlainByte(c)) {
      out.push_back(c);
    } else {
      const auto b = static_cast<unsigned char>(c);
      out.push_back('_');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 15]);
    }
  }
  return out;
}

std::optional<std::string> DecodeNodeName(std::string_view name) {
  if (name.empty() || name[0] != 'k') return std::nullopt;
  std::string out;
  out.reserve(name.size());
  for (size_t i = 1; i < name.size(); ++i) {
    const char c = name[i];
    if (IsPlainByte(c)) {
      out.push_back(c);
      continue;
    }
    if (c != '_' || i + 2 >= name.size()) return std::nullopt;
    const int hi = HexValue(name[i + 1]);
    const int lo = HexValue(name[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>((hi << 4) | lo));
    i += 2;
  }
  return out;
}

ZkMetaStore::ZkMetaStore(std::shared_ptr<coord::Session> session, ZkMetaOptions options)
    : session_(std::move(session)),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &SystemClock::Instance()) {
  const std::string base = options_.root == "/" ? "" : options_.root;
  projects_path_ = base + "/projects";
  ids_path_ = base + "/project_ids";
  meta_path_ = base + "/meta";
}

Result<std::unique_ptr<ZkMetaStore>> ZkMetaStore::Open(std::shared_ptr<coord::Session> session,
                                                       ZkMetaOptions options) {
  if (session == nullptr) return InvalidArgument("ZkMetaStore needs a ZooKeeper session");
  if (!coord::IsValidNodePath(options.root)) {
    return InvalidArgument(fmt::format(
        "metadata root '{}' is not a ZooKeeper path of '/'-separated [A-Za-z0-9_.-] segments", options.root));
  }
  std::unique_ptr<ZkMetaStore> store(new ZkMetaStore(std::move(session), std::move(options)));
  for (const std::string& path : {store->projects_path_, store->meta_path_}) {
    if (Status s = store->session_->EnsurePath(path); !s.ok()) {
      return store->Describe(s.error(), "creating the metadata layout");
    }
  }
  auto existing = store->session_->Get(store->ids_path_);
  if (!existing.ok()) return store->Describe(existing.error(), "reading the project id counter");
  if (!existing->has_value()) {
    // A new deployment starts at 0; one whose counter was lost (restored from a partial backup) continues
    // after the highest project id present, so new ids never collide with existing projects.
    auto names = store->session_->Children(store->projects_path_);
    if (!names.ok()) return store->Describe(names.error(), "listing projects");
    uint32_t highest = 0;
    for (const std::string& n : *names) {
      uint32_t id = 0;
      auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), id);
      if (ec == std::errc() && end == n.data() + n.size()) highest = std::max(highest, id);
    }
    auto counter = store->session_->Create(store->ids_path_, std::to_string(highest));
    if (!counter.ok() && counter.error().code != ErrorCode::kConflict) {  // kConflict: another node's open
      return store->Describe(counter.error(), "creating the project id counter");
    }
  }
  return store;
}

Error ZkMetaStore::Describe(const Error& error, std::string_view what) const {
  Error out = error;
  if (error.code == ErrorCode::kUnavailable) {
    out.message = fmt::format(
        "coordination service {} is unreachable while {} (check --coordination and that the ZooKeeper "
        "ensemble runs): {}",
        session_->url().ToString(), what, error.message);
  } else {
    out.message = fmt::format("{}: {}", what, error.message);
  }
  return out;
}

std::string ZkMetaStore::ProjectPath(uint32_t id) const {
  return fmt::format("{}/{:010}", projects_path_, id);
}

std::string ZkMetaStore::NamespacePath(std::string_view ns) const {
  return Join(meta_path_, EncodeNodeName(ns));
}

ZkMetaStore::RecordNodes ZkMetaStore::RecordPaths(std::string_view ns, std::string_view key) const {
  const size_t slash = key.rfind('/');
  const size_t split = slash == std::string_view::npos ? 0 : slash + 1;
  RecordNodes r;
  r.ns_path = NamespacePath(ns);
  r.dir = key.substr(0, split);
  r.leaf = key.substr(split);
  PartName dir = NameFor(r.dir);
  PartName leaf = NameFor(r.leaf);
  r.dir_path = Join(r.ns_path, dir.name);
  r.dir_hashed = dir.hashed;
  r.leaf_path = Join(r.dir_path, leaf.name);
  r.leaf_hashed = leaf.hashed;
  return r;
}

// ---- Projects -------------------------------------------------------------------------------------------

Error ZkMetaStore::CorruptProject(uint32_t id) const {
  return Internal(
      fmt::format("project {} in ZooKeeper ({}) is not a valid project record; restore it from a backup", id,
                  ProjectPath(id)));
}

Result<std::optional<store::Project>> ZkMetaStore::ReadProject(uint32_t id, int32_t* version) {
  auto node = session_->Get(ProjectPath(id));
  if (!node.ok()) return Describe(node.error(), fmt::format("reading project {}", id));
  if (!node->has_value()) return std::optional<store::Project>();
  auto project = store::internal::DecodeProject((*node)->data);
  if (!project) return CorruptProject(id);
  if (version != nullptr) *version = (*node)->stat.version;
  return project;
}

Result<store::Project> ZkMetaStore::CreateProject(std::string_view name) {
  store::Project project = store::NewProject(name, clock_->NowMillis());
  for (int round = 0; round < kMaxCasRounds; ++round) {
    auto counter = session_->Get(ids_path_);
    if (!counter.ok()) return Describe(counter.error(), "reading the project id counter");
    if (!counter->has_value())
      return Internal(
          fmt::format("the project id counter {} is missing (removed by hand?); restart the node, "
                      "which re-creates it after the highest project id",
                      ids_path_));
    const std::string& text = (*counter)->data;
    uint64_t last = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), last);
    if (ec != std::errc() || end != text.data() + text.size() || last >= UINT32_MAX) {
      return Internal(fmt::format("the project id counter {} holds '{}', not a project id", ids_path_, text));
    }
    project.id = static_cast<uint32_t>(last + 1);
    Status s = session_->Multi({Op::Set(ids_path_, std::to_string(project.id), (*counter)->stat.version),
                                Op::Create(ProjectPath(project.id), store::internal::EncodeProject(project)),
                                Op::Set(projects_path_, "", -1)});
    if (s.ok()) return project;
    if (s.error().code != ErrorCode::kConflict) return Describe(s.error(), "creating a project");
    BackOff(round);  // another node took this id first
  }
  return Error(ErrorCode::kTransient, "creating a project: too many concurrent creations; try again");
}

Result<std::vector<store::Project>> ZkMetaStore::ListProjects() {
  auto names = session_->Children(projects_path_);
  if (!names.ok()) {
    if (names.error().code == ErrorCode::kNotFound) return std::vector<store::Project>();
    return Describe(names.error(), "listing projects");
  }
  std::vector<uint32_t> ids;
  ids.reserve(names->size());
  for (const std::string& n : *names) {
    uint32_t id = 0;
    auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), id);
    if (ec != std::errc() || end != n.data() + n.size()) {
      return Internal(fmt::format("unexpected node '{}' under {}", n, projects_path_));
    }
    ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> paths;
  paths.reserve(ids.size());
  for (uint32_t id : ids) paths.push_back(ProjectPath(id));
  auto nodes = session_->GetMany(paths);
  if (!nodes.ok()) return Describe(nodes.error(), "listing projects");
  std::vector<store::Project> out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!(*nodes)[i]) continue;  // removed since the listing
    auto project = store::internal::DecodeProject((*nodes)[i]->data);
    if (!project) return CorruptProject(ids[i]);
    out.push_back(std::move(*project));
  }
  return out;
}

Result<std::optional<store::Project>> ZkMetaStore::GetProject(uint32_t id) {
  return ReadProject(id, nullptr);
}

Status ZkMetaStore::UpdateProject(const store::Project& project) {
  const std::string what = fmt::format("updating project {}", project.id);
  const std::string encoded = store::internal::EncodeProject(project);
  for (int round = 0; round < kMaxCasRounds; ++round) {
    int32_t version = -1;
    SLUICE_ASSIGN_OR_RETURN(auto existing, ReadProject(project.id, &version));
    if (!existing) return NotFound(fmt::format("project {} does not exist", project.id));
    Status s = session_->Multi(
        {Op::Set(ProjectPath(project.id), encoded, version), Op::Set(projects_path_, "", -1)});
    if (s.ok()) return OkStatus();
    if (s.error().code != ErrorCode::kConflict && s.error().code != ErrorCode::kNotFound) {
      return Describe(s.error(), what);
    }
    BackOff(round);  // changed (or removed) since the read: check again
  }
  return Error(ErrorCode::kTransient, what + ": too many concurrent updates; try again");
}

Status ZkMetaStore::ModifyProject(uint32_t id, const std::function<Status(store::Project&)>& mutate) {
  const std::string what = fmt::format("updating project {}", id);
  for (int round = 0; round < kMaxCasRounds; ++round) {
    int32_t version = -1;
    SLUICE_ASSIGN_OR_RETURN(auto project, ReadProject(id, &version));
    if (!project) return NotFound(fmt::format("project {} does not exist", id));
    SLUICE_TRY(mutate(*project));
    if (project->id != id) return InvalidArgument(what + ": a project's id cannot change");
    Status s = session_->Multi({Op::Set(ProjectPath(id), store::internal::EncodeProject(*project), version),
                                Op::Set(projects_path_, "", -1)});
    if (s.ok()) return OkStatus();
    if (s.error().code != ErrorCode::kConflict && s.error().code != ErrorCode::kNotFound) {
      return Describe(s.error(), what);
    }
    BackOff(round);  // another node changed it in between: apply the change to the new record
  }
  return Error(ErrorCode::kTransient, what + ": too many concurrent updates; try again");
}

Status ZkMetaStore::CheckReachable() {
  auto root = session_->Get(options_.root);
  if (!root.ok()) return Describe(root.error(), "checking that it answers");
  return OkStatus();
}

Result<std::optional<int64_t>> ZkMetaStore::ProjectsChangeStamp() {
  auto node = session_->Get(projects_path_);
  if (!node.ok()) return Describe(node.error(), "reading the projects' change stamp");
  return std::optional<int64_t>(node->has_value() ? (*node)->stat.mzxid : int64_t{0});
}

// ---- Metadata records -----------------------------------------------------------------------------------

Status ZkMetaStore::PutMeta(std::string_view ns, std::string_view key, std::string_view value) {
  return Upsert(ns, key, value, nullptr);
}

Status ZkMetaStore::PutMetaFenced(std::string_view ns, std::string_view key, std::string_view value,
                                  const store::Fence& fence) {
  return Upsert(ns, key, value, &fence);
}

Status ZkMetaStore::Upsert(std::string_view ns, std::string_view key, std::string_view value,
                           const store::Fence* fence) {
  SLUICE_TRY(CheckNamespace(ns));
  SLUICE_TRY(CheckKey(ns, key));
  if (value.size() > kMaxMetaValueBytes) {
    return Error(ErrorCode::kTooLarge,
                 fmt::format("metadata record '{}' in namespace '{}' is {} bytes, over the limit of {} bytes "
                             "for records kept in ZooKeeper",
                             key, ns, value.size(), kMaxMetaValueBytes));
  }
  const RecordNodes r = RecordPaths(ns, key);
  const std::string what = fmt::format("writing metadata record '{}' in namespace '{}'", key, ns);
  const std::string data = r.leaf_hashed ? HashedLeafData(r.leaf, value) : std::string(value);
  // Upsert: set the record; when it is missing create it; when its directory is missing create that.
  // Fenced: the fence's compare-and-set goes first in the same multi, so the record is written only if no
  // later holder took the lease since the fence was read; a multi that fails because the fence moved
  // (kConflict) reads it again and decides again.
  for (int round = 0; round < kMaxUpsertRounds; ++round) {
    std::vector<Op> fence_ops;
    if (fence != nullptr) {
      auto op = coord::FenceOp(*session_, fence->lease, fence->token);
      if (!op.ok()) return Describe(op.error(), what);
      fence_ops.push_back(std::move(*op));
    }
    auto with_fence = [&](Op record) {
      std::vector<Op> ops = fence_ops;
      ops.push_back(std::move(record));
      ops.push_back(Op::Set(r.ns_path, "", -1));
      return ops;
    };
    Status set = session_->Multi(with_fence(Op::Set(r.leaf_path, data, -1)));
    if (set.ok()) return OkStatus();
    if (set.error().code == ErrorCode::kConflict && fence != nullptr) continue;  // the fence moved
    if (set.error().code != ErrorCode::kNotFound) return Describe(set.error(), what);
    Status created = session_->Multi(with_fence(Op::Create(r.leaf_path, data)));
    if (created.ok()) return OkStatus();
    if (created.error().code == ErrorCode::kConflict) continue;  // created concurrently: set it
    if (created.error().code != ErrorCode::kNotFound) return Describe(created.error(), what);
    if (Status ensured = session_->EnsurePath(r.ns_path); !ensured.ok())
      return Describe(ensured.error(), what);
    auto dir = session_->Create(r.dir_path, r.dir_hashed ? std::string(r.dir) : std::string());
    if (!dir.ok() && dir.error().code != ErrorCode::kConflict) return Describe(dir.error(), what);
  }
  return Error(ErrorCode::kTransient, what + ": the record kept changing concurrently; try again");
}

Result<std::optional<std::string>> ZkMetaStore::GetMeta(std::string_view ns, std::string_view key) {
  SLUICE_TRY(CheckNamespace(ns));
  SLUICE_TRY(CheckKey(ns, key));
  const RecordNodes r = RecordPaths(ns, key);
  const std::string what = fmt::format("reading metadata record '{}' in namespace '{}'", key, ns);
  auto node = session_->Get(r.leaf_path);
  if (!node.ok()) return Describe(node.error(), what);
  if (!node->has_value()) return std::optional<std::string>();
  if (!r.leaf_hashed) return std::optional<std::string>(std::move((*node)->data));
  std::string_view leaf, value;
  if (!ParseHashedLeafData((*node)->data, &leaf, &value)) return Internal(what + ": the record is malformed");
  if (leaf != r.leaf) return Internal(what + ": another key's record has the same hashed node name");
  return std::optional<std::string>(std::string(value));
}

Status ZkMetaStore::DeleteMeta(std::string_view ns, std::string_view key) {
  SLUICE_TRY(CheckNamespace(ns));
  SLUICE_TRY(CheckKey(ns, key));
  const RecordNodes r = RecordPaths(ns, key);
  Status s = session_->Multi({Op::Delete(r.leaf_path, -1), Op::Set(r.ns_path, "", -1)});
  if (!s.ok()) {
    if (s.error().code == ErrorCode::kNotFound) return OkStatus();  // as the embedded store: already gone
    return Describe(s.error(), fmt::format("deleting metadata record '{}' in namespace '{}'", key, ns));
  }
  // Drop the directory when this was its last record, so deleted pipelines and connectors leave nothing
  // behind. Fails harmlessly (ZNOTEMPTY) when records remain; a concurrent PutMeta that loses its directory
  // here re-creates it.
  (void)session_->Delete(r.dir_path, -1);
  return OkStatus();
}

Status ZkMetaStore::ScanMeta(std::string_view ns, std::string_view key_prefix,
                             const std::function<bool(std::string_view key, std::string_view value)>& fn) {
  SLUICE_TRY(CheckNamespace(ns));
  const std::string what = fmt::format("scanning metadata namespace '{}'", ns);
  const std::string ns_path = NamespacePath(ns);
  auto dirs = session_->Children(ns_path);
  if (!dirs.ok()) {
    if (dirs.error().code == ErrorCode::kNotFound) return OkStatus();  // never written
    return Describe(dirs.error(), what);
  }
  // Every matching record: key, node path, and the value when it was read already (hashed names).
  struct Found {
    std::string key;
    std::string path;
    std::optional<std::string> value;
    bool operator<(const Found& o) const { return key < o.key; }
  };
  std::vector<Found> records;
  for (const std::string& dir_name : *dirs) {
    std::optional<std::string> dir;
    if (dir_name.starts_with('h')) {  // too long for a name: the directory's key part is its data
      auto node = session_->Get(Join(ns_path, dir_name));
      if (!node.ok()) return Describe(node.error(), what);
      if (!node->has_value()) continue;
      dir = std::move((*node)->data);
    } else {
      dir = DecodeNodeName(dir_name);
    }
    if (!dir) return Internal(fmt::format("unexpected node '{}' under {}", dir_name, ns_path));
    // Every key in the directory is dir + leaf (leaf without '/'): it matches when dir starts with the prefix
    // (all leaves), or when the prefix starts with dir and the leaf starts with the rest of the prefix.
    std::string_view leaf_prefix;
    if (dir->size() >= key_prefix.size()) {
      if (!std::string_view(*dir).starts_with(key_prefix)) continue;
    } else {
      if (!key_prefix.starts_with(*dir)) continue;
      leaf_prefix = key_prefix.substr(dir->size());
      if (leaf_prefix.find('/') != std::string_view::npos) continue;
    }
    const std::string dir_path = Join(ns_path, dir_name);
    auto leaves = session_->Children(dir_path);
    if (!leaves.ok()) {
      if (leaves.error().code == ErrorCode::kNotFound) continue;  // emptied and removed meanwhile
      return Describe(leaves.error(), what);
    }
    const std::string encoded_leaf_prefix = EncodeNodeName(leaf_prefix);
    for (const std::string& leaf_name : *leaves) {
      std::string path = Join(dir_path, leaf_name);
      if (leaf_name.starts_with('h')) {  // too long for a name: read the key from the record
        auto node = session_->Get(path);
        if (!node.ok()) return Describe(node.error(), what);
        if (!node->has_value()) continue;
        std::string_view leaf, value;
        if (!ParseHashedLeafData((*node)->data, &leaf, &value)) {
          return Internal(fmt::format("{}: the record {} is malformed", what, path));
        }
        if (!leaf.starts_with(leaf_prefix)) continue;
        records.push_back({*dir + std::string(leaf), std::move(path), std::string(value)});
        continue;
      }
      if (!std::string_view(leaf_name).starts_with(encoded_leaf_prefix)) continue;  // prefix-preserving
      auto leaf = DecodeNodeName(leaf_name);
      if (!leaf) return Internal(fmt::format("unexpected node '{}' under {}", leaf_name, dir_path));
      records.push_back({*dir + *leaf, std::move(path), std::nullopt});
    }
  }
  std::sort(records.begin(), records.end());
  // Values in pipelined windows, in key order, so an early stop reads little more than it returns.
  constexpr size_t kReadWindow = 128;
  for (size_t begin = 0; begin < records.size(); begin += kReadWindow) {
    const size_t end = std::min(records.size(), begin + kReadWindow);
    std::vector<std::string> paths;
    std::vector<size_t> unread;
    for (size_t i = begin; i < end; ++i) {
      if (!records[i].value) {
        paths.push_back(records[i].path);
        unread.push_back(i);
      }
    }
    auto nodes = session_->GetMany(paths);
    if (!nodes.ok()) return Describe(nodes.error(), what);
    for (size_t j = 0; j < unread.size(); ++j) {
      auto& node = (*nodes)[j];
      if (node) records[unread[j]].value = std::move(node->data);
    }
    for (size_t i = begin; i < end; ++i) {
      if (!records[i].value) continue;  // deleted since the listing
      if (!fn(records[i].key, *records[i].value)) return OkStatus();
    }
  }
  return OkStatus();
}

Result<int64_t> ZkMetaStore::ChangeStamp(std::string_view ns) {
  SLUICE_TRY(CheckNamespace(ns));
  auto node = session_->Get(NamespacePath(ns));
  if (!node.ok())
    return Describe(node.error(), fmt::format("reading the change stamp of namespace '{}'", ns));
  return node->has_value() ? (*node)->stat.mzxid : int64_t{0};
}

}  // namespace sluice::chstore
