// GcsObjectStore against a scripted transport: the resumable protocol (chunk retry from the session's
// reported Range, a session that keeps less than was sent), simple uploads for small objects, the x-goog-hash
// check, denial messages naming the role, and the credentials-only-to-the-endpoint rule.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "aws/fake_transport.h"
#include "common/crypto.h"
#include "objstore/gcs/gcs_object_store.h"

namespace sluice::objstore::gcs {
namespace {

using aws::testing::FakeTransport;
using aws::testing::HeaderOf;
using aws::testing::MakeResponse;
using ::testing::HasSubstr;

constexpr char kSession[] =
    "https://storage.googleapis.com/upload/storage/v1/b/acme-events/o?uploadType=resumable&upload_id=U1";

std::string ObjectJson(std::string_view name, std::string_view data) {
  return fmt::format(R"({{"name":"{}","size":"{}","generation":"7","crc32c":"{}","etag":"E"}})", name,
                     data.size(), Crc32cBase64(Crc32c(data)));
}

struct Harness {
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  std::unique_ptr<GcsObjectStore> store;
  explicit Harness(uint64_t chunk = 256 * 1024, std::string prefix = "sluice") {
    GcsStoreOptions o;
    o.bucket = "acme-events";
    o.prefix = prefix;
    o.chunk_size = chunk;
    o.env = [](std::string_view) { return std::nullopt; };
    o.sleep = [](std::chrono::milliseconds) {};
    auto tokens = std::make_shared<gcp::StaticTokenProvider>(gcp::AccessToken{Secret("ya29.T"), {}},
                                                             "sluice@p.iam.gserviceaccount.com");
    auto s = GcsObjectStore::Create(o, tokens, transport);
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    store = std::move(*s);
  }
};

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 1000) % 26);
  return s;
}

TEST(GcsStoreTest, ResumableChunksRetryFromTheReportedRange) {
  Harness h;
  const std::string data = Pattern(600 * 1024);
  h.transport->Push(MakeResponse(200, "", {{"location", kSession}}));
  h.transport->Push(MakeResponse(503, R"({"error":{"code":503,"message":"Backend Error"}})"));
  h.transport->Push(MakeResponse(308));                                     // status: nothing kept
  h.transport->Push(MakeResponse(308, "", {{"range", "bytes=0-262143"}}));  // chunk 1 resent and kept
  h.transport->Push(Error(ErrorCode::kTransient, "connection reset by storage.googleapis.com"));
  h.transport->Push(MakeResponse(308, "", {{"range", "bytes=0-524287"}}));  // status: chunk 2 had arrived
  h.transport->Push(MakeResponse(200, ObjectJson("sluice/big.json", data)));
  auto writer = h.store->NewWriter("big.json");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Write(data.substr(0, 100000)).ok());
  ASSERT_TRUE((*writer)->Write(data.substr(100000)).ok());
  auto info = (*writer)->Complete();
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->key, "big.json");
  EXPECT_EQ(info->size, data.size());

  auto reqs = h.transport->requests();
  ASSERT_EQ(reqs.size(), 7u);
  EXPECT_EQ(reqs[0].url,
            "https://storage.googleapis.com/upload/storage/v1/b/acme-events/o?uploadType=resumable");
  EXPECT_THAT(*reqs[0].body.data, HasSubstr(R"("name":"sluice/big.json")"));
  std::vector<std::string> ranges;
  for (size_t i = 1; i < reqs.size(); ++i) {
    EXPECT_EQ(reqs[i].url, kSession);
    EXPECT_EQ(HeaderOf(reqs[i], "Authorization"), "Bearer ya29.T");
    ranges.push_back(HeaderOf(reqs[i], "Content-Range"));
  }
  EXPECT_EQ(ranges,
            (std::vector<std::string>{"bytes 0-262143/*", "bytes */*", "bytes 0-262143/*",
                                      "bytes 262144-524287/*", "bytes */*", "bytes 524288-614399/614400"}));
  EXPECT_EQ(HeaderOf(reqs[6], "X-Goog-Hash"), "crc32c=" + Crc32cBase64(Crc32c(data)));
}

