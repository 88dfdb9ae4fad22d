#include "app/cmd_pipeline.h"

#include <fmt/format.h>

#include <array>
#include <boost/json.hpp>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "app/api_client.h"
#include "app/azure_flags.h"
#include "app/gcs_flags.h"

namespace sluice::app {
namespace {

namespace json = boost::json;

constexpr std::string_view kApi = "/api/2.0/nessie/pipeline/";

struct PipelineFlags {
  ClientFlags client;
  uint32_t project = 0;
  std::string name;
  bool json = false;
  /// API parameter → its flag's value; std::map keeps the addresses CLI11 binds to stable.
  std::map<std::string, std::string> values;
  std::map<std::string, CLI::Option*> options;
  std::vector<std::string> events;
  bool clear_events = false;
  bool trial = false;
  CLI::Option* trial_option = nullptr;
  bool sync = true;
  CLI::Option* sync_option = nullptr;
  /// type azure-raw: the --azure-* flags and where the client secret comes from (azure_flags.h).
  AzureFlagValues azure;
  // status, timeline
  bool summary = false;
  std::vector<std::string> states;
  size_t limit = 0;
};

using Form = std::vector<std::pair<std::string, std::string>>;

std::string EncodeForm(const Form& form) {
  std::string out;
  for (const auto& [k, v] : form) {
    if (!out.empty()) out += '&';
    out += Encode(k) + "=" + Encode(v);
  }
  return out;
}

void AddCommon(CLI::App* cmd, PipelineFlags& f, bool with_name) {
  cmd->add_option("--project", f.project, "Project id")->required();
  if (with_name)
    cmd->add_option("--name", f.name, "Pipeline name (as create printed it; see `pipeline list`)")
        ->required();
  cmd->add_flag("--json", f.json, "Print the server's JSON answer instead of text");
  AddClientFlags(cmd, f.client);
}

CLI::Option* AddParam(CLI::App* cmd, PipelineFlags& f, const std::string& flag, const std::string& param,
                      const std::string& help) {
  CLI::Option* opt = cmd->add_option(flag, f.values[param], help);
  f.options[param] = opt;
  return opt;
}

/// The flags of the parameters create and edit share (the editable ones).
void AddEditableParams(CLI::App* cmd, PipelineFlags& f) {
  AddParam(
      cmd, f, "--to-date", "to_date",
      "Last day to export, YYYY-MM-DD (UTC), inclusive; empty = recurring (edit: \"\" makes it recurring)");
  AddParam(cmd, f, "--frequency", "frequency", "hourly or daily (default daily; hourly only for events)")
      ->check(CLI::IsMember({"hourly", "daily"}));
  f.sync_option =
      cmd->add_flag("--sync,!--no-sync", f.sync,
                    "Deliver late events into already exported days (default on; --no-sync turns it off)");
  cmd->add_option("--event", f.events, "Export only this event name (repeatable; default all events)");
  AddParam(cmd, f, "--where", "where",
           "Segmentation expression events must match, e.g. 'properties[\"$os\"] == \"Linux\"' (edit: \"\" "
           "clears)");
  AddParam(cmd, f, "--compression", "compression", "gzip (default), zstd or none")
      ->check(CLI::IsMember({"gzip", "zstd", "none"}));
  AddParam(cmd, f, "--s3-bucket", "s3_bucket", "S3 bucket name (type s3)");
  AddParam(cmd, f, "--s3-region", "s3_region", "The bucket's region, e.g. eu-west-1 (type s3)");
  AddParam(cmd, f, "--s3-role", "s3_role", "ARN of the role Sluice assumes to write to the bucket (type s3)");
  AddParam(cmd, f, "--s3-credential", "s3_credential",
           "Name of a static key the operator granted this project (MinIO, Ceph, GCS HMAC), instead of --s3-role");
  AddParam(cmd, f, "--s3-prefix", "s3_prefix", "Key prefix inside the bucket (optional)");
  AddParam(cmd, f, "--s3-encryption", "s3_encryption", "none (default), aes (SSE-S3) or kms (SSE-KMS)")
      ->check(CLI::IsMember({"none", "aes", "kms"}, CLI::ignore_case));
  AddParam(cmd, f, "--s3-kms-key-id", "s3_kms_key_id",
           "KMS key ARN for --s3-encryption kms (default: aws/s3 key)");
  AddParam(cmd, f, "--s3-endpoint", "s3_endpoint",
           "S3-compatible endpoint URL the server allows (--allow-endpoint) (default: AWS)");
  AddParam(cmd, f, "--local-path", "local_path",
           "Directory to write to (type local), relative to the server's --local-export-root or inside it");
  for (const GcsParamFlag& g : GcsParamFlags())
    AddParam(cmd, f, std::string(g.flag), std::string(g.param), std::string(g.help));
  AddAzureFlags(cmd, f.azure);
}

/// The form of create/edit: the flags given on the command line only, so the server's defaults apply.
/// An Azure client secret is sent on create for type azure-raw, from
/// --azure-client-secret-file or AZURE_CLIENT_SECRET (required); on edit, only when
/// --azure-client-secret-file is given (the pipeline keeps its secret otherwise).
Result<Form> BuildForm(const PipelineFlags& f, bool create) {
  Form form;
  for (const auto& [param, value] : f.azure.params) {
    if (!value.empty()) form.emplace_back(param, value);
  }
  const auto type = f.values.find("type");
  const bool azure_type =
      type != f.values.end() && (type->second == "azure-raw" || type->second == "azure-blob");
  if (create ? azure_type : !f.azure.client_secret_file.empty()) {
    SLUICE_ASSIGN_OR_RETURN(Secret secret, ReadAzureClientSecret(f.azure, azure::SystemEnv()));
    form.emplace_back("client_secret", secret.Reveal());
  }
  form.emplace_back("project_id", std::to_string(f.project));
  if (!f.name.empty()) form.emplace_back("name", f.name);
  for (const auto& [param, opt] : f.options) {
    if (opt->count() > 0) form.emplace_back(param, f.values.at(param));
  }
  for (const auto& e : f.events) form.emplace_back("events", e);
  if (f.clear_events) form.emplace_back("events", "[]");
  if (f.trial_option && f.trial_option->count() > 0) form.emplace_back("trial", f.trial ? "true" : "false");
  if (f.sync_option && f.sync_option->count() > 0) form.emplace_back("sync", f.sync ? "true" : "false");
  return form;
}

std::string Str(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return "-";
  if (it->value().is_string()) return std::string(it->value().as_string());
  return json::serialize(it->value());
}

std::string DestinationText(const json::object& job) {
  auto it = job.find("destination");
  if (it == job.end() || !it->value().is_object()) return "-";
  const auto& d = it->value().as_object();
  if (Str(d, "type") == "local") return Str(d, "local_path");
  if (Str(d, "type") == "azure") {
    // The container as its blob URL: the account's public endpoint, or the allowed origin it was given.
    std::string endpoint = Str(d, "azure_endpoint");
    std::string url = endpoint.empty() || endpoint == "-"
                          ? "https://" + Str(d, "storage_account") + ".blob.core.windows.net/"
                          : endpoint + "/" + Str(d, "storage_account") + "/";
    std::string prefix = Str(d, "prefix");
    return url + Str(d, "container_name") + (prefix.empty() || prefix == "-" ? "" : "/" + prefix);
  }
  if (Str(d, "type") == "gcs") {
    std::string prefix = Str(d, "gcs_prefix");
    return "gs://" + Str(d, "gcs_bucket") + (prefix.empty() || prefix == "-" ? "" : "/" + prefix);
  }
  std::string prefix = Str(d, "s3_prefix");
  return "s3://" + Str(d, "s3_bucket") + (prefix.empty() || prefix == "-" ? "" : "/" + prefix) + " (" +
         Str(d, "s3_region") + ")";
}

void PrintJobs(const json::value& v, uint32_t project) {
  const auto& jobs = v.at(std::to_string(project)).as_array();
  if (jobs.empty()) {
    std::cout << "no pipelines in project " << project << "\n";
    return;
  }
  std::cout << fmt::format("{:<32} {:<9} {:<8} {:<6} {:<4} {:<9} {:<20} {}\n", "NAME", "STATUS", "SOURCE",
                           "FREQ", "SYNC", "PHASE", "LAST DISPATCHED", "DESTINATION");
  for (const auto& j : jobs) {
    const auto& o = j.as_object();
    std::cout << fmt::format("{:<32} {:<9} {:<8} {:<6} {:<4} {:<9} {:<20} {}\n", Str(o, "name"),
                             Str(o, "status"), Str(o, "data_source"), Str(o, "frequency"),
                             Str(o, "sync_enabled") == "true" ? "on" : "off", Str(o, "Dispatcher"),
                             Str(o, "last_dispatched"), DestinationText(o));
    if (std::string failure = Str(o, "failure_message"); !failure.empty() && failure != "-") {
      std::cout << "  failure: " << failure << "\n";
    }
  }
}

constexpr std::array<std::string_view, 7> kStates = {"pending",  "running",   "retried",  "failed",
                                                     "canceled", "timed_out", "succeeded"};

/// `day_syncs` of …/status and …/timeline: one line per day with its status and delivery times.
void PrintDays(const json::array& days) {
  if (days.empty()) return;
  std::cout << "days:\n";
  for (const auto& d : days) {
    const auto& day = d.as_object();
    std::string times;
    for (const auto& t : day.at("sync_times").as_array()) {
      times += (times.empty() ? "" : ", ") + std::string(t.as_string());
    }
    std::cout << fmt::format("  {}  {:<9}  {}\n", Str(day, "date"), Str(day, "status"),
                             times.empty() ? "not delivered yet" : "delivered " + times);
  }
}

void PrintStatus(const json::value& v) {
  const auto& o = v.as_object();
  std::cout << fmt::format("pipeline {}: {} ({}), last dispatched {}\n", Str(o, "name"), Str(o, "status"),
                           Str(o, "dispatcher"), Str(o, "last_dispatched"));
  if (auto it = o.find("counters"); it != o.end() && it->value().is_object()) {
    const auto& c = it->value().as_object();
    std::cout << fmt::format("exported: {} partitions, {} events, {} bytes\n", Str(c, "partitions_exported"),
                             Str(c, "events_exported"), Str(c, "bytes_exported"));
  }
  if (std::string failure = Str(o, "failure_message"); !failure.empty() && failure != "-") {
    std::cout << "failure: " << failure << "\n";
  }
  std::string counts;
  std::vector<const json::object*> problems;
  for (std::string_view state : kStates) {
    auto it = o.find(state);
    if (it == o.end()) continue;
    size_t n = it->value().is_array() ? it->value().as_array().size()
                                      : static_cast<size_t>(it->value().to_number<double>());
    counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", state, n);
    if (it->value().is_array() && (state == "failed" || state == "retried" || state == "timed_out")) {
      for (const auto& t : it->value().as_array()) problems.push_back(&t.as_object());
    }
  }
  std::cout << "tasks: " << (counts.empty() ? "none" : counts) << "\n";
  for (const auto* t : problems) {
    std::cout << fmt::format("  {} {} (attempt {}): {}\n", Str(*t, "state"), Str(*t, "partition"),
                             Str(*t, "attempts"), Str(*t, "message"));
  }
  PrintDays(o.at("day_syncs").as_array());
}

void PrintTimeline(const json::value& v) {
  // Mixpanel's day_syncs first (one line per day), then Sluice's task list.
  PrintDays(v.at("day_syncs").as_array());
  const auto& tasks = v.at("tasks").as_array();
  if (tasks.empty()) {
    std::cout << "no tasks yet\n";
    return;
  }
  std::cout << fmt::format("{:<14} {:<9} {:<10} {:<8} {:>10} {:>12} {:>4}  {}\n", "PARTITION", "KIND",
                           "STATE", "ATTEMPTS", "RECORDS", "BYTES", "GEN", "MESSAGE");
  for (const auto& t : tasks) {
    const auto& o = t.as_object();
    std::cout << fmt::format("{:<14} {:<9} {:<10} {:<8} {:>10} {:>12} {:>4}  {}\n", Str(o, "partition"),
                             Str(o, "kind"), Str(o, "state"), Str(o, "attempts"), Str(o, "records"),
                             Str(o, "bytes"), Str(o, "generation"), Str(o, "message"));
  }
}

/// Connects, runs `call` (which returns the server's body), prints it as JSON or through `print`.
void Run(const PipelineFlags& f, int& exit_code, const std::function<Result<std::string>(ApiClient&)>& call,
         const std::function<void(const json::value&)>& print) {
  auto client = ApiClient::Connect(f.client);
  if (!client.ok()) return void(exit_code = Fail(client.error()));
  auto body = call(*client);
  if (!body.ok()) return void(exit_code = Fail(body.error()));
  if (f.json) {
    std::cout << *body << "\n";
    return;
  }
  boost::system::error_code ec;
  json::value v = json::parse(*body, ec);
  if (ec) {
    std::cout << *body << "\n";
    return;
  }
  try {
    print(v);
  } catch (const std::exception&) {
    // An answer of an unexpected shape (another server version): show it as it is rather than fail.
    std::cout << *body << "\n";
  }
}

Result<std::string> PostForm(ApiClient& client, std::string_view action, const Form& form) {
  return client.Call("POST", std::string(kApi) + std::string(action), EncodeForm(form),
                     "application/x-www-form-urlencoded");
}

std::string Query(const Form& form) { return "?" + EncodeForm(form); }

}  // namespace

void RegisterPipelineCommands(CLI::App& app, int& exit_code) {
  CLI::App* group = app.add_subcommand(
      "pipeline",
      "Manage JSON Pipelines (exports to S3, Google Cloud Storage, Azure Blob Storage or a "
      "local directory)");
  group->require_subcommand(1);

  // ---- create ----
  {
    auto f = std::make_shared<PipelineFlags>();
    CLI::App* cmd = group->add_subcommand(
        "create",
        "Create a pipeline; runs the destination check first and prints the created pipeline's name");
    AddCommon(cmd, *f, /*with_name=*/false);
    cmd->add_option("--name", f->name, "Pipeline name (default: the server picks one)");
    AddParam(cmd, *f, "--type", "type",
             "s3 (also s3-raw), gcs (also gcs-raw), azure-raw (also azure-blob) or local; each takes its own "
             "--s3-*, --gcs-*, --azure-* or --local-path flags")
        ->required()
        ->check(CLI::IsMember({"s3", "s3-raw", "gcs", "gcs-raw", "azure-raw", "azure-blob", "local"}));
    AddParam(cmd, *f, "--from-date", "from_date",
             "First day to export, YYYY-MM-DD (UTC), at most six months back")
        ->required();
    AddParam(cmd, *f, "--data-source", "data_source", "events (default), people or identity")
        ->check(CLI::IsMember({"events", "people", "identity"}));
    f->trial_option = cmd->add_flag("--trial", f->trial, "Create a trial pipeline (Mixpanel's trial flag)");
    AddEditableParams(cmd, *f);
    cmd->callback([f, &exit_code] {
      Run(
          *f, exit_code,
          [&](ApiClient& c) -> Result<std::string> {
            SLUICE_ASSIGN_OR_RETURN(Form form, BuildForm(*f, /*create=*/true));
            return PostForm(c, "create", form);
          },
          [](const json::value& v) {
            for (const auto& n : v.at("pipeline_names").as_array()) {
              std::cout << "created pipeline " << std::string_view(n.as_string()) << "\n";
            }
          });
    });
  }

  // ---- edit ----
  {
    auto f = std::make_shared<PipelineFlags>();
    CLI::App* cmd = group->add_subcommand(
        "edit",
        "Change a pipeline's to-date, sync, events, where, compression, or the credentials, region and "
        "encryption it writes with (only the flags given change; the frequency and the destination's bucket, "
        "prefix, endpoint or path are fixed: create a new pipeline for those)");
    AddCommon(cmd, *f, /*with_name=*/true);
    AddEditableParams(cmd, *f);
    cmd->add_flag("--all-events", f->clear_events, "Drop the event whitelist: export every event");
    cmd->callback([f, &exit_code] {
      Run(
          *f, exit_code,
          [&](ApiClient& c) -> Result<std::string> {
            SLUICE_ASSIGN_OR_RETURN(Form form, BuildForm(*f, /*create=*/false));
            return PostForm(c, "edit", form);
          },
          [&](const json::value&) { std::cout << "edited pipeline " << f->name << "\n"; });
    });
  }

  // ---- list ----
  {
    auto f = std::make_shared<PipelineFlags>();
    CLI::App* cmd = group->add_subcommand("list", "List the project's pipelines (canceled ones included)");
    AddCommon(cmd, *f, /*with_name=*/false);
    cmd->callback([f, &exit_code] {
      Run(
          *f, exit_code,
          [&](ApiClient& c) {
            return c.Call("GET",
                          std::string(kApi) + "jobs" + Query({{"project_id", std::to_string(f->project)}}));
          },
          [&](const json::value& v) { PrintJobs(v, f->project); });
    });
  }

  // ---- status ----
  {
    auto f = std::make_shared<PipelineFlags>();
    CLI::App* cmd = group->add_subcommand(
        "status", "Show a pipeline's state, failure message, counters, task counts and per-day deliveries");
    AddCommon(cmd, *f, /*with_name=*/true);
    cmd->add_flag("--summary", f->summary, "Count tasks by state instead of listing them");
    cmd->add_option("--status", f->states,
                    "Only tasks (and days) in this state: pending running retried failed canceled timed_out "
                    "succeeded (repeatable)");
    cmd->callback([f, &exit_code] {
      Run(
          *f, exit_code,
          [&](ApiClient& c) {
            Form q = {{"project_id", std::to_string(f->project)}, {"name", f->name}};
            if (f->summary) q.emplace_back("summary", "true");
            for (const auto& s : f->states) q.emplace_back("status", s);
            return c.Call("GET", std::string(kApi) + "status" + Query(q));
          },
          PrintStatus);
    });
  }

  // ---- timeline ----
  {
    auto f = std::make_shared<PipelineFlags>();
    CLI::App* cmd = group->add_subcommand(
        "timeline", "List a pipeline's synced days (Mixpanel's day_syncs) and its tasks, newest first");
    AddCommon(cmd, *f, /*with_name=*/true);
    cmd->add_option("--limit", f->limit, "At most this many tasks (1 to 10000; default 1000)");
    cmd->add_option("--status", f->states, "Only tasks in this state (repeatable)");
    cmd->callback([f, &exit_code] {
      Run(
          *f, exit_code,
          [&](ApiClient& c) {
            Form q = {{"project_id", std::to_string(f->project)}, {"name", f->name}};
            if (f->limit > 0) q.emplace_back("limit", std::to_string(f->limit));
            for (const auto& s : f->states) q.emplace_back("status", s);
            return c.Call("GET", std::string(kApi) + "timeline" + Query(q));
          },
          PrintTimeline);
    });
  }

  // ---- pause, resume, cancel, sync ----
  const std::vector<std::tuple<std::string, std::string, std::string>> actions = {
      {"pause", "paused", "Pause a pipeline: no new runs until resume"},
      {"resume", "resumed", "Resume a paused pipeline (also one a failure paused: retries its failed work)"},
      {"cancel", "canceled", "Cancel a pipeline for good; what it exported stays in the bucket"},
      {"sync", "started pending work of",
       "Run a pipeline's pending work (backfill, late events, snapshot) now"},
  };
  for (const auto& [action, done, help] : actions) {
    auto f = std::make_shared<PipelineFlags>();
    CLI::App* cmd = group->add_subcommand(action, help);
    AddCommon(cmd, *f, /*with_name=*/true);
    cmd->callback([f, &exit_code, action = action, done = done] {
      Run(
          *f, exit_code,
          [&](ApiClient& c) {
            return PostForm(c, action, {{"project_id", std::to_string(f->project)}, {"name", f->name}});
          },
          [&](const json::value&) { std::cout << done << " pipeline " << f->name << "\n"; });
    });
  }
}

}  // namespace sluice::app
