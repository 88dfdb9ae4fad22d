// The pipeline manager and exporter against a real store (temp dir), an in-memory object store with fault
// injection and a fake clock: backfill, late data, snapshots, filters, retries, pause on permanent errors,
// restart after an interrupted attempt, Mixpanel's limits.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "common/compression.h"
#include "common/crypto.h"
#include "common/metrics.h"
#include "jobs/runner.h"
#include "objstore/testing/fake_object_store.h"
#include "pipeline/layout.h"
#include "pipeline/manager.h"
#include "pipeline/manifest.h"
#include "pipeline/state.h"
#include "store/store.h"
#include "support/profile_folders.h"

namespace sluice::pipeline {
namespace {

namespace fs = std::filesystem;
using objstore::testing::FakeObjectStore;
using Op = FakeObjectStore::Op;

constexpr int64_t kHourUs = 3'600'000'000;
constexpr int64_t kDayUs = 24 * kHourUs;

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("sluice_pipeline_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

class FakeDestinations final : public DestinationFactory {
 public:
  explicit FakeDestinations(std::shared_ptr<FakeObjectStore> store) : store_(std::move(store)) {}
  Result<std::shared_ptr<objstore::ObjectStore>> Open(const Destination&, const std::string& external_id,
                                                      const std::string&,
                                                      const storage_access::Tenant& tenant) override {
    last_external_id = external_id;
    last_gcs_buckets = tenant.gcs_buckets;
    ++opens;
    if (on_open) std::exchange(on_open, nullptr)();  // once
    return std::shared_ptr<objstore::ObjectStore>(store_);
  }
  Status Check(const Destination&, const std::string& external_id,
               const storage_access::Tenant& tenant) override {
    last_external_id = external_id;
    last_gcs_buckets = tenant.gcs_buckets;
    return check;
  }
  Status check;
  std::function<void()> on_open;  // called (once) when a run opens the destination, before it exports
  std::string last_external_id;
  std::vector<std::string> last_gcs_buckets;
  int opens = 0;

 private:
  std::shared_ptr<FakeObjectStore> store_;
};

/// Every record a reader following the manifests sees, by partition directory, plus consistency checks.
struct BucketView {
  std::map<std::string, Manifest> manifests;                  // by directory
  std::map<std::string, std::vector<std::string>> records;    // by directory: raw lines
  std::vector<std::string> unlisted_data_files;               // data files no manifest lists
  std::vector<std::string> dirs_without_complete;
};

BucketView ReadBucket(FakeObjectStore& bucket) {
  BucketView view;
  std::set<std::string> listed;
  for (const std::string& key : bucket.Keys()) {
    if (!key.ends_with("/manifest.json")) continue;
    const std::string dir = key.substr(0, key.size() - std::string("/manifest.json").size());
    auto m = ParseManifest(bucket.Object(key)->data);
    EXPECT_TRUE(m.ok()) << key;
    if (!m.ok()) continue;
    if (!bucket.Object(dir + "/complete")) view.dirs_without_complete.push_back(dir);
    for (const ManifestFile& f : m->files) {
      listed.insert(f.key);
      auto obj = bucket.Object(f.key);
      EXPECT_TRUE(obj) << "manifest lists a missing file " << f.key;
      if (!obj) continue;
      EXPECT_EQ(obj->data.size(), f.bytes);
      EXPECT_EQ(HexEncode(Sha256(obj->data)), f.sha256) << f.key;
      std::string text;
      if (m->compression == "gzip") {
        auto plain = GunzipBounded(obj->data, 1ull << 30);
        EXPECT_TRUE(plain.ok()) << f.key;
        text = plain.ok() ? *plain : "";
      } else {
        text = obj->data;
      }
      EXPECT_EQ(text.size(), f.uncompressed_bytes);
      size_t lines = 0;
      for (size_t pos = 0; pos < text.size();) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        view.records[dir].push_back(text.substr(pos, nl - pos));
        ++lines;
        pos = nl + 1;
      }
      EXPECT_EQ(lines, f.records) << f.key;
    }
    view.manifests[dir] = std::move(m).value();
  }
  for (const std::string& key : bucket.Keys()) {
    std::string name = key.substr(key.rfind('/') + 1);
    if (IsDataFileName(name) && !listed.contains(key)) view.unlisted_data_files.push_back(key);
  }
  return view;
}

std::multiset<std::string> InsertIds(const std::vector<std::string>& lines) {
  std::multiset<std::string> ids;
  for (const std::string& line : lines) {
    auto v = boost::json::parse(line);
    ids.insert(std::string(v.as_object().at("insert_id").as_string()));
  }
  return ids;
}

class ManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::Open(dir_.path() / "store", store::StoreOptions{.sync_writes = false});
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(s).value();
    auto p = store_->CreateProject("test");
    ASSERT_TRUE(p.ok());
    project_ = *p;
    bucket_ = std::make_shared<FakeObjectStore>(&clock_);
    destinations_ = std::make_shared<FakeDestinations>(bucket_);
    StartManager();
  }

  void StartManager() {
    manager_.reset();
    metrics_ = std::make_unique<MetricsRegistry>();  // one registration per manager, as in `serve`
    ManagerOptions o;
    o.store = store_.get();
    o.destinations = destinations_;
    o.local_export_root = local_export_root_;
    o.clock = &clock_;
    o.metrics = metrics_.get();
    o.retry_base_delay = std::chrono::milliseconds(1);
    o.retry_max_delay = std::chrono::milliseconds(5);
    o.exporter.files.max_file_uncompressed_bytes = max_file_bytes_;
    o.leases = leases_;
    o.node_id = "node-a";
    auto m = Pipelines::Create(o);
    ASSERT_TRUE(m.ok()) << m.error().message;
    manager_ = std::move(m).value();
  }

  /// Another Sluice node on the same store (and the same lease service when `leases_` is set).
  std::unique_ptr<Pipelines> OtherNode(const std::string& node_id) {
    ManagerOptions o;
    o.store = store_.get();
    o.destinations = destinations_;
    o.local_export_root = local_export_root_;
    o.clock = &clock_;
    o.retry_base_delay = std::chrono::milliseconds(1);
    o.retry_max_delay = std::chrono::milliseconds(5);
    o.exporter.files.max_file_uncompressed_bytes = max_file_bytes_;
    o.leases = leases_;
    o.node_id = node_id;
    auto m = Pipelines::Create(o);
    EXPECT_TRUE(m.ok()) << m.error().message;
    return m.ok() ? std::move(m).value() : nullptr;
  }

  /// Day `d` (0 = 2026-11-18) at hour `h`, in µs.
  static int64_t At(int d, int h, int64_t extra_us = 0) {
    return (*ParseDate("2026-11-18") + d) * kDayUs + h * kHourUs + extra_us;
  }

  void Write(const std::string& insert_id, int64_t time_us, const std::string& name = "Played",
             const std::string& properties = R"({"$os":"Linux","n":12345678901234567890})") {
    Event e;
    e.name = name;
    e.time_us = time_us;
    e.distinct_id = "u-" + insert_id.substr(0, 3);
    e.insert_id = insert_id;
    e.properties = properties;
    ASSERT_TRUE(store_->WriteEvents(project_.id, std::span<const Event>(&e, 1)).ok());
  }

  PipelineSpec Spec(const char* from = "2026-11-18", Frequency f = Frequency::kDaily) {
    PipelineSpec s;
    s.project_id = project_.id;
    s.from_date = from;
    s.frequency = f;
    s.destination.s3_bucket = "bucket";
    s.destination.s3_region = "us-east-1";
    s.destination.s3_role = "arn:aws:iam::111122223333:role/sluice";
    return s;
  }

  std::string CreateOk(PipelineSpec spec) {
    auto names = manager_->Create(std::move(spec));
    EXPECT_TRUE(names.ok()) << names.error().message;
    return names.ok() ? names->front() : "";
  }

  void SetNow(int d, int h, int minute = 0) {
    clock_.Set(TimePoint(std::chrono::microseconds(At(d, h) + minute * 60'000'000LL)));
  }

