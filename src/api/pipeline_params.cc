#include "api/pipeline_params.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <set>

#include "api/request_util.h"
#include "pipeline/destination.h"
#include "common/strings.h"
#include "expr/where.h"
#include "storage_access/location.h"

namespace sluice::api {
namespace {

using pipeline::DataSource;
using pipeline::DestinationType;
using pipeline::PipelineSpec;
using pipeline::TaskState;

// Mixpanel's limit on event names (and the longest name the ingestion API stores).
constexpr size_t kMaxEventNameBytes = 255;
// Bounds what one request can ask the manager to keep per pipeline.
constexpr size_t kMaxWhitelistedEvents = 10'000;
constexpr size_t kMaxNameBytes = 64;  // as the manager allows
constexpr size_t kMaxPathBytes = 4096;

constexpr std::array kTaskStates = {TaskState::kPending,  TaskState::kRunning,  TaskState::kRetried,
                                    TaskState::kFailed,   TaskState::kCanceled, TaskState::kTimedOut,
                                    TaskState::kSucceeded};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || IsDigit(c); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool HasControlChar(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

Error Invalid(std::string message) { return InvalidArgument(std::move(message)); }

Result<int64_t> ParseDateParam(std::string_view name, std::string_view value) {
  auto days = ParseDate(value);
  if (!days) return Invalid(fmt::format("{} '{}' is not a valid date: use YYYY-MM-DD (UTC)", name, value));
  return *days;
}

Result<DestinationType> ParseType(std::string_view value) {
  auto type = pipeline::ParseDestinationType(value);
  if (!type) {
    return Invalid(
        fmt::format("type '{}' is not supported: use s3 (also accepted as s3-raw) to write to an S3 "
                    "bucket, gcs (also accepted as gcs-raw) to write to a Google Cloud Storage bucket, azure-raw "
                    "(also accepted as azure-blob) to write to an Azure Blob Storage container, or local "
                    "to write to a directory on the server",
                    value));
  }
  return *type;
}

Result<DataSource> ParseDataSourceParam(std::string_view value) {
  auto v = pipeline::ParseDataSource(value);
  if (!v) return Invalid(fmt::format("data_source '{}' is not valid: use events, people or identity", value));
  return *v;
}

Result<pipeline::Frequency> ParseFrequencyParam(std::string_view value) {
  auto v = pipeline::ParseFrequency(value);
  if (!v) return Invalid(fmt::format("frequency '{}' is not valid: use hourly or daily", value));
  return *v;
}

Result<pipeline::Compression> ParseCompressionParam(std::string_view value) {
  auto v = pipeline::ParseCompression(value);
  if (!v)
    return Invalid(fmt::format("compression '{}' is not valid: use gzip (the default), zstd or none", value));
  return *v;
}

Result<objstore::Encryption::Mode> ParseEncryptionParam(std::string_view value) {
  // Any case: Mixpanel's UI spells them AES and KMS.
  if (EqualsIgnoreCase(value, "none")) return objstore::Encryption::Mode::kNone;
  if (EqualsIgnoreCase(value, "aes")) return objstore::Encryption::Mode::kAes256;
  if (EqualsIgnoreCase(value, "kms")) return objstore::Encryption::Mode::kKms;
  return Invalid(fmt::format(
      "s3_encryption '{}' is not valid: use none (the default), aes (SSE-S3) or kms (SSE-KMS), in any case",
      value));
}

Status ValidateName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= kMaxNameBytes &&
            std::all_of(name.begin(), name.end(),
                        [](char c) { return IsAlnum(c) || c == '-' || c == '_' || c == '.'; });
  if (!ok) {
    return Invalid(fmt::format("name '{}' is not valid: 1 to {} letters, digits, '-', '_' and '.'", name,
                               kMaxNameBytes));
  }
  return OkStatus();
}

Status CheckWhere(std::string_view where) {
  // Checked here so the caller gets the positioned message at once (the manager checks again).
  auto compiled = expr::WhereFilter::Compile(where);
  if (!compiled.ok()) return Invalid(compiled.error().message);
  return OkStatus();
}

/// Parameters of one destination type given for another: a mistake worth naming (the pipeline would not
/// write where the caller thinks).
Status RefuseForeign(const pipeline::Destination& d, std::string_view type, std::string_view hint) {
  const bool s3 = d.type == DestinationType::kS3, gcs = d.type == DestinationType::kGcs;
  const std::pair<const char*, const std::string*> given[] = {
      {"s3_bucket", s3 ? nullptr : &d.s3_bucket},     {"s3_region", s3 ? nullptr : &d.s3_region},
      {"s3_role", s3 ? nullptr : &d.s3_role},         {"s3_prefix", s3 ? nullptr : &d.s3_prefix},
      {"s3_endpoint", s3 ? nullptr : &d.s3_endpoint}, {"gcs_bucket", gcs ? nullptr : &d.gcs_bucket},
      {"gcs_prefix", gcs ? nullptr : &d.gcs_prefix},  {"gcs_region", gcs ? nullptr : &d.gcs_region},
      {"gcs_endpoint", gcs ? nullptr : &d.gcs_endpoint},
      {"gcs_kms_key_name", gcs ? nullptr : &d.gcs_kms_key_name},
      {"s3_credential", s3 ? nullptr : &d.s3_credential}};
  for (const auto& [param, value] : given) {
    if (value != nullptr && !value->empty()) {
      return Invalid(fmt::format("{} does not apply to type={}: {}", param, type, hint));
    }
  }
  if (d.type != DestinationType::kAzure) {
    const std::pair<const char*, const std::string*> azure_given[] = {
        {"storage_account", &d.azure_storage_account}, {"container_name", &d.azure_container},
        {"prefix", &d.azure_prefix},                    {"client_id", &d.azure_client_id},
        {"client_secret", &d.azure_client_secret.Reveal()}, {"tenant_id", &d.azure_tenant_id},
        {"azure_endpoint", &d.azure_endpoint}};
    for (const auto& [param, value] : azure_given) {
      if (!value->empty()) return Invalid(fmt::format("{} does not apply to type={}: {}", param, type, hint));
    }
  }
  if (d.type != DestinationType::kS3 && d.encryption.mode != objstore::Encryption::Mode::kNone) {
    return Invalid(fmt::format("s3_encryption does not apply to type={}{}", type,
                               d.type == DestinationType::kGcs
                                   ? ": GCS encrypts every object; use gcs_kms_key_name for a customer-managed key"
                                   : " (files are written as they are)"));
  }
  return OkStatus();
}

Status ValidateDestination(const pipeline::Destination& d) {
  const bool kms = d.encryption.mode == objstore::Encryption::Mode::kKms;
  if (!d.encryption.kms_key_id.empty() && !kms) {
    return Invalid(
        "s3_kms_key_id is only used with s3_encryption=kms: add s3_encryption=kms or drop the key");
  }
  if (d.type == DestinationType::kLocal) {
    SLUICE_TRY(RefuseForeign(d, "local", "local_path names the directory to write to"));
    if (d.local_path.empty()) {
      return Invalid(
          "local_path is required for type=local: a directory under the server's local export root, e.g. "
          "exports/web (relative to the root) or an absolute path inside it");
    }
    if (d.local_path.size() > kMaxPathBytes || HasControlChar(d.local_path)) {
      return Invalid("local_path is too long or contains a control character");
    }
    // Containment in the root (and symlinks) is the destination factory's check; '..' is refused up front.
    for (size_t pos = 0; pos <= d.local_path.size();) {
      size_t slash = d.local_path.find('/', pos);
      if (slash == std::string::npos) slash = d.local_path.size();
      if (std::string_view(d.local_path).substr(pos, slash - pos) == "..") {
        return Invalid("local_path may not contain '..' parts: give a directory under the local export root");
      }
      pos = slash + 1;
    }
    return OkStatus();
  }
  if (d.type == DestinationType::kAzure) {
    if (!d.local_path.empty())
      return Invalid("local_path only applies to type=local; for azure-raw use storage_account and container_name");
    SLUICE_TRY(RefuseForeign(d, "azure-raw", "use storage_account, container_name, prefix, client_id, "
                                             "client_secret, tenant_id"));
    const std::pair<const char*, bool> required[] = {
        {"storage_account", d.azure_storage_account.empty()}, {"container_name", d.azure_container.empty()},
        {"tenant_id", d.azure_tenant_id.empty()},             {"client_id", d.azure_client_id.empty()},
        {"client_secret", d.azure_client_secret.empty()}};
    for (const auto& [param, missing] : required) {
      if (missing) {
        return Invalid(fmt::format(
            "{} is required for type=azure-raw: Sluice writes to the container container_name of the storage "
            "account storage_account as the service principal client_id/client_secret of tenant tenant_id, to "
            "which you assigned Storage Blob Data Contributor on the container",
            param));
      }
    }
    return storage_access::Validate(pipeline::ToLocation(d), storage_access::Role::kDestination);
  }
  if (d.type == DestinationType::kGcs) {
    if (!d.local_path.empty())
      return Invalid("local_path only applies to type=local; for gcs use gcs_bucket and gcs_prefix");
    SLUICE_TRY(RefuseForeign(d, "gcs", "use gcs_bucket, gcs_prefix, gcs_region"));
    if (d.gcs_bucket.empty()) {
      return Invalid(
          "gcs_bucket is required for type=gcs: the name of your bucket, on which Sluice's service account "
          "has Storage Object Admin (`sluice gcp roles --bucket NAME` prints the binding)");
    }
    return storage_access::Validate(pipeline::ToLocation(d), storage_access::Role::kDestination);
  }
  if (!d.local_path.empty())
    return Invalid("local_path only applies to type=local; for s3 use s3_bucket and s3_prefix");
  SLUICE_TRY(RefuseForeign(d, "s3", "use s3_bucket, s3_prefix, s3_region, s3_role"));
  if (d.s3_bucket.empty()) return Invalid("s3_bucket is required for type=s3: the name of your bucket");
  if (d.s3_region.empty())
    return Invalid("s3_region is required for type=s3: the bucket's region, e.g. us-east-1");
  if (d.s3_role.empty() && d.s3_credential.empty()) {
    return Invalid(
        "s3_role is required for type=s3: the ARN of the role Sluice assumes to write to your bucket, e.g. "
        "arn:aws:iam::111122223333:role/sluice-export (or s3_credential: a static key the operator granted)");
  }
  // One set of rules for pipelines and imports (storage_access/location.h).
  return storage_access::Validate(pipeline::ToLocation(d), storage_access::Role::kDestination);
}

/// Sets `*out` from the parameter when present.
template <typename T, typename Parse>
Status ReadOptional(const PipelineParams& params, std::string_view name, T& out, Parse parse) {
  if (auto v = params.Get(name)) {
    SLUICE_ASSIGN_OR_RETURN(out, parse(*v));
  }
  return OkStatus();
}

Status ReadString(const PipelineParams& params, std::string_view name, std::string& out) {
  if (auto v = params.Get(name)) out = std::string(TrimSpace(*v));
  return OkStatus();
}

/// An Azure credential parameter (`client_id`, `client_secret`, `tenant_id`), also under the name Mixpanel's
/// edit API gives it (`azure_client_id`, ...); nullopt when neither is given, a 400 when both differ.
Result<std::optional<std::string_view>> AzureCredentialParam(const PipelineParams& params,
                                                             std::string_view name) {
  const std::string alias = fmt::format("azure_{}", name);
  const auto plain = params.Get(name);
  const auto mixpanel = params.Get(alias);
  if (plain && mixpanel && TrimSpace(*plain) != TrimSpace(*mixpanel)) {
    return Invalid(
        fmt::format("{} and {} name the same setting with different values: send one of them", name, alias));
  }
  if (plain) return std::optional<std::string_view>(TrimSpace(*plain));
  if (mixpanel) return std::optional<std::string_view>(TrimSpace(*mixpanel));
  return std::optional<std::string_view>();
}

/// The destination and output parameters shared by create and edit, each applied only when present.
Status ReadMutable(const PipelineParams& params, PipelineSpec& spec) {
  SLUICE_TRY(ReadOptional(params, "frequency", spec.frequency, ParseFrequencyParam));
  SLUICE_TRY(
      ReadOptional(params, "sync", spec.sync, [](std::string_view v) { return ParseBoolParam("sync", v); }));
  SLUICE_TRY(ReadOptional(params, "compression", spec.compression, ParseCompressionParam));
  if (params.Has("events")) {
    SLUICE_ASSIGN_OR_RETURN(spec.events, ParseEventsParam(params.All("events")));
  }
  SLUICE_TRY(ReadString(params, "where", spec.where));
  auto& d = spec.destination;
  SLUICE_TRY(ReadString(params, "s3_bucket", d.s3_bucket));
  SLUICE_TRY(ReadString(params, "s3_region", d.s3_region));
  SLUICE_TRY(ReadString(params, "s3_role", d.s3_role));
  SLUICE_TRY(ReadString(params, "s3_credential", d.s3_credential));
  if (auto v = params.Get("s3_prefix")) d.s3_prefix = storage_access::NormalizeDestinationPrefix(TrimSpace(*v));
  SLUICE_TRY(ReadString(params, "s3_endpoint", d.s3_endpoint));
  while (!d.s3_endpoint.empty() && d.s3_endpoint.back() == '/') d.s3_endpoint.pop_back();
  if (auto v = params.Get("s3_encryption")) {
    SLUICE_ASSIGN_OR_RETURN(d.encryption.mode, ParseEncryptionParam(TrimSpace(*v)));
    // Switching away from kms drops the old key unless a new one is named (which validation then refuses).
    if (d.encryption.mode != objstore::Encryption::Mode::kKms && !params.Has("s3_kms_key_id")) {
      d.encryption.kms_key_id.clear();
    }
  }
  SLUICE_TRY(ReadString(params, "s3_kms_key_id", d.encryption.kms_key_id));
  SLUICE_TRY(ReadString(params, "local_path", d.local_path));
  SLUICE_TRY(ReadString(params, "gcs_bucket", d.gcs_bucket));
  if (auto v = params.Get("gcs_prefix")) d.gcs_prefix = storage_access::NormalizeDestinationPrefix(TrimSpace(*v));
  SLUICE_TRY(ReadString(params, "gcs_region", d.gcs_region));
  SLUICE_TRY(ReadString(params, "gcs_endpoint", d.gcs_endpoint));
  while (!d.gcs_endpoint.empty() && d.gcs_endpoint.back() == '/') d.gcs_endpoint.pop_back();
  SLUICE_TRY(ReadString(params, "gcs_kms_key_name", d.gcs_kms_key_name));
  SLUICE_TRY(ReadString(params, "storage_account", d.azure_storage_account));
  SLUICE_TRY(ReadString(params, "container_name", d.azure_container));
  if (auto v = params.Get("prefix")) d.azure_prefix = storage_access::NormalizeDestinationPrefix(TrimSpace(*v));
  SLUICE_ASSIGN_OR_RETURN(auto client_id, AzureCredentialParam(params, "client_id"));
  if (client_id) d.azure_client_id = std::string(*client_id);
  SLUICE_ASSIGN_OR_RETURN(auto tenant_id, AzureCredentialParam(params, "tenant_id"));
  if (tenant_id) d.azure_tenant_id = std::string(*tenant_id);
  SLUICE_ASSIGN_OR_RETURN(auto client_secret, AzureCredentialParam(params, "client_secret"));
  if (client_secret) d.azure_client_secret = Secret(std::string(*client_secret));
  SLUICE_TRY(ReadString(params, "azure_endpoint", d.azure_endpoint));
  while (!d.azure_endpoint.empty() && d.azure_endpoint.back() == '/') d.azure_endpoint.pop_back();
  return OkStatus();
}

}  // namespace

// ---- PipelineParams
// ---------------------------------------------------------------------------------------------

PipelineParams::PipelineParams(const http::Request& req) : pairs_(req.query) {
  if (IsFormUrlEncoded(req) && !req.headers.Get("Content-Encoding")) {
    for (auto& kv : http::ParseForm(req.body)) pairs_.push_back(std::move(kv));
  }
}

std::optional<std::string_view> PipelineParams::Get(std::string_view name) const {
  for (const auto& [k, v] : pairs_) {
    if (k == name) return std::string_view(v);
  }
  return std::nullopt;
}

std::vector<std::string_view> PipelineParams::All(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& [k, v] : pairs_) {
    if (k == name) out.emplace_back(v);
  }
  return out;
}

