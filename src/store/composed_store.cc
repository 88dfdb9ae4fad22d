// ComposeStore: one Store over parts that live in other systems. Every call is forwarded to the part that
// owns the concern; nothing is cached here, so several nodes composing the same parts see the same data.
#include <utility>

#include "store/store.h"

namespace sluice::store {
namespace {

class ComposedStore final : public Store {
 public:
  explicit ComposedStore(StoreParts parts) : p_(std::move(parts)) {}
  ~ComposedStore() override { (void)Close(); }

  // Events and identity.
  Status WriteEvents(uint32_t project, std::span<const Event> events,
                     std::span<const IdentityLink> links) override {
    SLUICE_TRY(Open());
    return p_.events->WriteEvents(project, events, links);
  }
  Status ScanPartition(uint32_t project, Hour hour,
                       const std::function<bool(const EventView&)>& fn) override {
    SLUICE_TRY(Open());
    return p_.events->ScanPartition(project, hour, fn);
  }
  Status ScanPartitions(uint32_t project, Hour first, Hour end,
                        const std::function<bool(const EventView&)>& fn) override {
    SLUICE_TRY(Open());
    return p_.events->ScanPartitions(project, first, end, fn);
  }
  Result<std::vector<PartitionInfo>> ListPartitions(uint32_t project, Hour from, Hour to) override {
    SLUICE_TRY(Open());
    return p_.events->ListPartitions(project, from, to);
  }
  Result<std::vector<PartitionInfo>> ChangedPartitions(uint32_t project, uint64_t after_seq) override {
    SLUICE_TRY(Open());
    return p_.events->ChangedPartitions(project, after_seq);
  }
  uint64_t LastChangeSeq() const override { return p_.events ? p_.events->LastChangeSeq() : 0; }
  Result<std::optional<std::string>> ResolveDevice(uint32_t project, std::string_view device_id) override {
    SLUICE_TRY(Open());
    return p_.events->ResolveDevice(project, device_id);
  }
  Status ScanIdentity(uint32_t project,
                      const std::function<bool(std::string_view, std::string_view)>& fn) override {
    SLUICE_TRY(Open());
    return p_.events->ScanIdentity(project, fn);
  }

  // Profiles.
  Status ApplyProfileOps(uint32_t project, std::string_view group_key, std::span<const ProfileOps> changes,
                         const ProfileFolder& folder, std::vector<ProfileOpRefusal>* refused) override {
    SLUICE_TRY(Open());
    return p_.profiles->ApplyProfileOps(project, group_key, changes, folder, refused);
  }
  Result<std::optional<std::string>> GetProfile(uint32_t project, std::string_view distinct_id) override {
    SLUICE_TRY(Open());
    return p_.profiles->GetProfile(project, distinct_id);
  }
  Status ScanProfiles(uint32_t project, std::string_view after,
                      const std::function<bool(std::string_view, std::string_view)>& fn) override {
    SLUICE_TRY(Open());
    return p_.profiles->ScanProfiles(project, after, fn);
  }
  Result<std::optional<std::string>> GetGroupProfile(uint32_t project, std::string_view group_key,
                                                     std::string_view group_id) override {
    SLUICE_TRY(Open());
    return p_.profiles->GetGroupProfile(project, group_key, group_id);
  }
  Status ScanGroupProfiles(uint32_t project, std::string_view group_key, std::string_view after,
                           const std::function<bool(std::string_view, std::string_view)>& fn) override {
    SLUICE_TRY(Open());
    return p_.profiles->ScanGroupProfiles(project, group_key, after, fn);
  }

  // Projects and metadata.
  Result<Project> CreateProject(std::string_view name) override {
    SLUICE_TRY(Open());
    return p_.meta->CreateProject(name);
  }
  Result<std::vector<Project>> ListProjects() override {
    SLUICE_TRY(Open());
    return p_.meta->ListProjects();
  }
  Result<std::optional<Project>> GetProject(uint32_t id) override {
    SLUICE_TRY(Open());
    return p_.meta->GetProject(id);
  }
  Status UpdateProject(const Project& project) override {
    SLUICE_TRY(Open());
    return p_.meta->UpdateProject(project);
  }
  Result<std::optional<int64_t>> ProjectsChangeStamp() override {
    SLUICE_TRY(Open());
    return p_.meta->ProjectsChangeStamp();
  }
  Status PutMeta(std::string_view ns, std::string_view key, std::string_view value) override {
    SLUICE_TRY(Open());
    return p_.meta->PutMeta(ns, key, value);
  }
  Result<std::optional<std::string>> GetMeta(std::string_view ns, std::string_view key) override {
    SLUICE_TRY(Open());
    return p_.meta->GetMeta(ns, key);
  }
  Status PutMetaFenced(std::string_view ns, std::string_view key, std::string_view value,
                       const Fence& fence) override {
    SLUICE_TRY(Open());
    return p_.meta->PutMetaFenced(ns, key, value, fence);
  }
  Status DeleteMeta(std::string_view ns, std::string_view key) override {
    SLUICE_TRY(Open());
    return p_.meta->DeleteMeta(ns, key);
  }
  Status ScanMeta(std::string_view ns, std::string_view key_prefix,
                  const std::function<bool(std::string_view, std::string_view)>& fn) override {
    SLUICE_TRY(Open());
    return p_.meta->ScanMeta(ns, key_prefix, fn);
  }

  // Operations.
  uint64_t ApproximateSizeBytes() override { return p_.size_bytes ? p_.size_bytes() : 0; }
  std::vector<Reachability> CheckReachable() override {
    if (Status open = Open(); !open.ok()) return {{"store", open}};
    return p_.check_reachable ? p_.check_reachable() : Store::CheckReachable();
  }
  Status Close() override {
    // Reverse order of construction: metadata last, as the other parts may have been opened against it.
    p_.profiles.reset();
    p_.events.reset();
    p_.meta.reset();
    return OkStatus();
  }

 private:
  Status Open() const {
    if (!p_.events || !p_.profiles || !p_.meta) return Error(ErrorCode::kCancelled, "the store is closed");
    return OkStatus();
  }

  StoreParts p_;
};

}  // namespace

std::unique_ptr<Store> ComposeStore(StoreParts parts) {
  return std::make_unique<ComposedStore>(std::move(parts));
}

}  // namespace sluice::store
