#include "storage_access/static_credentials.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "aws/providers.h"
#include "common/crypto.h"
#include "storage_access/open.h"

namespace sluice::storage_access {
namespace {

class StaticCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sluice-static-cred-" + RandomHex(64));
    auto s = store::Store::Open(dir_, store::StoreOptions{.sync_writes = false});
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    store_ = std::move(s).value();
    registry_ = std::make_shared<StaticCredentialRegistry>(*store_);
  }
  void TearDown() override {
    registry_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  StaticCredential Key(std::string name, std::optional<std::vector<uint32_t>> projects) {
    return {.name = name,
            .access_key_id = "GOOG1E-" + name,
            .secret_access_key = Secret("hmac-secret-value"),
            .projects = std::move(projects),
            .created_ms = 1};
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  std::shared_ptr<StaticCredentialRegistry> registry_;
};

TEST_F(StaticCredentialsTest, StoresListsAndDeletesByName) {
  ASSERT_TRUE(registry_->Create(Key("minio-eu", std::vector<uint32_t>{3})).ok());
  ASSERT_TRUE(registry_->Create(Key("ceph", std::nullopt)).ok());
  auto dup = registry_->Create(Key("ceph", std::nullopt));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::kConflict);
  auto list = registry_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "ceph");
  EXPECT_FALSE((*list)[0].projects.has_value());
  EXPECT_EQ((*list)[1].secret_access_key.Reveal(), "hmac-secret-value");
  EXPECT_EQ(*(*list)[1].projects, (std::vector<uint32_t>{3}));
  ASSERT_TRUE(registry_->Delete("ceph").ok());
  EXPECT_EQ(registry_->Delete("ceph").error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(registry_->Get("ceph")->has_value());
}

TEST_F(StaticCredentialsTest, RefusesBadNamesKeysAndSecretsWithoutEchoingTheSecret) {
  for (const std::string& name :
       std::vector<std::string>{"", "A", "-x", "a/b", "a b", "..", std::string(65, 'a')}) {
    auto s = registry_->Create(Key(name, std::nullopt));
    ASSERT_FALSE(s.ok()) << name;
    EXPECT_NE(s.error().message.find("name"), std::string::npos);
  }
  StaticCredential c = Key("ok", std::nullopt);
  c.access_key_id = "AK/ID";
  EXPECT_NE(registry_->Create(c).error().message.find("access_key_id"), std::string::npos);
  c = Key("ok", std::nullopt);
  c.secret_access_key = Secret("short");
  auto s = registry_->Create(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("secret_access_key"), std::string::npos);
  EXPECT_EQ(s.error().message.find("short"), std::string::npos);
}

// A key reaches every bucket its policy allows, so projects sharing one could reach each other's buckets: a
// key serves one project. Several projects, or the same key id under another name for another project, are
// refused; a record stored before this rule with several projects is refused to each of them, saying what the
// operator must do (and naming none of the other projects).
TEST_F(StaticCredentialsTest, AKeyServesOneProjectOnly) {
  auto several = registry_->Create(Key("shared", std::vector<uint32_t>{1, 2}));
  ASSERT_FALSE(several.ok());
  EXPECT_EQ(several.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(several.error().message.find("must name one project"), std::string::npos);
  ASSERT_TRUE(registry_->Create(Key("for-one", std::vector<uint32_t>{1})).ok());
  StaticCredential again = Key("for-two", std::vector<uint32_t>{2});
  again.access_key_id = "GOOG1E-for-one";
  auto reused = registry_->Create(again);
  ASSERT_FALSE(reused.ok());
  EXPECT_EQ(reused.error().code, ErrorCode::kConflict);
  EXPECT_NE(reused.error().message.find("one project only"), std::string::npos);
  again.projects = std::vector<uint32_t>{1};  // the same key under a second name for the same project is fine
  EXPECT_TRUE(registry_->Create(again).ok());
  ASSERT_TRUE(store_
                  ->PutMeta("s3_credential", "legacy",
                            R"({"access_key_id":"GOOG1ELEGACY","secret_access_key":"hmac-secret-value",)"
                            R"("created_ms":1,"projects":[1,2]})")
                  .ok());
  for (uint32_t project : {1u, 2u}) {
    auto r = registry_->ResolveFor("legacy", project, "s3_credential");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("granted to several projects"), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.find(std::to_string(3 - project) + " "), std::string::npos)
        << r.error().message;
  }
}

TEST_F(StaticCredentialsTest, AProjectOnlyUsesWhatWasGrantedAndCannotTellMissingFromForeign) {
  ASSERT_TRUE(registry_->Create(Key("for-a", std::vector<uint32_t>{1})).ok());
  ASSERT_TRUE(registry_->Create(Key("for-b", std::vector<uint32_t>{2})).ok());
  ASSERT_TRUE(registry_->Create(Key("ungranted", std::nullopt)).ok());
  EXPECT_TRUE(registry_->ResolveFor("for-a", 1, "s3_credential").ok());
  EXPECT_TRUE(registry_->ResolveFor("for-b", 2, "s3_credential").ok());
  // A record without a project list grants nothing (never every tenant).
  EXPECT_FALSE(registry_->ResolveFor("ungranted", 1, "s3_credential").ok());
  auto foreign = registry_->ResolveFor("for-a", 2, "s3_credential");
  auto missing = registry_->ResolveFor("nope", 2, "s3_credential");
  ASSERT_FALSE(foreign.ok());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(foreign.error().code, missing.error().code);
  std::string f = foreign.error().message, m = missing.error().message;
  f.replace(f.find("for-a"), 5, "X");
  m.replace(m.find("nope"), 4, "X");
  EXPECT_EQ(f, m);
  EXPECT_EQ(registry_->ResolveFor("../x", 1, "s3_credential").error().code, ErrorCode::kInvalidArgument);
}

TEST_F(StaticCredentialsTest, OpenSignsWithTheKeyAndCallsNoSts) {
  ASSERT_TRUE(registry_->Create(Key("minio", std::vector<uint32_t>{4})).ok());
  AccessContext ctx;  // no AWS identity of Sluice's own: only the static key can open the store
  ctx.s3_endpoints = *aws::EndpointPolicy::Create(
      {"http://127.0.0.1:9000"}, [](std::string_view) { return std::optional<std::string>(); });
  ctx.static_credentials = registry_;
  S3Location l{
      .bucket = "acme", .region = "us-east-1", .endpoint = "http://127.0.0.1:9000", .credential = "minio"};
  auto opened = Open(l, {.session_name = "sluice-p4-x", .purpose = Purpose::kWrite, .project_id = 4}, ctx);
  ASSERT_TRUE(opened.ok()) << opened.error().ToString();
  EXPECT_EQ(opened->sts, nullptr);
  auto creds = opened->role->Get();
  ASSERT_TRUE(creds.ok());
  EXPECT_EQ(creds->access_key_id, "GOOG1E-minio");
  EXPECT_TRUE(creds->session_token.empty());

  auto other = Open(l, {.session_name = "sluice-p5-x", .purpose = Purpose::kWrite, .project_id = 5}, ctx);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.error().message.find("s3_credential"), std::string::npos);
  // The endpoint policy still applies.
  l.endpoint = "http://127.0.0.1:9001";
  EXPECT_FALSE(Open(l, {.purpose = Purpose::kWrite, .project_id = 4}, ctx).ok());
  // Without the registry nothing can be used.
  l.endpoint = "http://127.0.0.1:9000";
  ctx.static_credentials = nullptr;
  EXPECT_FALSE(Open(l, {.purpose = Purpose::kWrite, .project_id = 4}, ctx).ok());
  // Validation: a credential and a role together, or a bad name.
  S3Location both = l;
  both.role_arn = "arn:aws:iam::123456789012:role/r";
  EXPECT_FALSE(Validate(both, Role::kDestination).ok());
  S3Location bad = l;
  bad.credential = "Bad Name";
  std::string field;
  EXPECT_FALSE(Validate(bad, Role::kSource, "connector_properties.", &field).ok());
  EXPECT_EQ(field, "connector_properties.s3_credential");
  EXPECT_TRUE(Validate(l, Role::kDestination).ok());
}

}  // namespace
}  // namespace sluice::storage_access
