#include "app/cmd_import.h"

#include <fmt/format.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <boost/url.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include "app/api_client.h"
#include "app/azure_flags.h"
#include "app/config.h"
#include "app/gcs_flags.h"
#include "http/transport.h"

namespace sluice::app {
namespace {

namespace json = boost::json;

/// The connectors API over HTTP with the admin token, answers parsed as JSON.
class Client {
 public:
  static Result<Client> Connect(const ClientFlags& f) {
    SLUICE_ASSIGN_OR_RETURN(ApiClient api, ApiClient::Connect(f));
    return Client(std::move(api));
  }

  /// The parsed JSON answer; a non-2xx answer is an error carrying the server's message (and code/field).
  Result<json::value> Call(std::string method, const std::string& path, std::string body = {}) {
    if (body.empty() && method == "POST") body = "{}";
    SLUICE_ASSIGN_OR_RETURN(std::string text, api_.Call(std::move(method), path, std::move(body)));
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    if (ec) return Internal(fmt::format("the server's answer is not JSON: {}", ec.message()));
    return v;
  }

 private:
  explicit Client(ApiClient api) : api_(std::move(api)) {}
  ApiClient api_;
};

struct SpecFlags {
  std::string label;
  std::string bucket;
  std::string prefix;
  std::string region = "us-east-1";
  std::string role;
  std::string credential;
  std::string format = "mixpanel_event";
  std::string compression = "none";
  std::string endpoint;
  int frequency = 60;
  std::vector<std::string> remap;  // target=source
  /// gcsImport: connector property (gcs_bucket, gcs_prefix, gcs_endpoint) → the --gcs-* flag's value.
  std::map<std::string, std::string> gcs;
  /// azureImport: the --azure-* flags (connector properties) and the client secret's source.
  AzureFlagValues azure;
};

void AddSpecFlags(CLI::App* cmd, SpecFlags& f) {
  cmd->add_option("--bucket", f.bucket, "S3 bucket holding the files (or --gcs-bucket for GCS)");
  cmd->add_option("--prefix", f.prefix, "Key prefix of the files (default: the whole bucket)");
  cmd->add_option("--region", f.region, "The bucket's region")->capture_default_str();
  cmd->add_option("--role", f.role,
                  "Role ARN Sluice assumes (needs s3:GetObject and s3:ListBucket); --bucket needs it or "
                  "--s3-credential");
  cmd->add_option("--s3-credential", f.credential,
                  "Name of a static key the operator granted this project (MinIO, Ceph, GCS HMAC), instead of "
                  "--role");
  cmd->add_option("--format", f.format, "mixpanel_event, mixpanel_people, remap_event or remap_people")
      ->capture_default_str()
      ->check(CLI::IsMember({"mixpanel_event", "mixpanel_people", "remap_event", "remap_people"}));
  cmd->add_option("--compression", f.compression, "none or gzip")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "gzip"}));
  cmd->add_option("--endpoint", f.endpoint, "S3-compatible endpoint URL (also used for STS)");
  cmd->add_option("--label", f.label, "A name for the connector");
  cmd->add_option(
      "--remap", f.remap,
      "Remap formats: MIXPANEL_FIELD=SOURCE_FIELD, repeatable (event_name, time, distinct_id, $insert_id, "
      "ip; $distinct_id for people)");
  // GCS (connector_type gcsImport): the same --gcs-* flags as `sluice pipeline`, those a source takes.
  AddParamFlags(cmd, GcsParamFlags(), f.gcs, /*import_only=*/true);
  // Azure (connector_type azureImport): read as the customer's service principal (Storage Blob Data Reader).
  AddAzureFlags(cmd, f.azure);
}

bool IsGcs(const SpecFlags& f) {
  auto it = f.gcs.find("gcs_bucket");
  return it != f.gcs.end() && !it->second.empty();
}

/// "s3://bucket/prefix", "gs://bucket/prefix" or "https://account.blob.core.windows.net/container/prefix".
std::string SourceText(const SpecFlags& f) {
  if (f.azure.any()) {
    return fmt::format("https://{}.blob.core.windows.net/{}/{}", f.azure.Get("storage_account"),
                       f.azure.Get("container_name"), f.azure.Get("prefix"));
  }
  if (IsGcs(f)) return fmt::format("gs://{}/{}", f.gcs.at("gcs_bucket"), f.gcs.at("gcs_prefix"));
  return fmt::format("s3://{}/{}", f.bucket, f.prefix);
}

