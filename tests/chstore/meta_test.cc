// store::MetaStore conformance over the embedded RocksStore and ZkMetaStore (against a real loopback
// ZooKeeper 3.8, one server for the binary), plus what only the shared store has to do: unique project ids
// and whole updates under concurrent nodes, change stamps, the value size limit, and a ZooKeeper outage.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "chstore/zk_meta.h"
#include "common/crypto.h"
#include "coord/session.h"
#include "coord/url.h"
#include "jobs/fenced_write.h"
#include "jobs/lease.h"
#include "store/store.h"
#include "support/child_process.h"
#include "support/zookeeper_environment.h"
#include "support/zookeeper_server.h"

namespace sluice::chstore {
namespace {

using std::chrono::milliseconds;
using testing::ZooKeeperEnvironment;
using testing::ZooKeeperServer;

// gtest_main runs the tests: register the binary's one ZooKeeper before it does.
[[maybe_unused]] ::testing::Environment* const kZooKeeper =
    ::testing::AddGlobalTestEnvironment(new ZooKeeperEnvironment());

std::shared_ptr<coord::Session> OpenSession(const std::string& url,
                                            milliseconds session_timeout = milliseconds(4000),
                                            milliseconds connect_timeout = milliseconds(10'000)) {
  coord::Session::Options o;
  o.url = coord::ParseZooKeeperUrl(url).value();
  o.session_timeout = session_timeout;
  o.connect_timeout = connect_timeout;
  auto s = coord::Session::Open(o);
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  return s.ok() ? *s : nullptr;
}

std::shared_ptr<coord::Session> OpenSession() {
  return OpenSession(ZooKeeperEnvironment::server()->Url("/meta_test"));
}

std::unique_ptr<ZkMetaStore> OpenZk(std::shared_ptr<coord::Session> session, const std::string& root) {
  ZkMetaOptions o;
  o.root = root;
  auto store = ZkMetaStore::Open(std::move(session), o);
  EXPECT_TRUE(store.ok()) << store.error().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

std::string FreshRoot(const std::string& what) {
  static std::atomic<int> n{0};
  return "/" + what + "_" + std::to_string(n.fetch_add(1)) + "_" + RandomHex(32);
}

std::string Repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

std::vector<std::pair<std::string, std::string>> Scan(store::MetaStore& s, std::string_view ns,
                                                      std::string_view prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  Status st = s.ScanMeta(ns, prefix, [&](std::string_view k, std::string_view v) {
    out.emplace_back(std::string(k), std::string(v));
    return true;
  });
  EXPECT_TRUE(st.ok()) << st.error().ToString();
  return out;
}

// A pipeline unit state as the manager writes it (pipeline/state.cc UnitStateToJson) for a unit that
// published `files` files and has as many superseded ones left to delete: the largest real record.
std::string LargeUnitState(int files) {
  std::string json = R"({"published_generation":7,"covered_seq":123456789,"files":[)";
  auto key = [](int gen, int i) {
    return fmt::format(
        R"("exports/acme-prod/0000000042/daily-events/events/2026/01/01/gen-{:06}/part-{:05}.json.gz")", gen,
        i);
  };
  for (int i = 0; i < files; ++i) json += (i ? "," : "") + key(7, i);
  json += R"(],"records":987654321,"bytes":123456789012,"in_progress":false,"attempt_generation":7,)"
          R"("attempt_compression":"gzip","abandoned":[{"generation":5,"files":12}],"undeleted":[)";
  for (int i = 0; i < files; ++i) json += (i ? "," : "") + key(6, i);
  json += R"(],"sync_times":[1767225600000,1767312000000],"last_state":"succeeded"})";
  return json;
}

// ---- One conformance suite over both backends
// ---------------------------------------------------------------

enum class Backend { kRocks, kZooKeeper };

class MetaStoreConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kRocks) {
      auto dir = testing::MakeTempDir("sluice-meta-conformance");
      ASSERT_TRUE(dir.ok());
      dir_ = *dir;
      auto s = store::Store::Open(dir_);
      ASSERT_TRUE(s.ok()) << s.error().ToString();
      rocks_ = std::move(*s);
      store_ = rocks_.get();
    } else {
      ASSERT_NE(ZooKeeperEnvironment::server(), nullptr);
      zk_ = OpenZk(OpenSession(), FreshRoot("conformance"));
      ASSERT_TRUE(zk_);
      store_ = zk_.get();
    }
  }
  void TearDown() override {
    zk_.reset();
    rocks_.reset();
    if (!dir_.empty()) testing::RemoveTree(dir_);
  }

