// S3ObjectStore: ObjectStore on Amazon S3 and S3-compatible stores (MinIO, Ceph RGW, moto, GCS XML API).
//
//   S3StoreOptions o;
//   o.bucket = "customer-bucket"; o.region = "eu-west-1"; o.prefix = "sluice";
//   o.encryption = {Encryption::Mode::kKms, "arn:aws:kms:…"};
//   auto store = S3ObjectStore::Create(o, assume_role_provider);   // aws::CredentialsProvider
//   (*store)->Put("1234/mp_master_event/2024/01/02/part-0.json.gz", data);
//
// Requests are built by s3_request.h and sent by aws::Executor, the single retry layer (backoff with full jitter,
// re-signing per attempt, ExpiredToken refresh). Large objects stream through a multipart ObjectWriter: parts of
// at least 5 MiB, at most `max_parts_in_flight` parts uploading at once on a shared worker pool, so a writer holds
// at most part_size × (max_parts_in_flight + 1) bytes. Write() checksums each part (SHA-256 when signing payloads,
// CRC32C otherwise) while copying it in, so the bytes are hashed while still in cache. A failed part is never followed by Complete (the object
// never becomes visible); Abort is best effort because customers' policies do not grant s3:AbortMultipartUpload
// (a bucket lifecycle rule removes leftovers).
//
// Thread-safe: one store serves many threads; a writer is used by one thread at a time.
#pragma once

#include <memory>
#include <string>

#include "aws/credentials.h"
#include "aws/executor.h"
#include "aws/retry.h"
#include "http/transport.h"
#include "objstore/object_store.h"
#include "objstore/s3/multipart.h"
#include "objstore/s3/s3_request.h"
#include "objstore/s3/worker_pool.h"

namespace sluice::objstore::s3 {

class PartBufferPool;

struct S3StoreOptions {
  std::string bucket;
  std::string region;
  /// "" = AWS (or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL when set), else e.g. "http://127.0.0.1:9000".
  std::string endpoint;
  Addressing addressing = Addressing::kAuto;
  /// Keys are relative to this prefix ("" = bucket root); leading/trailing '/' are ignored.
  std::string prefix;
  Encryption encryption;
  PayloadSigning payload_signing = PayloadSigning::kSigned;
  /// Multipart part size (5 MiB..5 GiB); also the threshold below which a writer does a single PutObject.
  uint64_t part_size = 8 * kMiB;
  /// Parts of one writer uploading concurrently (its memory bound is part_size × (this + 1)).
  int max_parts_in_flight = 4;
  /// Threads shared by all writers of the store.
  int upload_threads = 4;
  aws::RetryPolicy retry;
  /// Used when Create() is given no transport.
  http::TransportOptions transport;
};

class S3ObjectStore final : public ObjectStore {
 public:
  /// Validates options (bucket, region/endpoint, part size) and builds the store. `transport` may be null (a
  /// libcurl transport is created). kInvalidArgument describes a bad option.
  static Result<std::unique_ptr<S3ObjectStore>> Create(S3StoreOptions options,
                                                       std::shared_ptr<aws::CredentialsProvider> credentials,
                                                       std::shared_ptr<http::HttpTransport> transport = nullptr);
  ~S3ObjectStore() override;

  std::string Describe() const override;
  Result<ObjectInfo> Head(std::string_view key) override;
  Result<std::string> Get(std::string_view key, uint64_t offset = 0,
                          std::optional<uint64_t> length = std::nullopt) override;
  /// Resumes with a Range request (pinned to the first response's ETag by If-Match) when the connection breaks
  /// mid-body, up to a bounded number of times.
  Status GetStreaming(std::string_view key, const std::function<bool(std::string_view)>& sink) override;
  Result<ObjectInfo> Put(std::string_view key, std::string data, const PutOptions& options = {}) override;
  Result<std::unique_ptr<ObjectWriter>> NewWriter(std::string_view key, const PutOptions& options = {}) override;
  Result<std::vector<ObjectInfo>> List(std::string_view prefix) override;
  Status ListEach(std::string_view prefix, std::string_view start_after,
                  const std::function<bool(const ObjectInfo&)>& fn) override;
  Status Delete(std::string_view key) override;

  const S3StoreOptions& options() const { return options_; }
  const S3RequestContext& request_context() const { return ctx_; }
  /// Full S3 key (prefix applied) of a store key.
  std::string FullKey(std::string_view key) const;
  /// "arn:aws:s3:::bucket/<full key>" (or the bucket ARN for an empty key): for permission messages.
  std::string ResourceArn(std::string_view key) const;

 private:
  friend class S3Writer;
  S3ObjectStore(S3StoreOptions options, S3RequestContext ctx, std::shared_ptr<http::HttpTransport> transport,
                std::shared_ptr<aws::CredentialsProvider> credentials);

  /// Sends a built request through the executor.
  Result<http::OutboundResponse> Send(const S3Request& request, aws::CallOptions call = {}) const;
  Result<ObjectInfo> PutFullKey(const std::string& full_key, std::shared_ptr<const std::string> data,
                                const PutOptions& options, std::string_view sha256_hex = {});
  /// Store key of a full S3 key (prefix removed).
  std::string RelativeKey(std::string_view full_key) const;

  S3StoreOptions options_;
  S3RequestContext ctx_;
  std::string key_prefix_;  // "" or "<prefix>/"
  std::shared_ptr<http::HttpTransport> transport_;
  aws::Executor executor_;
  /// Recycled part buffers shared by all writers (see PartBufferPool in the .cc).
  std::shared_ptr<PartBufferPool> buffers_;
  WorkerPool pool_;
};

/// Reads x-amz-server-side-encryption[-aws-kms-key-id] from a response into `info`.
void ReadSseHeaders(const http::OutboundResponse& response, ObjectInfo& info);

}  // namespace sluice::objstore::s3
