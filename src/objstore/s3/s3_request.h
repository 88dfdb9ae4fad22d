// Building S3 REST requests, separate from sending them (the executor signs, sends and retries).
//
// Each builder returns the unsigned request exactly as it will go on the wire, e.g. PutObject with SSE-KMS on a
// path-style endpoint:
//
//   PUT /bucket/exports/2024/01/02/part%20one.json.gz HTTP/1.1
//   Host: 127.0.0.1:9000
//   Content-Type: application/x-ndjson
//   Content-Encoding: gzip
//   x-amz-checksum-crc32c: yZRlqg==
//   x-amz-server-side-encryption: aws:kms
//   x-amz-server-side-encryption-aws-kms-key-id: arn:aws:kms:us-east-1:111122223333:key/…
//   <body>
//
// The signer then adds X-Amz-Date, [X-Amz-Security-Token], x-amz-content-sha256 and Authorization.
// Which operations carry SSE headers is data (kS3Operations), golden-tested in tests/objstore.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "http/transport.h"
#include "objstore/object_store.h"

namespace sluice::objstore::s3 {

enum class S3Operation {
  kPutObject,
  kGetObject,
  kHeadObject,
  kListObjectsV2,
  kDeleteObject,
  kCreateMultipartUpload,
  kUploadPart,
  kCompleteMultipartUpload,
  kAbortMultipartUpload,
};

/// Static facts about one S3 operation.
struct S3OperationTraits {
  S3Operation op;
  std::string_view name;        // "PutObject"
  std::string_view method;      // "PUT"
  std::string_view iam_action;  // the IAM action AWS authorises it with, for "missing permission" messages
  /// Carries x-amz-server-side-encryption[-aws-kms-key-id]. Only requests that create an object do: S3 rejects
  /// SSE-S3/SSE-KMS headers on UploadPart, GET and HEAD ("InvalidArgument"), and ignores them elsewhere.
  bool carries_sse;
  /// The IAM resource is the bucket (arn:aws:s3:::B) rather than an object (arn:aws:s3:::B/key).
  bool bucket_resource;
};

inline constexpr std::array<S3OperationTraits, 9> kS3Operations = {{
    {S3Operation::kPutObject, "PutObject", "PUT", "s3:PutObject", true, false},
    {S3Operation::kGetObject, "GetObject", "GET", "s3:GetObject", false, false},
    {S3Operation::kHeadObject, "HeadObject", "HEAD", "s3:GetObject", false, false},
    {S3Operation::kListObjectsV2, "ListObjectsV2", "GET", "s3:ListBucket", false, true},
    {S3Operation::kDeleteObject, "DeleteObject", "DELETE", "s3:DeleteObject", false, false},
    {S3Operation::kCreateMultipartUpload, "CreateMultipartUpload", "POST", "s3:PutObject", true, false},
    {S3Operation::kUploadPart, "UploadPart", "PUT", "s3:PutObject", false, false},
    {S3Operation::kCompleteMultipartUpload, "CompleteMultipartUpload", "POST", "s3:PutObject", false, false},
    {S3Operation::kAbortMultipartUpload, "AbortMultipartUpload", "DELETE", "s3:AbortMultipartUpload", false, false},
}};

const S3OperationTraits& Traits(S3Operation op);

/// How the bucket appears in URLs.
enum class Addressing {
  kAuto,           // virtual-hosted for AWS (unless the bucket name has dots: TLS wildcard certs), path-style for
                   // custom endpoints (MinIO, moto, Ceph mostly need it)
  kPathStyle,      // https://host/bucket/key
  kVirtualHosted,  // https://bucket.host/key
};

/// How request bodies are protected.
enum class PayloadSigning {
  /// x-amz-content-sha256 is the body's SHA-256 and is signed (integrity end to end; costs one hash pass).
  kSigned,
  /// x-amz-content-sha256: UNSIGNED-PAYLOAD, with x-amz-checksum-crc32c on every body (cheaper; TLS protects
  /// the body in transit and S3 verifies the CRC).
  kUnsignedWithCrc32c,
};

/// Where requests go. Resolve with ResolveEndpoint().
struct S3Endpoint {
  std::string scheme = "https";
  std::string authority;  // host[:port] without the bucket
  bool path_style = false;
};

/// Custom endpoint > AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL > https://s3.<region>.amazonaws.com[.cn].
/// `getenv` is injectable for tests. kInvalidArgument for a malformed URL or an empty region without endpoint.
Result<S3Endpoint> ResolveEndpoint(std::string_view bucket, std::string_view region, std::string_view endpoint,
                                   Addressing addressing, const char* (*getenv_fn)(const char*) = nullptr);

/// The SSE headers for `encryption` (empty for kNone).
std::vector<std::pair<std::string, std::string>> SseHeaders(const Encryption& encryption);

/// base64 of the big-endian CRC32C, the value of x-amz-checksum-crc32c.
std::string Crc32cBase64(std::string_view data);
/// Same, from a CRC already computed.
std::string Crc32cBase64(uint32_t crc);

/// Everything the builders need; cheap to copy.
struct S3RequestContext {
  std::string bucket;
  S3Endpoint endpoint;
  Encryption encryption;
  PayloadSigning payload_signing = PayloadSigning::kSigned;
};

/// One part as CompleteMultipartUpload lists it.
struct CompletedPart {
  int part_number = 0;
  std::string etag;            // as UploadPart returned it (quotes kept; S3 accepts both)
  std::string checksum_crc32c;  // with kUnsignedWithCrc32c
};

/// A built request plus what the signer must know about its body.
struct S3Request {
  S3Operation op;
  http::OutboundRequest http;
  /// Value for x-amz-content-sha256: the body's hex SHA-256 (computed once here, reused by every retry),
  /// aws::kEmptyPayloadHash, or aws::kUnsignedPayload.
  std::string payload_hash;
};

/// The URL of `key` (already percent-encoded, '/' kept) with an optional query (already canonical).
std::string ObjectUrl(const S3RequestContext& ctx, std::string_view key, std::string_view query = {});

/// `sha256_hex`: the body's SHA-256 when the caller already has it (else computed here if signing payloads).
S3Request BuildPutObject(const S3RequestContext& ctx, std::string_view key, std::shared_ptr<const std::string> body,
                         const PutOptions& options, std::string_view sha256_hex = {});
/// `length` nullopt = to the end. A range becomes "Range: bytes=first-last".
S3Request BuildGetObject(const S3RequestContext& ctx, std::string_view key, uint64_t offset = 0,
                                     std::optional<uint64_t> length = std::nullopt);
S3Request BuildHeadObject(const S3RequestContext& ctx, std::string_view key);
/// One page: `continuation_token` from the previous page, `start_after` only on the first.
S3Request BuildListObjectsV2(const S3RequestContext& ctx, std::string_view prefix,
                                         std::string_view continuation_token, std::string_view start_after,
                                         int max_keys = 1000);
S3Request BuildDeleteObject(const S3RequestContext& ctx, std::string_view key);
S3Request BuildCreateMultipartUpload(const S3RequestContext& ctx, std::string_view key,
                                                 const PutOptions& options);
/// `crc32c_base64` is sent as x-amz-checksum-crc32c when non-empty. `sha256_hex`, when given, is the body's
/// SHA-256 already computed by the caller (the writer hashes data while it is still in cache).
S3Request BuildUploadPart(const S3RequestContext& ctx, std::string_view key, std::string_view upload_id,
                          int part_number, std::shared_ptr<const std::string> body, std::string_view crc32c_base64,
                          std::string_view sha256_hex = {});
S3Request BuildCompleteMultipartUpload(const S3RequestContext& ctx, std::string_view key,
                                                   std::string_view upload_id,
                                                   const std::vector<CompletedPart>& parts);
S3Request BuildAbortMultipartUpload(const S3RequestContext& ctx, std::string_view key,
                                                std::string_view upload_id);

/// The XML body of CompleteMultipartUpload.
std::string CompleteMultipartUploadXml(const std::vector<CompletedPart>& parts);

}  // namespace sluice::objstore::s3
