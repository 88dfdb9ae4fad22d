// Golden Blob REST requests (exact method, URL and headers), the per-operation encryption rule, names and
// endpoints a tenant can send, and List Blobs parsing.
#include "objstore/azure/blob_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sluice::objstore::azure {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;
using ::testing::HasSubstr;

BlobRequestContext Ctx() { return BlobRequestContext{"https://acct.blob.core.windows.net", "exports", {}}; }

TEST(BlobRequest, PutBlobGolden) {
  auto r = BuildPutBlob(Ctx(), "sluice/1234/a b+c.json.gz", http::RequestBody::FromString("hello world"),
                        PutOptions{.content_type = "application/x-ndjson", .content_encoding = "gzip"},
                        ContentMd5("hello world"));
  EXPECT_EQ(r.method, "PUT");
  EXPECT_EQ(r.url, "https://acct.blob.core.windows.net/exports/sluice/1234/a%20b%2Bc.json.gz");
  EXPECT_EQ(r.headers, (Headers{{"x-ms-blob-type", "BlockBlob"},
                                {"Content-MD5", "XrY7u+Ae7tCTyyK7j1rNww=="},
                                {"x-ms-blob-content-type", "application/x-ndjson"},
                                {"x-ms-blob-content-encoding", "gzip"}}));
  EXPECT_EQ(*r.body.data, "hello world");
}

