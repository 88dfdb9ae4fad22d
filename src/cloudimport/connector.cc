#include "cloudimport/connector.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <chrono>

#include "cloudimport/source.h"
#include "storage_access/location.h"

namespace sluice::cloudimport {
namespace {

namespace json = boost::json;

constexpr std::array<std::pair<DataFormat, std::string_view>, 4> kFormats = {{
    {DataFormat::kMixpanelEvent, "mixpanel_event"},
    {DataFormat::kMixpanelPeople, "mixpanel_people"},
    {DataFormat::kRemapEvent, "remap_event"},
    {DataFormat::kRemapPeople, "remap_people"},
}};
constexpr std::array<std::pair<RunStatus, std::string_view>, 5> kRunStatuses = {{
    {RunStatus::kQueued, "queued"},
    {RunStatus::kRunning, "running"},
    {RunStatus::kSuccess, "success"},
    {RunStatus::kFailed, "failed"},
    {RunStatus::kPaused, "paused"},
}};

// Remap targets (SPEC §6): events need event_name, time, distinct_id and may map $insert_id and ip; people
// need $distinct_id.
constexpr std::array<std::string_view, 3> kEventRequired = {"event_name", "time", "distinct_id"};
constexpr std::array<std::string_view, 2> kEventOptional = {"$insert_id", "ip"};
constexpr std::array<std::string_view, 1> kPeopleRequired = {"$distinct_id"};

constexpr int kMaxFrequencyMinutes = 7 * 24 * 60;

struct Refusal {
  ValidationIssue* issue;
  Error Missing(std::string field, std::string message) {
    return Fill("missing_required_property", field, message);
  }
  Error Invalid(std::string field, std::string message) { return Fill("invalid_property", field, message); }
  Error Fill(std::string code, std::string field, std::string message) {
    if (issue) *issue = {std::move(code), std::move(field), message};
    return InvalidArgument(std::move(message));
  }
};

/// A string member; nullopt when absent or null. `wrong_type` set when present but not a string.
std::optional<std::string> StringMember(const json::object& o, std::string_view name, bool& wrong_type) {
  wrong_type = false;
  const json::value* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_string()) {
    wrong_type = true;
    return std::nullopt;
  }
  return std::string(v->get_string());
}

int64_t Int(const json::object& o, std::string_view name, int64_t fallback = 0) {
  const json::value* v = o.if_contains(name);
  if (v == nullptr) return fallback;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->get_uint64());
  if (v->is_double()) return static_cast<int64_t>(v->get_double());
  return fallback;
}
uint64_t UInt(const json::object& o, std::string_view name) {
  int64_t v = Int(o, name);
  return v < 0 ? 0 : static_cast<uint64_t>(v);
}
std::string Str(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

Result<json::object> ParseObject(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return Internal(fmt::format("stored {} record is not a JSON object", what));
  return std::move(v.as_object());
}

}  // namespace

std::string_view ToString(DataFormat v) {
  for (const auto& [f, s] : kFormats) {
    if (f == v) return s;
  }
  return "mixpanel_event";
}
std::string_view ToString(Compression v) { return v == Compression::kGzip ? "gzip" : "none"; }
std::string_view ToString(RunStatus v) {
  for (const auto& [f, s] : kRunStatuses) {
    if (f == v) return s;
  }
  return "queued";
}
std::optional<DataFormat> ParseDataFormat(std::string_view s) {
  for (const auto& [f, name] : kFormats) {
    if (name == s) return f;
  }
  return std::nullopt;
}
std::optional<Compression> ParseCompression(std::string_view s) {
  if (s == "none") return Compression::kNone;
  if (s == "gzip") return Compression::kGzip;
  return std::nullopt;
}
std::optional<RunStatus> ParseRunStatus(std::string_view s) {
  for (const auto& [f, name] : kRunStatuses) {
    if (name == s) return f;
  }
  return std::nullopt;
}

std::optional<std::string_view> ConnectorSpec::RemapOf(std::string_view target) const {
  for (const auto& [t, source] : property_remap) {
    if (t == target) return std::string_view(source);
  }
  return std::nullopt;
}

