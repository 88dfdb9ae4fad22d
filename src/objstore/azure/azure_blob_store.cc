#include "objstore/azure/azure_blob_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/crypto.h"

namespace sluice::objstore::azure {
namespace {

using ::sluice::azure::CallOptions;

constexpr int kMaxListPages = 1'000'000;
constexpr int kMaxStreamResumes = 5;

std::string TrimSlashes(std::string_view s) {
  while (!s.empty() && s.front() == '/') s.remove_prefix(1);
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

/// One blob being written: at most one block buffered; full blocks staged with Put Block, committed in order.
class AzureBlobWriter final : public ObjectWriter {
 public:
  AzureBlobWriter(AzureBlobStore* store, std::string full_key, PutOptions options)
      : store_(store), full_key_(std::move(full_key)), options_(std::move(options)) {}

  Status Write(std::string_view data) override {
    const uint64_t block = store_->options_.block_size;
    while (!data.empty()) {
      size_t take = std::min<uint64_t>(data.size(), block - buffer_.size());
      buffer_.append(data.substr(0, take));
      data.remove_prefix(take);
      if (buffer_.size() == block) SLUICE_TRY(StageBlock());
    }
    return OkStatus();
  }

  Result<ObjectInfo> Complete() override {
    if (block_ids_.empty()) return store_->Put(store_->RelativeKey(full_key_), std::move(buffer_), options_);
    if (!buffer_.empty()) SLUICE_TRY(StageBlock());
    http::OutboundRequest request = BuildPutBlockList(store_->ctx_, full_key_, block_ids_, options_);
    SLUICE_ASSIGN_OR_RETURN(auto response,
                            store_->Call(request, CallOptions{.operation = "Put Block List"}, full_key_));
    ObjectInfo info = InfoFromHeaders(response, store_->RelativeKey(full_key_));
    info.size = total_;
    return info;
  }

  // Uncommitted blocks cannot be deleted one by one; Azure discards them a week after the last Put Block.
  void Abort() override { buffer_.clear(); }

 private:
  Status StageBlock() {
    if (block_ids_.size() >= kMaxBlocks) {
      return Error(ErrorCode::kTooLarge,
                   fmt::format("{}: more than {} blocks of {} bytes; raise the block size", full_key_, kMaxBlocks,
                               store_->options_.block_size));
    }
    std::string id = BlockId(static_cast<uint32_t>(block_ids_.size()));
    std::string md5 = ContentMd5(buffer_);
    total_ += buffer_.size();
    // Built once: every attempt re-sends the same shared bytes under the same block ID (idempotent).
    http::OutboundRequest request =
        BuildPutBlock(store_->ctx_, full_key_, id, http::RequestBody::FromString(std::move(buffer_)), md5);
    buffer_.clear();
    SLUICE_TRY(store_->Call(request, CallOptions{.operation = "Put Block"}, full_key_));
    block_ids_.push_back(std::move(id));
    return OkStatus();
  }

  AzureBlobStore* store_;
  std::string full_key_;
  PutOptions options_;
  std::string buffer_;
  std::vector<std::string> block_ids_;
  uint64_t total_ = 0;
};

AzureBlobStore::AzureBlobStore(AzureStoreOptions options, BlobRequestContext ctx,
                               ::sluice::azure::StorageCredential credential,
                               std::shared_ptr<http::HttpTransport> transport)
    : options_(std::move(options)),
      ctx_(std::move(ctx)),
      key_prefix_(TrimSlashes(options_.prefix).empty() ? "" : TrimSlashes(options_.prefix) + "/"),
      credential_(std::move(credential)),
      executor_([&] {
        ::sluice::azure::Executor::Options o;
        o.transport = std::move(transport);
        o.credential = credential_;
        o.retry = options_.retry;
        o.sleep = options_.sleep;
        return o;
      }()) {}

Result<std::unique_ptr<AzureBlobStore>> AzureBlobStore::Create(AzureStoreOptions options,
                                                               ::sluice::azure::StorageCredential credential,
                                                               std::shared_ptr<http::HttpTransport> transport) {
  SLUICE_TRY(ValidateAccountName(options.account));
  SLUICE_TRY(ValidateContainerName(options.container));
  if (options.block_size < 1 || options.block_size > kMaxBlockSize) {
    return InvalidArgument(fmt::format("Azure block size {} must be 1..{} bytes", options.block_size, kMaxBlockSize));
  }
  if (options.list_page_size < 1 || options.list_page_size > kMaxListPageSize) {
    return InvalidArgument(fmt::format("Azure list page size {} must be 1..{}", options.list_page_size,
                                       kMaxListPageSize));
  }
  if (credential.kind() == ::sluice::azure::StorageCredential::Kind::kSharedKey &&
      credential.account() != options.account) {
    return InvalidArgument(fmt::format("the access key is for storage account {}, not {}", credential.account(),
                                       options.account));
  }
  if (!options.encryption.customer_key.empty()) {
    auto key = Base64Decode(options.encryption.customer_key.Reveal());
    if (!key || key->size() != 32) {
      return InvalidArgument("the customer-provided encryption key must be a base64 AES-256 key (32 bytes)");
    }
  }
  BlobRequestContext ctx;
  SLUICE_ASSIGN_OR_RETURN(ctx.endpoint, ResolveEndpoint(options.endpoint, options.account));
  ctx.container = options.container;
  ctx.encryption = options.encryption;
  if (!transport) transport = http::MakeCurlTransport(options.transport);
  return std::unique_ptr<AzureBlobStore>(
      new AzureBlobStore(std::move(options), std::move(ctx), std::move(credential), std::move(transport)));
}

std::string AzureBlobStore::Describe() const {
  std::string d = fmt::format("azure://{}/{}/{}", options_.account, ctx_.container, TrimSlashes(options_.prefix));
  if (!options_.endpoint.empty()) d += fmt::format(" (endpoint {})", ctx_.endpoint);
  return d;
}

std::string AzureBlobStore::RelativeKey(std::string_view full_key) const {
  if (full_key.starts_with(key_prefix_)) full_key.remove_prefix(key_prefix_.size());
  return std::string(full_key);
}

Result<http::OutboundResponse> AzureBlobStore::Call(const http::OutboundRequest& request, const CallOptions& call,
                                                    std::string_view full_key) const {
  auto response = executor_.Call([&] { return Result<http::OutboundRequest>(request); }, call);
  if (!response.ok()) {
    return response.error().WithContext(fmt::format("azure://{}/{}/{} with {}", options_.account, ctx_.container,
                                                    full_key, credential_.Describe()));
  }
  return response;
}

Result<ObjectInfo> AzureBlobStore::Head(std::string_view key) {
  const std::string full = FullKey(key);
  SLUICE_ASSIGN_OR_RETURN(auto response,
                          Call(BuildGetProperties(ctx_, full), CallOptions{.operation = "Get Blob Properties"}, full));
  return InfoFromHeaders(response, key);
}

Result<std::string> AzureBlobStore::Get(std::string_view key, uint64_t offset, std::optional<uint64_t> length) {
  if (length && *length == 0) return std::string();
  const std::string full = FullKey(key);
  SLUICE_ASSIGN_OR_RETURN(auto response,
                          Call(BuildGetBlob(ctx_, full, offset, length), CallOptions{.operation = "Get Blob"}, full));
  return std::move(response.body);
}

Status AzureBlobStore::GetStreaming(std::string_view key, const std::function<bool(std::string_view)>& sink) {
  const std::string full = FullKey(key);
  uint64_t delivered = 0;
  std::string etag;
  for (int resume = 0;; ++resume) {
    const uint64_t from = delivered;
    http::OutboundRequest request = BuildGetBlob(ctx_, full, from, std::nullopt);
    if (!etag.empty()) request.headers.emplace_back("If-Match", "\"" + etag + "\"");
    CallOptions call{.operation = "Get Blob", .sink = [&](std::string_view chunk) {
                       delivered += chunk.size();
                       return sink(chunk);
                     }};
    auto response = Call(request, call, full);
    if (response.ok()) return OkStatus();
    const Error& e = response.error();
    if (!IsRetryable(e.code) || delivered == from || resume >= kMaxStreamResumes) return e;
    spdlog::warn("{} (resuming at byte {})", e.ToString(), delivered);
    if (etag.empty()) {
      // Pin the version before resuming, so a concurrent overwrite cannot splice two blobs.
      SLUICE_ASSIGN_OR_RETURN(ObjectInfo info, Head(key));
      etag = info.etag;
    }
  }
}

Result<ObjectInfo> AzureBlobStore::Put(std::string_view key, std::string data, const PutOptions& options) {
  const std::string full = FullKey(key);
  const uint64_t size = data.size();
  std::string md5 = ContentMd5(data);
  http::OutboundRequest request =
      BuildPutBlob(ctx_, full, http::RequestBody::FromString(std::move(data)), options, md5);
  SLUICE_ASSIGN_OR_RETURN(auto response, Call(request, CallOptions{.operation = "Put Blob"}, full));
  ObjectInfo info = InfoFromHeaders(response, key);
  info.size = size;
  return info;
}

Result<std::unique_ptr<ObjectWriter>> AzureBlobStore::NewWriter(std::string_view key, const PutOptions& options) {
  return std::unique_ptr<ObjectWriter>(new AzureBlobWriter(this, FullKey(key), options));
}

Result<std::vector<ObjectInfo>> AzureBlobStore::List(std::string_view prefix) {
  std::vector<ObjectInfo> out;
  SLUICE_TRY(ListEach(prefix, {}, [&](const ObjectInfo& info) {
    out.push_back(info);
    return true;
  }));
  return out;
}

Status AzureBlobStore::ListEach(std::string_view prefix, std::string_view start_after,
                                const std::function<bool(const ObjectInfo&)>& fn) {
  const std::string full_prefix = FullKey(prefix);
  const std::string full_start = start_after.empty() ? std::string() : FullKey(start_after);
  std::string marker;
  for (int page = 0; page < kMaxListPages; ++page) {
    SLUICE_ASSIGN_OR_RETURN(auto response, Call(BuildListBlobs(ctx_, full_prefix, marker, options_.list_page_size),
                                                CallOptions{.operation = "List Blobs"}, full_prefix));
    SLUICE_ASSIGN_OR_RETURN(ListBlobsPage listed, ParseListBlobs(response.body));
    for (auto& info : listed.items) {
      if (!full_start.empty() && info.key <= full_start) continue;
      info.key = RelativeKey(info.key);
      if (!fn(info)) return OkStatus();
    }
    if (listed.next_marker.empty()) return OkStatus();
    if (listed.next_marker == marker) {
      return Error(ErrorCode::kPermanent, fmt::format("listing azure://{}/{}/{} returned the same marker twice",
                                                      options_.account, ctx_.container, full_prefix));
    }
    marker = std::move(listed.next_marker);
  }
  return Error(ErrorCode::kPermanent, fmt::format("listing azure://{}/{}/{} did not end after {} pages",
                                                  options_.account, ctx_.container, full_prefix, kMaxListPages));
}

Status AzureBlobStore::Delete(std::string_view key) {
  const std::string full = FullKey(key);
  auto response = Call(BuildDeleteBlob(ctx_, full), CallOptions{.operation = "Delete Blob"}, full);
  if (!response.ok() && response.error().code != ErrorCode::kNotFound) return response.error();
  return OkStatus();
}

}  // namespace sluice::objstore::azure
