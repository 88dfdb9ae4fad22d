// Shared set-up for S3 integration tests: one moto per test suite, in auth mode, with Sluice's assume-only user
// and the customer roles of tests/support/moto_setup.py.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "aws/providers.h"
#include "aws/sts.h"
#include "http/transport.h"
#include "objstore/s3/s3_object_store.h"
#include "support/moto_server.h"

namespace sluice::objstore::s3 {

/// Fast retries so fault tests finish quickly; bounded so a broken retry loop fails the test instead of hanging.
inline aws::RetryPolicy TestRetryPolicy() {
  aws::RetryPolicy p;
  p.max_attempts = 4;
  p.base_delay = std::chrono::milliseconds(10);
  p.throttled_base_delay = std::chrono::milliseconds(20);
  p.max_delay = std::chrono::milliseconds(200);
  p.attempt_timeout = std::chrono::milliseconds(30000);
  p.total_timeout = std::chrono::milliseconds(120000);
  return p;
}

class MotoSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = sluice::testing::MotoServer::Start();
    if (!m.ok()) {
      error_ = new std::string(m.error().ToString());
      return;
    }
    moto_ = std::move(m).value().release();
    auto env = moto_->RunSetup();
    if (!env.ok()) {
      error_ = new std::string(env.error().ToString());
      return;
    }
    env_ = new sluice::testing::MotoEnvironment(std::move(env).value());
    Status auth = moto_->EnableAuth();
    if (!auth.ok()) error_ = new std::string(auth.error().ToString());
  }
  static void TearDownTestSuite() {
    delete moto_;
    moto_ = nullptr;
    delete env_;
    env_ = nullptr;
    delete error_;
    error_ = nullptr;
  }
  void SetUp() override {
    // Fail (never skip) without moto: CI must have it (TESTING.md).
    ASSERT_EQ(error_, nullptr) << "moto-based integration test could not start: " << *error_;
    transport_ = std::shared_ptr<http::HttpTransport>(http::MakeCurlTransport(TransportOptions()));
  }

  virtual http::TransportOptions TransportOptions() const { return {}; }

  /// Sluice's own identity (assume-only user), or a variant with another secret.
  std::shared_ptr<aws::CredentialsProvider> OwnCredentials(std::string secret = "") const {
    aws::Credentials c;
    c.access_key_id = env_->access_key_id;
    c.secret_access_key = Secret(secret.empty() ? env_->secret_access_key.Reveal() : secret);
    return std::make_shared<aws::StaticCredentialsProvider>(std::move(c), "test user");
  }

  std::shared_ptr<aws::StsClient> Sts(std::shared_ptr<aws::CredentialsProvider> own) const {
    aws::StsOptions o;
    o.region = env_->region;
    o.transport = transport_;
    o.endpoint = moto_->Endpoint();
    o.retry = TestRetryPolicy();
    return std::make_shared<aws::StsClient>(o, std::move(own));
  }

  /// The customer's role `variant` assumed with the right external ID.
  std::shared_ptr<aws::CredentialsProvider> RoleCredentials(const std::string& variant = "full") const {
    aws::AssumeRoleProvider::Options o;
    o.role_arn = env_->roles.at(variant);
    o.session_name = "sluice-test";
    o.external_id = env_->external_id;
    return std::make_shared<aws::AssumeRoleProvider>(Sts(OwnCredentials()), o);
  }

  S3StoreOptions StoreOptions() const {
    S3StoreOptions o;
    o.bucket = env_->bucket;
    o.region = env_->region;
    o.endpoint = moto_->Endpoint();
    o.retry = TestRetryPolicy();
    return o;
  }

  std::unique_ptr<S3ObjectStore> MakeStore(S3StoreOptions options,
                                           std::shared_ptr<aws::CredentialsProvider> creds = nullptr) const {
    auto s = S3ObjectStore::Create(std::move(options), creds ? creds : RoleCredentials(), transport_);
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static sluice::testing::MotoServer* moto_;
  static sluice::testing::MotoEnvironment* env_;
  static std::string* error_;
  std::shared_ptr<http::HttpTransport> transport_;
};

}  // namespace sluice::objstore::s3
