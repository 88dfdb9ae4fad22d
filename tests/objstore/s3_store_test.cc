// S3ObjectStore over a scripted in-process transport: exact requests on the wire (after signing), pagination,
// multipart flow, 200-with-error, part failure handling and bounded parts in flight.
#include "objstore/s3/s3_object_store.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "aws/providers.h"
#include "aws/sigv4.h"
#include "common/crypto.h"

namespace sluice::objstore::s3 {
namespace {

using Handler = std::function<http::OutboundResponse(const http::OutboundRequest&)>;

class ScriptedTransport final : public http::HttpTransport {
 public:
  explicit ScriptedTransport(Handler handler) : handler_(std::move(handler)) {}
  Result<http::OutboundResponse> Send(const http::OutboundRequest& request,
                                      std::chrono::steady_clock::time_point) override {
    {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
    }
    return handler_(request);
  }
  Result<http::OutboundResponse> SendStreaming(const http::OutboundRequest& request,
                                               std::chrono::steady_clock::time_point deadline,
                                               const std::function<bool(std::string_view)>& sink) override {
    SLUICE_ASSIGN_OR_RETURN(auto resp, Send(request, deadline));
    if (resp.status / 100 == 2) {
      sink(resp.body);
      resp.body.clear();
    }
    return resp;
  }
  std::vector<http::OutboundRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  Handler handler_;
  mutable std::mutex mu_;
  std::vector<http::OutboundRequest> requests_;
};

http::OutboundResponse Response(int status, std::string body = "",
                                std::vector<std::pair<std::string, std::string>> headers = {}) {
  http::OutboundResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

std::string HeaderOf(const http::OutboundRequest& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    std::string lower = k;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == name) return v;
  }
  return "<absent>";
}

bool Contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

S3StoreOptions Options() {
  S3StoreOptions o;
  o.bucket = "bkt";
  o.region = "eu-west-1";
  o.endpoint = "http://s3.test:9000";
  o.part_size = 5 * kMiB;
  o.retry.max_attempts = 3;
  o.retry.base_delay = std::chrono::milliseconds(1);
  o.retry.throttled_base_delay = std::chrono::milliseconds(1);
  return o;
}

std::shared_ptr<aws::CredentialsProvider> Creds() {
  aws::Credentials c;
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = Secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
  c.session_token = Secret("session-token-value");
  return std::make_shared<aws::StaticCredentialsProvider>(c);
}

// A minimal S3: multipart endpoints and PUT/HEAD; `part_hook` runs inside UploadPart.
struct FakeS3 {
  std::function<http::OutboundResponse(int part)> part_hook;
  std::function<http::OutboundResponse()> complete_hook;
  std::function<http::OutboundResponse()> abort_hook;

  http::OutboundResponse operator()(const http::OutboundRequest& r) const {
    if (r.method == "POST" && r.url.ends_with("?uploads")) {
      return Response(200, "<InitiateMultipartUploadResult><UploadId>UP1</UploadId></InitiateMultipartUploadResult>");
    }
    if (r.method == "PUT" && Contains(r.url, "partNumber=")) {
      int part = std::atoi(r.url.c_str() + r.url.find("partNumber=") + 11);
      if (part_hook) {
        auto resp = part_hook(part);
        if (resp.status != 200) return resp;
      }
      return Response(200, "", {{"etag", fmt::format("\"etag{}\"", part)}});
    }
    if (r.method == "POST" && Contains(r.url, "?uploadId=")) {
      if (complete_hook) return complete_hook();
      return Response(200, "<CompleteMultipartUploadResult><ETag>\"final-3\"</ETag></CompleteMultipartUploadResult>");
    }
    if (r.method == "DELETE" && Contains(r.url, "?uploadId=")) {
      if (abort_hook) return abort_hook();
      return Response(204);
    }
    if (r.method == "PUT") return Response(200, "", {{"etag", "\"single\""}});
    return Response(404, "<Error><Code>NoSuchKey</Code><Message>nope</Message></Error>");
  }
};

TEST(S3StoreTest, SignedRequestsCarrySseOnlyOnCreators) {
  auto transport = std::make_shared<ScriptedTransport>(FakeS3{});
  auto opts = Options();
  opts.encryption = {Encryption::Mode::kKms, "arn:aws:kms:eu-west-1:111122223333:key/k1"};
  auto store = S3ObjectStore::Create(opts, Creds(), transport);
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  ASSERT_TRUE((*store)->Put("small.json", "{}").ok());
  auto w = (*store)->NewWriter("big.bin");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write(std::string(6 * kMiB, 'x')).ok());
  ASSERT_TRUE((*w)->Complete().ok());
  (void)(*store)->Head("small.json");
  (void)(*store)->Get("small.json");
  (void)(*store)->Delete("small.json");

