#include "app/api_client.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <boost/url.hpp>
#include <chrono>
#include <iostream>

namespace sluice::app {
namespace {

std::chrono::steady_clock::time_point Deadline() {
  return std::chrono::steady_clock::now() + std::chrono::minutes(5);
}

Error ServerError(int status, const std::string& body) {
  std::string message = body;
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  // {"error": …}, or Mixpanel's errorResponse {"status":"error","type":…,"message":…} (connectors API).
  const char* key = !ec && v.is_object() && v.as_object().contains("error") ? "error" : "message";
  if (!ec && v.is_object() && v.as_object().contains(key) && v.at(key).is_string()) {
    message = std::string(v.at(key).as_string());
    // Mixpanel-style errors (connectors API) also name the field and an error code.
    if (auto* field = v.as_object().if_contains("field"); field && field->is_string()) {
      message += fmt::format(" [field {}]", std::string_view(field->as_string()));
    }
    if (auto* code = v.as_object().if_contains("code"); code && code->is_string()) {
      message += fmt::format(" [{}]", std::string_view(code->as_string()));
    }
  }
  Error e(status == 401 ? ErrorCode::kUnauthenticated : ErrorCode::kPermanent,
          fmt::format("server answered HTTP {}{}{}", status, message.empty() ? "" : ": ", message));
  e.http_status = status;
  return e;
}

}  // namespace

void AddClientFlags(CLI::App* cmd, ClientFlags& f) {
  cmd->add_option("--server", f.server, "Server URL (default: $SLUICE_SERVER, else DATA_DIR/server.url)");
  cmd->add_option("--admin-token", f.admin_token,
                  "Admin token (default: $SLUICE_ADMIN_TOKEN, else DATA_DIR/admin-token)");
  cmd->add_option("--data-dir", f.data_dir, "The server's data dir, to find its URL and admin token")
      ->capture_default_str();
  cmd->add_flag("--insecure", f.insecure,
                "Do not verify the server's TLS certificate (self-signed test servers)");
}

Result<ApiClient> ApiClient::Connect(const ClientFlags& f) {
  SLUICE_ASSIGN_OR_RETURN(auto target, ResolveClientTarget(f.server, f.admin_token, f.data_dir));
  http::TransportOptions opts;
  opts.insecure_skip_verify = f.insecure;
  return ApiClient(std::move(target), http::MakeCurlTransport(opts));
}

Result<std::string> ApiClient::Call(std::string method, const std::string& path_and_query, std::string body,
                                    std::string_view content_type) {
  http::OutboundRequest req{.method = std::move(method), .url = target_.server_url + path_and_query};
  req.headers.emplace_back("Authorization", "Bearer " + target_.admin_token.Reveal());
  if (!body.empty()) {
    req.headers.emplace_back("Content-Type", std::string(content_type));
    req.body = http::RequestBody::FromString(std::move(body));
  }
  SLUICE_ASSIGN_OR_RETURN(auto resp, transport_->Send(req, Deadline()));
  if (resp.status / 100 != 2) return ServerError(resp.status, resp.body);
  return std::move(resp.body);
}

Status ApiClient::Stream(const std::string& path_and_query) {
  http::OutboundRequest req{.method = "GET", .url = target_.server_url + path_and_query};
  req.headers.emplace_back("Authorization", "Bearer " + target_.admin_token.Reveal());
  SLUICE_ASSIGN_OR_RETURN(auto resp,
                          transport_->SendStreaming(req, std::chrono::steady_clock::time_point::max(),
                                                    [&](std::string_view chunk) {
                                                      std::cout.write(chunk.data(), chunk.size());
                                                      return static_cast<bool>(std::cout);
                                                    }));
  std::cout.flush();
  if (resp.status / 100 != 2) return ServerError(resp.status, "");
  return OkStatus();
}

int Fail(const Error& e) {
  std::cerr << "error: " << e.message << "\n";
  return 1;
}

std::string Encode(std::string_view v) { return boost::urls::encode(v, boost::urls::unreserved_chars); }

}  // namespace sluice::app