/// The azureImport body: refused before anything is sent when S3 or GCS flags are mixed in, a required flag is
/// missing or the secret cannot be read.
Result<json::object> AzureProperties(const SpecFlags& f) {
  if (!f.bucket.empty() || !f.role.empty() || !f.credential.empty() || !f.endpoint.empty() ||
      AnyParamSet(f.gcs)) {
    return InvalidArgument(
        "the --azure-* flags name an Azure container; --bucket, --role, --s3-credential and --endpoint (S3) and "
        "the --gcs-* flags (GCS) name another source: give one of them");
  }
  SLUICE_ASSIGN_OR_RETURN(storage_access::AzureLocation l, AzureLocationFromFlags(f.azure, azure::SystemEnv()));
  json::object cp{{"storage_account", l.storage_account},
                  {"container_name", l.container},
                  {"prefix", l.prefix},
                  {"client_id", l.client_id},
                  {"client_secret", l.client_secret.Reveal()},  // to the server's API only, never printed
                  {"tenant_id", l.tenant_id}};
  if (!l.endpoint.empty()) cp["azure_endpoint"] = l.endpoint;
  return cp;
}

Result<std::string> CreateBody(const SpecFlags& f) {
  const bool azure = f.azure.any();
  const bool gcs = IsGcs(f);
  if (!azure && gcs && !f.bucket.empty()) {
    return InvalidArgument("--bucket (S3) and --gcs-bucket (GCS) name two sources: give one of them");
  }
  if (!azure && !gcs && f.bucket.empty()) {
    return InvalidArgument(
        "the files' bucket is required: --bucket B for S3, --gcs-bucket B for GCS or --azure-storage-account A "
        "--azure-container C for Azure");
  }
  if (!azure && gcs && (!f.role.empty() || !f.endpoint.empty() || !f.credential.empty())) {
    return InvalidArgument(
        "--role, --s3-credential and --endpoint are for an S3 source (--bucket); a GCS source takes --gcs-prefix and "
        "--gcs-endpoint, and Sluice reads it as its own service account");
  }
  if (!azure && !gcs && f.role.empty() && f.credential.empty()) {
    return InvalidArgument(
        "--role is required with --bucket: the ARN of the role Sluice assumes to read it (or --s3-credential)");
  }
  json::object cp;
  if (azure) {
    SLUICE_ASSIGN_OR_RETURN(cp, AzureProperties(f));
  } else if (gcs) {
    for (const auto& [param, value] : f.gcs) {
      if (!value.empty() || param == "gcs_prefix") cp[param] = value;
    }
  } else {
    cp = {{"s3_bucket", f.bucket}, {"s3_prefix", f.prefix}, {"s3_region", f.region}};
    if (!f.role.empty()) cp["s3_role"] = f.role;
    if (!f.credential.empty()) cp["s3_credential"] = f.credential;
    if (!f.endpoint.empty()) cp["s3_endpoint"] = f.endpoint;
  }
  json::object cat{{"data_format", f.format}, {"compression", f.compression}, {"frequency", f.frequency}};
  if (!f.remap.empty()) {
    json::object remap;
    for (const auto& r : f.remap) {
      auto eq = r.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == r.size()) {
        return InvalidArgument(
            fmt::format("--remap '{}' must be MIXPANEL_FIELD=SOURCE_FIELD, e.g. time=ts", r));
      }
      remap[r.substr(0, eq)] = r.substr(eq + 1);
    }
    cat["property_remap"] = std::move(remap);
  }
  std::string label = f.label.empty() ? SourceText(f) : f.label;
  return json::serialize(json::object{{"connector_type", azure ? "azureImport" : gcs ? "gcsImport" : "s3Import"},
                                      {"label", label},
                                      {"connector_properties", std::move(cp)},
                                      {"category_properties", std::move(cat)}});
}

uint64_t U(const json::object& o, std::string_view k) {
  const json::value* v = o.if_contains(k);
  if (v == nullptr) return 0;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64()) return static_cast<uint64_t>(std::max<int64_t>(0, v->get_int64()));
  return 0;
}
std::string S(const json::object& o, std::string_view k) {
  const json::value* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}
double D(const json::object& o, std::string_view k) {
  const json::value* v = o.if_contains(k);
  return v && v->is_number() ? v->to_number<double>() : 0.0;
}

std::string HumanBytes(uint64_t b) {
  if (b >= (1ull << 30)) return fmt::format("{:.1f} GiB", b / double(1ull << 30));
  if (b >= (1ull << 20)) return fmt::format("{:.1f} MiB", b / double(1ull << 20));
  if (b >= 1024) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{} B", b);
}

