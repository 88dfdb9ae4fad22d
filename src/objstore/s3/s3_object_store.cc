#include "objstore/s3/s3_object_store.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/crypto.h"
#include "objstore/s3/s3_xml.h"

namespace sluice::objstore::s3 {
namespace {

// Bounds on loops driven by the server's answers, so a misbehaving endpoint cannot spin us forever.
constexpr int kMaxListPages = 10'000'000;
constexpr int kMaxStreamResumes = 5;
// A writer's first buffer starts small: most objects Sluice writes (manifests, small partitions) are far below
// one part, and std::string grows geometrically for the rest.
constexpr uint64_t kInitialReserve = 256 * 1024;
// Slices copied and checksummed together (fits in a core's L2).
constexpr uint64_t kChecksumSlice = 128 * 1024;

std::string TrimSlashes(std::string_view s) {
  while (!s.empty() && s.front() == '/') s.remove_prefix(1);
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return std::string(s);
}

uint64_t ParseUint(std::string_view s) {
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') break;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

void ReadSseHeaders(const http::OutboundResponse& response, ObjectInfo& info) {
  info.server_side_encryption = std::string(response.Header("x-amz-server-side-encryption"));
  info.kms_key_id = std::string(response.Header("x-amz-server-side-encryption-aws-kms-key-id"));
}

// ---------------------------------------------------------------------------------------------------------------
// Multipart writer

// Recycles part buffers. A fresh multi-MiB allocation is mmap'ed and zero-filled by the kernel page by page on
// first touch; on this class of (virtualised) machine those page faults cost more CPU than SHA-256 of the data.
// Reusing at most max_parts_in_flight + 1 buffers keeps pages mapped and the memory bound unchanged.
class PartBufferPool {
 public:
  explicit PartBufferPool(size_t max_free) : max_free_(max_free) {}

  /// A cleared buffer with at least `capacity` bytes reserved; a recycled one when available, else a new one with
  /// `fresh_capacity` reserved (growing geometrically later).
  std::string Take(uint64_t capacity, uint64_t fresh_capacity) {
    std::string s;
    {
      std::lock_guard lock(mu_);
      if (!free_.empty()) {
        s = std::move(free_.back());
        free_.pop_back();
      }
    }
    s.clear();
    s.reserve(s.capacity() > 0 ? capacity : fresh_capacity);
    return s;
  }

  void Give(std::string s) {
    std::lock_guard lock(mu_);
    if (free_.size() < max_free_) free_.push_back(std::move(s));
  }

  /// Wraps `s` for a request body; when the last reference goes (the upload finished, retries included), the
  /// buffer comes back here. The pool is shared, so it may outlive the writer.
  static std::shared_ptr<const std::string> Share(const std::shared_ptr<PartBufferPool>& pool, std::string s) {
    auto* raw = new std::string(std::move(s));
    return std::shared_ptr<const std::string>(raw, [pool](const std::string* p) {
      pool->Give(std::move(*const_cast<std::string*>(p)));
      delete p;
    });
  }

 private:
  std::mutex mu_;
  size_t max_free_;
  std::vector<std::string> free_;
};

class S3Writer final : public ObjectWriter {
 public:
  S3Writer(S3ObjectStore* store, std::string full_key, PutOptions options)
      : store_(store),
        full_key_(std::move(full_key)),
        options_(std::move(options)),
        sizer_(store->options_.part_size, options_.size_hint),
        buffers_(store->buffers_),
        signed_payload_(store->ctx_.payload_signing == PayloadSigning::kSigned),
        part_sha256_(std::make_unique<Sha256Hasher>()) {
    buffer_ = buffers_->Take(sizer_.PartSize(1), std::min<uint64_t>(sizer_.PartSize(1), kInitialReserve));
  }

  ~S3Writer() override {
    if (state_ == State::kOpen) Abort();
  }

  Status Write(std::string_view data) override {
    if (state_ != State::kOpen) return InvalidArgument(fmt::format("write to a finished upload of {}", full_key_));
    while (!data.empty()) {
      uint64_t room = sizer_.PartSize(next_part_) - buffer_.size();
      // Copy and checksum in cache-sized slices: the bytes are hashed while still in cache instead of being
      // read back from memory by a second pass over the whole part.
      size_t take = static_cast<size_t>(std::min<uint64_t>({room, data.size(), kChecksumSlice}));
      buffer_.append(data.data(), take);
      std::string_view slice(buffer_.data() + buffer_.size() - take, take);
      if (signed_payload_) {
        part_sha256_->Update(slice);
      } else {
        part_crc32c_ = Crc32c(slice, part_crc32c_);
      }
      data.remove_prefix(take);
      total_ += take;
      // A full part is sent only once more data arrives, so the final part is never empty.
      if (!data.empty() && buffer_.size() == sizer_.PartSize(next_part_)) {
        Status st = SendBufferedPart();
        if (!st.ok()) return Fail(st.error());
      }
    }
    return OkStatus();
  }

  Result<ObjectInfo> Complete() override {
    if (state_ != State::kOpen) return InvalidArgument(fmt::format("Complete of a finished upload of {}", full_key_));
    if (upload_id_.empty()) {
      // Smaller than one part: a single PutObject (cheaper, and atomic like any PUT).
      state_ = State::kDone;
      std::string sha256_hex = signed_payload_ ? HexEncode(part_sha256_->Finish()) : std::string();
      return store_->PutFullKey(full_key_, PartBufferPool::Share(buffers_, std::move(buffer_)), options_, sha256_hex);
    }
    if (!buffer_.empty()) {
      Status st = SendBufferedPart();
      if (!st.ok()) return Fail(st.error());
    }
    Status waited = WaitForParts(0);
    if (!waited.ok()) return Fail(waited.error());

    std::vector<CompletedPart> parts;
    {
      std::lock_guard lock(mu_);
      parts = parts_;
    }
    S3Request req = BuildCompleteMultipartUpload(store_->ctx_, full_key_, upload_id_, parts);
    aws::CallOptions call;
    call.error_in_200_body = true;  // S3 answers 200 first and may report failure in the body
    auto resp = store_->Send(req, std::move(call));
    if (!resp.ok()) return Fail(resp.error());
    auto etag = ParseCompleteMultipartUpload(resp->body);
    if (!etag.ok()) return Fail(etag.error());
    state_ = State::kDone;
    ObjectInfo info;
    info.key = store_->RelativeKey(full_key_);
    info.size = total_;
    info.etag = *etag;
    ReadSseHeaders(*resp, info);
    return info;
  }

  void Abort() override {
    if (state_ == State::kDone || state_ == State::kAborted) return;
    state_ = State::kAborted;
    (void)WaitForParts(0);  // part tasks reference this writer
    buffer_ = std::string();
    if (upload_id_.empty()) return;
    S3Request req = BuildAbortMultipartUpload(store_->ctx_, full_key_, upload_id_);
    aws::CallOptions call;
    call.total_timeout = std::chrono::seconds(30);  // best effort: do not hold the caller for long
    auto resp = store_->Send(req, std::move(call));
    if (!resp.ok()) {
      // Expected with the customer policy of SPEC §5 (no s3:AbortMultipartUpload): the parts stay until the
      // bucket's lifecycle rule for incomplete multipart uploads removes them. The object itself never appears.
      spdlog::warn("abandoned multipart upload of {} could not be aborted ({}); its parts remain until the bucket's "
                   "lifecycle rule removes incomplete multipart uploads",
                   store_->ResourceArn(store_->RelativeKey(full_key_)), resp.error().ToString());
    }
  }

 private:
  enum class State { kOpen, kDone, kAborted };

  Error Fail(Error e) {
    if (state_ == State::kOpen) Abort();
    return e;
  }

  Status StartUpload() {
    S3Request req = BuildCreateMultipartUpload(store_->ctx_, full_key_, options_);
    SLUICE_ASSIGN_OR_RETURN(auto resp, store_->Send(req));
    SLUICE_ASSIGN_OR_RETURN(upload_id_, ParseInitiateMultipartUpload(resp.body));
    return OkStatus();
  }

  // Blocks until at most `max_in_flight` parts are uploading; returns the first part failure.
  Status WaitForParts(int max_in_flight) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ <= max_in_flight; });
    if (failure_) return *failure_;
    return OkStatus();
  }

