// gcp::Executor: classification of Google's error answers, the retry policy (429, rateLimitExceeded, 5xx,
// resets), the 401 refresh-and-retry-once, and the before_retry hook resumable uploads use.
#include "gcp/executor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "aws/fake_transport.h"
#include "gcp/credentials.h"

namespace sluice::gcp {
namespace {

using aws::testing::FakeTransport;
using aws::testing::HeaderOf;
using aws::testing::MakeResponse;
using ::testing::HasSubstr;
using ::testing::Not;

std::string JsonError(int code, std::string_view reason, std::string_view message) {
  return fmt::format(
      R"({{"error":{{"code":{},"message":"{}","errors":[{{"message":"{}","domain":"global","reason":"{}"}}]}}}})",
      code, message, message, reason);
}

class CountingTokens : public TokenProvider {
 public:
  Result<AccessToken> Get() override { return AccessToken{Secret("tok" + std::to_string(generation_)), {}}; }
  void Invalidate() override { ++generation_; }
  std::string Name() const override { return "counting"; }
  int generation_ = 1;
};

struct Harness {
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  std::shared_ptr<CountingTokens> tokens = std::make_shared<CountingTokens>();
  std::vector<std::chrono::milliseconds> sleeps;
  Executor executor{[this] {
    Executor::Options o;
    o.transport = transport;
    o.tokens = tokens;
    o.sleep = [this](std::chrono::milliseconds d) { sleeps.push_back(d); };
    o.random = [] { return 0.5; };
    return o;
  }()};
  Result<http::OutboundResponse> Get(CallOptions call = {}) {
    return executor.Call(
        [] {
          return Result<http::OutboundRequest>(
              http::OutboundRequest{"GET", "https://storage.googleapis.com/storage/v1/b/b/o/k", {}, {}});
        },
        call);
  }
};

TEST(ClassifyGoogleResponseTest, MapsStatusesAndReasons) {
  http::OutboundResponse r;
  r.status = 403;
  r.body = JsonError(
      403, "forbidden",
      "sa@p.iam.gserviceaccount.com does not have storage.objects.create access to the Google Cloud "
      "Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).");
  r.headers = {{"x-guploader-uploadid", "UPLOAD-1"}};
  Error e = ClassifyGoogleResponse(r, "objects.insert");
  EXPECT_EQ(e.code, ErrorCode::kAccessDenied);
  EXPECT_EQ(e.provider_code, "storage.objects.create");
  EXPECT_EQ(e.request_id, "UPLOAD-1");
  EXPECT_EQ(e.http_status, 403);
  EXPECT_THAT(e.message, HasSubstr("missing permission storage.objects.create"));
  EXPECT_THAT(e.message, HasSubstr("sluice gcp roles"));

  r.body = JsonError(403, "rateLimitExceeded", "Rate Limit Exceeded");
  EXPECT_EQ(ClassifyGoogleResponse(r, "x").code, ErrorCode::kThrottled);
  struct Case {
    int status;
    ErrorCode code;
  };
  for (auto [status, code] : std::vector<Case>{{401, ErrorCode::kUnauthenticated},
                                               {404, ErrorCode::kNotFound},
                                               {408, ErrorCode::kTransient},
                                               {409, ErrorCode::kConflict},
                                               {412, ErrorCode::kConflict},
                                               {429, ErrorCode::kThrottled},
                                               {500, ErrorCode::kTransient},
                                               {503, ErrorCode::kTransient},
                                               {400, ErrorCode::kInvalidArgument},
                                               {405, ErrorCode::kPermanent}}) {
    r.status = status;
    r.body = JsonError(status, "x", "m");
    EXPECT_EQ(ClassifyGoogleResponse(r, "op").code, code) << status;
  }
  r.status = 502;
  r.body = "<html>Bad gateway</html>";
  Error html = ClassifyGoogleResponse(r, "op");
  EXPECT_EQ(html.code, ErrorCode::kTransient);
  EXPECT_THAT(html.message, HasSubstr("Bad gateway"));
}

// An endpoint's answer reaches tenants' answers and the logs only as a short printable excerpt: a
// 5000-character message is cut to 200 (control characters blanked), the reason and the request id are
// escaped and cut to 64.
TEST(ClassifyGoogleResponseTest, AnEndpointsTextIsCutAndEscaped) {
  http::OutboundResponse r;
  r.status = 403;
  const std::string shout = "IGNORE PREVIOUS:\ncall now. " + std::string(5000, 'x');
  r.body = JsonError(403, "forbidden\r\nInjected: yes" + std::string(100, 'r'), shout);
  r.headers.push_back({"x-guploader-uploadid", "id<script>" + std::string(100, 'i')});
  Error e = ClassifyGoogleResponse(r, "op");
  EXPECT_LT(e.message.size(), 500u) << e.message.size();
  EXPECT_EQ(e.message.find('\n'), std::string::npos);
  EXPECT_EQ(e.message.find(std::string(201, 'x')), std::string::npos);
  EXPECT_THAT(e.message, HasSubstr("…"));
  EXPECT_EQ(e.provider_code.find_first_of("\r\n "), std::string::npos) << e.provider_code;
  EXPECT_LE(e.provider_code.size(), 67u);
  EXPECT_EQ(e.request_id.find('<'), std::string::npos) << e.request_id;
  EXPECT_LE(e.request_id.size(), 67u);
}

TEST(ExecutorTest, SendsTheBearerTokenAndRetriesThrottlingAndServerErrors) {
  Harness h;
  h.transport->Push(MakeResponse(429, JsonError(429, "rateLimitExceeded", "slow down")));
  h.transport->Push(MakeResponse(403, JsonError(403, "rateLimitExceeded", "Rate Limit Exceeded")));
  h.transport->Push(MakeResponse(503, JsonError(503, "backendError", "Backend Error")));
  h.transport->Push(Error(ErrorCode::kTransient, "connection reset by 127.0.0.1"));
  h.transport->Push(MakeResponse(200, "{}"));
  CallOptions call;
  call.operation = "objects.get";
  auto r = h.Get(call);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(h.transport->count(), 5u);
  for (const auto& req : h.transport->requests()) EXPECT_EQ(HeaderOf(req, "Authorization"), "Bearer tok1");
  ASSERT_EQ(h.sleeps.size(), 4u);
  EXPECT_EQ(h.sleeps[0], std::chrono::milliseconds(250));  // throttled base 500 ms × 0.5
  EXPECT_EQ(h.sleeps[2], std::chrono::milliseconds(200));  // transient base 100 ms × 4 × 0.5
}

TEST(ExecutorTest, GivesUpAfterMaxAttemptsAndDoesNotRetryDenials) {
  Harness h;
  h.transport->SetHandler([](const http::OutboundRequest&) -> Result<http::OutboundResponse> {
    return MakeResponse(503, JsonError(503, "backendError", "Backend Error"));
  });
  auto r = h.Get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(h.transport->count(), 5u);
  EXPECT_THAT(r.error().message, HasSubstr("gave up after 5 attempts"));

  Harness d;
  d.transport->Push(MakeResponse(403, JsonError(403, "forbidden", "no storage.objects.get access")));
  auto denied = d.Get();
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().code, ErrorCode::kAccessDenied);
  EXPECT_EQ(d.transport->count(), 1u);
}

TEST(ExecutorTest, A401FetchesANewTokenAndRetriesOnce) {
  Harness h;
  h.transport->Push(MakeResponse(401, JsonError(401, "authError", "Invalid Credentials")));
  h.transport->Push(MakeResponse(200, "{}"));
  ASSERT_TRUE(h.Get().ok());
  auto reqs = h.transport->requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(HeaderOf(reqs[0], "Authorization"), "Bearer tok1");
  EXPECT_EQ(HeaderOf(reqs[1], "Authorization"), "Bearer tok2");
  EXPECT_TRUE(h.sleeps.empty());

  Harness twice;
  twice.transport->SetHandler([](const http::OutboundRequest&) -> Result<http::OutboundResponse> {
    return MakeResponse(401, JsonError(401, "authError", "Invalid Credentials"));
  });
  auto r = twice.Get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(twice.transport->count(), 2u);
  EXPECT_THAT(r.error().message, Not(HasSubstr("tok")));
}

TEST(ExecutorTest, BeforeRetryCanFinishTheCallOrLetItResend) {
  Harness h;
  h.transport->Push(MakeResponse(503, "x"));
  int probes = 0;
  CallOptions call;
  call.success_statuses = {308};
  call.before_retry = [&]() -> Result<std::optional<http::OutboundResponse>> {
    ++probes;
    return std::optional<http::OutboundResponse>(MakeResponse(200, "done by probe"));
  };
  auto r = h.Get(call);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "done by probe");
  EXPECT_EQ(probes, 1);
  EXPECT_EQ(h.transport->count(), 1u);

  Harness s;
  s.transport->Push(MakeResponse(503, "x"));
  s.transport->Push(MakeResponse(308, "", {{"range", "bytes=0-9"}}));
  call.before_retry = [&]() -> Result<std::optional<http::OutboundResponse>> {
    return std::optional<http::OutboundResponse>();
  };
  auto resent = s.Get(call);
  ASSERT_TRUE(resent.ok());
  EXPECT_EQ(resent->status, 308);
  EXPECT_EQ(s.transport->count(), 2u);
}

TEST(PermissionInMessageTest, FindsTheStoragePermission) {
  EXPECT_EQ(PermissionInMessage("a@b does not have storage.objects.delete access to x."),
            "storage.objects.delete");
  EXPECT_EQ(PermissionInMessage("Forbidden"), "");
}

}  // namespace
}  // namespace sluice::gcp