  TempDir dir_;
  FakeClock clock_{TimePoint(std::chrono::microseconds(0))};
  std::unique_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<store::Store> store_;
  store::Project project_;
  std::shared_ptr<FakeObjectStore> bucket_;
  std::shared_ptr<FakeDestinations> destinations_;
  uint64_t max_file_bytes_ = 256ull << 20;
  std::string local_export_root_ = "/srv/sluice-export";
  std::shared_ptr<jobs::LeaseService> leases_;  // null = each manager's own in-process leases
  std::unique_ptr<Pipelines> manager_;
};

TEST_F(ManagerTest, BackfillExportsEveryClosedDayExactlyOnce) {
  SetNow(3, 1);  // 2026-11-21 01:00: the 18th, 19th and 20th are closed
  Write("aaa-1", At(0, 1));
  Write("aaa-2", At(0, 23, kHourUs - 1));
  Write("bbb-1", At(1, 12));
  Write("bbb-1", At(1, 12));  // a duplicate (same dedup key): exported once
  Write("ccc-1", At(3, 0));   // today: not closed, not exported
  const std::string name = CreateOk(Spec());
  EXPECT_EQ(name, "events-daily-s3");
  EXPECT_EQ(destinations_->last_external_id, project_.token);  // external ID defaults to the token
  ASSERT_TRUE(manager_->RunDueNow().ok());

  BucketView view = ReadBucket(*bucket_);
  const std::string p = std::to_string(project_.id);
  ASSERT_EQ(view.manifests.size(), 3u);  // 18th, 19th, and the empty 20th
  EXPECT_EQ(InsertIds(view.records[p + "/mp_master_event/2026/11/18"]),
            (std::multiset<std::string>{"aaa-1", "aaa-2"}));
  EXPECT_EQ(InsertIds(view.records[p + "/mp_master_event/2026/11/19"]), (std::multiset<std::string>{"bbb-1"}));
  EXPECT_TRUE(view.records[p + "/mp_master_event/2026/11/20"].empty());
  EXPECT_TRUE(view.manifests.at(p + "/mp_master_event/2026/11/20").files.empty());
  EXPECT_TRUE(view.unlisted_data_files.empty());
  EXPECT_TRUE(view.dirs_without_complete.empty());
  const Manifest& m18 = view.manifests.at(p + "/mp_master_event/2026/11/18");
  EXPECT_EQ(m18.generation, 1u);
  EXPECT_EQ(m18.partition, "2026-11-18");
  EXPECT_EQ(m18.pipeline, name);
  ASSERT_EQ(m18.files.size(), 1u);
  EXPECT_EQ(m18.files[0].name, "sluice-g000001-p00000.json.gz");
  // Properties survive byte for byte, big integers included.
  EXPECT_NE(view.records[p + "/mp_master_event/2026/11/18"][0].find("12345678901234567890"), std::string::npos);

  auto info = manager_->Get(project_.id, name);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->dispatcher, "recurring");
  EXPECT_EQ(info->events_exported, 3u);
  EXPECT_EQ(info->partitions_exported, 3u);
  auto days = manager_->DaySyncs(project_.id, name);
  ASSERT_TRUE(days.ok());
  ASSERT_EQ(days->size(), 3u);
  for (const DaySync& d : *days) {
    EXPECT_EQ(d.status, TaskState::kSucceeded) << d.date;
    EXPECT_EQ(d.sync_times.size(), 1u);
  }
  auto timeline = manager_->Timeline(project_.id, name);
  ASSERT_TRUE(timeline.ok());
  ASSERT_EQ(timeline->size(), 3u);
  for (const TaskRecord& t : *timeline) {
    EXPECT_EQ(t.state, TaskState::kSucceeded);
    EXPECT_EQ(t.kind, "backfill");
  }
  EXPECT_NE(metrics_->Render().find("sluice_pipeline_partitions_exported_total{data_source=\"events\"} 3"),
            std::string::npos);

  // Nothing is due until the next slot (the 21st closes at 00:30 on the 22nd).
  bucket_->ResetCounters();
  ASSERT_TRUE(manager_->RunDueNow().ok());
  EXPECT_EQ(bucket_->calls(Op::kPut), 0);
  SetNow(4, 0, 30);
  ASSERT_TRUE(manager_->RunDueNow().ok());
  view = ReadBucket(*bucket_);
  EXPECT_EQ(InsertIds(view.records[p + "/mp_master_event/2026/11/21"]), (std::multiset<std::string>{"ccc-1"}));
  auto timeline2 = manager_->Timeline(project_.id, name);
  EXPECT_EQ(timeline2->front().kind, "scheduled");
}

TEST_F(ManagerTest, LateEventsAreDeliveredAsANewGenerationAndOldFilesDeleted) {
  SetNow(3, 1);
  Write("aaa-1", At(0, 1));
  Write("bbb-1", At(1, 1));
  const std::string name = CreateOk(Spec());
  ASSERT_TRUE(manager_->RunDueNow().ok());
  const std::string dir = std::to_string(project_.id) + "/mp_master_event/2026/11/19";
  const std::string old_file = dir + "/sluice-g000001-p00000.json.gz";
  ASSERT_TRUE(bucket_->Object(old_file));

  auto day_status = [&](size_t i) {
    auto days = manager_->DaySyncs(project_.id, name);
    EXPECT_TRUE(days.ok() && days->size() > i);
    return days.ok() && days->size() > i ? (*days)[i].status : TaskState::kFailed;
  };
  EXPECT_EQ(day_status(1), TaskState::kSucceeded);
  Write("bbb-2", At(1, 5));                                       // late event into the exported 19th
  Write("bbb-1", At(1, 1), "Played", R"({"$os":"Mac"})");         // a replacement of an exported event
  // Stored but not delivered yet: the day is pending, not synced (the untouched 18th stays synced).
  EXPECT_EQ(day_status(1), TaskState::kPending);
  EXPECT_EQ(day_status(0), TaskState::kSucceeded);
  ASSERT_TRUE(manager_->SyncNow(project_.id, name).ok());
  ASSERT_TRUE(manager_->RunDueNow().ok());
  EXPECT_EQ(day_status(1), TaskState::kSucceeded);

  BucketView view = ReadBucket(*bucket_);
  EXPECT_EQ(InsertIds(view.records[dir]), (std::multiset<std::string>{"bbb-1", "bbb-2"}));
  EXPECT_EQ(view.manifests.at(dir).generation, 2u);
  EXPECT_NE(view.records[dir][0].find("Mac") == std::string::npos ? view.records[dir][1].find("Mac")
                                                                   : view.records[dir][0].find("Mac"),
            std::string::npos);
  EXPECT_FALSE(bucket_->Object(old_file)) << "the superseded generation must be deleted";
  EXPECT_TRUE(view.unlisted_data_files.empty());
  // The untouched 18th was not exported again.
  EXPECT_EQ(view.manifests.at(std::to_string(project_.id) + "/mp_master_event/2026/11/18").generation, 1u);
  auto days = manager_->DaySyncs(project_.id, name);
  ASSERT_TRUE(days.ok());
  EXPECT_EQ((*days)[1].sync_times.size(), 2u);
  auto timeline = manager_->Timeline(project_.id, name);
  EXPECT_EQ(timeline->front().kind, "sync");
}

TEST_F(ManagerTest, WhitelistAndWhereSelectEvents) {
  SetNow(1, 1);
  Write("aaa-1", At(0, 1), "Played", R"({"$os":"Linux","plan":"pro"})");
  Write("aaa-2", At(0, 2), "Played", R"({"$os":"Mac","plan":"pro"})");
  Write("aaa-3", At(0, 3), "Paid", R"({"$os":"Linux","plan":"pro"})");
  Write("aaa-4", At(0, 4), "Played", R"({"$os":"Linux"})");
  PipelineSpec spec = Spec();
  spec.events = {"Played"};
  spec.where = R"(properties["$os"] == "Linux" and defined(properties["plan"]))";
  CreateOk(spec);
  ASSERT_TRUE(manager_->RunDueNow().ok());
  BucketView view = ReadBucket(*bucket_);
  EXPECT_EQ(InsertIds(view.records[std::to_string(project_.id) + "/mp_master_event/2026/11/18"]),
            (std::multiset<std::string>{"aaa-1"}));

  PipelineSpec bad = Spec();
  bad.to_date = "2026-11-18";
  bad.where = R"(properties["x"] ==)";
  auto refused = manager_->Create(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message.find("position"), std::string::npos) << refused.error().message;
}

