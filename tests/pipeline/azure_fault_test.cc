// Azure JSON Pipelines through the real `sluice serve` under faults (issue 14, "Tests"): Azurite in its OAuth
// mode over HTTPS behind tests/support/fault_proxy with TLS on both sides (the proxy serves the suite's test
// certificate, which the server trusts through --ca-bundle, and verifies Azurite's), answering Azure's own
// error documents.
//   (a) A backfill (one day big enough to be written in 8 MiB blocks), a late-data sync and a people snapshot
//       while the proxy injects 500 InternalError, 503 ServerBusy and connection resets on Put Block, Put
//       Block List, Put Blob, Delete Blob and Get Blob Properties (the exports' requests) and on List Blobs
//       and Get Blob (the access checks' at create: an export neither lists nor reads), and the Entra ID
//       token endpoint answers 500 at create and at a later run: every pipeline completes and stays active,
//       every manifest lists exactly the store's events, no stray data file is left, and the proxy's log
//       shows each fault was hit.
//   (b) SIGKILL of `sluice serve` while an Azure backfill is writing (bounded: killed when a partition has
//       data files but no manifest yet), restarted on the same data directory: the pipeline finishes, every
//       store event is in exactly one final manifest's files, no data file is listed twice or left unlisted.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "pipeline/azure_e2e_support.h"
#include "pipeline/e2e_support.h"
#include "pipeline/layout.h"
#include "support/fault_proxy.h"

namespace sluice::testing::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

std::string DayDir(uint32_t project, int64_t day) {
  return pipeline::EventsUnitDir(project, pipeline::Unit{day * 24, 24});
}

std::string PipelineName(const ServerProcess::Reply& r) {
  if (r.status != 200) return "";
  json::value v = json::parse(r.body);
  const json::array& names = v.at("pipeline_names").as_array();
  return names.empty() ? "" : std::string(names[0].as_string());
}

/// Directories (under the listing's root) holding a data file but no manifest: an export in flight, or one a
/// kill interrupted.
std::set<std::string> DirsWithoutManifest(const std::vector<std::string>& keys) {
  std::set<std::string> with_data, with_manifest;
  for (const auto& key : keys) {
    const size_t slash = key.rfind('/');
    if (slash == std::string::npos) continue;
    const std::string dir = key.substr(0, slash), name = key.substr(slash + 1);
    if (pipeline::IsDataFileName(name)) with_data.insert(dir);
    if (name == pipeline::kManifestName) with_manifest.insert(dir);
  }
  std::set<std::string> out;
  for (const auto& d : with_data) {
    if (!with_manifest.contains(d)) out.insert(d);
  }
  return out;
}

/// Every partition of `days` equals the store; every event appears once across all manifests; no manifest
/// lists a file twice; no data file is unlisted. "" when all hold.
std::string CompareAll(SluiceServer& server, const Project& p, const std::vector<int64_t>& days,
                       objstore::ObjectStore& under, size_t* records_seen = nullptr) {
  std::string problems;
  std::set<std::string> insert_ids;
  std::set<std::string> listed_keys;
  size_t records = 0;
  for (int64_t day : days) {
    auto content = ReadPartition(under, DayDir(p.id, day));
    if (!content.ok()) {
      problems += fmt::format("\n{}: {}", DateOf(day), content.error().ToString());
      continue;
    }
    if (!content->complete) problems += fmt::format("\n{}: no complete marker", DateOf(day));
    auto expected = server.ReadBack(p, day);
    if (!expected.ok()) return "read-back: " + expected.error().ToString();
    if (std::string diff = CompareEvents(content->lines, *expected); !diff.empty()) {
      problems += fmt::format("\n{} (generation {}): {}", DateOf(day), content->manifest.generation, diff);
    }
    for (const auto& f : content->manifest.files) {
      if (!listed_keys.insert(f.key).second) problems += "\nthe file " + f.key + " is listed twice";
    }
    for (const auto& line : content->lines) {
      ++records;
      json::value v = json::parse(line);
      std::string id(v.at("insert_id").as_string());
      if (!insert_ids.insert(id).second) problems += "\nthe event " + id + " was exported twice";
    }
  }
  auto keys = AllKeys(under);
  if (!keys.ok()) return "listing: " + keys.error().ToString();
  auto stray = StrayDataFiles(*keys, p.id, under);
  if (!stray.empty()) {
    problems += fmt::format("\n{} data file(s) no manifest lists, e.g. {}", stray.size(), stray.front());
  }
  if (records_seen != nullptr) *records_seen = records;
  return problems;
}

class AzureFaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    azure_ = new AzureE2e();
    if (!azure_->error().empty()) return;
    // TLS on both sides: the server trusts the proxy through --ca-bundle (the same test certificate), and the
    // proxy checks Azurite's.
    proxy_ = new FaultProxy(azure_->azurite().port(), {.tls_cert_path = azure_->cert().cert_path,
                                                       .tls_key_path = azure_->cert().key_path,
                                                       .upstream_ca_path = azure_->cert().cert_path,
                                                       .dialect = FaultDialect::kAzure});
  }
  static void TearDownTestSuite() {
    delete proxy_;
    proxy_ = nullptr;
    delete azure_;
    azure_ = nullptr;
  }
  void SetUp() override {
    ASSERT_EQ(azure_->error(), "");
    ASSERT_TRUE(proxy_->ok()) << proxy_->start_error();
    proxy_->Clear();
    proxy_->ResetCounters();
    today_ = TodayUtc();
  }

  static AzureE2e* azure_;
  static FaultProxy* proxy_;
  int64_t today_ = 0;
};

AzureE2e* AzureFaultTest::azure_ = nullptr;
FaultProxy* AzureFaultTest::proxy_ = nullptr;

// (a) Faults on every kind of request an export makes and a token endpoint outage: the backfill completes
// with each event exactly once.
TEST_F(AzureFaultTest, BackfillSurvivesServerErrorsThrottlingResetsAndATokenOutage) {
  SluiceServer server(azure_->dir() / "faults-data", nullptr,
                      azure_->ServeArgs({"--pipeline-unit-parallelism", "2"}, {proxy_->Endpoint()}));
  std::string err;
  ASSERT_TRUE(server.Start(&err)) << err;
  auto p = server.CreateProject("azure-faults");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  // Uncompressed files: one big day is written in blocks (Put Block + Put Block List, 8 MiB blocks), the
  // small days with one Put Blob each.
  const std::vector<int64_t> days = {today_ - 4, today_ - 3, today_ - 2, today_ - 1};
  for (int64_t day : days) {
    ASSERT_TRUE(server.Import(*p, MakeDayEvents(day, day == days.front() ? 30000 : 600, "azf", 71)).ok());
  }
  // The faults, each consumed by the first request that matches (the access check at create makes a Put Blob,
  // Get, List and Delete of a probe under the prefix, so the targets below name what only the export does
  // where it matters).
  proxy_->Script({
      {FaultKind::kInternalError, "PUT", "comp=block&"},
      {FaultKind::kSlowDown, "PUT", "comp=block&"},
      {FaultKind::kReset, "PUT", "comp=block&"},
      {FaultKind::kSlowDown, "PUT", "comp=blocklist"},
      {FaultKind::kReset, "PUT", "comp=blocklist"},
      {FaultKind::kInternalError, "PUT", "comp=blocklist"},
      {FaultKind::kInternalError, "PUT", "/manifest.json"},
      {FaultKind::kReset, "PUT", "/complete"},
      {FaultKind::kSlowDown, "PUT", "/manifest.json"},
      // The access check's List and Get of its probe (3 attempts each at create).
      // The export itself neither lists nor reads (it knows its files from its state); the access check at
      // create lists and reads its probe back, with 3 attempts per call: two faults each.
      {FaultKind::kSlowDown, "GET", "comp=list"},
      {FaultKind::kReset, "GET", "comp=list"},
      {FaultKind::kInternalError, "GET", "/faults/.sluice-probe-"},
      {FaultKind::kReset, "GET", "/faults/.sluice-probe-"},
  });
  size_t scripted = 13;
  azure_->entra().FailNext(1);
  const int tokens_before = azure_->entra().requests();

  Params params = azure_->PipelineParams(kAzureSecret, proxy_->Endpoint());
  params.insert(params.end(),
                {{"from_date", DateOf(days.front())}, {"prefix", "faults"}, {"compression", "none"}});
  auto created = server.PipelinePost(*p, "create", params);
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string name = PipelineName(created);
  std::vector<std::string> labels;
  for (int64_t d : days) labels.push_back(DateOf(d));
  ASSERT_EQ(WaitForSucceededPartitions(server, *p, name, labels, {}, 240s), "");

  auto under = azure_->Under("faults");
  ASSERT_TRUE(under);
  size_t records = 0;
  EXPECT_EQ(CompareAll(server, *p, days, *under, &records), "");
  EXPECT_EQ(records, 30000u + 3 * 600u);
  auto big = ReadPartition(*under, DayDir(p->id, days.front()));
  ASSERT_TRUE(big.ok());
  ASSERT_EQ(big->manifest.files.size(), 1u);
  EXPECT_GT(big->manifest.files[0].bytes, 8u << 20) << "the big day must be written in blocks";

  // Late data into the big day and a small one, then a sync: the new generation's export checks and deletes
  // the old generation's files (Get Blob Properties, Delete Blob), each meeting faults too.
  std::map<std::string, uint64_t> min_generation;
  for (int64_t day : {days[0], days[2]}) {
    ASSERT_TRUE(server.Import(*p, MakeDayEvents(day, 300, "azf-late", 72)).ok());
    min_generation[DateOf(day)] = 1;
  }
  proxy_->Script({
      {FaultKind::kSlowDown, "DELETE", "/faults/1/"},
      {FaultKind::kReset, "DELETE", "/faults/1/"},
      {FaultKind::kInternalError, "DELETE", "/faults/1/"},
      {FaultKind::kInternalError, "HEAD", "/faults/1/"},
      {FaultKind::kReset, "HEAD", "/faults/1/"},
  });
  scripted += 5;
  // Each run opens the destination with a fresh token: the sync's token request meets an Entra ID outage too.
  azure_->entra().FailNext(1);
  auto sync = server.PipelinePost(*p, "sync", {{"name", name}});
  ASSERT_EQ(sync.status, 200) << sync.body;
  ASSERT_EQ(
      WaitForSucceededPartitions(server, *p, name, {DateOf(days[0]), DateOf(days[2])}, min_generation, 240s),
      "");
  EXPECT_EQ(CompareAll(server, *p, days, *under, &records), "");
  EXPECT_EQ(records, 30300u + 3 * 600u + 300u);

  // A people snapshot pipeline: its access check meets the remaining kinds on List and Get, its export more
  // Put Blob faults.
  std::vector<std::string> updates;
  for (int i = 0; i < 30; ++i) {
    updates.push_back(
        fmt::format(R"({{"$token":"{}","$distinct_id":"azf-person-{}","$set":{{"n":{}}}}})", p->token, i, i));
  }
  ASSERT_TRUE(server.Engage(updates).ok());
  proxy_->Script({
      {FaultKind::kInternalError, "GET", "comp=list"},
      {FaultKind::kSlowDown, "GET", "/faults/.sluice-probe-"},
      {FaultKind::kSlowDown, "PUT", "/mp_people_data/"},
  });
  scripted += 3;
  Params people = azure_->PipelineParams(kAzureSecret, proxy_->Endpoint());
  people.insert(people.end(),
                {{"from_date", DateOf(today_ - 1)}, {"data_source", "people"}, {"prefix", "faults"}});
  auto people_created = server.PipelinePost(*p, "create", people);
  ASSERT_EQ(people_created.status, 200) << people_created.body;
  ASSERT_EQ(WaitForSucceededPartitions(server, *p, PipelineName(people_created), {"snapshot"}, {}, 240s), "");
  auto snapshot = ReadPartition(*under, pipeline::SnapshotDir(p->id, pipeline::DataSource::kPeople));
  ASSERT_TRUE(snapshot.ok()) << snapshot.error().ToString();
  EXPECT_TRUE(snapshot->complete);
  auto profiles = server.ReadProfiles(*p);
  ASSERT_TRUE(profiles.ok()) << profiles.error().ToString();
  EXPECT_EQ(snapshot->lines.size(), profiles->size());
  for (const auto& line : snapshot->lines) {
    json::object o = json::parse(line).as_object();
    std::string id(o.at("distinct_id").as_string());
    ASSERT_TRUE(profiles->contains(id)) << id;
    EXPECT_EQ(o.at("properties"), json::parse(profiles->at(id))) << id;
  }

  // The proxy's log: what each request met.
  std::map<std::string, int> hits;  // "<op> -> <fault>"
  std::map<std::string, int> ops;
  for (const auto& entry : proxy_->Log()) {
    const std::string op = entry.find("comp=blocklist") != std::string::npos ? "Put Block List"
                           : entry.find("comp=block&") != std::string::npos  ? "Put Block"
                           : entry.find("comp=list") != std::string::npos    ? "List Blobs"
                           : entry.starts_with("PUT ")                       ? "Put Blob"
                           : entry.starts_with("GET ")                       ? "Get Blob"
                           : entry.starts_with("HEAD ")                      ? "Get Blob Properties"
                           : entry.starts_with("DELETE ")                    ? "Delete Blob"
                                                                             : "other";
    ++ops[op];
    if (entry.find(" -> 5") != std::string::npos || entry.ends_with(" -> reset")) {
      std::cout << "proxy log: " << entry << std::endl;
    }
    const size_t arrow = entry.rfind(" -> ");
    const std::string outcome = arrow == std::string::npos ? "?" : entry.substr(arrow + 4);
    if (outcome == "500" || outcome == "503 ServerBusy" || outcome == "reset") ++hits[op + " -> " + outcome];
  }
  for (const auto& [op, n] : ops) std::cout << "proxy: " << op << " x" << n << std::endl;
  for (const auto& [hit, n] : hits) std::cout << "fault hit: " << hit << " x" << n << std::endl;
  EXPECT_EQ(proxy_->faults_injected(), static_cast<int>(scripted)) << "every scripted fault must be hit";
  for (const std::string op :
       {"Put Block", "Put Block List", "Put Blob", "List Blobs", "Get Blob", "Delete Blob"}) {
    for (const char* fault : {" -> 500", " -> 503 ServerBusy", " -> reset"}) {
      EXPECT_GE(hits[op + fault], 1) << op + fault << " was never injected";
    }
  }
  for (const char* hit : {"Get Blob Properties -> 500", "Get Blob Properties -> reset"}) {
    EXPECT_GE(hits[hit], 1) << hit << " was never injected";
  }
  // The token endpoint's outages (at create, then at the sync's run) were met and ridden out.
  EXPECT_EQ(azure_->entra().failures_answered(), 2);
  EXPECT_GE(azure_->entra().requests() - tokens_before, 4);
  // Nothing was refused as permanent: the pipeline is still active.
  auto state = PipelineState(server, *p, name);
  ASSERT_TRUE(state.ok()) << state.error().ToString();
  EXPECT_EQ(state->first, "active") << state->second;
  EXPECT_EQ(server.Terminate(), 0);
}