// ---- parameter parsers
// ------------------------------------------------------------------------------------------

Result<bool> ParseBoolParam(std::string_view name, std::string_view value) {
  std::string v = AsciiLower(TrimSpace(value));
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  return Invalid(fmt::format("{} '{}' is not a boolean: use true or false", name, value));
}

Result<std::vector<std::string>> ParseEventsParam(const std::vector<std::string_view>& values) {
  std::vector<std::string> names;
  auto add = [&](std::string_view name) -> Status {
    if (name.empty()) return OkStatus();
    if (name.size() > kMaxEventNameBytes) {
      return Invalid(fmt::format("events: the name '{}...' is longer than {} bytes", name.substr(0, 40),
                                 kMaxEventNameBytes));
    }
    names.emplace_back(name);
    return OkStatus();
  };
  for (std::string_view raw : values) {
    std::string_view value = TrimSpace(raw);
    if (!value.empty() && value.front() == '[') {
      boost::system::error_code ec;
      boost::json::value parsed = boost::json::parse(value, ec);
      if (ec || !parsed.is_array()) {
        return Invalid(
            "events: a value starting with '[' must be a JSON array of event names, e.g. "
            "[\"Signed Up\",\"Purchase\"]");
      }
      for (const auto& item : parsed.as_array()) {
        if (!item.is_string())
          return Invalid("events: every item of the JSON array must be a string (an event name)");
        SLUICE_TRY(add(item.as_string()));
      }
    } else {
      SLUICE_TRY(add(raw));  // an event name is taken as sent, surrounding spaces included
    }
  }
  std::vector<std::string> unique;
  std::set<std::string_view> seen;
  unique.reserve(names.size());
  for (auto& n : names) {
    if (seen.insert(n).second) unique.push_back(n);
  }
  if (unique.size() > kMaxWhitelistedEvents) {
    return Invalid(
        fmt::format("events: {} names given; at most {} are allowed", unique.size(), kMaxWhitelistedEvents));
  }
  return unique;
}