  std::string dir_;
  std::unique_ptr<store::Store> rocks_;
  std::unique_ptr<ZkMetaStore> zk_;
  store::MetaStore* store_ = nullptr;
};

TEST_P(MetaStoreConformance, ProjectsCreateListGetUpdate) {
  EXPECT_TRUE(store_->ListProjects()->empty());
  std::vector<store::Project> created;
  for (const char* name : {"alpha", "beta", "gamma with spaces/and:colons"}) {
    auto p = store_->CreateProject(name);
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    EXPECT_EQ(p->name, name);
    EXPECT_EQ(p->token.size(), 32u);
    EXPECT_EQ(p->api_secret.Reveal().size(), 32u);
    EXPECT_GT(p->created_ms, 0);
    created.push_back(*p);
  }
  EXPECT_LT(created[0].id, created[1].id);
  EXPECT_LT(created[1].id, created[2].id);
  EXPECT_NE(created[0].token, created[1].token);
  EXPECT_NE(created[0].api_secret.Reveal(), created[1].api_secret.Reveal());

  auto listed = store_->ListProjects();
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  ASSERT_EQ(listed->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*listed)[i].id, created[i].id);
    EXPECT_EQ((*listed)[i].name, created[i].name);
    EXPECT_EQ((*listed)[i].token, created[i].token);
    EXPECT_EQ((*listed)[i].api_secret.Reveal(), created[i].api_secret.Reveal());
    EXPECT_EQ((*listed)[i].created_ms, created[i].created_ms);
  }

  store::Project changed = created[1];
  changed.name = "beta renamed";
  changed.external_id = "ext-123";
  changed.gcs_buckets = {"bucket-one", "bucket.two"};
  ASSERT_TRUE(store_->UpdateProject(changed).ok());
  auto got = store_->GetProject(changed.id);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->name, "beta renamed");
  EXPECT_EQ((*got)->external_id, "ext-123");
  EXPECT_EQ((*got)->gcs_buckets, (std::vector<std::string>{"bucket-one", "bucket.two"}));
  EXPECT_EQ((*got)->token, created[1].token);
  EXPECT_EQ((*got)->api_secret.Reveal(), created[1].api_secret.Reveal());
  auto other = store_->GetProject(created[0].id);
  ASSERT_TRUE(other.ok() && other->has_value());
  EXPECT_TRUE((*other)->gcs_buckets.empty());

  auto missing = store_->GetProject(created[2].id + 100);
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  store::Project ghost = created[0];
  ghost.id = created[2].id + 100;
  Status update_missing = store_->UpdateProject(ghost);
  ASSERT_FALSE(update_missing.ok());
  EXPECT_EQ(update_missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->ListProjects()->size(), 3u);
}

