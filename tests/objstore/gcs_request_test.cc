// Golden tests of each GCS JSON-API request: method, URL (path and query), headers and body, as built before
// the executor adds Authorization.
#include "objstore/gcs/gcs_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/crypto.h"

namespace sluice::objstore::gcs {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

GcsRequestContext Ctx(std::string kms = "") {
  return GcsRequestContext{"https://storage.googleapis.com", "acme-events", std::move(kms)};
}

TEST(GcsRequestTest, Metadata) {
  auto r = BuildGetMetadata(Ctx(), "exports/2024/01/02/part 1+x.json.gz");
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.url,
            "https://storage.googleapis.com/storage/v1/b/acme-events/o/"
            "exports%2F2024%2F01%2F02%2Fpart%201%2Bx.json.gz");
  EXPECT_TRUE(r.headers.empty());
  EXPECT_TRUE(r.body.empty());
}

TEST(GcsRequestTest, Downloads) {
  auto whole = BuildDownload(Ctx(), "a/b", 0, std::nullopt);
  EXPECT_EQ(whole.url, "https://storage.googleapis.com/storage/v1/b/acme-events/o/a%2Fb?alt=media");
  EXPECT_EQ(whole.headers, (Headers{{"Accept-Encoding", "gzip"}}));
  auto range = BuildDownload(Ctx(), "a/b", 100, 50);
  EXPECT_EQ(range.headers, (Headers{{"Accept-Encoding", "gzip"}, {"Range", "bytes=100-149"}}));
  auto tail = BuildDownload(Ctx(), "a/b", 7, std::nullopt, 1700000000123456);
  EXPECT_EQ(tail.url,
            "https://storage.googleapis.com/storage/v1/b/acme-events/o/"
            "a%2Fb?alt=media&generation=1700000000123456");
  EXPECT_EQ(tail.headers, (Headers{{"Accept-Encoding", "gzip"}, {"Range", "bytes=7-"}}));
}

TEST(GcsRequestTest, MultipartUploadWithCrc32cAndCmek) {
  PutOptions o;
  o.content_type = "application/x-ndjson";
  o.content_encoding = "gzip";
  auto r = BuildMultipartUpload(Ctx("projects/p/locations/us/keyRings/r/cryptoKeys/k"), "e/part-0.json.gz",
                                "DATA", o, Crc32cBase64(Crc32c("DATA")), "BOUNDARY");
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(
      r.url,
      "https://storage.googleapis.com/upload/storage/v1/b/acme-events/o?uploadType=multipart&kmsKeyName="
      "projects%2Fp%2Flocations%2Fus%2FkeyRings%2Fr%2FcryptoKeys%2Fk");
  EXPECT_EQ(r.headers, (Headers{{"Content-Type", "multipart/related; boundary=BOUNDARY"}}));
  EXPECT_EQ(
      *r.body.data,
      "--BOUNDARY\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
      "{\"name\":\"e/part-0.json.gz\",\"contentType\":\"application/x-ndjson\",\"contentEncoding\":\"gzip\","
      "\"crc32c\":\"" +
          Crc32cBase64(Crc32c("DATA")) +
          "\"}\r\n"
          "--BOUNDARY\r\nContent-Type: application/x-ndjson\r\n\r\nDATA\r\n--BOUNDARY--\r\n");
}

TEST(GcsRequestTest, ResumableSession) {
  PutOptions o;
  o.size_hint = 20000000;
  auto start = BuildStartResumable(Ctx(), "big.json", o);
  EXPECT_EQ(start.method, "POST");
  EXPECT_EQ(start.url,
            "https://storage.googleapis.com/upload/storage/v1/b/acme-events/o?uploadType=resumable");
  EXPECT_EQ(start.headers, (Headers{{"Content-Type", "application/json; charset=UTF-8"},
                                    {"X-Upload-Content-Type", "application/octet-stream"},
                                    {"X-Upload-Content-Length", "20000000"}}));
  EXPECT_EQ(*start.body.data, R"({"name":"big.json","contentType":"application/octet-stream"})");

  const std::string session =
      "https://storage.googleapis.com/upload/storage/v1/b/acme-events/o?uploadType=resumable&upload_id=U1";
  auto chunk = BuildUploadChunk(session, http::RequestBody::FromString(std::string(262144, 'x')), 524288,
                                std::nullopt);
  EXPECT_EQ(chunk.method, "PUT");
  EXPECT_EQ(chunk.url, session);
  EXPECT_EQ(chunk.headers, (Headers{{"Content-Range", "bytes 524288-786431/*"}}));
  auto last = BuildUploadChunk(session, http::RequestBody::FromString("tail"), 786432, 786436, "yZRlqg==");
  EXPECT_EQ(last.headers,
            (Headers{{"Content-Range", "bytes 786432-786435/786436"}, {"X-Goog-Hash", "crc32c=yZRlqg=="}}));
  auto empty_last = BuildUploadChunk(session, http::RequestBody::FromString(""), 786432, 786432, "AAAAAA==");
  EXPECT_EQ(empty_last.headers,
            (Headers{{"Content-Range", "bytes */786432"}, {"X-Goog-Hash", "crc32c=AAAAAA=="}}));
  auto query = BuildQueryResumable(session, std::nullopt);
  EXPECT_EQ(query.method, "PUT");
  EXPECT_EQ(query.headers, (Headers{{"Content-Range", "bytes */*"}}));
  EXPECT_EQ(query.body.length, 0u);
  auto cancel = BuildCancelResumable(session);
  EXPECT_EQ(cancel.method, "DELETE");
  EXPECT_EQ(cancel.url, session);
}

