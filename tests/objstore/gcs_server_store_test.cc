// GcsObjectStore + Sluice's JWT-bearer identity against tests/support/gcs_server.js over real HTTP (curl):
// small and resumable uploads, list pages, ranged and streamed reads, delete, an account without object
// create refused with the permission and role named, a token expiring mid-upload, injected 429/503/resets and
// a session that keeps only part of a chunk.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "common/crypto.h"
#include "gcp/credentials.h"
#include "objstore/gcs/gcs_object_store.h"
#include "support/gcs_server.h"

namespace sluice::objstore::gcs {
namespace {

using ::testing::HasSubstr;

constexpr char kBucket[] = "sluice-data";

class GcsServerStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto admin = testing::MakeTestServiceAccount("sluice@proj.iam.gserviceaccount.com", "key-admin");
    auto viewer = testing::MakeTestServiceAccount("importer@proj.iam.gserviceaccount.com", "key-viewer");
    ASSERT_TRUE(admin.ok() && viewer.ok());
    admin_ = new testing::TestServiceAccount(*admin);
    viewer_ = new testing::TestServiceAccount(*viewer);
    boost::json::object config{
        {"accounts",
         {{admin_->email, {{"public_key", admin_->public_pem}, {"key_id", admin_->key_id}}},
          {viewer_->email, {{"public_key", viewer_->public_pem}, {"key_id", viewer_->key_id}}}}},
        {"buckets",
         {{kBucket,
           {{"bindings",
             {{admin_->email, boost::json::array{"objectAdmin"}},
              {viewer_->email, boost::json::array{"objectViewer"}}}}}}}},
        {"token_ttl_seconds", 3600}};
    auto server = testing::GcsTestServer::Start(config);
    ASSERT_TRUE(server.ok()) << server.error().ToString();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->SetFaults("[]").ok());
  }

  struct Client {
    std::shared_ptr<gcp::ServiceAccountTokenProvider> tokens;
    std::unique_ptr<GcsObjectStore> store;
  };
  static Client Make(const testing::TestServiceAccount& sa, std::string prefix = "t",
                     uint64_t chunk = 256 * 1024, std::string kms_key_name = "") {
    std::shared_ptr<http::HttpTransport> transport = http::MakeCurlTransport();
    gcp::TokenSourceOptions token_options;
    token_options.transport = transport;
    token_options.sleep = [](std::chrono::milliseconds) {};
    auto key =
        gcp::ParseServiceAccountKey(testing::ServiceAccountKeyJson(sa, server_->TokenUri()), "test key");
    EXPECT_TRUE(key.ok());
    Client c;
    c.tokens = std::make_shared<gcp::ServiceAccountTokenProvider>(*key, token_options);
    GcsStoreOptions o;
    o.bucket = kBucket;
    o.prefix = std::move(prefix);
    o.endpoint = server_->Endpoint();
    o.chunk_size = chunk;
    o.list_page_size = 7;
    o.kms_key_name = std::move(kms_key_name);
    o.env = [](std::string_view) { return std::nullopt; };
    o.sleep = [](std::chrono::milliseconds) {};
    auto store = GcsObjectStore::Create(o, c.tokens, transport);
    EXPECT_TRUE(store.ok()) << store.error().ToString();
    c.store = std::move(*store);
    return c;
  }
  static std::string Pattern(size_t n, int seed) {
    std::string s(n, '\0');
    uint32_t x = 2166136261u ^ static_cast<uint32_t>(seed);
    for (size_t i = 0; i < n; ++i) {
      x = x * 16777619u + 0x9e3779b9u;
      s[i] = static_cast<char>(x >> 24);
    }
    return s;
  }
  static int CountInLog(std::string_view needle) {
    auto log = server_->RequestLog();
    EXPECT_TRUE(log.ok());
    int n = 0;
    const boost::json::value entries = boost::json::parse(*log);
    for (const auto& e : entries.as_array()) {
      std::string line =
          fmt::format("{} {}", std::string(e.at("method").as_string()), std::string(e.at("url").as_string()));
      if (line.find(needle) != std::string::npos) ++n;
    }
    return n;
  }
  Status Upload(GcsObjectStore& store, const std::string& key, const std::string& data,
                size_t piece = 100000) {
    SLUICE_ASSIGN_OR_RETURN(auto writer,
                            store.NewWriter(key, PutOptions{.content_type = "application/x-ndjson"}));
    for (size_t at = 0; at < data.size(); at += piece)
      SLUICE_TRY(writer->Write(std::string_view(data).substr(at, piece)));
    SLUICE_TRY(writer->Complete());
    return OkStatus();
  }

  static testing::GcsTestServer* server_;
  static testing::TestServiceAccount* admin_;
  static testing::TestServiceAccount* viewer_;
};

testing::GcsTestServer* GcsServerStoreTest::server_ = nullptr;
testing::TestServiceAccount* GcsServerStoreTest::admin_ = nullptr;
testing::TestServiceAccount* GcsServerStoreTest::viewer_ = nullptr;