Result<ConnectorSpec> ParseConnectorSpec(const json::value& body, uint32_t project_id,
                                         ValidationIssue* issue) {
  Refusal refuse{issue};
  if (!body.is_object()) {
    return refuse.Invalid("body",
                          "the body must be a JSON object {connector_type, label, connector_properties, "
                          "category_properties}");
  }
  const json::object& o = body.as_object();
  ConnectorSpec spec;
  spec.project_id = project_id;
  bool wrong = false;

  auto type = StringMember(o, "connector_type", wrong);
  if (wrong) {
    return refuse.Invalid("connector_type",
                          "'connector_type' must be a string: \"s3Import\", \"gcsImport\" or \"azureImport\"");
  }
  if (!type || type->empty()) {
    return refuse.Missing("connector_type",
                          "'connector_type' is required: \"s3Import\", \"gcsImport\" or \"azureImport\"");
  }
  if (*type != "s3Import" && *type != "gcsImport" && *type != "azureImport") {
    return refuse.Invalid(
        "connector_type",
        fmt::format("'connector_type' is \"{}\"; it must be \"s3Import\", \"gcsImport\" or \"azureImport\"",
                    type->substr(0, 80)));
  }
  spec.connector_type = *type;
  const bool gcs = spec.is_gcs();
  const bool azure = spec.is_azure();

  auto label = StringMember(o, "label", wrong);
  if (wrong) return refuse.Invalid("label", "'label' must be a string");
  if (label) {
    if (label->size() > 255) return refuse.Invalid("label", "'label' must be at most 255 characters");
    spec.label = *label;
  }

  // ---- connector_properties
  const json::value* cp = o.if_contains("connector_properties");
  if (cp == nullptr || cp->is_null()) {
    return refuse.Missing("connector_properties",
                          azure ? "'connector_properties' is required: {\"storage_account\", \"container_name\", "
                                  "\"prefix\", \"client_id\", \"client_secret\", \"tenant_id\"}"
                          : gcs ? "'connector_properties' is required: {\"gcs_bucket\", \"gcs_prefix\"}"
                                : "'connector_properties' is required: {\"s3_bucket\", \"s3_prefix\", "
                                  "\"s3_region\", \"s3_role\"}");
  }
  if (!cp->is_object())
    return refuse.Invalid("connector_properties", "'connector_properties' must be an object");
  const json::object& props = cp->as_object();
  auto required = [&](std::string_view name, std::string_view example) -> Result<std::string> {
    std::string field = fmt::format("connector_properties.{}", name);
    auto v = StringMember(props, name, wrong);
    if (wrong)
      return refuse.Invalid(field, fmt::format("'{}' must be a string, e.g. \"{}\"", field, example));
    if (!v || v->empty())
      return refuse.Missing(field, fmt::format("'{}' is required, e.g. \"{}\"", field, example));
    return *v;
  };
  auto optional = [&](std::string_view name) -> Result<std::string> {
    std::string field = fmt::format("connector_properties.{}", name);
    auto v = StringMember(props, name, wrong);
    if (wrong) return refuse.Invalid(field, fmt::format("'{}' must be a string", field));
    return v.value_or("");
  };
  // The other provider's properties are a mistake worth naming (a bucket the connector would not read).
  const std::vector<std::string_view> s3_names{"s3_bucket",   "s3_prefix",    "s3_region",
                                               "s3_role",     "s3_endpoint",  "s3_credential"};
  const std::vector<std::string_view> gcs_names{"gcs_bucket", "gcs_prefix", "gcs_endpoint"};
  const std::vector<std::string_view> azure_names{"storage_account", "container_name", "prefix",        "client_id",
                                                  "client_secret",   "tenant_id",      "azure_endpoint"};
  std::vector<std::string_view> foreign;
  for (const auto* names : {&s3_names, &gcs_names, &azure_names}) {
    const bool own = names == (azure ? &azure_names : gcs ? &gcs_names : &s3_names);
    if (!own) foreign.insert(foreign.end(), names->begin(), names->end());
  }
  for (std::string_view name : foreign) {
    if (props.contains(name)) {
      return refuse.Invalid(fmt::format("connector_properties.{}", name),
                            fmt::format("'connector_properties.{}' does not apply to connector_type {}", name,
                                        spec.connector_type));
    }
  }
  storage_access::Location location;
  if (azure) {
    SLUICE_ASSIGN_OR_RETURN(spec.azure_storage_account, required("storage_account", "acmeexports"));
    SLUICE_ASSIGN_OR_RETURN(spec.azure_container, required("container_name", "mixpanel-import"));
    SLUICE_ASSIGN_OR_RETURN(spec.azure_tenant_id, required("tenant_id", "72f988bf-86f1-41af-91ab-2d7cd011db47"));
    SLUICE_ASSIGN_OR_RETURN(spec.azure_client_id, required("client_id", "11111111-2222-3333-4444-555555555555"));
    // Required like the others, but its value is never echoed (the example is a placeholder).
    {
      auto secret = StringMember(props, "client_secret", wrong);
      if (wrong) {
        return refuse.Invalid("connector_properties.client_secret",
                              "'connector_properties.client_secret' must be a string (the client secret's Value)");
      }
      if (!secret || secret->empty()) {
        return refuse.Missing("connector_properties.client_secret",
                              "'connector_properties.client_secret' is required: the Value of a client secret of "
                              "the app registration (App registrations > the app > Certificates & secrets)");
      }
      spec.azure_client_secret = Secret(std::move(*secret));
    }
    SLUICE_ASSIGN_OR_RETURN(spec.azure_prefix, optional("prefix"));
    while (spec.azure_prefix.starts_with('/')) spec.azure_prefix.erase(0, 1);
    SLUICE_ASSIGN_OR_RETURN(spec.azure_endpoint, optional("azure_endpoint"));
    while (spec.azure_endpoint.ends_with('/')) spec.azure_endpoint.pop_back();
    location = ToLocation(spec);  // the same Location the runs open
  } else if (gcs) {
    SLUICE_ASSIGN_OR_RETURN(spec.gcs_bucket, required("gcs_bucket", "acme-events"));
    SLUICE_ASSIGN_OR_RETURN(spec.gcs_prefix, optional("gcs_prefix"));
    while (spec.gcs_prefix.starts_with('/')) spec.gcs_prefix.erase(0, 1);
    SLUICE_ASSIGN_OR_RETURN(spec.gcs_endpoint, optional("gcs_endpoint"));
    while (spec.gcs_endpoint.ends_with('/')) spec.gcs_endpoint.pop_back();
    location = storage_access::GcsLocation{
        .bucket = spec.gcs_bucket, .prefix = spec.gcs_prefix, .endpoint = spec.gcs_endpoint};
  } else {
    SLUICE_ASSIGN_OR_RETURN(spec.s3_bucket, required("s3_bucket", "acme-events"));
    SLUICE_ASSIGN_OR_RETURN(spec.s3_region, required("s3_region", "us-east-1"));
    SLUICE_ASSIGN_OR_RETURN(spec.s3_credential, optional("s3_credential"));
    if (spec.s3_credential.empty()) {
      SLUICE_ASSIGN_OR_RETURN(spec.s3_role, required("s3_role", "arn:aws:iam::123456789012:role/mixpanel-import"));
    } else {
      // A static credential replaces the role; naming both is refused by Validate below.
      SLUICE_ASSIGN_OR_RETURN(spec.s3_role, optional("s3_role"));
    }
    SLUICE_ASSIGN_OR_RETURN(spec.s3_prefix, optional("s3_prefix"));
    while (spec.s3_prefix.starts_with('/')) spec.s3_prefix.erase(0, 1);
    SLUICE_ASSIGN_OR_RETURN(spec.s3_endpoint, optional("s3_endpoint"));
    while (spec.s3_endpoint.ends_with('/')) spec.s3_endpoint.pop_back();
    location = storage_access::S3Location{.bucket = spec.s3_bucket,
                                          .region = spec.s3_region,
                                          .role_arn = spec.s3_role,
                                          .prefix = spec.s3_prefix,
                                          .endpoint = spec.s3_endpoint,
                                          .credential = spec.s3_credential};
  }
  // One set of rules for pipelines and imports (storage_access/location.h).
  std::string bad_field;
  if (Status valid = storage_access::Validate(location, storage_access::Role::kSource, "connector_properties.",
                                              &bad_field);
      !valid.ok()) {
    return refuse.Invalid(bad_field, valid.error().message);
  }

  // ---- category_properties
  const json::value* cat = o.if_contains("category_properties");
  if (cat == nullptr || cat->is_null()) {
    return refuse.Missing("category_properties",
                          "'category_properties' is required: {\"data_format\": \"mixpanel_event\", "
                          "\"compression\": \"gzip\"}");
  }
  if (!cat->is_object())
    return refuse.Invalid("category_properties", "'category_properties' must be an object");
  const json::object& category = cat->as_object();
  auto format = StringMember(category, "data_format", wrong);
  if (wrong || (format && !ParseDataFormat(*format))) {
    return refuse.Invalid("category_properties.data_format",
                          "'category_properties.data_format' must be one of mixpanel_event, mixpanel_people, "
                          "remap_event, remap_people");
  }
  if (!format || format->empty()) {
    return refuse.Missing("category_properties.data_format",
                          "'category_properties.data_format' is required: mixpanel_event, mixpanel_people, "
                          "remap_event or remap_people");
  }
  spec.data_format = *ParseDataFormat(*format);
  auto compression = StringMember(category, "compression", wrong);
  if (wrong || (compression && !compression->empty() && !ParseCompression(*compression))) {
    return refuse.Invalid("category_properties.compression",
                          "'category_properties.compression' must be \"none\" or \"gzip\"");
  }
  if (compression && !compression->empty()) spec.compression = *ParseCompression(*compression);

  if (const json::value* freq = category.if_contains("frequency"); freq != nullptr && !freq->is_null()) {
    int64_t minutes = -1;
    if (freq->is_int64())
      minutes = freq->get_int64();
    else if (freq->is_uint64())
      minutes = static_cast<int64_t>(std::min<uint64_t>(freq->get_uint64(), 1u << 30));
    else if (freq->is_string()) {
      const auto& s = freq->get_string();
      if (!s.empty() && s.size() < 10 &&
          std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        minutes = std::stoll(std::string(s));
      }
    }
    if (minutes < 1 || minutes > kMaxFrequencyMinutes) {
      return refuse.Invalid(
          "category_properties.frequency",
          fmt::format("'category_properties.frequency' is the number of minutes between discovery "
                      "runs, 1 to {} (default {})",
                      kMaxFrequencyMinutes, kDefaultFrequencyMinutes));
    }
    spec.frequency_minutes = static_cast<int>(minutes);
  }

  const json::value* remap = category.if_contains("property_remap");
  if (IsRemapFormat(spec.data_format)) {
    const bool people = IsPeopleFormat(spec.data_format);
    std::string needed = people ? "$distinct_id" : "event_name, time and distinct_id";
    if (remap == nullptr || remap->is_null()) {
      return refuse.Missing(
          "category_properties.property_remap",
          fmt::format("'category_properties.property_remap' is required for {}: map {} to the "
                      "source fields, e.g. {}",
                      ToString(spec.data_format), needed,
                      people ? R"({"$distinct_id": "user_id"})"
                             : R"({"event_name": "action", "time": "ts", "distinct_id": "user"})"));
    }
    if (!remap->is_object()) {
      return refuse.Invalid(
          "category_properties.property_remap",
          "'category_properties.property_remap' must be an object of Mixpanel field → source field");
    }
    for (const auto& kv : remap->as_object()) {
      std::string target(kv.key());
      std::string field = "category_properties.property_remap." + target;
      bool known = false;
      if (people) {
        known = std::find(kPeopleRequired.begin(), kPeopleRequired.end(), target) != kPeopleRequired.end();
      } else {
        known = std::find(kEventRequired.begin(), kEventRequired.end(), target) != kEventRequired.end() ||
                std::find(kEventOptional.begin(), kEventOptional.end(), target) != kEventOptional.end();
      }
      if (!known) {
        return refuse.Invalid(
            field, fmt::format("'{}' cannot be remapped for {}: the fields are {}", target,
                               ToString(spec.data_format),
                               people ? "$distinct_id" : "event_name, time, distinct_id, $insert_id, ip"));
      }
      if (!kv.value().is_string() || kv.value().get_string().empty()) {
        return refuse.Invalid(field,
                              fmt::format("'{}' must name the source field (a non-empty string)", field));
      }
      spec.property_remap.emplace_back(target, std::string(kv.value().get_string()));
    }
    auto check_required = [&](auto& list) -> Status {
      for (std::string_view t : list) {
        if (!spec.RemapOf(t)) {
          return refuse.Missing(
              fmt::format("category_properties.property_remap.{}", t),
              fmt::format("'category_properties.property_remap' must map '{}' to a source field", t));
        }
      }
      return OkStatus();
    };
    if (people)
      SLUICE_TRY(check_required(kPeopleRequired));
    else
      SLUICE_TRY(check_required(kEventRequired));
  } else if (remap != nullptr && !remap->is_null() && !(remap->is_object() && remap->as_object().empty())) {
    return refuse.Invalid("category_properties.property_remap",
                          fmt::format("'category_properties.property_remap' applies only to remap_event and "
                                      "remap_people, not {}",
                                      ToString(spec.data_format)));
  }
  return spec;
}

