// The destination check against moto in auth mode, with the customer role variants of moto_setup.py.
#include "storage_access/destination_check.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "s3_moto_env.h"

namespace sluice::objstore {
namespace {

// The check moved to the customer-storage layer (storage_access/); these tests are unchanged.
using namespace ::sluice::storage_access;

using s3::MotoSuite;

class DestinationCheckMotoTest : public MotoSuite {
 protected:
  DestinationSpec Spec(const std::string& variant = "full") const {
    DestinationSpec spec;
    spec.bucket = env_->bucket;
    spec.region = env_->region;
    spec.role_arn = env_->roles.at(variant);
    spec.external_id = env_->external_id;
    spec.endpoint = moto_->Endpoint();
    spec.sts_endpoint = moto_->Endpoint();  // an operator setting: STS never follows `endpoint`
    return spec;
  }
  DestinationCheckResult Check(const DestinationSpec& spec, std::string secret = "") const {
    DestinationCheckOptions o;
    o.base_credentials = OwnCredentials(std::move(secret));
    o.transport = transport_;
    o.retry = s3::TestRetryPolicy();
    return CheckDestination(spec, o);
  }
  static const CheckStep& Step(const DestinationCheckResult& r, std::string_view name) {
    for (const auto& s : r.steps) {
      if (s.name == name) return s;
    }
    static CheckStep missing;
    ADD_FAILURE() << "no step " << name;
    return missing;
  }
};

TEST_F(DestinationCheckMotoTest, PassesForTheDocumentedRoleWithEachEncryption) {
  for (Encryption enc : {Encryption{Encryption::Mode::kNone, ""}, Encryption{Encryption::Mode::kAes256, ""},
                         Encryption{Encryption::Mode::kKms, ""}, Encryption{Encryption::Mode::kKms, env_->kms_key_arn}}) {
    auto spec = Spec();
    spec.encryption = enc;
    auto r = Check(spec);
    EXPECT_TRUE(r.ok()) << r.ToText();
    ASSERT_EQ(r.steps.size(), 7u);
    EXPECT_EQ(r.steps[0].name, "assume-role");
    EXPECT_EQ(r.steps[1].name, "external-id");
    EXPECT_NE(r.probe_key.find(".sluice-probe-"), std::string::npos);
    if (enc.mode == Encryption::Mode::kKms) {
      EXPECT_NE(Step(r, "encryption").message.find("aws:kms"), std::string::npos);
    }
  }
  // The probe is gone.
  auto store = MakeStore(StoreOptions());
  auto left = store->List(".sluice-probe-");
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
}

TEST_F(DestinationCheckMotoTest, NamesDeleteObjectForARoleLackingIt) {
  auto r = Check(Spec("no_delete"));
  EXPECT_FALSE(r.ok());
  const CheckStep& del = Step(r, "delete");
  EXPECT_FALSE(del.ok);
  EXPECT_EQ(del.action, "s3:DeleteObject");
  EXPECT_EQ(del.resource, "arn:aws:s3:::" + env_->bucket + "/" + r.probe_key);
  EXPECT_EQ(del.policy_statement,
            R"({"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::)" + env_->bucket + R"(/*"})");
  EXPECT_NE(del.message.find("s3:DeleteObject"), std::string::npos) << del.message;
  EXPECT_NE(del.message.find("left behind"), std::string::npos) << del.message;
  EXPECT_EQ(del.error_code, "access_denied");
  for (const char* ok_step : {"assume-role", "external-id", "put", "get", "encryption", "list"}) {
    EXPECT_TRUE(Step(r, ok_step).ok) << ok_step << ": " << Step(r, ok_step).message;
  }
  EXPECT_NE(r.ToText().find("[FAIL] delete"), std::string::npos) << r.ToText();
}

TEST_F(DestinationCheckMotoTest, CatchesATrustPolicyWithoutExternalId) {
  auto r = Check(Spec("no_external_id"));
  EXPECT_FALSE(r.ok());
  const CheckStep& ext = Step(r, "external-id");
  EXPECT_FALSE(ext.ok);
  EXPECT_EQ(ext.message, "the trust policy of " + env_->roles.at("no_external_id") +
                             " does not require sts:ExternalId; add Condition StringEquals sts:ExternalId = " +
                             env_->external_id + " (confused-deputy protection)");
  EXPECT_NE(ext.policy_statement.find("\"sts:ExternalId\": \"" + env_->external_id + "\""), std::string::npos)
      << ext.policy_statement;
  EXPECT_NE(ext.policy_statement.find(env_->user_arn), std::string::npos) << ext.policy_statement;
  // Everything else works: only the missing condition is reported.
  int failed = 0;
  for (const auto& s : r.steps) failed += s.ok ? 0 : 1;
  EXPECT_EQ(failed, 1) << r.ToText();
}

TEST_F(DestinationCheckMotoTest, NamesPutObjectForARoleLackingItAndStillChecksTheRest) {
  auto r = Check(Spec("no_put"));
  EXPECT_FALSE(r.ok());
  const CheckStep& put = Step(r, "put");
  EXPECT_FALSE(put.ok);
  EXPECT_EQ(put.action, "s3:PutObject");
  EXPECT_NE(put.message.find("s3:PutObject"), std::string::npos);
  EXPECT_NE(put.message.find(env_->roles.at("no_put")), std::string::npos);
  EXPECT_TRUE(Step(r, "get").skipped);
  EXPECT_TRUE(Step(r, "encryption").skipped);
  EXPECT_TRUE(Step(r, "list").ok) << Step(r, "list").message;
  EXPECT_TRUE(Step(r, "delete").ok) << Step(r, "delete").message;
}

TEST_F(DestinationCheckMotoTest, WrongExternalIdIsRefusedWithTheTrustStatement) {
  auto spec = Spec();
  spec.external_id = "not-the-project-token";
  auto r = Check(spec);
  EXPECT_FALSE(r.ok());
  const CheckStep& assume = Step(r, "assume-role");
  EXPECT_FALSE(assume.ok);
  EXPECT_EQ(assume.error_code, "access_denied");
  EXPECT_EQ(assume.action, "sts:AssumeRole");
  EXPECT_NE(assume.message.find("sts:ExternalId = not-the-project-token"), std::string::npos) << assume.message;
  EXPECT_TRUE(Step(r, "put").skipped);
}

TEST_F(DestinationCheckMotoTest, WrongSecretSaysCheckTheKeysAndNeverPrintsThem) {
  const std::string wrong = "WrongSecretKeyWrongSecretKeyWrong0123456";
  auto r = Check(Spec(), wrong);
  EXPECT_FALSE(r.ok());
  const CheckStep& assume = Step(r, "assume-role");
  EXPECT_EQ(assume.error_code, "unauthenticated");
  EXPECT_NE(assume.message.find("access key ID and the secret access key"), std::string::npos) << assume.message;
  for (const std::string& text : {r.ToText(), r.ToJson()}) {
    EXPECT_EQ(text.find(wrong), std::string::npos);
    EXPECT_EQ(text.find(env_->secret_access_key.Reveal()), std::string::npos);
  }
}

TEST_F(DestinationCheckMotoTest, JsonIsStructured) {
  auto r = Check(Spec("no_delete"));
  auto v = boost::json::parse(r.ToJson());
  const auto& o = v.as_object();
  EXPECT_FALSE(o.at("ok").as_bool());
  EXPECT_EQ(o.at("probe_key").as_string(), r.probe_key);
  const auto& steps = o.at("steps").as_array();
  ASSERT_EQ(steps.size(), 7u);
  EXPECT_EQ(steps[6].as_object().at("name").as_string(), "delete");
  EXPECT_EQ(steps[6].as_object().at("action").as_string(), "s3:DeleteObject");
}

}  // namespace
}  // namespace sluice::objstore