  Status SendBufferedPart() {
    if (upload_id_.empty()) SLUICE_TRY(StartUpload());
    if (next_part_ > kMaxParts) {
      return Error(ErrorCode::kTooLarge,
                   fmt::format("{} exceeds S3's limit of {} parts ({} bytes so far); set a size hint or a larger "
                               "part size",
                               full_key_, kMaxParts, total_));
    }
    // Bounded memory: wait for a slot before this buffer's memory is handed over and a new one allocated.
    SLUICE_TRY(WaitForParts(store_->options_.max_parts_in_flight - 1));
    int part_number = next_part_++;
    auto body = PartBufferPool::Share(buffers_, std::move(buffer_));
    buffer_ = buffers_->Take(sizer_.PartSize(next_part_), sizer_.PartSize(next_part_));
    std::string sha256_hex;
    std::string crc;
    if (signed_payload_) {
      sha256_hex = HexEncode(part_sha256_->Finish());
      part_sha256_ = std::make_unique<Sha256Hasher>();
    } else {
      crc = Crc32cBase64(part_crc32c_);
      part_crc32c_ = 0;
    }
    {
      std::lock_guard lock(mu_);
      ++in_flight_;
      if (parts_.size() < static_cast<size_t>(part_number)) parts_.resize(part_number);
    }
    store_->pool_.Submit([this, part_number, body = std::move(body), crc = std::move(crc),
                          sha256_hex = std::move(sha256_hex)]() mutable {
      UploadPart(part_number, body, crc, sha256_hex);
    });
    return OkStatus();
  }

