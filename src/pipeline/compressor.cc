#include "pipeline/compressor.h"

#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include <cstring>
#include <limits>
#include <system_error>

#include <fmt/format.h>

#include "common/thread_name.h"
#include "common/vector_state.h"

namespace sluice::pipeline {
namespace {

/// isa-l's stateless deflate takes 32-bit lengths.
constexpr size_t kMaxIgzipBlock = std::numeric_limits<uint32_t>::max() / 2;

class IgzipCodec final : public BlockCodec {
 public:
  explicit IgzipCodec(int level) : BlockCodec(Compression::kGzip, level) {
    switch (level) {
      case 1: level_buf_.resize(ISAL_DEF_LVL1_DEFAULT); break;
      case 2: level_buf_.resize(ISAL_DEF_LVL2_DEFAULT); break;
      case 3: level_buf_.resize(ISAL_DEF_LVL3_DEFAULT); break;
      default: break;  // level 0 needs no level buffer
    }
    stream_ = std::make_unique<isal_zstream>();  // ~80 KiB of state: keep it off the stack
  }

  size_t MaxCompressedSize(size_t n) const override {
    // isa-l falls back to stored blocks (5 bytes per 64 KiB) when data does not compress; plus the gzip header
    // and trailer (18 bytes) and slack for the final block's header.
    return n + 5 * (n / 65535 + 1) + 18 + 1024;
  }

  Result<size_t> Compress(std::string_view input, char* out, size_t capacity) override {
    if (input.size() > kMaxIgzipBlock) {
      return InvalidArgument(fmt::format("gzip block of {} bytes is larger than the {} byte maximum", input.size(),
                                         kMaxIgzipBlock));
    }
    isal_zstream& s = *stream_;
    isal_deflate_stateless_init(&s);
    s.level = static_cast<uint32_t>(level());
    s.level_buf = level_buf_.empty() ? nullptr : level_buf_.data();
    s.level_buf_size = static_cast<uint32_t>(level_buf_.size());
    s.gzip_flag = IGZIP_GZIP;  // generic header: no name, mtime 0, so equal input gives equal bytes
    s.flush = NO_FLUSH;
    s.end_of_stream = 1;
    s.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(input.data()));
    s.avail_in = static_cast<uint32_t>(input.size());
    s.next_out = reinterpret_cast<uint8_t*>(out);
    s.avail_out = static_cast<uint32_t>(std::min<size_t>(capacity, std::numeric_limits<uint32_t>::max()));
    const int rc = isal_deflate_stateless(&s);
    ClearUpperVectorState();  // isa-l leaves the AVX upper state dirty (common/vector_state.h)
    if (rc != COMP_OK) {
      return Internal(fmt::format("isa-l gzip compression of a {} byte block failed (code {}{})", input.size(), rc,
                                  rc == STATELESS_OVERFLOW ? ", output buffer too small" : ""));
    }
    return static_cast<size_t>(s.total_out);
  }

 private:
  std::vector<uint8_t> level_buf_;
  std::unique_ptr<isal_zstream> stream_;
};

class ZstdCodec final : public BlockCodec {
 public:
  explicit ZstdCodec(int level) : BlockCodec(Compression::kZstd, level), cctx_(ZSTD_createCCtx()) {}
  ~ZstdCodec() override { ZSTD_freeCCtx(cctx_); }

  Status Init() {
    if (cctx_ == nullptr) return Internal("cannot allocate a zstd compression context (out of memory)");
    for (auto [param, value] : {std::pair{ZSTD_c_compressionLevel, level()},
                                std::pair{ZSTD_c_checksumFlag, 1},  // readers verify each frame
                                std::pair{ZSTD_c_contentSizeFlag, 1}}) {
      size_t rc = ZSTD_CCtx_setParameter(cctx_, param, value);
      if (ZSTD_isError(rc)) {
        return InvalidArgument(fmt::format("zstd rejected parameter {}={}: {}", static_cast<int>(param), value,
                                           ZSTD_getErrorName(rc)));
      }
    }
    return OkStatus();
  }

  size_t MaxCompressedSize(size_t n) const override { return ZSTD_compressBound(n); }

  Result<size_t> Compress(std::string_view input, char* out, size_t capacity) override {
    size_t rc = ZSTD_compress2(cctx_, out, capacity, input.data(), input.size());
    if (ZSTD_isError(rc)) {
      return Internal(fmt::format("zstd compression of a {} byte block failed: {}", input.size(),
                                  ZSTD_getErrorName(rc)));
    }
    return rc;
  }

 private:
  ZSTD_CCtx* cctx_;
};

class IdentityCodec final : public BlockCodec {
 public:
  IdentityCodec() : BlockCodec(Compression::kNone, 0) {}
  size_t MaxCompressedSize(size_t n) const override { return n; }
  Result<size_t> Compress(std::string_view input, char* out, size_t capacity) override {
    if (capacity < input.size()) return Internal("output buffer smaller than the block");
    if (!input.empty()) std::memcpy(out, input.data(), input.size());
    return input.size();
  }
};

}  // namespace