TEST_P(MetaStoreConformance, MetaRecordsWithAwkwardKeysScanInKeyOrderByPrefix) {
  const std::vector<std::string> keys = {
      "",
      "a",
      "a/",
      "a/b",
      "a/b/c",
      "a/b/",
      "a:b",
      "a b",
      "a.b",
      "..",
      ".",
      "/",
      "//x",
      "k",
      "_41",
      "A",
      "\xc3\xbc/x",
      std::string("\0bin\xff", 5),
      "0000000001/daily/2026-01-01",
      "0000000001/daily/2026-01-02",
      "0000000001/daily2/2026-01-01",
      "0000000001/daily/",
      "0000000010/daily/2026-01-01",
      "conn-1/000000000001",
      "conn-1/000000000002",
      "conn-1/objects/path/to/file.csv",
      // Parts too long for one ZooKeeper node name (255 characters once encoded): S3 object keys can be.
      "conn-1/objects/" + std::string(200, 'x') + ".csv",
      "conn-1/objects/" + Repeat("\xc3\xa9", 150) + "-a.csv",
      "conn-1/objects/" + Repeat("\xc3\xa9", 150) + "-b.csv",
      "conn-1/" + Repeat("d\xc3\xa9/", 120) + "file.csv",
      "conn-1/" + Repeat("d\xc3\xa9/", 120) + Repeat("f.", 200),
  };
  std::map<std::string, std::string> expected;
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string value = i == 3 ? std::string() : "value-" + std::to_string(i) + std::string("\0\x01\xfe", 3);
    ASSERT_TRUE(store_->PutMeta("ns", keys[i], value).ok()) << i;
    expected[keys[i]] = value;
  }
  // Another namespace (a prefix of this one's name) with overlapping keys stays apart.
  ASSERT_TRUE(store_->PutMeta("n", "a/b", "other namespace").ok());
  ASSERT_TRUE(store_->PutMeta("ns2", "a", "other namespace").ok());

  // Overwrite and delete (deleting a missing key is fine).
  ASSERT_TRUE(store_->PutMeta("ns", "a/b/c", "replaced").ok());
  expected["a/b/c"] = "replaced";
  ASSERT_TRUE(store_->DeleteMeta("ns", "a:b").ok());
  expected.erase("a:b");
  ASSERT_TRUE(store_->DeleteMeta("ns", "never/written").ok());

  for (const auto& [k, v] : expected) {
    auto got = store_->GetMeta("ns", k);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    ASSERT_TRUE(got->has_value()) << k;
    EXPECT_EQ(**got, v) << k;
  }
  auto deleted = store_->GetMeta("ns", "a:b");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(deleted->has_value());
  EXPECT_FALSE(store_->GetMeta("ns", "a/b/c/")->has_value());
  EXPECT_EQ(**store_->GetMeta("n", "a/b"), "other namespace");

  std::vector<std::string> prefixes = {"conn-1/objects/x",
                                       "conn-1/objects/\xc3\xa9\xc3",
                                       "conn-1/d\xc3\xa9/d",
                                       "conn-1/" + Repeat("d\xc3\xa9/", 120) + "f",
                                       "conn-1/" + Repeat("d\xc3\xa9/", 120) + "file.csv",
                                       "",
                                       "a",
                                       "a/",
                                       "a/b",
                                       "a/b/",
                                       "a/b/c",
                                       "0",
                                       "0000000001/",
                                       "0000000001/daily",
                                       "0000000001/daily/",
                                       "0000000001/daily/2026-01-0",
                                       "conn-1/",
                                       "conn-1/objects/",
                                       "conn-1/objects/path/to/f",
                                       "/",
                                       ".",
                                       "z",
                                       "\xc3",
                                       std::string("\0", 1),
                                       "a/b/c/d"};
  for (const std::string& prefix : prefixes) {
    std::vector<std::pair<std::string, std::string>> want;
    for (const auto& [k, v] : expected) {
      if (std::string_view(k).starts_with(prefix)) want.emplace_back(k, v);
    }
    EXPECT_EQ(Scan(*store_, "ns", prefix), want) << "prefix '" << prefix << "'";
  }
  EXPECT_TRUE(Scan(*store_, "never", "").empty());
  EXPECT_EQ(Scan(*store_, "ns2", ""),
            (std::vector<std::pair<std::string, std::string>>{{"a", "other namespace"}}));

  // Early stop.
  int seen = 0;
  ASSERT_TRUE(
      store_->ScanMeta("ns", "", [&](std::string_view, std::string_view) { return ++seen < 3; }).ok());
  EXPECT_EQ(seen, 3);

  // Namespace names are validated the same way by both.
  Status bad = store_->PutMeta("", "k", "v");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
}

TEST_P(MetaStoreConformance, TheLargestRealRecordFits) {
  const std::string unit = LargeUnitState(2000);
  ASSERT_GT(unit.size(), 300'000u);
  ASSERT_LT(unit.size(), kMaxMetaValueBytes);
  ASSERT_TRUE(store_->PutMeta("pipeline_unit", "0000000042/daily-events/2026-01-01", unit).ok());
  auto got = store_->GetMeta("pipeline_unit", "0000000042/daily-events/2026-01-01");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, unit);
  auto scanned = Scan(*store_, "pipeline_unit", "0000000042/daily-events/");
  ASSERT_EQ(scanned.size(), 1u);
  EXPECT_EQ(scanned[0].second, unit);
}

TEST_P(MetaStoreConformance, KeysCannotReachOutsideTheirNamespace) {
  auto p = store_->CreateProject("victim");
  ASSERT_TRUE(p.ok());
  for (const std::string key :
       {"../../projects/0000000001", "/../project_ids", "../ns2/a", "%2e%2e/x", "..%2fx", "\\..\\x"}) {
    ASSERT_TRUE(store_->PutMeta("ns", key, "abuse").ok()) << key;
    EXPECT_EQ(**store_->GetMeta("ns", key), "abuse");
  }
  ASSERT_TRUE(store_->PutMeta("../projects", "0000000001", "abuse").ok());
  auto again = store_->GetProject(p->id);
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->name, "victim");
  EXPECT_EQ((*again)->token, p->token);
  EXPECT_EQ(store_->ListProjects()->size(), 1u);
  EXPECT_TRUE(Scan(*store_, "ns2", "").empty());
  auto next = store_->CreateProject("next");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->id, p->id + 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, MetaStoreConformance,
                         ::testing::Values(Backend::kRocks, Backend::kZooKeeper), [](const auto& param_info) {
                           return param_info.param == Backend::kRocks ? "Rocks" : "ZooKeeper";
                         });

