#include "objstore/s3/s3_request.h"

#include <fmt/format.h>

#include <cstdlib>

#include "aws/sigv4.h"
#include "aws/xml.h"
#include "common/crypto.h"
#include "common/strings.h"

namespace sluice::objstore::s3 {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

std::string BodyHash(const S3RequestContext& ctx, const std::shared_ptr<const std::string>& body) {
  if (ctx.payload_signing == PayloadSigning::kUnsignedWithCrc32c) return std::string(aws::kUnsignedPayload);
  return HexEncode(AsStringView(Sha256(body ? std::string_view(*body) : std::string_view())));
}

S3Request Make(S3Operation op, std::string url, Headers headers, std::shared_ptr<const std::string> body,
               std::string payload_hash) {
  S3Request r{op, {}, std::move(payload_hash)};
  r.http.method = std::string(Traits(op).method);
  r.http.url = std::move(url);
  r.http.headers = std::move(headers);
  if (body) {
    r.http.body.length = body->size();
    r.http.body.data = std::move(body);
  }
  return r;
}

// SSE headers are appended only where kS3Operations says so: the single place that decides.
void AddSse(const S3RequestContext& ctx, S3Operation op, Headers& headers) {
  if (!Traits(op).carries_sse) return;
  for (auto& h : SseHeaders(ctx.encryption)) headers.push_back(std::move(h));
}

void AddContentHeaders(const PutOptions& options, Headers& headers) {
  if (!options.content_type.empty()) headers.emplace_back("Content-Type", options.content_type);
  if (!options.content_encoding.empty()) headers.emplace_back("Content-Encoding", options.content_encoding);
}

}  // namespace

const S3OperationTraits& Traits(S3Operation op) {
  for (const auto& t : kS3Operations) {
    if (t.op == op) return t;
  }
  std::abort();  // every enumerator is in the table (a unit test checks)
}

Result<S3Endpoint> ResolveEndpoint(std::string_view bucket, std::string_view region, std::string_view endpoint,
                                   Addressing addressing, const char* (*getenv_fn)(const char*)) {
  if (getenv_fn == nullptr) getenv_fn = [](const char* name) -> const char* { return std::getenv(name); };
  std::string url(endpoint);
  if (url.empty()) {
    for (const char* var : {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}) {
      const char* v = getenv_fn(var);
      if (v != nullptr && *v != '\0') {
        url = v;
        break;
      }
    }
  }
  const bool custom = !url.empty();
  if (!custom) {
    if (region.empty()) return InvalidArgument("S3 region is empty and no endpoint is configured");
    url = fmt::format("https://s3.{}.amazonaws.com{}", region, region.starts_with("cn-") ? ".cn" : "");
  }
  S3Endpoint ep;
  auto sep = url.find("://");
  if (sep == std::string::npos) return InvalidArgument(fmt::format("S3 endpoint '{}' has no scheme", url));
  // Schemes are case-insensitive (RFC 3986 §3.1), as the endpoint allow-list compares them.
  ep.scheme = AsciiLower(std::string_view(url).substr(0, sep));
  if (ep.scheme != "http" && ep.scheme != "https") {
    return InvalidArgument(fmt::format("S3 endpoint '{}' must be http:// or https://", url));
  }
  std::string rest = url.substr(sep + 3);
  auto slash = rest.find('/');
  if (slash != std::string::npos) {
    if (rest.find_first_not_of('/', slash) != std::string::npos) {
      return InvalidArgument(fmt::format("S3 endpoint '{}' must not have a path", url));
    }
    rest.resize(slash);
  }
  if (rest.empty() || rest.find_first_of("?#@ ") != std::string::npos) {
    return InvalidArgument(fmt::format("S3 endpoint '{}' has no valid host", url));
  }
  ep.authority = rest;
  switch (addressing) {
    case Addressing::kPathStyle: ep.path_style = true; break;
    case Addressing::kVirtualHosted: ep.path_style = false; break;
    case Addressing::kAuto:
      // Dotted bucket names break the *.s3.amazonaws.com wildcard certificate in virtual-hosted style.
      ep.path_style = custom || bucket.find('.') != std::string_view::npos;
      break;
  }
  return ep;
}

