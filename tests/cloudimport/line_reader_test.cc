#include "cloudimport/line_reader.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/compression.h"
#include "common/vector_state.h"

namespace sluice::cloudimport {
namespace {

struct Collected {
  std::vector<std::pair<uint64_t, std::string>> lines;  // (number, text or "<too long>")
  Status status;
};

/// Feeds `data` in chunks of `chunk` bytes.
Collected Read(std::string_view data, Compression c, size_t chunk, size_t max_line = kMaxLineBytes) {
  Collected out;
  LineReader reader({.compression = c, .file = "f.json", .max_line_bytes = max_line}, [&](const Line& line) {
    out.lines.emplace_back(line.number, line.too_long ? std::string("<too long>") : std::string(line.text));
    return true;
  });
  for (size_t i = 0; i < data.size(); i += chunk) {
    Status s = reader.Feed(data.substr(i, chunk));
    if (!s.ok()) {
      out.status = s;
      return out;
    }
  }
  out.status = reader.Finish();
  return out;
}

TEST(LineReaderTest, SplitsLinesKeepingFileLineNumbersAcrossAnyChunking) {
  const std::string text = "{\"a\":1}\r\n\n  \n{\"b\":2}\n   {\"c\":3}  \n{\"d\":4}";
  for (size_t chunk : {1, 2, 3, 7, 64, 4096}) {
    auto r = Read(text, Compression::kNone, chunk);
    ASSERT_TRUE(r.status.ok()) << r.status.error().ToString();
    ASSERT_EQ(r.lines.size(), 4u) << "chunk " << chunk;
    EXPECT_EQ(r.lines[0], (std::pair<uint64_t, std::string>{1, "{\"a\":1}"}));
    EXPECT_EQ(r.lines[1], (std::pair<uint64_t, std::string>{4, "{\"b\":2}"}));
    EXPECT_EQ(r.lines[2], (std::pair<uint64_t, std::string>{5, "{\"c\":3}"}));
    EXPECT_EQ(r.lines[3], (std::pair<uint64_t, std::string>{6, "{\"d\":4}"}));  // no trailing newline
  }
}

TEST(LineReaderTest, AByteOrderMarkAtTheStartOfTheFileIsNotPartOfTheFirstLine) {
  const std::string text = "\xEF\xBB\xBF{\"a\":1}\n\xEF\xBB\xBF{\"b\":2}\n";
  for (Compression c : {Compression::kNone, Compression::kGzip}) {
    for (size_t chunk : {1, 2, 4096}) {
      auto r = Read(c == Compression::kGzip ? Gzip(text) : text, c, chunk);
      ASSERT_TRUE(r.status.ok()) << r.status.error().ToString();
      ASSERT_EQ(r.lines.size(), 2u);
      EXPECT_EQ(r.lines[0].second, "{\"a\":1}") << "chunk " << chunk;
      EXPECT_EQ(r.lines[1].second, "\xEF\xBB\xBF{\"b\":2}") << "only the file's first bytes are a BOM";
    }
  }
}

TEST(LineReaderTest, ZeroBytesAfterTheLastGzipMemberAreIgnoredAsGzipDoes) {
  const std::string gz =
      Gzip("{\"n\":1}\n") + std::string(512, '\0') + Gzip("{\"n\":2}\n") + std::string(3, '\0');
  for (size_t chunk : {1, 7, 1 << 20}) {
    auto r = Read(gz, Compression::kGzip, chunk);
    ASSERT_TRUE(r.status.ok()) << r.status.error().ToString();
    ASSERT_EQ(r.lines.size(), 2u);
    EXPECT_EQ(r.lines[1].second, "{\"n\":2}");
  }
  // Anything else after a member is still an error.
  auto bad = Read(Gzip("{\"n\":1}\n") + "junk", Compression::kGzip, 4096);
  EXPECT_FALSE(bad.status.ok());
}

TEST(LineReaderTest, InflatesGzipIncludingConcatenatedMembers) {
  std::string plain1 = "{\"n\":1}\n{\"n\":2}\n";
  std::string plain2 = "{\"n\":3}\n";
  std::string gz = Gzip(plain1) + Gzip(plain2);
  for (size_t chunk : {1, 5, 100, 1 << 20}) {
    auto r = Read(gz, Compression::kGzip, chunk);
    ASSERT_TRUE(r.status.ok()) << r.status.error().ToString();
    ASSERT_EQ(r.lines.size(), 3u);
    EXPECT_EQ(r.lines[2].second, "{\"n\":3}");
    EXPECT_EQ(r.lines[2].first, 3u);
  }
}

// isa-l's inflate returns with the AVX upper state dirty; the reader clears it before it hands lines on, or
// the parser's legacy-SSE code would pay the transition penalty (common/vector_state.h).
TEST(LineReaderTest, HandsLinesOnWithTheUpperVectorStateClean) {
  std::thread t([] {
    std::string plain;
    for (int i = 0; plain.size() < (4u << 20); ++i) {
      plain += "{\"event\":\"e\",\"properties\":{\"n\":" + std::to_string(i) + "}}\n";
    }
    const std::string gz = Gzip(plain);
    size_t lines = 0, dirty = 0;
    LineReader reader({.compression = Compression::kGzip, .file = "f.json"}, [&](const Line&) {
      ++lines;
      if (UpperVectorStateDirty()) ++dirty;
      return true;
    });
    ClearUpperVectorState();
    ASSERT_TRUE(reader.Feed(gz).ok());
    ASSERT_TRUE(reader.Finish().ok());
    EXPECT_GT(lines, 0u);
    EXPECT_EQ(dirty, 0u) << "of " << lines << " lines";
  });
  t.join();
}

TEST(LineReaderTest, LargeGzipStreamsInBoundedBuffers) {
  std::string plain;
  for (int i = 0; i < 200000; ++i)
    plain += "{\"event\":\"e\",\"properties\":{\"i\":" + std::to_string(i) + "}}\n";
  std::string gz = Gzip(plain);
  uint64_t count = 0, last = 0;
  LineReader reader({.compression = Compression::kGzip, .file = "big"}, [&](const Line& line) {
    ++count;
    last = line.number;
    return true;
  });
  for (size_t i = 0; i < gz.size(); i += 16384)
    ASSERT_TRUE(reader.Feed(std::string_view(gz).substr(i, 16384)).ok());
  ASSERT_TRUE(reader.Finish().ok());
  EXPECT_EQ(count, 200000u);
  EXPECT_EQ(last, 200000u);
  EXPECT_EQ(reader.bytes_out(), plain.size());
  EXPECT_EQ(reader.bytes_in(), gz.size());
}

TEST(LineReaderTest, GzipFileOnAConnectorWithoutCompressionFailsWithMixpanelsMessage) {
  auto r = Read(Gzip("{\"a\":1}\n"), Compression::kNone, 3);
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status.error().message.find("No compression specified but Gzip detected"), std::string::npos);
  EXPECT_NE(r.status.error().message.find("f.json"), std::string::npos);
  EXPECT_TRUE(r.lines.empty());
}

TEST(LineReaderTest, PlainFileOnAGzipConnectorFails) {
  auto r = Read("{\"a\":1}\n", Compression::kGzip, 1);
  ASSERT_FALSE(r.status.ok());
  EXPECT_NE(r.status.error().message.find("Gzip compression specified but f.json is not gzip"),
            std::string::npos);
}

TEST(LineReaderTest, EmptyFileIsFineEitherWay) {
  EXPECT_TRUE(Read("", Compression::kNone, 1).status.ok());
  EXPECT_TRUE(Read("", Compression::kGzip, 1).status.ok());
  EXPECT_TRUE(Read("\n\n", Compression::kNone, 1).lines.empty());
}

TEST(LineReaderTest, TruncatedOrCorruptGzipFails) {
  std::string gz = Gzip(std::string(10000, 'x') + "\n");
  auto truncated = Read(gz.substr(0, gz.size() / 2), Compression::kGzip, 64);
  ASSERT_FALSE(truncated.status.ok());
  EXPECT_NE(truncated.status.error().message.find("truncated"), std::string::npos);
  std::string corrupt = gz;
  for (size_t i = 12; i < corrupt.size() - 8; ++i) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  auto bad = Read(corrupt, Compression::kGzip, 64);
  EXPECT_FALSE(bad.status.ok());
}

TEST(LineReaderTest, OverlongLinesAreReportedNotBuffered) {
  std::string text = "{\"a\":1}\n" + std::string(100, 'x') + "\n{\"b\":2}\n" + std::string(50, 'y');
  for (size_t chunk : {1, 8, 1000}) {
    auto r = Read(text, Compression::kNone, chunk, /*max_line=*/40);
    ASSERT_TRUE(r.status.ok());
    ASSERT_EQ(r.lines.size(), 4u);
    EXPECT_EQ(r.lines[1], (std::pair<uint64_t, std::string>{2, "<too long>"}));
    EXPECT_EQ(r.lines[2], (std::pair<uint64_t, std::string>{3, "{\"b\":2}"}));
    EXPECT_EQ(r.lines[3], (std::pair<uint64_t, std::string>{4, "<too long>"}));
  }
}

TEST(LineReaderTest, CallbackCanStopTheReader) {
  int seen = 0;
  LineReader reader({.file = "f"}, [&](const Line&) { return ++seen < 2; });
  Status s = reader.Feed("{}\n{}\n{}\n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kCancelled);
  EXPECT_EQ(seen, 2);
}

}  // namespace
}  // namespace sluice::cloudimport