// ---- Node names
// ---------------------------------------------------------------------------------------------

TEST_P(MetaStoreConformance, AFencedWriteOfACurrentHolderIsStored) {
  const store::Fence fence{"export.conformance." + RandomHex(8), 5};
  ASSERT_TRUE(store_->PutMetaFenced("pipeline_unit", "7/daily/2026-12-06", "v1", fence).ok());
  ASSERT_TRUE(store_->PutMetaFenced("pipeline_unit", "7/daily/2026-12-06", "v2", fence).ok());
  auto got = store_->GetMeta("pipeline_unit", "7/daily/2026-12-06");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, "v2");
}

// A holder whose renewal succeeded just before it was paused (GC, SIGSTOP): Renew() answers from before the
// pause, so only the fence in the commit itself can stop its write.
class PausedAfterRenewLease final : public jobs::UnitLease {
 public:
  explicit PausedAfterRenewLease(jobs::UnitLease& real) : real_(real) {}
  const std::string& unit() const override { return real_.unit(); }
  int64_t token() const override { return real_.token(); }
  bool Lost() const override { return false; }
  Status Renew() override { return OkStatus(); }
  Status Release() override { return OkStatus(); }
  bool coordinated() const override { return real_.coordinated(); }

 private:
  jobs::UnitLease& real_;
};

TEST(ZkMetaStore, AStaleLeaseHolderCannotCommitUnitStateAfterATakeover) {
  const std::string root = FreshRoot("fenced");
  auto a = OpenSession(ZooKeeperEnvironment::server()->Url("/meta_test"), milliseconds(2000));
  auto b = OpenSession();
  ASSERT_TRUE(a && b);
  auto store_a = OpenZk(a, root);
  auto store_b = OpenZk(b, root);
  ASSERT_TRUE(store_a && store_b);
  auto leases_a = jobs::MakeZooKeeperLeaseService(a);
  auto leases_b = jobs::MakeZooKeeperLeaseService(b);
  const std::string unit = "export.p7.daily." + RandomHex(8);
  const std::string key = "7/daily/2026-12-06";

  auto la = leases_a->TryAcquire(unit, "node-a");
  ASSERT_TRUE(la.ok()) << la.error().ToString();
  ASSERT_TRUE((*la)->coordinated());
  const int64_t stale = (*la)->token();
  Status first = jobs::PutMetaUnderLease(*store_a, **la, "pipeline_unit", key, "a:claimed");
  ASSERT_TRUE(first.ok()) << first.error().ToString();

  // Node A renews, then pauses past its session's expiry; node B takes the unit over.
  PausedAfterRenewLease paused(**la);
  ASSERT_TRUE(a->ExpireForTesting().ok());
  auto lb = leases_b->TryAcquire(unit, "node-b");
  ASSERT_TRUE(lb.ok()) << lb.error().ToString();
  EXPECT_GT((*lb)->token(), stale);

  // A wakes up and commits: refused in the write's own transaction, the record unchanged.
  Status refused = jobs::PutMetaUnderLease(*store_a, paused, "pipeline_unit", key, "a:published");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("stale fencing token"), std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find(key), std::string::npos) << refused.error().message;
  auto got = store_b->GetMeta("pipeline_unit", key);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, "a:claimed");

  // The new holder commits; the stale one stays refused, for existing and for new records alike.
  Status committed = jobs::PutMetaUnderLease(*store_b, **lb, "pipeline_unit", key, "b:published");
  ASSERT_TRUE(committed.ok()) << committed.error().ToString();
  EXPECT_FALSE(jobs::PutMetaUnderLease(*store_a, paused, "pipeline_unit", key, "a:again").ok());
  Status fresh = store_a->PutMetaFenced("pipeline_unit", key + "-other", "a:new", store::Fence{unit, stale});
  ASSERT_FALSE(fresh.ok());
  EXPECT_EQ(fresh.error().code, ErrorCode::kConflict);
  got = store_b->GetMeta("pipeline_unit", key);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, "b:published");
  auto other = store_b->GetMeta("pipeline_unit", key + "-other");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());

  // The unfenced API still works for records no lease owns.
  EXPECT_TRUE(store_a->PutMeta("pipeline", "7/daily", "{}").ok());
  EXPECT_TRUE((*lb)->Release().ok());
}