  auto reqs = transport->requests();
  ASSERT_EQ(reqs.size(), 8u);  // PUT, Create, 2 parts, Complete, HEAD, GET, DELETE
  for (const auto& r : reqs) {
    SCOPED_TRACE(r.method + " " + r.url);
    bool creator = (r.method == "PUT" && !Contains(r.url, "partNumber")) || r.url.ends_with("?uploads");
    EXPECT_EQ(HeaderOf(r, "x-amz-server-side-encryption"), creator ? "aws:kms" : "<absent>");
    EXPECT_EQ(HeaderOf(r, "x-amz-server-side-encryption-aws-kms-key-id"),
              creator ? "arn:aws:kms:eu-west-1:111122223333:key/k1" : "<absent>");
    EXPECT_TRUE(HeaderOf(r, "authorization").starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
    EXPECT_TRUE(Contains(HeaderOf(r, "authorization"), "/eu-west-1/s3/aws4_request"));
    EXPECT_EQ(HeaderOf(r, "x-amz-security-token"), "session-token-value");
    EXPECT_NE(HeaderOf(r, "x-amz-content-sha256"), "<absent>");
    EXPECT_NE(HeaderOf(r, "x-amz-content-sha256"), aws::kUnsignedPayload);
    EXPECT_TRUE(r.url.starts_with("http://s3.test:9000/bkt/"));
  }
  // Signed payloads: the part's hash is its SHA-256. Parts go up concurrently, so find part 1 by its query
  // rather than by its position in the request log.
  auto part1 = std::find_if(reqs.begin(), reqs.end(),
                            [](const auto& r) { return Contains(r.url, "partNumber=1&"); });
  ASSERT_NE(part1, reqs.end());
  EXPECT_EQ(HeaderOf(*part1, "x-amz-content-sha256"), HexEncode(AsStringView(Sha256(std::string(5 * kMiB, 'x')))));
  EXPECT_EQ(HeaderOf(*part1, "x-amz-checksum-crc32c"), "<absent>");
}

TEST(S3StoreTest, WriterHashesWhatItSends) {
  // moto does not check bodies against x-amz-content-sha256, so the writer's incremental hashes are checked here.
  auto transport = std::make_shared<ScriptedTransport>(FakeS3{});
  auto store = S3ObjectStore::Create(Options(), Creds(), transport);
  ASSERT_TRUE(store.ok());
  auto small = (*store)->NewWriter("small");
  for (int i = 0; i < 100; ++i) ASSERT_TRUE((*small)->Write(std::string(3000, static_cast<char>('a' + i % 26))).ok());
  ASSERT_TRUE((*small)->Complete().ok());
  auto big = (*store)->NewWriter("big");
  for (int i = 0; i < 13; ++i) ASSERT_TRUE((*big)->Write(std::string(777'777, static_cast<char>('k' + i))).ok());
  ASSERT_TRUE((*big)->Complete().ok());
  int with_body = 0;
  for (const auto& r : transport->requests()) {
    if (!r.body.data) continue;
    ++with_body;
    EXPECT_EQ(HeaderOf(r, "x-amz-content-sha256"), HexEncode(AsStringView(Sha256(*r.body.data)))) << r.url;
  }
  EXPECT_EQ(with_body, 1 + 2 + 1);  // small PUT, two parts of the 9.9 MB object, Complete XML
}

TEST(S3StoreTest, UnsignedPayloadSendsCrc32cPerPartAndInComplete) {
  auto transport = std::make_shared<ScriptedTransport>(FakeS3{});
  auto opts = Options();
  opts.payload_signing = PayloadSigning::kUnsignedWithCrc32c;
  auto store = S3ObjectStore::Create(opts, Creds(), transport);
  ASSERT_TRUE(store.ok());
  auto w = (*store)->NewWriter("big.bin");
  std::string data(12 * kMiB, 'y');
  ASSERT_TRUE((*w)->Write(data).ok());
  auto info = (*w)->Complete();
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->size, 12 * kMiB);
  EXPECT_EQ(info->etag, "final-3");
  auto reqs = transport->requests();
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_EQ(HeaderOf(reqs[0], "x-amz-checksum-algorithm"), "CRC32C");
  std::vector<size_t> sizes;
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(HeaderOf(reqs[i], "x-amz-content-sha256"), aws::kUnsignedPayload);
    EXPECT_EQ(HeaderOf(reqs[i], "x-amz-checksum-crc32c"), Crc32cBase64(*reqs[i].body.data));
    sizes.push_back(reqs[i].body.data->size());
  }
  std::sort(sizes.begin(), sizes.end());
  EXPECT_EQ(sizes, (std::vector<size_t>{2 * kMiB, 5 * kMiB, 5 * kMiB}));
  const std::string& xml = *reqs[4].body.data;
  EXPECT_TRUE(Contains(xml, "<Part><PartNumber>1</PartNumber><ETag>&quot;etag1&quot;</ETag><ChecksumCRC32C>"));
  EXPECT_LT(xml.find("<PartNumber>1<"), xml.find("<PartNumber>2<"));
  EXPECT_LT(xml.find("<PartNumber>2<"), xml.find("<PartNumber>3<"));
}

TEST(S3StoreTest, CompleteTwoHundredWithErrorIsRetriedThenReported) {
  std::atomic<int> completes{0};
  FakeS3 s3;
  s3.complete_hook = [&] {
    ++completes;
    if (completes == 1) {
      return Response(200, "<Error><Code>InternalError</Code><Message>try again</Message></Error>");
    }
    return Response(200, "<CompleteMultipartUploadResult><ETag>\"ok-2\"</ETag></CompleteMultipartUploadResult>");
  };
  auto transport = std::make_shared<ScriptedTransport>(s3);
  auto store = S3ObjectStore::Create(Options(), Creds(), transport);
  auto w = (*store)->NewWriter("k");
  ASSERT_TRUE((*w)->Write(std::string(6 * kMiB, 'z')).ok());
  auto info = (*w)->Complete();
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->etag, "ok-2");
  EXPECT_EQ(completes.load(), 2);

  FakeS3 bad;
  bad.complete_hook = [] {
    return Response(200, "<Error><Code>InvalidPart</Code><Message>One or more parts not found</Message></Error>");
  };
  auto transport2 = std::make_shared<ScriptedTransport>(bad);
  auto store2 = S3ObjectStore::Create(Options(), Creds(), transport2);
  auto w2 = (*store2)->NewWriter("k");
  ASSERT_TRUE((*w2)->Write(std::string(6 * kMiB, 'z')).ok());
  auto failed = (*w2)->Complete();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ErrorCode::kInvalidArgument) << failed.error().ToString();
  EXPECT_EQ(failed.error().provider_code, "InvalidPart");
}

