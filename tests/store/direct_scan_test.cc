// DirectScanFileSystem / DirectScanScope (src/store/direct_scan.h): a thread with a scope reads table files
// through O_DIRECT windows and gets exactly the bytes an ordinary read returns; a thread without one reads as
// RocksDB opened the file. Runs in the build tree (store_test's working directory), where O_DIRECT works;
// /tmp may be a tmpfs without it.
#include "store/direct_scan.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.h"

namespace sluice::store::internal {
namespace {

namespace fs = std::filesystem;

class DirectScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::current_path() / ("direct-scan-test-" + RandomHex(32));
    fs::create_directories(dir_);
    const int fd = ::open((dir_ / "probe").c_str(), O_CREAT | O_WRONLY | O_DIRECT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0)
        << "the build tree's file system does not support O_DIRECT: run store_test from the build tree";
    ::close(fd);
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// A file of `size` pseudo-random bytes; returns its content.
  std::string Write(const std::string& name, size_t size, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string content(size, '\0');
    for (auto& c : content) c = static_cast<char>(rng());
    std::ofstream(dir_ / name, std::ios::binary).write(content.data(), static_cast<std::streamsize>(size));
    return content;
  }

  std::unique_ptr<rocksdb::FSRandomAccessFile> Open(DirectScanFileSystem& fs, const std::string& name) {
    std::unique_ptr<rocksdb::FSRandomAccessFile> file;
    EXPECT_TRUE(fs.NewRandomAccessFile((dir_ / name).string(), rocksdb::FileOptions(), &file, nullptr).ok());
    return file;
  }

  static std::string ReadAt(rocksdb::FSRandomAccessFile& file, uint64_t offset, size_t n) {
    std::string scratch(n, '\0');
    rocksdb::Slice result;
    auto s = file.Read(offset, n, rocksdb::IOOptions(), &result, scratch.data(), nullptr);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return result.ToString();
  }

  /// Open descriptors of files in dir_ with O_DIRECT in their flags (/proc/self/fdinfo).
  size_t DirectDescriptors() const {
    size_t n = 0;
    for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
      std::error_code ec;
      const auto target = fs::read_symlink(entry.path(), ec);
      if (ec || target.parent_path() != dir_) continue;
      std::ifstream info("/proc/self/fdinfo/" + entry.path().filename().string());
      std::string key;
      std::string flags;
      while (info >> key >> flags) {
        if (key == "flags:") break;
      }
      if (key == "flags:" && (std::stoul(flags, nullptr, 8) & O_DIRECT) != 0) ++n;
    }
    return n;
  }

  fs::path dir_;
};

