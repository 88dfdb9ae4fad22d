// Golden tests of S3 request building: exact method, URL and headers per operation, SSE rules as data,
// key encoding, addressing styles, payload hashes.
#include "objstore/s3/s3_request.h"

#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "aws/sigv4.h"
#include "common/crypto.h"

namespace sluice::objstore::s3 {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

constexpr char kKmsArn[] = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

S3RequestContext Context(Encryption::Mode mode = Encryption::Mode::kNone, std::string kms = "",
                         PayloadSigning signing = PayloadSigning::kSigned) {
  S3RequestContext ctx;
  ctx.bucket = "customer-bucket";
  ctx.endpoint = S3Endpoint{"http", "127.0.0.1:9000", true};
  ctx.encryption = Encryption{mode, std::move(kms)};
  ctx.payload_signing = signing;
  return ctx;
}

std::shared_ptr<const std::string> Body(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

std::map<std::string, std::string> SseOf(const S3Request& r) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : r.http.headers) {
    if (k.starts_with("x-amz-server-side-encryption")) out[k] = v;
  }
  return out;
}

// Every operation once, for the SSE table test.
std::vector<S3Request> AllOperations(const S3RequestContext& ctx) {
  std::vector<S3Request> all;
  all.push_back(BuildPutObject(ctx, "k", Body("x"), {}));
  all.push_back(BuildGetObject(ctx, "k"));
  all.push_back(BuildHeadObject(ctx, "k"));
  all.push_back(BuildListObjectsV2(ctx, "p", "", ""));
  all.push_back(BuildDeleteObject(ctx, "k"));
  all.push_back(BuildCreateMultipartUpload(ctx, "k", {}));
  all.push_back(BuildUploadPart(ctx, "k", "up1", 1, Body("x"), ""));
  all.push_back(BuildCompleteMultipartUpload(ctx, "k", "up1", {{1, "\"e1\"", ""}}));
  all.push_back(BuildAbortMultipartUpload(ctx, "k", "up1"));
  return all;
}

TEST(S3OperationTableTest, EveryOperationHasTraitsAndOnlyCreatorsCarrySse) {
  std::vector<std::string_view> with_sse;
  for (const auto& t : kS3Operations) {
    EXPECT_EQ(&Traits(t.op), &t);
    if (t.carries_sse) with_sse.push_back(t.name);
  }
  EXPECT_THAT(with_sse, ElementsAre("PutObject", "CreateMultipartUpload"));
  EXPECT_EQ(Traits(S3Operation::kListObjectsV2).iam_action, "s3:ListBucket");
  EXPECT_TRUE(Traits(S3Operation::kListObjectsV2).bucket_resource);
  EXPECT_EQ(Traits(S3Operation::kUploadPart).iam_action, "s3:PutObject");
  EXPECT_EQ(Traits(S3Operation::kAbortMultipartUpload).iam_action, "s3:AbortMultipartUpload");
}

TEST(S3RequestTest, SseKmsWithKeyOnlyOnPutAndCreate) {
  auto ctx = Context(Encryption::Mode::kKms, kKmsArn);
  const std::map<std::string, std::string> kms = {{"x-amz-server-side-encryption", "aws:kms"},
                                                  {"x-amz-server-side-encryption-aws-kms-key-id", kKmsArn}};
  for (const auto& r : AllOperations(ctx)) {
    SCOPED_TRACE(Traits(r.op).name);
    if (r.op == S3Operation::kPutObject || r.op == S3Operation::kCreateMultipartUpload) {
      EXPECT_EQ(SseOf(r), kms);
    } else {
      EXPECT_THAT(SseOf(r), IsEmpty());
    }
  }
}

TEST(S3RequestTest, SseKmsDefaultKeyAndAes256AndNone) {
  for (const auto& r : AllOperations(Context(Encryption::Mode::kKms))) {
    SCOPED_TRACE(Traits(r.op).name);
    if (Traits(r.op).carries_sse) {
      EXPECT_EQ(SseOf(r), (std::map<std::string, std::string>{{"x-amz-server-side-encryption", "aws:kms"}}));
    } else {
      EXPECT_THAT(SseOf(r), IsEmpty());
    }
  }
  for (const auto& r : AllOperations(Context(Encryption::Mode::kAes256))) {
    SCOPED_TRACE(Traits(r.op).name);
    if (Traits(r.op).carries_sse) {
      EXPECT_EQ(SseOf(r), (std::map<std::string, std::string>{{"x-amz-server-side-encryption", "AES256"}}));
    } else {
      EXPECT_THAT(SseOf(r), IsEmpty());
    }
  }
  for (const auto& r : AllOperations(Context())) EXPECT_THAT(SseOf(r), IsEmpty()) << Traits(r.op).name;
}

