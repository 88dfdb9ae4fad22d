// AzureBlobStore against Azurite (a real Blob service that checks Shared Key signatures): small and block
// uploads, ranged and streamed reads, list pages, delete, a wrong key, and 500/503/resets injected by
// tests/support/fault_proxy between the store and Azurite.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>

#include "azure/executor.h"
#include "objstore/azure/azure_blob_store.h"
#include "support/azurite_server.h"
#include "support/fault_proxy.h"

namespace sluice::objstore::azure {
namespace {

using ::sluice::azure::StorageCredential;
using ::sluice::testing::AzuriteServer;
using ::sluice::testing::FaultKind;
using ::sluice::testing::FaultProxy;
using ::testing::HasSubstr;

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed;
  for (auto& c : s) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

class AzuriteStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = AzuriteServer::Start();
    ASSERT_TRUE(server.ok()) << server.error().ToString();
    azurite_ = server->release();
    for (const char* c : {"exports", "faults"}) CreateContainer(azurite_->BlobEndpoint(), c);
  }
  static void TearDownTestSuite() {
    delete azurite_;
    azurite_ = nullptr;
  }

  static StorageCredential Key() {
    return *StorageCredential::SharedKey(AzuriteServer::kAccount, Secret(AzuriteServer::kAccountKey));
  }

  static void CreateContainer(const std::string& endpoint, const std::string& name) {
    ::sluice::azure::Executor::Options o;
    o.transport = http::MakeCurlTransport();
    o.credential = Key();
    ::sluice::azure::Executor ex(std::move(o));
    auto r = ex.Call([&] {
      return Result<http::OutboundRequest>(http::OutboundRequest{"PUT", endpoint + "/" + name + "?restype=container", {}, {}});
    });
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }

  static std::unique_ptr<AzureBlobStore> Store(std::string container, std::string endpoint = "",
                                               std::optional<StorageCredential> cred = std::nullopt) {
    AzureStoreOptions o;
    o.account = AzuriteServer::kAccount;
    o.container = std::move(container);
    o.prefix = "sluice/";
    o.endpoint = endpoint.empty() ? azurite_->BlobEndpoint() : endpoint;
    o.block_size = 256 * 1024;
    o.list_page_size = 2;
    o.retry.base_delay = std::chrono::milliseconds(1);
    o.retry.throttled_base_delay = std::chrono::milliseconds(1);
    auto store = AzureBlobStore::Create(o, cred ? *cred : Key());
    EXPECT_TRUE(store.ok()) << store.error().ToString();
    return std::move(*store);
  }

  static AzuriteServer* azurite_;
};
AzuriteServer* AzuriteStoreTest::azurite_ = nullptr;

TEST_F(AzuriteStoreTest, SmallPutAndRangedGet) {
  auto store = Store("exports");
  auto put = store->Put("1234/2024/01/02/small part.json", "hello world", PutOptions{.content_type = "application/json"});
  ASSERT_TRUE(put.ok()) << put.error().ToString();
  EXPECT_EQ(put->size, 11u);
  EXPECT_FALSE(put->etag.empty());
  EXPECT_EQ(*store->Get("1234/2024/01/02/small part.json"), "hello world");
  EXPECT_EQ(*store->Get("1234/2024/01/02/small part.json", 6, 5), "world");
  EXPECT_EQ(*store->Get("1234/2024/01/02/small part.json", 6), "world");
  auto head = store->Head("1234/2024/01/02/small part.json");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, 11u);
  EXPECT_EQ(head->etag, put->etag);
}