TEST_F(DirectScanTest, ScopedReadsReturnTheFilesBytesThroughWindowsAndOthersReadAsOpened) {
  DirectScanFileSystem fs(rocksdb::FileSystem::Default());
  // Not a multiple of 4 KiB, and several windows long.
  const std::string a = Write("000011.sst", 3 * DirectScanScope::kWindowBytes + 12345, 1);
  const std::string b = Write("000012.sst", 100'000, 2);
  auto fa = Open(fs, "000011.sst");
  auto fb = Open(fs, "000012.sst");
  ASSERT_TRUE(fa && fb);

  // Without a scope: the ordinary read.
  EXPECT_EQ(ReadAt(*fa, 5000, 40'000), a.substr(5000, 40'000));
  EXPECT_EQ(DirectScanScope::Current(), nullptr);
  {
    DirectScanScope scope;
    ASSERT_EQ(DirectScanScope::Current(), &scope);
    // Sequential blocks of varying sizes over the whole file, interleaved with another file's reads (as a
    // merging iterator reads several table files).
    std::mt19937_64 rng(7);
    uint64_t off_a = 0, off_b = 0;
    while (off_a < a.size()) {
      const size_t n = 1 + rng() % 40'000;
      EXPECT_EQ(ReadAt(*fa, off_a, n), a.substr(off_a, n)) << "at " << off_a;
      off_a += n;
      if (off_b < b.size()) {
        const size_t m = 1 + rng() % 9'000;
        EXPECT_EQ(ReadAt(*fb, off_b, m), b.substr(off_b, m)) << "at " << off_b;
        off_b += m;
      }
    }
    // The windows read each region once: ~1.6 MB of one file and 100 kB of the other in reads of 64, 128, 256
    // and then 512 KiB, for well over fifty block reads.
    EXPECT_LE(scope.stats().window_reads, 10u);
    EXPECT_GT(scope.stats().copies, 50u);
    EXPECT_LT(scope.stats().bytes_read, a.size() + b.size() + 2 * DirectScanScope::kWindowBytes);
    // Backwards and random reads, a read past the end (short, as pread's), one at the very end.
    for (int i = 0; i < 200; ++i) {
      const uint64_t off = rng() % a.size();
      const size_t n = 1 + rng() % 20'000;
      EXPECT_EQ(ReadAt(*fa, off, n), a.substr(off, n)) << "at " << off;
    }
    EXPECT_EQ(ReadAt(*fa, a.size() - 10, 100), a.substr(a.size() - 10));
    EXPECT_EQ(ReadAt(*fa, a.size() + 4096, 100), "");
    // Prefetch is a no-op on a scanning thread.
    EXPECT_TRUE(fa->Prefetch(0, 1 << 20, rocksdb::IOOptions(), nullptr).ok());
    // MultiRead goes through the windows too.
    std::string s1(1000, '\0'), s2(3000, '\0');
    rocksdb::FSReadRequest reqs[2];
    reqs[0].offset = 70'000;
    reqs[0].len = 1000;
    reqs[0].scratch = s1.data();
    reqs[1].offset = 2 * DirectScanScope::kWindowBytes - 100;
    reqs[1].len = 3000;
    reqs[1].scratch = s2.data();
    ASSERT_TRUE(fa->MultiRead(reqs, 2, rocksdb::IOOptions(), nullptr).ok());
    EXPECT_EQ(reqs[0].result.ToString(), a.substr(70'000, 1000));
    EXPECT_EQ(reqs[1].result.ToString(), a.substr(2 * DirectScanScope::kWindowBytes - 100, 3000));

    const auto copies_before = scope.stats().copies;
    // A read larger than half a window goes to the file as opened, still correct.
    EXPECT_EQ(ReadAt(*fa, 1, DirectScanScope::kWindowBytes), a.substr(1, DirectScanScope::kWindowBytes));
    EXPECT_EQ(scope.stats().copies, copies_before);
    EXPECT_EQ(scope.stats().fallbacks, 1u);

    // Another thread without a scope reads as RocksDB opened the file, not through this thread's windows.
    std::thread other([&] {
      EXPECT_EQ(DirectScanScope::Current(), nullptr);
      EXPECT_EQ(ReadAt(*fb, 10, 500), b.substr(10, 500));
    });
    const auto copies = scope.stats().copies;
    other.join();
    EXPECT_EQ(scope.stats().copies, copies);

    // A nested scope leaves the outer one in charge.
    {
      DirectScanScope inner;
      EXPECT_EQ(DirectScanScope::Current(), &scope);
    }
    EXPECT_EQ(DirectScanScope::Current(), &scope);
  }
  EXPECT_EQ(DirectScanScope::Current(), nullptr);
}

TEST_F(DirectScanTest, MoreFilesThanWindowsAreServedByReplacingTheLeastRecentlyUsed) {
  DirectScanFileSystem fs(rocksdb::FileSystem::Default());
  std::vector<std::string> contents;
  std::vector<std::unique_ptr<rocksdb::FSRandomAccessFile>> files;
  const size_t count = DirectScanScope::kWindows * 2 + 3;
  for (size_t i = 0; i < count; ++i) {
    const std::string name = "0001" + std::to_string(10 + i) + ".sst";
    contents.push_back(Write(name, 200'000 + i * 999, 100 + i));
    files.push_back(Open(fs, name));
    ASSERT_TRUE(files.back());
  }
  DirectScanScope scope;
  std::mt19937_64 rng(3);
  for (int round = 0; round < 2000; ++round) {
    const size_t f = rng() % count;
    const uint64_t off = rng() % contents[f].size();
    const size_t n = 1 + rng() % 16'000;
    ASSERT_EQ(ReadAt(*files[f], off, n), contents[f].substr(off, n)) << "file " << f << " at " << off;
  }
  // Descriptors of replaced windows are closed: at most kWindows O_DIRECT descriptors stay open, none after
  // the scope.
  EXPECT_GT(DirectDescriptors(), 0u);
  EXPECT_LE(DirectDescriptors(), DirectScanScope::kWindows);
}

TEST_F(DirectScanTest, TheScopeClosesItsDescriptorsWhenItEnds) {
  DirectScanFileSystem fs(rocksdb::FileSystem::Default());
  const std::string content = Write("000021.sst", 300'000, 4);
  auto file = Open(fs, "000021.sst");
  ASSERT_TRUE(file);
  {
    DirectScanScope scope;
    EXPECT_EQ(ReadAt(*file, 1234, 5678), content.substr(1234, 5678));
    EXPECT_EQ(DirectDescriptors(), 1u);
  }
  EXPECT_EQ(DirectDescriptors(), 0u);
}

TEST_F(DirectScanTest, APointReadCostsOneSmallReadAndAScanRampsUpToWholeWindows) {
  DirectScanFileSystem fs(rocksdb::FileSystem::Default());
  const std::string content = Write("000031.sst", 4 * DirectScanScope::kWindowBytes, 5);
  auto file = Open(fs, "000031.sst");
  ASSERT_TRUE(file);
  DirectScanScope scope;
  // A footer-like read at the end, then an index-like read elsewhere: one small read each.
  EXPECT_EQ(ReadAt(*file, content.size() - 53, 53), content.substr(content.size() - 53));
  EXPECT_EQ(ReadAt(*file, 3 * DirectScanScope::kWindowBytes + 1000, 2000),
            content.substr(3 * DirectScanScope::kWindowBytes + 1000, 2000));
  EXPECT_EQ(scope.stats().window_reads, 2u);
  EXPECT_LE(scope.stats().bytes_read, 2 * DirectScanScope::kFirstReadBytes);
  // A sequential scan from the start: 64 + 128 + 256 + 3 x 512 KiB, then the last 64 KiB (a short read at the
  // end): 2 MiB in 7 reads, each byte read once.
  const auto before = scope.stats();
  for (uint64_t off = 0; off < content.size(); off += 32 * 1024) {
    ASSERT_EQ(ReadAt(*file, off, 32 * 1024), content.substr(off, 32 * 1024)) << "at " << off;
  }
  EXPECT_EQ(scope.stats().window_reads - before.window_reads, 7u);
  EXPECT_EQ(scope.stats().bytes_read - before.bytes_read, content.size());
}

TEST_F(DirectScanTest, OnlyTableFilesAreWrapped) {
  DirectScanFileSystem fs(rocksdb::FileSystem::Default());
  const std::string content = Write("MANIFEST-000005", 10'000, 9);
  auto file = Open(fs, "MANIFEST-000005");
  ASSERT_TRUE(file);
  DirectScanScope scope;
  EXPECT_EQ(ReadAt(*file, 100, 1000), content.substr(100, 1000));
  EXPECT_EQ(scope.stats().copies, 0u);
  EXPECT_EQ(scope.stats().window_reads, 0u);
}

}  // namespace
}  // namespace sluice::store::internal
