// Client commands: every one talks to the running server over its HTTP API (the server is the store's only
// owner), authenticating with the admin token.
#include <boost/json.hpp>
#include <boost/url.hpp>

#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "app/commands.h"
#include "app/config.h"
#include "http/transport.h"

namespace sluice::app {
namespace {

struct ClientFlags {
  std::string server;
  std::string admin_token;
  std::string data_dir = "./data";
  bool insecure = false;
};

void AddClientFlags(CLI::App* cmd, ClientFlags& f) {
  cmd->add_option("--server", f.server, "Server URL (default: $SLUICE_SERVER, else DATA_DIR/server.url)");
  cmd->add_option("--admin-token", f.admin_token, "Admin token (default: $SLUICE_ADMIN_TOKEN, else DATA_DIR/admin-token)");
  cmd->add_option("--data-dir", f.data_dir, "The server's data dir, to find its URL and admin token")
      ->capture_default_str();
  cmd->add_flag("--insecure", f.insecure, "Do not verify the server's TLS certificate (self-signed test servers)");
}

class ApiClient {
 public:
  static Result<ApiClient> Connect(const ClientFlags& f) {
    SLUICE_ASSIGN_OR_RETURN(auto target, ResolveClientTarget(f.server, f.admin_token, f.data_dir));
    http::TransportOptions opts;
    opts.insecure_skip_verify = f.insecure;
    return ApiClient(std::move(target), http::MakeCurlTransport(opts));
  }

  /// Sends a request; a non-2xx answer becomes an error carrying the server's message.
  Result<std::string> Call(std::string method, const std::string& path_and_query, std::string body = {}) {
    http::OutboundRequest req{.method = std::move(method), .url = target_.server_url + path_and_query};
    req.headers.emplace_back("Authorization", "Bearer " + target_.admin_token.Reveal());
    if (!body.empty()) {
      req.headers.emplace_back("Content-Type", "application/json");
      req.body = http::RequestBody::FromString(std::move(body));
    }
    SLUICE_ASSIGN_OR_RETURN(auto resp, transport_->Send(req, Deadline()));
    if (resp.status / 100 != 2) return ServerError(resp.status, resp.body);
    return std::move(resp.body);
  }

  /// Streams the response body to stdout.
  Status Stream(const std::string& path_and_query) {
    http::OutboundRequest req{.method = "GET", .url = target_.server_url + path_and_query};
    req.headers.emplace_back("Authorization", "Bearer " + target_.admin_token.Reveal());
    std::string error_body;
    int status = 0;
    SLUICE_ASSIGN_OR_RETURN(auto resp, transport_->SendStreaming(req, std::chrono::steady_clock::time_point::max(),
                                                                 [&](std::string_view chunk) {
                                                                   if (status == 0) status = 200;
                                                                   std::cout.write(chunk.data(), chunk.size());
                                                                   return static_cast<bool>(std::cout);
                                                                 }));
    std::cout.flush();
    if (resp.status / 100 != 2) return ServerError(resp.status, "");
    return OkStatus();
  }

 private:
  ApiClient(ClientTarget t, std::unique_ptr<http::HttpTransport> tr)
      : target_(std::move(t)), transport_(std::move(tr)) {}

  static std::chrono::steady_clock::time_point Deadline() {
    return std::chrono::steady_clock::now() + std::chrono::minutes(5);
  }

  static Error ServerError(int status, const std::string& body) {
    std::string message = body;
    boost::system::error_code ec;
    auto v = boost::json::parse(body, ec);
    if (!ec && v.is_object() && v.as_object().contains("error") && v.at("error").is_string()) {
      message = std::string(v.at("error").as_string());
    }
    Error e(status == 401 ? ErrorCode::kUnauthenticated : ErrorCode::kPermanent,
            fmt::format("server answered HTTP {}{}{}", status, message.empty() ? "" : ": ", message));
    e.http_status = status;
    return e;
  }