TEST_F(GcsServerStoreTest, SmallAndResumableUploadsRangedAndStreamedReadsAndDelete) {
  auto c = Make(*admin_, "rt");
  auto small = c.store->Put("small.json", "{\"a\":1}\n");
  ASSERT_TRUE(small.ok()) << small.error().ToString();
  EXPECT_EQ(small->size, 8u);
  EXPECT_EQ(*server_->RawObject(kBucket, "rt/small.json"), "{\"a\":1}\n");

  const std::string big = Pattern(3 * 1024 * 1024 + 12345, 1);  // 13 chunks of 256 KiB
  int chunks_before = CountInLog("PUT /upload/storage/v1/b/sluice-data/o?uploadType=resumable");
  ASSERT_TRUE(Upload(*c.store, "big.json", big).ok());
  EXPECT_EQ(CountInLog("PUT /upload/storage/v1/b/sluice-data/o?uploadType=resumable") - chunks_before, 13);
  EXPECT_EQ(*server_->RawObject(kBucket, "rt/big.json"), big);

  auto head = c.store->Head("big.json");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, big.size());
  auto whole = c.store->Get("big.json");
  ASSERT_TRUE(whole.ok()) << whole.error().ToString();
  EXPECT_EQ(*whole, big);
  auto range = c.store->Get("big.json", 1000000, 4096);
  ASSERT_TRUE(range.ok());
  EXPECT_EQ(*range, big.substr(1000000, 4096));
  std::string streamed;
  ASSERT_TRUE(c.store
                  ->GetStreaming("big.json",
                                 [&](std::string_view chunk) {
                                   streamed += chunk;
                                   return true;
                                 })
                  .ok());
  EXPECT_EQ(streamed, big);

  ASSERT_TRUE(c.store->Delete("big.json").ok());
  EXPECT_EQ(c.store->Head("big.json").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(c.store->Delete("big.json").ok()) << "deleting a missing key succeeds";
}

TEST_F(GcsServerStoreTest, ListsAcrossPagesInOrder) {
  auto c = Make(*admin_, "ls");
  std::vector<std::string> expected;
  for (int i = 0; i < 20; ++i) {
    std::string key = fmt::format("p/{:03}.json", i);
    ASSERT_TRUE(c.store->Put(key, std::to_string(i)).ok());
    expected.push_back(key);
  }
  ASSERT_TRUE(c.store->Put("other/x.json", "x").ok());
  int pages_before = CountInLog("GET /storage/v1/b/sluice-data/o?maxResults=7");
  auto listed = c.store->List("p/");
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  std::vector<std::string> keys;
  for (const auto& i : *listed) keys.push_back(i.key);
  EXPECT_EQ(keys, expected);
  EXPECT_EQ(CountInLog("GET /storage/v1/b/sluice-data/o?maxResults=7") - pages_before, 3);
  std::vector<std::string> after;
  ASSERT_TRUE(c.store
                  ->ListEach("p/", "p/016.json",
                             [&](const ObjectInfo& i) {
                               after.push_back(i.key);
                               return true;
                             })
                  .ok());
  EXPECT_EQ(after, (std::vector<std::string>{"p/017.json", "p/018.json", "p/019.json"}));
}

TEST_F(GcsServerStoreTest, AnAccountWithoutObjectCreateIsRefusedWithThePermissionAndRoleNamed) {
  auto admin = Make(*admin_, "deny");
  ASSERT_TRUE(admin.store->Put("readable.json", "r").ok());
  auto viewer = Make(*viewer_, "deny");
  auto put = viewer.store->Put("x.json", "data");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, ErrorCode::kAccessDenied);
  EXPECT_EQ(put.error().provider_code, "storage.objects.create");
  EXPECT_THAT(put.error().message,
              HasSubstr("importer@proj.iam.gserviceaccount.com does not have storage.objects.create"));
  EXPECT_THAT(put.error().message, HasSubstr("grant Storage Object Creator (roles/storage.objectCreator) to "
                                             "importer@proj.iam.gserviceaccount.com on gs://sluice-data"));
  auto writer = viewer.store->NewWriter("big.json");
  ASSERT_TRUE(writer.ok());
  auto w = (*writer)->Write(Pattern(300 * 1024, 2));
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, ErrorCode::kAccessDenied);
  // Viewer can read and list, not delete.
  EXPECT_EQ(*viewer.store->Get("readable.json"), "r");
  auto del = viewer.store->Delete("readable.json");
  ASSERT_FALSE(del.ok());
  EXPECT_THAT(del.error().message, HasSubstr("Storage Object Admin"));
  auto perms = viewer.store->TestIamPermissions(
      {"storage.objects.create", "storage.objects.get", "storage.objects.list"});
  ASSERT_TRUE(perms.ok()) << perms.error().ToString();
  EXPECT_EQ(*perms, (std::vector<std::string>{"storage.objects.get", "storage.objects.list"}));
}