TEST_F(ManagerTest, HourlyPipelineWritesHourDirectories) {
  SetNow(0, 3, 30);  // 03:30: hours 00, 01, 02 are closed
  Write("aaa-1", At(0, 0, 5));
  Write("aaa-2", At(0, 2, 7));
  Write("aaa-3", At(0, 3, 7));  // the open hour
  CreateOk(Spec("2026-11-18", Frequency::kHourly));
  ASSERT_TRUE(manager_->RunDueNow().ok());
  BucketView view = ReadBucket(*bucket_);
  const std::string p = std::to_string(project_.id) + "/mp_master_event/2026/11/18/";
  ASSERT_EQ(view.manifests.size(), 3u);
  EXPECT_EQ(InsertIds(view.records[p + "00"]), (std::multiset<std::string>{"aaa-1"}));
  EXPECT_TRUE(view.records[p + "01"].empty());
  EXPECT_EQ(InsertIds(view.records[p + "02"]), (std::multiset<std::string>{"aaa-2"}));
  EXPECT_EQ(view.manifests.at(p + "02").partition, "2026-11-18T02");
  SetNow(0, 4, 30);
  ASSERT_TRUE(manager_->RunDueNow().ok());
  view = ReadBucket(*bucket_);
  EXPECT_EQ(InsertIds(view.records[p + "03"]), (std::multiset<std::string>{"aaa-3"}));
}

TEST_F(ManagerTest, LargePartitionsSplitIntoSeveralFiles) {
  max_file_bytes_ = 4096;
  StartManager();
  SetNow(1, 1);
  for (int i = 0; i < 300; ++i) Write("aaa-" + std::to_string(i), At(0, i % 24));
  CreateOk(Spec());
  ASSERT_TRUE(manager_->RunDueNow().ok());
  BucketView view = ReadBucket(*bucket_);
  const std::string dir = std::to_string(project_.id) + "/mp_master_event/2026/11/18";
  EXPECT_GT(view.manifests.at(dir).files.size(), 3u);
  EXPECT_EQ(view.records[dir].size(), 300u);
  EXPECT_EQ(InsertIds(view.records[dir]).size(), 300u);
}

TEST_F(ManagerTest, TransientFaultsAreRetriedAndRecordedInTheTimeline) {
  SetNow(1, 1);
  Write("aaa-1", At(0, 1));
  bucket_->InjectFault({.op = Op::kPut, .key_contains = "manifest.json",
                        .error = Error(ErrorCode::kTransient, "503 SlowDown"), .times = 2});
  const std::string name = CreateOk(Spec());
  ASSERT_TRUE(manager_->RunDueNow().ok());
  BucketView view = ReadBucket(*bucket_);
  EXPECT_EQ(InsertIds(view.records[std::to_string(project_.id) + "/mp_master_event/2026/11/18"]).size(), 1u);
  EXPECT_TRUE(view.unlisted_data_files.empty());
  auto timeline = manager_->Timeline(project_.id, name);
  ASSERT_EQ(timeline->size(), 1u);
  EXPECT_EQ(timeline->front().state, TaskState::kSucceeded);
  EXPECT_EQ(timeline->front().attempts, 3);
  EXPECT_NE(metrics_->Render().find("sluice_pipeline_failures_total{kind=\"transient\"} 2"), std::string::npos);
}

TEST_F(ManagerTest, PermanentErrorPausesWithAFailureMessageAndResumeRecovers) {
  SetNow(2, 1);
  Write("aaa-1", At(0, 1));
  Write("bbb-1", At(1, 1));
  bucket_->InjectFault({.op = Op::kNewWriter, .error = Error(ErrorCode::kAccessDenied, "AccessDenied: s3:PutObject"),
                        .times = -1});
  const std::string name = CreateOk(Spec());
  Status run = manager_->RunDueNow();
  ASSERT_FALSE(run.ok());
  auto info = manager_->Get(project_.id, name);
  EXPECT_EQ(info->status, PipelineStatus::kPaused);
  EXPECT_NE(info->failure_message.find("s3:PutObject"), std::string::npos) << info->failure_message;
  EXPECT_NE(info->failure_message.find("resume"), std::string::npos) << info->failure_message;
  auto timeline = manager_->Timeline(project_.id, name);
  EXPECT_EQ(timeline->front().state, TaskState::kFailed);
  EXPECT_EQ(timeline->front().attempts, 1) << "a permanent error is not retried";
  // A paused pipeline does not run.
  bucket_->ResetCounters();
  ASSERT_TRUE(manager_->RunDueNow().ok());
  EXPECT_EQ(bucket_->calls(Op::kNewWriter), 0);

  bucket_->ClearFaults();
  ASSERT_TRUE(manager_->Resume(project_.id, name).ok());
  EXPECT_TRUE(manager_->Get(project_.id, name)->failure_message.empty());
  ASSERT_TRUE(manager_->RunDueNow().ok());
  BucketView view = ReadBucket(*bucket_);
  EXPECT_EQ(view.manifests.size(), 2u);
  EXPECT_TRUE(view.unlisted_data_files.empty());
}

TEST_F(ManagerTest, FailureMessageNamesTheKeyPolicyOnlyForKmsDenials) {
  SetNow(2, 1);
  Write("aaa-1", At(0, 1));
  // The S3 layer's generic hint for a denied call mentions "the KMS key policy"; that alone is not a KMS denial.
  bucket_->InjectFault({.op = Op::kNewWriter,
                        .error = Error(ErrorCode::kAccessDenied,
                                       "PutObject denied: check the role's permission policy (and the KMS key policy "
                                       "when SSE-KMS is used)"),
                        .times = -1});
  const std::string s3_name = CreateOk(Spec());
  ASSERT_FALSE(manager_->RunDueNow().ok());
  auto s3_denied = manager_->Get(project_.id, s3_name);
  EXPECT_NE(s3_denied->failure_message.find("s3:PutObject"), std::string::npos) << s3_denied->failure_message;
  EXPECT_EQ(s3_denied->failure_message.find("kms:GenerateDataKey"), std::string::npos) << s3_denied->failure_message;

  bucket_->ClearFaults();
  bucket_->InjectFault({.op = Op::kNewWriter,
                        .error = Error(ErrorCode::kAccessDenied,
                                       "AccessDenied: not authorized to perform: kms:GenerateDataKey on the key"),
                        .times = -1});
  ASSERT_TRUE(manager_->Resume(project_.id, s3_name).ok());
  ASSERT_FALSE(manager_->RunDueNow().ok());
  auto kms_denied = manager_->Get(project_.id, s3_name);
  EXPECT_NE(kms_denied->failure_message.find("KMS key"), std::string::npos) << kms_denied->failure_message;
}