TEST(BlobRequest, PutBlockAndBlockListGolden) {
  EXPECT_EQ(BlockId(1), "c2x1aWNlLWJsb2NrLTAwMDAwMDAx");
  EXPECT_EQ(BlockId(0).size(), BlockId(49'999).size());
  auto block = BuildPutBlock(Ctx(), "k", BlockId(1), http::RequestBody::FromString("x"), ContentMd5("x"));
  EXPECT_EQ(block.url, "https://acct.blob.core.windows.net/exports/k?comp=block&blockid=c2x1aWNlLWJsb2NrLTAwMDAwMDAx");
  auto list = BuildPutBlockList(Ctx(), "k", {BlockId(0), BlockId(1)}, PutOptions{});
  EXPECT_EQ(list.url, "https://acct.blob.core.windows.net/exports/k?comp=blocklist");
  EXPECT_EQ(*list.body.data,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>c2x1aWNlLWJsb2NrLTAwMDAwMDAw</Latest>"
            "<Latest>c2x1aWNlLWJsb2NrLTAwMDAwMDAx</Latest></BlockList>");
  EXPECT_EQ(list.headers, (Headers{{"Content-Type", "application/xml"},
                                   {"x-ms-blob-content-type", "application/octet-stream"}}));
}

TEST(BlobRequest, RangedGetListAndDelete) {
  EXPECT_EQ(BuildGetBlob(Ctx(), "k", 0, std::nullopt).headers, Headers{});
  EXPECT_EQ(BuildGetBlob(Ctx(), "k", 10, 5).headers, (Headers{{"x-ms-range", "bytes=10-14"}}));
  EXPECT_EQ(BuildGetBlob(Ctx(), "k", 10, std::nullopt).headers, (Headers{{"x-ms-range", "bytes=10-"}}));
  EXPECT_EQ(BuildListBlobs(Ctx(), "sluice/12 34/", "2!84!MDAw", 5000).url,
            "https://acct.blob.core.windows.net/exports?restype=container&comp=list&prefix=sluice%2F12%2034%2F"
            "&marker=2%2184%21MDAw&maxresults=5000");
  auto del = BuildDeleteBlob(Ctx(), "k");
  EXPECT_EQ(del.method, "DELETE");
  EXPECT_EQ(BuildGetProperties(Ctx(), "k").method, "HEAD");
}

TEST(BlobRequest, EncryptionHeadersAreChosenPerOperation) {
  BlobEncryption scope{"sluice-scope", Secret()};
  EXPECT_EQ(EncryptionHeaders(scope, BlobOp::kPutBlob), (Headers{{"x-ms-encryption-scope", "sluice-scope"}}));
  EXPECT_EQ(EncryptionHeaders(scope, BlobOp::kPutBlock), (Headers{{"x-ms-encryption-scope", "sluice-scope"}}));
  EXPECT_EQ(EncryptionHeaders(scope, BlobOp::kPutBlockList), (Headers{{"x-ms-encryption-scope", "sluice-scope"}}));
  EXPECT_TRUE(EncryptionHeaders(scope, BlobOp::kGetBlob).empty());
  EXPECT_TRUE(EncryptionHeaders(scope, BlobOp::kListBlobs).empty());

  // A customer-provided key: 32 zero bytes; its SHA-256 is sent beside it.
  BlobEncryption cpk{"", Secret("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")};
  Headers expected{{"x-ms-encryption-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
                   {"x-ms-encryption-key-sha256", "Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU="},
                   {"x-ms-encryption-algorithm", "AES256"}};
  EXPECT_EQ(EncryptionHeaders(cpk, BlobOp::kPutBlock), expected);
  EXPECT_EQ(EncryptionHeaders(cpk, BlobOp::kGetBlob), expected);
  EXPECT_EQ(EncryptionHeaders(cpk, BlobOp::kGetProperties), expected);
  EXPECT_TRUE(EncryptionHeaders(cpk, BlobOp::kDeleteBlob).empty());
  EXPECT_TRUE(EncryptionHeaders(cpk, BlobOp::kListBlobs).empty());
  BlobRequestContext ctx = Ctx();
  ctx.encryption = scope;
  EXPECT_EQ(BuildPutBlob(ctx, "k", {}, PutOptions{}, "").headers.back(),
            (std::pair<std::string, std::string>{"x-ms-encryption-scope", "sluice-scope"}));
}

TEST(BlobRequest, NamesAndEndpointsATenantSendsAreValidated) {
  EXPECT_TRUE(ValidateContainerName("exports-2024").ok());
  const std::vector<std::string> bad_containers = {"ex",       "Exports",  "ex--ports", "-exports", "exports-",
                                                   "ex/ports", "ex.ports", "exports?comp=list", std::string(64, 'a')};
  for (const std::string& bad : bad_containers) {
    EXPECT_FALSE(ValidateContainerName(bad).ok()) << bad;
  }
  EXPECT_TRUE(ValidateAccountName("acme0events").ok());
  for (const char* bad : {"ac", "Acme", "acme-events", "acme.evil.com/x", "abcdefghijklmnopqrstuvwxy"}) {
    EXPECT_FALSE(ValidateAccountName(bad).ok()) << bad;
  }
  EXPECT_EQ(*ResolveEndpoint("", "acct"), "https://acct.blob.core.windows.net");
  EXPECT_EQ(*ResolveEndpoint("http://127.0.0.1:10000/devstoreaccount1/", "x"), "http://127.0.0.1:10000/devstoreaccount1");
  EXPECT_EQ(*ResolveEndpoint("https://acct.blob.core.usgovcloudapi.net", "acct"), "https://acct.blob.core.usgovcloudapi.net");
  auto plain = ResolveEndpoint("http://169.254.169.254/metadata", "acct");
  ASSERT_FALSE(plain.ok());
  EXPECT_THAT(plain.error().message, HasSubstr("https"));
  EXPECT_FALSE(ResolveEndpoint("https://acct.blob.core.windows.net?sig=x", "acct").ok());
  EXPECT_FALSE(ResolveEndpoint("file:///etc/passwd", "acct").ok());
}

TEST(BlobRequest, ParsesListBlobsPages) {
  auto page = ParseListBlobs(
      "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"https://a/\" "
      "ContainerName=\"exports\"><Prefix>p/</Prefix><MaxResults>2</MaxResults><Blobs>"
      "<Blob><Name>p/a &amp; b</Name><Properties><Last-Modified>Sun, 11 Oct 2009 21:49:13 GMT</Last-Modified>"
      "<Etag>0x8CBFF45D8A29A19</Etag><Content-Length>11</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob>"
      "<Blob><Name>p/c</Name><Properties><Content-Length>0</Content-Length><EncryptionScope>s1</EncryptionScope></Properties></Blob>"
      "</Blobs><NextMarker>2!84!MDAw</NextMarker></EnumerationResults>");
  ASSERT_TRUE(page.ok()) << page.error().ToString();
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->items[0].key, "p/a & b");
  EXPECT_EQ(page->items[0].size, 11u);
  EXPECT_EQ(page->items[0].etag, "0x8CBFF45D8A29A19");
  EXPECT_EQ(page->items[0].last_modified_ms, 1255297753000);
  EXPECT_EQ(page->items[1].server_side_encryption, "s1");
  EXPECT_EQ(page->next_marker, "2!84!MDAw");
  EXPECT_FALSE(ParseListBlobs("<Error><Code>x</Code></Error>").ok());
}

}  // namespace
}  // namespace sluice::objstore::azure
