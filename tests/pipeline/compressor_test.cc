#include "pipeline/compressor.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/compression.h"
#include "common/vector_state.h"
#include "decompress_util.h"

namespace sluice::pipeline {
namespace {

using testutil::Decompress;
using testutil::GunzipWithZlib;
using testutil::UnzstdMultiFrame;

/// NDJSON-like text: compressible, with some randomness.
std::string SampleLines(size_t bytes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out;
  while (out.size() < bytes) {
    out += "{\"event_name\":\"Page Viewed\",\"time\":" + std::to_string(1'700'000'000 + rng() % 86400) +
           ",\"distinct_id\":\"user-" + std::to_string(rng() % 100000) + "\",\"properties\":{\"n\":" +
           std::to_string(rng()) + "}}\n";
  }
  out.resize(bytes);
  return out;
}

std::string RandomBytes(size_t bytes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(bytes, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

const Compression kAll[] = {Compression::kGzip, Compression::kZstd, Compression::kNone};

std::string Name(Compression c) {
  switch (c) {
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
    case Compression::kNone: return "none";
  }
  return "?";
}

TEST(BlockCodecTest, RoundTripsEveryCodecAndLevel) {
  const std::vector<std::string> inputs = {"", "x", "hello\n", SampleLines(1 << 20, 1), RandomBytes(300'000, 2)};
  struct Case {
    Compression c;
    int level;
  };
  const Case cases[] = {{Compression::kGzip, -1}, {Compression::kGzip, 0}, {Compression::kGzip, 1},
                        {Compression::kGzip, 2},  {Compression::kGzip, 3}, {Compression::kZstd, -1},
                        {Compression::kZstd, 1},  {Compression::kZstd, 3}, {Compression::kZstd, -5},
                        {Compression::kNone, -1}};
  for (const Case& k : cases) {
    auto codec = BlockCodec::Create(k.c, k.level);
    ASSERT_TRUE(codec.ok()) << Name(k.c) << " " << k.level << ": " << codec.error().ToString();
    for (const std::string& in : inputs) {
      std::string out;
      ASSERT_TRUE((*codec)->CompressAppend(in, out).ok());
      EXPECT_LE(out.size(), (*codec)->MaxCompressedSize(in.size()));
      auto back = Decompress(k.c, out);
      ASSERT_TRUE(back.ok()) << Name(k.c) << " level " << k.level << " size " << in.size() << ": "
                             << back.error().ToString();
      EXPECT_EQ(*back, in) << Name(k.c) << " level " << k.level << " size " << in.size();
    }
  }
}

// isa-l's deflate returns with the AVX upper state dirty; the codec clears it, or every legacy-SSE
// instruction after it on this thread would pay the transition penalty (common/vector_state.h).
TEST(BlockCodecTest, GzipReturnsWithTheUpperVectorStateClean) {
  std::thread t([] {
    auto codec = BlockCodec::Create(Compression::kGzip, -1);
    ASSERT_TRUE(codec.ok());
    const std::string in = SampleLines(1 << 20, 3);
    std::string out;
    ClearUpperVectorState();
    ASSERT_TRUE((*codec)->CompressAppend(in, out).ok());
    EXPECT_FALSE(UpperVectorStateDirty());
  });
  t.join();
}

TEST(BlockCodecTest, CompressesTextAndIsDeterministic) {
  const std::string in = SampleLines(1 << 20, 3);
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    auto a = BlockCodec::Create(c);
    auto b = BlockCodec::Create(c);
    ASSERT_TRUE(a.ok() && b.ok());
    std::string x, y;
    ASSERT_TRUE((*a)->CompressAppend(in, x).ok());
    ASSERT_TRUE((*b)->CompressAppend(in, y).ok());
    EXPECT_EQ(x, y) << Name(c);
    std::string z;
    ASSERT_TRUE((*a)->CompressAppend(in, z).ok());  // a reused codec gives the same bytes
    EXPECT_EQ(x, z) << Name(c);
    EXPECT_LT(x.size() * 3, in.size()) << Name(c) << " should compress NDJSON at least 3x";
  }
  auto gz = BlockCodec::Create(Compression::kGzip);
  std::string member;
  ASSERT_TRUE((*gz)->CompressAppend("abc", member).ok());
  ASSERT_GE(member.size(), 18u);
  EXPECT_TRUE(LooksLikeGzip(member));
  EXPECT_EQ(member.substr(4, 4), std::string(4, '\0')) << "gzip MTIME must be 0 for reproducible files";
}

TEST(BlockCodecTest, RejectsLevelsOutOfRange) {
  for (int level : {-2, 4, 9}) {
    auto c = BlockCodec::Create(Compression::kGzip, level);
    ASSERT_FALSE(c.ok()) << level;
    EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(c.error().message.find("0-3"), std::string::npos) << c.error().message;
  }
  for (int level : {0, 20, -8}) {
    auto c = BlockCodec::Create(Compression::kZstd, level);
    ASSERT_FALSE(c.ok()) << level;
    EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
  }
  EXPECT_EQ(*ResolveLevel(Compression::kGzip, -1), kDefaultGzipLevel);
  EXPECT_EQ(*ResolveLevel(Compression::kZstd, -1), kDefaultZstdLevel);
  EXPECT_EQ(*ResolveLevel(Compression::kZstd, 7), 7);
  EXPECT_TRUE(ValidateLevel(Compression::kNone, 42).ok());
}

struct Collected {
  std::string bytes;
  int calls = 0;
};

/// Feeds `data` to a compressor in blocks of varying size and returns what the sink received.
Result<std::string> CompressThrough(const BlockCompressor::Options& o, const std::string& data,
                                    const std::vector<size_t>& block_sizes, int* sink_calls = nullptr) {
  Collected got;
  auto c = BlockCompressor::Create(o, [&](std::string_view b) {
    got.bytes.append(b);
    ++got.calls;
    return OkStatus();
  });
  if (!c.ok()) return c.error();
  size_t off = 0;
  for (size_t i = 0; off < data.size(); ++i) {
    const size_t n = std::min(block_sizes[i % block_sizes.size()], data.size() - off);
    (*c)->buffer().append(data, off, n);
    off += n;
    SLUICE_TRY((*c)->Submit());
  }
  SLUICE_TRY((*c)->Flush());
  if ((*c)->bytes_in() != data.size()) return Internal("bytes_in does not match");
  if ((*c)->bytes_out() != got.bytes.size()) return Internal("bytes_out does not match");
  if (sink_calls != nullptr) *sink_calls = got.calls;
  return got.bytes;
}

TEST(BlockCompressorTest, ManyBlocksRoundTripInOrderForEveryCodecAndThreadCount) {
  const std::string data = SampleLines(3 << 20, 5) + RandomBytes(200'000, 6) + SampleLines(500'000, 7);
  const std::vector<size_t> sizes = {65536, 1, 4096, 100'000, 12345, 65536, 7};
  for (Compression comp : kAll) {
    for (int threads : {0, 1, 2, 4}) {
      BlockCompressor::Options o{.compression = comp, .threads = threads, .block_bytes = 65536};
      int calls = 0;
      auto out = CompressThrough(o, data, sizes, &calls);
      ASSERT_TRUE(out.ok()) << out.error().ToString();
      auto back = Decompress(comp, *out);
      ASSERT_TRUE(back.ok()) << Name(comp) << " threads " << threads << ": " << back.error().ToString();
      ASSERT_EQ(back->size(), data.size()) << Name(comp) << " threads " << threads;
      EXPECT_TRUE(*back == data) << Name(comp) << " threads " << threads << ": blocks out of order or corrupted";
      if (comp != Compression::kNone) {
        EXPECT_GT(calls, 100) << "one member/frame per block";
      }
    }
  }
}

TEST(BlockCompressorTest, OutputDoesNotDependOnThreadsOrScheduling) {
  // Re-exporting the same data must give the same bytes (and SHA-256), whichever worker compressed which block.
  std::string data;
  for (uint64_t seed = 0; data.size() < (8u << 20); ++seed) data += SampleLines(300'000 + seed * 7919, seed);
  const std::vector<size_t> sizes = {1 << 20};
  for (Compression comp : {Compression::kGzip, Compression::kZstd}) {
    BlockCompressor::Options o{.compression = comp, .threads = 0};
    auto reference = CompressThrough(o, data, sizes);
    ASSERT_TRUE(reference.ok());
    for (int threads : {1, 2, 4, 2, 4}) {
      o.threads = threads;
      auto out = CompressThrough(o, data, sizes);
      ASSERT_TRUE(out.ok());
      EXPECT_TRUE(*out == *reference) << Name(comp) << " threads " << threads << ": " << out->size() << " vs "
                                      << reference->size() << " bytes";
    }
  }
}

TEST(BlockCompressorTest, ConcatenatedGzipMembersReadByZlibLibdeflateAndTheGzipTool) {
  const std::string data = SampleLines(2 << 20, 8);
  BlockCompressor::Options o{.compression = Compression::kGzip, .threads = 2, .block_bytes = 65536};
  auto out = CompressThrough(o, data, {65536});
  ASSERT_TRUE(out.ok());
  auto members = testutil::CountGzipMembers(*out);
  ASSERT_TRUE(members.ok()) << members.error().ToString();
  EXPECT_EQ(*members, 32);  // 2 MiB / 64 KiB

  auto zlib = GunzipWithZlib(*out);
  ASSERT_TRUE(zlib.ok()) << zlib.error().ToString();
  EXPECT_TRUE(*zlib == data);

  auto libdeflate = GunzipBounded(*out, data.size());
  ASSERT_TRUE(libdeflate.ok()) << libdeflate.error().ToString();
  EXPECT_TRUE(*libdeflate == data);

  // The gzip command line tool (Debian's `gzip` is an essential package).
  const auto dir = std::filesystem::temp_directory_path() / ("sluice-gz-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "members.json.gz", std::ios::binary);
    f.write(out->data(), static_cast<std::streamsize>(out->size()));
  }
  const std::string cmd = "gzip -dc '" + (dir / "members.json.gz").string() + "' > '" + (dir / "out").string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(dir / "out", std::ios::binary);
  std::string cli((std::istreambuf_iterator<char>(in)), {});
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(cli == data) << "gzip -dc read " << cli.size() << " of " << data.size() << " bytes";
}

TEST(BlockCompressorTest, ZstdFramesDecodeAsOneStream) {
  const std::string data = SampleLines(1 << 20, 9);
  BlockCompressor::Options o{.compression = Compression::kZstd, .threads = 2, .block_bytes = 65536};
  int calls = 0;
  auto out = CompressThrough(o, data, {65536}, &calls);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(calls, 16);
  // Each frame is complete and knows its size.
  size_t frames = 0;
  for (size_t off = 0; off < out->size(); ++frames) {
    const size_t n = ZSTD_findFrameCompressedSize(out->data() + off, out->size() - off);
    ASSERT_FALSE(ZSTD_isError(n)) << ZSTD_getErrorName(n);
    EXPECT_EQ(ZSTD_getFrameContentSize(out->data() + off, n), 65536u);
    off += n;
  }
  EXPECT_EQ(frames, 16u);
  auto back = UnzstdMultiFrame(*out);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_TRUE(*back == data);
}

TEST(BlockCompressorTest, InFlightBlocksAreBounded) {
  // The sink only runs inside Submit/Flush on this thread; after k submissions at least k - max_in_flight blocks
  // must have reached it, whatever the worker speed.
  for (int threads : {1, 2, 3}) {
    int delivered = 0;
    BlockCompressor::Options o{.compression = Compression::kGzip, .threads = threads, .block_bytes = 65536};
    auto c = BlockCompressor::Create(o, [&](std::string_view) {
      ++delivered;
      return OkStatus();
    });
    ASSERT_TRUE(c.ok());
    const int bound = 2 * threads;
    const std::string block = SampleLines(65536, 10);
    for (int k = 1; k <= 50; ++k) {
      (*c)->buffer() = block;
      ASSERT_TRUE((*c)->Submit().ok());
      EXPECT_GE(delivered, k - bound) << "threads " << threads << " after " << k << " blocks";
    }
    ASSERT_TRUE((*c)->Flush().ok());
    EXPECT_EQ(delivered, 50);
  }
}

TEST(BlockCompressorTest, SinkErrorSurfacesAndSticks) {
  for (int threads : {0, 2}) {
    for (Compression comp : kAll) {
      int calls = 0;
      BlockCompressor::Options o{.compression = comp, .threads = threads, .block_bytes = 65536};
      auto c = BlockCompressor::Create(o, [&](std::string_view) -> Status {
        if (++calls == 3) return Error(ErrorCode::kAccessDenied, "upload denied");
        return OkStatus();
      });
      ASSERT_TRUE(c.ok());
      Status first;
      for (int k = 0; k < 20 && first.ok(); ++k) {
        (*c)->buffer() = SampleLines(65536, static_cast<uint64_t>(k));
        first = (*c)->Submit();
      }
      if (first.ok()) first = (*c)->Flush();
      ASSERT_FALSE(first.ok()) << Name(comp) << " threads " << threads;
      EXPECT_EQ(first.error().code, ErrorCode::kAccessDenied);
      EXPECT_EQ(first.error().message, "upload denied");
      (*c)->buffer() = "more";
      auto again = (*c)->Submit();
      ASSERT_FALSE(again.ok());
      EXPECT_EQ(again.error().message, "upload denied");
      ASSERT_FALSE((*c)->Flush().ok());
      EXPECT_EQ(calls, 3) << "nothing reaches the sink after it failed";
      (*c)->Cancel();  // safe after a failure
    }
  }
}

TEST(BlockCompressorTest, CancelDropsPendingBlocksAndStaysUsable) {
  std::string got;
  BlockCompressor::Options o{.compression = Compression::kGzip, .threads = 2, .block_bytes = 65536};
  auto c = BlockCompressor::Create(o, [&](std::string_view b) {
    got.append(b);
    return OkStatus();
  });
  ASSERT_TRUE(c.ok());
  for (int k = 0; k < 8; ++k) {
    (*c)->buffer() = SampleLines(65536, 20 + static_cast<uint64_t>(k));
    ASSERT_TRUE((*c)->Submit().ok());
  }
  (*c)->buffer() = "partial";
  (*c)->Cancel();
  EXPECT_TRUE((*c)->buffer().empty());
  got.clear();
  const std::string after = SampleLines(200'000, 30);
  (*c)->buffer() = after;
  ASSERT_TRUE((*c)->Flush().ok());
  auto back = GunzipWithZlib(got);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(*back == after);
}

TEST(BlockCompressorTest, RejectsBadOptions) {
  auto sink = [](std::string_view) { return OkStatus(); };
  EXPECT_FALSE(BlockCompressor::Create({.threads = -1}, sink).ok());
  EXPECT_FALSE(BlockCompressor::Create({.max_blocks_in_flight = -1}, sink).ok());
  EXPECT_FALSE(BlockCompressor::Create({.compression = Compression::kGzip, .level = 7}, sink).ok());
  EXPECT_FALSE(BlockCompressor::Create({}, nullptr).ok());
  // A compressor destroyed with blocks in flight joins its workers cleanly.
  auto c = BlockCompressor::Create({.threads = 2}, sink);
  ASSERT_TRUE(c.ok());
  (*c)->buffer() = SampleLines(1 << 20, 40);
  ASSERT_TRUE((*c)->Submit().ok());
  c->reset();
}

}  // namespace
}  // namespace sluice::pipeline
