// Named static credentials (issue 11 item 6) through the real `sluice serve` against moto in auth mode: the
// admin API (create, list without the secret, delete, validation, admin token only), a pipeline that exports
// with `s3_credential` instead of `s3_role`, an s3Import connector that reads with it, and the tenant
// isolation rules (a project may only use a credential granted to it, and cannot tell a missing name from one
// granted to another project). The credential holds a key moto accepts (the test's administrator key, as an
// operator would register a MinIO or GCS HMAC key); the server is not given Sluice's assume-only AWS user and
// the locations name no role, so what works does so with the static key alone.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "aws/providers.h"
#include "common/crypto.h"
#include "objstore/s3/s3_object_store.h"
#include "pipeline/e2e_support.h"
#include "pipeline/layout.h"

namespace sluice::testing::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

class StaticCredentialsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    moto_ = new E2eMoto();
    if (!moto_->error().empty()) {
      error_ = new std::string("moto could not start: " + moto_->error());
      return;
    }
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     ("sluice-static-keys-" + RandomHex(64)));
    // No AWS identity of its own (nullptr): the static key is the only way to the bucket. moto is the
    // operator's endpoint (--allow-endpoint), as a MinIO would be.
    server_ = new SluiceServer(*dir_, nullptr, {"--allow-endpoint", moto_->Endpoint()});
    std::string err;
    if (!server_->Start(&err)) {
      error_ = new std::string("sluice serve did not start: " + err);
      return;
    }
    admin_ = new std::shared_ptr<objstore::ObjectStore>(moto_->AdminBucket());
    if (!*admin_) error_ = new std::string("admin S3 client could not be built");
  }

  static void TearDownTestSuite() {
    if (server_) server_->Terminate();
    delete server_;
    server_ = nullptr;
    delete admin_;
    admin_ = nullptr;
    delete moto_;
    moto_ = nullptr;
    if (dir_) std::filesystem::remove_all(*dir_);
    delete dir_;
    dir_ = nullptr;
    delete error_;
    error_ = nullptr;
  }

  void SetUp() override { ASSERT_EQ(error_, nullptr) << *error_; }

  SluiceServer& server() { return *server_; }
  const MotoEnvironment& env() { return moto_->env(); }

  std::vector<std::pair<std::string, std::string>> Admin() {
    return {{"Authorization", "Bearer " + server().process().admin_token()}};
  }
  ServerProcess::Reply AdminSend(const std::string& method, const std::string& path,
                                 const std::string& body = "") {
    return server().process().Send(method, path, body, Admin());
  }
  /// Creates credential `name` with moto's administrator key, granted to `projects`.
  void CreateCredential(const std::string& name, const std::vector<uint32_t>& projects) {
    // moto has one administrator key and a key serves one project: drop this suite's earlier grants of it.
    auto listed = AdminSend("GET", "/api/app/credentials");
    ASSERT_EQ(listed.status, 200) << listed.body;
    for (const auto& c : json::parse(listed.body).at("credentials").as_array()) {
      if (c.at("access_key_id").as_string() == env().admin_access_key_id) {
        const std::string other(c.at("name").as_string());
        ASSERT_EQ(AdminSend("DELETE", "/api/app/credentials/" + other).status, 200);
      }
    }
    json::array ids;
    for (uint32_t id : projects) ids.push_back(id);
    auto r =
        AdminSend("POST", "/api/app/credentials",
                  json::serialize(json::object{{"name", name},
                                               {"access_key_id", env().admin_access_key_id},
                                               {"secret_access_key", env().admin_secret_access_key.Reveal()},
                                               {"projects", std::move(ids)}}));
    ASSERT_EQ(r.status, 200) << r.body;
  }
  Params S3Params(const std::string& credential) {
    return {{"type", "s3"},
            {"s3_bucket", env().bucket},
            {"s3_region", env().region},
            {"s3_credential", credential},
            {"s3_endpoint", moto_->Endpoint()}};
  }
  json::object ImportBody(const std::string& credential, const std::string& prefix) {
    return json::object{{"connector_type", "s3Import"},
                        {"connector_properties", json::object{{"s3_bucket", env().import_bucket},
                                                              {"s3_prefix", prefix},
                                                              {"s3_region", env().region},
                                                              {"s3_endpoint", moto_->Endpoint()},
                                                              {"s3_credential", credential}}},
                        {"category_properties", json::object{{"data_format", "mixpanel_event"}}}};
  }

  static inline E2eMoto* moto_ = nullptr;
  static inline SluiceServer* server_ = nullptr;
  static inline std::filesystem::path* dir_ = nullptr;
  static inline std::shared_ptr<objstore::ObjectStore>* admin_ = nullptr;
  static inline std::string* error_ = nullptr;
};