// ---- JSON forms
// --------------------------------------------------------------------------------------------

namespace {

json::object SpecJson(const ConnectorSpec& s) {
  json::object cp;
  if (s.is_azure()) {
    // client_secret stays in the stored record (SerializeRecord): an answer never carries it.
    cp = {{"storage_account", s.azure_storage_account},
          {"container_name", s.azure_container},
          {"prefix", s.azure_prefix},
          {"client_id", s.azure_client_id},
          {"tenant_id", s.azure_tenant_id}};
    if (!s.azure_endpoint.empty()) cp["azure_endpoint"] = s.azure_endpoint;
  } else if (s.is_gcs()) {
    cp = {{"gcs_bucket", s.gcs_bucket}, {"gcs_prefix", s.gcs_prefix}};
    if (!s.gcs_endpoint.empty()) cp["gcs_endpoint"] = s.gcs_endpoint;
  } else {
    cp = {{"s3_bucket", s.s3_bucket}, {"s3_prefix", s.s3_prefix}, {"s3_region", s.s3_region}, {"s3_role", s.s3_role}};
    if (!s.s3_endpoint.empty()) cp["s3_endpoint"] = s.s3_endpoint;
    if (!s.s3_credential.empty()) cp["s3_credential"] = s.s3_credential;
  }
  json::object cat{{"data_format", ToString(s.data_format)},
                   {"compression", ToString(s.compression)},
                   {"frequency", s.frequency_minutes}};
  if (!s.property_remap.empty()) {
    json::object remap;
    for (const auto& [t, src] : s.property_remap) remap[t] = src;
    cat["property_remap"] = std::move(remap);
  }
  json::value created_by = nullptr;
  if (!s.created_by.empty()) created_by = s.created_by;
  return {{"connector_id", s.id},
          {"project_id", s.project_id},
          {"connector_type", s.connector_type},
          {"label", s.label},
          {"connector_properties", std::move(cp)},
          {"category_properties", std::move(cat)},
          {"created_at", IsoTimestamp(s.created_ms)},
          {"created_by", std::move(created_by)}};
}

}  // namespace