TEST(GcsStoreTest, ASessionThatKeepsLessGetsTheRestAgain) {
  Harness h;
  const std::string data = Pattern(512 * 1024 + 10);
  h.transport->Push(MakeResponse(200, "", {{"location", kSession}}));
  // Two full 256 KiB chunks, then the 10-byte tail as the final chunk.
  h.transport->Push(MakeResponse(308, "", {{"range", "bytes=0-262143"}}));
  h.transport->Push(MakeResponse(308, "", {{"range", "bytes=0-524287"}}));
  // Final chunk: the session keeps nothing of it the first time (308 without progress), then completes.
  h.transport->Push(MakeResponse(308, "", {{"range", "bytes=0-524287"}}));
  h.transport->Push(MakeResponse(200, ObjectJson("sluice/k", data)));
  auto writer = h.store->NewWriter("k");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Write(data).ok());
  ASSERT_TRUE((*writer)->Complete().ok());
  auto reqs = h.transport->requests();
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_EQ(HeaderOf(reqs[3], "Content-Range"), "bytes 524288-524297/524298");
  EXPECT_EQ(HeaderOf(reqs[4], "Content-Range"), "bytes 524288-524297/524298");
}

TEST(GcsStoreTest, SmallWritersUseOneMultipartUploadAndCheckTheStoredCrc) {
  Harness h;
  h.transport->Push(MakeResponse(200, ObjectJson("sluice/small", "hello")));
  auto writer = h.store->NewWriter("small");
  ASSERT_TRUE((*writer)->Write("hel").ok());
  ASSERT_TRUE((*writer)->Write("lo").ok());
  ASSERT_TRUE((*writer)->Complete().ok());
  auto reqs = h.transport->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].url,
            "https://storage.googleapis.com/upload/storage/v1/b/acme-events/o?uploadType=multipart");
  EXPECT_THAT(*reqs[0].body.data, HasSubstr(R"("crc32c":")" + Crc32cBase64(Crc32c("hello")) + "\""));

  // The server stored different bytes than we sent: refused.
  h.transport->Push(MakeResponse(200, ObjectJson("sluice/bad", "other bytes")));
  auto put = h.store->Put("bad", "hello");
  ASSERT_FALSE(put.ok());
  EXPECT_THAT(put.error().message, HasSubstr("CRC32C"));
}

TEST(GcsStoreTest, DownloadsAreCheckedAgainstXGoogHash) {
  Harness h;
  h.transport->Push(
      MakeResponse(200, "hello world", {{"x-goog-hash", "crc32c=yZRlqg==,md5=XrY7u+Ae7tCTyyK7j1rNww=="}}));
  auto ok = h.store->Get("k");
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(*ok, "hello world");
  EXPECT_EQ(h.transport->requests()[0].url,
            "https://storage.googleapis.com/storage/v1/b/acme-events/o/sluice%2Fk?alt=media");
  h.transport->SetHandler([](const http::OutboundRequest&) -> Result<http::OutboundResponse> {
    return MakeResponse(200, "hello w0rld", {{"x-goog-hash", "crc32c=yZRlqg=="}});
  });
  auto bad = h.store->Get("k");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message, HasSubstr("corrupted"));
  std::string streamed;
  auto s = h.store->GetStreaming("k", [&](std::string_view c) {
    streamed += c;
    return true;
  });
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message, HasSubstr("CRC32C"));
}

