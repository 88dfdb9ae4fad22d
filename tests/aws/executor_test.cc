// The retry layer: schedule (full jitter bounds, cap, max attempts, deadline), re-signing per attempt,
// ExpiredToken invalidate + retry once, 200-with-error, streaming, secrets kept out of errors.
#include "aws/executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <set>
#include <sstream>

#include "fake_transport.h"

namespace sluice::aws {
namespace {

using namespace std::chrono_literals;
using testing::FakeTransport;
using testing::HeaderOf;
using testing::MakeResponse;
using testing::S3ErrorXml;

class CountingProvider : public CredentialsProvider {
 public:
  Result<Credentials> Get() override {
    gets++;
    Credentials c;
    c.access_key_id = "AKIDGEN" + std::to_string(generation.load());
    c.secret_access_key = Secret("very-secret-key");
    c.session_token = Secret("session-token-" + std::to_string(generation.load()));
    return c;
  }
  void Invalidate() override {
    invalidations++;
    generation++;
  }
  std::string Name() const override { return "counting"; }
  std::atomic<int> gets{0};
  std::atomic<int> invalidations{0};
  std::atomic<int> generation{1};
};

struct Harness {
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  std::shared_ptr<CountingProvider> provider = std::make_shared<CountingProvider>();
  FakeClock clock{TimePoint(std::chrono::seconds(1'700'000'000))};
  std::vector<std::chrono::milliseconds> sleeps;
  std::chrono::steady_clock::time_point steady{std::chrono::steady_clock::time_point() + 1000h};
  double draw = 0.999;

  Executor Make(RetryPolicy policy = {}) {
    Executor::Options o;
    o.transport = transport;
    o.credentials = provider;
    o.signing = SigningOptions::S3("us-east-1");
    o.retry = policy;
    o.clock = &clock;
    o.sleep = [this](std::chrono::milliseconds d) {
      sleeps.push_back(d);
      steady += d;
      clock.Advance(d);  // wall time moves too, so each attempt is signed at a later time
    };
    o.random = [this] { return draw; };
    o.steady_now = [this] { return steady; };
    return Executor(std::move(o));
  }
};

RequestFactory PutFactory(int* builds = nullptr) {
  return [builds]() -> Result<http::OutboundRequest> {
    if (builds) ++*builds;
    return http::OutboundRequest{"PUT", "https://bucket.s3.us-east-1.amazonaws.com/key", {},
                                 http::RequestBody::FromString("payload")};
  };
}

TEST(BackoffTest, FullJitterBoundsAndCap) {
  RetryPolicy p;
  p.base_delay = 100ms;
  p.throttled_base_delay = 500ms;
  p.max_delay = 2000ms;
  EXPECT_EQ(BackoffCeiling(p, 0, ErrorCode::kTransient), 100ms);
  EXPECT_EQ(BackoffCeiling(p, 1, ErrorCode::kTransient), 200ms);
  EXPECT_EQ(BackoffCeiling(p, 4, ErrorCode::kTransient), 1600ms);
  EXPECT_EQ(BackoffCeiling(p, 5, ErrorCode::kTransient), 2000ms);   // capped
  EXPECT_EQ(BackoffCeiling(p, 500, ErrorCode::kTransient), 2000ms); // no overflow
  EXPECT_EQ(BackoffCeiling(p, 0, ErrorCode::kThrottled), 500ms);
  EXPECT_EQ(BackoffCeiling(p, 2, ErrorCode::kThrottled), 2000ms);
  // Full jitter: anywhere from 0 up to the ceiling.
  EXPECT_EQ(BackoffDelay(p, 3, ErrorCode::kTransient, 0.0), 0ms);
  EXPECT_EQ(BackoffDelay(p, 3, ErrorCode::kTransient, 0.5), 400ms);
  EXPECT_EQ(BackoffDelay(p, 3, ErrorCode::kTransient, 0.9999), 799ms);
  std::mt19937_64 rng(42);
  for (int retry = 0; retry < 12; ++retry) {
    for (int i = 0; i < 200; ++i) {
      auto d = BackoffDelay(p, retry, ErrorCode::kTransient, std::uniform_real_distribution<double>(0, 1)(rng));
      EXPECT_GE(d, 0ms);
      EXPECT_LE(d, BackoffCeiling(p, retry, ErrorCode::kTransient));
    }
  }
}

TEST(ExecutorTest, SuccessFirstTimeSignsWithSessionToken) {
  Harness h;
  h.transport->Push(MakeResponse(200, "", {{"etag", "\"e\""}}));
  auto r = h.Make().Call(PutFactory(), {.operation = "PutObject"});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->Header("etag"), "\"e\"");
  auto sent = h.transport->requests().at(0);
  EXPECT_NE(HeaderOf(sent, "authorization").find("Credential=AKIDGEN1/"), std::string::npos);
  EXPECT_EQ(HeaderOf(sent, "x-amz-security-token"), "session-token-1");
  EXPECT_EQ(HeaderOf(sent, "x-amz-content-sha256"), HexEncode(Sha256("payload")));
  EXPECT_TRUE(h.sleeps.empty());
}

TEST(ExecutorTest, RetriesTransientAndThrottledThenSucceedsResigningEachAttempt) {
  Harness h;
  h.transport->Push(MakeResponse(500, S3ErrorXml("InternalError")));
  h.transport->Push(MakeResponse(503, S3ErrorXml("SlowDown", "Please reduce your request rate.")));
  h.transport->Push(Error(ErrorCode::kTransient, "PUT bucket: connection failed during the transfer"));
  h.transport->Push(MakeResponse(200));
  int builds = 0;
  RetryPolicy p;
  p.base_delay = 100ms;
  p.throttled_base_delay = 1000ms;
  auto r = h.Make(p).Call(PutFactory(&builds), {.operation = "PutObject"});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(builds, 4);  // request rebuilt per attempt
  ASSERT_EQ(h.sleeps.size(), 3u);
  EXPECT_EQ(h.sleeps[0], 99ms);    // transient, retry 0: ceiling 100
  EXPECT_EQ(h.sleeps[1], 1998ms);  // throttled, retry 1: ceiling 2000
  EXPECT_EQ(h.sleeps[2], 399ms);   // transient, retry 2: ceiling 400
  auto sent = h.transport->requests();
  // Re-signed with the then-current time every attempt.
  TimePoint t = TimePoint(std::chrono::seconds(1'700'000'000));
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(HeaderOf(sent[i], "x-amz-date"), AmzDate(t));
    if (i < h.sleeps.size()) t += h.sleeps[i];
    int auth = 0;
    for (const auto& [k, v] : sent[i].headers) auth += (k == "Authorization");
    EXPECT_EQ(auth, 1);
  }
  EXPECT_NE(HeaderOf(sent[0], "authorization"), HeaderOf(sent[3], "authorization"));
}

TEST(ExecutorTest, StopsAtMaxAttempts) {
  Harness h;
  h.transport->SetHandler([](const http::OutboundRequest&) -> Result<http::OutboundResponse> {
    return MakeResponse(503, S3ErrorXml("SlowDown"));
  });
  RetryPolicy p;
  p.max_attempts = 4;
  auto r = h.Make(p).Call(PutFactory(), {.operation = "PutObject"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(h.transport->count(), 4u);
  EXPECT_EQ(h.sleeps.size(), 3u);
  EXPECT_EQ(r.error().code, ErrorCode::kThrottled);
  EXPECT_EQ(r.error().provider_code, "SlowDown");
  EXPECT_EQ(r.error().request_id, "REQ123");
  EXPECT_EQ(r.error().http_status, 503);
  EXPECT_NE(r.error().message.find("gave up after 4 attempts"), std::string::npos);
  EXPECT_NE(r.error().message.find("PutObject bucket.s3.us-east-1.amazonaws.com"), std::string::npos);
}

TEST(ExecutorTest, StopsAtOverallDeadline) {
  Harness h;
  h.transport->SetHandler([](const http::OutboundRequest&) -> Result<http::OutboundResponse> {
    return MakeResponse(500, S3ErrorXml("InternalError"));
  });
  RetryPolicy p;
  p.max_attempts = 100;
  p.base_delay = 1000ms;
  p.max_delay = 1000ms;
  p.total_timeout = 3500ms;
  auto r = h.Make(p).Call(PutFactory(), {.operation = "PutObject"});
  ASSERT_FALSE(r.ok());
  // Sleeps of 999 ms each: 3 fit before 3.5 s, the 4th would cross the deadline.
  EXPECT_EQ(h.sleeps.size(), 3u);
  EXPECT_EQ(h.transport->count(), 4u);
  EXPECT_NE(r.error().message.find("retry deadline"), std::string::npos);
}

TEST(ExecutorTest, DoesNotRetryPermanentClasses) {
  for (const char* code : {"AccessDenied", "NoSuchKey", "InvalidArgument", "SignatureDoesNotMatch"}) {
    Harness h;
    h.transport->SetHandler([code](const http::OutboundRequest&) -> Result<http::OutboundResponse> {
      return MakeResponse(std::string_view(code) == "NoSuchKey" ? 404 : 403, S3ErrorXml(code));
    });
    auto r = h.Make().Call(PutFactory(), {.operation = "GetObject"});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(h.transport->count(), 1u) << code;
    EXPECT_TRUE(h.sleeps.empty());
  }
}

TEST(ExecutorTest, ExpiredTokenInvalidatesAndRetriesOnceWithNewCredentials) {
  Harness h;
  h.transport->Push(MakeResponse(400, S3ErrorXml("ExpiredToken", "The provided token has expired.")));
  h.transport->Push(MakeResponse(200));
  auto r = h.Make().Call(PutFactory(), {.operation = "PutObject"});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(h.provider->invalidations.load(), 1);
  auto sent = h.transport->requests();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(HeaderOf(sent[0], "x-amz-security-token"), "session-token-1");
  EXPECT_EQ(HeaderOf(sent[1], "x-amz-security-token"), "session-token-2");
  EXPECT_TRUE(h.sleeps.empty());  // no backoff for a refresh

  // A second ExpiredToken in the same call is returned, not looped on.
  Harness h2;
  h2.transport->SetHandler([](const http::OutboundRequest&) -> Result<http::OutboundResponse> {
    return MakeResponse(400, S3ErrorXml("ExpiredToken"));
  });
  auto r2 = h2.Make().Call(PutFactory(), {.operation = "PutObject"});
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code, ErrorCode::kExpiredToken);
  EXPECT_EQ(h2.provider->invalidations.load(), 1);
  EXPECT_EQ(h2.transport->count(), 2u);
}

TEST(ExecutorTest, ErrorIn200BodyForCompleteMultipartUpload) {
  Harness h;
  h.transport->Push(MakeResponse(200, "  \n" + S3ErrorXml("InternalError", "We encountered an internal error.")));
  h.transport->Push(MakeResponse(200, "<CompleteMultipartUploadResult><ETag>\"x-2\"</ETag>"
                                      "</CompleteMultipartUploadResult>"));
  auto r = h.Make().Call(PutFactory(), {.operation = "CompleteMultipartUpload", .error_in_200_body = true});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(h.transport->count(), 2u);

  Harness h2;
  h2.transport->Push(MakeResponse(200, S3ErrorXml("InvalidPart", "One or more of the specified parts could not be found")));
  auto r2 = h2.Make().Call(PutFactory(), {.operation = "CompleteMultipartUpload", .error_in_200_body = true});
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r2.error().provider_code, "InvalidPart");
  EXPECT_EQ(r2.error().http_status, 200);

  // Without the flag a 200 is a 200.
  Harness h3;
  h3.transport->Push(MakeResponse(200, S3ErrorXml("InternalError")));
  EXPECT_TRUE(h3.Make().Call(PutFactory(), {.operation = "PutObject"}).ok());
}

TEST(ExecutorTest, CheckResponseHook) {
  Harness h;
  h.transport->Push(MakeResponse(200, "truncated"));
  h.transport->Push(MakeResponse(200, "<ok/>"));
  CallOptions call;
  call.operation = "ListObjectsV2";
  call.check_response = [](const http::OutboundResponse& r) -> std::optional<Error> {
    if (r.body != "<ok/>") return Error(ErrorCode::kTransient, "truncated listing");
    return std::nullopt;
  };
  auto r = h.Make().Call(PutFactory(), call);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(h.transport->count(), 2u);
}

TEST(ExecutorTest, StreamingSinkAndNoRetryAfterDelivery) {
  Harness h;
  h.transport->Push(MakeResponse(503, S3ErrorXml("SlowDown")));
  h.transport->Push(MakeResponse(200, "0123456789"));
  std::string got;
  CallOptions call;
  call.operation = "GetObject";
  call.sink = [&](std::string_view chunk) {
    got += chunk;
    return true;
  };
  auto r = h.Make().Call(PutFactory(), call);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(got, "0123456789");
  EXPECT_TRUE(r->body.empty());
}

TEST(ExecutorTest, ClockSkewLearnsServerTimeAndRetries) {
  Harness h;
  // Our clock is 1 hour behind the server's.
  TimePoint server_now = h.clock.Now() + 1h;
  std::time_t tt = std::chrono::system_clock::to_time_t(server_now);
  char date[64];
  std::tm tm{};
  gmtime_r(&tt, &tm);
  std::strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  h.transport->Push(MakeResponse(403, S3ErrorXml("RequestTimeTooSkewed"), {{"date", date}}));
  h.transport->Push(MakeResponse(200));
  Executor ex = h.Make();
  auto r = ex.Call(PutFactory(), {.operation = "PutObject"});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(ex.clock_offset(), 3600s);
  auto sent = h.transport->requests();
  EXPECT_EQ(HeaderOf(sent[1], "x-amz-date"), AmzDate(server_now + h.sleeps.at(0)));
}

TEST(ExecutorTest, AttemptTimeoutIsTransientAndDeadlinePassedToTransport) {
  Harness h;
  h.transport->Push(Error(ErrorCode::kDeadlineExceeded, "PUT bucket: request deadline exceeded"));
  h.transport->Push(MakeResponse(200));
  RetryPolicy p;
  p.attempt_timeout = 10s;
  p.total_timeout = 60s;
  auto r = h.Make(p).Call(PutFactory(), {.operation = "PutObject"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(h.transport->count(), 2u);
}

TEST(ExecutorTest, CredentialFailureIsReturnedWithContext) {
  class Failing : public CredentialsProvider {
   public:
    Result<Credentials> Get() override { return Error(ErrorCode::kAccessDenied, "AssumeRole denied"); }
    void Invalidate() override {}
    std::string Name() const override { return "assume-role arn:aws:iam::1:role/r"; }
  };
  auto transport = std::make_shared<FakeTransport>();
  Executor::Options o;
  o.transport = transport;
  o.credentials = std::make_shared<Failing>();
  o.signing = SigningOptions::S3("us-east-1");
  auto r = Executor(std::move(o)).Call(PutFactory(), {.operation = "PutObject"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kAccessDenied);
  EXPECT_NE(r.error().message.find("assume-role arn:aws:iam::1:role/r"), std::string::npos);
  EXPECT_EQ(transport->count(), 0u);
}

TEST(ExecutorTest, SecretsNeverInErrors) {
  Harness h;
  h.transport->SetHandler([](const http::OutboundRequest&) -> Result<http::OutboundResponse> {
    return MakeResponse(403, S3ErrorXml("SignatureDoesNotMatch", "The request signature we calculated does not match"));
  });
  auto r = h.Make().Call(PutFactory(), {.operation = "PutObject"});
  ASSERT_FALSE(r.ok());
  std::string text = r.error().ToString();
  EXPECT_EQ(r.error().code, ErrorCode::kUnauthenticated);
  for (const char* secret : {"very-secret-key", "session-token-1", "Signature="}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << text;
  }
}

TEST(CredentialsTest, ToStringHidesSecrets) {
  Credentials c;
  c.access_key_id = "ASIAEXAMPLEKEYID1234";
  c.secret_access_key = Secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
  c.session_token = Secret("FwoGZXIvYXdzEXAMPLETOKEN");
  c.expiration = *ParseIso8601("2026-11-23T12:00:00Z");
  std::string s = c.ToString();
  EXPECT_EQ(s, "ASIAEXAM… (session token, expires 2026-11-23T12:00:00Z)");
  EXPECT_EQ(fmt::format("{}", c.secret_access_key), "***");
  std::ostringstream os;
  os << c.session_token;
  EXPECT_EQ(os.str(), "***");
}

}  // namespace
}  // namespace sluice::aws
