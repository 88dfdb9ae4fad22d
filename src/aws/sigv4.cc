#include "aws/sigv4.h"

#include "common/strings.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace sluice::aws {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/// Trims and collapses runs of whitespace (including obsolete line folding) into one space.
std::string CanonicalHeaderValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  bool pending_space = false;
  for (char c : v) {
    if (IsSpace(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

bool IsUnsignedHeader(std::string_view lower_name) {
  return lower_name == "authorization" || lower_name == "user-agent" || lower_name == "expect" ||
         lower_name == "x-amzn-trace-id";
}

bool HasHeader(const http::OutboundRequest& request, std::string_view name) {
  return std::any_of(request.headers.begin(), request.headers.end(),
                     [&](const auto& h) { return EqualsIgnoreCase(h.first, name); });
}

void RemoveHeader(http::OutboundRequest& request, std::string_view name) {
  std::erase_if(request.headers, [&](const auto& h) { return EqualsIgnoreCase(h.first, name); });
}

/// The Host header value for `url`: the authority without a default port (what clients send and sign).
std::string HostHeaderFor(const UrlParts& parts) {
  std::string_view host = parts.authority;
  if ((parts.scheme == "https" && host.ends_with(":443")) || (parts.scheme == "http" && host.ends_with(":80"))) {
    host.remove_suffix(parts.scheme == "https" ? 4 : 3);
  }
  return AsciiLower(host);
}

std::tm UtcTm(TimePoint t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(
      std::chrono::time_point_cast<std::chrono::seconds>(t));
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return tm;
}

Result<std::string> PayloadHashFor(const http::OutboundRequest& request, const SigningOptions& options) {
  if (!options.payload_hash.empty()) return options.payload_hash;
  if (request.body.data) return HexEncode(Sha256(*request.body.data));
  if (request.body.open) {
    return InvalidArgument("a streamed request body needs SigningOptions::payload_hash (or UNSIGNED-PAYLOAD)");
  }
  return std::string(kEmptyPayloadHash);
}

/// The signing key changes once a day per (secret, region, service); deriving it is four HMACs, about half the
/// cost of signing a small request. One entry per thread: a thread signs for few identities at a time.
Sha256Digest CachedSigningKey(const Secret& secret, std::string_view date, std::string_view region,
                              std::string_view service) {
  struct Entry {
    std::string secret, date, region, service;
    Sha256Digest key{};
  };
  thread_local Entry entry;
  if (entry.secret != secret.Reveal() || entry.date != date || entry.region != region || entry.service != service) {
    entry.key = SigningKey(secret, date, region, service);
    entry.secret = secret.Reveal();
    entry.date = std::string(date);
    entry.region = std::string(region);
    entry.service = std::string(service);
  }
  return entry.key;
}

}  // namespace

SigningOptions SigningOptions::S3(std::string region) {
  SigningOptions o;
  o.region = std::move(region);
  o.service = "s3";
  o.normalize_path = false;
  o.double_encode_path = false;
  o.add_content_sha256_header = true;
  return o;
}

SigningOptions SigningOptions::Generic(std::string region, std::string service) {
  SigningOptions o;
  o.region = std::move(region);
  o.service = std::move(service);
  return o;
}



std::string NormalizePath(std::string_view path) {
  std::vector<std::string_view> segments;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view seg = path.substr(pos, slash - pos);
    if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segments.push_back(seg);
    }
    pos = slash + 1;
  }
  std::string out = "/";
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) out.push_back('/');
    out.append(segments[i]);
  }
  bool trailing = path.ends_with("/") || path.ends_with("/.") || path.ends_with("/..");
  if (trailing && out.size() > 1) out.push_back('/');
  return out;
}


std::string CanonicalUri(std::string_view path, const SigningOptions& options) {
  if (path.empty()) return "/";
  std::string normalized = options.normalize_path ? NormalizePath(path) : std::string(path);
  return options.double_encode_path ? UriEncode(normalized, /*encode_slash=*/false) : normalized;
}

