// The store's journal on its own (replay, torn tails, damage, trimming) and through the store (replay after a
// crash applies each record exactly once).
#include "store/journal.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"

namespace sluice::store::internal {
namespace {

namespace fs = std::filesystem;

class JournalDir {
 public:
  JournalDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("sluice_journal_test_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(rd()) + "_" + std::to_string(counter_++));
  }
  ~JournalDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  static inline std::atomic<int> counter_{0};
  fs::path path_;
};

using Records = std::vector<std::pair<uint64_t, std::string>>;

Result<std::unique_ptr<Journal>> OpenJournal(const fs::path& dir, uint64_t applied, Records* replayed,
                                             JournalOptions options = {}) {
  return Journal::Open(dir, applied, options, [replayed](uint64_t seq, std::string_view payload) {
    replayed->emplace_back(seq, std::string(payload));
    return OkStatus();
  });
}

std::vector<fs::path> Segments(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

constexpr uint64_t kHeader = 24;  // length u32, crc u32, seq u64, group u64 (journal.h)

std::string Payload(int i) { return "payload-" + std::to_string(i) + std::string(100 + i, 'x'); }

void AppendAll(Journal& journal, int from, int to) {  // one record per call
  for (int i = from; i <= to; ++i) {
    const std::string p = Payload(i);
    const std::string_view view(p);
    auto seq = journal.Append(std::span<const std::string_view>(&view, 1));
    ASSERT_TRUE(seq.ok()) << seq.error().ToString();
    ASSERT_EQ(*seq, static_cast<uint64_t>(i));
  }
}

void AppendBytes(const fs::path& file, const std::string& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::app);
  out << bytes;
}

void Overwrite(const fs::path& file, uint64_t offset, const std::string& bytes) {
  std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(offset));
  f << bytes;
}

TEST(JournalTest, ReplaysEveryRecordAfterTheAppliedOneInOrder) {
  JournalDir dir;
  Records replayed;
  {
    auto journal = OpenJournal(dir.path(), 0, &replayed);
    ASSERT_TRUE(journal.ok()) << journal.error().ToString();
    AppendAll(**journal, 1, 3);
    // A group: several records in one append.
    std::vector<std::string> group = {Payload(4), Payload(5), ""};
    std::vector<std::string_view> views(group.begin(), group.end());
    auto first = (*journal)->Append(views);
    ASSERT_TRUE(first.ok());
    EXPECT_EQ(*first, 4u);
    EXPECT_EQ((*journal)->NextSeq(), 7u);
  }
  EXPECT_TRUE(replayed.empty());
  {
    auto journal = OpenJournal(dir.path(), 0, &replayed);
    ASSERT_TRUE(journal.ok()) << journal.error().ToString();
    ASSERT_EQ(replayed.size(), 6u);
    for (int i = 1; i <= 5; ++i) EXPECT_EQ(replayed[i - 1], std::make_pair(uint64_t(i), Payload(i)));
    EXPECT_EQ(replayed[5], std::make_pair(uint64_t(6), std::string()));
    EXPECT_EQ((*journal)->NextSeq(), 7u);
  }
  replayed.clear();
  auto journal = OpenJournal(dir.path(), 4, &replayed);  // records 1-4 are in the database already
  ASSERT_TRUE(journal.ok());
  ASSERT_EQ(replayed.size(), 2u);
  EXPECT_EQ(replayed[0].first, 5u);
  EXPECT_EQ(replayed[1].first, 6u);
}

TEST(JournalTest, AReservedWriteBufferIsThereFromTheStartAndStillGrowsForALargerAppend) {
  // Under the working directory (the build tree), not /tmp: the buffer exists only with O_DIRECT, which a
  // tmpfs /tmp does not offer.
  const fs::path dir = fs::current_path() / ("journal_reserve_" + std::to_string(::getpid()));
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{dir};
  Records replayed;
  {
    auto lazy = OpenJournal(dir / "lazy", 0, &replayed);
    ASSERT_TRUE(lazy.ok()) << lazy.error().ToString();
    ASSERT_GT((*lazy)->WriteBufferBytes(), 0u) << "the build tree's file system should take O_DIRECT";
    EXPECT_LE((*lazy)->WriteBufferBytes(), 8192u);
  }
  JournalOptions options;
  options.reserve_buffer_bytes = 1u << 20;
  const std::string big(3u << 20, 'b');
  {
    auto journal = OpenJournal(dir / "reserved", 0, &replayed, options);
    ASSERT_TRUE(journal.ok()) << journal.error().ToString();
    EXPECT_GE((*journal)->WriteBufferBytes(), size_t{1} << 20);
    AppendAll(**journal, 1, 2);
    EXPECT_GE((*journal)->WriteBufferBytes(), size_t{1} << 20);
    const std::string_view view(big);
    auto seq = (*journal)->Append(std::span<const std::string_view>(&view, 1));
    ASSERT_TRUE(seq.ok()) << seq.error().ToString();
    EXPECT_GE((*journal)->WriteBufferBytes(), big.size());
  }
  auto reopened = OpenJournal(dir / "reserved", 0, &replayed, options);
  ASSERT_TRUE(reopened.ok()) << reopened.error().ToString();
  ASSERT_EQ(replayed.size(), 3u);
  EXPECT_EQ(replayed[0], std::make_pair(uint64_t{1}, Payload(1)));
  EXPECT_EQ(replayed[1], std::make_pair(uint64_t{2}, Payload(2)));
  EXPECT_EQ(replayed[2].first, 3u);
  EXPECT_EQ(replayed[2].second, big);
}

TEST(JournalTest, TornTailOfTheNewestSegmentIsCutOffAndAppendsContinue) {
  JournalDir dir;
  Records replayed;
  {
    auto journal = OpenJournal(dir.path(), 0, &replayed);
    ASSERT_TRUE(journal.ok());
    AppendAll(**journal, 1, 3);
  }
  const fs::path segment = Segments(dir.path()).back();
  const uintmax_t intact = fs::file_size(segment);
  // A crash in the middle of an append: a header announcing 1000 bytes, then only 10 of them.
  std::string torn(kHeader, '\0');
  torn[0] = static_cast<char>(0xe8);
  torn[1] = 0x03;
  torn[8] = 4;
  AppendBytes(segment, torn + std::string(10, 'y'));
  {
    auto journal = OpenJournal(dir.path(), 0, &replayed);
    ASSERT_TRUE(journal.ok()) << journal.error().ToString();
    EXPECT_EQ(replayed.size(), 3u);
    EXPECT_LE(fs::file_size(segment), intact);  // the tail is gone, so it cannot look like damage later
    AppendAll(**journal, 4, 4);
  }
  replayed.clear();
  auto journal = OpenJournal(dir.path(), 0, &replayed);
  ASSERT_TRUE(journal.ok()) << journal.error().ToString();
  ASSERT_EQ(replayed.size(), 4u);
  EXPECT_EQ(replayed[3], std::make_pair(uint64_t(4), Payload(4)));
}

TEST(JournalTest, AnIncompleteHeaderOrAMismatchInTheLastRecordIsATornTail) {
  for (const bool header_only : {true, false}) {
    JournalDir dir;
    Records replayed;
    {
      auto journal = OpenJournal(dir.path(), 0, &replayed);
      ASSERT_TRUE(journal.ok());
      AppendAll(**journal, 1, 3);
    }
    const fs::path segment = Segments(dir.path()).back();
    uint64_t end = 8;  // the records' end (an O_DIRECT segment is padded with zeros after it)
    for (int i = 1; i <= 3; ++i) end += kHeader + Payload(i).size();
    if (header_only) {
      Overwrite(segment, end, std::string(7, '\x01'));
    } else {
      Overwrite(segment, end - 5, "ZZZZZ");  // the last record's payload, never acknowledged
    }
    auto journal = OpenJournal(dir.path(), 0, &replayed);
    ASSERT_TRUE(journal.ok()) << journal.error().ToString();
    EXPECT_EQ(replayed.size(), header_only ? 3u : 2u);
    EXPECT_EQ((*journal)->NextSeq(), header_only ? 4u : 3u);
  }
}

TEST(JournalTest, CrcMismatchBeforeTheTailRefusesToOpenNamingTheFile) {
  JournalDir dir;
  Records replayed;
  {
    auto journal = OpenJournal(dir.path(), 0, &replayed);
    ASSERT_TRUE(journal.ok());
    AppendAll(**journal, 1, 5);
  }
  const fs::path segment = Segments(dir.path()).back();
  // Record 2 starts after the magic (8), record 1's header and payload.
  const uint64_t record2 = 8 + kHeader + Payload(1).size();
  Overwrite(segment, record2 + kHeader + 3, "DAMAGE");
  auto journal = OpenJournal(dir.path(), 0, &replayed);
  ASSERT_FALSE(journal.ok());
  const std::string message = journal.error().message;
  EXPECT_NE(message.find(segment.string()), std::string::npos) << message;
  EXPECT_NE(message.find("corrupt"), std::string::npos) << message;
  EXPECT_NE(message.find("offset " + std::to_string(record2)), std::string::npos) << message;
  // Nothing after the damage was handed over, and the file is untouched (the operator decides).
  EXPECT_EQ(replayed.size(), 1u);
  EXPECT_TRUE(fs::exists(segment));
}

// A power cut during one multi-record append may persist its blocks in any order: a damaged record followed by
// intact records of the SAME append is still a torn tail (none of them was acknowledged), while an intact record
// of a LATER append proves the damaged one was synced and acknowledged.
TEST(JournalTest, DamageInsideTheLastAppendGroupIsATornTailButNotBeforeALaterGroup) {
  for (const bool later_group : {false, true}) {
    JournalDir dir;
    Records replayed;
    {
      auto journal = OpenJournal(dir.path(), 0, &replayed);
      ASSERT_TRUE(journal.ok());
      AppendAll(**journal, 1, 2);
      std::vector<std::string> group = {Payload(3), Payload(4), Payload(5)};
      std::vector<std::string_view> views(group.begin(), group.end());
      auto first = (*journal)->Append(views);
      ASSERT_TRUE(first.ok());
      ASSERT_EQ(*first, 3u);
      if (later_group) AppendAll(**journal, 6, 6);
    }
    const fs::path segment = Segments(dir.path()).back();
    const uint64_t record3 = 8 + 2 * kHeader + Payload(1).size() + Payload(2).size();
    Overwrite(segment, record3 + kHeader + 3, "LOST");  // record 3's payload; 4 and 5 read back intact
    auto journal = OpenJournal(dir.path(), 0, &replayed);
    if (later_group) {
      ASSERT_FALSE(journal.ok()) << "record 6 was appended after the group was synced: 3 was acknowledged";
      EXPECT_NE(journal.error().message.find("offset " + std::to_string(record3)), std::string::npos)
          << journal.error().message;
      continue;
    }
    ASSERT_TRUE(journal.ok()) << journal.error().ToString();
    ASSERT_EQ(replayed.size(), 2u);  // the unacknowledged group is cut off whole from its damaged record on
    EXPECT_EQ((*journal)->NextSeq(), 3u);
  }
}

// After a failed fdatasync the append is cut off and the journal stays usable: the next append must follow the
// last acknowledged record without disturbing it (with O_DIRECT it rewrites the last partial block, which must
// still hold what is on disk, not the failed append's bytes).
TEST(JournalTest, AFailedSyncLeavesTheAcknowledgedRecordsIntact) {
  JournalDir dir;
  Records replayed;
  bool fail = false;
  JournalOptions options;
  options.fail_sync_for_testing = [&fail] { return std::exchange(fail, false); };
  {
    auto journal = OpenJournal(dir.path(), 0, &replayed, options);
    ASSERT_TRUE(journal.ok());
    AppendAll(**journal, 1, 3);  // < 4 KiB: the last partial block holds all of them
    fail = true;
    const std::string big(10000, 'b');  // spans blocks, so a wrongly kept buffer would differ from the disk
    const std::string_view view(big);
    auto failed = (*journal)->Append(std::span<const std::string_view>(&view, 1));
    ASSERT_FALSE(failed.ok());
    EXPECT_NE(failed.error().message.find("syncing journal"), std::string::npos) << failed.error().message;
    AppendAll(**journal, 4, 5);  // the failed record's seq is reused: it was never acknowledged
  }
  auto journal = OpenJournal(dir.path(), 0, &replayed, options);
  ASSERT_TRUE(journal.ok()) << journal.error().ToString();
  ASSERT_EQ(replayed.size(), 5u);
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(replayed[i - 1], std::make_pair(uint64_t(i), Payload(i)));
}

TEST(JournalTest, DamageInAnOlderSegmentIsNeverTreatedAsATornTail) {
  JournalDir dir;
  Records replayed;
  JournalOptions small;
  small.segment_bytes = 300;  // ~2 records per segment
  {
    auto journal = OpenJournal(dir.path(), 0, &replayed, small);
    ASSERT_TRUE(journal.ok());
    AppendAll(**journal, 1, 8);
  }
  const auto segments = Segments(dir.path());
  ASSERT_GE(segments.size(), 3u);
  const uintmax_t size = fs::file_size(segments[0]);
  Overwrite(segments[0], size - 5, "ZZZZZ");  // the last record of a closed segment
  auto journal = OpenJournal(dir.path(), 0, &replayed, small);
  ASSERT_FALSE(journal.ok());
  EXPECT_NE(journal.error().message.find(segments[0].string()), std::string::npos) << journal.error().message;
}

TEST(JournalTest, MissingRecordsAreDamage) {
  JournalDir dir;
  Records replayed;
  JournalOptions small;
  small.segment_bytes = 300;
  {
    auto journal = OpenJournal(dir.path(), 0, &replayed, small);
    ASSERT_TRUE(journal.ok());
    AppendAll(**journal, 1, 8);
  }
  const auto segments = Segments(dir.path());
  ASSERT_GE(segments.size(), 3u);
  fs::remove(segments[1]);
  auto journal = OpenJournal(dir.path(), 0, &replayed, small);
  ASSERT_FALSE(journal.ok());
  EXPECT_NE(journal.error().message.find("corrupt"), std::string::npos) << journal.error().message;
}

TEST(JournalTest, TrimDeletesOnlySegmentsWhoseRecordsArePersisted) {
  JournalDir dir;
  Records replayed;
  JournalOptions small;
  small.segment_bytes = 200;  // two records per segment
  auto journal = OpenJournal(dir.path(), 0, &replayed, small);
  ASSERT_TRUE(journal.ok());
  AppendAll(**journal, 1, 9);
  const size_t before = Segments(dir.path()).size();
  ASSERT_GE(before, 4u);
  (*journal)->Trim(0);
  EXPECT_EQ(Segments(dir.path()).size(), before);
  (*journal)->Trim(5);
  const auto after = Segments(dir.path());
  EXPECT_LT(after.size(), before);
  journal->reset();
  // What is left still replays everything after record 5, and nothing is missing.
  auto reopened = OpenJournal(dir.path(), 5, &replayed, small);
  ASSERT_TRUE(reopened.ok()) << reopened.error().ToString();
  ASSERT_EQ(replayed.size(), 4u);
  EXPECT_EQ(replayed.front().first, 6u);
  EXPECT_EQ((*reopened)->NextSeq(), 10u);
}

// ---- Through the store ------------------------------------------------------------------------------------

constexpr int64_t kTimeUs = 1'700'000'000'000'000;

std::vector<Event> Batch(int b, int n) {
  std::vector<Event> events;
  for (int i = 0; i < n; ++i) {
    Event e;
    e.name = "Played";
    e.time_us = kTimeUs + i * 1'000'000;
    e.distinct_id = "user-" + std::to_string(i);
    e.insert_id = "b" + std::to_string(b) + "-" + std::to_string(i);
    e.properties = R"({"song":"x"})";
    events.push_back(std::move(e));
  }
  return events;
}

uint64_t Count(Store& store, uint64_t* writes) {
  uint64_t n = 0;
  *writes = 0;
  auto parts = store.ListPartitions(1, 0, ~Hour{0});
  EXPECT_TRUE(parts.ok());
  for (const auto& p : *parts) {
    *writes += p.writes;
    EXPECT_TRUE(store.ScanPartition(1, p.hour, [&](const EventView&) { return ++n, true; }).ok());
  }
  return n;
}

void CopyTree(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
}

TEST(StoreJournalTest, ReplayAfterTheRecordsWerePersistedAppliesNothingTwice) {
  JournalDir dir;
  JournalDir saved;
  {
    auto store = Store::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    for (int b = 0; b < 3; ++b) ASSERT_TRUE((*store)->WriteEvents(1, Batch(b, 50)).ok());
    ASSERT_TRUE((*store)->PutMeta("ns", "k", "v").ok());
    // The journal as a crash right now would leave it; then a clean close persists everything.
    CopyTree(dir.path() / "journal", saved.path());
    ASSERT_TRUE((*store)->Close().ok());
  }
  ASSERT_TRUE(Segments(dir.path() / "journal").empty()) << "a clean close leaves no journal";
  CopyTree(saved.path(), dir.path() / "journal");  // as if the close had died after the flush
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  uint64_t writes = 0;
  EXPECT_EQ(Count(**store, &writes), 150u);
  EXPECT_EQ(writes, 150u) << "a record already in the database was applied again";
  ASSERT_TRUE((*store)->WriteEvents(1, Batch(3, 50)).ok());
  EXPECT_EQ(Count(**store, &writes), 200u);
  EXPECT_EQ(writes, 200u);
}

TEST(StoreJournalTest, ACrashImageRecoversFromTheJournalAndAgainAfterASecondCrash) {
  JournalDir dir;
  JournalDir image1;
  JournalDir image2;
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  for (int b = 0; b < 4; ++b) ASSERT_TRUE((*store)->WriteEvents(1, Batch(b, 50)).ok());
  ASSERT_TRUE((*store)->PutMeta("ns", "k", "v").ok());
  CopyTree(dir.path(), image1.path());  // the disk as kill -9 leaves it: acknowledged writes only journaled
  fs::remove(image1.path() / "LOCK");
  {
    auto recovered = Store::Open(image1.path());
    ASSERT_TRUE(recovered.ok()) << recovered.error().ToString();
    uint64_t writes = 0;
    EXPECT_EQ(Count(**recovered, &writes), 200u);
    EXPECT_EQ(writes, 200u);
    EXPECT_EQ((*recovered)->GetMeta("ns", "k")->value_or(""), "v");
    ASSERT_TRUE((*recovered)->WriteEvents(1, Batch(4, 50)).ok());
    CopyTree(image1.path(), image2.path());  // crashes again before any flush
    fs::remove(image2.path() / "LOCK");
  }
  auto again = Store::Open(image2.path());
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  uint64_t writes = 0;
  EXPECT_EQ(Count(**again, &writes), 250u);
  EXPECT_EQ(writes, 250u);
}

}  // namespace
}  // namespace sluice::store::internal
