#include "pipeline/e2e_support.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <random>
#include <thread>

#include <sys/wait.h>

#include <cstdio>

#include <fmt/format.h>

#include "aws/executor.h"
#include "aws/providers.h"
#include "aws/sigv4.h"
#include "aws/xml.h"
#include "common/crypto.h"
#include "objstore/s3/s3_object_store.h"
#include "pipeline/decompress_util.h"
#include "pipeline/layout.h"

namespace sluice::testing::e2e {
namespace {

namespace json = boost::json;

aws::RetryPolicy AdminRetry() {
  aws::RetryPolicy p;
  p.max_attempts = 4;
  p.base_delay = std::chrono::milliseconds(20);
  p.throttled_base_delay = std::chrono::milliseconds(50);
  p.max_delay = std::chrono::milliseconds(500);
  p.attempt_timeout = std::chrono::milliseconds(60000);
  p.total_timeout = std::chrono::milliseconds(120000);
  return p;
}

std::shared_ptr<aws::CredentialsProvider> AdminCredentials(const MotoEnvironment& env) {
  aws::Credentials c;
  c.access_key_id = env.admin_access_key_id;
  c.secret_access_key = env.admin_secret_access_key;
  return std::make_shared<aws::StaticCredentialsProvider>(std::move(c), "moto admin");
}

/// The raw text of the value of `"name":` in a record whose earlier values are JSON strings/numbers/null (no
/// unescaped quote can occur inside an escaped string, so the first match is the field itself).
std::optional<std::string_view> RawField(std::string_view line, std::string_view name, std::string_view next) {
  const std::string open = fmt::format("\"{}\":", name);
  size_t begin = line.find(open);
  if (begin == std::string_view::npos) return std::nullopt;
  begin += open.size();
  if (next.empty()) return line.substr(begin);
  const std::string close = fmt::format(",\"{}\":", next);
  size_t end = line.find(close, begin);
  if (end == std::string_view::npos) return std::nullopt;
  return line.substr(begin, end - begin);
}

int64_t WholeSeconds(std::string_view number) {
  size_t dot = number.find_first_of(".eE");
  std::string whole(number.substr(0, dot));
  return std::stoll(whole);
}

std::string StringOrEmpty(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || v->is_null()) return "";
  if (v->is_string()) return std::string(v->as_string());
  return json::serialize(*v);
}

Result<EventsByInsertId> ParseExport(const std::string& body) {
  EventsByInsertId out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t nl = body.find('\n', pos);
    std::string_view line(body.data() + pos, (nl == std::string::npos ? body.size() : nl) - pos);
    pos = nl == std::string::npos ? body.size() : nl + 1;
    if (line.empty()) continue;
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_object()) return Internal(fmt::format("export line is not JSON: {}", line.substr(0, 200)));
    const json::object& props = v.at("properties").as_object();
    StoredEvent e;
    e.event = std::string(v.at("event").as_string());
    e.distinct_id = StringOrEmpty(props, "distinct_id");
    e.insert_id = StringOrEmpty(props, "$insert_id");
    e.device_id = StringOrEmpty(props, "$device_id");
    e.user_id = StringOrEmpty(props, "$user_id");
    e.time_s = props.at("time").to_number<int64_t>();
    // The stored properties follow the export's own fields: {"time":…,…,"mp_processing_time_ms":N[,rest]}.
    constexpr std::string_view kMarker = ",\"mp_processing_time_ms\":";
    size_t m = line.find(kMarker);
    if (m == std::string_view::npos) return Internal("export line without mp_processing_time_ms");
    size_t i = m + kMarker.size();
    while (i < line.size() && (std::isdigit(static_cast<unsigned char>(line[i])) || line[i] == '-')) ++i;
    if (line.substr(i) == "}}") {
      e.properties = "{}";
    } else if (i < line.size() && line[i] == ',' && line.ends_with("}}")) {
      e.properties = "{" + std::string(line.substr(i + 1, line.size() - (i + 1) - 1));
    } else {
      return Internal(fmt::format("unexpected export line shape: {}", line.substr(0, 200)));
    }
    if (out.contains(e.insert_id)) {
      return Internal(fmt::format("the store's read-back holds insert_id {} twice", e.insert_id));
    }
    std::string key = e.insert_id;
    out.emplace(std::move(key), std::move(e));
  }
  return out;
}

}  // namespace