Result<std::vector<TaskState>> ParseTaskStatesParam(const std::vector<std::string_view>& values) {
  std::vector<TaskState> out;
  auto add = [&](std::string_view raw) -> Status {
    std::string_view name = TrimSpace(raw);
    if (name.empty()) return OkStatus();
    for (TaskState s : kTaskStates) {
      if (EqualsIgnoreCase(pipeline::ToString(s), name)) {
        if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
        return OkStatus();
      }
    }
    return Invalid(
        fmt::format("status '{}' is not a task state: use pending, running, retried, failed, canceled, "
                    "timed_out or succeeded",
                    name));
  };
  for (std::string_view raw : values) {
    std::string_view value = TrimSpace(raw);
    if (!value.empty() && value.front() == '[') {
      boost::system::error_code ec;
      boost::json::value parsed = boost::json::parse(value, ec);
      if (ec || !parsed.is_array())
        return Invalid("status: a value starting with '[' must be a JSON array of states");
      for (const auto& item : parsed.as_array()) {
        if (!item.is_string())
          return Invalid("status: every item of the JSON array must be a string (a task state)");
        SLUICE_TRY(add(item.as_string()));
      }
      continue;
    }
    size_t pos = 0;
    while (true) {
      size_t comma = value.find(',', pos);
      SLUICE_TRY(
          add(value.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos)));
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
  }
  return out;
}

