// api::ProjectRegistry over a shared store (issue 13 follow-up): a lookup that misses reads the store's
// projects change stamp and reloads at once when it moved, so a project created through another node is
// accepted by the next request; a flood of unknown tokens costs a bounded number of stamp reads and no
// reload; a failed stamp read keeps the view. The store is ComposeStore (as the ClickHouse backend builds it)
// over a fake MetaStore whose stamp the test controls and whose calls it counts.
#include "api/project_registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "store/new_project.h"
#include "store/store.h"

namespace sluice {
namespace {

using namespace std::chrono_literals;

/// Projects in memory, as another node sharing the store would see them: every project write moves the
/// stamp (as ZkMetaStore's does). Counts ListProjects and stamp reads.
class FakeSharedMeta final : public store::MetaStore {
 public:
  std::atomic<int> list_calls{0};
  std::atomic<int> stamp_calls{0};
  std::atomic<bool> stamp_fails{false};
  std::atomic<bool> has_stamp{true};
  /// While true, a stamp read waits (bounded: 30 s) until the test opens the gate: a check held in flight for
  /// exactly as long as the test needs, whatever the machine's speed.
  std::atomic<bool> stamp_gate_closed{false};

  Result<store::Project> CreateProject(std::string_view name) override {
    std::lock_guard lock(mu_);
    store::Project p = store::NewProject(name, 0);
    p.id = static_cast<uint32_t>(projects_.size() + 1);
    projects_[p.id] = p;
    ++stamp_;
    return p;
  }
  Result<std::vector<store::Project>> ListProjects() override {
    ++list_calls;
    std::lock_guard lock(mu_);
    std::vector<store::Project> out;
    for (const auto& [id, p] : projects_) out.push_back(p);
    return out;
  }
  Result<std::optional<store::Project>> GetProject(uint32_t id) override {
    std::lock_guard lock(mu_);
    auto it = projects_.find(id);
    if (it == projects_.end()) return std::optional<store::Project>();
    return std::optional<store::Project>(it->second);
  }
  Status UpdateProject(const store::Project& project) override {
    std::lock_guard lock(mu_);
    if (!projects_.contains(project.id)) return NotFound("no such project");
    projects_[project.id] = project;
    ++stamp_;
    return OkStatus();
  }
  Result<std::optional<int64_t>> ProjectsChangeStamp() override {
    ++stamp_calls;
    for (int i = 0; i < 30'000 && stamp_gate_closed.load(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (stamp_fails.load()) return Error(ErrorCode::kUnavailable, "the coordination service does not answer");
    if (!has_stamp.load()) return std::optional<int64_t>();
    std::lock_guard lock(mu_);
    return std::optional<int64_t>(stamp_);
  }

  Status PutMeta(std::string_view ns, std::string_view key, std::string_view value) override {
    std::lock_guard lock(mu_);
    meta_[std::string(ns) + "\n" + std::string(key)] = std::string(value);
    return OkStatus();
  }
  Result<std::optional<std::string>> GetMeta(std::string_view ns, std::string_view key) override {
    std::lock_guard lock(mu_);
    auto it = meta_.find(std::string(ns) + "\n" + std::string(key));
    if (it == meta_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status DeleteMeta(std::string_view ns, std::string_view key) override {
    std::lock_guard lock(mu_);
    meta_.erase(std::string(ns) + "\n" + std::string(key));
    return OkStatus();
  }
  Status ScanMeta(std::string_view ns, std::string_view key_prefix,
                  const std::function<bool(std::string_view, std::string_view)>& fn) override {
    std::lock_guard lock(mu_);
    const std::string prefix = std::string(ns) + "\n" + std::string(key_prefix);
    for (auto it = meta_.lower_bound(prefix); it != meta_.end() && it->first.starts_with(prefix); ++it) {
      if (!fn(std::string_view(it->first).substr(ns.size() + 1), it->second)) break;
    }
    return OkStatus();
  }

 private:
  std::mutex mu_;
  std::map<uint32_t, store::Project> projects_;
  std::map<std::string, std::string> meta_;
  int64_t stamp_ = 1;
};

class ProjectRegistryStampTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sluice-registry-stamp-" + RandomHex(64));
    auto events = store::Store::Open(dir_ / "events");
    ASSERT_TRUE(events.ok()) << events.error().ToString();
    auto profiles = store::Store::Open(dir_ / "profiles");
    ASSERT_TRUE(profiles.ok()) << profiles.error().ToString();
    auto meta = std::make_unique<FakeSharedMeta>();
    meta_ = meta.get();
    store_ = store::ComposeStore({.events = std::move(events).value(),
                                  .profiles = std::move(profiles).value(),
                                  .meta = std::move(meta)});
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  /// A registry as `sluice serve` builds it on the shared store (2 s refresh interval), loaded.
  std::unique_ptr<api::ProjectRegistry> LoadedRegistry(
      std::chrono::milliseconds interval = 2s,
      int max_waiting_misses = api::ProjectRegistry::kDefaultMaxWaitingMisses) {
    auto registry = std::make_unique<api::ProjectRegistry>(*store_, interval, max_waiting_misses);
    EXPECT_TRUE(registry->Load().ok());
    return registry;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  FakeSharedMeta* meta_ = nullptr;  // owned by store_
};

// The next lookup after another node's create finds the project: no wait, whatever the refresh interval.
TEST_F(ProjectRegistryStampTest, AMissAfterAnotherNodesCreateReloadsAtOnce) {
  ASSERT_TRUE(meta_->CreateProject("before").ok());
  auto registry = LoadedRegistry();
  EXPECT_EQ(meta_->list_calls.load(), 1);

  auto created = meta_->CreateProject("through-another-node");
  ASSERT_TRUE(created.ok());
  auto by_secret = registry->BySecret(created->api_secret.Reveal());
  ASSERT_TRUE(by_secret.has_value());
  EXPECT_EQ(by_secret->id, created->id);
  EXPECT_EQ(meta_->list_calls.load(), 2);  // one reload
  EXPECT_TRUE(registry->ByToken(created->token).has_value());

  // At once again, although the previous check ran less than kMinCheckGap ago: the lookup waits for the gap.
  auto another = meta_->CreateProject("and-another");
  ASSERT_TRUE(another.ok());
  auto by_id = registry->ById(another->id);
  ASSERT_TRUE(by_id.has_value());
  EXPECT_EQ(by_id->token, another->token);
  auto by_token = registry->ByToken(another->token);
  ASSERT_TRUE(by_token.has_value());
  EXPECT_EQ(by_token->id, another->id);
  EXPECT_EQ(meta_->list_calls.load(), 3);
}

// Create and UpdateProject check conflicts against what other nodes just wrote: no gap applies to them.
TEST_F(ProjectRegistryStampTest, AnUpdateSeesAnotherNodesExternalIdAtOnce) {
  auto a = meta_->CreateProject("a");
  auto b = meta_->CreateProject("b");
  ASSERT_TRUE(a.ok() && b.ok());
  auto registry = LoadedRegistry();
  store::Project changed = *a;
  changed.external_id = "ext-elsewhere";
  ASSERT_TRUE(meta_->UpdateProject(changed).ok());  // through another node
  auto refused = registry->UpdateProject(b->id, {.external_id = std::string("ext-elsewhere")});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_EQ(registry->ById(a->id)->external_id, "ext-elsewhere");
}

// Unknown tokens and secrets from many threads: the stamp is read at most once per kMinCheckGap (the misses
// waiting share a check), and as it does not move, nothing is reloaded. A value presented again after a check
// missed it (every event of a /track batch with a wrong token) costs nothing more. A project created after
// the flood is still found at once.
TEST_F(ProjectRegistryStampTest, AFloodOfUnknownTokensReadsTheStampBoundedAndNeverReloads) {
  auto known = meta_->CreateProject("known");
  ASSERT_TRUE(known.ok());
  auto registry = LoadedRegistry(2s, /*max_waiting_misses=*/8);  // every thread may wait: the worst case
  const int stamps_before = meta_->stamp_calls.load();
  std::atomic<int> lookups{0};
  std::atomic<int> wrongly_found{0};
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int v = 0; v < 15; ++v) {
        const std::string value = "unknown-" + std::to_string(t) + "-" + std::to_string(v);
        for (int i = 0; i < 100; ++i) {
          if ((i % 2 == 0 ? registry->ByToken(value) : registry->BySecret(value)).has_value())
            ++wrongly_found;
          ++lookups;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(wrongly_found.load(), 0);
  EXPECT_EQ(lookups.load(), 12000);
  const int stamp_reads = meta_->stamp_calls.load() - stamps_before;
  const int64_t bound = elapsed / api::ProjectRegistry::kMinCheckGap + 1;
  EXPECT_GE(stamp_reads, 15);  // each thread's values one after the other: a check each, shared
  EXPECT_LE(stamp_reads, bound) << "in "
                                << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
                                << " ms";
  EXPECT_EQ(meta_->list_calls.load(), 1) << "no change, so no reload";
  EXPECT_TRUE(registry->ByToken(known->token).has_value());

  auto after = meta_->CreateProject("after-the-flood");
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(registry->BySecret(after->api_secret.Reveal()).has_value());
  EXPECT_EQ(meta_->list_calls.load(), 2);
}

// One wrong token presented many times (a /track batch, a misconfigured SDK) costs one check.
TEST_F(ProjectRegistryStampTest, AWrongTokenPresentedAgainCostsNoFurtherCheck) {
  auto registry = LoadedRegistry();
  const int stamps_before = meta_->stamp_calls.load();
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 2000; ++i) EXPECT_FALSE(registry->ByToken("a-wrong-token").has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
  EXPECT_EQ(meta_->stamp_calls.load(), stamps_before + 1);
}

// A known project's token presented as a secret (as /import tries the Basic user as both) is no reason to
// ask the store: tokens and secrets are random, so it cannot be another node's new secret.
TEST_F(ProjectRegistryStampTest, AKnownTokenTriedAsASecretDoesNotReadTheStamp) {
  auto p = meta_->CreateProject("p");
  ASSERT_TRUE(p.ok());
  auto registry = LoadedRegistry();
  const int stamps_before = meta_->stamp_calls.load();
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(registry->BySecret(p->token).has_value());
    EXPECT_FALSE(registry->ByToken(p->api_secret.Reveal()).has_value());
  }
  EXPECT_EQ(meta_->stamp_calls.load(), stamps_before);
}

// A stamp that cannot be read keeps the current view: known projects are still served, nothing is reloaded;
// once it answers again, the change is picked up by the next miss.
// (No sleeps between lookups: a miss itself waits out the gap between two checks and runs its own.)
TEST_F(ProjectRegistryStampTest, AFailedStampReadKeepsTheView) {
  auto known = meta_->CreateProject("known");
  ASSERT_TRUE(known.ok());
  auto registry = LoadedRegistry();
  meta_->stamp_fails = true;
  auto created = meta_->CreateProject("while-zookeeper-is-down");
  ASSERT_TRUE(created.ok());
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(registry->ByToken(created->token).has_value());
    EXPECT_TRUE(registry->ByToken(known->token).has_value());
  }
  EXPECT_GE(meta_->stamp_calls.load(), 3);
  EXPECT_EQ(meta_->list_calls.load(), 1);
  EXPECT_EQ(registry->List().size(), 1u);

  meta_->stamp_fails = false;
  EXPECT_TRUE(registry->ByToken(created->token).has_value());
  EXPECT_EQ(meta_->list_calls.load(), 2);
}

// Lookups that miss while a check is in flight cannot rely on it (it may have read the stamp before the
// project they look for was created): they wait for the next check, and share it.
TEST_F(ProjectRegistryStampTest, MissesDuringACheckWaitForTheNextOneAndShareIt) {
  auto registry = LoadedRegistry(2s, /*max_waiting_misses=*/8);
  auto created = meta_->CreateProject("new");
  ASSERT_TRUE(created.ok());
  // The first lookup's check is held until all six later misses wait (not a fixed delay they must beat).
  meta_->stamp_gate_closed = true;
  const int stamps_before = meta_->stamp_calls.load();
  std::thread first([&] { EXPECT_FALSE(registry->ByToken("unknown-token").has_value()); });
  for (int i = 0; i < 2000 && meta_->stamp_calls.load() == stamps_before; ++i)
    std::this_thread::sleep_for(1ms);
  if (meta_->stamp_calls.load() != stamps_before + 1) {
    meta_->stamp_gate_closed = false;
    first.join();
    FAIL() << "the first lookup's check did not start";
  }
  std::atomic<int> found{0};
  std::vector<std::thread> waiting;
  for (int t = 0; t < 6; ++t) {
    waiting.emplace_back([&, t] {
      if (t % 2 == 0) {
        if (registry->ByToken(created->token).has_value()) ++found;
      } else {
        EXPECT_FALSE(registry->BySecret("unknown-secret-" + std::to_string(t)).has_value());
      }
    });
  }
  // The first lookup and the six misses (each waits at most ProjectRegistry::kMaxCheckWait from its arrival).
  for (int i = 0; i < 2000 && registry->waiting_misses() < 7; ++i) std::this_thread::sleep_for(100us);
  EXPECT_EQ(registry->waiting_misses(), 7) << "the six lookups did not all wait for the check in flight";
  meta_->stamp_gate_closed = false;
  for (auto& t : waiting) t.join();
  first.join();
  EXPECT_EQ(found.load(), 3);
  EXPECT_EQ(meta_->stamp_calls.load(), stamps_before + 2) << "the six waiting lookups shared one check";
}

// A waiting lookup holds its request thread, so only max_waiting_misses wait at once: under a flood of
// unknown credentials, a miss beyond them answers 'not found' at once instead of taking another thread, and
// known credentials are still answered at once.
TEST_F(ProjectRegistryStampTest, OnlyMaxWaitingMissesWaitAtOnceTheOthersAnswerFromTheView) {
  auto known = meta_->CreateProject("known");
  ASSERT_TRUE(known.ok());
  auto registry = LoadedRegistry(2s, /*max_waiting_misses=*/1);
  // A slow coordination service: the first miss's check holds its thread until the gate opens.
  meta_->stamp_gate_closed = true;
  const int stamps_before = meta_->stamp_calls.load();
  std::thread first([&] { EXPECT_FALSE(registry->ByToken("unknown-first").has_value()); });
  for (int i = 0; i < 2000 && meta_->stamp_calls.load() == stamps_before; ++i)
    std::this_thread::sleep_for(1ms);
  if (meta_->stamp_calls.load() != stamps_before + 1) {
    meta_->stamp_gate_closed = false;
    first.join();
    FAIL() << "the first lookup's check did not start";
  }
  for (int i = 0; i < 20; ++i) {
    const auto started = std::chrono::steady_clock::now();
    EXPECT_FALSE(registry->BySecret("unknown-" + std::to_string(i)).has_value());
    EXPECT_TRUE(registry->ByToken(known->token).has_value());
    // A miss that waited would wait for the held check until its deadline (kMaxCheckWait, 250 ms).
    EXPECT_LT(std::chrono::steady_clock::now() - started, api::ProjectRegistry::kMaxCheckWait)
        << "a miss beyond the cap waited";
  }
  meta_->stamp_gate_closed = false;
  first.join();
  EXPECT_EQ(meta_->stamp_calls.load(), stamps_before + 1) << "the misses beyond the cap read nothing";
  // The slot is free again: the next miss waits for its check and finds a project created meanwhile.
  auto created = meta_->CreateProject("created-elsewhere");
  ASSERT_TRUE(created.ok());
  EXPECT_TRUE(registry->ByToken(created->token).has_value());
}

// Without misses the view is checked once it is older than the interval, and reloaded only when the stamp
// moved.
TEST_F(ProjectRegistryStampTest, ThePeriodicRefreshReloadsOnlyOnChange) {
  auto p = meta_->CreateProject("p");
  ASSERT_TRUE(p.ok());
  auto registry = LoadedRegistry(60ms);
  const int stamps_before = meta_->stamp_calls.load();
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(70ms);
    EXPECT_TRUE(registry->ById(p->id).has_value());
  }
  EXPECT_GE(meta_->stamp_calls.load(), stamps_before + 3);
  EXPECT_EQ(meta_->list_calls.load(), 1);

  store::Project renamed = *p;
  renamed.external_id = "changed-elsewhere";
  ASSERT_TRUE(meta_->UpdateProject(renamed).ok());
  std::this_thread::sleep_for(70ms);
  EXPECT_EQ(registry->ById(p->id)->external_id, "changed-elsewhere");
  EXPECT_EQ(meta_->list_calls.load(), 2);
}

// A shared store without a stamp keeps the former rule: a miss reloads at most every interval/4.
TEST_F(ProjectRegistryStampTest, AStoreWithoutAStampReloadsOnAMissAtMostEveryQuarterInterval) {
  meta_->has_stamp = false;
  auto registry = LoadedRegistry(2s);
  for (int i = 0; i < 500; ++i) EXPECT_FALSE(registry->ByToken("unknown-" + std::to_string(i)).has_value());
  EXPECT_EQ(meta_->list_calls.load(), 1);
}

// The embedded store (interval 0) never asks anything.
TEST_F(ProjectRegistryStampTest, TheEmbeddedStoresRegistryNeverChecks) {
  auto registry = LoadedRegistry(0ms);
  auto created = meta_->CreateProject("elsewhere");
  ASSERT_TRUE(created.ok());
  EXPECT_FALSE(registry->ByToken(created->token).has_value());
  EXPECT_EQ(meta_->stamp_calls.load(), 0);
  EXPECT_EQ(meta_->list_calls.load(), 1);
}

}  // namespace
}  // namespace sluice
