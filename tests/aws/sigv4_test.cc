// SigV4 against AWS's signing test suite (tests/testdata/aws-signing-test-suite, Apache-2.0): every case, every
// stage, header-signed and query-signed; plus the S3 flavour against AWS's published S3 examples.
#include "aws/sigv4.h"
#include "support/test_paths.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sluice::aws {
namespace {

namespace fs = std::filesystem;

const fs::path kSuiteDir = fs::path(sluice::testing::SourceDir()) / "tests/testdata/aws-signing-test-suite/v4";

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TimePoint At(std::string_view iso) {
  auto t = ParseIso8601(iso);
  EXPECT_TRUE(t.ok());
  return t.value_or(TimePoint{});
}

struct ParsedRequest {
  std::string method;
  std::string target;  // path + query as on the request line
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

/// Parses the suite's request.txt: request line, headers (continuation lines start with whitespace), blank
/// line, body. Paths may contain spaces ("GET /example space/ HTTP/1.1").
ParsedRequest ParseRequestFile(const std::string& text) {
  ParsedRequest r;
  size_t line_end = text.find('\n');
  std::string line = text.substr(0, line_end);
  r.method = line.substr(0, line.find(' '));
  size_t proto = line.rfind(" HTTP/");
  r.target = line.substr(r.method.size() + 1, proto - r.method.size() - 1);
  size_t pos = line_end + 1;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string h = text.substr(pos, end - pos);
    pos = end + 1;
    if (h.empty()) {
      r.body = pos < text.size() ? text.substr(pos) : "";
      break;
    }
    if (h[0] == ' ' || h[0] == '\t') {
      r.headers.back().second += "\n" + h;
      continue;
    }
    size_t colon = h.find(':');
    r.headers.emplace_back(h.substr(0, colon), h.substr(colon + 1));
  }
  return r;
}

struct SuiteCase {
  ParsedRequest request;
  Credentials credentials;
  SigningOptions options;
  TimePoint time;
  std::chrono::seconds expires{0};
};

SuiteCase LoadCase(const std::string& name) {
  SuiteCase c;
  c.request = ParseRequestFile(ReadFile(kSuiteDir / name / "request.txt"));
  auto ctx = boost::json::parse(ReadFile(kSuiteDir / name / "context.json")).as_object();
  const auto& creds = ctx.at("credentials").as_object();
  c.credentials.access_key_id = std::string(creds.at("access_key_id").as_string());
  c.credentials.secret_access_key = Secret(std::string(creds.at("secret_access_key").as_string()));
  if (creds.contains("token")) c.credentials.session_token = Secret(std::string(creds.at("token").as_string()));
  c.options = SigningOptions::Generic(std::string(ctx.at("region").as_string()),
                                      std::string(ctx.at("service").as_string()));
  c.options.normalize_path = ctx.at("normalize").as_bool();
  c.options.add_content_sha256_header = ctx.at("sign_body").as_bool();
  if (ctx.contains("omit_session_token")) c.options.omit_session_token = ctx.at("omit_session_token").as_bool();
  c.time = At(ctx.at("timestamp").as_string());
  c.expires = std::chrono::seconds(ctx.at("expiration_in_seconds").as_int64());
  return c;
}

http::OutboundRequest ToOutbound(const ParsedRequest& p) {
  http::OutboundRequest req;
  req.method = p.method;
  std::string host;
  for (const auto& [k, v] : p.headers) {
    if (k == "Host") host = v;
  }
  req.url = "https://" + host + p.target;
  req.headers = p.headers;
  if (!p.body.empty()) req.body = http::RequestBody::FromString(p.body);
  return req;
}

std::vector<std::string> SuiteCaseNames() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(kSuiteDir)) {
    if (entry.is_directory()) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(SigV4SuiteTest, HasAll38Cases) { EXPECT_EQ(SuiteCaseNames().size(), 38u); }

class SigV4SuiteCaseTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SigV4SuiteCaseTest, HeaderSignedCanonicalRequest) {
  SuiteCase c = LoadCase(GetParam());
  http::OutboundRequest req = ToOutbound(c.request);
  // Stage 1 on its own: the request plus the headers Sign adds before canonicalising.
  req.headers.emplace_back("X-Amz-Date", AmzDate(c.time));
  if (!c.credentials.session_token.empty() && !c.options.omit_session_token) {
    req.headers.emplace_back("X-Amz-Security-Token", c.credentials.session_token.Reveal());
  }
  std::string payload = HexEncode(Sha256(c.request.body));
  if (c.options.add_content_sha256_header) req.headers.emplace_back("x-amz-content-sha256", payload);
  CanonicalRequestResult cr = CanonicalRequest(req, payload, c.options);
  EXPECT_EQ(cr.text, ReadFile(kSuiteDir / GetParam() / "header-canonical-request.txt"));
}

