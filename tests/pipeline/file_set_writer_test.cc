#include "pipeline/file_set_writer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "common/crypto.h"
#include "decompress_util.h"
#include "objstore/local/local_object_store.h"
#include "objstore/testing/fake_object_store.h"

namespace sluice::pipeline {
namespace {

using objstore::testing::FakeObjectStore;
using Op = FakeObjectStore::Op;

std::string KeyFor(int part) { return "1/mp_master_event/2024/01/02/part-" + std::to_string(part) + ".json.gz"; }

/// Lines of random length (20..max_len bytes), each ending in '\n'.
std::vector<std::string> MakeLines(size_t count, size_t max_len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> lines;
  lines.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const size_t len = 20 + rng() % (max_len - 20);
    std::string line = "{\"i\":" + std::to_string(i) + ",\"pad\":\"";
    while (line.size() + 3 < len) line.push_back(static_cast<char>('a' + rng() % 6));
    line += "\"}\n";
    lines.push_back(std::move(line));
  }
  return lines;
}

/// Appends the lines in batches of 1..max_batch lines; returns the concatenation.
std::string AppendAll(FileSetWriter& w, const std::vector<std::string>& lines, size_t max_batch, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string all;
  for (size_t i = 0; i < lines.size();) {
    const size_t n = std::min(lines.size() - i, 1 + static_cast<size_t>(rng() % max_batch));
    std::string batch;
    for (size_t k = 0; k < n; ++k) batch += lines[i + k];
    EXPECT_TRUE(w.Append(batch, n).ok());
    all += batch;
    i += n;
  }
  return all;
}

size_t CountLines(std::string_view s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

/// Checks every file against the store and returns the decompressed concatenation.
std::string VerifyFiles(objstore::ObjectStore& store, const std::vector<FileEntry>& files, Compression c,
                        uint64_t max_uncompressed) {
  std::string all;
  for (size_t i = 0; i < files.size(); ++i) {
    const FileEntry& f = files[i];
    EXPECT_EQ(f.key, KeyFor(static_cast<int>(i)));
    auto data = store.Get(f.key);
    if (!data.ok()) {
      ADD_FAILURE() << f.key << ": " << data.error().ToString();
      continue;
    }
    EXPECT_EQ(f.bytes, data->size()) << f.key;
    EXPECT_EQ(f.sha256, HexEncode(Sha256(*data))) << f.key;
    auto plain = testutil::Decompress(c, *data);
    if (!plain.ok()) {
      ADD_FAILURE() << f.key << ": " << plain.error().ToString();
      continue;
    }
    EXPECT_EQ(f.uncompressed_bytes, plain->size()) << f.key;
    EXPECT_EQ(f.records, CountLines(*plain)) << f.key;
    EXPECT_GT(f.records, 0u) << "no empty files";
    EXPECT_FALSE(plain->empty());
    EXPECT_EQ(plain->back(), '\n') << f.key << " must end at a line boundary";
    if (f.records > 1) {
      EXPECT_LE(plain->size(), max_uncompressed) << f.key;
    }
    all += *plain;
  }
  return all;
}

TEST(FileSetWriterTest, RollsAtLineBoundariesWithExactCountsAndChecksums) {
  const auto lines = MakeLines(5000, 400, 1);
  for (Compression c : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    for (int threads : {0, 2}) {
      FakeObjectStore store;
      const uint64_t limit = 100'000;
      FileSetWriter w(store, KeyFor,
                      {.compression = c, .max_file_uncompressed_bytes = limit, .block_bytes = 64 << 10,
                       .compress_threads = threads},
                      {.content_type = "application/x-ndjson", .content_encoding = "gzip"});
      const std::string all = AppendAll(w, lines, 700, 2);
      EXPECT_EQ(w.records(), lines.size());
      auto files = w.Finish();
      ASSERT_TRUE(files.ok()) << files.error().ToString();
      // ~1 MB of lines into 100 kB files: every file but the last is nearly full.
      EXPECT_GE(files->size(), (all.size() + limit - 1) / limit);
      EXPECT_LE(files->size(), all.size() / (limit - 400) + 1);
      uint64_t records = 0;
      for (size_t i = 0; i < files->size(); ++i) {
        records += (*files)[i].records;
        if (i + 1 < files->size()) {
          EXPECT_GT((*files)[i].uncompressed_bytes, limit - 400);
        }
      }
      EXPECT_EQ(records, lines.size());
      const std::string read_back = VerifyFiles(store, *files, c, limit);
      EXPECT_TRUE(read_back == all) << "files do not hold the appended lines in order";
      EXPECT_EQ(store.size(), files->size());
      EXPECT_EQ(store.Object(KeyFor(0))->options.content_encoding, "gzip") << "put options are passed through";
      EXPECT_EQ(store.Object(KeyFor(0))->options.content_type, "application/x-ndjson");
      EXPECT_EQ(store.open_writers(), 0);
      EXPECT_EQ(store.aborted_writers(), 0);
    }
  }
}

TEST(FileSetWriterTest, AppendTakingKeepsLinesOrderAndCountsAcrossRollsAndBothPaths) {
  // Batches of 1..400 lines of up to 400 bytes: some hold a whole 64 KiB block (taken as the block), some
  // less (copied), and some do not fit the open 300 kB part (split at a line boundary).
  const auto lines = MakeLines(8000, 400, 11);
  for (Compression c : {Compression::kGzip, Compression::kNone}) {
    for (int threads : {0, 2}) {
      FakeObjectStore store;
      const uint64_t limit = 300'000;
      FileSetWriter w(store, KeyFor,
                      {.compression = c,
                       .max_file_uncompressed_bytes = limit,
                       .block_bytes = 64 << 10,
                       .compress_threads = threads},
                      {});
      std::mt19937_64 rng(12);
      std::string all;
      for (size_t i = 0; i < lines.size();) {
        const size_t n = std::min(lines.size() - i, 1 + static_cast<size_t>(rng() % 400));
        std::string batch;
        for (size_t k = 0; k < n; ++k) batch += lines[i + k];
        all += batch;
        ASSERT_TRUE(w.AppendTaking(batch, n).ok());
        EXPECT_TRUE(batch.empty());
        i += n;
      }
      EXPECT_EQ(w.records(), lines.size());
      EXPECT_EQ(w.uncompressed_bytes(), all.size());
      auto files = w.Finish();
      ASSERT_TRUE(files.ok()) << files.error().ToString();
      EXPECT_GE(files->size(), (all.size() + limit - 1) / limit);
      uint64_t records = 0;
      for (const FileEntry& f : *files) records += f.records;
      EXPECT_EQ(records, lines.size());
      EXPECT_TRUE(VerifyFiles(store, *files, c, limit) == all)
          << "files do not hold the appended lines in order";
    }
  }
}

TEST(FileSetWriterTest, OneAppendLargerThanSeveralFilesIsSplit) {
  const auto lines = MakeLines(3000, 200, 3);
  std::string all;
  for (const auto& l : lines) all += l;
  FakeObjectStore store;
  FileSetWriter w(store, KeyFor, {.max_file_uncompressed_bytes = 50'000, .block_bytes = 64 << 10}, {});
  ASSERT_TRUE(w.Append(all, lines.size()).ok());
  auto files = w.Finish();
  ASSERT_TRUE(files.ok()) << files.error().ToString();
  EXPECT_GE(files->size(), all.size() / 50'000);
  EXPECT_TRUE(VerifyFiles(store, *files, Compression::kGzip, 50'000) == all);
}

TEST(FileSetWriterTest, ALineLongerThanTheLimitGetsAFileOfItsOwn) {
  FakeObjectStore store;
  FileSetWriter w(store, KeyFor, {.max_file_uncompressed_bytes = 1000, .block_bytes = 64 << 10}, {});
  const std::string small = "{\"a\":1}\n";
  const std::string huge = "{\"big\":\"" + std::string(5000, 'x') + "\"}\n";
  ASSERT_TRUE(w.Append(small, 1).ok());
  ASSERT_TRUE(w.Append(huge + small, 2).ok());
  ASSERT_TRUE(w.Append(huge, 1).ok());
  auto files = w.Finish();
  ASSERT_TRUE(files.ok()) << files.error().ToString();
  ASSERT_EQ(files->size(), 4u);
  EXPECT_EQ((*files)[0].uncompressed_bytes, small.size());
  EXPECT_EQ((*files)[1].uncompressed_bytes, huge.size());
  EXPECT_EQ((*files)[1].records, 1u);
  EXPECT_EQ((*files)[2].uncompressed_bytes, small.size());
  EXPECT_EQ((*files)[3].uncompressed_bytes, huge.size());
  EXPECT_TRUE(VerifyFiles(store, *files, Compression::kGzip, 1000) == small + huge + small + huge);
}

TEST(FileSetWriterTest, ExactlyFullFileRollsOnTheNextLine) {
  FakeObjectStore store;
  const std::string line = "0123456789\n";  // 11 bytes
  FileSetWriter w(store, KeyFor, {.max_file_uncompressed_bytes = 22, .block_bytes = 64 << 10}, {});
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(w.Append(line, 1).ok());
  auto files = w.Finish();
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 3u);
  EXPECT_EQ((*files)[0].records, 2u);
  EXPECT_EQ((*files)[1].records, 2u);
  EXPECT_EQ((*files)[2].records, 1u);
}

TEST(FileSetWriterTest, NoRecordsMeansNoFiles) {
  FakeObjectStore store;
  FileSetWriter w(store, KeyFor, {}, {});
  ASSERT_TRUE(w.Append("", 0).ok());
  auto files = w.Finish();
  ASSERT_TRUE(files.ok());
  EXPECT_TRUE(files->empty());
  EXPECT_EQ(store.calls(Op::kNewWriter), 0);
  EXPECT_EQ(store.size(), 0u);
  EXPECT_FALSE(w.Append("x\n", 1).ok()) << "Append after Finish is refused";
}

TEST(FileSetWriterTest, RejectsIncompleteLinesAndBadOptions) {
  FakeObjectStore store;
  {
    FileSetWriter w(store, KeyFor, {}, {});
    auto st = w.Append("{\"a\":1}", 1);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  }
  for (FileSetOptions o : {FileSetOptions{.level = 9}, FileSetOptions{.max_file_uncompressed_bytes = 0},
                           FileSetOptions{.block_bytes = 100}, FileSetOptions{.compress_threads = -1}}) {
    FileSetWriter w(store, KeyFor, o, {});
    auto st = w.Append("x\n", 1);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument) << st.error().ToString();
    EXPECT_FALSE(w.Finish().ok());
  }
  EXPECT_EQ(store.calls(Op::kNewWriter), 0);
}

/// Delegates to a FakeObjectStore; its writers count Abort calls and can fail the n-th Write without aborting
/// themselves, so a test sees whether FileSetWriter abandons the object.
class ObservingStore final : public objstore::ObjectStore {
 public:
  explicit ObservingStore(FakeObjectStore& inner) : inner_(inner) {}
  int fail_write_number = 0;  // 1-based Write call (across writers) that fails; 0 = none
  uint64_t misreport_size_by = 0;  // added to the size Complete() reports (a store that lost bytes)
  std::atomic<int> writes{0};
  std::atomic<int> aborts{0};
  std::atomic<uint64_t> bytes_written{0};

  std::string Describe() const override { return "observing " + inner_.Describe(); }
  Result<objstore::ObjectInfo> Head(std::string_view key) override { return inner_.Head(key); }
  Result<std::string> Get(std::string_view key, uint64_t offset, std::optional<uint64_t> length) override {
    return inner_.Get(key, offset, length);
  }
  Status GetStreaming(std::string_view key, const std::function<bool(std::string_view)>& sink) override {
    return inner_.GetStreaming(key, sink);
  }
  Result<objstore::ObjectInfo> Put(std::string_view key, std::string data,
                                   const objstore::PutOptions& options) override {
    return inner_.Put(key, std::move(data), options);
  }
  Result<std::vector<objstore::ObjectInfo>> List(std::string_view prefix) override { return inner_.List(prefix); }
  Status ListEach(std::string_view prefix, std::string_view start_after,
                  const std::function<bool(const objstore::ObjectInfo&)>& fn) override {
    return inner_.ListEach(prefix, start_after, fn);
  }
  Status Delete(std::string_view key) override { return inner_.Delete(key); }
  Result<std::unique_ptr<objstore::ObjectWriter>> NewWriter(std::string_view key,
                                                            const objstore::PutOptions& options) override {
    SLUICE_ASSIGN_OR_RETURN(auto w, inner_.NewWriter(key, options));
    return std::unique_ptr<objstore::ObjectWriter>(new Writer(*this, std::move(w)));
  }

 private:
  class Writer final : public objstore::ObjectWriter {
   public:
    Writer(ObservingStore& s, std::unique_ptr<objstore::ObjectWriter> inner) : s_(s), inner_(std::move(inner)) {}
    Status Write(std::string_view data) override {
      if (++s_.writes == s_.fail_write_number) {
        return Error(ErrorCode::kAccessDenied, "UploadPart denied: the role lacks s3:PutObject");
      }
      s_.bytes_written += data.size();
      return inner_->Write(data);
    }
    Result<objstore::ObjectInfo> Complete() override {
      SLUICE_ASSIGN_OR_RETURN(objstore::ObjectInfo info, inner_->Complete());
      info.size += s_.misreport_size_by;
      return info;
    }
    void Abort() override {
      ++s_.aborts;
      inner_->Abort();
    }

   private:
    ObservingStore& s_;
    std::unique_ptr<objstore::ObjectWriter> inner_;
  };
  FakeObjectStore& inner_;
};

TEST(FileSetWriterTest, UploadFailureMidStreamSurfacesAndAbortsTheObject) {
  for (int threads : {0, 2}) {
    FakeObjectStore fake;
    ObservingStore store(fake);
    store.fail_write_number = 5;
    const auto lines = MakeLines(20'000, 300, 4);
    FileSetWriter w(store, KeyFor,
                    {.max_file_uncompressed_bytes = 1 << 30, .block_bytes = 64 << 10, .compress_threads = threads},
                    {});
    Status st;
    for (size_t i = 0; i < lines.size() && st.ok(); i += 100) {
      std::string batch;
      for (size_t k = i; k < i + 100; ++k) batch += lines[k];
      st = w.Append(batch, 100);
    }
    Result<std::vector<FileEntry>> finished = st.ok() ? w.Finish() : Result<std::vector<FileEntry>>(st.error());
    ASSERT_FALSE(finished.ok()) << "threads " << threads;
    EXPECT_EQ(finished.error().code, ErrorCode::kAccessDenied);
    EXPECT_NE(finished.error().message.find("s3:PutObject"), std::string::npos) << finished.error().message;
    EXPECT_NE(finished.error().message.find(KeyFor(0)), std::string::npos) << "names the object";
    EXPECT_EQ(store.aborts, 1) << "the failed object is aborted right away";
    EXPECT_EQ(fake.open_writers(), 0);
    EXPECT_TRUE(fake.Keys().empty()) << "nothing becomes visible";
    // Sticky: later calls report the same error; Abort is safe (more than once).
    auto again = w.Append("{}\n", 1);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, ErrorCode::kAccessDenied);
    w.Abort();
    w.Abort();
    EXPECT_EQ(store.aborts, 1);
  }
}

TEST(FileSetWriterTest, InjectedFaultsOnEachUploadStepSurface) {
  const auto lines = MakeLines(4000, 300, 5);
  std::string all;
  for (const auto& l : lines) all += l;
  for (Op op : {Op::kNewWriter, Op::kWriterWrite, Op::kWriterComplete}) {
    FakeObjectStore store;
    // Fail the second part only: the first completes and stays (the caller's manifest decides what counts).
    store.InjectFault({.op = op, .key_contains = "part-1.", .error = Error(ErrorCode::kTransient, "injected 503"),
                       .times = -1});
    FileSetWriter w(store, KeyFor, {.max_file_uncompressed_bytes = 200'000, .block_bytes = 64 << 10}, {});
    Status st = w.Append(all, lines.size());
    Result<std::vector<FileEntry>> files = st.ok() ? w.Finish() : Result<std::vector<FileEntry>>(st.error());
    ASSERT_FALSE(files.ok()) << FakeObjectStore::OpName(op);
    EXPECT_EQ(files.error().code, ErrorCode::kTransient);
    EXPECT_NE(files.error().message.find("injected 503"), std::string::npos);
    EXPECT_NE(files.error().message.find(KeyFor(1)), std::string::npos) << files.error().message;
    w.Abort();
    EXPECT_EQ(store.open_writers(), 0) << FakeObjectStore::OpName(op);
    EXPECT_EQ(store.Keys(), std::vector<std::string>{KeyFor(0)}) << FakeObjectStore::OpName(op);
    EXPECT_EQ(w.files().size(), 1u);
  }
}

TEST(FileSetWriterTest, AStoreReportingAnotherSizeIsAnError) {
  FakeObjectStore fake;
  ObservingStore store(fake);
  store.misreport_size_by = 1;
  FileSetWriter w(store, KeyFor, {}, {});
  ASSERT_TRUE(w.Append("{\"a\":1}\n", 1).ok());
  auto files = w.Finish();
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.error().code, ErrorCode::kInternal);
  EXPECT_NE(files.error().message.find("were written"), std::string::npos) << files.error().message;
}

TEST(FileSetWriterTest, AbortAbandonsTheOpenObject) {
  FakeObjectStore fake;
  ObservingStore store(fake);
  FileSetWriter w(store, KeyFor, {.block_bytes = 64 << 10}, {});
  const auto lines = MakeLines(2000, 300, 6);
  AppendAll(w, lines, 50, 7);
  w.Abort();
  EXPECT_EQ(store.aborts, 1);
  EXPECT_EQ(fake.open_writers(), 0);
  EXPECT_TRUE(fake.Keys().empty());
  EXPECT_FALSE(w.Finish().ok());
}

TEST(FileSetWriterTest, DestructorAbortsAnUnfinishedObject) {
  FakeObjectStore fake;
  ObservingStore store(fake);
  {
    FileSetWriter w(store, KeyFor, {}, {});
    ASSERT_TRUE(w.Append("{\"a\":1}\n", 1).ok());
  }
  EXPECT_EQ(store.aborts, 1);
  EXPECT_EQ(fake.open_writers(), 0);
  EXPECT_TRUE(fake.Keys().empty());
}

TEST(FileSetWriterTest, StreamsToTheObjectWriterBeforeFinish) {
  // Bounded memory: compressed blocks reach the ObjectWriter while appending, not all at the end.
  FakeObjectStore fake;
  ObservingStore store(fake);
  const size_t block = 64 << 10;
  FileSetWriter w(store, KeyFor, {.block_bytes = block, .compress_threads = 2}, {});
  const auto lines = MakeLines(40'000, 400, 8);  // ~8 MB = ~128 blocks
  uint64_t appended = 0;
  for (size_t i = 0; i < lines.size(); i += 200) {
    std::string batch;
    for (size_t k = i; k < i + 200; ++k) batch += lines[k];
    ASSERT_TRUE(w.Append(batch, 200).ok());
    appended += batch.size();
    // At most the block being filled and 2 × threads blocks in flight are held back.
    const uint64_t held_back_blocks = (appended / block) - static_cast<uint64_t>(store.writes.load());
    EXPECT_LE(held_back_blocks, 4u) << "after " << appended << " bytes";
  }
  auto files = w.Finish();
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ(store.bytes_written.load(), (*files)[0].bytes);
}

TEST(FileSetWriterTest, WritesToALocalDirectory) {
  const auto root =
      std::filesystem::temp_directory_path() / ("sluice-fsw-" + std::to_string(::getpid()) + "-" + RandomHex(32));
  {
    auto store = objstore::LocalObjectStore::Open(root);
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    const auto lines = MakeLines(6000, 300, 9);
    for (Compression c : {Compression::kGzip, Compression::kZstd}) {
      FileSetWriter w(**store, KeyFor, {.compression = c, .max_file_uncompressed_bytes = 300'000}, {});
      const std::string all = AppendAll(w, lines, 300, 10);
      auto files = w.Finish();
      ASSERT_TRUE(files.ok()) << files.error().ToString();
      ASSERT_GE(files->size(), 3u);
      EXPECT_TRUE(VerifyFiles(**store, *files, c, 300'000) == all);
      for (const FileEntry& f : *files) EXPECT_TRUE(std::filesystem::exists(root / f.key)) << f.key;
    }
    auto listed = (*store)->List("");
    ASSERT_TRUE(listed.ok());
    for (const auto& o : *listed) {
      EXPECT_EQ(o.key.find(objstore::LocalObjectStore::kTempMarker), std::string::npos) << "no temp files left";
    }
  }
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace sluice::pipeline