// ---- time and encoding -------------------------------------------------------------------------------------

int64_t TodayUtc() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
             .count() /
         86400;
}

std::string DateOf(int64_t day) { return pipeline::FormatDate(day); }

std::string FormEncode(const Params& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += aws::UriEncode(k, true);
    out += '=';
    out += aws::UriEncode(v, true);
  }
  return out;
}

std::vector<std::string> FullActions() {
  return {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:DeleteObject"};
}

std::string Project::Authorization() const { return "Basic " + Base64Encode(secret + ":"); }

// ---- moto ---------------------------------------------------------------------------------------------------

E2eMoto::E2eMoto() {
  auto m = MotoServer::Start();
  if (!m.ok()) {
    error_ = m.error().ToString();
    return;
  }
  moto_ = std::move(m).value();
  auto env = moto_->RunSetup();
  if (!env.ok()) {
    error_ = env.error().ToString();
    return;
  }
  env_ = std::move(env).value();
  if (Status auth = moto_->EnableAuth(); !auth.ok()) error_ = auth.error().ToString();
}

E2eMoto::~E2eMoto() = default;

Result<std::string> E2eMoto::CreateRole(const std::string& name, const std::string& external_id,
                                        const std::vector<std::string>& actions) {
  aws::Executor::Options o;
  o.transport = std::shared_ptr<http::HttpTransport>(http::MakeCurlTransport());
  o.credentials = AdminCredentials(*env_);
  o.signing = aws::SigningOptions::Generic(env_->region, "iam");
  o.retry = AdminRetry();
  aws::Executor iam(std::move(o));
  auto call = [&](const std::string& operation, const Params& params) {
    std::string form = FormEncode(params);
    aws::CallOptions co;
    co.operation = operation;
    return iam.Call(
        [&]() -> Result<http::OutboundRequest> {
          return http::OutboundRequest{"POST",
                                       Endpoint() + "/",
                                       {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}},
                                       http::RequestBody::FromString(form)};
        },
        co);
  };
  json::object trust{{"Version", "2012-10-17"},
                     {"Statement",
                      json::array{json::object{{"Effect", "Allow"},
                                               {"Principal", json::object{{"AWS", env_->user_arn}}},
                                               {"Action", "sts:AssumeRole"},
                                               {"Condition", json::object{{"StringEquals",
                                                                           json::object{{"sts:ExternalId",
                                                                                         external_id}}}}}}}}};
  json::array action_list;
  for (const auto& a : actions) action_list.emplace_back(a);
  json::object data{{"Version", "2012-10-17"},
                    {"Statement", json::array{json::object{
                                      {"Effect", "Allow"},
                                      {"Action", action_list},
                                      {"Resource", json::array{"arn:aws:s3:::" + env_->bucket,
                                                               "arn:aws:s3:::" + env_->bucket + "/*"}}}}}};
  SLUICE_ASSIGN_OR_RETURN(http::OutboundResponse created,
                          call("CreateRole", {{"Action", "CreateRole"},
                                              {"Version", "2010-05-08"},
                                              {"RoleName", name},
                                              {"AssumeRolePolicyDocument", json::serialize(trust)}}));
  SLUICE_ASSIGN_OR_RETURN(aws::XmlNode root, aws::ParseXml(created.body));
  std::string arn = root.Text("CreateRoleResult/Role/Arn");
  if (arn.empty()) return Internal("IAM CreateRole answered without a role ARN: " + created.body.substr(0, 300));
  auto put = call("PutRolePolicy", {{"Action", "PutRolePolicy"},
                                    {"Version", "2010-05-08"},
                                    {"RoleName", name},
                                    {"PolicyName", "sluice-data"},
                                    {"PolicyDocument", json::serialize(data)}});
  if (!put.ok()) return put.error();
  return arn;
}

std::shared_ptr<objstore::ObjectStore> E2eMoto::AdminBucket() {
  objstore::s3::S3StoreOptions o;
  o.bucket = env_->bucket;
  o.region = env_->region;
  o.endpoint = Endpoint();
  o.retry = AdminRetry();
  auto s = objstore::s3::S3ObjectStore::Create(o, AdminCredentials(*env_));
  if (!s.ok()) return nullptr;
  return std::shared_ptr<objstore::ObjectStore>(std::move(s).value());
}

