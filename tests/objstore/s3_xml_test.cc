#include "objstore/s3/s3_xml.h"

#include <gtest/gtest.h>

namespace sluice::objstore::s3 {
namespace {

TEST(S3XmlTest, ListObjectsV2Pages) {
  const char* page1 = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>exports/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>exports/a b.json</Key><LastModified>2024-01-02T03:04:05.678Z</LastModified>
    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>1234</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>exports/&lt;b&gt;&amp;c</Key><LastModified>2024-01-02T03:04:06Z</LastModified>
    <ETag>"abc-2"</ETag><Size>0</Size></Contents>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
</ListBucketResult>)";
  auto p = ParseListObjectsV2(page1);
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  ASSERT_EQ(p->objects.size(), 2u);
  EXPECT_EQ(p->objects[0].key, "exports/a b.json");
  EXPECT_EQ(p->objects[0].size, 1234u);
  EXPECT_EQ(p->objects[0].etag, "9b2cf535f27731c974343645a3985328");
  EXPECT_EQ(p->objects[0].last_modified_ms, 1704164645678);
  EXPECT_EQ(p->objects[1].key, "exports/<b>&c");
  EXPECT_EQ(p->objects[1].etag, "abc-2");
  EXPECT_EQ(p->objects[1].last_modified_ms, 1704164646000);
  EXPECT_TRUE(p->is_truncated);
  EXPECT_EQ(p->next_continuation_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");

  auto last = ParseListObjectsV2(
      "<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>");
  ASSERT_TRUE(last.ok());
  EXPECT_TRUE(last->objects.empty());
  EXPECT_FALSE(last->is_truncated);
}

TEST(S3XmlTest, ListObjectsV2Malformed) {
  EXPECT_FALSE(ParseListObjectsV2("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>").ok());
  EXPECT_FALSE(ParseListObjectsV2("<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>").ok());
  EXPECT_FALSE(ParseListObjectsV2(
                   "<ListBucketResult><Contents><Key>k</Key><Size>12x</Size></Contents></ListBucketResult>")
                   .ok());
  EXPECT_FALSE(ParseListObjectsV2("<Other/>").ok());
  EXPECT_FALSE(ParseListObjectsV2("<ListBucketResult><Contents>").ok());
}

TEST(S3XmlTest, InitiateMultipartUpload) {
  auto id = ParseInitiateMultipartUpload(
      R"(<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>)");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, "VXBsb2FkIElE");
  EXPECT_FALSE(ParseInitiateMultipartUpload("<InitiateMultipartUploadResult/>").ok());
}

TEST(S3XmlTest, CompleteMultipartUploadSuccessAndTwoHundredWithError) {
  // S3 pads a slow Complete with whitespace before the document.
  auto ok = ParseCompleteMultipartUpload(
      "   \n<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUploadResult><Location>x</Location>"
      "<Bucket>b</Bucket><Key>k</Key><ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
      "</CompleteMultipartUploadResult>");
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(*ok, "3858f62230ac3c915f300c664312c11f-9");

  auto err = ParseCompleteMultipartUpload(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>We encountered an "
      "internal error. Please try again.</Message><RequestId>656c76696e6727732072657175657374</RequestId>"
      "<HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>");
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().code, ErrorCode::kTransient);
  EXPECT_EQ(err.error().provider_code, "InternalError");
  EXPECT_EQ(err.error().request_id, "656c76696e6727732072657175657374");
  EXPECT_EQ(err.error().http_status, 200);

  auto bad_part = ParseCompleteMultipartUpload(
      "<Error><Code>InvalidPart</Code><Message>One or more of the specified parts could not be found.</Message>"
      "</Error>");
  ASSERT_FALSE(bad_part.ok());
  EXPECT_EQ(bad_part.error().code, ErrorCode::kInvalidArgument);

  EXPECT_FALSE(ParseCompleteMultipartUpload("").ok());
  EXPECT_FALSE(ParseCompleteMultipartUpload("<Unexpected/>").ok());
  EXPECT_FALSE(ParseCompleteMultipartUpload("<CompleteMultipartUploadResult/>").ok());
  // moto's root element name.
  EXPECT_EQ(*ParseCompleteMultipartUpload(
                "<CompleteMultipartUploadResponse><ETag>\"e-2\"</ETag></CompleteMultipartUploadResponse>"),
            "e-2");
}

TEST(S3XmlTest, Times) {
  EXPECT_EQ(ParseS3Time("Wed, 12 Oct 2009 17:50:00 GMT"), 1255369800000);
  EXPECT_EQ(ParseS3Time("2009-10-12T17:50:00.5Z"), 1255369800500);
  EXPECT_EQ(ParseS3Time("garbage"), 0);
  EXPECT_EQ(StripQuotes("\"abc\""), "abc");
  EXPECT_EQ(StripQuotes("abc"), "abc");
}

}  // namespace
}  // namespace sluice::objstore::s3
