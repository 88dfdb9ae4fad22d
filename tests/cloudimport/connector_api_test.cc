// The connectors API's Mixpanel shapes, in process: the Service with a ConnectorManager over an in-memory
// bucket, the HTTP server on a free loopback port, real HTTP requests. (moto_import_test.cc covers real S3
// and IAM.)
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <regex>
#include <string>
#include <thread>

#include "api/service.h"
#include "cloudimport/connector_manager.h"
#include "common/crypto.h"
#include "common/metrics.h"
#include "http/server.h"
#include "http/transport.h"
#include "objstore/testing/fake_object_store.h"
#include "store/store.h"
#include "support/api_harness.h"

namespace sluice::cloudimport {
namespace {

namespace json = boost::json;
constexpr char kAdminToken[] = "connector-api-test-admin-token-0123456789";

using testing::Reply;

class ConnectorApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(api_.OpenStore().ok());
    store_ = &api_.store();
    auto project = store_->CreateProject("web");
    ASSERT_TRUE(project.ok());
    project_ = *project;
    bucket_ = std::make_shared<objstore::testing::FakeObjectStore>();
    bucket_->SetObject("in/a.json",
                       R"({"event":"A","properties":{"time":)" +
                           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count() -
                                          3600) +
                           R"(,"distinct_id":"u1","$insert_id":"a-1"}})" + "\n");
    ConnectorManager::Options o{.store = store_, .metrics = &metrics_};
    auto bucket = bucket_;
    o.source_factory = [bucket](const ConnectorSpec&, const store::Project&) -> Result<Source> {
      return Source{.role = nullptr, .store = bucket};
    };
    auto m = ConnectorManager::Create(std::move(o));
    ASSERT_TRUE(m.ok()) << m.error().ToString();
    manager_ = std::move(m).value();
    manager_->Start();
    auto served =
        api_.Serve(api::ServiceOptions{.admin_token = Secret(kAdminToken), .connectors = manager_.get()});
    ASSERT_TRUE(served.ok()) << served.error().ToString();
  }

  void TearDown() override {
    // The Service points at the manager: stop serving before the manager stops; the harness closes the store.
    api_.StopServing();
    if (manager_) manager_->Stop();
    manager_.reset();
  }


  std::string Base() const { return "/api/app/projects/" + std::to_string(project_.id) + "/connectors"; }
  std::string SecretAuth() const {
    return "Basic " + Base64Encode(std::string(project_.api_secret.Reveal()) + ":");
  }
  static std::string AdminAuth() { return std::string("Bearer ") + kAdminToken; }

  Reply Send(const std::string& method, const std::string& path, std::string body = {},
             std::string auth = "") {
    if (auth.empty()) auth = SecretAuth();
    testing::Headers headers{{"Authorization", auth}};
    if (!body.empty() || method == "POST") headers.emplace_back("Content-Type", "application/json");
    return api_.Send(method, path, std::move(body), std::move(headers));
  }

  static std::string Body(const std::string& bucket = "bucket") {
    json::object cp{{"s3_prefix", "in/"},
                    {"s3_region", "us-east-1"},
                    {"s3_role", "arn:aws:iam::123456789012:role/import"}};
    if (!bucket.empty()) cp["s3_bucket"] = bucket;
    return json::serialize(
        json::object{{"connector_type", "s3Import"},
                     {"label", "events"},
                     {"connector_properties", std::move(cp)},
                     {"category_properties", json::object{{"data_format", "mixpanel_event"}}}});
  }

  /// Checks Mixpanel's errorResponse: {"status":"error","type":…,"message":…}, without Sluice's old "error"
  /// key.
  static void ExpectErrorResponse(const Reply& r, int status, std::string_view type,
                                  std::string_view message_part) {
    EXPECT_EQ(r.status, status) << r.body;
    json::object o = r.Object();
    ASSERT_TRUE(o.contains("status") && o.contains("type") && o.contains("message")) << r.body;
    EXPECT_EQ(o.at("status").as_string(), "error");
    EXPECT_EQ(o.at("type").as_string(), type) << r.body;
    EXPECT_NE(std::string(o.at("message").as_string()).find(message_part), std::string::npos) << r.body;
    EXPECT_FALSE(o.contains("error")) << r.body;
  }

  testing::ApiHarness api_;
  store::Store* store_ = nullptr;
  store::Project project_;
  MetricsRegistry metrics_;
  std::shared_ptr<objstore::testing::FakeObjectStore> bucket_;
  std::unique_ptr<ConnectorManager> manager_;
};

