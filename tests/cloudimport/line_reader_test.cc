#include "cloudimport/line_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/compression.h"

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

TEST(LineReaderTest, LargeGzipStreamsInBoundedBuffers) {
  std::string plain;
  for (int i = 0; i < 200000; ++i) plain += "{\"event\":\"e\",\"properties\":{\"i\":" + std::to_string(i) + "}}\n";
  std::string gz = Gzip(plain);
  uint64_t count = 0, last = 0;
  LineReader reader({.compression = Compression::kGzip, .file = "big"}, [&](const Line& line) {
    ++count;
    last = line.number;
    return true;
  });
  for (size_t i = 0; i < gz.size(); i += 16384) ASSERT_TRUE(reader.Feed(std::string_view(gz).substr(i, 16384)).ok());
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
  EXPECT_NE(r.status.error().message.find("Gzip compression specified but f.json is not gzip"), std::string::npos);
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