TEST(GcsRequestTest, ListDeleteAndTestIamPermissions) {
  auto list = BuildList(Ctx(), "sluice/2024/", "CgR0b2tlbg==", "sluice/2024/01", 1000);
  EXPECT_EQ(list.method, "GET");
  EXPECT_EQ(
      list.url,
      "https://storage.googleapis.com/storage/v1/b/acme-events/o?maxResults=1000&prefix=sluice%2F2024%2F"
      "&startOffset=sluice%2F2024%2F01&pageToken=CgR0b2tlbg%3D%3D");
  auto del = BuildDelete(Ctx(), "k");
  EXPECT_EQ(del.method, "DELETE");
  EXPECT_EQ(del.url, "https://storage.googleapis.com/storage/v1/b/acme-events/o/k");
  auto iam = BuildTestIamPermissions(Ctx(), {"storage.objects.create", "storage.objects.delete"});
  EXPECT_EQ(iam.url,
            "https://storage.googleapis.com/storage/v1/b/acme-events/iam/testPermissions?"
            "permissions=storage.objects.create&permissions=storage.objects.delete");
}

TEST(GcsRequestTest, Crc32cMatchesGoogleEncoding) {
  // GCS documents "hello world" as crc32c=yZRlqg== (gsutil hash).
  EXPECT_EQ(Crc32cBase64(Crc32c("hello world")), "yZRlqg==");
  EXPECT_EQ(GoogHashValue("crc32c=yZRlqg==,md5=XrY7u+Ae7tCTyyK7j1rNww==", "crc32c"), "yZRlqg==");
  EXPECT_EQ(GoogHashValue("crc32c=yZRlqg==, md5=XrY7u+Ae7tCTyyK7j1rNww==", "md5"),
            "XrY7u+Ae7tCTyyK7j1rNww==");
  EXPECT_EQ(GoogHashValue("md5=abc", "crc32c"), "");
}

TEST(GcsRequestTest, EndpointResolution) {
  EXPECT_EQ(*ResolveEndpoint("", ""), "https://storage.googleapis.com");
  EXPECT_EQ(*ResolveEndpoint("", "127.0.0.1:4443"), "http://127.0.0.1:4443");
  EXPECT_EQ(*ResolveEndpoint("", "http://localhost:9023/"), "http://localhost:9023");
  EXPECT_EQ(*ResolveEndpoint("https://gcs.internal:8443", "127.0.0.1:1"), "https://gcs.internal:8443");
  auto bad = ResolveEndpoint("http://host/path", "");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message, ::testing::HasSubstr("STORAGE_EMULATOR_HOST"));
}

TEST(GcsRequestTest, ParsesObjectsPagesAndRanges) {
  auto obj = ParseObjectResource(
      R"({"kind":"storage#object","name":"a/b","bucket":"x","generation":"1700000000123456",
      "size":"12345","etag":"CJ/ABC=","updated":"2026-12-06T01:02:03.456Z","crc32c":"yZRlqg==","md5Hash":"XrY=",
      "kmsKeyName":"projects/p/locations/us/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"})");
  ASSERT_TRUE(obj.ok()) << obj.error().ToString();
  EXPECT_EQ(obj->info.key, "a/b");
  EXPECT_EQ(obj->info.size, 12345u);
  EXPECT_EQ(obj->info.etag, "CJ/ABC=");
  EXPECT_EQ(obj->info.last_modified_ms, 1796518923456);
  EXPECT_EQ(obj->info.server_side_encryption, "cmek");
  EXPECT_EQ(obj->generation, 1700000000123456);
  EXPECT_EQ(obj->crc32c, "yZRlqg==");
  auto page =
      ParseListPage(R"({"items":[{"name":"a","size":"1"},{"name":"b","size":"2"}],"nextPageToken":"T"})");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->next_page_token, "T");
  EXPECT_TRUE(ParseListPage(R"({"kind":"storage#objects"})")->items.empty());
  http::OutboundResponse r;
  r.status = 308;
  EXPECT_EQ(*PersistedBytes(r), 0u);
  r.headers = {{"range", "bytes=0-262143"}};
  EXPECT_EQ(*PersistedBytes(r), 262144u);
  r.headers = {{"range", "bytes=5-9"}};
  EXPECT_FALSE(PersistedBytes(r).ok());
  EXPECT_TRUE(ValidateBucketName("acme-events.example.com").ok());
  EXPECT_FALSE(ValidateBucketName("Acme").ok());
  EXPECT_FALSE(ValidateBucketName("gs://acme").ok());
  EXPECT_FALSE(ValidateBucketName("ab").ok());
}

}  // namespace
}  // namespace sluice::objstore::gcs