TEST(ZkNodeName, EveryByteRoundTripsIntoAValidPrefixPreservingName) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  for (const std::string& s : {std::string(), all, std::string("."), std::string(".."),
                               std::string("a/b:c d"), std::string("k_41"), std::string("\xc3\xbc")}) {
    const std::string name = EncodeNodeName(s);
    // Only node-name characters (a path segment is also at most 255 of them: ZkMetaStore hashes longer ones).
    for (size_t at = 0; at < name.size(); at += 200) {
      EXPECT_TRUE(coord::IsValidNodePath("/" + name.substr(at, 200))) << name;
    }
    EXPECT_NE(name, ".");
    EXPECT_NE(name, "..");
    EXPECT_EQ(DecodeNodeName(name), s);
    for (size_t n = 0; n <= s.size(); ++n) {
      EXPECT_TRUE(name.starts_with(EncodeNodeName(s.substr(0, n))));
    }
  }
  EXPECT_FALSE(std::string_view(EncodeNodeName("ab")).starts_with(EncodeNodeName("a_")));
  for (const char* bad : {"", "x", "k_4", "k_GG", "k.", "k_4g", "k/"})
    EXPECT_FALSE(DecodeNodeName(bad)) << bad;
}

// ---- What only the shared store does
// ------------------------------------------------------------------------

TEST(ZkMetaStore, OpenRefusesABadRoot) {
  auto session = OpenSession();
  ASSERT_TRUE(session);
  for (const char* root : {"", "relative", "/a//b", "/a/../b", "/a b", "/x/"}) {
    ZkMetaOptions o;
    o.root = root;
    auto store = ZkMetaStore::Open(session, o);
    ASSERT_FALSE(store.ok()) << root;
    EXPECT_EQ(store.error().code, ErrorCode::kInvalidArgument) << root;
  }
}

TEST(ZkMetaStore, TwoNodesCreatingProjectsAtOnceGetDistinctIds) {
  const std::string root = FreshRoot("ids");
  auto a = OpenZk(OpenSession(), root);
  auto b = OpenZk(OpenSession(), root);
  ASSERT_TRUE(a && b);
  constexpr int kThreads = 4;  // two per node
  constexpr int kEach = 15;
  std::vector<std::vector<store::Project>> made(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ZkMetaStore& s = t % 2 == 0 ? *a : *b;
      for (int i = 0; i < kEach; ++i) {
        auto p = s.CreateProject(fmt::format("p-{}-{}", t, i));
        ASSERT_TRUE(p.ok()) << p.error().ToString();
        made[t].push_back(*p);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<uint32_t> ids;
  std::set<std::string> tokens;
  for (const auto& list : made) {
    for (const auto& p : list) {
      ids.insert(p.id);
      tokens.insert(p.token);
    }
  }
  ASSERT_EQ(ids.size(), size_t{kThreads * kEach});
  EXPECT_EQ(*ids.begin(), 1u);
  EXPECT_EQ(*ids.rbegin(), uint32_t{kThreads * kEach});  // no gaps either
  EXPECT_EQ(tokens.size(), size_t{kThreads * kEach});
  auto listed = b->ListProjects();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), size_t{kThreads * kEach});
  for (const auto& list : made) {
    for (const auto& p : list) {
      EXPECT_EQ((*listed)[p.id - 1].name, p.name);
      EXPECT_EQ((*listed)[p.id - 1].token, p.token);
    }
  }
}

