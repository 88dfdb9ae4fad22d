// The Sluice HTTP API in process, for tests: a real Store in a fresh temp dir, the Service, the HTTP server
// on a free loopback port, and a libcurl client to send real requests to it. One object per test fixture.
//
//   ApiHarness api;
//   ASSERT_TRUE(api.OpenStore().ok());
//   ASSERT_TRUE(api.Serve({.admin_token = Secret(kAdminToken)}).ok());
//   auto project = api.CreateProject("web", kAdminToken);      // id, token, api_secret
//   auto r = api.Send("POST", "/import", body, {{"Authorization", ApiHarness::Basic(project.secret)}});
//
// Tear-down order matters when a test owns something the Service points at (a connector or pipeline manager):
// StopServing() first, then stop that, then the destructor closes the store and removes the directory.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/service.h"
#include "common/result.h"
#include "http/server.h"
#include "http/transport.h"
#include "store/store.h"

namespace sluice::testing {

using Headers = std::vector<std::pair<std::string, std::string>>;

/// One HTTP response as a test looks at it.
struct Reply {
  int status = 0;  // 0 when the request did not get an answer (the failure is reported by Send)
  std::string body;
  Headers headers;

  /// The value of header `name`, compared case-insensitively; empty when absent.
  std::string Header(std::string_view name) const;
  /// The body parsed as JSON; throws on invalid JSON, as boost::json::parse does.
  boost::json::value Json() const;
  /// The body as a JSON object, or an empty object when it is not one (for asserting on error shapes).
  boost::json::object Object() const;
  /// The "error" member of a JSON error body (Mixpanel's shape), or "" when there is none.
  std::string Error() const;
};

/// A project as the admin API returns it.
struct TestProject {
  uint32_t id = 0;
  std::string token;
  std::string secret;
};

class ApiHarness {
 public:
  ApiHarness() = default;
  ApiHarness(const ApiHarness&) = delete;
  ApiHarness& operator=(const ApiHarness&) = delete;
  ~ApiHarness();

  /// Opens a store in a new directory under the system temp dir.
  Status OpenStore(store::StoreOptions options = {});
  /// Opens a store as OpenStore does, then serves it through `wrap` (e.g. store::ComposeStore with a /healthz
  /// check of the test's own), which gets the opened store and a fresh directory for any other part.
  Status OpenStoreWrapped(const std::function<Result<std::unique_ptr<store::Store>>(
                              std::unique_ptr<store::Store> opened, const std::filesystem::path& dir)>& wrap);
  /// Creates the Service over the open store and starts the server on a free loopback port.
  Status Serve(api::ServiceOptions options, http::ServerOptions server = {.listen_port = 0, .threads = 2});
  /// Shuts the server down and destroys the Service; the store stays open.
  void StopServing();

  /// Sends one request to the server; `path` starts with '/'. POSTs always carry a body (possibly empty).
  /// A transport failure is reported as a gtest failure and yields status 0.
  Reply Send(const std::string& method, const std::string& path, std::string body = {}, Headers headers = {});

  /// POST /api/app/projects with the admin token; a gtest failure (and an empty project) when refused.
  TestProject CreateProject(const std::string& name, std::string_view admin_token);

  static std::string Bearer(std::string_view admin_token);
  /// HTTP Basic with the project's API secret as user name and no password, as Mixpanel's clients send it.
  static std::string Basic(std::string_view secret);

  store::Store& store() { return *store_; }
  api::Service& service() { return *service_; }
  const std::filesystem::path& dir() const { return dir_; }
  /// http://127.0.0.1:PORT
  const std::string& base_url() const { return base_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<api::Service> service_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<http::HttpTransport> transport_;
  std::string base_;
};

}  // namespace sluice::testing