std::string IsoTimestamp(int64_t ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> t{milliseconds(ms)};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> hms{t - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", int(ymd.year()), unsigned(ymd.month()),
                     unsigned(ymd.day()), hms.hours().count(), hms.minutes().count(), hms.seconds().count(),
                     hms.subseconds().count());
}

json::object ConnectorJson(const ConnectorRecord& r) {
  json::object o = SpecJson(r.spec);
  o["status"] = r.paused ? "paused" : "active";
  o["failure_message"] = r.failure_message;
  o["next_run"] = r.paused ? 0 : r.next_run_ms;
  o["last_run_seq"] = r.last_run_seq;
  return o;
}

json::object RunJson(const RunRecord& run) {
  json::array errors;
  for (const auto& e : run.errors) {
    errors.push_back(json::object{{"file", e.file}, {"line", e.line}, {"reason", e.reason}});
  }
  return {{"run_id", run.run_id},
          {"seq", run.seq},
          {"status", ToString(run.status)},
          {"progress", run.progress},
          {"num_events_imported", run.num_events_imported},
          {"num_events_processed", run.num_events_processed},
          {"num_events_dropped", run.num_events_dropped},
          {"num_files_imported", run.num_files_imported},
          {"num_files_failed", run.num_files_failed},
          {"num_files_found", run.num_files_found},
          {"size_imported", run.size_imported},
          {"size_total", run.size_total},
          {"queued", run.queued_ms},
          {"started", run.started_ms},
          {"finished", run.finished_ms},
          {"failure_message", run.failure_message},
          {"errors", std::move(errors)},
          {"errors_omitted", run.errors_omitted}};
}