// (b) SIGKILL mid-export, restart on the same data directory: nothing lost, nothing twice, no orphan left.
TEST_F(AzureFaultTest, SigkillDuringAnExportLosesAndDuplicatesNothing) {
  const std::filesystem::path data = azure_->dir() / "kill-data";
  // Through the proxy, which holds the first manifest upload (below): the kill then lands while a partition
  // has its data files and no manifest, whatever the machine's speed. Without it the kill raced a ~ms window
  // and missed it on a fast, quiet machine.
  const std::vector<std::string> args =
      azure_->ServeArgs({"--pipeline-unit-parallelism", "1"}, {proxy_->Endpoint()});
  SluiceServer victim(data, nullptr, args);
  std::string err;
  ASSERT_TRUE(victim.Start(&err)) << err;
  auto p = victim.CreateProject("azure-kill");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  std::vector<int64_t> days;
  for (int64_t d = today_ - 12; d < today_; ++d) days.push_back(d);
  size_t imported = 0;
  for (int64_t day : days) {
    ASSERT_TRUE(victim.Import(*p, MakeDayEvents(day, 3000, "azk", 81)).ok());
    imported += 3000;
  }
  Params params = azure_->PipelineParams(kAzureSecret, proxy_->Endpoint());
  params.insert(params.end(),
                {{"from_date", DateOf(days.front())}, {"prefix", "kill"}, {"compression", "none"}});
  proxy_->Script({{.kind = FaultKind::kStall,
                   .method = "PUT",
                   .target_contains = std::string(pipeline::kManifestName),
                   .times = 1,
                   .stall = std::chrono::milliseconds(10000)}});
  auto created = victim.PipelinePost(*p, "create", params);
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string name = PipelineName(created);
  auto under = azure_->Under("kill");
  ASSERT_TRUE(under);

  // Kill when a partition has data files but no manifest yet (an export in flight); the listing after the
  // kill proves the kill left it unfinished. If the export finished in between, restart and try again
  // (bounded).
  int kills = 0;
  std::set<std::string> interrupted;
  for (int round = 0; round < 6 && interrupted.empty(); ++round) {
    if (round > 0) {
      ASSERT_TRUE(victim.Start(&err)) << "restart " << round << ": " << err;
    }
    std::string waited = WaitUntil(
        [&] {
          auto keys = AllKeys(*under);
          return keys.ok() && !DirsWithoutManifest(*keys).empty();
        },
        60s, [] { return std::string("no export started writing"); }, 5ms);
    ASSERT_EQ(waited, "");
    victim.Kill();
    ++kills;
    auto keys = AllKeys(*under);
    ASSERT_TRUE(keys.ok()) << keys.error().ToString();
    interrupted = DirsWithoutManifest(*keys);
  }
  ASSERT_FALSE(interrupted.empty()) << "no kill landed mid-export in " << kills << " tries";
  std::cout << kills << " kill(s); interrupted mid-export: " << *interrupted.begin() << std::endl;
  auto before = AllKeys(*under);
  ASSERT_TRUE(before.ok());
  size_t orphans = 0;
  for (const auto& key : *before) {
    if (interrupted.contains(key.substr(0, key.rfind('/')))) ++orphans;
  }
  std::cout << orphans << " data file(s) of the interrupted export were left by the kill" << std::endl;

  // Restart on the same data directory: the pipeline finishes.
  proxy_->Clear();
  SluiceServer again(data, nullptr, azure_->ServeArgs({"--pipeline-unit-parallelism", "2"}, {proxy_->Endpoint()}));
  ASSERT_TRUE(again.Start(&err)) << err;
  std::vector<std::string> labels;
  for (int64_t d : days) labels.push_back(DateOf(d));
  ASSERT_EQ(WaitForSucceededPartitions(again, *p, name, labels, {}, 240s), "");
  size_t records = 0;
  EXPECT_EQ(CompareAll(again, *p, days, *under, &records), "");
  EXPECT_EQ(records, imported) << "every store event exactly once across the final manifests";

  // The interrupted attempt shows in the history: a failed task, and a later generation for its partition.
  auto tasks = Timeline(again, *p, name);
  ASSERT_TRUE(tasks.ok()) << tasks.error().ToString();
  int failed = 0, running = 0;
  for (const auto& t : *tasks) {
    failed += t.state == "failed";
    running += t.state == "running";
  }
  uint64_t generations = 0;
  for (int64_t day : days) {
    auto m = ReadPartition(*under, DayDir(p->id, day));
    ASSERT_TRUE(m.ok());
    generations += m->manifest.generation;
  }
  std::cout << tasks->size() << " tasks, " << failed << " interrupted; generations " << generations << " for "
            << days.size() << " partitions" << std::endl;
  EXPECT_EQ(running, 0) << "a task the kill interrupted still shows as running";
  EXPECT_GE(failed + static_cast<int>(generations - days.size()), 1)
      << "the interrupted attempt left no trace in the timeline or the generations";
  EXPECT_EQ(again.Terminate(), 0);
}

}  // namespace
}  // namespace sluice::testing::e2e