// ---- the server ---------------------------------------------------------------------------------------------

SluiceServer::SluiceServer(std::filesystem::path data_dir, const MotoEnvironment* aws,
                           std::vector<std::string> extra_args, std::string operator_endpoint)
    : dir_(std::move(data_dir)) {
  if (aws) {
    // The child inherits the environment: Sluice's own identity is the assume-only user, nothing else.
    for (const char* v : {"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                          "AWS_ENDPOINT_URL_STS", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                          "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"}) {
      unsetenv(v);
    }
    setenv("AWS_ACCESS_KEY_ID", aws->access_key_id.c_str(), 1);
    setenv("AWS_SECRET_ACCESS_KEY", aws->secret_access_key.Reveal().c_str(), 1);
    setenv("AWS_REGION", aws->region.c_str(), 1);
    setenv("AWS_DEFAULT_REGION", aws->region.c_str(), 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    if (!operator_endpoint.empty()) setenv("AWS_ENDPOINT_URL", operator_endpoint.c_str(), 1);
  }
  std::vector<std::string> args = {"--pipeline-delay-minutes", "0"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  process_ = std::make_unique<ServerProcess>(dir_, std::move(args));
}

bool SluiceServer::Start(std::string* error) { return process_->Start(error); }

Result<Project> SluiceServer::CreateProject(const std::string& name) {
  auto r = process_->Send("POST", "/api/app/projects", json::serialize(json::object{{"name", name}}),
                          {{"Authorization", "Bearer " + process_->admin_token()},
                           {"Content-Type", "application/json"}});
  if (r.status != 200) return Internal(fmt::format("project create answered {}: {}", r.status, r.body));
  json::value v = json::parse(r.body);
  Project p;
  p.id = static_cast<uint32_t>(v.at("id").to_number<int64_t>());
  p.token = std::string(v.at("token").as_string());
  p.secret = std::string(v.at("api_secret").as_string());
  return p;
}

ServerProcess::Reply SluiceServer::UpdateProject(uint32_t id, const std::string& body) {
  return process_->Send("POST", fmt::format("/api/app/projects/{}", id), body,
                        {{"Authorization", "Bearer " + process_->admin_token()}, {"Content-Type", "application/json"}});
}

Status SluiceServer::BindGcsBuckets(const Project& p, const std::vector<std::string>& buckets) {
  json::array list;
  for (const auto& b : buckets) list.emplace_back(b);
  auto r = UpdateProject(p.id, json::serialize(json::object{{"gcs_buckets", std::move(list)}}));
  if (r.status != 200) return Internal(fmt::format("binding GCS buckets answered {}: {}", r.status, r.body));
  return OkStatus();
}

Status SluiceServer::Import(const Project& p, const std::vector<std::string>& events) {
  constexpr size_t kBatch = 1000;  // /import takes at most 2000 per request
  for (size_t i = 0; i < events.size(); i += kBatch) {
    std::string body = "[";
    const size_t end = std::min(events.size(), i + kBatch);
    for (size_t j = i; j < end; ++j) {
      if (j > i) body += ',';
      body += events[j];
    }
    body += ']';
    // A 503 says nothing of the batch was kept and asks for a retry, which every Mixpanel client does: a
    // shared store may answer it while a replica catches up under load. Bounded; every other answer is final.
    ServerProcess::Reply r;
    for (int attempt = 1;; ++attempt) {
      r = process_->Send("POST", "/import?strict=1", body,
                         {{"Authorization", p.Authorization()}, {"Content-Type", "application/json"}},
                         std::chrono::seconds(60));
      if (r.status != 503 || attempt == 5) break;
      std::fprintf(stderr, "/import answered 503 (attempt %d of 5), retrying: %s\n", attempt,
                   r.body.substr(0, 500).c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    if (r.status != 200) return Internal(fmt::format("/import answered {}: {}", r.status, r.body.substr(0, 1000)));
    json::value v = json::parse(r.body);
    const auto n = v.at("num_records_imported").to_number<int64_t>();
    if (n != static_cast<int64_t>(end - i)) {
      return Internal(fmt::format("/import stored {} of {} events: {}", n, end - i, r.body.substr(0, 1000)));
    }
  }
  return OkStatus();
}

Status SluiceServer::Engage(const std::vector<std::string>& updates) {
  std::string body = "[";
  for (size_t i = 0; i < updates.size(); ++i) body += (i ? "," : "") + updates[i];
  body += ']';
  auto r = process_->Send("POST", "/engage?verbose=1", std::move(body), {{"Content-Type", "application/json"}});
  if (r.status != 200 || r.body.find("\"status\":1") == std::string::npos) {
    return Internal(fmt::format("/engage answered {}: {}", r.status, r.body.substr(0, 500)));
  }
  return OkStatus();
}

ServerProcess::Reply SluiceServer::PipelinePost(const Project& p, const std::string& action, const Params& params) {
  return process_->Send("POST", "/api/2.0/nessie/pipeline/" + action, FormEncode(params),
                        {{"Authorization", p.Authorization()},
                         {"Content-Type", "application/x-www-form-urlencoded"}},
                        std::chrono::seconds(90));
}

ServerProcess::Reply SluiceServer::PipelineGet(const Project& p, const std::string& action, const Params& params) {
  return process_->Send("GET", "/api/2.0/nessie/pipeline/" + action + "?" + FormEncode(params), {},
                        {{"Authorization", p.Authorization()}});
}

Result<EventsByInsertId> SluiceServer::ReadBack(const Project& p, int64_t day) {
  const std::string date = DateOf(day);
  auto r = process_->Send("GET", fmt::format("/api/2.0/export?from_date={}&to_date={}", date, date), {},
                          {{"Authorization", p.Authorization()}}, std::chrono::seconds(120));
  if (r.status != 200) return Internal(fmt::format("/api/2.0/export answered {}: {}", r.status, r.body));
  return ParseExport(r.body);
}

Result<EventsByInsertId> SluiceServer::ReadBackHour(const Project& p, int64_t day, int hour) {
  SLUICE_ASSIGN_OR_RETURN(EventsByInsertId all, ReadBack(p, day));
  EventsByInsertId out;
  const int64_t from = DayStartSeconds(day) + hour * 3600;
  for (auto& [k, e] : all) {
    if (e.time_s >= from && e.time_s < from + 3600) out.emplace(k, e);
  }
  return out;
}

Result<std::map<std::string, std::string>> SluiceServer::ReadProfiles(const Project& p) {
  std::map<std::string, std::string> out;
  for (int page = 0; page < 1000; ++page) {
    auto r = process_->Send("GET", fmt::format("/api/2.0/engage?page={}&page_size=1000", page), {},
                            {{"Authorization", p.Authorization()}});
    if (r.status != 200) return Internal(fmt::format("/api/2.0/engage answered {}: {}", r.status, r.body));
    json::value v = json::parse(r.body);
    const json::array& results = v.at("results").as_array();
    for (const json::value& row : results) {
      out[std::string(row.at("$distinct_id").as_string())] = json::serialize(row.at("$properties"));
    }
    if (results.size() < 1000) return out;
  }
  return Internal("/api/2.0/engage: more than 1000 pages");
}

// ---- the bucket ---------------------------------------------------------------------------------------------

Result<PartitionContent> ReadPartition(objstore::ObjectStore& bucket, const std::string& dir) {
  PartitionContent out;
  auto text = bucket.Get(dir + "/manifest.json");
  if (!text.ok()) return text.error().WithContext(dir + "/manifest.json");
  SLUICE_ASSIGN_OR_RETURN(out.manifest, pipeline::ParseManifest(*text));
  auto complete = bucket.Head(dir + "/complete");
  if (complete.ok()) {
    out.complete = true;
    if (complete->size != 0) return Internal(fmt::format("{}/complete is not empty ({} bytes)", dir, complete->size));
  } else if (complete.error().code != ErrorCode::kNotFound) {
    return complete.error();
  }
  auto compression = pipeline::ParseCompression(out.manifest.compression);
  if (!compression) return Internal("manifest compression unknown: " + out.manifest.compression);
  for (const pipeline::ManifestFile& f : out.manifest.files) {
    if (f.key != dir + "/" + f.name) return Internal(fmt::format("manifest file key {} is not {}/{}", f.key, dir, f.name));
    if (!pipeline::IsDataFileName(f.name)) return Internal("manifest lists a non-data file name " + f.name);
    auto data = bucket.Get(f.key);
    if (!data.ok()) return data.error().WithContext("manifest-listed file " + f.key);
    if (data->size() != f.bytes) {
      return Internal(fmt::format("{}: {} bytes stored, manifest says {}", f.key, data->size(), f.bytes));
    }
    if (HexEncode(Sha256(*data)) != f.sha256) return Internal(fmt::format("{}: SHA-256 differs from the manifest", f.key));
    SLUICE_ASSIGN_OR_RETURN(std::string plain, pipeline::testutil::Decompress(*compression, *data));
    if (plain.size() != f.uncompressed_bytes) {
      return Internal(fmt::format("{}: {} bytes uncompressed, manifest says {}", f.key, plain.size(),
                                  f.uncompressed_bytes));
    }
    if (!plain.empty() && plain.back() != '\n') return Internal(f.key + ": last line has no newline");
    uint64_t records = 0;
    size_t pos = 0;
    while (pos < plain.size()) {
      size_t nl = plain.find('\n', pos);
      out.lines.emplace_back(plain.substr(pos, nl - pos));
      pos = nl + 1;
      ++records;
    }
    if (records != f.records) {
      return Internal(fmt::format("{}: {} lines, manifest says {} records", f.key, records, f.records));
    }
  }
  return out;
}

std::string CompareEvents(const std::vector<std::string>& lines, const EventsByInsertId& expected) {
  std::vector<std::string> problems;
  auto note = [&](std::string s) {
    if (problems.size() < 12) problems.push_back(std::move(s));
  };
  std::set<std::string> seen;
  size_t extra = 0, duplicates = 0, mismatched = 0;
  for (const std::string& line : lines) {
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_object()) {
      note("not a JSON object: " + line.substr(0, 200));
      ++mismatched;
      continue;
    }
    const json::object& o = v.as_object();
    static const std::vector<std::string> kFields = {"event_name", "time",      "distinct_id", "device_id",
                                                     "user_id",    "insert_id", "properties"};
    std::vector<std::string> keys;
    for (const auto& kv : o) keys.emplace_back(kv.key());
    if (keys != kFields) {
      note("record fields are not exactly event_name,time,distinct_id,device_id,user_id,insert_id,properties: " +
           line.substr(0, 200));
      ++mismatched;
      continue;
    }
    const std::string insert_id = StringOrEmpty(o, "insert_id");
    if (!seen.insert(insert_id).second) {
      ++duplicates;
      note("insert_id " + insert_id + " exported more than once");
      continue;
    }
    auto it = expected.find(insert_id);
    if (it == expected.end()) {
      ++extra;
      note("exported but not in the store: " + line.substr(0, 200));
      continue;
    }
    const StoredEvent& e = it->second;
    auto props = RawField(line, "properties", "");
    auto time = RawField(line, "time", "distinct_id");
    std::string diff;
    if (StringOrEmpty(o, "event_name") != e.event) diff += " event_name";
    if (StringOrEmpty(o, "distinct_id") != e.distinct_id) diff += " distinct_id";
    if (StringOrEmpty(o, "device_id") != e.device_id) diff += " device_id";
    if (StringOrEmpty(o, "user_id") != e.user_id) diff += " user_id";
    if (!time || WholeSeconds(*time) != e.time_s) diff += " time";
    if (!props || props->size() < 1 || props->substr(0, props->size() - 1) != e.properties) {
      diff += fmt::format(" properties(exported {} vs stored {})",
                          props ? std::string(props->substr(0, std::min<size_t>(props->size(), 160))) : "?",
                          e.properties.substr(0, 160));
    }
    if (!diff.empty()) {
      ++mismatched;
      note(fmt::format("insert_id {} differs in:{}", insert_id, diff));
    }
  }
  size_t missing = 0;
  for (const auto& [id, e] : expected) {
    if (!seen.contains(id)) {
      ++missing;
      note("in the store but not exported: insert_id " + id);
    }
  }
  if (extra + duplicates + mismatched + missing == 0) return "";
  std::string out = fmt::format("{} records exported, {} in the store: {} missing, {} extra, {} duplicated, {} "
                                "differing. First problems:",
                                lines.size(), expected.size(), missing, extra, duplicates, mismatched);
  for (const auto& p : problems) out += "\n  " + p;
  return out;
}

Result<std::vector<std::string>> AllKeys(objstore::ObjectStore& bucket) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<objstore::ObjectInfo> objects, bucket.List(""));
  std::vector<std::string> keys;
  for (auto& o : objects) keys.push_back(std::move(o.key));
  return keys;
}

std::vector<std::string> StrayDataFiles(const std::vector<std::string>& keys, uint32_t project,
                                        objstore::ObjectStore& bucket) {
  const std::string root = std::to_string(project) + "/";
  std::map<std::string, std::vector<std::string>> data_by_dir;
  for (const std::string& key : keys) {
    if (!key.starts_with(root)) continue;
    const size_t slash = key.rfind('/');
    const std::string name = key.substr(slash + 1);
    if (pipeline::IsDataFileName(name)) data_by_dir[key.substr(0, slash)].push_back(name);
  }
  std::vector<std::string> stray;
  for (const auto& [dir, names] : data_by_dir) {
    std::set<std::string> listed;
    auto text = bucket.Get(dir + "/manifest.json");
    if (text.ok()) {
      if (auto m = pipeline::ParseManifest(*text); m.ok()) {
        for (const auto& f : m->files) listed.insert(f.name);
      }
    }
    for (const auto& n : names) {
      if (!listed.contains(n)) stray.push_back(dir + "/" + n + (text.ok() ? "" : " (directory has no manifest)"));
    }
  }
  return stray;
}

std::string WaitForSucceededPartitions(SluiceServer& server, const Project& p, const std::string& name,
                                       const std::vector<std::string>& labels,
                                       std::map<std::string, uint64_t> min_generation,
                                       std::chrono::milliseconds timeout) {
  std::string last;
  return WaitUntil(
      [&] {
        auto tasks = Timeline(server, p, name);
        if (!tasks.ok()) {
          last = tasks.error().ToString();
          return false;
        }
        std::set<std::string> done;
        for (const auto& t : *tasks) {
          if (t.state == "succeeded" && t.generation > min_generation[t.partition]) done.insert(t.partition);
        }
        size_t missing = 0;
        for (const auto& l : labels) missing += !done.contains(l);
        last = fmt::format("{} of {} partitions missing; latest task: {}", missing, labels.size(),
                           tasks->empty() ? "none"
                                          : fmt::format("{} {} {} {}", tasks->front().partition,
                                                        tasks->front().kind, tasks->front().state,
                                                        tasks->front().message));
        return missing == 0;
      },
      timeout, [&] { return last; });
}

std::string WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                      const std::function<std::string()>& describe, std::chrono::milliseconds interval) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (done()) return "";
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(interval);
  }
  return fmt::format("not reached within {} ms: {}", timeout.count(), describe ? describe() : std::string());
}