std::string SerializeRecord(const ConnectorRecord& r) {
  json::object o = SpecJson(r.spec);
  if (r.spec.is_azure()) {
    // The server's own store, like the Azure pipeline's record; never sent to a client.
    o["connector_properties"].as_object()["client_secret"] = r.spec.azure_client_secret.Reveal();
  }
  o["created_ms"] = r.spec.created_ms;
  o["paused"] = r.paused;
  o["failure_message"] = r.failure_message;
  o["next_run_ms"] = r.next_run_ms;
  o["last_run_seq"] = r.last_run_seq;
  o["consecutive_failures"] = r.consecutive_failures;
  return json::serialize(o);
}

Result<ConnectorRecord> ParseRecord(std::string_view text) {
  SLUICE_ASSIGN_OR_RETURN(json::object o, ParseObject(text, "connector"));
  ConnectorRecord r;
  ConnectorSpec& s = r.spec;
  // Records written before the Mixpanel names (`id`, `created`) still load.
  s.id = o.contains("connector_id") ? Str(o, "connector_id") : Str(o, "id");
  s.project_id = static_cast<uint32_t>(UInt(o, "project_id"));
  s.connector_type = Str(o, "connector_type");
  s.label = Str(o, "label");
  s.created_ms = o.contains("created_ms") ? Int(o, "created_ms") : Int(o, "created");
  s.created_by = Str(o, "created_by");
  if (const json::value* cp = o.if_contains("connector_properties"); cp && cp->is_object()) {
    const auto& p = cp->as_object();
    s.s3_bucket = Str(p, "s3_bucket");
    s.s3_prefix = Str(p, "s3_prefix");
    s.s3_region = Str(p, "s3_region");
    s.s3_role = Str(p, "s3_role");
    s.s3_endpoint = Str(p, "s3_endpoint");
    s.s3_credential = Str(p, "s3_credential");
    s.gcs_bucket = Str(p, "gcs_bucket");
    s.gcs_prefix = Str(p, "gcs_prefix");
    s.gcs_endpoint = Str(p, "gcs_endpoint");
    s.azure_storage_account = Str(p, "storage_account");
    s.azure_container = Str(p, "container_name");
    s.azure_prefix = Str(p, "prefix");
    s.azure_tenant_id = Str(p, "tenant_id");
    s.azure_client_id = Str(p, "client_id");
    s.azure_client_secret = Secret(Str(p, "client_secret"));
    s.azure_endpoint = Str(p, "azure_endpoint");
  }
  if (const json::value* cat = o.if_contains("category_properties"); cat && cat->is_object()) {
    const auto& c = cat->as_object();
    s.data_format = ParseDataFormat(Str(c, "data_format")).value_or(DataFormat::kMixpanelEvent);
    s.compression = ParseCompression(Str(c, "compression")).value_or(Compression::kNone);
    s.frequency_minutes = static_cast<int>(Int(c, "frequency", kDefaultFrequencyMinutes));
    if (const json::value* remap = c.if_contains("property_remap"); remap && remap->is_object()) {
      for (const auto& kv : remap->as_object()) {
        if (kv.value().is_string())
          s.property_remap.emplace_back(std::string(kv.key()), std::string(kv.value().get_string()));
      }
    }
  }
  if (s.id.empty()) return Internal("stored connector record has no id");
  const json::value* paused = o.if_contains("paused");
  r.paused = paused && paused->is_bool() && paused->get_bool();
  r.failure_message = Str(o, "failure_message");
  r.next_run_ms = Int(o, "next_run_ms");
  r.last_run_seq = UInt(o, "last_run_seq");
  r.consecutive_failures = static_cast<int>(Int(o, "consecutive_failures"));
  return r;
}