TEST_F(StaticCredentialsTest, AdminApiCreatesListsWithoutTheSecretAndDeletes) {
  auto p = server().CreateProject("keys-admin");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  const std::string secret = "s3cr3t-" + RandomHex(64);
  json::object body{{"name", "minio-eu"},
                    {"access_key_id", "GOOG1EXAMPLEKEY"},
                    {"secret_access_key", secret},
                    {"projects", json::array{p->id}}};
  // Admin token only: a project's API secret is refused.
  auto as_project = server().process().Send("POST", "/api/app/credentials", json::serialize(body),
                                            {{"Authorization", p->Authorization()}});
  EXPECT_EQ(as_project.status, 401) << as_project.body;
  auto list_as_project =
      server().process().Send("GET", "/api/app/credentials", "", {{"Authorization", p->Authorization()}});
  EXPECT_EQ(list_as_project.status, 401) << list_as_project.body;

  auto created = AdminSend("POST", "/api/app/credentials", json::serialize(body));
  ASSERT_EQ(created.status, 200) << created.body;
  EXPECT_EQ(created.body.find(secret), std::string::npos) << "the answer must not echo the secret";
  auto again = AdminSend("POST", "/api/app/credentials", json::serialize(body));
  EXPECT_EQ(again.status, 409) << again.body;

  auto listed = AdminSend("GET", "/api/app/credentials");
  ASSERT_EQ(listed.status, 200) << listed.body;
  EXPECT_EQ(listed.body.find(secret), std::string::npos) << listed.body;
  json::value v = json::parse(listed.body);
  bool found = false;
  for (const auto& c : v.at("credentials").as_array()) {
    if (c.at("name").as_string() != "minio-eu") continue;
    found = true;
    EXPECT_EQ(c.at("access_key_id").as_string(), "GOOG1EXAMPLEKEY");
    EXPECT_FALSE(c.as_object().contains("secret_access_key"));
    EXPECT_EQ(c.at("projects").as_array().size(), 1u);
  }
  EXPECT_TRUE(found) << listed.body;

  // Validation: names, key ids, secrets, unknown projects and fields; no message repeats the secret.
  auto refused = [&](json::object b, const std::string& field) {
    SCOPED_TRACE(json::serialize(b));
    auto r = AdminSend("POST", "/api/app/credentials", json::serialize(b));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find(field), std::string::npos) << r.body;
    EXPECT_EQ(r.body.find(secret), std::string::npos) << r.body;
  };
  json::object bad = body;
  for (const char* name : {"", "Upper", "../x", "a b", "-lead"}) {
    bad["name"] = name;
    refused(bad, "name");
  }
  bad["name"] = std::string(65, 'a');
  refused(bad, "name");
  bad = body;
  bad["name"] = "other";
  bad["access_key_id"] = "AK/ID";
  refused(bad, "access_key_id");
  bad = body;
  bad["name"] = "other";
  bad["secret_access_key"] = secret + " with space";
  refused(bad, "secret_access_key");
  bad = body;
  bad["name"] = "other";
  bad["projects"] = json::array{999999};
  refused(bad, "projects");
  bad.erase("projects");  // required: a key never defaults to every project
  refused(bad, "projects");
  bad["projects"] = json::array{};
  refused(bad, "projects");
  auto another = server().CreateProject("keys-admin-2");
  ASSERT_TRUE(another.ok());
  bad["projects"] = json::array{p->id, another->id};  // a key serves one project
  refused(bad, "must name one project");
  bad = body;
  bad["name"] = "other";
  bad["projects"] = json::array{another->id};  // the same key id for another project
  {
    auto r = AdminSend("POST", "/api/app/credentials", json::serialize(bad));
    EXPECT_EQ(r.status, 409) << r.body;
    EXPECT_NE(r.body.find("one project only"), std::string::npos) << r.body;
    EXPECT_EQ(r.body.find(secret), std::string::npos) << r.body;
  }
  bad = body;
  bad["name"] = "other";
  bad["role"] = "x";
  refused(bad, "role");
  EXPECT_EQ(AdminSend("POST", "/api/app/credentials", "not json").status, 400);

  auto deleted = AdminSend("DELETE", "/api/app/credentials/minio-eu");
  EXPECT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(AdminSend("DELETE", "/api/app/credentials/minio-eu").status, 404);
  EXPECT_EQ(AdminSend("DELETE", "/api/app/credentials/Bad%20Name").status, 400);
  auto after = AdminSend("GET", "/api/app/credentials");
  EXPECT_EQ(after.body.find("minio-eu"), std::string::npos) << after.body;
}