Result<std::vector<TimelineTask>> Timeline(SluiceServer& server, const Project& p, const std::string& name) {
  auto r = server.PipelineGet(p, "timeline", {{"name", name}, {"limit", "10000"}});
  if (r.status != 200) return Internal(fmt::format("timeline answered {}: {}", r.status, r.body));
  json::value v = json::parse(r.body);
  std::vector<TimelineTask> out;
  for (const json::value& t : v.at("tasks").as_array()) {
    TimelineTask task;
    task.partition = std::string(t.at("partition").as_string());
    task.kind = std::string(t.at("kind").as_string());
    task.state = std::string(t.at("state").as_string());
    task.generation = t.at("generation").to_number<uint64_t>();
    task.attempts = t.at("attempts").to_number<int>();
    task.started_ms = t.at("started_ms").to_number<int64_t>();
    task.finished_ms = t.at("finished_ms").to_number<int64_t>();
    task.message = std::string(t.at("message").as_string());
    out.push_back(std::move(task));
  }
  return out;
}

Result<std::pair<std::string, std::string>> PipelineState(SluiceServer& server, const Project& p,
                                                          const std::string& name) {
  auto r = server.PipelineGet(p, "status", {{"name", name}, {"summary", "true"}});
  if (r.status != 200) return Internal(fmt::format("status answered {}: {}", r.status, r.body));
  json::value v = json::parse(r.body);
  return std::pair<std::string, std::string>(std::string(v.at("status").as_string()),
                                             std::string(v.at("failure_message").as_string()));
}