TEST_F(GcsServerStoreTest, ATokenExpiringMidUploadIsRefreshed) {
  auto c = Make(*admin_, "expire");
  ASSERT_TRUE(c.store->Put("warm.json", "w").ok());  // token fetched
  int exchanges = CountInLog("POST /token");
  // The server forgets every token just before the 3rd chunk: that chunk gets 401, the executor fetches a new
  // token and resends.
  ASSERT_TRUE(
      server_
          ->SetFaults(
              R"([{"match":"PUT /upload/storage/v1/b/sluice-data/o?uploadType=resumable","nth":3,"type":"expire_tokens"}])")
          .ok());
  const std::string data = Pattern(5 * 256 * 1024 + 77, 3);
  ASSERT_TRUE(Upload(*c.store, "big.json", data).ok());
  EXPECT_EQ(*server_->RawObject(kBucket, "expire/big.json"), data);
  EXPECT_EQ(CountInLog("POST /token") - exchanges, 1);
  EXPECT_EQ(c.tokens->refresh_count(), 2);
}

TEST_F(GcsServerStoreTest, Injected429And503AndResetsAndPartialChunksAreRetried) {
  auto c = Make(*admin_, "faults", 512 * 1024);
  // Chunks are 512 KiB; faults are matched on "METHOD URL CONTENT-RANGE".
  const char* faults = R"([
      {"match":"POST /upload/storage/v1/b/sluice-data/o?uploadType=resumable","nth":1,"type":"503"},
      {"match":"bytes 524288-1048575/*","nth":1,"type":"429"},
      {"match":"bytes 1048576-1572863/*","nth":1,"type":"partial"},
      {"match":"bytes 1310720-","nth":1,"type":"reset"},
      {"match":"/2097157","nth":1,"type":"rateLimit"},
      {"match":"POST /upload/storage/v1/b/sluice-data/o?uploadType=multipart","nth":1,"type":"reset"},
      {"match":"GET /storage/v1/b/sluice-data/o?maxResults","nth":1,"type":"503"},
      {"match":"alt=media","nth":1,"type":"429"}])";
  ASSERT_TRUE(server_->SetFaults(faults).ok());
  const std::string data = Pattern(2 * 1024 * 1024 + 5, 4);
  Status up = Upload(*c.store, "big.json", data, 300000);
  ASSERT_TRUE(up.ok()) << up.error().ToString();
  EXPECT_EQ(*server_->RawObject(kBucket, "faults/big.json"), data);
  ASSERT_TRUE(c.store->Put("small.json", "s").ok());
  auto listed = c.store->List("");
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  EXPECT_EQ(listed->size(), 2u);
  auto got = c.store->Get("big.json");
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(*got, data);

  // The retries really happened: status queries after the throttled chunks, and after the session kept only
  // half of the third 512 KiB chunk the next one starts at 1280 KiB (not at a 512 KiB boundary).
  auto log = server_->RequestLog();
  ASSERT_TRUE(log.ok());
  int status_queries = 0;
  bool resumed_mid_chunk = false;
  const boost::json::value entries = boost::json::parse(*log);
  for (const auto& e : entries.as_array()) {
    std::string range(e.at("content_range").as_string());
    if (range.starts_with("bytes */")) ++status_queries;
    if (range.starts_with("bytes 1310720-")) resumed_mid_chunk = true;
  }
  EXPECT_GE(status_queries, 2)
      << "the 429 and the rateLimitExceeded chunks each lead to a status query; log: " << *log;
  EXPECT_TRUE(resumed_mid_chunk);
}

TEST_F(GcsServerStoreTest, CmekKeyIsSentOnEveryCreatingRequest) {
  const std::string key = "projects/p/locations/us/keyRings/r/cryptoKeys/sluice";
  auto c = Make(*admin_, "cmek", 256 * 1024, key);
  auto small = c.store->Put("small.json", "s");
  ASSERT_TRUE(small.ok()) << small.error().ToString();
  EXPECT_EQ(small->server_side_encryption, "cmek");
  EXPECT_EQ(small->kms_key_id, key + "/cryptoKeyVersions/1");
  ASSERT_TRUE(Upload(*c.store, "big.json", Pattern(600 * 1024, 5)).ok());
  auto head = c.store->Head("big.json");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->kms_key_id, key + "/cryptoKeyVersions/1");
  EXPECT_EQ(CountInLog("uploadType=multipart&kmsKeyName=projects%2Fp%2Flocations%2Fus%2FkeyRings%2Fr%"
                       "2FcryptoKeys%2Fsluice"),
            1);
  EXPECT_EQ(
      CountInLog("POST /upload/storage/v1/b/sluice-data/o?uploadType=resumable&kmsKeyName=projects%2Fp"), 1);
}

}  // namespace
}  // namespace sluice::objstore::gcs
