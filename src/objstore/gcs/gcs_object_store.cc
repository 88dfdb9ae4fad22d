#include "objstore/gcs/gcs_object_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "common/crypto.h"

namespace sluice::objstore::gcs {
namespace {

constexpr int kMaxListPages = 1'000'000;  // a bound on a server that never stops paging
constexpr int kMaxStreamResumes = 3;

std::string TrimSlashes(std::string_view s) {
  while (!s.empty() && s.front() == '/') s.remove_prefix(1);
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return std::string(s);
}

std::string Boundary() { return "sluice_boundary_" + RandomHex(96); }

}  // namespace

std::string RoleForPermission(std::string_view permission) {
  if (permission == "storage.objects.create") return "Storage Object Creator (roles/storage.objectCreator)";
  if (permission == "storage.objects.get" || permission == "storage.objects.list") {
    return "Storage Object Viewer (roles/storage.objectViewer)";
  }
  if (permission == "storage.objects.delete" || permission == "storage.objects.update") {
    return "Storage Object Admin (roles/storage.objectAdmin)";
  }
  return "";
}

// A streaming upload: simple upload when everything fits in one chunk, else a resumable session fed chunk by
// chunk. `buffer_` holds the bytes from `offset_` (the session's persisted size) on; it never exceeds one
// chunk plus what a single Write() adds before the chunk is flushed.
class GcsWriter final : public ObjectWriter {
 public:
  GcsWriter(GcsObjectStore* store, std::string full_key, PutOptions options)
      : store_(store), full_key_(std::move(full_key)), options_(std::move(options)) {
    buffer_.reserve(store_->options_.chunk_size);
  }
  ~GcsWriter() override {
    if (!done_) Abort();
  }

  Status Write(std::string_view data) override {
    if (done_) return Error(ErrorCode::kInternal, "GcsWriter::Write after Complete/Abort");
    if (!failure_.ok()) return failure_;
    const uint64_t chunk = store_->options_.chunk_size;
    while (!data.empty()) {
      size_t take =
          static_cast<size_t>(std::min<uint64_t>(data.size(), chunk - std::min(chunk, buffer_.size())));
      if (take == 0) take = data.size() < chunk ? data.size() : static_cast<size_t>(chunk);
      crc_ = Crc32c(data.substr(0, take), crc_);
      buffer_.append(data.substr(0, take));
      data.remove_prefix(take);
      while (buffer_.size() >= chunk) {
        Status s = SendChunk(/*final=*/false);
        if (!s.ok()) {
          failure_ = s;
          return s;
        }
      }
    }
    return OkStatus();
  }

  Result<ObjectInfo> Complete() override {
    if (done_) return Error(ErrorCode::kInternal, "GcsWriter::Complete called twice");
    if (!failure_.ok()) return failure_.error();
    if (session_.empty()) {
      done_ = true;
      return store_->SimpleUpload(full_key_, buffer_, options_);
    }
    Status s = SendChunk(/*final=*/true);
    done_ = true;
    if (!s.ok()) {
      CancelSession();
      return s.error();
    }
    return store_->CheckCreated(final_response_, full_key_, crc_);
  }

  void Abort() override {
    done_ = true;
    CancelSession();
    buffer_.clear();
  }

 private:
  Status StartSession() {
    gcp::CallOptions call;
    call.operation = "resumable upload start";
    auto request = BuildStartResumable(store_->ctx_, full_key_, options_);
    SLUICE_ASSIGN_OR_RETURN(
        auto response, store_->Call([&] { return Result<http::OutboundRequest>(request); }, call, full_key_));
    std::string location(response.Header("location"));
    if (location.empty()) {
      return Error(ErrorCode::kPermanent,
                   fmt::format("starting a resumable upload of gs://{}/{} gave no session URI",
                               store_->ctx_.bucket, full_key_));
    }
    // The bearer token goes only to the endpoint Sluice was configured with.
    if (gcp::UrlAuthority(location) != gcp::UrlAuthority(store_->ctx_.endpoint) ||
        location.substr(0, location.find("://")) !=
            store_->ctx_.endpoint.substr(0, store_->ctx_.endpoint.find("://"))) {
      return Error(
          ErrorCode::kPermanent,
          fmt::format("the resumable session for gs://{}/{} is on {}, not on the configured endpoint {}; "
                      "refusing to send credentials there (check gcs_endpoint / STORAGE_EMULATOR_HOST)",
                      store_->ctx_.bucket, full_key_, gcp::UrlAuthority(location), store_->ctx_.endpoint));
    }
    session_ = std::move(location);
    return OkStatus();
  }

