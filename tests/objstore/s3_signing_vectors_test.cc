// End to end request building + signing against vectors botocore produced (testdata/gen_s3_signing_vectors.py;
// CI only reads the JSON): the builders' exact URL and headers, then the S3 SigV4 Authorization with a session
// token, SSE-KMS headers sharing a prefix, "?uploads", partNumber&uploadId, UNSIGNED-PAYLOAD and escaped queries.
#include <fstream>
#include "support/test_paths.h"
#include <sstream>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "aws/sigv4.h"
#include "common/crypto.h"
#include "objstore/s3/s3_request.h"

namespace sluice::objstore::s3 {
namespace {

constexpr char kKms[] = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

boost::json::object LoadVectors() {
  std::ifstream in(std::string(sluice::testing::SourceDir()) + "/tests/objstore/testdata/s3_signing_vectors.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return boost::json::parse(ss.str()).as_object();
}

S3Request Build(std::string_view name) {
  S3RequestContext ctx;
  ctx.bucket = "customer-bucket";
  ctx.endpoint = S3Endpoint{"https", "s3.eu-west-1.amazonaws.com", false};
  auto body = [](std::string s) { return std::make_shared<const std::string>(std::move(s)); };
  if (name == "put-sse-kms") {
    ctx.endpoint.path_style = true;
    ctx.encryption = {Encryption::Mode::kKms, kKms};
    return BuildPutObject(ctx, "exports/2024/01/02/part one.json.gz", body("{\"event\":\"a\"}\n"),
                          {.content_type = "application/x-ndjson", .content_encoding = "gzip"});
  }
  if (name == "create-multipart-aes") {
    ctx.encryption = {Encryption::Mode::kAes256, ""};
    return BuildCreateMultipartUpload(ctx, "big obj", {.content_type = "application/x-ndjson"});
  }
  if (name == "upload-part-unsigned") {
    ctx.payload_signing = PayloadSigning::kUnsignedWithCrc32c;
    return BuildUploadPart(ctx, "big obj", "VXBsb2FkIElE+/=", 7, body("part data"), Crc32cBase64("part data"));
  }
  return BuildListObjectsV2(ctx, "exports/2024 x/", "", "exports/2024 x/a");
}

TEST(S3SigningVectorsTest, BuildersAndSignerMatchBotocore) {
  auto v = LoadVectors();
  aws::Credentials creds;
  creds.access_key_id = std::string(v.at("access_key_id").as_string());
  creds.secret_access_key = Secret(std::string(v.at("secret_access_key").as_string()));
  creds.session_token = Secret(std::string(v.at("session_token").as_string()));
  auto when = aws::ParseIso8601(std::string(v.at("time").as_string()));
  ASSERT_TRUE(when.ok());
  const auto& cases = v.at("cases").as_array();
  ASSERT_EQ(cases.size(), 4u);
  for (const auto& cv : cases) {
    const auto& c = cv.as_object();
    std::string name(c.at("name").as_string());
    SCOPED_TRACE(name);
    S3Request r = Build(name);
    EXPECT_EQ(Traits(r.op).name, c.at("operation").as_string());
    EXPECT_EQ(r.http.method, c.at("method").as_string());
    EXPECT_EQ(r.http.url, c.at("url").as_string());
    std::vector<std::pair<std::string, std::string>> want;
    for (const auto& h : c.at("headers").as_array()) {
      want.emplace_back(std::string(h.as_array()[0].as_string()), std::string(h.as_array()[1].as_string()));
    }
    EXPECT_EQ(r.http.headers, want);
    EXPECT_EQ(r.http.body.data ? *r.http.body.data : std::string(), c.at("body").as_string());
    EXPECT_EQ(r.payload_hash, c.at("payload_hash").as_string());

    aws::SigningOptions opts = aws::SigningOptions::S3("eu-west-1");
    opts.payload_hash = r.payload_hash;
    ASSERT_TRUE(aws::Sign(r.http, creds, opts, *when).ok());
    std::string auth;
    for (const auto& [k, val] : r.http.headers) {
      if (k == "Authorization" || k == "authorization") auth = val;
    }
    EXPECT_EQ(auth, c.at("authorization").as_string());
  }
}

}  // namespace
}  // namespace sluice::objstore::s3
