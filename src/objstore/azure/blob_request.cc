#include "objstore/azure/blob_request.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <ctime>

#include "cloud/url.h"
#include "cloud/xml.h"
#include "common/crypto.h"

namespace sluice::objstore::azure {
namespace {

std::string BlobUrl(const BlobRequestContext& ctx, std::string_view name) {
  return fmt::format("{}/{}/{}", ctx.endpoint, ctx.container, cloud::UriEncode(name, /*encode_slash=*/false));
}

void AddEncryption(http::OutboundRequest& r, const BlobEncryption& e, BlobOp op) {
  for (auto& h : EncryptionHeaders(e, op)) r.headers.push_back(std::move(h));
}

void AddContentHeaders(http::OutboundRequest& r, const PutOptions& options) {
  r.headers.emplace_back("x-ms-blob-content-type", options.content_type);
  if (!options.content_encoding.empty()) r.headers.emplace_back("x-ms-blob-content-encoding", options.content_encoding);
}

bool IsLoopback(std::string_view authority) {
  std::string_view host = authority.substr(0, authority.rfind(':') == std::string_view::npos || authority.starts_with("[")
                                                  ? authority.size()
                                                  : authority.rfind(':'));
  return host == "127.0.0.1" || host == "localhost" || host == "[::1]";
}

int64_t ParseRfc1123Ms(std::string_view text) {
  std::tm tm{};
  std::string s(text);
  if (strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return 0;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

std::string Unquote(std::string_view etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return std::string(etag);
}

}  // namespace

std::vector<std::pair<std::string, std::string>> EncryptionHeaders(const BlobEncryption& e, BlobOp op) {
  std::vector<std::pair<std::string, std::string>> out;
  const bool writes = op == BlobOp::kPutBlob || op == BlobOp::kPutBlock || op == BlobOp::kPutBlockList;
  const bool reads_content = op == BlobOp::kGetBlob || op == BlobOp::kGetProperties;
  if (!e.customer_key.empty() && (writes || reads_content)) {
    std::string key = Base64Decode(e.customer_key.Reveal()).value_or("");
    out.emplace_back("x-ms-encryption-key", e.customer_key.Reveal());
    out.emplace_back("x-ms-encryption-key-sha256", Base64Encode(AsStringView(Sha256(key))));
    out.emplace_back("x-ms-encryption-algorithm", "AES256");
  } else if (!e.scope.empty() && writes) {
    out.emplace_back("x-ms-encryption-scope", e.scope);
  }
  return out;
}

Status ValidateContainerName(std::string_view c) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument(fmt::format("container name \"{}\" {} (Azure: 3-63 characters, lowercase letters, digits "
                                       "and single hyphens, starting and ending with a letter or digit)",
                                       c.substr(0, 80), why));
  };
  if (c.size() < 3 || c.size() > 63) return bad("has the wrong length");
  for (size_t i = 0; i < c.size(); ++i) {
    char ch = c[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
    if (!ok) return bad("has a character other than a-z, 0-9 and '-'");
    if (ch == '-' && (i == 0 || i + 1 == c.size() || c[i - 1] == '-')) return bad("misplaces a hyphen");
  }
  return Status();
}

Status ValidateAccountName(std::string_view a) {
  bool ok = a.size() >= 3 && a.size() <= 24;
  for (char ch : a) ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'));
  if (!ok) {
    return InvalidArgument(fmt::format(
        "storage account name \"{}\" must be 3-24 lowercase letters and digits", a.substr(0, 80)));
  }
  return Status();
}

Result<std::string> ResolveEndpoint(std::string_view explicit_endpoint, std::string_view account) {
  if (explicit_endpoint.empty()) return fmt::format("https://{}.blob.core.windows.net", account);
  std::string e(explicit_endpoint);
  while (e.ends_with('/')) e.pop_back();
  cloud::UrlParts p = cloud::SplitUrl(e);
  bool ok = !p.authority.empty() && p.query.empty() && e.find('#') == std::string::npos &&
            (p.scheme == "https" || (p.scheme == "http" && IsLoopback(p.authority)));
  if (!ok) {
    return InvalidArgument(fmt::format(
        "Azure blob endpoint \"{}\" must be an https URL without a query (http only on loopback, e.g. Azurite's "
        "http://127.0.0.1:10000/devstoreaccount1)",
        e.substr(0, 200)));
  }
  return e;
}

std::string BlockId(uint32_t index) { return Base64Encode(fmt::format("sluice-block-{:08}", index)); }

std::string ContentMd5(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr);
  return Base64Encode(std::string_view(reinterpret_cast<const char*>(md), len));
}

http::OutboundRequest BuildPutBlob(const BlobRequestContext& ctx, std::string_view name, http::RequestBody body,
                                   const PutOptions& options, std::string_view content_md5) {
  http::OutboundRequest r{"PUT", BlobUrl(ctx, name), {{"x-ms-blob-type", "BlockBlob"}}, std::move(body)};
  if (!content_md5.empty()) r.headers.emplace_back("Content-MD5", std::string(content_md5));
  AddContentHeaders(r, options);
  AddEncryption(r, ctx.encryption, BlobOp::kPutBlob);
  return r;
}

http::OutboundRequest BuildPutBlock(const BlobRequestContext& ctx, std::string_view name, std::string_view block_id,
                                    http::RequestBody body, std::string_view content_md5) {
  http::OutboundRequest r{
      "PUT", BlobUrl(ctx, name) + "?comp=block&blockid=" + cloud::UriEncode(block_id, true), {}, std::move(body)};
  if (!content_md5.empty()) r.headers.emplace_back("Content-MD5", std::string(content_md5));
  AddEncryption(r, ctx.encryption, BlobOp::kPutBlock);
  return r;
}

http::OutboundRequest BuildPutBlockList(const BlobRequestContext& ctx, std::string_view name,
                                        const std::vector<std::string>& block_ids, const PutOptions& options) {
  std::string xml = R"(<?xml version="1.0" encoding="utf-8"?><BlockList>)";
  for (const auto& id : block_ids) xml += "<Latest>" + cloud::XmlEscape(id) + "</Latest>";
  xml += "</BlockList>";
  http::OutboundRequest r{"PUT", BlobUrl(ctx, name) + "?comp=blocklist", {{"Content-Type", "application/xml"}},
                          http::RequestBody::FromString(std::move(xml))};
  AddContentHeaders(r, options);
  AddEncryption(r, ctx.encryption, BlobOp::kPutBlockList);
  return r;
}

http::OutboundRequest BuildGetBlob(const BlobRequestContext& ctx, std::string_view name, uint64_t offset,
                                   std::optional<uint64_t> length) {
  http::OutboundRequest r{"GET", BlobUrl(ctx, name), {}, {}};
  if (length) {
    r.headers.emplace_back("x-ms-range", fmt::format("bytes={}-{}", offset, offset + *length - 1));
  } else if (offset > 0) {
    r.headers.emplace_back("x-ms-range", fmt::format("bytes={}-", offset));
  }
  AddEncryption(r, ctx.encryption, BlobOp::kGetBlob);
  return r;
}

http::OutboundRequest BuildGetProperties(const BlobRequestContext& ctx, std::string_view name) {
  http::OutboundRequest r{"HEAD", BlobUrl(ctx, name), {}, {}};
  AddEncryption(r, ctx.encryption, BlobOp::kGetProperties);
  return r;
}

http::OutboundRequest BuildListBlobs(const BlobRequestContext& ctx, std::string_view prefix, std::string_view marker,
                                     int max_results) {
  std::string url = fmt::format("{}/{}?restype=container&comp=list", ctx.endpoint, ctx.container);
  if (!prefix.empty()) url += "&prefix=" + cloud::UriEncode(prefix, true);
  if (!marker.empty()) url += "&marker=" + cloud::UriEncode(marker, true);
  url += fmt::format("&maxresults={}", max_results);
  return http::OutboundRequest{"GET", std::move(url), {}, {}};
}

http::OutboundRequest BuildDeleteBlob(const BlobRequestContext& ctx, std::string_view name) {
  return http::OutboundRequest{"DELETE", BlobUrl(ctx, name), {}, {}};
}

Result<ListBlobsPage> ParseListBlobs(std::string_view body) {
  size_t first = body.find('<');
  auto root = cloud::ParseXml(first == std::string_view::npos ? body : body.substr(first));
  if (!root.ok() || root->name != "EnumerationResults") {
    return Error(ErrorCode::kPermanent, "List Blobs answered with something that is not an EnumerationResults document");
  }
  ListBlobsPage page;
  page.next_marker = root->ChildText("NextMarker");
  if (const cloud::XmlNode* blobs = root->Child("Blobs")) {
    for (const cloud::XmlNode* b : blobs->Children("Blob")) {
      ObjectInfo info;
      info.key = b->ChildText("Name");
      if (const cloud::XmlNode* props = b->Child("Properties")) {
        info.size = std::strtoull(props->ChildText("Content-Length").c_str(), nullptr, 10);
        info.etag = Unquote(props->ChildText("Etag"));
        info.last_modified_ms = ParseRfc1123Ms(props->ChildText("Last-Modified"));
        info.server_side_encryption = props->ChildText("EncryptionScope");
      }
      page.items.push_back(std::move(info));
    }
  }
  return page;
}

ObjectInfo InfoFromHeaders(const http::OutboundResponse& response, std::string_view name) {
  ObjectInfo info;
  info.key = std::string(name);
  info.size = std::strtoull(std::string(response.Header("content-length")).c_str(), nullptr, 10);
  info.etag = Unquote(response.Header("etag"));
  info.last_modified_ms = ParseRfc1123Ms(response.Header("last-modified"));
  info.server_side_encryption = std::string(response.Header("x-ms-encryption-scope"));
  return info;
}

}  // namespace sluice::objstore::azure
