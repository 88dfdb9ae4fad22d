// The fault proxy injects exactly what it is scripted to, then passes through (upstream: a real moto).
#include "support/fault_proxy.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace sluice::testing
