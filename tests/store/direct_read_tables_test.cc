// Tests of DirectReadTables (store/direct_read_tables.h): one column family's table files are opened for
// reading with O_DIRECT, every other file through the page cache, and both read back what was written.
#include "store/direct_read_tables.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sluice::store::internal {
namespace {

namespace fs = std::filesystem;

/// The open flags (octal, as /proc prints them) of each table file this process has open, by file name.
std::map<std::string, long> OpenTableFileFlags() {
  std::map<std::string, long> out;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const fs::path target = fs::read_symlink(entry.path(), ec);
    if (ec || target.extension() != ".sst") continue;
    std::ifstream info("/proc/self/fdinfo/" + entry.path().filename().string());
    std::string key, value;
    while (info >> key >> value) {
      if (key == "flags:") out[target.filename().string()] = std::stol(value, nullptr, 8);
    }
  }
  return out;
}

TEST(DirectReadTables, OpensOnlyTheNamedColumnFamilysTablesWithODirect) {
  // Under the working directory (the build tree), not /tmp, which may be a tmpfs without O_DIRECT.
  const fs::path dir = fs::current_path() / ("direct_read_tables_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    const int probe = ::open((dir / "probe").c_str(), O_CREAT | O_WRONLY | O_DIRECT | O_CLOEXEC, 0600);
    ASSERT_GE(probe, 0) << "the build tree's file system should take O_DIRECT";
    ::close(probe);
  }

  auto tables = std::make_shared<DirectReadTables>(rocksdb::FileSystem::Default(), "events");
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(tables);
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.env = env.get();
  db_options.use_direct_io_for_flush_and_compaction = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {{"default", {}}, {"events", {}}, {"profiles", {}}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(db_options, (dir / "db").string(), cfs, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);

  for (int i = 0; i < 1000; ++i) {
    const std::string key = "key-" + std::to_string(i);
    ASSERT_TRUE(db->Put({}, handles[1], key, "event " + std::to_string(i) + std::string(200, 'e')).ok());
    ASSERT_TRUE(db->Put({}, handles[2], key, "profile " + std::to_string(i)).ok());
  }
  ASSERT_TRUE(db->Flush({}, {handles[1], handles[2]}).ok());

  // Both column families read back exactly (a scan of one, point reads of the other), from their tables.
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}, handles[1]));
  int events = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ASSERT_EQ(it->value().ToString().rfind("event ", 0), 0u);
    ++events;
  }
  ASSERT_TRUE(it->status().ok()) << it->status().ToString();
  EXPECT_EQ(events, 1000);
  std::string value;
  ASSERT_TRUE(db->Get({}, handles[2], "key-77", &value).ok());
  EXPECT_EQ(value, "profile 77");

  // Each table file is open with O_DIRECT exactly when it belongs to "events".
  std::vector<rocksdb::LiveFileMetaData> live;
  db->GetLiveFilesMetaData(&live);
  const auto flags = OpenTableFileFlags();
  int checked_events = 0, checked_other = 0;
  for (const auto& f : live) {
    const std::string name = fs::path(f.name).filename().string();
    auto open = flags.find(name);
    ASSERT_NE(open, flags.end()) << name << " of " << f.column_family_name << " is not open";
    const bool direct = (open->second & O_DIRECT) != 0;
    if (f.column_family_name == "events") {
      EXPECT_TRUE(direct) << name << " (events) should be open with O_DIRECT";
      ++checked_events;
    } else {
      EXPECT_FALSE(direct) << name << " (" << f.column_family_name << ") should use the page cache";
      ++checked_other;
    }
  }
  EXPECT_EQ(checked_events, 1);
  EXPECT_EQ(checked_other, 1);
  EXPECT_GE(tables->stats().direct, 1u);
  EXPECT_GE(tables->stats().buffered, 1u);

  it.reset();
  for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  ASSERT_TRUE(db->Close().ok());
  db.reset();
  env.reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sluice::store::internal
