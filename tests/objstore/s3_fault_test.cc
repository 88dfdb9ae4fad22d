// S3ObjectStore through the fault proxy (tests/support/fault_proxy.h) to moto: retries ride out 500s, 503
// SlowDown, resets, stalls and truncated bodies; persistent faults surface as classified errors; a failed
// multipart upload never becomes visible.
#include <gtest/gtest.h>

#include "s3_moto_env.h"
#include "support/fault_proxy.h"

namespace sluice::objstore::s3 {
namespace {

using sluice::testing::FaultKind;
using sluice::testing::FaultProxy;
using sluice::testing::FaultRule;

class S3FaultTest : public MotoSuite {
 protected:
  void SetUp() override {
    MotoSuite::SetUp();
    if (HasFatalFailure()) return;
    proxy_ = std::make_unique<FaultProxy>(moto_->port());
    ASSERT_TRUE(proxy_->ok()) << proxy_->start_error();
    auto opts = StoreOptions();
    opts.endpoint = proxy_->Endpoint();  // S3 through the proxy; STS goes straight to moto
    opts.part_size = 5 * kMiB;
    store_ = MakeStore(opts);
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    if (proxy_) proxy_->Stop();
  }
  // A stalled peer must be given up on quickly.
  http::TransportOptions TransportOptions() const override {
    http::TransportOptions t;
    t.idle_timeout = std::chrono::milliseconds(1000);
    return t;
  }
  std::string LogText() const {
    std::string s;
    for (const auto& l : proxy_->Log()) s += l + "\n";
    return s;
  }

  std::unique_ptr<FaultProxy> proxy_;
  std::unique_ptr<S3ObjectStore> store_;
};

TEST_F(S3FaultTest, TransientFaultsAreRiddenOut) {
  struct Case {
    const char* name;
    std::vector<FaultRule> rules;
  };
  std::vector<Case> cases = {
      {"500", {{FaultKind::kInternalError}, {FaultKind::kInternalError}}},
      {"503 SlowDown", {{FaultKind::kSlowDown}, {FaultKind::kSlowDown}}},
      {"reset", {{FaultKind::kReset}}},
      {"stall", {{.kind = FaultKind::kStall, .stall = std::chrono::milliseconds(3000)}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    proxy_->ResetCounters();
    proxy_->Script(c.rules);
    std::string key = std::string("faults/") + (c.name[0] == '5' ? std::string(c.name, 3) : c.name);
    auto put = store_->Put(key, "payload");
    ASSERT_TRUE(put.ok()) << put.error().ToString() << "\n" << LogText();
    EXPECT_EQ(proxy_->faults_injected(), static_cast<int>(c.rules.size())) << LogText();
    proxy_->Script(c.rules);
    auto got = store_->Get(key);
    ASSERT_TRUE(got.ok()) << got.error().ToString() << "\n" << LogText();
    EXPECT_EQ(*got, "payload");
  }
}

TEST_F(S3FaultTest, TruncatedBodyIsRetried) {
  ASSERT_TRUE(store_->Put("faults/truncated", std::string(100000, 't')).ok());
  proxy_->Script({{.kind = FaultKind::kTruncateBody, .method = "GET"}});
  auto got = store_->Get("faults/truncated");
  ASSERT_TRUE(got.ok()) << got.error().ToString() << "\n" << LogText();
  EXPECT_EQ(*got, std::string(100000, 't'));
  EXPECT_EQ(proxy_->faults_injected(), 1);
}

TEST_F(S3FaultTest, StreamingGetResumesAfterATruncatedBody) {
  std::string data(3 * 1024 * 1024, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(store_->Put("faults/stream", data).ok());
  proxy_->Script({{.kind = FaultKind::kTruncateBody, .method = "GET"}});
  std::string got;
  Status st = store_->GetStreaming("faults/stream", [&](std::string_view c) {
    got.append(c);
    return true;
  });
  ASSERT_TRUE(st.ok()) << st.error().ToString() << "\n" << LogText();
  EXPECT_TRUE(got == data) << got.size() << " bytes";
  EXPECT_EQ(proxy_->faults_injected(), 1);
}

TEST_F(S3FaultTest, PersistentFaultsGiveClassifiedErrors) {
  proxy_->Script({{.kind = FaultKind::kSlowDown, .times = -1}});
  auto put = store_->Put("faults/persistent", "x");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, ErrorCode::kThrottled) << put.error().ToString();
  EXPECT_EQ(put.error().provider_code, "SlowDown");
  EXPECT_NE(put.error().message.find("gave up after 4 attempts"), std::string::npos) << put.error().message;
  EXPECT_EQ(proxy_->faults_injected(), 4) << "bounded: exactly max_attempts requests";

  proxy_->ResetCounters();
  proxy_->Script({{.kind = FaultKind::kReset, .times = -1}});
  auto get = store_->Get("faults/persistent");
  ASSERT_FALSE(get.ok());
  EXPECT_TRUE(IsRetryable(get.error().code)) << get.error().ToString();
  // libcurl itself re-sends once when a *reused* connection turns out dead before any response byte, so a reset
  // can cost one extra request; still bounded.
  EXPECT_GE(proxy_->faults_injected(), 4) << LogText();
  EXPECT_LE(proxy_->faults_injected(), 5) << LogText();
}

TEST_F(S3FaultTest, FailedPartNeverBecomesVisibleAndCompleteIsNotSent) {
  // Part 2 fails on every attempt; the denied Abort (the role has no s3:AbortMultipartUpload) is tolerated.
  proxy_->Script({{.kind = FaultKind::kInternalError, .method = "PUT", .target_contains = "partNumber=2",
                   .times = -1}});
  auto w = store_->NewWriter("faults/multipart");
  ASSERT_TRUE(w.ok());
  std::string chunk(1 * kMiB, 'm');
  Status write_status;
  for (int i = 0; i < 16 && write_status.ok(); ++i) write_status = (*w)->Write(chunk);
  Result<ObjectInfo> done = write_status.ok() ? (*w)->Complete() : Result<ObjectInfo>(write_status.error());
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().code, ErrorCode::kTransient) << done.error().ToString();
  EXPECT_NE(done.error().message.find("part 2"), std::string::npos) << done.error().message;
  (*w)->Abort();  // idempotent after a failure

  std::string log = LogText();
  EXPECT_EQ(log.find("POST /" + env_->bucket + "/faults/multipart?uploadId="), std::string::npos)
      << "CompleteMultipartUpload must not be sent after a part failed:\n" << log;
  EXPECT_NE(log.find("DELETE /" + env_->bucket + "/faults/multipart?uploadId="), std::string::npos)
      << "Abort is attempted:\n" << log;
  proxy_->Clear();
  EXPECT_EQ(store_->Head("faults/multipart").error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace sluice::objstore::s3
