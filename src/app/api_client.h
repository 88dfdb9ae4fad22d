// The HTTP client the CLI's commands share: finds the running server (--server, $SLUICE_SERVER, or the data
// dir's server.url) and its admin token (--admin-token, $SLUICE_ADMIN_TOKEN, or DATA_DIR/admin-token), then
// calls the server's API with `Authorization: Bearer <admin token>`.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "app/config.h"
#include "common/result.h"
#include "http/transport.h"

namespace sluice::app {

struct ClientFlags {
  std::string server;
  std::string admin_token;
  std::string data_dir = "./data";
  bool insecure = false;
};

/// Adds --server, --admin-token, --data-dir and --insecure to `cmd`, bound to `f` (which must outlive
/// parsing).
void AddClientFlags(CLI::App* cmd, ClientFlags& f);

class ApiClient {
 public:
  /// Resolves the server and admin token (fails naming what is missing).
  static Result<ApiClient> Connect(const ClientFlags& f);

  /// Sends a request and returns the response body; a non-2xx answer becomes an error carrying the server's
  /// message ({"error": …}) and its HTTP status. A non-empty `body` is sent with `content_type`.
  Result<std::string> Call(std::string method, const std::string& path_and_query, std::string body = {},
                           std::string_view content_type = "application/json");

  /// Streams the response body to stdout.
  Status Stream(const std::string& path_and_query);

 private:
  ApiClient(ClientTarget t, std::unique_ptr<http::HttpTransport> tr)
      : target_(std::move(t)), transport_(std::move(tr)) {}

  ClientTarget target_;
  std::unique_ptr<http::HttpTransport> transport_;
};

/// Prints "error: <message>" to stderr; returns the exit code 1.
int Fail(const Error& e);

/// Percent-encodes everything but RFC 3986 unreserved characters (for query values and form fields).
std::string Encode(std::string_view v);

}  // namespace sluice::app