// ---- test data ----------------------------------------------------------------------------------------------

std::vector<std::string> MakeDayEvents(int64_t day, int count, const std::string& tag, uint64_t seed, int hour_from,
                                       int hour_to) {
  std::mt19937_64 rng(seed ^ static_cast<uint64_t>(day) * 0x9E3779B97F4A7C15ull);
  static const char* kNames[] = {"Signed up", "K\u00e4ufe \U0001F6D2", "\u6CE8\u6587", "page_view",
                                 "Tab\\tbed \\\"quoted\\\""};
  static const char* kTexts[] = {
      R"("pr\u00f6 \u2713 \u65e5\u672c")",          // escapes kept as they arrived
      "\"pr\u00f6 \u2713 \u65e5\u672c \U0001F600\"",  // raw UTF-8
      R"("quote \" backslash \\ newline \n tab \t")",
      R"("")",
  };
  static const char* kNumbers[] = {"1.10", "-0.0", "123456789012345678901234567890", "1e300",
                                   "0.1000000000000000055511151231257827", "-42", "18446744073709551617"};
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(count));
  const int64_t span = static_cast<int64_t>(hour_to - hour_from) * 3600;
  for (int i = 0; i < count; ++i) {
    const int64_t t = DayStartSeconds(day) + hour_from * 3600 + static_cast<int64_t>(rng() % span);
    std::string time;
    switch (i % 3) {
      case 0: time = std::to_string(t); break;                                        // seconds
      case 1: time = std::to_string(t * 1000 + static_cast<int64_t>(rng() % 1000)); break;  // milliseconds
      default: time = fmt::format("{}.{:06}", t, rng() % 1000000); break;           // fractional seconds
    }
    std::string ids;
    const int who = static_cast<int>(rng() % 100);
    switch (i % 5) {
      case 0: ids = fmt::format(R"("$device_id":"dev-{}-{}")", tag, who); break;
      case 1: ids = fmt::format(R"("$device_id":"dev-{}-{}","$user_id":"user-{}-{}")", tag, who, tag, who); break;
      case 2: ids = fmt::format(R"("$user_id":"user-{}-{}")", tag, who); break;
      case 3: ids = fmt::format(R"("distinct_id":{})", 100000 + who); break;  // a number
      default: ids = fmt::format(R"("distinct_id":"cust-\u00e9-{}")", who); break;
    }
    out.push_back(fmt::format(
        R"({{"event":"{}","properties":{{"time":{},{},"$insert_id":"{}-{}-{}","text":{},"amount":{},)"
        R"("nested":{{"a":[1,"x",null],"b":{{"c":1.5}}}},"flag":{},"nothing":null,"$os":"Linux","seq":{}}}}})",
        kNames[i % 5], time, ids, tag, day, i, kTexts[rng() % 4], kNumbers[rng() % 7], (i % 2) ? "true" : "false",
        i));
  }
  return out;
}

