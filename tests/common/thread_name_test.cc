#include "common/thread_name.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

namespace sluice {
namespace {

/// The kernel's name of thread `tid` of this process, as top, ps and perf read it.
std::string KernelName(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

TEST(ThreadName, NamesTheCallingThreadAsTheKernelShowsIt) {
  std::thread([] {
    SetCurrentThreadName("sl-test");
    EXPECT_EQ(CurrentThreadName(), "sl-test");
    EXPECT_EQ(KernelName(::gettid()), "sl-test");
  }).join();
}

TEST(ThreadName, ALongNameIsCutAtFifteenBytes) {
  std::thread([] {
    SetCurrentThreadName("sl-a-name-longer-than-fifteen-bytes");
    EXPECT_EQ(CurrentThreadName(), "sl-a-name-longe");
    EXPECT_EQ(KernelName(::gettid()), "sl-a-name-longe");
  }).join();
}

TEST(ThreadName, AScopedNameGivesTheOldOneBack) {
  std::thread([] {
    SetCurrentThreadName("sl-worker");
    {
      ScopedThreadName role("sl-export");
      EXPECT_EQ(KernelName(::gettid()), "sl-export");
    }
    EXPECT_EQ(KernelName(::gettid()), "sl-worker");
  }).join();
}

TEST(ThreadName, OtherThreadsKeepTheirNames) {
  const std::string before = CurrentThreadName();
  std::thread([] { SetCurrentThreadName("sl-other"); }).join();
  EXPECT_EQ(CurrentThreadName(), before);
}

}  // namespace
}  // namespace sluice