TEST(ZkMetaStore, RacingUpdatesLeaveOneWholeRecordAndModifyLosesNothing) {
  const std::string root = FreshRoot("updates");
  auto a = OpenZk(OpenSession(), root);
  auto b = OpenZk(OpenSession(), root);
  ASSERT_TRUE(a && b);
  auto created = a->CreateProject("raced");
  ASSERT_TRUE(created.ok());
  const uint32_t id = created->id;

  // Whole-record updates from two nodes: the result is one writer's record, never a mix of both.
  auto writer = [&](ZkMetaStore& s, const std::string& who) {
    for (int i = 0; i < 25; ++i) {
      store::Project p = *created;
      p.name = fmt::format("{}-{}", who, i);
      p.external_id = fmt::format("{}-{}", who, i);
      p.gcs_buckets = {fmt::format("{}-bucket-{}", who, i)};
      Status s2 = s.UpdateProject(p);
      ASSERT_TRUE(s2.ok()) << s2.error().ToString();
    }
  };
  std::thread ta(writer, std::ref(*a), "a");
  std::thread tb(writer, std::ref(*b), "b");
  ta.join();
  tb.join();
  auto final_record = b->GetProject(id);
  ASSERT_TRUE(final_record.ok() && final_record->has_value());
  const store::Project& f = **final_record;
  EXPECT_TRUE(f.name == "a-24" || f.name == "b-24") << f.name;
  EXPECT_EQ(f.external_id, f.name);
  ASSERT_EQ(f.gcs_buckets.size(), 1u);
  EXPECT_EQ(f.gcs_buckets[0], f.name.substr(0, 1) + "-bucket-24");
  EXPECT_EQ(f.token, created->token);

  // Read-modify-write from two nodes: every bucket binding survives.
  auto binder = [&](ZkMetaStore& s, const std::string& who) {
    for (int i = 0; i < 20; ++i) {
      Status st = s.ModifyProject(id, [&](store::Project& p) {
        p.gcs_buckets.push_back(fmt::format("{}-{}", who, i));
        return OkStatus();
      });
      ASSERT_TRUE(st.ok()) << st.error().ToString();
    }
  };
  std::thread ba(binder, std::ref(*a), "bind-a");
  std::thread bb(binder, std::ref(*b), "bind-b");
  ba.join();
  bb.join();
  auto bound = a->GetProject(id);
  ASSERT_TRUE(bound.ok() && bound->has_value());
  std::set<std::string> buckets((*bound)->gcs_buckets.begin(), (*bound)->gcs_buckets.end());
  EXPECT_EQ(buckets.size(), 41u);  // the one left by the updates + 2 × 20
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(buckets.contains(fmt::format("bind-a-{}", i)));
    EXPECT_TRUE(buckets.contains(fmt::format("bind-b-{}", i)));
  }
  Status id_change = a->ModifyProject(id, [](store::Project& p) {
    p.id += 1;
    return OkStatus();
  });
  ASSERT_FALSE(id_change.ok());
  EXPECT_EQ(id_change.error().code, ErrorCode::kInvalidArgument);
  Status missing = a->ModifyProject(id + 1000, [](store::Project&) { return OkStatus(); });
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST(ZkMetaStore, ALostIdCounterContinuesAfterTheHighestProject) {
  const std::string root = FreshRoot("counter");
  auto session = OpenSession();
  auto s = OpenZk(session, root);
  ASSERT_TRUE(s);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->CreateProject("p").ok());
  ASSERT_TRUE(session->Delete(root + "/project_ids").ok());
  auto reopened = OpenZk(session, root);
  ASSERT_TRUE(reopened);
  auto p = reopened->CreateProject("after");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  EXPECT_EQ(p->id, 4u);
}

TEST(ZkMetaStore, ChangeStampsTellOtherNodesSomethingChanged) {
  const std::string root = FreshRoot("stamps");
  auto a = OpenZk(OpenSession(), root);
  auto b = OpenZk(OpenSession(), root);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*b->ChangeStamp("pipeline"), 0);
  ASSERT_TRUE(a->PutMeta("pipeline", "0000000001/p", "v1").ok());
  int64_t s1 = *b->ChangeStamp("pipeline");
  EXPECT_GT(s1, 0);
  EXPECT_EQ(*b->ChangeStamp("pipeline"), s1);  // nothing written: equal
  ASSERT_TRUE(a->PutMeta("connector", "c", "v").ok());
  EXPECT_EQ(*b->ChangeStamp("pipeline"), s1);                      // another namespace
  ASSERT_TRUE(a->PutMeta("pipeline", "0000000001/p", "v2").ok());  // overwrite of an existing record
  int64_t s2 = *b->ChangeStamp("pipeline");
  EXPECT_NE(s2, s1);
  ASSERT_TRUE(a->DeleteMeta("pipeline", "0000000001/p").ok());
  int64_t s3 = *b->ChangeStamp("pipeline");
  EXPECT_NE(s3, s2);

  int64_t p0 = **b->ProjectsChangeStamp();
  auto p = a->CreateProject("x");
  ASSERT_TRUE(p.ok());
  int64_t p1 = **b->ProjectsChangeStamp();
  EXPECT_NE(p1, p0);
  EXPECT_EQ(**b->ProjectsChangeStamp(), p1);
  p->name = "y";
  ASSERT_TRUE(a->UpdateProject(*p).ok());
  EXPECT_NE(**b->ProjectsChangeStamp(), p1);
}