TEST(S3RequestTest, PutObjectExactRequest) {
  auto ctx = Context(Encryption::Mode::kKms, kKmsArn);
  auto r = BuildPutObject(ctx, "exports/2024/01/02/part one.json.gz", Body("hello"),
                          {.content_type = "application/x-ndjson", .content_encoding = "gzip"});
  EXPECT_EQ(r.http.method, "PUT");
  EXPECT_EQ(r.http.url, "http://127.0.0.1:9000/customer-bucket/exports/2024/01/02/part%20one.json.gz");
  EXPECT_THAT(r.http.headers,
              ElementsAre(Pair("Content-Type", "application/x-ndjson"), Pair("Content-Encoding", "gzip"),
                          Pair("x-amz-checksum-crc32c", Crc32cBase64("hello")),
                          Pair("x-amz-server-side-encryption", "aws:kms"),
                          Pair("x-amz-server-side-encryption-aws-kms-key-id", kKmsArn)));
  EXPECT_EQ(*r.http.body.data, "hello");
  EXPECT_EQ(r.http.body.length, 5u);
  EXPECT_EQ(r.payload_hash, HexEncode(AsStringView(Sha256("hello"))));
}

TEST(S3RequestTest, Crc32cIsBase64OfBigEndian) {
  // CRC32C("123456789") = 0xE3069283 (RFC 3720 check value).
  EXPECT_EQ(Crc32cBase64("123456789"), Base64Encode(std::string("\xE3\x06\x92\x83", 4)));
  EXPECT_EQ(Crc32cBase64(""), "AAAAAA==");
}

TEST(S3RequestTest, KeysAreEncodedOnceWithSlashesKept) {
  auto ctx = Context();
  EXPECT_EQ(BuildGetObject(ctx, "a b/c+d=e:f,g%h/ü.json").http.url,
            "http://127.0.0.1:9000/customer-bucket/a%20b/c%2Bd%3De%3Af%2Cg%25h/%C3%BC.json");
  EXPECT_EQ(BuildGetObject(ctx, "dir//x/./y/../z~_-.").http.url,
            "http://127.0.0.1:9000/customer-bucket/dir//x/./y/../z~_-.");
}

TEST(S3RequestTest, VirtualHostedAndPathStyle) {
  auto ctx = Context();
  ctx.endpoint = S3Endpoint{"https", "s3.eu-west-1.amazonaws.com", false};
  EXPECT_EQ(BuildHeadObject(ctx, "a/b c").http.url, "https://customer-bucket.s3.eu-west-1.amazonaws.com/a/b%20c");
  EXPECT_EQ(BuildListObjectsV2(ctx, "", "", "").http.url,
            "https://customer-bucket.s3.eu-west-1.amazonaws.com/?list-type=2&max-keys=1000");
  ctx.endpoint.path_style = true;
  EXPECT_EQ(BuildHeadObject(ctx, "a/b c").http.url, "https://s3.eu-west-1.amazonaws.com/customer-bucket/a/b%20c");
  EXPECT_EQ(BuildListObjectsV2(ctx, "", "", "").http.url,
            "https://s3.eu-west-1.amazonaws.com/customer-bucket?list-type=2&max-keys=1000");
}

TEST(S3RequestTest, GetRangesHeadDelete) {
  auto ctx = Context();
  EXPECT_THAT(BuildGetObject(ctx, "k").http.headers, IsEmpty());
  EXPECT_THAT(BuildGetObject(ctx, "k", 10, 5).http.headers, ElementsAre(Pair("Range", "bytes=10-14")));
  EXPECT_THAT(BuildGetObject(ctx, "k", 7).http.headers, ElementsAre(Pair("Range", "bytes=7-")));
  EXPECT_THAT(BuildGetObject(ctx, "k", 0, 1).http.headers, ElementsAre(Pair("Range", "bytes=0-0")));
  for (const auto& r : {BuildGetObject(ctx, "k"), BuildHeadObject(ctx, "k"), BuildDeleteObject(ctx, "k")}) {
    EXPECT_TRUE(r.http.body.empty());
    EXPECT_EQ(r.payload_hash, aws::kEmptyPayloadHash);
    EXPECT_EQ(r.http.url, "http://127.0.0.1:9000/customer-bucket/k");
  }
  EXPECT_EQ(BuildHeadObject(ctx, "k").http.method, "HEAD");
  EXPECT_EQ(BuildDeleteObject(ctx, "k").http.method, "DELETE");
}