TEST_F(ManagerTest, AnInterruptedAttemptIsCleanedUpAfterARestart) {
  max_file_bytes_ = 2048;  // several parts, so the interrupted attempt leaves several files
  StartManager();
  SetNow(1, 1);
  for (int i = 0; i < 100; ++i) Write("aaa-" + std::to_string(i), At(0, 1));
  // The data files are written, then the manifest is refused: the attempt never publishes.
  bucket_->InjectFault({.op = Op::kPut, .key_contains = "manifest.json",
                        .error = Error(ErrorCode::kAccessDenied, "denied"), .times = -1});
  const std::string name = CreateOk(Spec());
  ASSERT_FALSE(manager_->RunDueNow().ok());
  const std::string dir = std::to_string(project_.id) + "/mp_master_event/2026/11/18";
  ASSERT_TRUE(bucket_->Object(dir + "/sluice-g000001-p00001.json.gz")) << "leftovers of the failed attempt";
  EXPECT_FALSE(bucket_->Object(dir + "/manifest.json"));

  // Restart (a new manager over the same store), fix, resume.
  manager_.reset();
  bucket_->ClearFaults();
  StartManager();
  EXPECT_EQ(manager_->Get(project_.id, name)->status, PipelineStatus::kPaused);
  ASSERT_TRUE(manager_->Resume(project_.id, name).ok());
  ASSERT_TRUE(manager_->RunDueNow().ok());
  BucketView view = ReadBucket(*bucket_);
  EXPECT_EQ(view.manifests.at(dir).generation, 2u);
  EXPECT_EQ(InsertIds(view.records[dir]).size(), 100u);
  EXPECT_EQ(view.records[dir].size(), 100u);
  EXPECT_TRUE(view.unlisted_data_files.empty()) << view.unlisted_data_files.front();
}

// A crash between a unit's commit (published) and its task's own "succeeded" record leaves the task recorded as
// running. At the next start it is recorded as succeeded, with the unit's figures, and the partition is not
// exported again; a task whose attempt never published is recorded as failed, and its partition is exported.
TEST_F(ManagerTest, ATaskLeftRunningByACrashAfterItsUnitPublishedIsRecordedAsSucceeded) {
  StartManager();
  SetNow(2, 1);  // the 18th and 19th are closed
  for (int i = 0; i < 10; ++i) Write("aaa-" + std::to_string(i), At(0, 1));
  for (int i = 0; i < 5; ++i) Write("bbb-" + std::to_string(i), At(1, 1));
  const std::string name = CreateOk(Spec());
  ASSERT_TRUE(manager_->RunDueNow().ok());
  auto before = manager_->Timeline(project_.id, name);
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->size(), 2u);

  // What the crash leaves: the 18th's task still "running" although its unit published; the 19th's unit
  // still in progress (its attempt never published) and its task "running".
  std::map<std::string, std::string> task_keys;
  ASSERT_TRUE(store_
                  ->ScanMeta(kTaskNs, TaskKeyPrefix(project_.id, name),
                             [&](std::string_view key, std::string_view v) {
                               auto t = ParseTaskRecord(v);
                               if (t.ok()) task_keys[t->partition] = std::string(key);
                               return true;
                             })
                  .ok());
  ASSERT_EQ(task_keys.size(), 2u);
  for (const auto& [label, key] : task_keys) {
    auto v = store_->GetMeta(kTaskNs, key);
    ASSERT_TRUE(v.ok() && v->has_value());
    auto t = ParseTaskRecord(**v);
    ASSERT_TRUE(t.ok());
    t->state = TaskState::kRunning;
    t->records = 0;
    t->bytes = 0;
    ASSERT_TRUE(store_->PutMeta(kTaskNs, key, TaskRecordToJson(*t)).ok());
  }
  const std::string unit19 = UnitKey(project_.id, name, "2026-11-19");
  auto saved19 = store_->GetMeta(kUnitNs, unit19);
  ASSERT_TRUE(saved19.ok() && saved19->has_value());
  auto state19 = ParseUnitState(**saved19);
  ASSERT_TRUE(state19.ok());
  state19->in_progress = true;
  state19->attempt_generation = state19->published_generation + 1;
  ASSERT_TRUE(store_->PutMeta(kUnitNs, unit19, UnitStateToJson(*state19)).ok());

  manager_.reset();
  StartManager();
  auto after = manager_->Timeline(project_.id, name);
  ASSERT_TRUE(after.ok());
  std::map<std::string, TaskRecord> by_day;
  for (const TaskRecord& t : *after) by_day.emplace(t.partition, t);  // newest first: the first per day
  ASSERT_TRUE(by_day.contains("2026-11-18"));
  EXPECT_EQ(by_day["2026-11-18"].state, TaskState::kSucceeded) << by_day["2026-11-18"].message;
  EXPECT_EQ(by_day["2026-11-18"].records, 10u);
  EXPECT_GT(by_day["2026-11-18"].bytes, 0u);
  EXPECT_EQ(by_day["2026-11-19"].state, TaskState::kFailed);
  EXPECT_NE(by_day["2026-11-19"].message.find("interrupted"), std::string::npos);

  SetNow(3, 0, 31);  // the next run (the 20th closed at 00:30 on the 21st)
  ASSERT_TRUE(manager_->RunDueNow().ok());
  BucketView view = ReadBucket(*bucket_);
  const std::string p = std::to_string(project_.id);
  EXPECT_EQ(view.manifests.at(p + "/mp_master_event/2026/11/18").generation, 1u) << "exported again";
  EXPECT_EQ(view.manifests.at(p + "/mp_master_event/2026/11/19").generation, 3u);
  EXPECT_EQ(InsertIds(view.records[p + "/mp_master_event/2026/11/19"]).size(), 5u);
}

TEST_F(ManagerTest, PeopleAndIdentitySnapshotsReplaceThePreviousOne) {
  SetNow(1, 1);
  std::vector<store::ProfileOps> profiles = {{"alice", {R"({"$name":"alice"})"}}, {"bob", {R"({"$name":"bob"})"}}};
  ASSERT_TRUE(store_->ApplyProfileOps(project_.id, {}, profiles, sluice::testing::ReplaceFolder(), nullptr).ok());
  Event e;
  e.name = "Login";
  e.time_us = At(0, 1);
  e.distinct_id = "alice";
  e.device_id = "dev-1";
  e.user_id = "alice";
  e.insert_id = "x1";
  IdentityLink link{"dev-1", "alice"};
  ASSERT_TRUE(store_->WriteEvents(project_.id, std::span<const Event>(&e, 1), std::span<const IdentityLink>(&link, 1))
                  .ok());

  PipelineSpec people = Spec();
  people.data_source = DataSource::kPeople;
  const std::string people_name = CreateOk(people);
  EXPECT_EQ(people_name, "people-daily-s3");
  PipelineSpec identity = Spec();
  identity.data_source = DataSource::kIdentity;
  const std::string identity_name = CreateOk(identity);
  ASSERT_TRUE(manager_->RunDueNow().ok());

  const std::string p = std::to_string(project_.id);
  BucketView view = ReadBucket(*bucket_);
  ASSERT_EQ(view.records[p + "/mp_people_data"].size(), 2u);
  EXPECT_NE(view.records[p + "/mp_people_data"][0].find(R"("distinct_id":"alice")"), std::string::npos);
  ASSERT_EQ(view.records[p + "/mp_identity_mappings_data"].size(), 1u);
  EXPECT_EQ(view.records[p + "/mp_identity_mappings_data"][0],
            R"({"distinct_id":"$device:dev-1","resolved_distinct_id":"alice"})");
  EXPECT_EQ(view.manifests.at(p + "/mp_people_data").partition, "snapshot");

  // The next run writes a new snapshot and removes the old one.
  std::vector<store::ProfileOps> carol = {{"carol", {R"({"plan":"pro"})"}}};
  ASSERT_TRUE(store_->ApplyProfileOps(project_.id, {}, carol, sluice::testing::ReplaceFolder(), nullptr).ok());
  SetNow(2, 0, 30);
  ASSERT_TRUE(manager_->RunDueNow().ok());
  view = ReadBucket(*bucket_);
  EXPECT_EQ(view.records[p + "/mp_people_data"].size(), 3u);
  EXPECT_EQ(view.manifests.at(p + "/mp_people_data").generation, 2u);
  EXPECT_TRUE(view.unlisted_data_files.empty());
  EXPECT_FALSE(bucket_->Object(p + "/mp_people_data/sluice-g000001-p00000.json.gz"));
}

