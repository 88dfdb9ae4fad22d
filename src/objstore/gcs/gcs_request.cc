#include "objstore/gcs/gcs_request.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cctype>
#include <ctime>
#include <regex>

#include "common/crypto.h"

namespace sluice::objstore::gcs {
namespace {

std::string ObjectUrl(const GcsRequestContext& ctx, std::string_view name) {
  return fmt::format("{}/storage/v1/b/{}/o/{}", ctx.endpoint, EncodeComponent(ctx.bucket),
                     EncodeComponent(name));
}

std::string UploadUrl(const GcsRequestContext& ctx, std::string_view upload_type) {
  std::string url = fmt::format("{}/upload/storage/v1/b/{}/o?uploadType={}", ctx.endpoint,
                                EncodeComponent(ctx.bucket), upload_type);
  if (!ctx.kms_key_name.empty()) url += "&kmsKeyName=" + EncodeComponent(ctx.kms_key_name);
  return url;
}

std::string MetadataJson(std::string_view name, const PutOptions& options, std::string_view crc32c_base64) {
  boost::json::object meta{{"name", name}, {"contentType", options.content_type}};
  if (!options.content_encoding.empty()) meta["contentEncoding"] = options.content_encoding;
  if (!crc32c_base64.empty()) meta["crc32c"] = crc32c_base64;
  return boost::json::serialize(meta);
}

std::string StringOr(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

// RFC 3339 ("2026-12-06T01:55:00.123Z") to epoch milliseconds; 0 when malformed.
int64_t ParseRfc3339Millis(std::string_view text) {
  std::tm tm{};
  std::string s(text);
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return 0;
  int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  if (*end == '.') {
    int64_t frac = 0;
    int digits = 0;
    for (++end; std::isdigit(static_cast<unsigned char>(*end)); ++end) {
      if (digits < 3) {
        frac = frac * 10 + (*end - '0');
        ++digits;
      }
    }
    while (digits++ < 3) frac *= 10;
    ms += frac;
  }
  return ms;
}

Result<GcsObject> FromJson(const boost::json::value& v) {
  if (!v.is_object()) return Error(ErrorCode::kPermanent, "GCS object resource is not a JSON object");
  const auto& o = v.as_object();
  GcsObject out;
  out.info.key = StringOr(o, "name");
  if (out.info.key.empty()) return Error(ErrorCode::kPermanent, "GCS object resource has no name");
  std::string size = StringOr(o, "size");
  out.info.size = size.empty() ? 0 : std::strtoull(size.c_str(), nullptr, 10);
  out.info.etag = StringOr(o, "etag");
  out.info.last_modified_ms = ParseRfc3339Millis(StringOr(o, "updated"));
  out.info.kms_key_id = StringOr(o, "kmsKeyName");
  if (!out.info.kms_key_id.empty()) out.info.server_side_encryption = "cmek";
  out.crc32c = StringOr(o, "crc32c");
  out.md5 = StringOr(o, "md5Hash");
  std::string gen = StringOr(o, "generation");
  out.generation = gen.empty() ? 0 : std::strtoll(gen.c_str(), nullptr, 10);
  return out;
}

Result<boost::json::value> ParseJson(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec)
    return Error(ErrorCode::kPermanent, fmt::format("GCS {} answer is not JSON: {}", what, ec.message()));
  return v;
}

}  // namespace

Status ValidateBucketName(std::string_view bucket) {
  static const std::regex kBucket(R"(^[a-z0-9][a-z0-9._-]*[a-z0-9]$)");
  const bool dotted = bucket.find('.') != std::string_view::npos;
  if (bucket.size() < 3 || bucket.size() > (dotted ? 222u : 63u) ||
      !std::regex_match(bucket.begin(), bucket.end(), kBucket)) {
    return InvalidArgument(
        fmt::format("\"{}\" is not a valid GCS bucket name: use 3-63 lowercase letters, digits, "
                    "'-', '_' or '.', starting and ending with a letter or digit (no gs:// prefix)",
                    bucket));
  }
  return OkStatus();
}

std::string EncodeComponent(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string Crc32cBase64(uint32_t crc) {
  const char be[4] = {static_cast<char>(crc >> 24), static_cast<char>(crc >> 16), static_cast<char>(crc >> 8),
                      static_cast<char>(crc)};
  return Base64Encode(std::string_view(be, 4));
}

std::string GoogHashValue(std::string_view header, std::string_view kind) {
  // Several x-goog-hash headers may be folded into one comma-separated value.
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    if (item.starts_with(kind) && item.size() > kind.size() && item[kind.size()] == '=') {
      return std::string(item.substr(kind.size() + 1));
    }
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return "";
}

Result<std::string> ResolveEndpoint(std::string_view explicit_endpoint, std::string_view emulator_host) {
  std::string e(explicit_endpoint.empty() ? emulator_host : explicit_endpoint);
  if (e.empty()) return std::string(kDefaultEndpoint);
  if (!e.starts_with("http://") && !e.starts_with("https://"))
    e = "http://" + e;  // STORAGE_EMULATOR_HOST style
  while (e.ends_with('/')) e.pop_back();
  std::string_view rest = std::string_view(e).substr(e.find("://") + 3);
  if (rest.empty() || rest.find_first_of("/?# ") != std::string_view::npos) {
    return InvalidArgument(
        fmt::format("GCS endpoint \"{}\" must be scheme://host[:port] without a path "
                    "(check gcs_endpoint / STORAGE_EMULATOR_HOST)",
                    e));
  }
  return e;
}

http::OutboundRequest BuildGetMetadata(const GcsRequestContext& ctx, std::string_view name) {
  return {"GET", ObjectUrl(ctx, name), {}, {}};
}

http::OutboundRequest BuildDownload(const GcsRequestContext& ctx, std::string_view name, uint64_t offset,
                                    std::optional<uint64_t> length, int64_t generation) {
  std::string url = ObjectUrl(ctx, name) + "?alt=media";
  if (generation > 0) url += fmt::format("&generation={}", generation);
  // Stored bytes, never decompressive transcoding: the hash GCS reports is of the stored bytes.
  http::OutboundRequest r{"GET", url, {{"Accept-Encoding", "gzip"}}, {}};
  if (length) {
    r.headers.emplace_back("Range", fmt::format("bytes={}-{}", offset, offset + *length - 1));
  } else if (offset > 0) {
    r.headers.emplace_back("Range", fmt::format("bytes={}-", offset));
  }
  return r;
}

http::OutboundRequest BuildMultipartUpload(const GcsRequestContext& ctx, std::string_view name,
                                           std::string_view data, const PutOptions& options,
                                           std::string_view crc32c_base64, std::string_view boundary) {
  std::string body;
  body.reserve(data.size() + 512);
  body += fmt::format(
      "--{}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{}\r\n--{}\r\nContent-Type: {}\r\n\r\n",
      boundary, MetadataJson(name, options, crc32c_base64), boundary, options.content_type);
  body += data;
  body += fmt::format("\r\n--{}--\r\n", boundary);
  return {"POST",
          UploadUrl(ctx, "multipart"),
          {{"Content-Type", fmt::format("multipart/related; boundary={}", boundary)}},
          http::RequestBody::FromString(std::move(body))};
}

http::OutboundRequest BuildStartResumable(const GcsRequestContext& ctx, std::string_view name,
                                          const PutOptions& options) {
  http::OutboundRequest r{
      "POST",
      UploadUrl(ctx, "resumable"),
      {{"Content-Type", "application/json; charset=UTF-8"}, {"X-Upload-Content-Type", options.content_type}},
      http::RequestBody::FromString(MetadataJson(name, options, {}))};
  if (options.size_hint > 0)
    r.headers.emplace_back("X-Upload-Content-Length", std::to_string(options.size_hint));
  return r;
}

http::OutboundRequest BuildUploadChunk(std::string_view session_uri, http::RequestBody body, uint64_t offset,
                                       std::optional<uint64_t> total, std::string_view crc32c_base64) {
  std::string range;
  const uint64_t length = body.length;
  if (length == 0) {
    range = fmt::format("bytes */{}", total ? std::to_string(*total) : "*");
  } else {
    range = fmt::format("bytes {}-{}/{}", offset, offset + length - 1, total ? std::to_string(*total) : "*");
  }
  http::OutboundRequest r{"PUT", std::string(session_uri), {{"Content-Range", range}}, std::move(body)};
  if (total && !crc32c_base64.empty())
    r.headers.emplace_back("X-Goog-Hash", fmt::format("crc32c={}", crc32c_base64));
  return r;
}

http::OutboundRequest BuildQueryResumable(std::string_view session_uri, std::optional<uint64_t> total) {
  return {"PUT",
          std::string(session_uri),
          {{"Content-Range", fmt::format("bytes */{}", total ? std::to_string(*total) : "*")}},
          http::RequestBody::FromString("")};
}

http::OutboundRequest BuildCancelResumable(std::string_view session_uri) {
  return {"DELETE", std::string(session_uri), {}, {}};
}

http::OutboundRequest BuildList(const GcsRequestContext& ctx, std::string_view prefix,
                                std::string_view page_token, std::string_view start_offset, int max_results) {
  std::string url = fmt::format("{}/storage/v1/b/{}/o?maxResults={}", ctx.endpoint,
                                EncodeComponent(ctx.bucket), max_results);
  if (!prefix.empty()) url += "&prefix=" + EncodeComponent(prefix);
  if (!start_offset.empty()) url += "&startOffset=" + EncodeComponent(start_offset);
  if (!page_token.empty()) url += "&pageToken=" + EncodeComponent(page_token);
  return {"GET", url, {}, {}};
}

http::OutboundRequest BuildDelete(const GcsRequestContext& ctx, std::string_view name) {
  return {"DELETE", ObjectUrl(ctx, name), {}, {}};
}

http::OutboundRequest BuildTestIamPermissions(const GcsRequestContext& ctx,
                                              const std::vector<std::string>& permissions) {
  std::string url =
      fmt::format("{}/storage/v1/b/{}/iam/testPermissions", ctx.endpoint, EncodeComponent(ctx.bucket));
  char sep = '?';
  for (const auto& p : permissions) {
    url += sep + std::string("permissions=") + EncodeComponent(p);
    sep = '&';
  }
  return {"GET", url, {}, {}};
}

Result<GcsObject> ParseObjectResource(std::string_view json) {
  SLUICE_ASSIGN_OR_RETURN(auto v, ParseJson(json, "object"));
  return FromJson(v);
}

Result<ListPage> ParseListPage(std::string_view json) {
  SLUICE_ASSIGN_OR_RETURN(auto v, ParseJson(json, "list"));
  if (!v.is_object()) return Error(ErrorCode::kPermanent, "GCS list answer is not a JSON object");
  ListPage page;
  const auto& o = v.as_object();
  if (const auto* items = o.if_contains("items"); items && items->is_array()) {
    for (const auto& item : items->as_array()) {
      SLUICE_ASSIGN_OR_RETURN(GcsObject obj, FromJson(item));
      page.items.push_back(std::move(obj));
    }
  }
  page.next_page_token = StringOr(o, "nextPageToken");
  return page;
}

Result<std::vector<std::string>> ParseTestIamPermissions(std::string_view json) {
  SLUICE_ASSIGN_OR_RETURN(auto v, ParseJson(json, "testIamPermissions"));
  std::vector<std::string> out;
  if (!v.is_object()) return out;
  if (const auto* p = v.as_object().if_contains("permissions"); p && p->is_array()) {
    for (const auto& s : p->as_array()) {
      if (s.is_string()) out.emplace_back(s.as_string());
    }
  }
  return out;
}

Result<uint64_t> PersistedBytes(const http::OutboundResponse& response) {
  std::string_view range = response.Header("range");
  if (range.empty()) return uint64_t{0};
  size_t dash = range.find('-');
  if (!range.starts_with("bytes=0-") || dash == std::string_view::npos) {
    return Error(ErrorCode::kPermanent,
                 fmt::format("resumable upload answered with an unexpected Range \"{}\"", range));
  }
  std::string end(range.substr(dash + 1));
  char* stop = nullptr;
  uint64_t last = std::strtoull(end.c_str(), &stop, 10);
  if (end.empty() || *stop != '\0') {
    return Error(ErrorCode::kPermanent,
                 fmt::format("resumable upload answered with an unexpected Range \"{}\"", range));
  }
  return last + 1;
}

}  // namespace sluice::objstore::gcs