// ---- create / edit
// ----------------------------------------------------------------------------------------------

Result<PipelineSpec> ParseCreateParams(const PipelineParams& params, uint32_t project_id,
                                       std::string_view today) {
  PipelineSpec spec;
  spec.project_id = project_id;

  auto type = params.Get("type");
  if (!type || TrimSpace(*type).empty()) {
    return Invalid(
        "type is required: s3 (also accepted as s3-raw) to write to an S3 bucket, gcs (also gcs-raw) to write "
        "to a Google Cloud Storage bucket, azure-raw (also azure-blob) to write to an Azure Blob Storage "
        "container, or local to write to a directory on the server");
  }
  spec.type_param = std::string(TrimSpace(*type));
  SLUICE_ASSIGN_OR_RETURN(spec.destination.type, ParseType(spec.type_param));

  if (auto format = params.Get("data_format"); format && TrimSpace(*format) != "json") {
    return Invalid(fmt::format("data_format '{}' is not supported: JSON pipelines write json", *format));
  }
  SLUICE_TRY(ReadString(params, "name", spec.name));
  SLUICE_TRY(ReadOptional(params, "trial", spec.trial,
                          [](std::string_view v) { return ParseBoolParam("trial", v); }));
  SLUICE_TRY(ReadOptional(params, "data_source", spec.data_source,
                          [](std::string_view v) { return ParseDataSourceParam(TrimSpace(v)); }));

  auto from = params.Get("from_date");
  if (spec.trial) {
    // Mixpanel's trial pipeline: yesterday's data, then daily, no late-data sync, no event filters (one per
    // data source: the manager's limit).
    auto today_day = ParseDate(today);
    if (!today_day) return Invalid(fmt::format("today '{}' is not a date", today));
    const std::string yesterday = FormatDate(*today_day - 1);
    if (from && !TrimSpace(*from).empty() && TrimSpace(*from) != yesterday) {
      return Invalid(
          fmt::format("trial=true pipelines export from yesterday ({}): omit from_date or set it to {} (use "
                      "trial=false for "
                      "another start date)",
                      yesterday, yesterday));
    }
    if (auto f = params.Get("frequency"); f && !EqualsIgnoreCase(TrimSpace(*f), "daily")) {
      return Invalid("trial=true pipelines run daily: omit frequency or set frequency=daily");
    }
    if (auto sync = params.Get("sync")) {
      SLUICE_ASSIGN_OR_RETURN(bool v, ParseBoolParam("sync", *sync));
      if (v) return Invalid("trial=true pipelines do not sync late data: omit sync or set sync=false");
    }
    for (const char* filter : {"events", "where"}) {
      for (std::string_view v : params.All(filter)) {
        if (!TrimSpace(v).empty() && TrimSpace(v) != "[]") {
          return Invalid(fmt::format(
              "trial=true pipelines export every event: {} filters are not available (use trial=false)",
              filter));
        }
      }
    }
    if (auto to = params.Get("to_date"); to && !TrimSpace(*to).empty()) {
      return Invalid("trial=true pipelines are recurring from yesterday: omit to_date (use trial=false)");
    }
    spec.from_date = yesterday;
    spec.frequency = pipeline::Frequency::kDaily;
    spec.sync = false;
    SLUICE_TRY(ReadMutable(params, spec));
    spec.sync = false;
    SLUICE_TRY(ValidatePipelineSpec(spec));
    return spec;
  }
  if (!from || TrimSpace(*from).empty()) {
    return Invalid(
        "from_date is required: the first day to export, YYYY-MM-DD (UTC), at most six months back");
  }
  spec.from_date = std::string(TrimSpace(*from));
  SLUICE_ASSIGN_OR_RETURN(int64_t from_day, ParseDateParam("from_date", spec.from_date));
  if (auto today_day = ParseDate(today); today_day && from_day > *today_day) {
    return Invalid(
        fmt::format("from_date {} is in the future (today is {} UTC): the first day to export must have "
                    "started",
                    spec.from_date, today));
  }
  SLUICE_TRY(ReadString(params, "to_date", spec.to_date));

  SLUICE_TRY(ReadMutable(params, spec));
  SLUICE_TRY(ValidatePipelineSpec(spec));
  return spec;
}