Headers SseHeaders(const Encryption& encryption) {
  switch (encryption.mode) {
    case Encryption::Mode::kNone: return {};
    case Encryption::Mode::kAes256: return {{"x-amz-server-side-encryption", "AES256"}};
    case Encryption::Mode::kKms: {
      Headers h{{"x-amz-server-side-encryption", "aws:kms"}};
      // Empty key id: S3 uses the account's aws/s3 managed key (SPEC §5).
      if (!encryption.kms_key_id.empty()) {
        h.emplace_back("x-amz-server-side-encryption-aws-kms-key-id", encryption.kms_key_id);
      }
      return h;
    }
  }
  return {};
}

std::string Crc32cBase64(uint32_t crc) {
  const char be[4] = {static_cast<char>(crc >> 24), static_cast<char>(crc >> 16), static_cast<char>(crc >> 8),
                      static_cast<char>(crc)};
  return Base64Encode(std::string_view(be, 4));
}

std::string Crc32cBase64(std::string_view data) { return Crc32cBase64(Crc32c(data)); }

std::string ObjectUrl(const S3RequestContext& ctx, std::string_view key, std::string_view query) {
  std::string url = ctx.endpoint.scheme + "://";
  if (ctx.endpoint.path_style) {
    url += ctx.endpoint.authority + "/" + aws::UriEncode(ctx.bucket, true);
    if (!key.empty()) url += "/" + aws::UriEncode(key, /*encode_slash=*/false);
  } else {
    url += ctx.bucket + "." + ctx.endpoint.authority + "/" + aws::UriEncode(key, /*encode_slash=*/false);
  }
  if (!query.empty()) {
    url += "?";
    url += query;
  }
  return url;
}

S3Request BuildPutObject(const S3RequestContext& ctx, std::string_view key, std::shared_ptr<const std::string> body,
                         const PutOptions& options, std::string_view sha256_hex) {
  if (!body) body = std::make_shared<const std::string>();
  Headers h;
  AddContentHeaders(options, h);
  // Always a CRC32C: S3 verifies it on arrival and stores it, so readers can verify too.
  h.emplace_back("x-amz-checksum-crc32c", Crc32cBase64(*body));
  AddSse(ctx, S3Operation::kPutObject, h);
  std::string hash = ctx.payload_signing == PayloadSigning::kSigned && !sha256_hex.empty() ? std::string(sha256_hex)
                                                                                          : BodyHash(ctx, body);
  return Make(S3Operation::kPutObject, ObjectUrl(ctx, key), std::move(h), std::move(body), std::move(hash));
}

S3Request BuildGetObject(const S3RequestContext& ctx, std::string_view key, uint64_t offset,
                         std::optional<uint64_t> length) {
  Headers h;
  if (length.has_value()) {
    // Callers never ask for 0 bytes (the store answers that without a request): "bytes=o-(o-1)" is invalid.
    h.emplace_back("Range", fmt::format("bytes={}-{}", offset, offset + std::max<uint64_t>(*length, 1) - 1));
  } else if (offset > 0) {
    h.emplace_back("Range", fmt::format("bytes={}-", offset));
  }
  AddSse(ctx, S3Operation::kGetObject, h);
  return Make(S3Operation::kGetObject, ObjectUrl(ctx, key), std::move(h), nullptr, std::string(aws::kEmptyPayloadHash));
}

S3Request BuildHeadObject(const S3RequestContext& ctx, std::string_view key) {
  Headers h;
  AddSse(ctx, S3Operation::kHeadObject, h);
  return Make(S3Operation::kHeadObject, ObjectUrl(ctx, key), std::move(h), nullptr,
              std::string(aws::kEmptyPayloadHash));
}

S3Request BuildListObjectsV2(const S3RequestContext& ctx, std::string_view prefix,
                             std::string_view continuation_token, std::string_view start_after, int max_keys) {
  // Parameters in canonical (sorted) order, so the wire query is the canonical query.
  std::string q;
  auto add = [&](std::string_view name, std::string_view value) {
    if (!q.empty()) q += '&';
    q += name;
    q += '=';
    q += aws::UriEncode(value, /*encode_slash=*/true);
  };
  if (!continuation_token.empty()) add("continuation-token", continuation_token);
  add("list-type", "2");
  add("max-keys", std::to_string(max_keys));
  if (!prefix.empty()) add("prefix", prefix);
  if (continuation_token.empty() && !start_after.empty()) add("start-after", start_after);
  Headers h;
  AddSse(ctx, S3Operation::kListObjectsV2, h);
  return Make(S3Operation::kListObjectsV2, ObjectUrl(ctx, "", q), std::move(h), nullptr,
              std::string(aws::kEmptyPayloadHash));
}

