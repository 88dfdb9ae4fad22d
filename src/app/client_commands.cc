// Client commands: every one talks to the running server over its HTTP API (the server is the store's only
// owner), authenticating with the admin token.
#include <boost/json.hpp>
#include <boost/url.hpp>

#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "app/api_client.h"
#include "app/commands.h"
#include "ingest/ingest.h"

namespace sluice::app {

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
  {
    // The operator's side of docs/gcs.md#binding: GCS is reached as Sluice's one service account, so only this
    // list lets a project's pipelines and imports use a bucket.
    struct BindFlags {
      ClientFlags client;
      uint32_t project = 0;
      std::vector<std::string> buckets;
      bool none = false;
    };
    auto f = std::make_shared<BindFlags>();
    auto* bind = project->add_subcommand(
        "bind-gcs", "Set the GCS buckets bound to a project (replaces the list; docs/gcs.md#binding); prints the "
                    "project");
    bind->add_option("--project", f->project, "Project id")->required();
    auto* bucket_opt = bind->add_option("--bucket", f->buckets,
                                        "A GCS bucket name, without gs:// (repeatable; a bucket is bound to one "
                                        "project only)");
    auto* none_opt = bind->add_flag("--none", f->none, "Unbind every GCS bucket from the project");
    bucket_opt->excludes(none_opt);
    AddClientFlags(bind, f->client);
    bind->callback([f, &exit_code] {
      if (f->buckets.empty() && !f->none) {
        std::cerr << "give --bucket NAME (repeatable), or --none to unbind every bucket\n";
        return void(exit_code = 2);
      }
      boost::json::array list;
      for (const auto& b : f->buckets) list.emplace_back(b);
      auto client = ApiClient::Connect(f->client);
      if (!client.ok()) return void(exit_code = Fail(client.error()));
      auto body = client->Call("POST", fmt::format("/api/app/projects/{}", f->project),
                               boost::json::serialize(boost::json::object{{"gcs_buckets", std::move(list)}}));
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
      std::string session_id;  // each page resumes after the last id of the one before (docs/ingestion.md)
      for (int page = 0;; ++page) {
        std::string q = fmt::format("/api/2.0/engage?project_id={}&page={}&page_size={}", f->project, page, kPageSize);
        if (!f->distinct_id.empty()) q += "&distinct_id=" + Encode(f->distinct_id);
        if (!session_id.empty()) q += "&session_id=" + Encode(session_id);
        auto body = client->Call("GET", q);
        if (!body.ok()) return void(exit_code = Fail(body.error()));
        // ParseProfileJson keeps every number's text, so profiles print exactly as the server answered.
        auto v = ingest::ParseProfileJson(*body);
        if (!v.ok() || !v->is_object() || !v->as_object().contains("results") ||
            !v->as_object().at("results").is_array()) {
          return void(exit_code = Fail(Error(ErrorCode::kInternal,
                                             "the server's answer to " + q + " has no \"results\" list")));
        }
        const auto& results = v->as_object().at("results").as_array();
        for (const auto& r : results) std::cout << ingest::SerializeProfileJson(r) << "\n";
        const auto* next = v->as_object().if_contains("session_id");
        session_id = next && next->is_string() ? std::string(next->as_string()) : std::string();
        if (!f->distinct_id.empty() || results.size() < static_cast<size_t>(kPageSize)) break;
      }
    });
  }
}

}  // namespace sluice::app