TEST(S3StoreTest, PartFailureNeverCompletesAndDeniedAbortIsTolerated) {
  FakeS3 s3;
  s3.part_hook = [](int part) {
    return part == 2 ? Response(403, "<Error><Code>AccessDenied</Code><Message>denied</Message></Error>")
                     : Response(200);
  };
  std::atomic<int> aborts{0};
  s3.abort_hook = [&] {
    ++aborts;
    return Response(403, "<Error><Code>AccessDenied</Code><Message>no s3:AbortMultipartUpload</Message></Error>");
  };
  auto transport = std::make_shared<ScriptedTransport>(s3);
  auto store = S3ObjectStore::Create(Options(), Creds(), transport);
  auto w = (*store)->NewWriter("k");
  Status st;
  for (int i = 0; i < 30 && st.ok(); ++i) st = (*w)->Write(std::string(1 * kMiB, 'a'));
  Result<ObjectInfo> done = st.ok() ? (*w)->Complete() : Result<ObjectInfo>(st.error());
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().code, ErrorCode::kAccessDenied);
  EXPECT_TRUE(Contains(done.error().message, "part 2")) << done.error().message;
  EXPECT_EQ(aborts.load(), 1);
  EXPECT_FALSE((*w)->Write("more").ok());
  EXPECT_FALSE((*w)->Complete().ok());
  for (const auto& r : transport->requests()) {
    EXPECT_FALSE(r.method == "POST" && Contains(r.url, "?uploadId=")) << "Complete sent after a part failure";
  }
}

