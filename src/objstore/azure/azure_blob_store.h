// AzureBlobStore: ObjectStore on the Azure Blob REST API (block blobs).
//
//   azure::AzureStoreOptions o;
//   o.account = "customeracct"; o.container = "exports"; o.prefix = "sluice";
//   o.encryption.scope = "sluice-scope";                              // optional
//   auto cred = ::sluice::azure::StorageCredential::Token(tokens);    // or SharedKey / Sas
//   auto store = azure::AzureBlobStore::Create(o, cred);
//   (*store)->Put("1234/2024/01/02/part-0.json.gz", data);
//
// Requests are built by blob_request.h and sent by ::sluice::azure::Executor, the single retry layer (408, 429,
// 5xx, resets; a 401 to a bearer token fetches a new one once). Small objects go up with one Put Blob carrying
// their Content-MD5; a writer holds at most one block (`block_size`) in memory, stages each full block with
// Put Block (its own Content-MD5; a failed block is sent again by the executor, the same ID making the retry
// idempotent) and commits the ordered list with Put Block List. Nothing is visible until the commit;
// uncommitted blocks of an abandoned writer are discarded by Azure after a week.
//
// Endpoint: AzureStoreOptions::endpoint (path-style for Azurite: http://127.0.0.1:PORT/devstoreaccount1), else
// https://<account>.blob.core.windows.net.
//
// Thread-safe: one store serves many threads; a writer is used by one thread at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "azure/credentials.h"
#include "azure/executor.h"
#include "http/transport.h"
#include "objstore/azure/blob_request.h"
#include "objstore/object_store.h"

namespace sluice::objstore::azure {

struct AzureStoreOptions {
  std::string account;
  std::string container;
  /// Keys are relative to this prefix ("" = container root); leading/trailing '/' are ignored.
  std::string prefix;
  /// "" = https://<account>.blob.core.windows.net; e.g. "http://127.0.0.1:10000/devstoreaccount1".
  std::string endpoint;
  BlobEncryption encryption;
  /// Block size of a writer; also the size below which a writer does one Put Blob.
  uint64_t block_size = 8 * 1024 * 1024;
  /// Blobs per List Blobs page (Azure allows at most 5000).
  int list_page_size = 5000;
  cloud::RetryPolicy retry;
  /// Used when Create() is given no transport.
  http::TransportOptions transport;
  /// Backoff sleeps (tests make them instant); default really sleeps.
  cloud::Sleeper sleep;
};

class AzureBlobStore final : public ObjectStore {
 public:
  /// Validates options (account, container, endpoint, block size) and builds the store. kInvalidArgument says
  /// which.
  static Result<std::unique_ptr<AzureBlobStore>> Create(AzureStoreOptions options,
                                                        ::sluice::azure::StorageCredential credential,
                                                        std::shared_ptr<http::HttpTransport> transport = nullptr);

  std::string Describe() const override;
  Result<ObjectInfo> Head(std::string_view key) override;
  Result<std::string> Get(std::string_view key, uint64_t offset = 0,
                          std::optional<uint64_t> length = std::nullopt) override;
  /// Resumes with a ranged GET pinned to the first answer's ETag (If-Match) when the connection breaks.
  Status GetStreaming(std::string_view key, const std::function<bool(std::string_view)>& sink) override;
  Result<ObjectInfo> Put(std::string_view key, std::string data, const PutOptions& options = {}) override;
  Result<std::unique_ptr<ObjectWriter>> NewWriter(std::string_view key, const PutOptions& options = {}) override;
  Result<std::vector<ObjectInfo>> List(std::string_view prefix) override;
  Status ListEach(std::string_view prefix, std::string_view start_after,
                  const std::function<bool(const ObjectInfo&)>& fn) override;
  Status Delete(std::string_view key) override;

  const AzureStoreOptions& options() const { return options_; }
  std::string FullKey(std::string_view key) const { return key_prefix_ + std::string(key); }

 private:
  friend class AzureBlobWriter;
  AzureBlobStore(AzureStoreOptions options, BlobRequestContext ctx, ::sluice::azure::StorageCredential credential,
                 std::shared_ptr<http::HttpTransport> transport);
  /// Sends through the executor; errors get the blob's URL and what to check.
  Result<http::OutboundResponse> Call(const http::OutboundRequest& request, const ::sluice::azure::CallOptions& call,
                                      std::string_view full_key) const;
  std::string RelativeKey(std::string_view full_key) const;

  AzureStoreOptions options_;
  BlobRequestContext ctx_;
  std::string key_prefix_;  // "" or "<prefix>/"
  ::sluice::azure::StorageCredential credential_;
  ::sluice::azure::Executor executor_;
};

}  // namespace sluice::objstore::azure