  // Moves `offset_` to what the session reports it has persisted and drops those bytes from the buffer.
  Status Acknowledge(const http::OutboundResponse& response) {
    SLUICE_ASSIGN_OR_RETURN(uint64_t persisted, PersistedBytes(response));
    if (persisted < offset_ || persisted > offset_ + buffer_.size()) {
      return Error(
          ErrorCode::kPermanent,
          fmt::format("resumable upload of gs://{}/{}: the session reports {} bytes persisted, but {} were "
                      "acknowledged and {} sent; the upload must start again",
                      store_->ctx_.bucket, full_key_, persisted, offset_, offset_ + buffer_.size()));
    }
    buffer_.erase(0, static_cast<size_t>(persisted - offset_));
    offset_ = persisted;
    return OkStatus();
  }

  // Sends one chunk (the whole buffer when final) and retries it from the offset the session reports.
  Status SendChunk(bool final) {
    if (session_.empty()) SLUICE_TRY(StartSession());
    const uint64_t chunk = store_->options_.chunk_size;
    const uint64_t target_end =
        final ? offset_ + buffer_.size()
              : offset_ + std::min<uint64_t>(buffer_.size(), chunk) / kChunkGranularity * kChunkGranularity;
    const std::optional<uint64_t> total = final ? std::optional<uint64_t>(target_end) : std::nullopt;
    const std::string crc = final ? Crc32cBase64(crc_) : std::string();

    gcp::CallOptions call;
    call.operation = final ? "resumable upload final chunk" : "resumable upload chunk";
    call.success_statuses = {308};
    call.before_retry = [&]() -> Result<std::optional<http::OutboundResponse>> {
      gcp::CallOptions query;
      query.operation = "resumable upload status";
      query.success_statuses = {308};
      SLUICE_ASSIGN_OR_RETURN(auto status,
                              store_->executor_.SendOnce(BuildQueryResumable(session_, total), query));
      if (status.status != 308) return std::optional<http::OutboundResponse>(std::move(status));  // complete
      SLUICE_TRY(Acknowledge(status));
      spdlog::info("resumable upload of gs://{}/{}: resending from byte {} (session has {} bytes)",
                   store_->ctx_.bucket, full_key_, offset_, offset_);
      if (!final && offset_ >= target_end) return std::optional<http::OutboundResponse>(std::move(status));
      return std::optional<http::OutboundResponse>();
    };
    auto factory = [&]() -> Result<http::OutboundRequest> {
      const uint64_t n = target_end - offset_;
      http::RequestBody body;
      body.length = n;
      const char* base = buffer_.data();
      body.open = [base, n]() {
        auto pos = std::make_shared<uint64_t>(0);
        return [base, n, pos](char* buf, size_t len) -> Result<size_t> {
          size_t k = static_cast<size_t>(std::min<uint64_t>(len, n - *pos));
          std::memcpy(buf, base + *pos, k);
          *pos += k;
          return k;
        };
      };
      if (n == 0) body = http::RequestBody::FromString("");
      return BuildUploadChunk(session_, std::move(body), offset_, total, crc);
    };
    SLUICE_ASSIGN_OR_RETURN(auto response, store_->Call(factory, call, full_key_));
    if (response.status != 308) {
      if (!final) {
        return Error(ErrorCode::kPermanent,
                     fmt::format("resumable upload of gs://{}/{} completed before its last chunk (HTTP {})",
                                 store_->ctx_.bucket, full_key_, response.status));
      }
      final_response_ = std::move(response);
      return OkStatus();
    }
    const uint64_t before = offset_;
    SLUICE_TRY(Acknowledge(response));
    // The session may keep less than was sent; the caller (or the final loop) sends the rest. A session that
    // keeps nothing, again and again, is broken rather than slow.
    stalls_ = offset_ > before ? 0 : stalls_ + 1;
    if (stalls_ > kMaxStalls) {
      return Error(ErrorCode::kTransient,
                   fmt::format("resumable upload of gs://{}/{} makes no progress at byte {}",
                               store_->ctx_.bucket, full_key_, offset_));
    }
    if (final) return SendChunk(true);
    return OkStatus();
  }