TEST_F(StaticCredentialsTest, PipelineExportsWithAStaticKeyAndOtherProjectsAreRefused) {
  auto a = server().CreateProject("keys-a");
  auto b = server().CreateProject("keys-b");
  ASSERT_TRUE(a.ok() && b.ok());
  CreateCredential("moto-a", {a->id});
  const int64_t day = TodayUtc() - 1;
  ASSERT_TRUE(server().Import(*a, MakeDayEvents(day, 200, "sk", 5)).ok());

  Params params = S3Params("moto-a");
  params.insert(params.end(), {{"from_date", DateOf(day)}, {"to_date", DateOf(day)}});
  auto created = server().PipelinePost(*a, "create", params);
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string name(json::parse(created.body).at("pipeline_names").as_array().at(0).as_string());
  std::string last;
  std::string err = WaitUntil(
      [&] {
        auto tasks = Timeline(server(), *a, name);
        if (!tasks.ok()) return false;
        last.clear();
        for (const auto& t : *tasks) {
          last += t.partition + ":" + t.state + " " + t.message + "; ";
          if (t.state == "succeeded") return true;
        }
        return false;
      },
      90s, [&] { return last; });
  ASSERT_EQ(err, "");
  auto content = ReadPartition(**admin_, pipeline::EventsUnitDir(a->id, pipeline::Unit{day * 24, 24}));
  ASSERT_TRUE(content.ok()) << content.error().ToString();
  auto expected = server().ReadBack(*a, day);
  ASSERT_TRUE(expected.ok()) << expected.error().ToString();
  EXPECT_EQ(expected->size(), 200u);
  EXPECT_EQ(CompareEvents(content->lines, *expected), "");

  // Project B naming A's credential, and a name that does not exist: the same refusal, revealing nothing.
  Params for_b = S3Params("moto-a");
  for_b.insert(for_b.end(), {{"from_date", DateOf(day)}});
  auto granted_elsewhere = server().PipelinePost(*b, "create", for_b);
  EXPECT_EQ(granted_elsewhere.status, 400) << granted_elsewhere.body;
  Params missing = S3Params("no-such-key");
  missing.insert(missing.end(), {{"from_date", DateOf(day)}});
  auto absent = server().PipelinePost(*b, "create", missing);
  EXPECT_EQ(absent.status, 400) << absent.body;
  auto shape = [](std::string body, const std::string& key) {
    auto at = body.find(key);
    if (at != std::string::npos) body.replace(at, key.size(), "NAME");
    return body;
  };
  EXPECT_EQ(shape(granted_elsewhere.body, "moto-a"), shape(absent.body, "no-such-key"));
  EXPECT_NE(granted_elsewhere.body.find("s3_credential"), std::string::npos) << granted_elsewhere.body;
  EXPECT_EQ(granted_elsewhere.body.find(env().admin_access_key_id), std::string::npos)
      << granted_elsewhere.body;

  // A role and a credential at once are ambiguous; a malformed name is refused at the edge.
  Params both = S3Params("moto-a");
  both.insert(both.end(), {{"from_date", DateOf(day)}, {"s3_role", "arn:aws:iam::123456789012:role/r"}});
  auto ambiguous = server().PipelinePost(*a, "create", both);
  EXPECT_EQ(ambiguous.status, 400) << ambiguous.body;
  Params malformed = S3Params("../../etc");
  malformed.insert(malformed.end(), {{"from_date", DateOf(day)}});
  auto bad_name = server().PipelinePost(*a, "create", malformed);
  EXPECT_EQ(bad_name.status, 400) << bad_name.body;
  EXPECT_NE(bad_name.body.find("s3_credential"), std::string::npos) << bad_name.body;
}

