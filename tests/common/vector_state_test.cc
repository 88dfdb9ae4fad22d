#include "common/vector_state.h"

#include <gtest/gtest.h>
#include <isa-l/crc.h>

#include <string>
#include <thread>

#include "common/crypto.h"

namespace sluice {
namespace {

#if defined(__x86_64__)
/// What isa-l's AVX routines do: write a 256-bit register and return without VZEROUPPER. Inline asm in a
/// function compiled for plain x86-64, so the compiler adds none of the VZEROUPPERs it puts after AVX code.
/// Only called where the CPU has AVX (VCMPPS with the TRUE predicate: AVX, not AVX2; all ones, so the upper
/// halves are not in their initial, all-zero state).
void LeaveUpperStateDirty() { asm volatile("vcmpps $15, %%ymm0, %%ymm0, %%ymm0" ::: "xmm0"); }
bool CpuHasAvx() { return __builtin_cpu_supports("avx"); }
#endif

// The state is per thread: each check runs on a thread of its own, so nothing earlier in the test binary
// decides the outcome.
template <typename F>
void OnFreshThread(F f) {
  std::thread t(f);
  t.join();
}

TEST(VectorState, ClearUndoesWhatAvxCodeLeavesAndTheCheckSeesIt) {
#if defined(__x86_64__)
  if (!CpuHasAvx()) {
    OnFreshThread([] {
      ClearUpperVectorState();  // a no-op without AVX: must not fault
      EXPECT_FALSE(UpperVectorStateDirty());
    });
    return;
  }
  OnFreshThread([] {
    ClearUpperVectorState();
    const bool clean_before = !UpperVectorStateDirty();
    LeaveUpperStateDirty();
    const bool dirty = UpperVectorStateDirty();
    ClearUpperVectorState();
    const bool clean_after = !UpperVectorStateDirty();
    EXPECT_TRUE(clean_before);
    // A CPU without XGETBV(1) cannot tell, and UpperVectorStateDirty() says false there; this VM's EPYC can.
    if (__builtin_cpu_supports("avx512f")) {
      EXPECT_TRUE(dirty);
    }
    EXPECT_TRUE(clean_after);
  });
#else
  OnFreshThread([] {
    ClearUpperVectorState();
    EXPECT_FALSE(UpperVectorStateDirty());
  });
#endif
}

TEST(VectorState, Crc32cReturnsWithTheUpperStateClean) {
  OnFreshThread([] {
    const std::string data(64 * 1024, 'x');
    ClearUpperVectorState();
    // isa-l itself, as a control: on CPUs where it picks an AVX-512 routine it returns with the state dirty.
    auto* bytes = reinterpret_cast<unsigned char*>(const_cast<char*>(data.data()));
    crc32_iscsi(bytes, static_cast<int>(data.size()), 0);
    const bool isal_left_it_dirty = UpperVectorStateDirty();
    ClearUpperVectorState();
    EXPECT_EQ(Crc32c(data), Crc32c(data));
    EXPECT_FALSE(UpperVectorStateDirty()) << "isa-l left it dirty on its own: " << isal_left_it_dirty;
  });
}

}  // namespace
}  // namespace sluice