TEST(S3RequestTest, ListObjectsV2QueryIsCanonicalAndEscaped) {
  auto ctx = Context();
  EXPECT_EQ(BuildListObjectsV2(ctx, "exports/2024 x/", "", "exports/2024 x/a", 500).http.url,
            "http://127.0.0.1:9000/customer-bucket?list-type=2&max-keys=500&prefix=exports%2F2024%20x%2F"
            "&start-after=exports%2F2024%20x%2Fa");
  // start-after only matters on the first page; the token carries the position afterwards.
  EXPECT_EQ(BuildListObjectsV2(ctx, "p", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=", "p/a").http.url,
            "http://127.0.0.1:9000/customer-bucket?continuation-token=1ueGcxLPRx1Tr%2FXYExHnhbYLgveDs2J%2Fwm36Hy4vbO"
            "wM%3D&list-type=2&max-keys=1000&prefix=p");
  auto r = BuildListObjectsV2(ctx, "p", "", "");
  EXPECT_EQ(aws::CanonicalQueryString(aws::SplitUrl(r.http.url).query), aws::SplitUrl(r.http.url).query);
}

TEST(S3RequestTest, MultipartRequests) {
  auto ctx = Context(Encryption::Mode::kAes256);
  auto create = BuildCreateMultipartUpload(ctx, "big obj", {.content_type = "application/x-ndjson"});
  EXPECT_EQ(create.http.method, "POST");
  EXPECT_EQ(create.http.url, "http://127.0.0.1:9000/customer-bucket/big%20obj?uploads");
  EXPECT_THAT(create.http.headers, ElementsAre(Pair("Content-Type", "application/x-ndjson"),
                                               Pair("x-amz-server-side-encryption", "AES256")));

  auto part = BuildUploadPart(ctx, "big obj", "VXBsb2FkIElE+/=", 7, Body("data"), "");
  EXPECT_EQ(part.http.method, "PUT");
  EXPECT_EQ(part.http.url, "http://127.0.0.1:9000/customer-bucket/big%20obj?partNumber=7&uploadId=VXBsb2FkIElE%2B%2F%3D");
  EXPECT_THAT(part.http.headers, IsEmpty());
  EXPECT_EQ(part.payload_hash, HexEncode(AsStringView(Sha256("data"))));

  auto complete = BuildCompleteMultipartUpload(ctx, "big obj", "up", {{1, "\"a\"", ""}, {2, "\"b&\"", ""}});
  EXPECT_EQ(complete.http.method, "POST");
  EXPECT_EQ(complete.http.url, "http://127.0.0.1:9000/customer-bucket/big%20obj?uploadId=up");
  EXPECT_THAT(complete.http.headers, ElementsAre(Pair("Content-Type", "application/xml")));
  EXPECT_EQ(*complete.http.body.data,
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            "<Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part>"
            "<Part><PartNumber>2</PartNumber><ETag>&quot;b&amp;&quot;</ETag></Part></CompleteMultipartUpload>");

  auto abort = BuildAbortMultipartUpload(ctx, "big obj", "up");
  EXPECT_EQ(abort.http.method, "DELETE");
  EXPECT_EQ(abort.http.url, "http://127.0.0.1:9000/customer-bucket/big%20obj?uploadId=up");
  EXPECT_THAT(abort.http.headers, IsEmpty());
}

TEST(S3RequestTest, UnsignedPayloadCarriesCrc32cPerPart) {
  auto ctx = Context(Encryption::Mode::kNone, "", PayloadSigning::kUnsignedWithCrc32c);
  auto create = BuildCreateMultipartUpload(ctx, "k", {.content_type = ""});
  EXPECT_THAT(create.http.headers, ElementsAre(Pair("x-amz-checksum-algorithm", "CRC32C")));
  auto part = BuildUploadPart(ctx, "k", "up", 1, Body("abc"), Crc32cBase64("abc"));
  EXPECT_EQ(part.payload_hash, aws::kUnsignedPayload);
  EXPECT_THAT(part.http.headers, ElementsAre(Pair("x-amz-checksum-crc32c", Crc32cBase64("abc"))));
  auto put = BuildPutObject(ctx, "k", Body("abc"), {.content_type = ""});
  EXPECT_EQ(put.payload_hash, aws::kUnsignedPayload);
  EXPECT_THAT(put.http.headers, ElementsAre(Pair("x-amz-checksum-crc32c", Crc32cBase64("abc"))));
  auto complete = BuildCompleteMultipartUpload(ctx, "k", "up", {{1, "\"e\"", "AAAAAA=="}});
  EXPECT_NE(complete.http.body.data->find("<ChecksumCRC32C>AAAAAA==</ChecksumCRC32C>"), std::string::npos);
  // Small XML bodies are always hashed.
  EXPECT_EQ(complete.payload_hash, HexEncode(AsStringView(Sha256(*complete.http.body.data))));
}

TEST(S3EndpointTest, Resolution) {
  auto no_env = [](const char*) -> const char* { return nullptr; };
  auto aws = ResolveEndpoint("bucket", "eu-central-1", "", Addressing::kAuto, no_env);
  ASSERT_TRUE(aws.ok());
  EXPECT_EQ(aws->scheme, "https");
  EXPECT_EQ(aws->authority, "s3.eu-central-1.amazonaws.com");
  EXPECT_FALSE(aws->path_style);
  EXPECT_TRUE(ResolveEndpoint("my.dotted.bucket", "us-east-1", "", Addressing::kAuto, no_env)->path_style);
  EXPECT_EQ(ResolveEndpoint("b", "cn-north-1", "", Addressing::kAuto, no_env)->authority,
            "s3.cn-north-1.amazonaws.com.cn");

  auto custom = ResolveEndpoint("bucket", "us-east-1", "http://127.0.0.1:5000/", Addressing::kAuto, no_env);
  ASSERT_TRUE(custom.ok());
  EXPECT_EQ(custom->scheme, "http");
  EXPECT_EQ(custom->authority, "127.0.0.1:5000");
  EXPECT_TRUE(custom->path_style);
  EXPECT_FALSE(
      ResolveEndpoint("bucket", "us-east-1", "http://minio:9000", Addressing::kVirtualHosted, no_env)->path_style);

  EXPECT_FALSE(ResolveEndpoint("b", "", "", Addressing::kAuto, no_env).ok());
  EXPECT_FALSE(ResolveEndpoint("b", "r", "ftp://x", Addressing::kAuto, no_env).ok());
  // The scheme is case-insensitive, as the endpoint allow-list treats it.
  auto upper = ResolveEndpoint("bucket", "us-east-1", "HTTP://127.0.0.1:5000", Addressing::kAuto, no_env);
  ASSERT_TRUE(upper.ok()) << upper.error().ToString();
  EXPECT_EQ(upper->scheme, "http");
  EXPECT_FALSE(ResolveEndpoint("b", "r", "localhost:9000", Addressing::kAuto, no_env).ok());
  EXPECT_FALSE(ResolveEndpoint("b", "r", "http://h/some/path", Addressing::kAuto, no_env).ok());
}

const char* FakeEnvS3(const char* name) {
  std::string_view n(name);
  if (n == "AWS_ENDPOINT_URL_S3") return "http://s3-specific:1";
  if (n == "AWS_ENDPOINT_URL") return "http://generic:2";
  return nullptr;
}
const char* FakeEnvGeneric(const char* name) {
  return std::string_view(name) == "AWS_ENDPOINT_URL" ? "http://generic:2" : nullptr;
}

TEST(S3EndpointTest, EnvironmentOnlyWhenNoEndpointConfigured) {
  EXPECT_EQ(ResolveEndpoint("b", "us-east-1", "", Addressing::kAuto, FakeEnvS3)->authority, "s3-specific:1");
  EXPECT_EQ(ResolveEndpoint("b", "us-east-1", "", Addressing::kAuto, FakeEnvGeneric)->authority, "generic:2");
  EXPECT_EQ(ResolveEndpoint("b", "us-east-1", "https://configured", Addressing::kAuto, FakeEnvS3)->authority,
            "configured");
  // The environment's endpoint is custom: path-style by default, and no region needed.
  EXPECT_TRUE(ResolveEndpoint("b", "", "", Addressing::kAuto, FakeEnvGeneric)->path_style);
}

}  // namespace
}  // namespace sluice::objstore::s3