TEST_F(StaticCredentialsTest, ImportReadsWithAStaticKeyAndOtherProjectsAreRefused) {
  auto a = server().CreateProject("keys-import-a");
  auto b = server().CreateProject("keys-import-b");
  ASSERT_TRUE(a.ok() && b.ok());
  CreateCredential("moto-import", {a->id});
  const int64_t day = TodayUtc() - 2;
  std::string file;
  for (const auto& line : MakeDayEvents(day, 30, "si", 9)) file += line + "\n";
  // No '/' in the prefix: moto rejects listing prefixes with '/' in auth mode.
  const std::string prefix = "static-" + RandomHex(32) + "-";
  // The customer's file, uploaded with the administrator's key into the import bucket.
  objstore::s3::S3StoreOptions o;
  o.bucket = env().import_bucket;
  o.region = env().region;
  o.endpoint = moto_->Endpoint();
  auto admin_import = objstore::s3::S3ObjectStore::Create(
      o, std::make_shared<aws::StaticCredentialsProvider>(
             aws::Credentials{.access_key_id = env().admin_access_key_id,
                              .secret_access_key = env().admin_secret_access_key,
                              .session_token = Secret(),
                              .expiration = std::nullopt}));
  ASSERT_TRUE(admin_import.ok()) << admin_import.error().ToString();
  ASSERT_TRUE((*admin_import)->Put(prefix + "a.json", file).ok());

  const std::string base_a = fmt::format("/api/app/projects/{}/connectors", a->id);
  auto created = AdminSend("POST", base_a, json::serialize(ImportBody("moto-import", prefix)));
  ASSERT_EQ(created.status, 200) << created.body;
  const json::value cv = json::parse(created.body);
  EXPECT_EQ(cv.at("results").at("connector_properties").at("s3_credential").as_string(), "moto-import");
  const std::string id(cv.at("results").at("connector_id").as_string());
  json::object run;
  std::string last;
  std::string err = WaitUntil(
      [&] {
        auto h = AdminSend("GET", base_a + "/" + id + "/history");
        last = h.body;
        if (h.status != 200) return false;
        auto runs = json::parse(h.body).at("results").at("data").as_array();
        if (runs.empty()) return false;
        const auto status = runs.front().at("status").as_string();
        if (status == "running" || status == "queued") return false;
        run = runs.front().as_object();
        return true;
      },
      60s, [&] { return last; });
  ASSERT_EQ(err, "");
  EXPECT_EQ(run.at("status").as_string(), "success") << json::serialize(run);
  auto stored = server().ReadBack(*a, day);
  ASSERT_TRUE(stored.ok()) << stored.error().ToString();
  EXPECT_EQ(stored->size(), 30u);

  // Project B: A's credential and a missing one are refused alike; nothing is created.
  const std::string base_b = fmt::format("/api/app/projects/{}/connectors", b->id);
  auto granted_elsewhere = AdminSend("POST", base_b, json::serialize(ImportBody("moto-import", prefix)));
  auto absent = AdminSend("POST", base_b, json::serialize(ImportBody("no-such-key", prefix)));
  EXPECT_EQ(granted_elsewhere.status, 400) << granted_elsewhere.body;
  EXPECT_EQ(absent.status, 400) << absent.body;
  EXPECT_NE(granted_elsewhere.body.find("connector_properties.s3_credential"), std::string::npos)
      << granted_elsewhere.body;
  auto strip = [](std::string body, const std::string& name) {
    for (auto at = body.find(name); at != std::string::npos; at = body.find(name))
      body.replace(at, name.size(), "N");
    return body;
  };
  EXPECT_EQ(strip(granted_elsewhere.body, "moto-import"), strip(absent.body, "no-such-key"));
  auto stored_b = server().ReadBack(*b, day);
  ASSERT_TRUE(stored_b.ok());
  EXPECT_TRUE(stored_b->empty());

  // A key the store rejects (here: the right id, a wrong secret) is named as the operator's static key, in
  // the field the project set, never as a role or Sluice's own credentials.
  auto wrong = AdminSend("POST", "/api/app/credentials",
                         json::serialize(json::object{{"name", "moto-wrong"},
                                                      {"access_key_id", env().admin_access_key_id},
                                                      {"secret_access_key", "wrong-secret-0123456789"},
                                                      {"projects", json::array{a->id}}}));
  ASSERT_EQ(wrong.status, 200) << wrong.body;
  auto rejected = AdminSend("POST", base_a, json::serialize(ImportBody("moto-wrong", prefix)));
  EXPECT_EQ(rejected.status, 400) << rejected.body;
  EXPECT_NE(rejected.body.find(R"("field":"connector_properties.s3_credential")"), std::string::npos)
      << rejected.body;
  EXPECT_NE(rejected.body.find("rejected the static key 'moto-wrong'"), std::string::npos) << rejected.body;
  EXPECT_EQ(rejected.body.find("wrong-secret"), std::string::npos) << rejected.body;
}

}  // namespace
}  // namespace sluice::testing::e2e