TEST(ZkMetaStore, DeletingTheLastRecordOfADirectoryLeavesNoNodeBehind) {
  const std::string root = FreshRoot("cleanup");
  auto session = OpenSession();
  auto s = OpenZk(session, root);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->PutMeta("connector_run", "conn-9/000000000001", "r1").ok());
  ASSERT_TRUE(s->PutMeta("connector_run", "conn-9/000000000002", "r2").ok());
  const std::string ns_path = root + "/meta/" + EncodeNodeName("connector_run");
  EXPECT_EQ(session->Children(ns_path)->size(), 1u);
  ASSERT_TRUE(s->DeleteMeta("connector_run", "conn-9/000000000001").ok());
  EXPECT_EQ(session->Children(ns_path)->size(), 1u);
  ASSERT_TRUE(s->DeleteMeta("connector_run", "conn-9/000000000002").ok());
  EXPECT_TRUE(session->Children(ns_path)->empty());
  ASSERT_TRUE(s->PutMeta("connector_run", "conn-9/000000000003", "r3").ok());  // the directory comes back
  EXPECT_EQ(Scan(*s, "connector_run", "conn-9/").size(), 1u);
}

TEST(ZkMetaStore, KeyPartsTooLongForANodeNameAreStoredUnderTheirHash) {
  const std::string root = FreshRoot("hashed");
  auto session = OpenSession();
  auto s = OpenZk(session, root);
  ASSERT_TRUE(s);
  const std::string dir = "conn-2/" + Repeat("deep/", 60);  // 307 bytes: too long once encoded
  const std::string key = dir + Repeat("\xc3\xa9", 100);    // the leaf too
  ASSERT_TRUE(s->PutMeta("connector_checkpoint", key, "cp").ok());
  const std::string ns_path = root + "/meta/" + EncodeNodeName("connector_checkpoint");
  auto dirs = session->Children(ns_path);
  ASSERT_TRUE(dirs.ok());
  ASSERT_EQ(dirs->size(), 1u);
  EXPECT_TRUE((*dirs)[0].starts_with('h')) << (*dirs)[0];
  auto leaves = session->Children(ns_path + "/" + (*dirs)[0]);
  ASSERT_TRUE(leaves.ok() && leaves->size() == 1u);
  EXPECT_TRUE((*leaves)[0].starts_with('h')) << (*leaves)[0];
  EXPECT_EQ(**s->GetMeta("connector_checkpoint", key), "cp");
  EXPECT_FALSE(s->GetMeta("connector_checkpoint", dir + "other")->has_value());
  EXPECT_EQ(Scan(*s, "connector_checkpoint", dir),
            (std::vector<std::pair<std::string, std::string>>{{key, "cp"}}));
  EXPECT_TRUE(Scan(*s, "connector_checkpoint", dir + "x").empty());
  ASSERT_TRUE(s->DeleteMeta("connector_checkpoint", key).ok());
  EXPECT_TRUE(session->Children(ns_path)->empty());
}

TEST(ZkMetaStore, ScanningAPipelinesUnitsReadsOnlyItsDirectory) {
  auto s = OpenZk(OpenSession(), FreshRoot("scan"));
  ASSERT_TRUE(s);
  constexpr int kUnits = 400;
  for (int i = kUnits - 1; i >= 0; --i) {  // written in descending order: the scan must sort
    ASSERT_TRUE(s->PutMeta("pipeline_unit", fmt::format("0000000001/daily/2026-{:03}", i), "u").ok());
  }
  ASSERT_TRUE(s->PutMeta("pipeline_unit", "0000000001/dailyx/2026-000", "other pipeline").ok());
  ASSERT_TRUE(s->PutMeta("pipeline_unit", "0000000002/daily/2026-000", "other project").ok());
  const auto start = std::chrono::steady_clock::now();
  auto units = Scan(*s, "pipeline_unit", "0000000001/daily/");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(units.size(), size_t{kUnits});
  for (int i = 0; i < kUnits; ++i) EXPECT_EQ(units[i].first, fmt::format("0000000001/daily/2026-{:03}", i));
  std::printf("scan of %d records: %lld ms\n", kUnits,
              static_cast<long long>(std::chrono::duration_cast<milliseconds>(took).count()));
  EXPECT_EQ(Scan(*s, "pipeline_unit", "0000000001/").size(), size_t{kUnits + 1});
}