/// The items of a list answer, Mixpanel-paged: {"results":{"url":null,"has_more":false,"data":[…]}}; null
/// when the answer has another shape.
const json::array* ListData(const json::value& v) {
  if (!v.is_object()) return nullptr;
  const json::value* results = v.as_object().if_contains("results");
  if (results == nullptr || !results->is_object()) return nullptr;
  const json::value* data = results->as_object().if_contains("data");
  return data != nullptr && data->is_array() ? &data->as_array() : nullptr;
}

/// Follows the first run of a connector to its end, drawing progress on stderr. Returns the final run.
Result<json::object> FollowRun(Client& client, uint32_t project, const std::string& id) {
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  const std::string path =
      fmt::format("/api/app/projects/{}/connectors/{}/history?limit=1", project, Encode(id));
  auto last_line = std::chrono::steady_clock::now() - std::chrono::hours(1);
  const auto started = std::chrono::steady_clock::now();
  for (;;) {
    SLUICE_ASSIGN_OR_RETURN(json::value v, client.Call("GET", path));
    const json::array* runs = ListData(v);
    if (runs && !runs->empty() && runs->front().is_object()) {
      const json::object& run = runs->front().as_object();
      const std::string status = S(run, "status");
      const double progress = D(run, "progress");
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      const uint64_t imported = U(run, "num_events_imported");
      std::string counters =
          fmt::format("{} events imported, {} dropped, {}/{} files, {} of {}, {:.0f} events/s", imported,
                      U(run, "num_events_dropped"), U(run, "num_files_imported"), U(run, "num_files_found"),
                      HumanBytes(U(run, "size_imported")), HumanBytes(U(run, "size_total")),
                      secs > 0 ? imported / secs : 0.0);
      const bool done = status == "success" || status == "failed" || status == "paused";
      if (tty) {
        constexpr int kWidth = 30;
        int filled = static_cast<int>(progress * kWidth + 0.5);
        std::fprintf(stderr, "\r[%s%s] %5.1f%% %s\033[K", std::string(filled, '#').c_str(),
                     std::string(kWidth - filled, '.').c_str(), progress * 100, counters.c_str());
        if (done) std::fprintf(stderr, "\n");
        std::fflush(stderr);
      } else if (done || std::chrono::steady_clock::now() - last_line >= std::chrono::seconds(5)) {
        last_line = std::chrono::steady_clock::now();
        std::fprintf(stderr, "%s %.1f%%: %s\n", status.c_str(), progress * 100, counters.c_str());
        std::fflush(stderr);
      }
      if (done) return run;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 250 : 1000));
  }
}

}  // namespace