Status ApplyEditParams(const PipelineParams& params, PipelineSpec& spec) {
  if (auto type = params.Get("type")) {
    SLUICE_ASSIGN_OR_RETURN(DestinationType t, ParseType(TrimSpace(*type)));
    if (t != spec.destination.type) {
      return Invalid(
          fmt::format("type cannot be changed (the pipeline writes to {}): cancel it and create a new one",
                      pipeline::ToString(spec.destination.type)));
    }
  }
  if (auto ds = params.Get("data_source")) {
    SLUICE_ASSIGN_OR_RETURN(DataSource v, ParseDataSourceParam(TrimSpace(*ds)));
    if (v != spec.data_source) {
      return Invalid(
          fmt::format("data_source cannot be changed (the pipeline exports {}): cancel it and create a new "
                      "one",
                      pipeline::ToString(spec.data_source)));
    }
  }
  if (auto from = params.Get("from_date"); from && TrimSpace(*from) != spec.from_date) {
    return Invalid(fmt::format(
        "from_date cannot be changed (it is {}): cancel the pipeline and create a new one", spec.from_date));
  }
  if (auto trial = params.Get("trial")) {
    SLUICE_ASSIGN_OR_RETURN(bool v, ParseBoolParam("trial", *trial));
    if (v != spec.trial) return Invalid("trial cannot be changed after the pipeline was created");
  }
  static constexpr std::array kEditable = {"to_date",
                                           "frequency",
                                           "sync",
                                           "events",
                                           "where",
                                           "compression",
                                           "s3_bucket",
                                           "s3_region",
                                           "s3_role",
                                           "s3_prefix",
                                           "s3_endpoint",
                                           "s3_encryption",
                                           "s3_kms_key_id",
                                           "local_path",
                                           "gcs_bucket",
                                           "gcs_prefix",
                                           "gcs_region",
                                           "gcs_endpoint",
                                           "gcs_kms_key_name",
                                           "storage_account",
                                           "container_name",
                                           "prefix",
                                           "client_id",
                                           "client_secret",
                                           "tenant_id",
                                           "azure_endpoint",
                                           "s3_credential",
                                           "azure_client_id",
                                           "azure_client_secret",
                                           "azure_tenant_id"};
  if (std::none_of(kEditable.begin(), kEditable.end(), [&](const char* p) { return params.Has(p); })) {
    return Invalid(
        "nothing to change: pass at least one of to_date, frequency, sync, events, where, compression, "
        "s3_bucket, s3_region, s3_role, s3_prefix, s3_endpoint, s3_encryption, s3_kms_key_id, local_path, "
        "gcs_bucket, gcs_prefix, gcs_region, gcs_endpoint, gcs_kms_key_name, storage_account, "
        "container_name, prefix, client_id (azure_client_id), client_secret (azure_client_secret), "
        "tenant_id (azure_tenant_id), azure_endpoint, s3_credential");
  }
  SLUICE_TRY(ReadString(params, "to_date", spec.to_date));
  SLUICE_TRY(ReadMutable(params, spec));
  return ValidatePipelineSpec(spec);
}

