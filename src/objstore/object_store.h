// ObjectStore: the few operations pipelines and imports need from a bucket, independent of the provider
// (S3 and S3-compatible stores now; a local directory; GCS and Azure Blob later). No provider escape hatches.
//
// Errors are classified (common/error.h): kNotFound, kAccessDenied, kThrottled, kTransient, kExpiredToken,
// kClockSkew, kInvalidArgument, kPermanent. Implementations retry transient failures internally (one layer)
// and report what is left, with the provider code and request id.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::objstore {

/// Server-side encryption chosen by the customer (SPEC §5). Applied to object-creating requests only
/// (PutObject, CreateMultipartUpload).
struct Encryption {
  enum class Mode { kNone, kAes256, kKms };
  Mode mode = Mode::kNone;
  std::string kms_key_id;  // with kKms: empty = the aws/s3 default key
};

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  std::string etag;          // without quotes
  int64_t last_modified_ms = 0;
  /// Server-side encryption the store reported for the object (S3: the x-amz-server-side-encryption and
  /// x-amz-server-side-encryption-aws-kms-key-id response headers of Head and Put); empty when none/unknown.
  std::string server_side_encryption;
  std::string kms_key_id;
};

struct PutOptions {
  std::string content_type = "application/octet-stream";
  std::string content_encoding;  // e.g. "gzip"; empty = none
  /// NewWriter only: the expected object size, 0 = unknown. Lets a multipart writer pick a part size that fits
  /// the provider's part-count limit up front instead of growing parts as it goes.
  uint64_t size_hint = 0;
};

/// Streams one object in parts; nothing is visible under the key until Complete() succeeds, and an object that
/// fails to complete never becomes visible (Abort is attempted but may be denied: the customer's policy does
/// not grant s3:AbortMultipartUpload, so a bucket lifecycle rule cleans leftovers).
class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  /// Appends bytes; buffers up to the part size, uploads full parts (bounded parts in flight, bounded memory).
  virtual Status Write(std::string_view data) = 0;
  /// Uploads the rest and makes the object visible. Returns the final object's info.
  virtual Result<ObjectInfo> Complete() = 0;
  /// Best effort: abandons the upload. Safe to call after a failure; never throws.
  virtual void Abort() = 0;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  /// Human-readable destination, e.g. "s3://bucket/prefix (us-east-1)", for messages and logs.
  virtual std::string Describe() const = 0;

  virtual Result<ObjectInfo> Head(std::string_view key) = 0;
  /// Whole object, or the byte range [offset, offset+length) when length is set.
  virtual Result<std::string> Get(std::string_view key, uint64_t offset = 0,
                                  std::optional<uint64_t> length = std::nullopt) = 0;
  /// Streams an object to `sink` with bounded memory; `sink` returning false aborts with kCancelled.
  virtual Status GetStreaming(std::string_view key, const std::function<bool(std::string_view)>& sink) = 0;
  /// Single-request upload of a small object, with a content checksum.
  virtual Result<ObjectInfo> Put(std::string_view key, std::string data, const PutOptions& options = {}) = 0;
  /// Streaming upload of an object of any size (multipart when large).
  virtual Result<std::unique_ptr<ObjectWriter>> NewWriter(std::string_view key, const PutOptions& options = {}) = 0;
  /// Objects whose key starts with `prefix`, ascending by key, all pages.
  virtual Result<std::vector<ObjectInfo>> List(std::string_view prefix) = 0;
  /// As List but page by page: `fn` is called per object and returns false to stop. `start_after` skips keys
  /// <= it (for resumable discovery).
  virtual Status ListEach(std::string_view prefix, std::string_view start_after,
                          const std::function<bool(const ObjectInfo&)>& fn) = 0;
  /// Deleting a missing key succeeds.
  virtual Status Delete(std::string_view key) = 0;
};

}  // namespace sluice::objstore