TEST_P(SigV4SuiteCaseTest, HeaderSignedStringToSignAndSignature) {
  SuiteCase c = LoadCase(GetParam());
  std::string canonical = ReadFile(kSuiteDir / GetParam() / "header-canonical-request.txt");
  std::string sts = StringToSign(c.time, CredentialScope(c.time, c.options.region, c.options.service), canonical);
  EXPECT_EQ(sts, ReadFile(kSuiteDir / GetParam() / "header-string-to-sign.txt"));
  Sha256Digest key = SigningKey(c.credentials.secret_access_key, DateStamp(c.time), c.options.region,
                                c.options.service);
  EXPECT_EQ(Signature(key, sts), ReadFile(kSuiteDir / GetParam() / "header-signature.txt"));
}

TEST_P(SigV4SuiteCaseTest, HeaderSignedRequestEndToEnd) {
  SuiteCase c = LoadCase(GetParam());
  http::OutboundRequest req = ToOutbound(c.request);
  SigningStages stages;
  ASSERT_TRUE(Sign(req, c.credentials, c.options, c.time, &stages).ok());
  EXPECT_EQ(stages.canonical_request, ReadFile(kSuiteDir / GetParam() / "header-canonical-request.txt"));
  EXPECT_EQ(stages.string_to_sign, ReadFile(kSuiteDir / GetParam() / "header-string-to-sign.txt"));
  EXPECT_EQ(stages.signature, ReadFile(kSuiteDir / GetParam() / "header-signature.txt"));
  // The signed request carries exactly the suite's headers (order on the wire is irrelevant to the signature).
  ParsedRequest expected = ParseRequestFile(ReadFile(kSuiteDir / GetParam() / "header-signed-request.txt"));
  auto normalize = [](std::vector<std::pair<std::string, std::string>> headers) {
    for (auto& [k, v] : headers) {
      std::transform(k.begin(), k.end(), k.begin(), [](unsigned char ch) { return std::tolower(ch); });
    }
    std::stable_sort(headers.begin(), headers.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    return headers;
  };
  EXPECT_EQ(normalize(req.headers), normalize(expected.headers));
}

TEST_P(SigV4SuiteCaseTest, QuerySigned) {
  SuiteCase c = LoadCase(GetParam());
  http::OutboundRequest req = ToOutbound(c.request);
  SigningStages stages;
  auto url = Presign(req, c.credentials, c.options, c.time, c.expires, &stages);
  ASSERT_TRUE(url.ok()) << url.error().ToString();
  EXPECT_EQ(stages.canonical_request, ReadFile(kSuiteDir / GetParam() / "query-canonical-request.txt"));
  EXPECT_EQ(stages.string_to_sign, ReadFile(kSuiteDir / GetParam() / "query-string-to-sign.txt"));
  EXPECT_EQ(stages.signature, ReadFile(kSuiteDir / GetParam() / "query-signature.txt"));
  ParsedRequest expected = ParseRequestFile(ReadFile(kSuiteDir / GetParam() / "query-signed-request.txt"));
  std::string host;
  for (const auto& [k, v] : c.request.headers) {
    if (k == "Host") host = v;
  }
  EXPECT_EQ(*url, "https://" + host + expected.target);
}

INSTANTIATE_TEST_SUITE_P(AwsSuite, SigV4SuiteCaseTest, ::testing::ValuesIn(SuiteCaseNames()),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           std::string name = param_info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// --- Building blocks -------------------------------------------------------------------------------------

TEST(SigV4Test, UriEncode) {
  EXPECT_EQ(UriEncode("a b+c=d:e,f%g/ü~._-", true), "a%20b%2Bc%3Dd%3Ae%2Cf%25g%2F%C3%BC~._-");
  EXPECT_EQ(UriEncode("dir/sub dir/k", false), "dir/sub%20dir/k");
  EXPECT_EQ(UriDecode("a%20b%2Bc+%zz%4"), "a b+c+%zz%4");
}

TEST(SigV4Test, NormalizePath) {
  EXPECT_EQ(NormalizePath("/"), "/");
  EXPECT_EQ(NormalizePath("//"), "/");
  EXPECT_EQ(NormalizePath("/a/./b/../c/"), "/a/c/");
  EXPECT_EQ(NormalizePath("/a/b/.."), "/a/");
  EXPECT_EQ(NormalizePath("/../.."), "/");
}

TEST(SigV4Test, CanonicalQueryString) {
  EXPECT_EQ(CanonicalQueryString(""), "");
  EXPECT_EQ(CanonicalQueryString("uploads"), "uploads=");
  EXPECT_EQ(CanonicalQueryString("uploadId=abc%2Fd&partNumber=2"), "partNumber=2&uploadId=abc%2Fd");
  EXPECT_EQ(CanonicalQueryString("prefix=dir/&list-type=2"), "list-type=2&prefix=dir%2F");
  EXPECT_EQ(CanonicalQueryString("b=2&a=2&a=1"), "a=1&a=2&b=2");
}

TEST(SigV4Test, SplitUrl) {
  UrlParts p = SplitUrl("https://user:pw@b.s3.amazonaws.com:8443/k%20ey?uploads#frag");
  EXPECT_EQ(p.scheme, "https");
  EXPECT_EQ(p.authority, "b.s3.amazonaws.com:8443");
  EXPECT_EQ(p.path, "/k%20ey");
  EXPECT_EQ(p.query, "uploads");
}

TEST(SigV4Test, Iso8601) {
  EXPECT_EQ(FormatIso8601(At("2026-11-23T12:00:00.123456Z")), "2026-11-23T12:00:00Z");
  EXPECT_EQ(At("2026-11-23T12:00:00.123456Z") - At("2026-11-23T12:00:00Z"), std::chrono::microseconds(123456));
  EXPECT_EQ(At("2026-11-23T13:00:00+01:00"), At("2026-11-23T12:00:00Z"));
  EXPECT_FALSE(ParseIso8601("2026-13-01T00:00:00Z").ok());
  EXPECT_FALSE(ParseIso8601("yesterday").ok());
  EXPECT_EQ(AmzDate(At("2015-08-30T12:36:00Z")), "20150830T123600Z");
}

// --- S3 flavour: AWS's published examples (sig-v4-header-based-auth) -------------------------------------

Credentials ExampleS3Credentials() {
  Credentials c;
  c.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  c.secret_access_key = Secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
  return c;
}

std::string SignatureOf(const http::OutboundRequest& req) {
  std::string_view auth;
  for (const auto& [k, v] : req.headers) {
    if (k == "Authorization") auth = v;
  }
  return std::string(auth.substr(auth.find("Signature=") + 10));
}

TEST(SigV4S3Test, GetObjectWithRange) {
  http::OutboundRequest req{"GET", "https://examplebucket.s3.amazonaws.com/test.txt", {{"Range", "bytes=0-9"}}, {}};
  SigningStages stages;
  ASSERT_TRUE(Sign(req, ExampleS3Credentials(), SigningOptions::S3("us-east-1"), At("2013-05-24T00:00:00Z"),
                   &stages).ok());
  EXPECT_EQ(stages.canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(stages.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(SignatureOf(req), stages.signature);
}

TEST(SigV4S3Test, PutObjectWithDollarInKey) {
  http::OutboundRequest req{"PUT",
                            "https://examplebucket.s3.amazonaws.com/" + UriEncode("test$file.text", false),
                            {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                             {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
                            http::RequestBody::FromString("Welcome to Amazon S3.")};
  SigningStages stages;
  ASSERT_TRUE(Sign(req, ExampleS3Credentials(), SigningOptions::S3("us-east-1"), At("2013-05-24T00:00:00Z"),
                   &stages).ok());
  EXPECT_NE(stages.canonical_request.find("\n/test%24file.text\n"), std::string::npos);
  EXPECT_EQ(stages.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4S3Test, GetBucketLifecycle) {
  http::OutboundRequest req{"GET", "https://examplebucket.s3.amazonaws.com/?lifecycle", {}, {}};
  SigningStages stages;
  ASSERT_TRUE(Sign(req, ExampleS3Credentials(), SigningOptions::S3("us-east-1"), At("2013-05-24T00:00:00Z"),
                   &stages).ok());
  EXPECT_NE(stages.canonical_request.find("\n/\nlifecycle=\n"), std::string::npos);
  EXPECT_EQ(stages.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4S3Test, ListObjects) {
  http::OutboundRequest req{"GET", "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", {}, {}};
  SigningStages stages;
  ASSERT_TRUE(Sign(req, ExampleS3Credentials(), SigningOptions::S3("us-east-1"), At("2013-05-24T00:00:00Z"),
                   &stages).ok());
  EXPECT_EQ(stages.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4S3Test, S3FlavourDoesNotNormaliseOrDoubleEncode) {
  http::OutboundRequest req{"GET", "https://b.s3.amazonaws.com/a//./b/../c%20d", {}, {}};
  SigningStages stages;
  ASSERT_TRUE(Sign(req, ExampleS3Credentials(), SigningOptions::S3("us-east-1"), At("2013-05-24T00:00:00Z"),
                   &stages).ok());
  EXPECT_NE(stages.canonical_request.find("\n/a//./b/../c%20d\n"), std::string::npos);
  // The generic flavour normalises and encodes the '%' again.
  http::OutboundRequest generic{"GET", "https://b.s3.amazonaws.com/a//./b/../c%20d", {}, {}};
  ASSERT_TRUE(Sign(generic, ExampleS3Credentials(), SigningOptions::Generic("us-east-1", "s3"),
                   At("2013-05-24T00:00:00Z"), &stages).ok());
  EXPECT_NE(stages.canonical_request.find("\n/a/c%2520d\n"), std::string::npos);
}

TEST(SigV4S3Test, ResigningReplacesSigningHeaders) {
  http::OutboundRequest req{"GET", "https://b.s3.amazonaws.com/k", {}, {}};
  Credentials c = ExampleS3Credentials();
  c.session_token = Secret("tok");
  ASSERT_TRUE(Sign(req, c, SigningOptions::S3("us-east-1"), At("2013-05-24T00:00:00Z")).ok());
  ASSERT_TRUE(Sign(req, c, SigningOptions::S3("us-east-1"), At("2013-05-24T00:05:00Z")).ok());
  int auth = 0, date = 0, token = 0, host = 0;
  for (const auto& [k, v] : req.headers) {
    auth += k == "Authorization";
    date += k == "X-Amz-Date";
    token += k == "X-Amz-Security-Token";
    host += k == "Host";
    if (k == "X-Amz-Date") {
      EXPECT_EQ(v, "20130524T000500Z");
    }
  }
  EXPECT_EQ(auth, 1);
  EXPECT_EQ(date, 1);
  EXPECT_EQ(token, 1);
  EXPECT_EQ(host, 1);
}

TEST(SigV4S3Test, StreamedBodyNeedsPayloadHash) {
  http::OutboundRequest req{"PUT", "https://b.s3.amazonaws.com/k", {}, {}};
  req.body.length = 10;
  req.body.open = [] { return [](char*, size_t) -> Result<size_t> { return size_t{0}; }; };
  auto opts = SigningOptions::S3("us-east-1");
  EXPECT_EQ(Sign(req, ExampleS3Credentials(), opts, At("2013-05-24T00:00:00Z")).error().code,
            ErrorCode::kInvalidArgument);
  opts.payload_hash = std::string(kUnsignedPayload);
  ASSERT_TRUE(Sign(req, ExampleS3Credentials(), opts, At("2013-05-24T00:00:00Z")).ok());
  bool found = false;
  for (const auto& [k, v] : req.headers) found |= (k == "x-amz-content-sha256" && v == "UNSIGNED-PAYLOAD");
  EXPECT_TRUE(found);
}

TEST(SigV4Test, HostHeaderDropsDefaultPort) {
  http::OutboundRequest a{"GET", "https://sts.amazonaws.com:443/", {}, {}};
  http::OutboundRequest b{"GET", "http://127.0.0.1:5000/", {}, {}};
  ASSERT_TRUE(Sign(a, ExampleS3Credentials(), SigningOptions::Generic("us-east-1", "sts"), TimePoint{}).ok());
  ASSERT_TRUE(Sign(b, ExampleS3Credentials(), SigningOptions::Generic("us-east-1", "sts"), TimePoint{}).ok());
  EXPECT_EQ(a.headers.front(), (std::pair<std::string, std::string>{"Host", "sts.amazonaws.com"}));
  EXPECT_EQ(b.headers.front(), (std::pair<std::string, std::string>{"Host", "127.0.0.1:5000"}));
}

}  // namespace
}  // namespace sluice::aws
