// azure::Executor: the x-ms headers and each authorisation, error classification (Storage XML, HEAD's
// x-ms-error-code, Entra ID JSON), retries of 429/5xx/resets, and the once-only token refresh after a 401.
#include "azure/executor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "aws/fake_transport.h"

namespace sluice::azure {
namespace {

using aws::testing::FakeTransport;
using aws::testing::HeaderOf;
using aws::testing::MakeResponse;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string StorageError(std::string_view code, std::string_view message) {
  return "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>" + std::string(code) +
         "</Code><Message>" + std::string(message) + "\nRequestId:abc\nTime:2024-01-01T00:00:00Z</Message></Error>";
}

class CountingTokens final : public cloud::TokenProvider {
 public:
  Result<cloud::AccessToken> Get() override { return cloud::AccessToken{Secret("tok-" + std::to_string(fetches)), {}}; }
  void Invalidate() override { ++fetches; }
  std::string Name() const override { return "test principal"; }
  int fetches = 1;
};

struct Fixture {
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  FakeClock clock{std::chrono::system_clock::from_time_t(1255297753)};
  std::vector<std::chrono::milliseconds> sleeps;
  Executor Make(std::optional<StorageCredential> cred) {
    Executor::Options o;
    o.transport = transport;
    o.credential = std::move(cred);
    o.clock = &clock;
    o.sleep = [this](std::chrono::milliseconds d) { sleeps.push_back(d); };
    o.random = [] { return 0.5; };
    return Executor(std::move(o));
  }
  static RequestFactory Get(std::string url) {
    return [url] { return Result<http::OutboundRequest>(http::OutboundRequest{"GET", url, {}, {}}); };
  }
};

TEST(AzureExecutor, SharedKeyRequestsCarryVersionDateAndSignature) {
  Fixture f;
  auto cred = StorageCredential::SharedKey("devstoreaccount1", Secret("a2V5"));
  Executor ex = f.Make(*cred);
  f.transport->Push(MakeResponse(200));
  ASSERT_TRUE(ex.Call(Fixture::Get("http://127.0.0.1:1/devstoreaccount1/c/b")).ok());
  auto r = f.transport->requests()[0];
  EXPECT_EQ(HeaderOf(r, "x-ms-version"), "2021-12-02");
  EXPECT_EQ(HeaderOf(r, "x-ms-date"), "Sun, 11 Oct 2009 21:49:13 GMT");
  EXPECT_THAT(HeaderOf(r, "Authorization"), StartsWith("SharedKey devstoreaccount1:"));
}

TEST(AzureExecutor, BearerAndSas) {
  Fixture f;
  auto tokens = std::make_shared<CountingTokens>();
  Executor bearer = f.Make(StorageCredential::Token(tokens));
  f.transport->Push(MakeResponse(200));
  ASSERT_TRUE(bearer.Call(Fixture::Get("https://a.blob.core.windows.net/c/b")).ok());
  EXPECT_EQ(HeaderOf(f.transport->requests()[0], "Authorization"), "Bearer tok-1");

  Executor sas = f.Make(*StorageCredential::Sas(Secret("sv=2021-12-02&sig=x%3D")));
  f.transport->Push(MakeResponse(200));
  ASSERT_TRUE(sas.Call(Fixture::Get("https://a.blob.core.windows.net/c?comp=list")).ok());
  auto r = f.transport->requests()[1];
  EXPECT_EQ(r.url, "https://a.blob.core.windows.net/c?comp=list&sv=2021-12-02&sig=x%3D");
  EXPECT_EQ(HeaderOf(r, "Authorization"), "");
}

TEST(AzureExecutor, RetriesServerBusyInternalErrorsAndResets) {
  Fixture f;
  Executor ex = f.Make(*StorageCredential::SharedKey("acct", Secret("a2V5")));
  f.transport->Push(MakeResponse(503, StorageError("ServerBusy", "The server is busy.")));
  f.transport->Push(MakeResponse(500, StorageError("InternalError", "oops")));
  f.transport->Push(Error(ErrorCode::kTransient, "connection reset by peer"));
  f.transport->Push(MakeResponse(201));
  auto r = ex.Call(Fixture::Get("https://acct.blob.core.windows.net/c/b"), {.operation = "Put Blob"});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(f.transport->count(), 4u);
  ASSERT_EQ(f.sleeps.size(), 3u);
  EXPECT_EQ(f.sleeps[0], std::chrono::milliseconds(250));  // throttled: half of the 500 ms ceiling
}

TEST(AzureExecutor, GivesUpAfterMaxAttempts) {
  Fixture f;
  Executor ex = f.Make(*StorageCredential::SharedKey("acct", Secret("a2V5")));
  for (int i = 0; i < 5; ++i) f.transport->Push(MakeResponse(500, StorageError("InternalError", "oops")));
  auto r = ex.Call(Fixture::Get("https://acct.blob.core.windows.net/c/b"), {.operation = "Get Blob"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTransient);
  EXPECT_THAT(r.error().message, HasSubstr("gave up after 5 attempts"));
  EXPECT_THAT(r.error().message, HasSubstr("Get Blob acct.blob.core.windows.net"));
}

TEST(AzureExecutor, AWrongKeyIsNotRetriedAndSaysWhatToCheck) {
  Fixture f;
  Executor ex = f.Make(*StorageCredential::SharedKey("acct", Secret("a2V5")));
  f.transport->Push(MakeResponse(403, StorageError("AuthenticationFailed", "Server failed to authenticate the request."),
                                 {{"x-ms-request-id", "req-9"}}));
  auto r = ex.Call(Fixture::Get("https://acct.blob.core.windows.net/c/b"), {.operation = "Put Blob"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(f.transport->count(), 1u);
  EXPECT_EQ(r.error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(r.error().provider_code, "AuthenticationFailed");
  EXPECT_EQ(r.error().request_id, "req-9");
  EXPECT_THAT(r.error().message, HasSubstr("Server failed to authenticate the request."));
  EXPECT_THAT(r.error().message, HasSubstr("access key"));
  EXPECT_THAT(r.error().message, ::testing::Not(HasSubstr("RequestId:abc")));
}

// A refusal by the account's network rules is a denial that names the firewall (or HTTPS), never the
// credential, however fresh the token was.
TEST(AzureExecutor, NetworkRuleRefusalsNameTheFirewallNotTheCredential) {
  Error ip = ClassifyAzureResponse(
      MakeResponse(
          403, StorageError("AuthorizationSourceIPMismatch",
                            "This request is not authorized to perform this operation using this source IP")),
      "Put Blob", StorageCredential::Kind::kToken);
  EXPECT_EQ(ip.code, ErrorCode::kAccessDenied);
  EXPECT_THAT(ip.message, HasSubstr("firewall"));
  EXPECT_THAT(ip.message, ::testing::Not(HasSubstr("client secret")));
  Error https = ClassifyAzureResponse(
      MakeResponse(403, StorageError("AuthorizationProtocolMismatch", "This request is not authorized.")),
      "Put Blob", StorageCredential::Kind::kSharedKey);
  EXPECT_EQ(https.code, ErrorCode::kAccessDenied);
  EXPECT_THAT(https.message, HasSubstr("HTTPS"));
}

TEST(AzureExecutor, AzuritesAuthorizationFailureForABadSignatureIsAnAuthenticationError) {
  Error e = ClassifyAzureResponse(
      MakeResponse(403, StorageError("AuthorizationFailure",
                                     "Server failed to authenticate the request. Make sure the value of the "
                                     "Authorization header is formed correctly including the signature.")),
      "Put Blob", StorageCredential::Kind::kSharedKey);
  EXPECT_EQ(e.code, ErrorCode::kUnauthenticated);
  EXPECT_THAT(e.message, HasSubstr("access key"));
  // Azure's own AuthorizationFailure (a firewall, a SAS without the permission) is a denial.
  Error denied = ClassifyAzureResponse(
      MakeResponse(403, StorageError("AuthorizationFailure", "This request is not authorized to perform this operation.")),
      "Put Blob", StorageCredential::Kind::kToken);
  EXPECT_EQ(denied.code, ErrorCode::kAccessDenied);
  // The detail of a refused token is kept.
  Error detail = ClassifyAzureResponse(
      MakeResponse(403, "<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to "
                        "authenticate the request.</Message><AuthenticationErrorDetail>Invalid token audience."
                        "</AuthenticationErrorDetail></Error>"),
      "Put Blob", StorageCredential::Kind::kToken);
  EXPECT_THAT(detail.message, HasSubstr("Invalid token audience."));
  EXPECT_THAT(detail.message, HasSubstr("client secret"));
}

TEST(AzureExecutor, AMissingRoleNamesTheRoleToGrant) {
  Fixture f;
  Executor ex = f.Make(StorageCredential::Token(std::make_shared<CountingTokens>()));
  http::OutboundResponse head = MakeResponse(403, "", {{"x-ms-error-code", "AuthorizationPermissionMismatch"}});
  f.transport->Push(head);
  auto r = ex.Call(Fixture::Get("https://acct.blob.core.windows.net/c/b"), {.operation = "Get Blob Properties"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kAccessDenied);
  EXPECT_THAT(r.error().message, HasSubstr("Storage Blob Data Contributor"));
  EXPECT_THAT(r.error().message, HasSubstr("sluice azure roles"));
}

TEST(AzureExecutor, AnExpiredTokenIsRefreshedOnce) {
  Fixture f;
  auto tokens = std::make_shared<CountingTokens>();
  Executor ex = f.Make(StorageCredential::Token(tokens));
  f.transport->Push(MakeResponse(401, StorageError("InvalidAuthenticationInfo", "Lifetime validation failed. The token is expired.")));
  f.transport->Push(MakeResponse(201));
  ASSERT_TRUE(ex.Call(Fixture::Get("https://acct.blob.core.windows.net/c/b")).ok());
  EXPECT_EQ(HeaderOf(f.transport->requests()[1], "Authorization"), "Bearer tok-2");
  EXPECT_TRUE(f.sleeps.empty());

  // A second 401 within one call is the answer.
  f.transport->Push(MakeResponse(401, StorageError("InvalidAuthenticationInfo", "expired")));
  f.transport->Push(MakeResponse(401, StorageError("InvalidAuthenticationInfo", "expired")));
  auto r = ex.Call(Fixture::Get("https://acct.blob.core.windows.net/c/b"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(f.transport->count(), 4u);
}

TEST(AzureExecutor, ClassifiesNotFoundConflictAndThrottling) {
  http::OutboundResponse r = MakeResponse(404, StorageError("ContainerNotFound", "The specified container does not exist."));
  Error e = ClassifyAzureResponse(r, "List Blobs");
  EXPECT_EQ(e.code, ErrorCode::kNotFound);
  EXPECT_THAT(e.message, HasSubstr("check the container name"));
  EXPECT_EQ(ClassifyAzureResponse(MakeResponse(409), "x").code, ErrorCode::kConflict);
  EXPECT_EQ(ClassifyAzureResponse(MakeResponse(429), "x").code, ErrorCode::kThrottled);
  EXPECT_EQ(ClassifyAzureResponse(MakeResponse(408), "x").code, ErrorCode::kTransient);
  EXPECT_EQ(ClassifyAzureResponse(MakeResponse(502, "<html>bad gateway</html>"), "x").code, ErrorCode::kTransient);
  EXPECT_EQ(ClassifyAzureResponse(MakeResponse(400, StorageError("InvalidBlockList", "bad")), "x").code,
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice::azure