// An hourly people pipeline replaces its snapshot every hour (Mixpanel: "based on the chosen schedule, daily
// or hourly"): a profile changed within the hour is in the next hour's snapshot, not a day later.
TEST_F(ManagerTest, HourlyPeopleSnapshotsAreReplacedEveryHour) {
  SetNow(1, 1);
  std::vector<store::ProfileOps> alice = {{"alice", {R"({"plan":"free"})"}}};
  ASSERT_TRUE(
      store_->ApplyProfileOps(project_.id, {}, alice, sluice::testing::ReplaceFolder(), nullptr).ok());
  PipelineSpec people = Spec();
  people.data_source = DataSource::kPeople;
  people.frequency = Frequency::kHourly;
  EXPECT_EQ(CreateOk(people), "people-hourly-s3");
  ASSERT_TRUE(manager_->RunDueNow().ok());
  const std::string dir = std::to_string(project_.id) + "/mp_people_data";
  ASSERT_EQ(ReadBucket(*bucket_).records[dir].size(), 1u);
  const uint64_t first = ReadBucket(*bucket_).manifests.at(dir).generation;
  std::vector<store::ProfileOps> bob = {{"bob", {R"({"plan":"pro"})"}}};
  ASSERT_TRUE(store_->ApplyProfileOps(project_.id, {}, bob, sluice::testing::ReplaceFolder(), nullptr).ok());
  SetNow(1, 2, 30);  // the next hour's slot
  ASSERT_TRUE(manager_->RunDueNow().ok());
  BucketView view = ReadBucket(*bucket_);
  EXPECT_EQ(view.records[dir].size(), 2u);
  EXPECT_EQ(view.manifests.at(dir).generation, first + 1);
  EXPECT_TRUE(view.unlisted_data_files.empty());
}

TEST_F(ManagerTest, PauseCancelAndResumeRules) {
  SetNow(1, 1);
  Write("aaa-1", At(0, 1));
  const std::string name = CreateOk(Spec());
  ASSERT_TRUE(manager_->Pause(project_.id, name).ok());
  ASSERT_TRUE(manager_->RunDueNow().ok());
  EXPECT_EQ(bucket_->size(), 0u) << "a paused pipeline exports nothing";
  EXPECT_EQ(manager_->SyncNow(project_.id, name).error().code, ErrorCode::kConflict);
  ASSERT_TRUE(manager_->Resume(project_.id, name).ok());
  ASSERT_TRUE(manager_->RunDueNow().ok());
  EXPECT_GT(bucket_->size(), 0u);
  ASSERT_TRUE(manager_->Cancel(project_.id, name).ok());
  EXPECT_EQ(manager_->Get(project_.id, name)->status, PipelineStatus::kCanceled);
  EXPECT_EQ(manager_->Resume(project_.id, name).error().code, ErrorCode::kConflict);
  EXPECT_EQ(manager_->Pause(project_.id, "nope").error().code, ErrorCode::kNotFound);
  // Canceled pipelines survive a restart as canceled, and free their slot.
  StartManager();
  EXPECT_EQ(manager_->Get(project_.id, name)->status, PipelineStatus::kCanceled);
  EXPECT_EQ(CreateOk(Spec()), "events-daily-s3-2");
}

TEST_F(ManagerTest, DateRangedPipelineFinishes) {
  SetNow(3, 1);
  Write("aaa-1", At(0, 1));
  PipelineSpec spec = Spec();
  spec.to_date = "2026-11-19";
  const std::string name = CreateOk(spec);
  ASSERT_TRUE(manager_->RunDueNow().ok());
  EXPECT_EQ(manager_->Get(project_.id, name)->status, PipelineStatus::kFinished);
  EXPECT_EQ(ReadBucket(*bucket_).manifests.size(), 2u);
}

// A finished pipeline neither resumes nor syncs (both say what reopens it); a later to_date reopens it, its
// next run exports the added day, and it finishes again. An earlier or equal to_date leaves it finished.
TEST_F(ManagerTest, ALaterToDateReopensAFinishedPipeline) {
  SetNow(3, 1);
  Write("aaa-1", At(0, 1));
  Write("aaa-2", At(2, 5));
  PipelineSpec spec = Spec();
  spec.to_date = "2026-11-19";
  const std::string name = CreateOk(spec);
  ASSERT_TRUE(manager_->RunDueNow().ok());
  ASSERT_EQ(manager_->Get(project_.id, name)->status, PipelineStatus::kFinished);
  for (const Status& s : {manager_->Resume(project_.id, name), manager_->SyncNow(project_.id, name)}) {
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, ErrorCode::kConflict);
    EXPECT_NE(s.error().message.find("edit its to_date to a later day"), std::string::npos)
        << s.error().message;
  }
  PipelineSpec same = manager_->Get(project_.id, name)->spec;
  same.where = "defined(properties[\"x\"])";
  ASSERT_TRUE(manager_->Edit(same).ok());
  EXPECT_EQ(manager_->Get(project_.id, name)->status, PipelineStatus::kFinished);
  same.where.clear();
  same.to_date = "2026-11-20";
  ASSERT_TRUE(manager_->Edit(same).ok());
  EXPECT_EQ(manager_->Get(project_.id, name)->status, PipelineStatus::kActive);
  ASSERT_TRUE(manager_->RunDueNow().ok());
  const auto view = ReadBucket(*bucket_);
  EXPECT_EQ(view.manifests.size(), 3u);
  size_t records = 0;
  for (const auto& [prefix, lines] : view.records) records += lines.size();
  EXPECT_EQ(records, 2u);
  EXPECT_EQ(manager_->Get(project_.id, name)->status, PipelineStatus::kFinished);
}

TEST_F(ManagerTest, EnforcesMixpanelLimitsAndTheDestinationCheck) {
  SetNow(200, 12);  // 2027-06-06
  auto err = [&](PipelineSpec s) {
    auto r = manager_->Create(std::move(s));
    return r.ok() ? std::string("ok") : r.error().message;
  };
  EXPECT_NE(err(Spec("2026-11-18")).find("6 months"), std::string::npos);
  EXPECT_NE(err(Spec("2027-06-07")).find("future"), std::string::npos);
  EXPECT_NE(err(Spec("2027-02-30")).find("YYYY-MM-DD"), std::string::npos);
  PipelineSpec no_bucket = Spec("2027-06-01");
  no_bucket.destination.s3_bucket.clear();
  EXPECT_NE(err(no_bucket).find("s3_bucket"), std::string::npos);
  PipelineSpec backwards = Spec("2027-06-01");
  backwards.to_date = "2027-05-01";
  EXPECT_NE(err(backwards).find("to_date"), std::string::npos);

  destinations_->check = Error(ErrorCode::kAccessDenied, "put: AccessDenied — add s3:PutObject");
  auto refused = manager_->Create(Spec("2027-06-01"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kAccessDenied);
  EXPECT_NE(refused.error().message.find("s3:PutObject"), std::string::npos);
  destinations_->check = OkStatus();

  EXPECT_EQ(CreateOk(Spec("2027-06-01")), "events-daily-s3");
  // Same destination, overlapping dates.
  PipelineSpec hourly = Spec("2027-06-01", Frequency::kHourly);
  EXPECT_NE(err(hourly).find("overlapping"), std::string::npos);
  hourly.destination.s3_prefix = "hourly";
  EXPECT_EQ(err(hourly), "ok");
  PipelineSpec third = Spec("2027-06-01", Frequency::kHourly);
  third.destination.s3_prefix = "third";
  EXPECT_NE(err(third).find("different frequencies"), std::string::npos);
  PipelineSpec ranged = Spec("2027-06-01");
  ranged.to_date = "2027-06-02";
  ranged.destination.s3_prefix = "ranged";
  EXPECT_EQ(err(ranged), "ok");
  ranged.destination.s3_prefix = "ranged2";
  EXPECT_NE(err(ranged).find("date-ranged"), std::string::npos);
  // Other data sources have their own quota.
  PipelineSpec people = Spec("2027-06-01");
  people.data_source = DataSource::kPeople;
  people.destination.s3_prefix = "people";
  EXPECT_EQ(err(people), "ok");
  // An explicit name that is taken.
  PipelineSpec named = Spec("2027-06-01");
  named.data_source = DataSource::kIdentity;
  named.name = "events-daily-s3";
  auto taken = manager_->Create(named);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().code, ErrorCode::kConflict);
}