int DefaultLevel(Compression compression) {
  switch (compression) {
    case Compression::kGzip: return kDefaultGzipLevel;
    case Compression::kZstd: return kDefaultZstdLevel;
    case Compression::kNone: return 0;
  }
  return 0;
}

Status ValidateLevel(Compression compression, int level) {
  switch (compression) {
    case Compression::kGzip:
      if (level < kMinGzipLevel || level > kMaxGzipLevel) {
        return InvalidArgument(fmt::format("gzip level {} is out of range: use {}-{} (isa-l igzip's scale), or -1 "
                                           "for the default {}",
                                           level, kMinGzipLevel, kMaxGzipLevel, kDefaultGzipLevel));
      }
      return OkStatus();
    case Compression::kZstd:
      if (level < kMinZstdLevel || level > kMaxZstdLevel || level == 0) {
        return InvalidArgument(fmt::format("zstd level {} is out of range: use {}..-1 or 1..{}, or -1 for the "
                                           "default {}",
                                           level, kMinZstdLevel, kMaxZstdLevel, kDefaultZstdLevel));
      }
      return OkStatus();
    case Compression::kNone:
      return OkStatus();
  }
  return InvalidArgument("unknown compression");
}

Result<int> ResolveLevel(Compression compression, int level) {
  // -1 is the "default" marker for gzip and none; for zstd it is also a valid fast level, but the marker wins so
  // every codec reads -1 the same way.
  if (level == -1) return DefaultLevel(compression);
  SLUICE_TRY(ValidateLevel(compression, level));
  return level;
}

Result<std::unique_ptr<BlockCodec>> BlockCodec::Create(Compression compression, int level) {
  SLUICE_ASSIGN_OR_RETURN(int resolved, ResolveLevel(compression, level));
  switch (compression) {
    case Compression::kGzip:
      return std::unique_ptr<BlockCodec>(new IgzipCodec(resolved));
    case Compression::kZstd: {
      auto codec = std::make_unique<ZstdCodec>(resolved);
      SLUICE_TRY(codec->Init());
      return std::unique_ptr<BlockCodec>(std::move(codec));
    }
    case Compression::kNone:
      return std::unique_ptr<BlockCodec>(new IdentityCodec());
  }
  return InvalidArgument("unknown compression");
}

Status BlockCodec::CompressAppend(std::string_view input, std::string& out) {
  const size_t base = out.size();
  out.resize(base + MaxCompressedSize(input.size()));
  auto n = Compress(input, out.data() + base, out.size() - base);
  if (!n.ok()) {
    out.resize(base);
    return std::move(n).error();
  }
  out.resize(base + *n);
  return OkStatus();
}

// ---- BlockCompressor ----------------------------------------------------------------------------------------

struct BlockCompressor::Slot {
  enum class State { kFree, kQueued, kCompressing, kDone };
  State state = State::kFree;
  std::string input;
  std::unique_ptr<char[]> output;  // not a std::string: growing one would zero-fill every block
  size_t output_capacity = 0;
  size_t output_size = 0;
  Status status;

  /// Compresses `input` into `output` (growing it when needed). Runs on a worker or the caller thread.
  void Run(BlockCodec& codec) {
    const size_t need = codec.MaxCompressedSize(input.size());
    if (output_capacity < need) {
      output.reset(new char[need]);
      output_capacity = need;
    }
    auto n = codec.Compress(input, output.get(), output_capacity);
    if (n.ok()) {
      output_size = *n;
      status = OkStatus();
    } else {
      output_size = 0;
      status = std::move(n).error();
    }
  }
};

BlockCompressor::BlockCompressor(const Options& options, Sink sink) : options_(options), sink_(std::move(sink)) {}

Result<std::unique_ptr<BlockCompressor>> BlockCompressor::Create(const Options& options, Sink sink) {
  if (options.threads < 0 || options.max_blocks_in_flight < 0) {
    return InvalidArgument(fmt::format("compressor threads ({}) and blocks in flight ({}) must not be negative",
                                       options.threads, options.max_blocks_in_flight));
  }
  if (!sink) return InvalidArgument("compressor needs a sink");
  SLUICE_TRY(ResolveLevel(options.compression, options.level));
  std::unique_ptr<BlockCompressor> c(new BlockCompressor(options, std::move(sink)));
  SLUICE_TRY(c->Start());
  return c;
}