Status ValidatePipelineSpec(const PipelineSpec& spec) {
  if (!spec.name.empty()) SLUICE_TRY(ValidateName(spec.name));
  if (spec.trial) {
    if (spec.frequency != pipeline::Frequency::kDaily) return Invalid("trial=true pipelines run daily only");
    if (spec.sync) return Invalid("trial=true pipelines do not sync late data (sync=false)");
    if (!spec.events.empty() || !spec.where.empty()) {
      return Invalid("trial=true pipelines export every event: events and where filters are not available");
    }
    if (!spec.to_date.empty()) return Invalid("trial=true pipelines are recurring: to_date is not available");
  }
  SLUICE_ASSIGN_OR_RETURN(int64_t from_day, ParseDateParam("from_date", spec.from_date));
  if (!spec.to_date.empty()) {
    SLUICE_ASSIGN_OR_RETURN(int64_t to_day, ParseDateParam("to_date", spec.to_date));
    if (to_day < from_day) {
      return Invalid(
          fmt::format("to_date {} is before from_date {}: to_date is the last day to export (inclusive); "
                      "leave it empty for a recurring pipeline",
                      spec.to_date, spec.from_date));
    }
  }
  if (auto parsed = pipeline::ParseDestinationType(spec.type_param);
      !parsed || *parsed != spec.destination.type) {
    return Invalid(fmt::format("type '{}' does not match the destination", spec.type_param));
  }
  if (spec.data_source != DataSource::kEvents) {
    const auto source = pipeline::ToString(spec.data_source);
    if (!spec.events.empty()) {
      return Invalid(fmt::format("events filters event names; it does not apply to data_source={}", source));
    }
    if (!spec.where.empty()) {
      return Invalid(fmt::format("where filters events; it does not apply to data_source={}", source));
    }
  }
  if (!spec.where.empty()) SLUICE_TRY(CheckWhere(spec.where));
  return ValidateDestination(spec.destination);
}

// ---- formatting
// -------------------------------------------------------------------------------------------------

std::string FormatDate(int64_t days) {
  std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{days}}};
  return fmt::format("{:04d}-{:02d}-{:02d}", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()));
}

std::string FormatTimestampMs(int64_t ms) {
  using namespace std::chrono;
  sys_time<milliseconds> t{milliseconds{ms}};
  auto day = floor<days>(t);
  hh_mm_ss<seconds> hms{floor<seconds>(t - day)};
  return fmt::format("{}T{:02d}:{:02d}:{:02d}Z", FormatDate(day.time_since_epoch().count()),
                     hms.hours().count(), hms.minutes().count(), static_cast<int64_t>(hms.seconds().count()));
}

}  // namespace sluice::api