TEST_F(ManagerTest, EditChangesFiltersAndRechecksANewDestination) {
  SetNow(1, 1);
  const std::string name = CreateOk(Spec());
  PipelineSpec edited = manager_->Get(project_.id, name)->spec;
  edited.events = {"Paid"};
  ASSERT_TRUE(manager_->Edit(edited).ok());
  EXPECT_EQ(manager_->Get(project_.id, name)->spec.events, std::vector<std::string>{"Paid"});
  edited.destination.s3_role = "arn:aws:iam::123456789012:role/other";
  destinations_->check = Error(ErrorCode::kAccessDenied, "no access as other");
  EXPECT_EQ(manager_->Edit(edited).error().code, ErrorCode::kAccessDenied);
  EXPECT_NE(manager_->Get(project_.id, name)->spec.destination.s3_role, edited.destination.s3_role);
  destinations_->check = OkStatus();
  ASSERT_TRUE(manager_->Edit(edited).ok());
  EXPECT_EQ(manager_->Get(project_.id, name)->spec.destination.s3_role, edited.destination.s3_role);
  edited.from_date = "2026-11-19";
  EXPECT_EQ(manager_->Edit(edited).error().code, ErrorCode::kInvalidArgument);
}

// Partitions are tracked by label at one location, so another frequency would export every partition again
// beside the files already there, and another bucket or prefix would get only what changes from now on: both
// are refused (the pipeline unchanged); the same location spelt differently is not a change.
TEST_F(ManagerTest, EditRefusesAnotherFrequencyOrLocation) {
  SetNow(1, 1);
  Write("aaa-1", At(0, 1));
  const std::string name = CreateOk(Spec());
  ASSERT_TRUE(manager_->RunDueNow().ok());
  const size_t files = bucket_->size();
  ASSERT_GT(files, 0u);
  const PipelineSpec original = manager_->Get(project_.id, name)->spec;
  auto refused = [&](const std::function<void(PipelineSpec&)>& change) {
    PipelineSpec edited = original;
    change(edited);
    auto r = manager_->Edit(edited);
    return r.ok() ? std::string("accepted") : r.error().message;
  };
  EXPECT_NE(
      refused([](PipelineSpec& s) { s.frequency = Frequency::kHourly; }).find("frequency cannot be changed"),
      std::string::npos);
  for (const auto& change : std::vector<std::function<void(PipelineSpec&)>>{
           [](PipelineSpec& s) { s.destination.s3_bucket = "other"; },
           [](PipelineSpec& s) { s.destination.s3_prefix = "moved"; },
           [](PipelineSpec& s) { s.destination.s3_endpoint = "http://127.0.0.1:9"; }}) {
    const std::string message = refused(change);
    EXPECT_NE(message.find("location"), std::string::npos) << message;
    EXPECT_NE(message.find("create a pipeline for the new location"), std::string::npos) << message;
  }
  const PipelineSpec after = manager_->Get(project_.id, name)->spec;
  EXPECT_EQ(after.frequency, Frequency::kDaily);
  EXPECT_TRUE(SameLocation(after.destination, original.destination));
  // The same prefix with its slashes, and how Sluice writes there, may change.
  PipelineSpec same = original;
  same.destination.s3_prefix = "/" + original.destination.s3_prefix + "/";
  same.destination.s3_region = "eu-west-1";
  EXPECT_EQ(refused([&](PipelineSpec& s) { s = same; }), "accepted");
  // Nothing was exported again.
  ASSERT_TRUE(manager_->RunDueNow().ok());
  EXPECT_EQ(bucket_->size(), files);
}

TEST(SameLocationTest, ComparesWhereNotHow) {
  Destination a;
  a.type = DestinationType::kLocal;
  a.local_path = "/srv/x/b/web-app";
  Destination b = a;
  b.local_path = "/srv/x/./b//web-app/";
  EXPECT_TRUE(SameLocation(a, b));
  b.local_path = "/srv/x/b/web-app2";
  EXPECT_FALSE(SameLocation(a, b));
  Destination g;
  g.type = DestinationType::kGcs;
  g.gcs_bucket = "g";
  Destination h = g;
  h.gcs_kms_key_name = "projects/p/locations/l/keyRings/r/cryptoKeys/k";
  EXPECT_TRUE(SameLocation(g, h));
  h.gcs_prefix = "p";
  EXPECT_FALSE(SameLocation(g, h));
  Destination z;
  z.type = DestinationType::kAzure;
  z.azure_storage_account = "acct";
  z.azure_container = "c";
  Destination y = z;
  y.azure_client_id = "other";
  EXPECT_TRUE(SameLocation(z, y));
  y.azure_container = "d";
  EXPECT_FALSE(SameLocation(z, y));
  EXPECT_FALSE(SameLocation(a, g));
}

// An edit that changes only the identity Sluice writes as (an Azure service principal, tenant or secret) or a
// GCS pipeline's customer-managed key is checked like a new destination: refused, the pipeline unchanged,
// when the check fails; an edit of filters alone is not checked.
TEST_F(ManagerTest, EditOfCredentialsOrKeysAloneRechecksTheDestination) {
  SetNow(1, 1);
  PipelineSpec azure = Spec();
  azure.destination = Destination{};
  azure.destination.type = DestinationType::kAzure;
  azure.destination.azure_storage_account = "acmeexports";
  azure.destination.azure_container = "mixpanel";
  azure.destination.azure_tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47";
  azure.destination.azure_client_id = "11111111-2222-3333-4444-555555555555";
  azure.destination.azure_client_secret = Secret("first-secret");
  const std::string azure_name = CreateOk(azure);
  ASSERT_FALSE(azure_name.empty());
  PipelineSpec gcs = Spec();
  gcs.frequency = Frequency::kHourly;
  gcs.destination = Destination{};
  gcs.destination.type = DestinationType::kGcs;
  gcs.destination.gcs_bucket = "acme-events";
  const std::string gcs_name = CreateOk(gcs);
  ASSERT_FALSE(gcs_name.empty());

  destinations_->check = Error(ErrorCode::kAccessDenied, "the check failed");
  const auto refused = [&](const std::string& name, const std::function<void(Destination&)>& change) {
    PipelineSpec edited = manager_->Get(project_.id, name)->spec;
    change(edited.destination);
    auto r = manager_->Edit(edited);
    return !r.ok() && r.error().code == ErrorCode::kAccessDenied;
  };
  EXPECT_TRUE(refused(azure_name, [](Destination& d) { d.azure_client_secret = Secret("second-secret"); }));
  EXPECT_TRUE(refused(azure_name,
                      [](Destination& d) { d.azure_client_id = "99999999-2222-3333-4444-555555555555"; }));
  EXPECT_TRUE(refused(azure_name,
                      [](Destination& d) { d.azure_tenant_id = "00000000-86f1-41af-91ab-2d7cd011db47"; }));
  EXPECT_TRUE(refused(gcs_name, [](Destination& d) {
    d.gcs_kms_key_name = "projects/p/locations/us/keyRings/r/cryptoKeys/k";
  }));
  EXPECT_EQ(manager_->Get(project_.id, azure_name)->spec.destination.azure_client_secret.Reveal(),
            "first-secret");
  EXPECT_TRUE(manager_->Get(project_.id, gcs_name)->spec.destination.gcs_kms_key_name.empty());

  PipelineSpec filters_only = manager_->Get(project_.id, azure_name)->spec;
  filters_only.events = {"Paid"};
  EXPECT_TRUE(manager_->Edit(filters_only).ok()) << "an edit of filters alone was checked";
}