std::string SerializeRun(const RunRecord& run) { return json::serialize(RunJson(run)); }

Result<RunRecord> ParseRun(std::string_view text) {
  SLUICE_ASSIGN_OR_RETURN(json::object o, ParseObject(text, "run"));
  RunRecord r;
  r.seq = UInt(o, "seq");
  r.run_id = Str(o, "run_id");
  r.status = ParseRunStatus(Str(o, "status")).value_or(RunStatus::kFailed);
  if (const json::value* p = o.if_contains("progress"); p && p->is_number())
    r.progress = p->to_number<double>();
  r.num_events_imported = UInt(o, "num_events_imported");
  r.num_events_processed = UInt(o, "num_events_processed");
  r.num_events_dropped = UInt(o, "num_events_dropped");
  r.num_files_imported = UInt(o, "num_files_imported");
  r.num_files_failed = UInt(o, "num_files_failed");
  r.num_files_found = UInt(o, "num_files_found");
  r.size_imported = UInt(o, "size_imported");
  r.size_total = UInt(o, "size_total");
  r.queued_ms = Int(o, "queued");
  r.started_ms = Int(o, "started");
  r.finished_ms = Int(o, "finished");
  r.failure_message = Str(o, "failure_message");
  r.errors_omitted = UInt(o, "errors_omitted");
  if (const json::value* errs = o.if_contains("errors"); errs && errs->is_array()) {
    for (const auto& e : errs->as_array()) {
      if (!e.is_object()) continue;
      r.errors.push_back(
          {Str(e.as_object(), "file"), UInt(e.as_object(), "line"), Str(e.as_object(), "reason")});
    }
  }
  return r;
}

