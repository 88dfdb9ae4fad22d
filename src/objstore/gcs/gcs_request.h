// Building GCS JSON-API (storage/v1) requests, separate from sending them (gcp::Executor adds the bearer
// token, sends and retries). Each builder returns the request exactly as it goes on the wire, e.g. a simple
// upload:
//
//   POST
//   https://storage.googleapis.com/upload/storage/v1/b/data/o?uploadType=multipart&kmsKeyName=projects%2F…
//   Content-Type: multipart/related; boundary=sluice_boundary_…
//   Accept-Encoding: gzip
//   <--boundary, the JSON metadata {"name","contentType","contentEncoding","crc32c"}, --boundary, the bytes>
//
// and a resumable chunk: PUT <session URI> with "Content-Range: bytes 0-8388607/*" (the last one
// "bytes A-B/TOTAL" with "X-Goog-Hash: crc32c=…"). Golden-tested in tests/objstore/gcs_request_test.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "http/transport.h"
#include "objstore/object_store.h"

namespace sluice::objstore::gcs {

inline constexpr std::string_view kDefaultEndpoint = "https://storage.googleapis.com";
/// Resumable chunks must be multiples of this (GCS rejects other non-final chunk sizes).
inline constexpr uint64_t kChunkGranularity = 256 * 1024;

struct GcsRequestContext {
  /// Scheme and authority, no trailing slash, e.g. "https://storage.googleapis.com" or
  /// "http://127.0.0.1:4443".
  std::string endpoint;
  std::string bucket;
  /// CMEK: "projects/P/locations/L/keyRings/R/cryptoKeys/K" for object-creating requests; "" =
  /// Google-managed.
  std::string kms_key_name;
};

/// Bucket naming rules (the parts that catch typos): 3-63 characters (222 with dots), lowercase letters,
/// digits,
/// '-', '_', '.', starting and ending with a letter or digit. kInvalidArgument says what is wrong.
Status ValidateBucketName(std::string_view bucket);
/// Percent-encodes everything but RFC 3986 unreserved characters (object names go in one path segment).
std::string EncodeComponent(std::string_view s);
/// base64 of the big-endian CRC32C, as GCS's crc32c field and x-goog-hash carry it.
std::string Crc32cBase64(uint32_t crc);
/// The value of `kind` ("crc32c" or "md5") in an x-goog-hash header ("crc32c=…,md5=…"); "" when absent.
std::string GoogHashValue(std::string_view header, std::string_view kind);

/// The endpoint to use: `explicit_endpoint` if set, else STORAGE_EMULATOR_HOST (`emulator_host`; "host:port"
/// gets "http://"), else https://storage.googleapis.com. kInvalidArgument for a value that is not a URL.
Result<std::string> ResolveEndpoint(std::string_view explicit_endpoint, std::string_view emulator_host);

http::OutboundRequest BuildGetMetadata(const GcsRequestContext& ctx, std::string_view name);
/// alt=media download; a Range header when offset > 0 or length is set; `generation` > 0 pins the object
/// version.
http::OutboundRequest BuildDownload(const GcsRequestContext& ctx, std::string_view name, uint64_t offset,
                                    std::optional<uint64_t> length, int64_t generation = 0);
/// Simple (multipart/related) upload: metadata with the crc32c, then the bytes.
http::OutboundRequest BuildMultipartUpload(const GcsRequestContext& ctx, std::string_view name,
                                           std::string_view data, const PutOptions& options,
                                           std::string_view crc32c_base64, std::string_view boundary);
/// Starts a resumable session (answer: 200 with the session URI in Location).
http::OutboundRequest BuildStartResumable(const GcsRequestContext& ctx, std::string_view name,
                                          const PutOptions& options);
/// One chunk of `body` at `offset`. `total` set = the final chunk ("bytes A-B/TOTAL", or "bytes */TOTAL" when
/// the body is empty) carrying "X-Goog-Hash: crc32c=<crc32c_base64>"; unset = more follows ("bytes A-B/*").
http::OutboundRequest BuildUploadChunk(std::string_view session_uri, http::RequestBody body, uint64_t offset,
                                       std::optional<uint64_t> total, std::string_view crc32c_base64 = {});
/// Asks the session how much it has: "Content-Range: bytes */*" (or "*/TOTAL"), empty body; answer 308 +
/// Range.
http::OutboundRequest BuildQueryResumable(std::string_view session_uri, std::optional<uint64_t> total);
http::OutboundRequest BuildCancelResumable(std::string_view session_uri);
http::OutboundRequest BuildList(const GcsRequestContext& ctx, std::string_view prefix,
                                std::string_view page_token, std::string_view start_offset, int max_results);
http::OutboundRequest BuildDelete(const GcsRequestContext& ctx, std::string_view name);
http::OutboundRequest BuildTestIamPermissions(const GcsRequestContext& ctx,
                                              const std::vector<std::string>& permissions);

/// An object resource as GCS describes it.
struct GcsObject {
  ObjectInfo info;  // key = the full object name
  std::string crc32c;
  std::string md5;
  int64_t generation = 0;
};
Result<GcsObject> ParseObjectResource(std::string_view json);

struct ListPage {
  std::vector<GcsObject> items;
  std::string next_page_token;
};
Result<ListPage> ParseListPage(std::string_view json);
/// The permissions a testIamPermissions answer grants.
Result<std::vector<std::string>> ParseTestIamPermissions(std::string_view json);

/// The persisted size a resumable session reports in a 308's Range header ("bytes=0-N" → N+1; none → 0).
Result<uint64_t> PersistedBytes(const http::OutboundResponse& response);

}  // namespace sluice::objstore::gcs