  void CancelSession() {
    if (session_.empty()) return;
    gcp::CallOptions call;
    call.operation = "resumable upload cancel";
    call.success_statuses = {499};
    auto r = store_->executor_.SendOnce(BuildCancelResumable(session_), call);
    if (!r.ok()) spdlog::debug("cancelling the resumable upload of {}: {}", full_key_, r.error().ToString());
    session_.clear();
  }

  GcsObjectStore* store_;
  std::string full_key_;
  PutOptions options_;
  std::string buffer_;
  uint64_t offset_ = 0;  // bytes the session has persisted
  uint32_t crc_ = 0;     // CRC32C of everything written
  std::string session_;
  http::OutboundResponse final_response_;
  Status failure_ = OkStatus();
  int stalls_ = 0;
  bool done_ = false;
  static constexpr int kMaxStalls = 5;
};

GcsObjectStore::GcsObjectStore(GcsStoreOptions options, GcsRequestContext ctx,
                               std::shared_ptr<http::HttpTransport> transport,
                               std::shared_ptr<gcp::TokenProvider> tokens)
    : options_(std::move(options)),
      ctx_(std::move(ctx)),
      key_prefix_(TrimSlashes(options_.prefix).empty() ? "" : TrimSlashes(options_.prefix) + "/"),
      transport_(std::move(transport)),
      tokens_(std::move(tokens)),
      executor_([&] {
        gcp::Executor::Options o;
        o.transport = transport_;
        o.tokens = tokens_;
        o.retry = options_.retry;
        o.sleep = options_.sleep;
        return o;
      }()) {}

Result<std::unique_ptr<GcsObjectStore>> GcsObjectStore::Create(
    GcsStoreOptions options, std::shared_ptr<gcp::TokenProvider> tokens,
    std::shared_ptr<http::HttpTransport> transport) {
  SLUICE_TRY(ValidateBucketName(options.bucket));
  if (!tokens) return InvalidArgument("a GCS store needs Sluice's Google credentials (a token provider)");
  if (options.chunk_size < kChunkGranularity || options.chunk_size % kChunkGranularity != 0) {
    return InvalidArgument(fmt::format("GCS chunk size {} must be a positive multiple of 256 KiB ({})",
                                       options.chunk_size, kChunkGranularity));
  }
  if (options.list_page_size < 1 || options.list_page_size > 1000) {
    return InvalidArgument(fmt::format("GCS list page size {} must be 1..1000", options.list_page_size));
  }
  std::string emulator = options.env ? options.env("STORAGE_EMULATOR_HOST").value_or("") : "";
  GcsRequestContext ctx;
  SLUICE_ASSIGN_OR_RETURN(ctx.endpoint, ResolveEndpoint(options.endpoint, emulator));
  ctx.bucket = options.bucket;
  ctx.kms_key_name = options.kms_key_name;
  if (!transport) transport = http::MakeCurlTransport(options.transport);
  return std::unique_ptr<GcsObjectStore>(
      new GcsObjectStore(std::move(options), std::move(ctx), std::move(transport), std::move(tokens)));
}

std::string GcsObjectStore::Describe() const {
  std::string d = fmt::format("gs://{}/{}", ctx_.bucket, TrimSlashes(options_.prefix));
  if (ctx_.endpoint != kDefaultEndpoint) d += fmt::format(" (endpoint {})", ctx_.endpoint);
  return d;
}

std::string GcsObjectStore::RelativeKey(std::string_view full_key) const {
  if (full_key.starts_with(key_prefix_)) full_key.remove_prefix(key_prefix_.size());
  return std::string(full_key);
}

Error GcsObjectStore::Explain(Error error, std::string_view full_key) const {
  const std::string where = fmt::format("gs://{}/{}", ctx_.bucket, full_key);
  if (error.code == ErrorCode::kAccessDenied) {
    std::string role = RoleForPermission(error.provider_code);
    std::string email = tokens_ ? tokens_->Email() : "";
    if (email.empty()) email = "Sluice's service account";
    if (!role.empty()) {
      error.message += fmt::format("; grant {} to {} on gs://{}", role, email, ctx_.bucket);
    }
  } else if (error.code == ErrorCode::kNotFound && error.message.find("bucket") != std::string::npos) {
    error.message += fmt::format("; check that the bucket gs://{} exists", ctx_.bucket);
  }
  return error.WithContext(where);
}

Result<http::OutboundResponse> GcsObjectStore::Call(const gcp::RequestFactory& factory,
                                                    const gcp::CallOptions& call,
                                                    std::string_view full_key) const {
  auto response = executor_.Call(factory, call);
  if (!response.ok()) return Explain(response.error(), full_key);
  return response;
}

Result<ObjectInfo> GcsObjectStore::CheckCreated(const http::OutboundResponse& response,
                                                const std::string& full_key, uint32_t crc) const {
  SLUICE_ASSIGN_OR_RETURN(GcsObject obj, ParseObjectResource(response.body));
  const std::string ours = Crc32cBase64(crc);
  if (!obj.crc32c.empty() && obj.crc32c != ours) {
    return Error(
        ErrorCode::kPermanent,
        fmt::format("gs://{}/{}: the stored object's CRC32C {} differs from the uploaded bytes' {}; the "
                    "upload was corrupted on the way",
                    ctx_.bucket, full_key, obj.crc32c, ours));
  }
  obj.info.key = RelativeKey(obj.info.key);
  return obj.info;
}

Result<ObjectInfo> GcsObjectStore::SimpleUpload(const std::string& full_key, std::string_view data,
                                                const PutOptions& options) {
  const uint32_t crc = Crc32c(data);
  // Built once: the body is shared by every attempt.
  http::OutboundRequest request =
      BuildMultipartUpload(ctx_, full_key, data, options, Crc32cBase64(crc), Boundary());
  gcp::CallOptions call;
  call.operation = "objects.insert";
  SLUICE_ASSIGN_OR_RETURN(auto response,
                          Call([&] { return Result<http::OutboundRequest>(request); }, call, full_key));
  return CheckCreated(response, full_key, crc);
}

Result<ObjectInfo> GcsObjectStore::Head(std::string_view key) {
  const std::string full = FullKey(key);
  gcp::CallOptions call;
  call.operation = "objects.get";
  SLUICE_ASSIGN_OR_RETURN(
      auto response,
      Call([&] { return Result<http::OutboundRequest>(BuildGetMetadata(ctx_, full)); }, call, full));
  SLUICE_ASSIGN_OR_RETURN(GcsObject obj, ParseObjectResource(response.body));
  obj.info.key = RelativeKey(obj.info.key);
  return obj.info;
}

Result<std::string> GcsObjectStore::Get(std::string_view key, uint64_t offset,
                                        std::optional<uint64_t> length) {
  if (length && *length == 0) return std::string();
  const std::string full = FullKey(key);
  gcp::CallOptions call;
  call.operation = "objects.get media";
  SLUICE_ASSIGN_OR_RETURN(
      auto response,
      Call([&] { return Result<http::OutboundRequest>(BuildDownload(ctx_, full, offset, length)); }, call,
           full));
  // x-goog-hash is the whole object's: it can only be checked when the whole stored object came back.
  const std::string expected = GoogHashValue(response.Header("x-goog-hash"), "crc32c");
  if (offset == 0 && !length && response.status == 200 && !expected.empty() &&
      response.Header("warning").find("gunzipped") == std::string_view::npos) {
    const std::string actual = Crc32cBase64(Crc32c(response.body));
    if (actual != expected) {
      return Error(ErrorCode::kTransient,
                   fmt::format("gs://{}/{}: downloaded bytes have CRC32C {} but GCS reports {}; "
                               "the download was corrupted on the way",
                               ctx_.bucket, full, actual, expected));
    }
  }
  return std::move(response.body);
}

Status GcsObjectStore::GetStreaming(std::string_view key, const std::function<bool(std::string_view)>& sink) {
  const std::string full = FullKey(key);
  uint64_t delivered = 0;
  uint32_t crc = 0;
  int64_t generation = 0;
  std::string expected;
  bool checkable = true;
  for (int resume = 0;; ++resume) {
    gcp::CallOptions call;
    call.operation = "objects.get media";
    call.sink = [&](std::string_view chunk) {
      crc = Crc32c(chunk, crc);
      delivered += chunk.size();
      return sink(chunk);
    };
    const uint64_t from = delivered;
    auto response = Call(
        [&] {
          return Result<http::OutboundRequest>(BuildDownload(ctx_, full, from, std::nullopt, generation));
        },
        call, full);
    if (response.ok()) {
      if (generation == 0) {
        std::string gen(response->Header("x-goog-generation"));
        generation = gen.empty() ? 0 : std::strtoll(gen.c_str(), nullptr, 10);
      }
      if (expected.empty()) expected = GoogHashValue(response->Header("x-goog-hash"), "crc32c");
      if (response->Header("warning").find("gunzipped") != std::string_view::npos) checkable = false;
      break;
    }
    const Error& e = response.error();
    const bool resumable = IsRetryable(e.code) && delivered > from && resume < kMaxStreamResumes;
    if (!resumable) return e;
    spdlog::warn("{} (resuming at byte {})", e.ToString(), delivered);
    if (generation == 0) {
      // Pin the version before resuming, so a concurrent overwrite cannot splice two objects.
      auto head = Call([&] { return Result<http::OutboundRequest>(BuildGetMetadata(ctx_, full)); },
                       gcp::CallOptions{.operation = "objects.get"}, full);
      if (!head.ok()) return head.error();
      SLUICE_ASSIGN_OR_RETURN(GcsObject obj, ParseObjectResource(head->body));
      generation = obj.generation;
      if (expected.empty()) expected = obj.crc32c;
    }
  }
  if (checkable && !expected.empty() && Crc32cBase64(crc) != expected) {
    return Error(ErrorCode::kTransient,
                 fmt::format("gs://{}/{}: streamed bytes have CRC32C {} but GCS reports {}; "
                             "the download was corrupted on the way",
                             ctx_.bucket, full, Crc32cBase64(crc), expected));
  }
  return OkStatus();
}

Result<ObjectInfo> GcsObjectStore::Put(std::string_view key, std::string data, const PutOptions& options) {
  return SimpleUpload(FullKey(key), data, options);
}

Result<std::unique_ptr<ObjectWriter>> GcsObjectStore::NewWriter(std::string_view key,
                                                                const PutOptions& options) {
  return std::unique_ptr<ObjectWriter>(new GcsWriter(this, FullKey(key), options));
}

Result<std::vector<ObjectInfo>> GcsObjectStore::List(std::string_view prefix) {
  std::vector<ObjectInfo> out;
  SLUICE_TRY(ListEach(prefix, {}, [&](const ObjectInfo& info) {
    out.push_back(info);
    return true;
  }));
  return out;
}

Status GcsObjectStore::ListEach(std::string_view prefix, std::string_view start_after,
                                const std::function<bool(const ObjectInfo&)>& fn) {
  const std::string full_prefix = FullKey(prefix);
  const std::string full_start = start_after.empty() ? std::string() : FullKey(start_after);
  std::string token;
  for (int page = 0; page < kMaxListPages; ++page) {
    gcp::CallOptions call;
    call.operation = "objects.list";
    SLUICE_ASSIGN_OR_RETURN(
        auto response, Call(
                           [&] {
                             return Result<http::OutboundRequest>(
                                 BuildList(ctx_, full_prefix, token, full_start, options_.list_page_size));
                           },
                           call, full_prefix));
    SLUICE_ASSIGN_OR_RETURN(ListPage listed, ParseListPage(response.body));
    for (auto& obj : listed.items) {
      // startOffset is inclusive; start_after is not.
      if (!full_start.empty() && obj.info.key <= full_start) continue;
      obj.info.key = RelativeKey(obj.info.key);
      if (!fn(obj.info)) return OkStatus();
    }
    if (listed.next_page_token.empty()) return OkStatus();
    if (listed.next_page_token == token) {
      return Error(ErrorCode::kPermanent, fmt::format("listing gs://{}/{} returned the same page token twice",
                                                      ctx_.bucket, full_prefix));
    }
    token = std::move(listed.next_page_token);
  }
  return Error(ErrorCode::kPermanent, fmt::format("listing gs://{}/{} did not end after {} pages",
                                                  ctx_.bucket, full_prefix, kMaxListPages));
}

Status GcsObjectStore::Delete(std::string_view key) {
  const std::string full = FullKey(key);
  gcp::CallOptions call;
  call.operation = "objects.delete";
  auto response = Call([&] { return Result<http::OutboundRequest>(BuildDelete(ctx_, full)); }, call, full);
  if (!response.ok() && response.error().code != ErrorCode::kNotFound) return response.error();
  return OkStatus();
}

Result<std::vector<std::string>> GcsObjectStore::TestIamPermissions(
    const std::vector<std::string>& permissions) {
  gcp::CallOptions call;
  call.operation = "buckets.testIamPermissions";
  SLUICE_ASSIGN_OR_RETURN(
      auto response,
      Call([&] { return Result<http::OutboundRequest>(BuildTestIamPermissions(ctx_, permissions)); }, call,
           ""));
  return ParseTestIamPermissions(response.body);
}

}  // namespace sluice::objstore::gcs