TEST(ZkMetaStore, OversizeValuesAreRefusedNamingTheRecordNotTheValue) {
  auto s = OpenZk(OpenSession(), FreshRoot("size"));
  ASSERT_TRUE(s);
  const std::string at_limit(kMaxMetaValueBytes, 'x');
  ASSERT_TRUE(s->PutMeta("pipeline_unit", "0000000001/big/at-limit", at_limit).ok());
  EXPECT_EQ(**s->GetMeta("pipeline_unit", "0000000001/big/at-limit"), at_limit);

  std::string over;
  while (over.size() <= kMaxMetaValueBytes) over += "SECRETVALUE-";
  Status refused = s->PutMeta("pipeline_unit", "0000000001/big/over", over);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kTooLarge);
  EXPECT_NE(refused.error().message.find("pipeline_unit"), std::string::npos) << refused.error().message;
  EXPECT_NE(refused.error().message.find("0000000001/big/over"), std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find(std::to_string(kMaxMetaValueBytes)), std::string::npos);
  EXPECT_EQ(refused.error().message.find("SECRETVALUE"), std::string::npos) << refused.error().message;
  EXPECT_FALSE(s->GetMeta("pipeline_unit", "0000000001/big/over")->has_value());

  Status long_key = s->PutMeta("ns", std::string(kMaxMetaKeyBytes + 1, 'k'), "v");
  ASSERT_FALSE(long_key.ok());
  EXPECT_EQ(long_key.error().code, ErrorCode::kTooLarge);
}

TEST(ZkMetaStore, AStoppedZooKeeperIsReportedUnavailableAndWorkResumesAfterItsRestart) {
  // Its own server: stopping the binary's shared one would disturb nothing else, but keep the outage private.
  auto zk = ZooKeeperServer::Start();
  ASSERT_TRUE(zk.ok()) << zk.error().ToString();
  auto session = OpenSession((*zk)->Url("/outage"), milliseconds(4000), milliseconds(3000));
  ASSERT_TRUE(session);
  auto s = OpenZk(session, "/store");
  ASSERT_TRUE(s);
  auto project = s->CreateProject("survivor");
  ASSERT_TRUE(project.ok());
  ASSERT_TRUE(s->PutMeta("pipeline", "0000000001/p", "before").ok());

  EXPECT_TRUE(s->CheckReachable().ok());

  (*zk)->Stop();
  const auto start = std::chrono::steady_clock::now();
  Status reachable = s->CheckReachable();
  ASSERT_FALSE(reachable.ok());
  EXPECT_EQ(reachable.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(reachable.error().message.find("coordination service zookeeper://"), std::string::npos)
      << reachable.error().message;
  Status put = s->PutMeta("pipeline", "0000000001/p", "during");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, ErrorCode::kUnavailable) << put.error().ToString();
  EXPECT_NE(
      put.error().message.find("coordination service zookeeper://127.0.0.1:" + std::to_string((*zk)->port())),
      std::string::npos)
      << put.error().message;
  EXPECT_NE(put.error().message.find("--coordination"), std::string::npos) << put.error().message;
  auto get = s->GetMeta("pipeline", "0000000001/p");
  ASSERT_FALSE(get.ok());
  EXPECT_EQ(get.error().code, ErrorCode::kUnavailable) << get.error().ToString();
  Status scan = s->ScanMeta("pipeline", "", [](std::string_view, std::string_view) { return true; });
  ASSERT_FALSE(scan.ok());
  EXPECT_EQ(scan.error().code, ErrorCode::kUnavailable) << scan.error().ToString();
  auto stamp = s->ChangeStamp("pipeline");
  ASSERT_FALSE(stamp.ok());
  EXPECT_EQ(stamp.error().code, ErrorCode::kUnavailable);
  auto list = s->ListProjects();
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(list.error().message.find(project->api_secret.Reveal()), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));

  ASSERT_TRUE((*zk)->Restart().ok());
  // Bounded: the client reconnects (or opens a new session) within a few seconds of the restart.
  Result<std::optional<std::string>> back = Error(ErrorCode::kUnavailable, "not yet");
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
       std::chrono::steady_clock::now() < deadline;) {
    back = s->GetMeta("pipeline", "0000000001/p");
    if (back.ok()) break;
    std::this_thread::sleep_for(milliseconds(200));
  }
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ(**back, "before");  // the refused write did not half-happen
  ASSERT_TRUE(s->PutMeta("pipeline", "0000000001/p", "after").ok());
  EXPECT_EQ(**s->GetMeta("pipeline", "0000000001/p"), "after");
  EXPECT_TRUE(s->CheckReachable().ok());
  auto again = s->GetProject(project->id);
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->token, project->token);
}

}  // namespace
}  // namespace sluice::chstore