TEST_F(ManagerTest, LocalPathOfAnotherProjectsPipelineIsRefused) {
  SetNow(1, 1);
  auto other = store_->CreateProject("other-secret-name");
  ASSERT_TRUE(other.ok());
  auto local = [](PipelineSpec s, uint32_t project, const std::string& path) {
    s.project_id = project;
    s.destination = Destination{};
    s.destination.type = DestinationType::kLocal;
    s.destination.local_path = path;
    return s;
  };
  auto err = [&](PipelineSpec s) {
    auto r = manager_->Create(std::move(s));
    return r.ok() ? std::string("ok") : r.error().message;
  };
  ASSERT_EQ(err(local(Spec(), other->id, "b/web-app")), "ok");
  // The same directory (relative, absolute, with '.' and extra slashes), a parent of it, or one inside it.
  for (const std::string path :
       {"b/web-app", "./b//web-app/", "/srv/sluice-export/b/web-app", "b", "/srv/sluice-export", ".",
        "b/web-app/sub", "/srv/sluice-export/b/web-app/x/y"}) {
    const std::string message = err(local(Spec(), project_.id, path));
    EXPECT_NE(message.find("used by another project's pipeline"), std::string::npos)
        << path << ": " << message;
    EXPECT_EQ(message.find(std::to_string(other->id)), std::string::npos) << message;
    EXPECT_EQ(message.find("other-secret-name"), std::string::npos) << message;
    EXPECT_EQ(message.find("events-daily"), std::string::npos) << message;
  }
  // A sibling whose name merely starts the same is fine, and so is the same project's own directory tree.
  const std::string mine = CreateOk(local(Spec(), project_.id, "b/web-app2"));
  ASSERT_FALSE(mine.empty());
  PipelineSpec hourly = local(Spec("2026-11-18", Frequency::kHourly), other->id, "b/web-app/hourly");
  EXPECT_EQ(err(hourly), "ok");
  // An edit cannot move a pipeline at all (so not into another project's directory either).
  PipelineSpec edited = manager_->Get(project_.id, mine)->spec;
  edited.destination.local_path = "/srv/sluice-export/b/web-app/";
  auto refused = manager_->Edit(edited);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message.find("location"), std::string::npos);
  EXPECT_EQ(manager_->Get(project_.id, mine)->spec.destination.local_path, "b/web-app2");
  // A canceled pipeline's files stay, so its directory stays taken.
  ASSERT_TRUE(manager_->Cancel(other->id, "events-daily-s3").ok());
  EXPECT_NE(err(local(Spec(), project_.id, "b/web-app")).find("another project's"), std::string::npos);
}

TEST_F(ManagerTest, SchedulerThreadRunsDueWorkAndStopsPromptly) {
  SetNow(1, 1);
  Write("aaa-1", At(0, 1));
  ManagerOptions o;
  o.store = store_.get();
  o.destinations = destinations_;
  o.clock = &clock_;
  o.poll_interval = std::chrono::milliseconds(10);
  manager_.reset();
  auto m = Pipelines::Create(o);
  ASSERT_TRUE(m.ok());
  manager_ = std::move(m).value();
  manager_->Start();
  const std::string name = CreateOk(Spec());
  // Bounded wait for the background run.
  for (int i = 0; i < 500 && !bucket_->Object(std::to_string(project_.id) + "/mp_master_event/2026/11/18/complete");
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(bucket_->Object(std::to_string(project_.id) + "/mp_master_event/2026/11/18/complete"));
  manager_->Stop();
  manager_->Stop();  // idempotent
}

// ---- several nodes on one store (jobs::Runner leases) ------------------------------------------------------

TEST_F(ManagerTest, PipelinesCreatedPausedOrResumedThroughAnotherNodeAreSeenAndWorkIsNotRepeated) {
  leases_ = std::make_shared<jobs::InProcessLeaseService>();
  StartManager();
  auto b = OtherNode("node-b");
  ASSERT_TRUE(b);
  SetNow(3, 1);
  Write("aaa-1", At(0, 1));
  Write("bbb-1", At(1, 12));
  const std::string name = CreateOk(Spec());  // through node A
  // Node B picks it up from the store on its next scheduling round and exports it.
  ASSERT_TRUE(b->RunDueNow().ok());
  ASSERT_TRUE(b->Get(project_.id, name).ok());
  const size_t puts = bucket_->Keys().size();
  ASSERT_GT(puts, 0u);
  // Node A reloads: the work B finished is not exported again.
  ASSERT_TRUE(manager_->RunDueNow().ok());
  EXPECT_EQ(bucket_->Keys().size(), puts);
  BucketView view = ReadBucket(*bucket_);
  EXPECT_EQ(view.manifests.size(), 3u);
  for (auto& [dir, m] : view.manifests) EXPECT_EQ(m.generation, 1u) << dir;
  EXPECT_TRUE(view.unlisted_data_files.empty());

  // Paused through B: A sees it after its next round, and runs nothing for it.
  ASSERT_TRUE(b->Pause(project_.id, name).ok());
  Write("ccc-1", At(3, 5));
  SetNow(4, 1);
  ASSERT_TRUE(manager_->RunDueNow().ok());
  EXPECT_EQ(manager_->Get(project_.id, name)->status, PipelineStatus::kPaused);
  EXPECT_EQ(ReadBucket(*bucket_).manifests.size(), 3u);
  // Resumed through A: B exports the new day.
  ASSERT_TRUE(manager_->Resume(project_.id, name).ok());
  ASSERT_TRUE(b->RunDueNow().ok());
  EXPECT_EQ(b->Get(project_.id, name)->status, PipelineStatus::kActive);
  EXPECT_EQ(ReadBucket(*bucket_).manifests.size(), 4u);
  // A pipeline created through B is listed by A.
  PipelineSpec hourly = Spec("2026-11-21", Frequency::kHourly);
  hourly.destination.s3_bucket = "other-bucket";
  ASSERT_TRUE(b->Create(hourly).ok());
  ASSERT_TRUE(manager_->RunDueNow().ok());
  EXPECT_EQ(manager_->List(project_.id)->size(), 2u);
}

// Nodes sharing the store change pipeline records as read-modify-writes under one lease, so a node whose view
// is a moment old neither overwrites another node's change nor checks a name, a limit or a shared directory
// against an old list (each of these was lost or let through when the node decided from its own view).
TEST_F(ManagerTest, RecordChangesThroughAnotherNodeAreNeverLostOrBypassed) {
  leases_ = std::make_shared<jobs::InProcessLeaseService>();
  StartManager();
  auto b = OtherNode("node-b");  // its view: no pipeline yet
  ASSERT_TRUE(b);
  SetNow(3, 1);
  Write("aaa-1", At(0, 1));
  Write("bbb-1", At(1, 12));
  PipelineSpec daily = Spec();
  daily.name = "same";
  ASSERT_EQ(CreateOk(daily), "same");  // through A

  // B's view does not have it: B still refuses a second recurring daily pipeline and the same name.
  PipelineSpec second = Spec();
  second.name = "second";
  second.destination.s3_bucket = "other-bucket";
  auto refused = b->Create(second);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("recurring"), std::string::npos) << refused.error().message;
  PipelineSpec hourly = Spec("2026-11-18", Frequency::kHourly);
  hourly.name = "same";
  hourly.destination.s3_bucket = "other-bucket";
  auto duplicate = b->Create(hourly);
  ASSERT_FALSE(duplicate.ok());
  EXPECT_EQ(duplicate.error().code, ErrorCode::kConflict) << duplicate.error().message;
  EXPECT_EQ(manager_->Get(project_.id, "same")->spec.frequency, Frequency::kDaily);

  // Another project's local directory, taken through a node whose view predates it.
  auto other = store_->CreateProject("other");
  ASSERT_TRUE(other.ok());
  auto c = OtherNode("node-c");
  ASSERT_TRUE(c);
  PipelineSpec local = Spec();
  local.destination = Destination{};
  local.destination.type = DestinationType::kLocal;
  local.destination.local_path = "shared/dir";
  local.project_id = other->id;
  ASSERT_TRUE(manager_->Create(local).ok());
  local.project_id = project_.id;
  local.to_date = "2026-11-19";  // date-ranged: within the project's limits
  auto taken = c->Create(local);
  ASSERT_FALSE(taken.ok());
  EXPECT_NE(taken.error().message.find("used by another project's pipeline"), std::string::npos)
      << taken.error().message;

  // Edits of different fields through A, then through B (whose view predates A's edit): both are kept.
  ASSERT_TRUE(manager_
                  ->Edit(project_.id, "same",
                         [](PipelineSpec& s) {
                           s.events = {"Played"};
                           return OkStatus();
                         })
                  .ok());
  ASSERT_TRUE(b->Edit(project_.id, "same", [](PipelineSpec& s) {
                 s.where = R"(properties["$os"] == "Linux")";
                 return OkStatus();
               }).ok());
  for (Pipelines* node : {manager_.get(), b.get()}) {
    ASSERT_TRUE(node->RunDueNow().ok());  // a scheduling round reloads the records
    const PipelineSpec stored = node->Get(project_.id, "same")->spec;
    EXPECT_EQ(stored.events, std::vector<std::string>{"Played"});
    EXPECT_EQ(stored.where, R"(properties["$os"] == "Linux")");
  }
  // A ran it (the first round); its totals are in the stored record, as B reads it.
  EXPECT_EQ(b->Get(project_.id, "same")->partitions_exported, 3u);
  EXPECT_EQ(b->Get(project_.id, "same")->events_exported, 2u);

  // A cancel through A while B runs the pipeline: B exports nothing more, and the pipeline stays canceled.
  PipelineSpec fresh = Spec("2026-11-18", Frequency::kHourly);
  fresh.name = "fresh";
  fresh.destination.s3_bucket = "third-bucket";
  ASSERT_EQ(CreateOk(fresh), "fresh");
  const std::vector<std::string> files_before = bucket_->Keys();  // the others are not due again yet
  destinations_->on_open = [&] { ASSERT_TRUE(manager_->Cancel(project_.id, "fresh").ok()); };
  Status run = b->RunDueNow();  // interrupted by the cancel
  EXPECT_TRUE(run.ok() || run.error().code == ErrorCode::kCancelled) << run.error().message;
  EXPECT_FALSE(destinations_->on_open) << "B did not run the pipeline";
  for (Pipelines* node : {manager_.get(), b.get()}) {
    ASSERT_TRUE(node->RunDueNow().ok());
    EXPECT_EQ(node->Get(project_.id, "fresh")->status, PipelineStatus::kCanceled);
  }
  EXPECT_EQ(bucket_->Keys(), files_before) << "exported after the cancel";
}