  // Runs on the worker pool.
  void UploadPart(int part_number, const std::shared_ptr<const std::string>& body, const std::string& crc,
                  const std::string& sha256_hex) {
    bool skip;
    {
      std::lock_guard lock(mu_);
      skip = failure_.has_value();  // the upload is doomed: do not spend bandwidth on it
    }
    Result<http::OutboundResponse> resp = Error(ErrorCode::kCancelled, "skipped after an earlier part failed");
    if (!skip) {
      S3Request req = BuildUploadPart(store_->ctx_, full_key_, upload_id_, part_number, body, crc, sha256_hex);
      resp = store_->Send(req);
    }
    std::lock_guard lock(mu_);
    if (resp.ok()) {
      parts_[part_number - 1] = CompletedPart{part_number, std::string(resp->Header("etag")), crc};
      if (parts_[part_number - 1].etag.empty() && !failure_) {
        failure_ = Error(ErrorCode::kTransient, fmt::format("UploadPart {} of {} answered without an ETag",
                                                            part_number, full_key_));
      }
    } else if (!failure_) {
      failure_ = resp.error().WithContext(fmt::format("part {} of {}", part_number, full_key_));
    }
    --in_flight_;
    cv_.notify_all();
  }

  S3ObjectStore* store_;
  std::string full_key_;
  PutOptions options_;
  PartSizer sizer_;
  std::shared_ptr<PartBufferPool> buffers_;
  const bool signed_payload_;
  // Checksum of the part being buffered: SHA-256 for signed payloads, CRC32C for UNSIGNED-PAYLOAD.
  std::unique_ptr<Sha256Hasher> part_sha256_;
  uint32_t part_crc32c_ = 0;
  State state_ = State::kOpen;
  std::string buffer_;
  std::string upload_id_;
  int next_part_ = 1;
  uint64_t total_ = 0;

  std::mutex mu_;  // guards the fields below, shared with part tasks
  std::condition_variable cv_;
  int in_flight_ = 0;
  std::optional<Error> failure_;
  std::vector<CompletedPart> parts_;
};

// ---------------------------------------------------------------------------------------------------------------
// Store

Result<std::unique_ptr<S3ObjectStore>> S3ObjectStore::Create(S3StoreOptions options,
                                                             std::shared_ptr<aws::CredentialsProvider> credentials,
                                                             std::shared_ptr<http::HttpTransport> transport) {
  if (options.bucket.empty()) return InvalidArgument("S3 bucket is empty");
  if (!credentials) return InvalidArgument("S3 store needs a credentials provider");
  SLUICE_TRY(ValidatePartSize(options.part_size));
  if (options.max_parts_in_flight < 1 || options.max_parts_in_flight > 64) {
    return InvalidArgument("max_parts_in_flight must be between 1 and 64");
  }
  if (options.encryption.mode != Encryption::Mode::kKms && !options.encryption.kms_key_id.empty()) {
    return InvalidArgument("a KMS key id is only valid with kms encryption");
  }
  S3RequestContext ctx;
  ctx.bucket = options.bucket;
  SLUICE_ASSIGN_OR_RETURN(ctx.endpoint,
                          ResolveEndpoint(options.bucket, options.region, options.endpoint, options.addressing));
  ctx.encryption = options.encryption;
  ctx.payload_signing = options.payload_signing;
  // S3-compatible endpoints without a region still need one in the signature scope.
  if (options.region.empty()) options.region = "us-east-1";
  if (!transport) transport = http::MakeCurlTransport(options.transport);
  return std::unique_ptr<S3ObjectStore>(
      new S3ObjectStore(std::move(options), std::move(ctx), std::move(transport), std::move(credentials)));
}

