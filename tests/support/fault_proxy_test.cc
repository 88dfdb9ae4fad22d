// The fault proxy injects exactly what it is scripted to, then passes through (upstream: a real moto). With
// TLS it serves HTTPS with a given certificate and reaches an HTTPS upstream trusting a given CA: here a chain
// client -> proxy (TLS both sides, Azure error bodies) -> a TLS-serving proxy -> moto, driven by Sluice's own
// HTTPS transport trusting the test certificate.
#include "support/fault_proxy.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "common/crypto.h"
#include "http/transport.h"
#include "support/entra_token_endpoint.h"
#include "support/moto_server.h"

namespace sluice::testing {
namespace {

class FaultProxyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = MotoServer::Start();
    if (!m.ok()) {
      start_error_ = new std::string(m.error().ToString());
      return;
    }
    moto_ = std::move(m).value().release();
  }
  static void TearDownTestSuite() {
    delete moto_;
    moto_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(moto_, nullptr) << "moto is required: " << (start_error_ ? *start_error_ : "");
    proxy_ = std::make_unique<FaultProxy>(moto_->port());
    ASSERT_TRUE(proxy_->ok()) << proxy_->start_error();
  }
  Result<WireMessage> Get(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    return LoopbackRequest(proxy_->port(), "GET", "/moto-api/", {}, "", timeout);
  }

  static MotoServer* moto_;
  static std::string* start_error_;
  std::unique_ptr<FaultProxy> proxy_;
};
MotoServer* FaultProxyTest::moto_ = nullptr;
std::string* FaultProxyTest::start_error_ = nullptr;

TEST_F(FaultProxyTest, ErrorsThenPassThrough) {
  proxy_->Script({{FaultKind::kInternalError}, {FaultKind::kSlowDown}});
  auto r1 = Get();
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->Status(), 500);
  EXPECT_NE(r1->body.find("<Code>InternalError</Code>"), std::string::npos);
  auto r2 = Get();
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->Status(), 503);
  EXPECT_NE(r2->body.find("<Code>SlowDown</Code>"), std::string::npos);
  auto r3 = Get();
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->Status(), 200);
  EXPECT_EQ(proxy_->requests(), 3);
  EXPECT_EQ(proxy_->faults_injected(), 2);
}

TEST_F(FaultProxyTest, ResetStallAndTruncateFailTheExchange) {
  proxy_->Script({{FaultKind::kReset},
                  {.kind = FaultKind::kStall, .stall = std::chrono::milliseconds(2000)},
                  {FaultKind::kTruncateBody}});
  EXPECT_FALSE(Get().ok());
  auto stalled = Get(std::chrono::milliseconds(500));
  ASSERT_FALSE(stalled.ok());
  EXPECT_EQ(stalled.error().code, ErrorCode::kDeadlineExceeded);
  auto truncated = Get();
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.error().message.find("mid-body"), std::string::npos) << truncated.error().message;
  EXPECT_TRUE(Get().ok());
}

TEST_F(FaultProxyTest, MethodFilterAndPersistentRule) {
  proxy_->Script({{.kind = FaultKind::kInternalError, .method = "POST", .times = -1}});
  auto get = Get();
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->Status(), 200);
  for (int i = 0; i < 3; ++i) {
    auto post = LoopbackRequest(proxy_->port(), "POST", "/moto-api/x", {}, "", std::chrono::milliseconds(5000));
    ASSERT_TRUE(post.ok());
    EXPECT_EQ(post->Status(), 500);
  }
}

// A HEAD answer passes through with the upstream's Content-Length (the resource's size; there is no body).
TEST_F(FaultProxyTest, HeadAnswerKeepsTheUpstreamsContentLength) {
  auto direct = LoopbackRequest(moto_->port(), "GET", "/moto-api/", {}, "", std::chrono::milliseconds(5000));
  ASSERT_TRUE(direct.ok()) << direct.error().ToString();
  ASSERT_FALSE(direct->body.empty());
  auto head = LoopbackRequest(proxy_->port(), "HEAD", "/moto-api/", {}, "", std::chrono::milliseconds(5000));
  ASSERT_TRUE(head.ok()) << head.error().ToString();
  EXPECT_EQ(head->Status(), 200);
  EXPECT_EQ(head->Header("Content-Length"), std::to_string(direct->body.size()));
}

class FaultProxyTlsTest : public FaultProxyTest {
 protected:
  void SetUp() override {
    FaultProxyTest::SetUp();
    dir_ = std::filesystem::temp_directory_path() / ("sluice-fault-proxy-tls-" + RandomHex(32));
    std::filesystem::create_directories(dir_ / "a");
    std::filesystem::create_directories(dir_ / "b");
    cert_ = MakeLoopbackCert((dir_ / "a").string());
    other_cert_ = MakeLoopbackCert((dir_ / "b").string());
    // The HTTPS "upstream": a pass-through proxy serving TLS in front of moto.
    tls_front_ = std::make_unique<FaultProxy>(
        moto_->port(), FaultProxyOptions{.tls_cert_path = cert_.cert_path, .tls_key_path = cert_.key_path});
    ASSERT_TRUE(tls_front_->ok()) << tls_front_->start_error();
  }
  void TearDown() override {
    tls_front_.reset();
    std::filesystem::remove_all(dir_);
  }