std::string CanonicalQueryString(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view pair = query.substr(pos, amp - pos);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string_view name = pair.substr(0, eq);
      std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      params.emplace_back(UriEncode(UriDecode(name), true), UriEncode(UriDecode(value), true));
    }
    pos = amp + 1;
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out.push_back('&');
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

CanonicalHeaders CanonicalizeHeaders(const std::vector<std::pair<std::string, std::string>>& headers) {
  // Stable sort by lower-cased name keeps repeated headers in their original order, as SigV4 requires.
  std::vector<std::pair<std::string, std::string>> lowered;
  lowered.reserve(headers.size());
  for (const auto& [name, value] : headers) {
    std::string lname = AsciiLower(name);
    if (IsUnsignedHeader(lname)) continue;
    lowered.emplace_back(std::move(lname), CanonicalHeaderValue(value));
  }
  std::stable_sort(lowered.begin(), lowered.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  CanonicalHeaders out;
  for (size_t i = 0; i < lowered.size(); ++i) {
    if (i > 0 && lowered[i].first == lowered[i - 1].first) {
      out.block.back() = ',';  // replace the previous line's '\n'
      out.block += lowered[i].second;
      out.block.push_back('\n');
      continue;
    }
    if (!out.signed_headers.empty()) out.signed_headers.push_back(';');
    out.signed_headers += lowered[i].first;
    out.block += lowered[i].first;
    out.block.push_back(':');
    out.block += lowered[i].second;
    out.block.push_back('\n');
  }
  return out;
}

CanonicalRequestResult CanonicalRequest(const http::OutboundRequest& request, std::string_view payload_hash,
                                        const SigningOptions& options, std::string_view extra_query) {
  UrlParts parts = SplitUrl(request.url);
  std::string query(parts.query);
  if (!extra_query.empty()) {
    if (!query.empty()) query.push_back('&');
    query += extra_query;
  }
  CanonicalHeaders headers = CanonicalizeHeaders(request.headers);
  CanonicalRequestResult out;
  out.text.reserve(256 + headers.block.size());
  out.text += request.method;
  out.text.push_back('\n');
  out.text += CanonicalUri(parts.path, options);
  out.text.push_back('\n');
  out.text += CanonicalQueryString(query);
  out.text.push_back('\n');
  out.text += headers.block;
  out.text.push_back('\n');
  out.text += headers.signed_headers;
  out.text.push_back('\n');
  out.text += payload_hash;
  out.signed_headers = std::move(headers.signed_headers);
  return out;
}

std::string AmzDate(TimePoint t) {
  std::tm tm = UtcTm(t);
  return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

std::string DateStamp(TimePoint t) {
  std::tm tm = UtcTm(t);
  return fmt::format("{:04}{:02}{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

std::string CredentialScope(TimePoint t, std::string_view region, std::string_view service) {
  return fmt::format("{}/{}/{}/aws4_request", DateStamp(t), region, service);
}

std::string StringToSign(TimePoint t, std::string_view scope, std::string_view canonical_request) {
  return fmt::format("{}\n{}\n{}\n{}", kAlgorithm, AmzDate(t), scope, HexEncode(Sha256(canonical_request)));
}

Sha256Digest SigningKey(const Secret& secret_access_key, std::string_view date_stamp, std::string_view region,
                        std::string_view service) {
  Sha256Digest k_date = HmacSha256("AWS4" + secret_access_key.Reveal(), date_stamp);
  Sha256Digest k_region = HmacSha256(AsStringView(k_date), region);
  Sha256Digest k_service = HmacSha256(AsStringView(k_region), service);
  return HmacSha256(AsStringView(k_service), "aws4_request");
}

std::string Signature(const Sha256Digest& signing_key, std::string_view string_to_sign) {
  return HexEncode(HmacSha256(AsStringView(signing_key), string_to_sign));
}

Status Sign(http::OutboundRequest& request, const Credentials& credentials, const SigningOptions& options,
            TimePoint now, SigningStages* stages) {
  UrlParts parts = SplitUrl(request.url);
  if (parts.authority.empty()) return InvalidArgument("cannot sign a request whose URL has no host");
  SLUICE_ASSIGN_OR_RETURN(std::string payload_hash, PayloadHashFor(request, options));

  // Re-signing (a retry) must not accumulate headers.
  for (std::string_view name : {"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}) {
    RemoveHeader(request, name);
  }
  if (!HasHeader(request, "host")) request.headers.emplace_back("Host", HostHeaderFor(parts));
  std::string amz_date = AmzDate(now);
  request.headers.emplace_back("X-Amz-Date", amz_date);
  const bool has_token = !credentials.session_token.empty();
  if (has_token && !options.omit_session_token) {
    request.headers.emplace_back("X-Amz-Security-Token", credentials.session_token.Reveal());
  }
  if (options.add_content_sha256_header) request.headers.emplace_back("x-amz-content-sha256", payload_hash);

  CanonicalRequestResult canonical = CanonicalRequest(request, payload_hash, options);
  std::string scope = CredentialScope(now, options.region, options.service);
  std::string string_to_sign = StringToSign(now, scope, canonical.text);
  std::string signature =
      Signature(CachedSigningKey(credentials.secret_access_key, DateStamp(now), options.region, options.service),
                string_to_sign);
  request.headers.emplace_back(
      "Authorization", fmt::format("{} Credential={}/{}, SignedHeaders={}, Signature={}", kAlgorithm,
                                   credentials.access_key_id, scope, canonical.signed_headers, signature));
  if (has_token && options.omit_session_token) {
    request.headers.emplace_back("X-Amz-Security-Token", credentials.session_token.Reveal());
  }
  if (stages != nullptr) {
    stages->canonical_request = std::move(canonical.text);
    stages->string_to_sign = std::move(string_to_sign);
    stages->signature = std::move(signature);
  }
  return OkStatus();
}

Result<std::string> Presign(const http::OutboundRequest& request, const Credentials& credentials,
                            const SigningOptions& options, TimePoint now, std::chrono::seconds expires,
                            SigningStages* stages) {
  UrlParts parts = SplitUrl(request.url);
  if (parts.authority.empty()) return InvalidArgument("cannot presign a URL without a host");
  SLUICE_ASSIGN_OR_RETURN(std::string payload_hash, PayloadHashFor(request, options));
  http::OutboundRequest to_sign = request;
  if (!HasHeader(to_sign, "host")) to_sign.headers.emplace_back("Host", HostHeaderFor(parts));
  std::string signed_headers = CanonicalizeHeaders(to_sign.headers).signed_headers;

  std::string scope = CredentialScope(now, options.region, options.service);
  const bool has_token = !credentials.session_token.empty();
  // In the order AWS's suite appends them (the canonical form sorts anyway).
  std::string auth_query = fmt::format(
      "X-Amz-Algorithm={}&X-Amz-Credential={}&X-Amz-Date={}&X-Amz-SignedHeaders={}&X-Amz-Expires={}", kAlgorithm,
      UriEncode(credentials.access_key_id + "/" + scope, true), AmzDate(now), UriEncode(signed_headers, true),
      expires.count());
  std::string token_query;
  if (has_token) token_query = "&X-Amz-Security-Token=" + UriEncode(credentials.session_token.Reveal(), true);
  std::string signed_query = auth_query + (options.omit_session_token ? "" : token_query);

  CanonicalRequestResult canonical = CanonicalRequest(to_sign, payload_hash, options, signed_query);
  std::string string_to_sign = StringToSign(now, scope, canonical.text);
  std::string signature =
      Signature(CachedSigningKey(credentials.secret_access_key, DateStamp(now), options.region, options.service),
                string_to_sign);
  std::string url(request.url.substr(0, request.url.find('#')));
  if (!parts.query.empty()) {
    url.push_back('&');
  } else if (!url.ends_with("?")) {
    url.push_back('?');
  }
  url += auth_query + token_query + "&X-Amz-Signature=" + signature;
  if (stages != nullptr) {
    stages->canonical_request = std::move(canonical.text);
    stages->string_to_sign = std::move(string_to_sign);
    stages->signature = std::move(signature);
  }
  return url;
}

}  // namespace sluice::aws