TEST_F(AzuriteStoreTest, LargeWriterStagesBlocksAndCommits) {
  auto store = Store("exports");
  const std::string data = Pattern(3 * 256 * 1024 + 12345, 7);
  auto writer = store->NewWriter("1234/large.json.gz", PutOptions{.content_encoding = "gzip"});
  ASSERT_TRUE(writer.ok());
  for (size_t pos = 0; pos < data.size(); pos += 100'003) {
    ASSERT_TRUE((*writer)->Write(std::string_view(data).substr(pos, 100'003)).ok());
  }
  // Nothing is visible before the commit.
  EXPECT_EQ(store->Head("1234/large.json.gz").error().code, ErrorCode::kNotFound);
  auto info = (*writer)->Complete();
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->size, data.size());
  EXPECT_EQ(*store->Get("1234/large.json.gz"), data);
  EXPECT_EQ(*store->Get("1234/large.json.gz", 300'000, 70'000), data.substr(300'000, 70'000));
  std::string streamed;
  ASSERT_TRUE(store->GetStreaming("1234/large.json.gz", [&](std::string_view c) {
                     streamed.append(c);
                     return true;
                   }).ok());
  EXPECT_EQ(streamed, data);

  // A writer that never fills a block does one Put Blob.
  auto small = store->NewWriter("1234/tiny.json");
  ASSERT_TRUE((*small)->Write("{}\n").ok());
  ASSERT_TRUE((*small)->Complete().ok());
  EXPECT_EQ(*store->Get("1234/tiny.json"), "{}\n");
}

TEST_F(AzuriteStoreTest, ListsAcrossPagesAndDeletes) {
  auto store = Store("exports");
  for (const char* k : {"list/e", "list/a", "list/c", "list/b", "list/d", "listing-other"}) {
    ASSERT_TRUE(store->Put(k, k).ok());
  }
  auto all = store->List("list/");
  ASSERT_TRUE(all.ok()) << all.error().ToString();
  std::vector<std::string> keys;
  for (const auto& o : *all) keys.push_back(o.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"list/a", "list/b", "list/c", "list/d", "list/e"}));
  EXPECT_EQ((*all)[0].size, 6u);
  std::vector<std::string> after;
  ASSERT_TRUE(store->ListEach("list/", "list/b", [&](const ObjectInfo& o) {
                     after.push_back(o.key);
                     return after.size() < 2;
                   }).ok());
  EXPECT_EQ(after, (std::vector<std::string>{"list/c", "list/d"}));

  ASSERT_TRUE(store->Delete("list/c").ok());
  ASSERT_TRUE(store->Delete("list/c").ok());  // a missing blob is not an error
  EXPECT_EQ(store->Head("list/c").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store->List("list/")->size(), 4u);
}

TEST_F(AzuriteStoreTest, AWrongKeyIsRefusedWithWhatToCheck) {
  auto wrong = StorageCredential::SharedKey(AzuriteServer::kAccount, Secret("d3Jvbmcga2V5IHdyb25nIGtleQ=="));
  auto store = Store("exports", "", *wrong);
  auto put = store->Put("denied.json", "x");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(put.error().http_status, 403);
  // Azure answers AuthenticationFailed; Azurite 3.35 AuthorizationFailure with Azure's "Server failed to
  // authenticate the request" message, which is what the classification reads.
  EXPECT_THAT(put.error().provider_code, ::testing::AnyOf("AuthenticationFailed", "AuthorizationFailure"));
  EXPECT_THAT(put.error().message, HasSubstr("check the storage account name and its access key"));
  EXPECT_THAT(put.error().message, HasSubstr("azure://devstoreaccount1/exports/sluice/denied.json"));
  EXPECT_THAT(put.error().message, ::testing::Not(HasSubstr("d3Jvbmcga2V5")));
}

TEST_F(AzuriteStoreTest, AMissingContainerIsNamed) {
  auto store = Store("nosuchcontainer");
  auto put = store->Put("x.json", "x");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(put.error().message, HasSubstr("ContainerNotFound"));
}

TEST_F(AzuriteStoreTest, RidesOutInjected500s503sAndResets) {
  FaultProxy proxy(azurite_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.start_error();
  auto store = Store("faults", proxy.Endpoint() + "/" + AzuriteServer::kAccount);
  const std::string data = Pattern(2 * 256 * 1024 + 999, 11);
  proxy.Script({{FaultKind::kInternalError, "PUT", "comp=block&"},
                {FaultKind::kSlowDown, "PUT", "comp=block&"},
                {FaultKind::kReset, "PUT", "comp=block&"},
                {FaultKind::kSlowDown, "PUT", "comp=blocklist"},
                {FaultKind::kReset, "PUT", "comp=blocklist"},
                {FaultKind::kInternalError, "GET"},
                {FaultKind::kReset, "GET"},
                {FaultKind::kSlowDown, "GET", "comp=list"}});
  auto writer = store->NewWriter("blocks.bin");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Write(data).ok());
  auto info = (*writer)->Complete();
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  auto got = store->Get("blocks.bin");
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(*got, data);
  auto listed = store->List("");
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  EXPECT_EQ(listed->size(), 1u);
  EXPECT_EQ(proxy.faults_injected(), 8);

  // A fault that does not go away surfaces classified, after the retry budget.
  proxy.Script({{FaultKind::kSlowDown, "PUT", "", -1}});
  auto put = store->Put("never.json", "x");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, ErrorCode::kTransient);
  EXPECT_THAT(put.error().message, HasSubstr("gave up after 5 attempts"));
  proxy.Clear();
}

}  // namespace
}  // namespace sluice::objstore::azure