  /// A proxy serving TLS with cert_ in front of tls_front_, trusting `upstream_ca`, answering Azure's errors.
  std::unique_ptr<FaultProxy> AzureTlsProxy(const std::string& upstream_ca) {
    return std::make_unique<FaultProxy>(tls_front_->port(), FaultProxyOptions{.tls_cert_path = cert_.cert_path,
                                                                              .tls_key_path = cert_.key_path,
                                                                              .upstream_ca_path = upstream_ca,
                                                                              .dialect = FaultDialect::kAzure});
  }

  static Result<http::OutboundResponse> HttpsGet(const FaultProxy& proxy, const std::string& ca_bundle) {
    http::TransportOptions o;
    o.ca_bundle = ca_bundle;
    o.max_idle_connections = 0;
    auto transport = http::MakeCurlTransport(o);
    return transport->Send(http::OutboundRequest{"GET", proxy.Endpoint() + "/moto-api/", {}, {}},
                           std::chrono::steady_clock::now() + std::chrono::seconds(10));
  }

  std::filesystem::path dir_;
  TestCert cert_, other_cert_;
  std::unique_ptr<FaultProxy> tls_front_;
};

TEST_F(FaultProxyTlsTest, TlsBothSidesInjectsAzureFaultsThenPassesThrough) {
  auto proxy = AzureTlsProxy(cert_.cert_path);
  ASSERT_TRUE(proxy->ok()) << proxy->start_error();
  EXPECT_EQ(proxy->Endpoint(), fmt::format("https://127.0.0.1:{}", proxy->port()));
  proxy->Script({{FaultKind::kInternalError}, {FaultKind::kSlowDown}, {FaultKind::kReset}});
  auto r1 = HttpsGet(*proxy, cert_.cert_path);
  ASSERT_TRUE(r1.ok()) << r1.error().ToString();
  EXPECT_EQ(r1->status, 500);
  EXPECT_EQ(r1->Header("x-ms-error-code"), "InternalError");
  EXPECT_NE(r1->body.find("<Error><Code>InternalError</Code><Message>"), std::string::npos) << r1->body;
  auto r2 = HttpsGet(*proxy, cert_.cert_path);
  ASSERT_TRUE(r2.ok()) << r2.error().ToString();
  EXPECT_EQ(r2->status, 503);
  EXPECT_EQ(r2->Header("x-ms-error-code"), "ServerBusy");
  EXPECT_NE(r2->body.find("<Code>ServerBusy</Code>"), std::string::npos) << r2->body;
  EXPECT_FALSE(HttpsGet(*proxy, cert_.cert_path).ok()) << "a reset inside the TLS connection must fail the exchange";
  EXPECT_EQ(tls_front_->requests(), 0) << "an injected fault must not reach the upstream";
  auto r4 = HttpsGet(*proxy, cert_.cert_path);
  ASSERT_TRUE(r4.ok()) << r4.error().ToString();
  EXPECT_EQ(r4->status, 200) << r4->body;
  EXPECT_EQ(tls_front_->requests(), 1) << "the pass-through went upstream over TLS";
  EXPECT_EQ(proxy->requests(), 4);
  EXPECT_EQ(proxy->faults_injected(), 3);
  EXPECT_EQ(proxy->tls_handshake_failures(), 0);
}

TEST_F(FaultProxyTlsTest, EachSideChecksTheOthersCertificate) {
  // A client that does not trust the proxy's certificate gets no answer.
  auto proxy = AzureTlsProxy(cert_.cert_path);
  ASSERT_TRUE(proxy->ok()) << proxy->start_error();
  EXPECT_FALSE(HttpsGet(*proxy, other_cert_.cert_path).ok());
  // The proxy's side of the failed handshake ends on its own thread: wait for it (bounded).
  for (int i = 0; i < 100 && proxy->tls_handshake_failures() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(proxy->requests(), 0);
  EXPECT_GE(proxy->tls_handshake_failures(), 1);
  // A plain-HTTP client is not served either.
  EXPECT_FALSE(LoopbackRequest(proxy->port(), "GET", "/moto-api/", {}, "", std::chrono::milliseconds(3000)).ok());
  // The proxy refuses an upstream whose certificate its CA file does not vouch for: 502 naming the TLS failure.
  auto wary = AzureTlsProxy(other_cert_.cert_path);
  ASSERT_TRUE(wary->ok()) << wary->start_error();
  auto r = HttpsGet(*wary, cert_.cert_path);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("TLS handshake failed"), std::string::npos) << r->body;
  EXPECT_EQ(tls_front_->requests(), 0);
  // Files that are not a certificate and key are a start error, not a silent plain-HTTP proxy.
  FaultProxy broken(moto_->port(), {.tls_cert_path = (dir_ / "missing.pem").string(), .tls_key_path = cert_.key_path});
  EXPECT_FALSE(broken.ok());
  EXPECT_NE(broken.start_error().find("missing.pem"), std::string::npos) << broken.start_error();
}

}  // namespace
}  // namespace sluice::testing