S3Request BuildDeleteObject(const S3RequestContext& ctx, std::string_view key) {
  Headers h;
  AddSse(ctx, S3Operation::kDeleteObject, h);
  return Make(S3Operation::kDeleteObject, ObjectUrl(ctx, key), std::move(h), nullptr,
              std::string(aws::kEmptyPayloadHash));
}

S3Request BuildCreateMultipartUpload(const S3RequestContext& ctx, std::string_view key, const PutOptions& options) {
  Headers h;
  AddContentHeaders(options, h);
  if (ctx.payload_signing == PayloadSigning::kUnsignedWithCrc32c) {
    // Parts carry CRC32Cs only if the upload declares the algorithm up front.
    h.emplace_back("x-amz-checksum-algorithm", "CRC32C");
  }
  AddSse(ctx, S3Operation::kCreateMultipartUpload, h);
  return Make(S3Operation::kCreateMultipartUpload, ObjectUrl(ctx, key, "uploads"), std::move(h), nullptr,
              std::string(aws::kEmptyPayloadHash));
}

S3Request BuildUploadPart(const S3RequestContext& ctx, std::string_view key, std::string_view upload_id,
                          int part_number, std::shared_ptr<const std::string> body, std::string_view crc32c_base64,
                          std::string_view sha256_hex) {
  Headers h;
  if (!crc32c_base64.empty()) h.emplace_back("x-amz-checksum-crc32c", std::string(crc32c_base64));
  AddSse(ctx, S3Operation::kUploadPart, h);
  std::string hash = ctx.payload_signing == PayloadSigning::kSigned && !sha256_hex.empty() ? std::string(sha256_hex)
                                                                                          : BodyHash(ctx, body);
  std::string q = fmt::format("partNumber={}&uploadId={}", part_number, aws::UriEncode(upload_id, true));
  return Make(S3Operation::kUploadPart, ObjectUrl(ctx, key, q), std::move(h), std::move(body), std::move(hash));
}

S3Request BuildCompleteMultipartUpload(const S3RequestContext& ctx, std::string_view key,
                                       std::string_view upload_id, const std::vector<CompletedPart>& parts) {
  auto body = std::make_shared<const std::string>(CompleteMultipartUploadXml(parts));
  Headers h{{"Content-Type", "application/xml"}};
  AddSse(ctx, S3Operation::kCompleteMultipartUpload, h);
  // The XML is small: always sign its hash, whatever the payload mode.
  std::string hash = HexEncode(AsStringView(Sha256(*body)));
  return Make(S3Operation::kCompleteMultipartUpload,
              ObjectUrl(ctx, key, "uploadId=" + aws::UriEncode(upload_id, true)), std::move(h), std::move(body),
              std::move(hash));
}

S3Request BuildAbortMultipartUpload(const S3RequestContext& ctx, std::string_view key, std::string_view upload_id) {
  Headers h;
  AddSse(ctx, S3Operation::kAbortMultipartUpload, h);
  return Make(S3Operation::kAbortMultipartUpload, ObjectUrl(ctx, key, "uploadId=" + aws::UriEncode(upload_id, true)),
              std::move(h), nullptr, std::string(aws::kEmptyPayloadHash));
}

std::string CompleteMultipartUploadXml(const std::vector<CompletedPart>& parts) {
  std::string xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (const auto& p : parts) {
    xml += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag>", p.part_number, aws::XmlEscape(p.etag));
    if (!p.checksum_crc32c.empty()) xml += fmt::format("<ChecksumCRC32C>{}</ChecksumCRC32C>", p.checksum_crc32c);
    xml += "</Part>";
  }
  xml += "</CompleteMultipartUpload>";
  return xml;
}

}  // namespace sluice::objstore::s3