namespace {
aws::Executor::Options ExecutorOptions(const S3StoreOptions& options, std::shared_ptr<http::HttpTransport> transport,
                                       std::shared_ptr<aws::CredentialsProvider> credentials) {
  aws::Executor::Options o;
  o.transport = std::move(transport);
  o.credentials = std::move(credentials);
  o.signing = aws::SigningOptions::S3(options.region);
  o.retry = options.retry;
  return o;
}
}  // namespace

S3ObjectStore::S3ObjectStore(S3StoreOptions options, S3RequestContext ctx,
                             std::shared_ptr<http::HttpTransport> transport,
                             std::shared_ptr<aws::CredentialsProvider> credentials)
    : options_(std::move(options)),
      ctx_(std::move(ctx)),
      key_prefix_(TrimSlashes(options_.prefix).empty() ? "" : TrimSlashes(options_.prefix) + "/"),
      transport_(transport),
      executor_(ExecutorOptions(options_, std::move(transport), std::move(credentials))),
      buffers_(std::make_shared<PartBufferPool>(static_cast<size_t>(options_.upload_threads) + 1)),
      pool_(options_.upload_threads) {}

S3ObjectStore::~S3ObjectStore() = default;

std::string S3ObjectStore::Describe() const {
  std::string d = fmt::format("s3://{}/{} ({})", options_.bucket, TrimSlashes(options_.prefix), options_.region);
  if (!options_.endpoint.empty()) d += " at " + options_.endpoint;
  return d;
}

std::string S3ObjectStore::FullKey(std::string_view key) const { return key_prefix_ + std::string(key); }

std::string S3ObjectStore::RelativeKey(std::string_view full_key) const {
  if (full_key.starts_with(key_prefix_)) full_key.remove_prefix(key_prefix_.size());
  return std::string(full_key);
}

std::string S3ObjectStore::ResourceArn(std::string_view key) const {
  if (key.empty() && key_prefix_.empty()) return "arn:aws:s3:::" + options_.bucket;
  return fmt::format("arn:aws:s3:::{}/{}", options_.bucket, FullKey(key));
}

Result<http::OutboundResponse> S3ObjectStore::Send(const S3Request& request, aws::CallOptions call) const {
  call.operation = std::string(Traits(request.op).name);
  call.payload_hash = request.payload_hash;
  return executor_.Call([&request]() -> Result<http::OutboundRequest> { return request.http; }, call);
}

Result<ObjectInfo> S3ObjectStore::Head(std::string_view key) {
  if (key.empty()) return InvalidArgument("object key is empty");
  std::string full = FullKey(key);
  SLUICE_ASSIGN_OR_RETURN(auto resp, Send(BuildHeadObject(ctx_, full)));
  ObjectInfo info;
  info.key = std::string(key);
  info.size = ParseUint(resp.Header("content-length"));
  info.etag = StripQuotes(resp.Header("etag"));
  info.last_modified_ms = ParseS3Time(resp.Header("last-modified"));
  ReadSseHeaders(resp, info);
  return info;
}

Result<std::string> S3ObjectStore::Get(std::string_view key, uint64_t offset, std::optional<uint64_t> length) {
  if (key.empty()) return InvalidArgument("object key is empty");
  if (length.has_value() && *length == 0) return std::string();
  std::string full = FullKey(key);
  SLUICE_ASSIGN_OR_RETURN(auto resp, Send(BuildGetObject(ctx_, full, offset, length)));
  if ((offset > 0 || length.has_value()) && resp.status != 206) {
    // A server that ignores Range sends the whole object; cut it here rather than return the wrong bytes.
    if (offset > resp.body.size()) return InvalidArgument(fmt::format("range beyond the end of {}", key));
    return resp.body.substr(offset, length.value_or(std::string::npos));
  }
  return std::move(resp.body);
}

