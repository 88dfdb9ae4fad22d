// AWS Signature Version 4, as pure functions: every stage is callable (and tested) on its own, and the time is
// always passed in (no clock inside).
//
// Usage (S3):
//   http::OutboundRequest req{"PUT", "https://bucket.s3.us-east-1.amazonaws.com/" + aws::UriEncode(key, false),
//                             {{"Content-Type", "application/x-ndjson"},
//                              {"x-amz-server-side-encryption", "aws:kms"}}, body};
//   aws::SigningOptions opts = aws::SigningOptions::S3("us-east-1");   // x-amz-content-sha256 of the body
//   // opts.payload_hash = aws::kUnsignedPayload;                      // or skip hashing a large part
//   SLUICE_TRY(aws::Sign(req, creds, opts, clock.Now()));
//   // req now carries Host, X-Amz-Date, [X-Amz-Security-Token], x-amz-content-sha256, Authorization.
//
// Usage (STS / other query services): aws::SigningOptions::Generic("us-east-1", "sts").
//
// URL rules: `url` is exactly what goes on the wire. Build S3 paths with UriEncode(key, /*encode_slash=*/false)
// and query strings with UriEncode(value, true) ("uploads=" / "partNumber=1&uploadId=…"): the S3 flavour signs the
// path as given (single encoding) and the query is always decoded and re-encoded canonically.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aws/credentials.h"
#include "cloud/url.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/result.h"
#include "http/transport.h"

namespace sluice::aws {

/// Payload hash value that tells S3 the body is not covered by the signature (TLS protects it in transit).
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
/// SHA-256 of the empty string, the payload hash of body-less requests.
inline constexpr std::string_view kEmptyPayloadHash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
inline constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

/// How to canonicalise and what to add. Use the S3() or Generic() presets; the fields exist separately
/// because AWS's test suite exercises them independently.
struct SigningOptions {
  std::string region;
  std::string service;
  /// Generic services: remove "." and ".." segments and collapse "//" before encoding. S3: never (keys may
  /// contain them).
  bool normalize_path = true;
  /// Generic services: percent-encode the (already encoded) wire path again. S3: sign the wire path as is.
  bool double_encode_path = true;
  /// Add and sign `x-amz-content-sha256` (S3 requires it).
  bool add_content_sha256_header = false;
  /// Add X-Amz-Security-Token after signing instead of signing it (some services want this; not S3/STS).
  bool omit_session_token = false;
  /// Lower-case hex SHA-256 of the body, or kUnsignedPayload. Empty = hash the in-memory body (a streamed
  /// body — RequestBody::open — must give it, since the signer cannot read a stream twice).
  std::string payload_hash;

  static SigningOptions S3(std::string region);
  static SigningOptions Generic(std::string region, std::string service);
};

/// AWS's UriEncode and the URL helpers: cloud/url.h (Azure's requests use them too).
using cloud::UriDecode;
using cloud::UriEncode;
/// RFC 3986 dot-segment removal plus collapsing of empty segments; keeps a trailing slash.
std::string NormalizePath(std::string_view path);

using cloud::SplitUrl;
using cloud::UrlParts;

/// Stage 1a: the canonical URI of `path` under `options`.
std::string CanonicalUri(std::string_view path, const SigningOptions& options);
/// Stage 1b: the canonical query string: parameters decoded, re-encoded with UriEncode, sorted by name then
/// value; "uploads" becomes "uploads=".
std::string CanonicalQueryString(std::string_view query);
/// Stage 1c: canonical header block ("name:value\n" per header, names lower-cased and sorted, values trimmed
/// with inner whitespace runs collapsed, repeated headers joined by ',') and the signed-header list
/// ("host;x-amz-date"). Headers that proxies or libraries change (user-agent, expect, authorization,
/// x-amzn-trace-id) are not signed.
struct CanonicalHeaders {
  std::string block;
  std::string signed_headers;
};
CanonicalHeaders CanonicalizeHeaders(const std::vector<std::pair<std::string, std::string>>& headers);

/// Stage 1: the canonical request of `request` (which must already carry every header to be signed) with
/// `extra_query` (presigning) added to its query.
struct CanonicalRequestResult {
  std::string text;
  std::string signed_headers;
};
CanonicalRequestResult CanonicalRequest(const http::OutboundRequest& request, std::string_view payload_hash,
                                        const SigningOptions& options, std::string_view extra_query = {});

/// "20150830T123600Z".
std::string AmzDate(TimePoint t);
/// "20150830".
std::string DateStamp(TimePoint t);
/// "20150830/us-east-1/service/aws4_request".
std::string CredentialScope(TimePoint t, std::string_view region, std::string_view service);

/// Stage 2: "AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256(canonical request)>".
std::string StringToSign(TimePoint t, std::string_view scope, std::string_view canonical_request);
/// Stage 3a: HMAC chain "AWS4"+secret → date → region → service → "aws4_request".
Sha256Digest SigningKey(const Secret& secret_access_key, std::string_view date_stamp, std::string_view region,
                        std::string_view service);
/// Stage 3b: hex HMAC-SHA256(signing key, string to sign).
std::string Signature(const Sha256Digest& signing_key, std::string_view string_to_sign);

/// The intermediate values of one signing, for tests and debugging (contain no secret).
struct SigningStages {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;
};

/// Header signing. Removes any previous signing headers, adds Host (from the URL, when missing), X-Amz-Date,
/// X-Amz-Security-Token (session credentials), x-amz-content-sha256 (when asked) and Authorization.
/// Errors: kInvalidArgument for a streamed body without options.payload_hash, or a URL without a host.
Status Sign(http::OutboundRequest& request, const Credentials& credentials, const SigningOptions& options,
            TimePoint now, SigningStages* stages = nullptr);

/// Query signing (presigned URL valid for `expires`): returns the URL with X-Amz-Algorithm, -Credential, -Date,
/// -SignedHeaders, -Expires, [-Security-Token] and -Signature appended. Headers of `request` are signed (add
/// Host to it if it should be; it is derived from the URL when missing). For S3 set payload_hash to
/// kUnsignedPayload.
Result<std::string> Presign(const http::OutboundRequest& request, const Credentials& credentials,
                            const SigningOptions& options, TimePoint now, std::chrono::seconds expires,
                            SigningStages* stages = nullptr);

}  // namespace sluice::aws