void RegisterImportCommands(CLI::App& app, int& exit_code) {
  auto* import = app.add_subcommand("import", "Cloud Import: load event and profile files from an S3 or GCS bucket or an Azure container");
  import->require_subcommand(1);

  {
    struct Flags {
      ClientFlags client;
      SpecFlags spec;
      uint32_t project = 0;
    };
    auto f = std::make_shared<Flags>();
    auto* cmd =
        import->add_subcommand("create", "Create a connector (checks access first); prints it as JSON");
    cmd->add_option("--project", f->project, "Project id")->required();
    AddSpecFlags(cmd, f->spec);
    cmd->add_option("--frequency", f->spec.frequency, "Minutes between discovery runs")
        ->capture_default_str();
    AddClientFlags(cmd, f->client);
    cmd->callback([f, &exit_code] {
      auto body = CreateBody(f->spec);
      if (!body.ok()) return void(exit_code = Fail(body.error()));
      auto client = Client::Connect(f->client);
      if (!client.ok()) return void(exit_code = Fail(client.error()));
      auto v = client->Call("POST", fmt::format("/api/app/projects/{}/connectors", f->project), *body);
      if (!v.ok()) return void(exit_code = Fail(v.error()));
      std::cout << json::serialize(v->at("results")) << "\n";
    });
  }
  {
    struct Flags {
      ClientFlags client;
      uint32_t project = 0;
    };
    auto f = std::make_shared<Flags>();
    auto* cmd = import->add_subcommand("list", "List a project's connectors as a JSON array");
    cmd->add_option("--project", f->project, "Project id")->required();
    AddClientFlags(cmd, f->client);
    cmd->callback([f, &exit_code] {
      auto client = Client::Connect(f->client);
      if (!client.ok()) return void(exit_code = Fail(client.error()));
      auto v = client->Call("GET", fmt::format("/api/app/projects/{}/connectors", f->project));
      if (!v.ok()) return void(exit_code = Fail(v.error()));
      const json::array* data = ListData(*v);
      if (data == nullptr)
        return void(exit_code = Fail(Internal("the server's connector list has no results.data")));
      std::cout << json::serialize(*data) << "\n";
    });
  }
  {
    struct Flags {
      ClientFlags client;
      uint32_t project = 0;
      std::string connector;
      size_t limit = 20;
    };
    auto f = std::make_shared<Flags>();
    auto* cmd =
        import->add_subcommand("history", "A connector's runs, newest first, one JSON object per line");
    cmd->add_option("--project", f->project, "Project id")->required();
    cmd->add_option("--connector", f->connector, "The connector's connector_id")->required();
    cmd->add_option("--limit", f->limit, "At most this many runs")->capture_default_str();
    AddClientFlags(cmd, f->client);
    cmd->callback([f, &exit_code] {
      auto client = Client::Connect(f->client);
      if (!client.ok()) return void(exit_code = Fail(client.error()));
      auto v = client->Call("GET", fmt::format("/api/app/projects/{}/connectors/{}/history?limit={}",
                                               f->project, Encode(f->connector), f->limit));
      if (!v.ok()) return void(exit_code = Fail(v.error()));
      const json::array* runs = ListData(*v);
      if (runs == nullptr)
        return void(exit_code = Fail(Internal("the server's run history has no results.data")));
      for (const auto& run : *runs) std::cout << json::serialize(run) << "\n";
    });
  }
  {
    struct Flags {
      ClientFlags client;
      uint32_t project = 0;
      std::string connector;
    };
    auto f = std::make_shared<Flags>();
    auto* cmd = import->add_subcommand("delete", "Delete a connector (the imported data stays)");
    cmd->add_option("--project", f->project, "Project id")->required();
    cmd->add_option("--connector", f->connector, "The connector's connector_id")->required();
    AddClientFlags(cmd, f->client);
    cmd->callback([f, &exit_code] {
      auto client = Client::Connect(f->client);
      if (!client.ok()) return void(exit_code = Fail(client.error()));
      auto v = client->Call(
          "DELETE", fmt::format("/api/app/projects/{}/connectors/{}", f->project, Encode(f->connector)));
      if (!v.ok()) return void(exit_code = Fail(v.error()));
      std::cout << "deleted connector " << f->connector << "\n";
    });
  }
  {
    struct Flags {
      ClientFlags client;
      SpecFlags spec;
      uint32_t project = 0;
      bool keep = false;
    };
    auto f = std::make_shared<Flags>();
    auto* cmd = import->add_subcommand(
        "run",
        "One-off migration: import every file under the prefix now, with a progress bar, then remove the "
        "connector (the data stays). Prints the run's counters as JSON; exits 1 unless the run succeeded");
    cmd->add_option("--project", f->project, "Project id")->required();
    AddSpecFlags(cmd, f->spec);
    cmd->add_flag("--keep", f->keep,
                  "Keep the connector afterwards (it then imports new files every --frequency min)");
    cmd->add_option("--frequency", f->spec.frequency, "With --keep: minutes between discovery runs")
        ->capture_default_str();
    AddClientFlags(cmd, f->client);
    cmd->callback([f, &exit_code] {
      if (!f->keep) f->spec.frequency = 7 * 24 * 60;  // one run only: the connector is deleted after it
      auto body = CreateBody(f->spec);
      if (!body.ok()) return void(exit_code = Fail(body.error()));
      auto client = Client::Connect(f->client);
      if (!client.ok()) return void(exit_code = Fail(client.error()));
      auto created = client->Call("POST", fmt::format("/api/app/projects/{}/connectors", f->project), *body);
      if (!created.ok()) return void(exit_code = Fail(created.error()));
      const std::string id = S(created->at("results").as_object(), "connector_id");
      std::fprintf(stderr, "connector %s created; importing %s\n", id.c_str(), SourceText(f->spec).c_str());
      auto run = FollowRun(*client, f->project, id);
      if (!f->keep) {
        auto deleted =
            client->Call("DELETE", fmt::format("/api/app/projects/{}/connectors/{}", f->project, Encode(id)));
        if (!deleted.ok())
          std::cerr << "warning: could not delete connector " << id << ": " << deleted.error().message
                    << "\n";
      }
      if (!run.ok()) return void(exit_code = Fail(run.error()));
      std::cout << json::serialize(*run) << "\n";
      if (S(*run, "status") != "success") {
        std::cerr << "error: the import " << S(*run, "status") << ": " << S(*run, "failure_message") << "\n";
        exit_code = 1;
      }
    });
  }
}

}  // namespace sluice::app