Status S3ObjectStore::GetStreaming(std::string_view key, const std::function<bool(std::string_view)>& sink) {
  if (key.empty()) return InvalidArgument("object key is empty");
  std::string full = FullKey(key);
  uint64_t delivered = 0;
  std::string etag;
  bool cancelled = false;
  for (int resume = 0;; ++resume) {
    S3Request req = BuildGetObject(ctx_, full, delivered);
    // Resume only the same version of the object: S3 answers 412 if it changed meanwhile.
    if (!etag.empty()) req.http.headers.emplace_back("If-Match", "\"" + etag + "\"");
    aws::CallOptions call;
    call.sink = [&](std::string_view chunk) {
      delivered += chunk.size();
      if (!sink(chunk)) {
        cancelled = true;
        return false;
      }
      return true;
    };
    auto resp = Send(req, std::move(call));
    if (resp.ok()) return OkStatus();
    if (cancelled) return Error(ErrorCode::kCancelled, fmt::format("reading {} stopped by the consumer", key));
    // The executor retries failures before the first byte; after that, we resume from where we are.
    if (!IsRetryable(resp.error().code) || delivered == 0 || resume >= kMaxStreamResumes) return resp.error();
    if (etag.empty()) {
      // Learn the version to pin from a HEAD (the failed response's headers are not available). The object could
      // in theory have been replaced between the GET and this HEAD; pipelines never overwrite what they read.
      SLUICE_ASSIGN_OR_RETURN(auto info, Head(key));
      etag = info.etag;
    }
    spdlog::warn("GetObject {}: connection broke after {} bytes ({}); resuming with a range request",
                 ResourceArn(key), delivered, resp.error().ToString());
  }
}

Result<ObjectInfo> S3ObjectStore::PutFullKey(const std::string& full_key, std::shared_ptr<const std::string> data,
                                             const PutOptions& options, std::string_view sha256_hex) {
  uint64_t size = data->size();
  SLUICE_ASSIGN_OR_RETURN(auto resp, Send(BuildPutObject(ctx_, full_key, std::move(data), options, sha256_hex)));
  ObjectInfo info;
  info.key = RelativeKey(full_key);
  info.size = size;
  info.etag = StripQuotes(resp.Header("etag"));
  ReadSseHeaders(resp, info);
  return info;
}

Result<ObjectInfo> S3ObjectStore::Put(std::string_view key, std::string data, const PutOptions& options) {
  if (key.empty()) return InvalidArgument("object key is empty");
  return PutFullKey(FullKey(key), std::make_shared<const std::string>(std::move(data)), options);
}

Result<std::unique_ptr<ObjectWriter>> S3ObjectStore::NewWriter(std::string_view key, const PutOptions& options) {
  if (key.empty()) return InvalidArgument("object key is empty");
  SLUICE_TRY(ValidateSizeHint(options.size_hint));
  return std::unique_ptr<ObjectWriter>(std::make_unique<S3Writer>(this, FullKey(key), options));
}

Result<std::vector<ObjectInfo>> S3ObjectStore::List(std::string_view prefix) {
  std::vector<ObjectInfo> out;
  SLUICE_TRY(ListEach(prefix, {}, [&](const ObjectInfo& info) {
    out.push_back(info);
    return true;
  }));
  return out;
}

Status S3ObjectStore::ListEach(std::string_view prefix, std::string_view start_after,
                               const std::function<bool(const ObjectInfo&)>& fn) {
  std::string full_prefix = FullKey(prefix);
  std::string full_start = start_after.empty() ? std::string() : FullKey(start_after);
  std::string token;
  for (int page = 0; page < kMaxListPages; ++page) {
    SLUICE_ASSIGN_OR_RETURN(auto resp, Send(BuildListObjectsV2(ctx_, full_prefix, token, full_start)));
    SLUICE_ASSIGN_OR_RETURN(ListPage parsed, ParseListObjectsV2(resp.body));
    for (auto& info : parsed.objects) {
      info.key = RelativeKey(info.key);
      if (!fn(info)) return OkStatus();
    }
    if (!parsed.is_truncated) return OkStatus();
    if (parsed.next_continuation_token == token) {
      return Error(ErrorCode::kPermanent, "ListObjectsV2 returned the same continuation token twice");
    }
    token = std::move(parsed.next_continuation_token);
  }
  return Error(ErrorCode::kPermanent, fmt::format("listing {} did not end after {} pages", full_prefix, kMaxListPages));
}

Status S3ObjectStore::Delete(std::string_view key) {
  if (key.empty()) return InvalidArgument("object key is empty");
  auto resp = Send(BuildDeleteObject(ctx_, FullKey(key)));
  if (!resp.ok() && resp.error().code != ErrorCode::kNotFound) return resp.error();
  return OkStatus();
}

}  // namespace sluice::objstore::s3