TEST_F(ManagerTest, AUnitHeldByAnotherNodeIsSkippedThenExportedOnceItIsFree) {
  leases_ = std::make_shared<jobs::InProcessLeaseService>();
  StartManager();
  SetNow(3, 1);
  Write("aaa-1", At(0, 1));
  Write("bbb-1", At(1, 12));
  Write("ccc-1", At(2, 12));
  const std::string name = CreateOk(Spec());
  auto held = leases_->TryAcquire(jobs::UnitName({"export", "p" + std::to_string(project_.id), name, "2026-11-19"}),
                                  "node-b");
  ASSERT_TRUE(held.ok());
  Status run = manager_->RunDueNow();
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(jobs::Classify(run), jobs::Disposition::kSkipped) << run.error().ToString();
  const std::string prefix = std::to_string(project_.id) + "/mp_master_event/2026/11/";
  BucketView view = ReadBucket(*bucket_);
  EXPECT_EQ(view.manifests.size(), 2u);
  EXPECT_FALSE(view.manifests.contains(prefix + "19"));
  EXPECT_EQ(manager_->Get(project_.id, name)->status, PipelineStatus::kActive) << "a skip is not a failure";
  // Not due again until lease_retry has passed; then exported once the other node let go.
  ASSERT_TRUE((*held)->Release().ok());
  ASSERT_TRUE(manager_->RunDueNow().ok());
  EXPECT_EQ(ReadBucket(*bucket_).manifests.size(), 2u);
  clock_.Advance(std::chrono::seconds(6));
  ASSERT_TRUE(manager_->RunDueNow().ok());
  view = ReadBucket(*bucket_);
  EXPECT_EQ(view.manifests.size(), 3u);
  for (auto& [dir, m] : view.manifests) EXPECT_EQ(m.generation, 1u) << dir;
  EXPECT_EQ(view.records[prefix + "19"].size(), 1u);
}

/// In-process leases of which the export leases are lost at their Nth Renew() (as if the node's ZooKeeper
/// session expired right then).
class LosingLeases final : public jobs::LeaseService {
 public:
  explicit LosingLeases(int lose_at_renew) : lose_at_(lose_at_renew) {}
  Result<std::unique_ptr<jobs::UnitLease>> TryAcquire(std::string_view unit, std::string_view holder) override {
    SLUICE_ASSIGN_OR_RETURN(auto lease, inner_.TryAcquire(unit, holder));
    if (!unit.starts_with("export.") || lose_at_ <= 0) return lease;
    return std::unique_ptr<jobs::UnitLease>(new Losing(std::move(lease), this));
  }
  std::string Describe() const override { return "losing"; }
  int lose_at_;
  int lost = 0;

 private:
  class Losing final : public jobs::UnitLease {
   public:
    Losing(std::unique_ptr<jobs::UnitLease> inner, LosingLeases* owner) : inner_(std::move(inner)), owner_(owner) {}
    const std::string& unit() const override { return inner_->unit(); }
    int64_t token() const override { return inner_->token(); }
    bool Lost() const override { return inner_->Lost(); }
    Status Renew() override {
      if (++renews_ == owner_->lose_at_) {
        owner_->inner_.ExpireForTesting(inner_->unit());
        ++owner_->lost;
      }
      return inner_->Renew();
    }
    Status Release() override { return inner_->Release(); }

   private:
    std::unique_ptr<jobs::UnitLease> inner_;
    LosingLeases* owner_;
    int renews_ = 0;
  };
  jobs::InProcessLeaseService inner_;
};

TEST_F(ManagerTest, ANodeThatLostItsUnitLeaseCommitsNothingAndTheTakeoverExportsTheUnitOnce) {
  max_file_bytes_ = 2048;  // several parts
  // Renews of a unit: before claiming, before writing the claim, before the attempt, before publishing.
  auto losing = std::make_shared<LosingLeases>(4);
  leases_ = losing;
  StartManager();
  SetNow(1, 1);
  for (int i = 0; i < 100; ++i) Write("aaa-" + std::to_string(i), At(0, 1));
  const std::string name = CreateOk(Spec());
  Status run = manager_->RunDueNow();
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(jobs::Classify(run), jobs::Disposition::kSkipped) << run.error().ToString();
  EXPECT_EQ(losing->lost, 1);
  EXPECT_EQ(manager_->Get(project_.id, name)->status, PipelineStatus::kActive);
  // The unit's published state was refused: its generation 1 is not the published one.
  auto timeline = manager_->Timeline(project_.id, name);
  ASSERT_TRUE(timeline.ok());
  ASSERT_FALSE(timeline->empty());
  EXPECT_EQ(timeline->front().state, TaskState::kFailed);
  EXPECT_NE(timeline->front().message.find("lost"), std::string::npos) << timeline->front().message;

  // Another node takes over (the first one is gone): the unit is exported again under the next generation,
  // replacing every file of the first attempt, so the bucket holds exactly one copy.
  losing->lose_at_ = 0;
  manager_.reset();
  auto b = OtherNode("node-b");
  ASSERT_TRUE(b);
  clock_.Advance(std::chrono::seconds(6));  // the skipped run is due again after lease_retry
  ASSERT_TRUE(b->RunDueNow().ok());
  const std::string dir = std::to_string(project_.id) + "/mp_master_event/2026/11/18";
  BucketView view = ReadBucket(*bucket_);
  ASSERT_TRUE(view.manifests.contains(dir));
  EXPECT_EQ(view.manifests.at(dir).generation, 2u);
  EXPECT_EQ(view.records[dir].size(), 100u);
  EXPECT_EQ(InsertIds(view.records[dir]).size(), 100u);
  EXPECT_TRUE(view.unlisted_data_files.empty()) << view.unlisted_data_files.front();
}

}  // namespace
}  // namespace sluice::pipeline