TEST(GcsStoreTest, DenialsNameTheRoleAndTheServiceAccount) {
  Harness h;
  h.transport->Push(MakeResponse(
      403,
      R"({"error":{"code":403,"message":"sluice@p.iam.gserviceaccount.com does not have storage.objects.create access to the Google Cloud Storage object.","errors":[{"reason":"forbidden"}]}})"));
  auto r = h.store->Put("k", "x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kAccessDenied);
  EXPECT_EQ(r.error().provider_code, "storage.objects.create");
  EXPECT_THAT(r.error().message, HasSubstr("grant Storage Object Creator (roles/storage.objectCreator) to "
                                           "sluice@p.iam.gserviceaccount.com on gs://acme-events"));
  EXPECT_THAT(r.error().message, HasSubstr("gs://acme-events/sluice/k"));
  EXPECT_THAT(r.error().message, ::testing::Not(HasSubstr("ya29")));
}

TEST(GcsStoreTest, DeletingAMissingObjectSucceedsAndListingPages) {
  Harness h;
  h.transport->Push(
      MakeResponse(404, R"({"error":{"code":404,"message":"No such object: acme-events/sluice/k"}})"));
  EXPECT_TRUE(h.store->Delete("k").ok());
  h.transport->Push(MakeResponse(
      200,
      R"({"items":[{"name":"sluice/a/1","size":"1"},{"name":"sluice/a/2","size":"2"}],"nextPageToken":"P2"})"));
  h.transport->Push(MakeResponse(200, R"({"items":[{"name":"sluice/a/3","size":"3"}]})"));
  std::vector<std::string> keys;
  ASSERT_TRUE(h.store
                  ->ListEach("a/", "a/1",
                             [&](const ObjectInfo& i) {
                               keys.push_back(i.key);
                               return true;
                             })
                  .ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"a/2", "a/3"}));
  auto reqs = h.transport->requests();
  EXPECT_EQ(reqs[1].url,
            "https://storage.googleapis.com/storage/v1/b/acme-events/o?maxResults=1000&prefix=sluice%2Fa%2F"
            "&startOffset=sluice%2Fa%2F1");
  EXPECT_EQ(reqs[2].url,
            "https://storage.googleapis.com/storage/v1/b/acme-events/o?maxResults=1000&prefix=sluice%2Fa%2F"
            "&startOffset=sluice%2Fa%2F1&pageToken=P2");
}

TEST(GcsStoreTest, ASessionOnAnotherHostIsRefused) {
  Harness h;
  h.transport->Push(MakeResponse(200, "", {{"location", "https://evil.example/upload?upload_id=x"}}));
  auto writer = h.store->NewWriter("k");
  auto s = (*writer)->Write(Pattern(256 * 1024));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message, HasSubstr("refusing to send credentials"));
  EXPECT_EQ(h.transport->count(), 1u);
}

TEST(GcsStoreTest, OptionsAreValidatedAndTheEmulatorHostIsHonoured) {
  GcsStoreOptions o;
  o.bucket = "acme-events";
  o.chunk_size = 100000;
  auto tokens = std::make_shared<gcp::StaticTokenProvider>(gcp::AccessToken{Secret("t"), {}});
  auto bad = GcsObjectStore::Create(o, tokens, std::make_shared<FakeTransport>());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message, HasSubstr("256 KiB"));
  o.chunk_size = 512 * 1024;
  o.env = [](std::string_view n) -> std::optional<std::string> {
    if (n == "STORAGE_EMULATOR_HOST") return "127.0.0.1:4443";
    return std::nullopt;
  };
  auto transport = std::make_shared<FakeTransport>();
  auto store = GcsObjectStore::Create(o, tokens, transport);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->Describe(), "gs://acme-events/ (endpoint http://127.0.0.1:4443)");
  transport->Push(MakeResponse(200, R"({"name":"k","size":"0"})"));
  ASSERT_TRUE((*store)->Head("k").ok());
  EXPECT_EQ(transport->requests()[0].url, "http://127.0.0.1:4443/storage/v1/b/acme-events/o/k");
  EXPECT_EQ(HeaderOf(transport->requests()[0], "Authorization"), "Bearer t")
      << "authenticates even when overridden";
}

}  // namespace
}  // namespace sluice::objstore::gcs