std::pair<std::string, int> RunShell(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {"", -1};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

std::string WaitForConnectorRun(SluiceServer& server, uint32_t project_id, const std::string& connector_id,
                                std::string* run, std::chrono::milliseconds timeout) {
  const std::string path = fmt::format("/api/app/projects/{}/connectors/{}/history", project_id, connector_id);
  const std::vector<std::pair<std::string, std::string>> admin = {
      {"Authorization", "Bearer " + server.process().admin_token()}};
  std::string last;
  return WaitUntil(
      [&] {
        auto h = server.process().Send("GET", path, {}, admin);
        last = h.body;
        if (h.status != 200) return false;
        boost::system::error_code ec;
        boost::json::value v = boost::json::parse(h.body, ec);
        const boost::json::value* data = ec ? nullptr : v.find_pointer("/results/data", ec);
        if (data == nullptr || !data->is_array() || data->as_array().empty()) return false;
        const boost::json::value& newest = data->as_array().front();
        const boost::json::value* status = newest.is_object() ? newest.as_object().if_contains("status") : nullptr;
        if (status == nullptr || !status->is_string() || status->as_string() == "queued" ||
            status->as_string() == "running") {
          return false;
        }
        *run = boost::json::serialize(newest);
        return true;
      },
      timeout, [&] { return last; });
}

}  // namespace sluice::testing::e2e
