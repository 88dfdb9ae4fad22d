// Building Azure Blob REST requests (x-ms-version pinned by azure::Executor, which also adds x-ms-date and the
// authorisation), separate from sending them. Each builder returns the request as it goes on the wire, e.g.
//
//   PUT https://acct.blob.core.windows.net/exports/1234/2024/01/02/part-0.json.gz?comp=block&blockid=c2x1aWNlLWJsb2NrLTAwMDAwMDAx
//   Content-MD5: <base64 MD5 of the block>
//   x-ms-encryption-scope: sluice-scope              (only when the customer names one)
//   <the block's bytes>
//
//   PUT …/part-0.json.gz?comp=blocklist
//   Content-Type: application/xml
//   x-ms-blob-content-type: application/octet-stream
//   <?xml version="1.0" encoding="utf-8"?><BlockList><Latest>c2x1…</Latest>…</BlockList>
//
// Which requests carry the encryption headers is data (EncryptionHeaders): an encryption scope goes on the
// requests that write data (Put Blob, Put Block, Put Block List); a customer-provided key (CPK) goes on every
// request that writes or reads blob content (and Get Blob Properties). Golden-tested in
// tests/azure/blob_request_test.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/secret.h"
#include "http/transport.h"
#include "objstore/object_store.h"

namespace sluice::objstore::azure {

/// Put Block List allows at most 50,000 blocks per blob ("Put Block List", Remarks).
inline constexpr uint64_t kMaxBlocks = 50'000;
/// A block may hold at most 4000 MiB (version 2019-12-12 and later).
inline constexpr uint64_t kMaxBlockSize = 4000ull * 1024 * 1024;
/// List Blobs returns at most 5000 blobs per page.
inline constexpr int kMaxListPageSize = 5000;

/// Customer-chosen encryption ("Encryption scopes", "Provide an encryption key on a request").
struct BlobEncryption {
  /// x-ms-encryption-scope: a scope the account defines ("" = the account's default).
  std::string scope;
  /// Customer-provided AES-256 key, base64 (x-ms-encryption-key; "" = none). Its SHA-256 is sent beside it.
  Secret customer_key;
};

struct BlobRequestContext {
  /// Scheme, authority and — for path-style endpoints such as Azurite's — the account:
  /// "https://acct.blob.core.windows.net" or "http://127.0.0.1:10000/devstoreaccount1"; no trailing slash.
  std::string endpoint;
  std::string container;
  BlobEncryption encryption;
};

enum class BlobOp { kPutBlob, kPutBlock, kPutBlockList, kGetBlob, kGetProperties, kListBlobs, kDeleteBlob };

/// The encryption headers `op` carries under `encryption` (the per-operation rule above).
std::vector<std::pair<std::string, std::string>> EncryptionHeaders(const BlobEncryption& encryption, BlobOp op);

/// Container naming rules: 3-63 characters, lowercase letters, digits and single '-', starting and ending with
/// a letter or digit. kInvalidArgument says what is wrong.
Status ValidateContainerName(std::string_view container);
/// Account naming rules: 3-24 lowercase letters and digits.
Status ValidateAccountName(std::string_view account);
/// "https://<account>.blob.core.windows.net" unless `explicit_endpoint` is set (validated: http(s) URL, no
/// query; http only on loopback).
Result<std::string> ResolveEndpoint(std::string_view explicit_endpoint, std::string_view account);

/// Fixed-length block IDs (all IDs of one blob must have the same length): base64("sluice-block-%08u").
std::string BlockId(uint32_t index);
/// Base64 MD5 of `data` (Content-MD5).
std::string ContentMd5(std::string_view data);

http::OutboundRequest BuildPutBlob(const BlobRequestContext& ctx, std::string_view name, http::RequestBody body,
                                   const PutOptions& options, std::string_view content_md5);
http::OutboundRequest BuildPutBlock(const BlobRequestContext& ctx, std::string_view name, std::string_view block_id,
                                    http::RequestBody body, std::string_view content_md5);
http::OutboundRequest BuildPutBlockList(const BlobRequestContext& ctx, std::string_view name,
                                        const std::vector<std::string>& block_ids, const PutOptions& options);
/// A ranged GET (x-ms-range) when offset > 0 or length is set.
http::OutboundRequest BuildGetBlob(const BlobRequestContext& ctx, std::string_view name, uint64_t offset,
                                   std::optional<uint64_t> length);
http::OutboundRequest BuildGetProperties(const BlobRequestContext& ctx, std::string_view name);
http::OutboundRequest BuildListBlobs(const BlobRequestContext& ctx, std::string_view prefix, std::string_view marker,
                                     int max_results);
http::OutboundRequest BuildDeleteBlob(const BlobRequestContext& ctx, std::string_view name);

struct ListBlobsPage {
  std::vector<ObjectInfo> items;  // full names
  std::string next_marker;        // "" on the last page
};
/// Parses an EnumerationResults document. kPermanent when it is not one.
Result<ListBlobsPage> ParseListBlobs(std::string_view body);
/// Object info from a Get Blob Properties / Put answer's headers (ETag without quotes, Content-Length,
/// Last-Modified, x-ms-encryption-scope).
ObjectInfo InfoFromHeaders(const http::OutboundResponse& response, std::string_view name);

}  // namespace sluice::objstore::azure
