// GcsObjectStore: ObjectStore on Google Cloud Storage's JSON API (storage/v1).
//
//   gcs::GcsStoreOptions o;
//   o.bucket = "customer-bucket"; o.prefix = "sluice";
//   o.kms_key_name = "projects/p/locations/us/keyRings/r/cryptoKeys/k";   // optional CMEK
//   auto tokens = gcp::MakeDefaultTokenProvider({transport});             // Sluice's own service account
//   auto store = gcs::GcsObjectStore::Create(o, *tokens, transport);
//   (*store)->Put("1234/2024/01/02/part-0.json.gz", data);
//
// Requests are built by gcs_request.h and sent by gcp::Executor, the single retry layer (429,
// rateLimitExceeded, 5xx, resets; a 401 fetches a new token once). Small objects go up in one
// multipart/related request with their CRC32C in the metadata; a writer that fills one chunk switches to a
// resumable session and sends `chunk_size` chunks (a 256 KiB multiple) one at a time, so it holds at most one
// chunk. A chunk whose attempt failed is resent from the offset the session reports (308 + Range), never
// blindly. The final chunk carries X-Goog-Hash: crc32c of the whole object, and the stored object's crc32c is
// checked against ours. Downloads ask for the stored bytes (Accept-Encoding: gzip) and check x-goog-hash
// crc32c for whole objects.
//
// Endpoint: GcsStoreOptions::endpoint, else STORAGE_EMULATOR_HOST, else https://storage.googleapis.com;
// unlike Google's libraries Sluice keeps sending its access token to an overridden endpoint (tests then
// exercise the production path), and sends it nowhere else: a session URI on another host is refused.
//
// Thread-safe: one store serves many threads; a writer is used by one thread at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gcp/credentials.h"
#include "gcp/executor.h"
#include "http/transport.h"
#include "objstore/gcs/gcs_request.h"
#include "objstore/object_store.h"

namespace sluice::objstore::gcs {

struct GcsStoreOptions {
  std::string bucket;
  /// Keys are relative to this prefix ("" = bucket root); leading/trailing '/' are ignored.
  std::string prefix;
  /// "" = STORAGE_EMULATOR_HOST (from `env`) or https://storage.googleapis.com; e.g. "http://127.0.0.1:4443".
  std::string endpoint;
  /// CMEK for created objects ("" = Google-managed keys).
  std::string kms_key_name;
  /// Resumable chunk size: a multiple of 256 KiB. Also the size below which a writer does a simple upload.
  uint64_t chunk_size = 8 * 1024 * 1024;
  /// Objects per list page (GCS allows at most 1000).
  int list_page_size = 1000;
  gcp::RetryPolicy retry;
  /// Used when Create() is given no transport.
  http::TransportOptions transport;
  /// Where STORAGE_EMULATOR_HOST is read from (tests pass their own).
  gcp::EnvGetter env = gcp::SystemEnv();
  /// Backoff sleeps (tests make them instant); default really sleeps.
  std::function<void(std::chrono::milliseconds)> sleep;
};

class GcsObjectStore final : public ObjectStore {
 public:
  /// Validates options (bucket name, chunk size, endpoint) and builds the store. kInvalidArgument says which.
  static Result<std::unique_ptr<GcsObjectStore>> Create(
      GcsStoreOptions options, std::shared_ptr<gcp::TokenProvider> tokens,
      std::shared_ptr<http::HttpTransport> transport = nullptr);

  std::string Describe() const override;
  Result<ObjectInfo> Head(std::string_view key) override;
  Result<std::string> Get(std::string_view key, uint64_t offset = 0,
                          std::optional<uint64_t> length = std::nullopt) override;
  /// Resumes with a Range request pinned to the first response's generation when the connection breaks
  /// mid-body.
  Status GetStreaming(std::string_view key, const std::function<bool(std::string_view)>& sink) override;
  Result<ObjectInfo> Put(std::string_view key, std::string data, const PutOptions& options = {}) override;
  Result<std::unique_ptr<ObjectWriter>> NewWriter(std::string_view key,
                                                  const PutOptions& options = {}) override;
  Result<std::vector<ObjectInfo>> List(std::string_view prefix) override;
  Status ListEach(std::string_view prefix, std::string_view start_after,
                  const std::function<bool(const ObjectInfo&)>& fn) override;
  Status Delete(std::string_view key) override;

  /// Which of `permissions` (e.g. "storage.objects.create") Sluice's account has on the bucket.
  Result<std::vector<std::string>> TestIamPermissions(const std::vector<std::string>& permissions);

  const GcsStoreOptions& options() const { return options_; }
  const GcsRequestContext& request_context() const { return ctx_; }
  std::string FullKey(std::string_view key) const { return key_prefix_ + std::string(key); }

 private:
  friend class GcsWriter;
  GcsObjectStore(GcsStoreOptions options, GcsRequestContext ctx,
                 std::shared_ptr<http::HttpTransport> transport, std::shared_ptr<gcp::TokenProvider> tokens);
  /// Sends through the executor; errors get Explain()ed.
  Result<http::OutboundResponse> Call(const gcp::RequestFactory& factory, const gcp::CallOptions& call,
                                      std::string_view full_key) const;
  /// Adds what to check to a failed call's error (the role to grant, the bucket to create).
  Error Explain(Error error, std::string_view full_key) const;
  Result<ObjectInfo> SimpleUpload(const std::string& full_key, std::string_view data,
                                  const PutOptions& options);
  /// Checks a created object against the CRC32C we computed and returns its info (relative key).
  Result<ObjectInfo> CheckCreated(const http::OutboundResponse& response, const std::string& full_key,
                                  uint32_t crc) const;
  std::string RelativeKey(std::string_view full_key) const;

  GcsStoreOptions options_;
  GcsRequestContext ctx_;
  std::string key_prefix_;  // "" or "<prefix>/"
  std::shared_ptr<http::HttpTransport> transport_;
  std::shared_ptr<gcp::TokenProvider> tokens_;
  gcp::Executor executor_;
};

/// Role advice for a missing GCS permission: storage.objects.create → "Storage Object Creator
/// (roles/storage.objectCreator)"; get/list → Viewer; delete/update → Admin. "" for other permissions.
std::string RoleForPermission(std::string_view permission);

}  // namespace sluice::objstore::gcs