TEST(S3StoreTest, PartsInFlightAreBounded) {
  std::mutex mu;
  std::condition_variable cv;
  int active = 0;
  int max_active = 0;
  FakeS3 s3;
  s3.part_hook = [&](int) {
    std::unique_lock lock(mu);
    ++active;
    max_active = std::max(max_active, active);
    cv.notify_all();
    // Hold each part until a second one is uploading too (or a generous timeout), so the bound is reached and
    // any excess concurrency would show as a third.
    cv.wait_for(lock, std::chrono::seconds(2), [&] { return active >= 2; });
    --active;
    return Response(200);
  };
  auto transport = std::make_shared<ScriptedTransport>(s3);
  auto opts = Options();
  opts.max_parts_in_flight = 2;
  opts.upload_threads = 4;
  auto store = S3ObjectStore::Create(opts, Creds(), transport);
  auto w = (*store)->NewWriter("k");
  for (int i = 0; i < 8; ++i) ASSERT_TRUE((*w)->Write(std::string(5 * kMiB, 'b')).ok());
  ASSERT_TRUE((*w)->Write("tail").ok());
  ASSERT_TRUE((*w)->Complete().ok());
  EXPECT_EQ(max_active, 2);
}

TEST(S3StoreTest, ListFollowsContinuationTokensAndStripsThePrefix) {
  auto transport = std::make_shared<ScriptedTransport>([](const http::OutboundRequest& r) {
    if (!Contains(r.url, "continuation-token=")) {
      return Response(200,
                      "<ListBucketResult><IsTruncated>true</IsTruncated>"
                      "<Contents><Key>root/a/1</Key><Size>1</Size></Contents>"
                      "<Contents><Key>root/a/2</Key><Size>2</Size></Contents>"
                      "<NextContinuationToken>tok/1=</NextContinuationToken></ListBucketResult>");
    }
    return Response(200,
                    "<ListBucketResult><IsTruncated>false</IsTruncated>"
                    "<Contents><Key>root/a/3</Key><Size>3</Size></Contents></ListBucketResult>");
  });
  auto opts = Options();
  opts.prefix = "root/";
  auto store = S3ObjectStore::Create(opts, Creds(), transport);
  std::vector<std::string> keys;
  ASSERT_TRUE((*store)->ListEach("a/", "a/0", [&](const ObjectInfo& o) {
                       keys.push_back(o.key);
                       return true;
                     })
                  .ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"a/1", "a/2", "a/3"}));
  auto reqs = transport->requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].url, "http://s3.test:9000/bkt?list-type=2&max-keys=1000&prefix=root%2Fa%2F&start-after=root%2Fa%2F0");
  EXPECT_EQ(reqs[1].url, "http://s3.test:9000/bkt?continuation-token=tok%2F1%3D&list-type=2&max-keys=1000&prefix=root%2Fa%2F");
}

TEST(S3StoreTest, RepeatedContinuationTokenStops) {
  auto transport = std::make_shared<ScriptedTransport>([](const http::OutboundRequest&) {
    return Response(200, "<ListBucketResult><IsTruncated>true</IsTruncated>"
                         "<NextContinuationToken>same</NextContinuationToken></ListBucketResult>");
  });
  auto store = S3ObjectStore::Create(Options(), Creds(), transport);
  auto list = (*store)->List("");
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(transport->requests().size(), 2u);
}

TEST(S3StoreTest, InvalidOptionsAreRejected) {
  auto opts = Options();
  opts.part_size = 4 * kMiB;
  EXPECT_EQ(S3ObjectStore::Create(opts, Creds()).error().code, ErrorCode::kInvalidArgument);
  opts = Options();
  opts.bucket = "";
  EXPECT_FALSE(S3ObjectStore::Create(opts, Creds()).ok());
  opts = Options();
  opts.encryption = {Encryption::Mode::kAes256, "key"};
  EXPECT_FALSE(S3ObjectStore::Create(opts, Creds()).ok());
  EXPECT_FALSE(S3ObjectStore::Create(Options(), nullptr).ok());
}

}  // namespace
}  // namespace sluice::objstore::s3