Status BlockCompressor::Start() {
  current_.reserve(options_.block_bytes);
  if (options_.compression == Compression::kNone) return OkStatus();  // Submit hands blocks straight to the sink
  const int codecs = std::max(options_.threads, 1);
  for (int i = 0; i < codecs; ++i) {
    SLUICE_ASSIGN_OR_RETURN(auto codec, BlockCodec::Create(options_.compression, options_.level));
    codecs_.push_back(std::move(codec));
  }
  int in_flight = options_.max_blocks_in_flight;
  if (in_flight == 0) in_flight = options_.threads == 0 ? 1 : 2 * options_.threads;
  for (int i = 0; i < in_flight; ++i) slots_.push_back(std::make_unique<Slot>());
  for (int i = 0; i < options_.threads; ++i) {
    try {
      workers_.emplace_back([this, codec = codecs_[static_cast<size_t>(i)].get()] {
        SetCurrentThreadName("sl-compress");
        WorkerLoop(codec);
      });
    } catch (const std::system_error& e) {
      return Error(ErrorCode::kUnavailable, fmt::format("cannot start a compression thread: {}", e.what()));
    }
  }
  return OkStatus();
}

BlockCompressor::~BlockCompressor() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void BlockCompressor::WorkerLoop(BlockCodec* codec) {
  for (;;) {
    Slot* slot = nullptr;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      slot = queue_.front();
      queue_.pop_front();
      slot->state = Slot::State::kCompressing;
    }
    slot->Run(*codec);
    {
      std::lock_guard lock(mu_);
      slot->state = Slot::State::kDone;
    }
    done_cv_.notify_one();
  }
}

Status BlockCompressor::Fail(Error error) {
  failed_ = error;
  return error;
}

Status BlockCompressor::DeliverOldest(bool wait, bool* delivered) {
  Slot& slot = *slots_[delivered_ % slots_.size()];
  {
    std::unique_lock lock(mu_);
    if (wait) {
      done_cv_.wait(lock, [&] { return slot.state == Slot::State::kDone; });
    } else if (slot.state != Slot::State::kDone) {
      if (delivered != nullptr) *delivered = false;
      return OkStatus();
    }
    // Only this thread queues a slot again, so the slot's buffers are ours until the next Submit.
    slot.state = Slot::State::kFree;
  }
  ++delivered_;
  if (delivered != nullptr) *delivered = true;
  if (!slot.status.ok()) return Fail(slot.status.error());
  const std::string_view bytes(slot.output.get(), slot.output_size);
  Status st = sink_(bytes);
  if (!st.ok()) return Fail(std::move(st).error());
  bytes_out_ += bytes.size();
  return OkStatus();
}

Status BlockCompressor::Submit() {
  if (!failed_.ok()) return failed_;
  if (current_.empty()) return OkStatus();
  bytes_in_ += current_.size();

  if (options_.compression == Compression::kNone) {
    Status st = sink_(current_);
    if (!st.ok()) return Fail(std::move(st).error());
    bytes_out_ += current_.size();
    current_.clear();
    return OkStatus();
  }

  // Make room: the ring slot for this sequence number must have been delivered.
  while (submitted_ - delivered_ >= slots_.size()) SLUICE_TRY(DeliverOldest(/*wait=*/true, nullptr));
  Slot& slot = *slots_[submitted_ % slots_.size()];
  slot.input.swap(current_);  // the slot's previous input buffer (capacity kept) becomes the new current block
  current_.clear();
  if (current_.capacity() < options_.block_bytes) current_.reserve(options_.block_bytes);
  ++submitted_;

  if (workers_.empty()) {
    slot.Run(*codecs_.front());
    slot.state = Slot::State::kDone;
    return DeliverOldest(/*wait=*/true, nullptr);
  }
  {
    std::lock_guard lock(mu_);
    slot.state = Slot::State::kQueued;
    queue_.push_back(&slot);
  }
  work_cv_.notify_one();
  // Pass on whatever has finished, so output reaches the sink (and the network) as early as possible.
  while (delivered_ < submitted_) {
    bool delivered = false;
    SLUICE_TRY(DeliverOldest(/*wait=*/false, &delivered));
    if (!delivered) break;
  }
  return OkStatus();
}

Status BlockCompressor::Flush() {
  SLUICE_TRY(Submit());
  while (delivered_ < submitted_) SLUICE_TRY(DeliverOldest(/*wait=*/true, nullptr));
  return OkStatus();
}

void BlockCompressor::Cancel() {
  current_.clear();
  if (slots_.empty()) return;
  std::unique_lock lock(mu_);
  for (Slot* slot : queue_) slot->state = Slot::State::kFree;
  queue_.clear();
  // A worker busy with a slot owns its buffers until it marks the slot done.
  done_cv_.wait(lock, [&] {
    for (const auto& slot : slots_) {
      if (slot->state == Slot::State::kCompressing) return false;
    }
    return true;
  });
  for (auto& slot : slots_) slot->state = Slot::State::kFree;
  delivered_ = submitted_;
}

}  // namespace sluice::pipeline