  ClientTarget target_;
  std::unique_ptr<http::HttpTransport> transport_;
};

int Fail(const Error& e) {
  std::cerr << "error: " << e.message << "\n";
  return 1;
}

std::string Encode(std::string_view v) {
  return boost::urls::encode(v, boost::urls::unreserved_chars);
}

}  // namespace

void RegisterClientCommands(CLI::App& app, int& exit_code) {
  // ---- project ----
  auto* project = app.add_subcommand("project", "Manage projects");
  project->require_subcommand(1);
  {
    auto flags = std::make_shared<ClientFlags>();
    auto name = std::make_shared<std::string>();
    auto* create = project->add_subcommand("create", "Create a project; prints {id, name, token, api_secret}");
    create->add_option("--name", *name, "Project name")->required();
    AddClientFlags(create, *flags);
    create->callback([flags, name, &exit_code] {
      auto client = ApiClient::Connect(*flags);
      if (!client.ok()) return void(exit_code = Fail(client.error()));
      auto body = client->Call("POST", "/api/app/projects",
                               boost::json::serialize(boost::json::object{{"name", *name}}));
      if (!body.ok()) return void(exit_code = Fail(body.error()));
      std::cout << *body << "\n";
    });
  }
  {
    auto flags = std::make_shared<ClientFlags>();
    auto* list = project->add_subcommand("list", "List projects as JSON");
    AddClientFlags(list, *flags);
    list->callback([flags, &exit_code] {
      auto client = ApiClient::Connect(*flags);
      if (!client.ok()) return void(exit_code = Fail(client.error()));
      auto body = client->Call("GET", "/api/app/projects");
      if (!body.ok()) return void(exit_code = Fail(body.error()));
      std::cout << *body << "\n";
    });
  }

  // ---- events export ----
  auto* events = app.add_subcommand("events", "Read events back");
  events->require_subcommand(1);
  {
    struct ExportFlags {
      ClientFlags client;
      uint32_t project = 0;
      std::string from, to;
      std::vector<std::string> names;
      uint64_t limit = 0;
    };
    auto f = std::make_shared<ExportFlags>();
    auto* exp = events->add_subcommand("export", "Write a project's raw events as NDJSON to stdout "
                                                 "(Mixpanel's raw export format)");
    exp->add_option("--project", f->project, "Project id")->required();
    exp->add_option("--from", f->from, "First day, YYYY-MM-DD (UTC)")->required();
    exp->add_option("--to", f->to, "Last day, YYYY-MM-DD (UTC), inclusive")->required();
    exp->add_option("--event", f->names, "Only these event names (repeatable)");
    exp->add_option("--limit", f->limit, "At most this many events");
    AddClientFlags(exp, f->client);
    exp->callback([f, &exit_code] {
      auto client = ApiClient::Connect(f->client);
      if (!client.ok()) return void(exit_code = Fail(client.error()));
      std::string q = fmt::format("/api/2.0/export?project_id={}&from_date={}&to_date={}", f->project,
                                  Encode(f->from), Encode(f->to));
      if (!f->names.empty()) {
        boost::json::array a;
        for (const auto& n : f->names) a.emplace_back(n);
        q += "&event=" + Encode(boost::json::serialize(a));
      }
      if (f->limit) q += fmt::format("&limit={}", f->limit);
      if (auto s = client->Stream(q); !s.ok()) exit_code = Fail(s.error());
    });
  }

  // ---- profiles list ----
  auto* profiles = app.add_subcommand("profiles", "Read user profiles");
  profiles->require_subcommand(1);
  {
    struct ProfileFlags {
      ClientFlags client;
      uint32_t project = 0;
      std::string distinct_id;
    };
    auto f = std::make_shared<ProfileFlags>();
    auto* list = profiles->add_subcommand("list", "Write profiles as NDJSON ({\"$distinct_id\",\"$properties\"}) "
                                                  "to stdout");
    list->add_option("--project", f->project, "Project id")->required();
    list->add_option("--distinct-id", f->distinct_id, "Only this profile");
    AddClientFlags(list, f->client);
    list->callback([f, &exit_code] {
      auto client = ApiClient::Connect(f->client);
      if (!client.ok()) return void(exit_code = Fail(client.error()));
      constexpr int kPageSize = 1000;
      for (int page = 0;; ++page) {
        std::string q = fmt::format("/api/2.0/engage?project_id={}&page={}&page_size={}", f->project, page, kPageSize);
        if (!f->distinct_id.empty()) q += "&distinct_id=" + Encode(f->distinct_id);
        auto body = client->Call("GET", q);
        if (!body.ok()) return void(exit_code = Fail(body.error()));
        auto v = boost::json::parse(*body);
        const auto& results = v.at("results").as_array();
        for (const auto& r : results) std::cout << boost::json::serialize(r) << "\n";
        if (!f->distinct_id.empty() || results.size() < static_cast<size_t>(kPageSize)) break;
      }
    });
  }
}

}  // namespace sluice::app
