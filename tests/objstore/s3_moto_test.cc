// S3ObjectStore against moto in auth mode: Sluice's user may only sts:AssumeRole; the customer role has exactly
// s3:PutObject/GetObject/ListBucket/DeleteObject on one bucket.
#include <gtest/gtest.h>

#include "common/crypto.h"
#include "objstore/s3/s3_object_store.h"
#include "s3_moto_env.h"

namespace sluice::objstore::s3 {

sluice::testing::MotoServer* MotoSuite::moto_ = nullptr;
sluice::testing::MotoEnvironment* MotoSuite::env_ = nullptr;
std::string* MotoSuite::error_ = nullptr;

namespace {

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = static_cast<char>(x);
  }
  return s;
}

class S3MotoTest : public MotoSuite {};

TEST_F(S3MotoTest, PutGetHeadListDeleteRoundTrip) {
  auto store = MakeStore(StoreOptions());
  ASSERT_NE(store, nullptr);
  auto put = store->Put("roundtrip/a b.json", "hello moto", {.content_type = "application/json"});
  ASSERT_TRUE(put.ok()) << put.error().ToString();
  EXPECT_EQ(put->size, 10u);
  EXPECT_FALSE(put->etag.empty());

  auto got = store->Get("roundtrip/a b.json");
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(*got, "hello moto");
  auto range = store->Get("roundtrip/a b.json", 6, 2);
  ASSERT_TRUE(range.ok()) << range.error().ToString();
  EXPECT_EQ(*range, "mo");
  auto tail = store->Get("roundtrip/a b.json", 6);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(*tail, "moto");

  auto head = store->Head("roundtrip/a b.json");
  ASSERT_TRUE(head.ok()) << head.error().ToString();
  EXPECT_EQ(head->size, 10u);
  EXPECT_EQ(head->etag, put->etag);
  EXPECT_GT(head->last_modified_ms, 0);

  auto missing = store->Head("roundtrip/none");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound) << missing.error().ToString();
  EXPECT_EQ(store->Get("roundtrip/none").error().code, ErrorCode::kNotFound);

  auto list = store->List("roundtrip");
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].key, "roundtrip/a b.json");
  EXPECT_EQ((*list)[0].size, 10u);

  ASSERT_TRUE(store->Delete("roundtrip/a b.json").ok());
  EXPECT_TRUE(store->Delete("roundtrip/a b.json").ok()) << "deleting a missing key succeeds";
  EXPECT_EQ(store->Head("roundtrip/a b.json").error().code, ErrorCode::kNotFound);
}

TEST_F(S3MotoTest, ListFiltersSortsAndResumesAfterAKey) {
  auto store = MakeStore(StoreOptions());
  ASSERT_NE(store, nullptr);
  // No '/' in list prefixes or start-after here: moto rejects query values that need escaping even when
  // correctly signed (TESTING.md). Pagination with continuation tokens is covered by s3_store_test.cc.
  std::vector<std::string> keys;
  for (int i = 24; i >= 0; --i) ASSERT_TRUE(store->Put(fmt::format("paged-k{:03d}", i), "v").ok());
  ASSERT_TRUE(store->Put("pagedX", "x").ok());
  ASSERT_TRUE(store->Put("other", "x").ok());
  auto all = store->List("paged-");
  ASSERT_TRUE(all.ok()) << all.error().ToString();
  ASSERT_EQ(all->size(), 25u);
  EXPECT_EQ(all->front().key, "paged-k000");
  EXPECT_EQ(all->back().key, "paged-k024");
  std::vector<std::string> seen;
  ASSERT_TRUE(store->ListEach("paged", "paged-k019", [&](const ObjectInfo& o) {
                     seen.push_back(o.key);
                     return o.key != "paged-k022";
                   })
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"paged-k020", "paged-k021", "paged-k022"}));
}

TEST_F(S3MotoTest, StorePrefixIsApplied) {
  auto opts = StoreOptions();
  opts.prefix = "/tenant-a/";
  auto store = MakeStore(opts);
  auto root = MakeStore(StoreOptions());
  ASSERT_TRUE(store && root);
  auto put = store->Put("x.json", "1");
  ASSERT_TRUE(put.ok()) << put.error().ToString();
  EXPECT_EQ(put->key, "x.json");
  EXPECT_TRUE(root->Head("tenant-a/x.json").ok());
  EXPECT_EQ(*store->Get("x.json"), "1");
  EXPECT_EQ(store->ResourceArn("x.json"), "arn:aws:s3:::" + env_->bucket + "/tenant-a/x.json");
  EXPECT_EQ(store->Describe(), "s3://" + env_->bucket + "/tenant-a (us-east-1) at " + moto_->Endpoint());
}