namespace sluice::cloudimport {
namespace {

/// Feeds `data` in 64 KB chunks with the given limits; counts the inflated bytes handed on.
struct Bounded {
  Status status;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  size_t lines = 0;
};
Bounded ReadBounded(std::string_view data, Compression c, LineReader::Options o) {
  Bounded out;
  o.compression = c;
  o.file = "in/bomb.json.gz";
  LineReader reader(std::move(o), [&](const Line&) {
    ++out.lines;
    return true;
  });
  constexpr size_t kChunk = 64 * 1024;
  for (size_t i = 0; i < data.size() && out.status.ok(); i += kChunk)
    out.status = reader.Feed(data.substr(i, kChunk));
  if (out.status.ok()) out.status = reader.Finish();
  out.bytes_in = reader.bytes_in();
  out.bytes_out = reader.bytes_out();
  return out;
}

/// NDJSON that compresses like real events (distinct ids and times), about `bytes` long.
std::string RealisticLines(size_t bytes) {
  std::string text;
  for (uint64_t i = 0; text.size() < bytes; ++i) {
    text +=
        "{\"event\":\"Signed up\",\"properties\":{\"time\":" + std::to_string(1700000000 + i * 7919 % 86400) +
        ",\"distinct_id\":\"user-" + std::to_string(i * 2654435761u % 1000003) + "\",\"$insert_id\":\"" +
        std::to_string(i * 40503u) + "-" + std::to_string(i) + "\"}}\n";
  }
  return text;
}

TEST(LineReaderLimitsTest, RefusesAGzipBombAfterItsFirstMegabytes) {
  // 64 MB of zeros gzip to ~66 KB (≈990:1 with libdeflate): the reader stops after ~16 MB of output.
  const std::string bomb = Gzip(std::string(64u << 20, '\0'), 9);
  ASSERT_LT(bomb.size(), 200u * 1024);
  const auto started = std::chrono::steady_clock::now();
  Bounded r = ReadBounded(bomb, Compression::kGzip, {});
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status.error().message.find("gzip bomb"), std::string::npos) << r.status.error().message;
  EXPECT_NE(r.status.error().message.find("in/bomb.json.gz"), std::string::npos);
  EXPECT_NE(r.status.error().message.find("500:1"), std::string::npos);
  EXPECT_LE(r.bytes_out, kInflationCheckAfterBytes + (1u << 20));  // stopped early, not after 64 MB
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST(LineReaderLimitsTest, RatioRuleSparesRealDataAndSmallPaddedFiles) {
  // Event-like NDJSON compresses far below 500:1: checked from the first byte, it still passes.
  const std::string text = RealisticLines(4u << 20);
  const std::string gz = Gzip(text, 9);
  Bounded r = ReadBounded(gz, Compression::kGzip, {.ratio_check_after = 0});
  ASSERT_TRUE(r.status.ok()) << r.status.error().ToString();
  EXPECT_EQ(r.bytes_out, text.size());
  EXPECT_GT(r.lines, 10'000u);
  // A degenerate but small file (1 MB of spaces) is below the check threshold: allowed.
  Bounded small = ReadBounded(Gzip(std::string(1u << 20, ' ') + "{\"a\":1}\n", 9), Compression::kGzip, {});
  EXPECT_TRUE(small.status.ok()) << small.status.error().ToString();
  // The ratio itself decides: the same padding with the check from byte 0 and a 100:1 bound is refused.
  Bounded strict = ReadBounded(Gzip(std::string(1u << 20, ' '), 9), Compression::kGzip,
                               {.max_inflation_ratio = 100, .ratio_check_after = 0});
  ASSERT_FALSE(strict.status.ok());
  EXPECT_NE(strict.status.error().message.find("100:1"), std::string::npos) << strict.status.error().message;
}

TEST(LineReaderLimitsTest, BoundsTheInflatedSizeNotTheCompressedOne) {
  const std::string text = RealisticLines(3u << 20);
  const std::string gz = Gzip(text, 9);
  ASSERT_LT(gz.size(), 1u << 20);  // the compressed object is well under the limit…
  Bounded r = ReadBounded(gz, Compression::kGzip, {.max_output_bytes = 1u << 20});
  ASSERT_FALSE(r.status.ok());  // …its data is not
  EXPECT_EQ(r.status.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status.error().message.find("more than 1048576 bytes of data once inflated"), std::string::npos)
      << r.status.error().message;
  EXPECT_NE(r.status.error().message.find("Split it into smaller files"), std::string::npos);
  EXPECT_LE(r.bytes_out, (1u << 20) + (256u << 10));
  // Uncompressed files are bounded the same way.
  Bounded plain = ReadBounded(text, Compression::kNone, {.max_output_bytes = 1u << 20});
  ASSERT_FALSE(plain.status.ok());
  EXPECT_NE(plain.status.error().message.find("more than 1048576 bytes of data:"), std::string::npos)
      << plain.status.error().message;
  // At the limit exactly, the file is read.
  Bounded exact = ReadBounded(gz, Compression::kGzip, {.max_output_bytes = text.size()});
  EXPECT_TRUE(exact.status.ok()) << exact.status.error().ToString();
}

}  // namespace
}  // namespace sluice::cloudimport
