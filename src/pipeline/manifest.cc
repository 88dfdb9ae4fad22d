#include "pipeline/manifest.h"

#include <chrono>

#include <boost/json.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>

namespace sluice::pipeline {
namespace json = boost::json;

uint64_t Manifest::record_count() const {
  uint64_t n = 0;
  for (const auto& f : files) n += f.records;
  return n;
}
uint64_t Manifest::bytes() const {
  uint64_t n = 0;
  for (const auto& f : files) n += f.bytes;
  return n;
}
uint64_t Manifest::uncompressed_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files) n += f.uncompressed_bytes;
  return n;
}

std::string FormatTimestamp(int64_t epoch_ms) {
  std::chrono::sys_seconds t{std::chrono::seconds(epoch_ms >= 0 ? epoch_ms / 1000 : -((-epoch_ms + 999) / 1000))};
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", t);
}

std::string ManifestToJson(const Manifest& m) {
  json::object head;
  head["version"] = m.version;
  head["pipeline"] = m.pipeline;
  head["project_id"] = m.project_id;
  head["data_source"] = m.data_source;
  head["partition"] = m.partition;
  head["generation"] = m.generation;
  head["change_seq"] = m.change_seq;
  head["created_at"] = m.created_at;
  head["compression"] = m.compression;
  head["record_count"] = m.record_count();
  head["uncompressed_bytes"] = m.uncompressed_bytes();
  head["bytes"] = m.bytes();
  std::string out = json::serialize(head);
  out.pop_back();  // reopen the object to append "files" one per line
  out += ",\"files\":[";
  for (size_t i = 0; i < m.files.size(); ++i) {
    const ManifestFile& f = m.files[i];
    json::object o;
    o["name"] = f.name;
    o["key"] = f.key;
    o["records"] = f.records;
    o["bytes"] = f.bytes;
    o["uncompressed_bytes"] = f.uncompressed_bytes;
    o["sha256"] = f.sha256;
    out += i ? ",\n  " : "\n  ";
    out += json::serialize(o);
  }
  out += m.files.empty() ? "]}\n" : "\n]}\n";
  return out;
}

namespace {

Result<uint64_t> GetU64(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) return InvalidArgument(fmt::format("manifest: missing \"{}\"", key));
  if (v->is_uint64()) return v->as_uint64();
  if (v->is_int64() && v->as_int64() >= 0) return static_cast<uint64_t>(v->as_int64());
  return InvalidArgument(fmt::format("manifest: \"{}\" must be a non-negative integer", key));
}

Result<std::string> GetString(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return InvalidArgument(fmt::format("manifest: \"{}\" must be a string", key));
  return std::string(v->as_string());
}

}  // namespace

Result<Manifest> ParseManifest(std::string_view text) {
  boost::system::error_code ec;
  json::value root = json::parse(text, ec);
  if (ec || !root.is_object()) return InvalidArgument("manifest: not a JSON object");
  const json::object& o = root.as_object();
  Manifest m;
  SLUICE_ASSIGN_OR_RETURN(uint64_t version, GetU64(o, "version"));
  if (version != 1) return InvalidArgument(fmt::format("manifest: unknown version {}", version));
  SLUICE_ASSIGN_OR_RETURN(m.pipeline, GetString(o, "pipeline"));
  SLUICE_ASSIGN_OR_RETURN(uint64_t project, GetU64(o, "project_id"));
  m.project_id = static_cast<uint32_t>(project);
  SLUICE_ASSIGN_OR_RETURN(m.data_source, GetString(o, "data_source"));
  SLUICE_ASSIGN_OR_RETURN(m.partition, GetString(o, "partition"));
  SLUICE_ASSIGN_OR_RETURN(m.generation, GetU64(o, "generation"));
  SLUICE_ASSIGN_OR_RETURN(m.change_seq, GetU64(o, "change_seq"));
  SLUICE_ASSIGN_OR_RETURN(m.created_at, GetString(o, "created_at"));
  SLUICE_ASSIGN_OR_RETURN(m.compression, GetString(o, "compression"));
  const json::value* files = o.if_contains("files");
  if (!files || !files->is_array()) return InvalidArgument("manifest: \"files\" must be an array");
  for (const json::value& fv : files->as_array()) {
    if (!fv.is_object()) return InvalidArgument("manifest: each file must be an object");
    const json::object& fo = fv.as_object();
    ManifestFile f;
    SLUICE_ASSIGN_OR_RETURN(f.name, GetString(fo, "name"));
    SLUICE_ASSIGN_OR_RETURN(f.key, GetString(fo, "key"));
    SLUICE_ASSIGN_OR_RETURN(f.records, GetU64(fo, "records"));
    SLUICE_ASSIGN_OR_RETURN(f.bytes, GetU64(fo, "bytes"));
    SLUICE_ASSIGN_OR_RETURN(f.uncompressed_bytes, GetU64(fo, "uncompressed_bytes"));
    SLUICE_ASSIGN_OR_RETURN(f.sha256, GetString(fo, "sha256"));
    m.files.push_back(std::move(f));
  }
  return m;
}

}  // namespace sluice::pipeline