namespace {
constexpr std::array<std::pair<FileCheckpoint::State, std::string_view>, 3> kStates = {{
    {FileCheckpoint::State::kInProgress, "in_progress"},
    {FileCheckpoint::State::kDone, "done"},
    {FileCheckpoint::State::kFailed, "failed"},
}};
}  // namespace

std::string SerializeCheckpoint(const FileCheckpoint& cp) {
  std::string_view state = "in_progress";
  for (const auto& [s, name] : kStates) {
    if (s == cp.state) state = name;
  }
  return json::serialize(json::object{{"etag", cp.etag},
                                      {"size", cp.size},
                                      {"state", state},
                                      {"lines_done", cp.lines_done},
                                      {"events_imported", cp.events_imported},
                                      {"events_dropped", cp.events_dropped},
                                      {"message", cp.message},
                                      {"updated", cp.updated_ms},
                                      {"insert_ids", static_cast<int>(cp.insert_ids)}});
}

Result<FileCheckpoint> ParseCheckpoint(std::string_view text) {
  SLUICE_ASSIGN_OR_RETURN(json::object o, ParseObject(text, "checkpoint"));
  FileCheckpoint cp;
  cp.etag = Str(o, "etag");
  cp.size = UInt(o, "size");
  std::string state = Str(o, "state");
  for (const auto& [s, name] : kStates) {
    if (name == state) cp.state = s;
  }
  cp.lines_done = UInt(o, "lines_done");
  cp.events_imported = UInt(o, "events_imported");
  cp.events_dropped = UInt(o, "events_dropped");
  cp.message = Str(o, "message");
  cp.updated_ms = Int(o, "updated");
  cp.insert_ids = Int(o, "insert_ids") == static_cast<int>(InsertIdScheme::kContent)
                      ? InsertIdScheme::kContent
                      : InsertIdScheme::kLineNumber;
  return cp;
}

}  // namespace sluice::cloudimport