TEST_F(ConnectorApiTest, ConnectorsUseMixpanelsNamesAndListShape) {
  Reply created = Send("POST", Base(), Body());
  ASSERT_EQ(created.status, 200) << created.body;
  json::object c = created.Object().at("results").as_object();
  ASSERT_TRUE(c.contains("connector_id")) << created.body;
  EXPECT_FALSE(c.contains("id"));
  EXPECT_FALSE(c.contains("created"));
  const std::string id(c.at("connector_id").as_string());
  EXPECT_EQ(id.size(), 16u);
  const std::string created_at(c.at("created_at").as_string());
  EXPECT_TRUE(std::regex_match(created_at, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)")))
      << created_at;
  EXPECT_EQ(c.at("created_by").as_string(), "api_secret");
  EXPECT_EQ(c.at("connector_type").as_string(), "s3Import");
  EXPECT_EQ(c.at("status").as_string(), "active");

  Reply by_admin = Send("POST", Base(), Body(), AdminAuth());
  ASSERT_EQ(by_admin.status, 200) << by_admin.body;
  EXPECT_EQ(by_admin.Object().at("results").at("created_by").as_string(), "admin");

  Reply list = Send("GET", Base());
  ASSERT_EQ(list.status, 200) << list.body;
  json::object lo = list.Object();
  EXPECT_EQ(lo.at("status").as_string(), "ok");
  const json::object& results = lo.at("results").as_object();
  EXPECT_TRUE(results.at("url").is_null());
  EXPECT_EQ(results.at("has_more").as_bool(), false);
  const json::array& data = results.at("data").as_array();
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(data[0].at("connector_id").as_string(), id);
  EXPECT_EQ(data[0].at("created_at").as_string(), created_at);

  Reply one = Send("GET", Base() + "/" + id);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.Object().at("results").at("connector_id").as_string(), id);

  // History pages the same way.
  Reply history;
  for (int i = 0; i < 300; ++i) {
    history = Send("GET", Base() + "/" + id + "/history");
    json::object h = history.Object();
    if (h.contains("results") && h.at("results").is_object() &&
        !h.at("results").at("data").as_array().empty() &&
        h.at("results").at("data").as_array()[0].at("status").as_string() == "success") {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  json::object h = history.Object();
  ASSERT_TRUE(h.contains("results")) << history.body;
  EXPECT_TRUE(h.at("results").at("url").is_null());
  EXPECT_EQ(h.at("results").at("has_more").as_bool(), false);
  ASSERT_EQ(h.at("results").at("data").as_array().size(), 1u) << history.body;
  EXPECT_EQ(h.at("results").at("data").as_array()[0].at("status").as_string(), "success") << history.body;
}

TEST_F(ConnectorApiTest, ErrorsUseMixpanelsErrorResponse) {
  Reply missing = Send("POST", Base(), Body(""));
  ExpectErrorResponse(missing, 400, "missing_required_property", "s3_bucket");
  json::object m = missing.Object();
  EXPECT_EQ(m.at("code").as_string(), "missing_required_property");
  EXPECT_EQ(m.at("field").as_string(), "connector_properties.s3_bucket");

  ExpectErrorResponse(Send("POST", Base(), "not json"), 400, "invalid_property", "JSON");
  ExpectErrorResponse(Send("GET", Base() + "/nope"), 404, "not_found", "nope");
  ExpectErrorResponse(Send("GET", Base() + "/nope/history"), 404, "not_found", "nope");
  ExpectErrorResponse(Send("GET", Base(), {}, "Basic " + Base64Encode("wrong:")), 401, "unauthorized",
                      "credentials");
  ExpectErrorResponse(Send("GET", "/api/app/projects/999/connectors", {}, AdminAuth()), 404, "not_found",
                      "999");
  // Ids and numbers are strict (issue 9): 2^32 + id does not reach this project.
  ExpectErrorResponse(
      Send("GET", "/api/app/projects/" + std::to_string(4294967296ull + project_.id) + "/connectors", {},
           AdminAuth()),
      400, "invalid_request", "whole number");
  Reply created = Send("POST", Base(), Body());
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string id(created.Object().at("results").at("connector_id").as_string());
  for (std::string bad : {"-1", "1e3", "0", "5abc"}) {
    ExpectErrorResponse(Send("GET", Base() + "/" + id + "/history?limit=" + bad), 400, "invalid_request",
                        "limit");
  }
  ExpectErrorResponse(Send("POST", Base() + "/nope/run"), 404, "not_found", "nope");
}

}  // namespace
}  // namespace sluice::cloudimport