TEST_F(S3MotoTest, MultipartTwentyMiBRoundTripsSignedAndUnsigned) {
  for (auto signing : {PayloadSigning::kSigned, PayloadSigning::kUnsignedWithCrc32c}) {
    SCOPED_TRACE(signing == PayloadSigning::kSigned ? "signed" : "unsigned+crc32c");
    auto opts = StoreOptions();
    opts.part_size = 5 * kMiB;
    opts.payload_signing = signing;
    auto store = MakeStore(opts);
    ASSERT_NE(store, nullptr);
    const std::string data = Pattern(20 * kMiB + 12345, signing == PayloadSigning::kSigned ? 1 : 2);
    const std::string key =
        signing == PayloadSigning::kSigned ? "multipart/twenty-signed.bin" : "multipart/twenty-unsigned.bin";
    auto w = store->NewWriter(key);
    ASSERT_TRUE(w.ok());
    // Odd-sized writes cross part boundaries.
    for (size_t off = 0; off < data.size(); off += 777'777) {
      ASSERT_TRUE((*w)->Write(std::string_view(data).substr(off, 777'777)).ok());
    }
    EXPECT_FALSE(store->Head(key).ok()) << "invisible before Complete";
    auto info = (*w)->Complete();
    ASSERT_TRUE(info.ok()) << info.error().ToString();
    EXPECT_EQ(info->size, data.size());
    EXPECT_NE(info->etag.find("-5"), std::string::npos) << "5 parts: " << info->etag;
    auto head = store->Head(key);
    ASSERT_TRUE(head.ok());
    EXPECT_EQ(head->size, data.size());
    auto got = store->Get(key);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    EXPECT_TRUE(*got == data);
    std::string streamed;
    ASSERT_TRUE(store->GetStreaming(key, [&](std::string_view c) {
                       streamed.append(c);
                       return true;
                     })
                    .ok());
    EXPECT_TRUE(streamed == data);
  }
}

TEST_F(S3MotoTest, SmallWriterUsesSinglePut) {
  auto store = MakeStore(StoreOptions());
  ASSERT_NE(store, nullptr);
  auto w = store->NewWriter("small/one.json", {.content_type = "application/x-ndjson", .content_encoding = "gzip"});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write("{}\n").ok());
  auto info = (*w)->Complete();
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->size, 3u);
  EXPECT_EQ(info->etag.find('-'), std::string::npos) << "single PUT ETag has no part count";
  EXPECT_EQ(*store->Get("small/one.json"), "{}\n");
}

TEST_F(S3MotoTest, SseHeadersArriveAsSent) {
  struct Case {
    const char* name;
    Encryption enc;
    const char* expected_sse;
    std::string expected_key;
  };
  std::vector<Case> cases = {
      {"aes", {Encryption::Mode::kAes256, ""}, "AES256", ""},
      {"kms-default", {Encryption::Mode::kKms, ""}, "aws:kms", ""},
      {"kms-key", {Encryption::Mode::kKms, env_->kms_key_arn}, "aws:kms", env_->kms_key_arn},
  };
  auto plain = MakeStore(StoreOptions());
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto opts = StoreOptions();
    opts.encryption = c.enc;
    opts.part_size = 5 * kMiB;
    auto store = MakeStore(opts);
    ASSERT_NE(store, nullptr);
    std::string key = std::string("sse/") + c.name;
    auto put = store->Put(key, "secret data");
    ASSERT_TRUE(put.ok()) << put.error().ToString();
    EXPECT_EQ(put->server_side_encryption, c.expected_sse);
    // Read through a store without encryption settings: what S3 reports is what was stored.
    auto head = plain->Head(key);
    ASSERT_TRUE(head.ok()) << head.error().ToString();
    EXPECT_EQ(head->server_side_encryption, c.expected_sse);
    if (!c.expected_key.empty()) {
      EXPECT_EQ(head->kms_key_id, c.expected_key);
    }

    // Multipart (12 MiB: three parts): SSE is set once at CreateMultipartUpload.
    auto w = store->NewWriter(key + "-multipart");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write(Pattern(12 * kMiB, 7)).ok());
    auto info = (*w)->Complete();
    ASSERT_TRUE(info.ok()) << info.error().ToString();
    auto mhead = plain->Head(key + "-multipart");
    ASSERT_TRUE(mhead.ok()) << mhead.error().ToString();
    EXPECT_EQ(mhead->size, 12 * kMiB);
    EXPECT_EQ(mhead->server_side_encryption, c.expected_sse);
    if (!c.expected_key.empty()) {
      EXPECT_EQ(mhead->kms_key_id, c.expected_key);
    }
  }
}

TEST_F(S3MotoTest, WrongSecretIsUnauthenticatedAndNeverEchoed) {
  const std::string wrong = "WrongSecretKeyWrongSecretKeyWrong0123456";
  auto store = MakeStore(StoreOptions(), std::make_shared<aws::AssumeRoleProvider>(
                                             Sts(OwnCredentials(wrong)),
                                             aws::AssumeRoleProvider::Options{.role_arn = env_->roles.at("full"),
                                                                              .session_name = "sluice-test",
                                                                              .external_id = env_->external_id}));
  ASSERT_NE(store, nullptr);
  auto put = store->Put("denied/x", "x");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, ErrorCode::kUnauthenticated) << put.error().ToString();
  std::string text = put.error().ToString();
  EXPECT_NE(text.find("secret"), std::string::npos) << text;
  EXPECT_EQ(text.find(wrong), std::string::npos) << text;
  EXPECT_EQ(text.find(env_->secret_access_key.Reveal()), std::string::npos) << text;
}

TEST_F(S3MotoTest, ImportRoleReadsButCannotWrite) {
  auto opts = StoreOptions();
  opts.bucket = env_->import_bucket;
  auto reader = MakeStore(opts, RoleCredentials("import"));
  ASSERT_NE(reader, nullptr);
  auto list = reader->List("");
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  auto put = reader->Put("events.ndjson", "{}\n");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, ErrorCode::kAccessDenied) << put.error().ToString();
  EXPECT_EQ(reader->Get("missing.ndjson").error().code, ErrorCode::kNotFound);
}

TEST_F(S3MotoTest, OtherBucketIsDenied) {
  auto opts = StoreOptions();
  opts.bucket = env_->other_bucket;
  auto store = MakeStore(opts);
  ASSERT_NE(store, nullptr);
  auto put = store->Put("x", "x");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, ErrorCode::kAccessDenied) << put.error().ToString();
}

}  // namespace
}  // namespace sluice::objstore::s3
