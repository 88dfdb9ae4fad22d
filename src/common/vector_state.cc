#include "common/vector_state.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#include <cstdint>
#endif

namespace sluice {

#if defined(__x86_64__)
namespace {

bool HasAvx() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx");
  }();
  return has;
}

/// XGETBV with ECX=1 (the XINUSE bitmap) exists where CPUID.(EAX=0DH,ECX=1):EAX bit 2 says so.
bool HasXinuse() {
  static const bool has = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!HasAvx() || __get_cpuid_max(0, nullptr) < 0xD) return false;
    __cpuid_count(0xD, 1, a, b, c, d);
    return (a & (1u << 2)) != 0;
  }();
  return has;
}

__attribute__((target("avx"))) void ZeroUpper() { _mm256_zeroupper(); }

}  // namespace

void ClearUpperVectorState() {
  if (HasAvx()) ZeroUpper();
}

bool UpperVectorStateDirty() {
  if (!HasXinuse()) return false;
  uint32_t lo = 0, hi = 0;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(1));
  (void)hi;
  constexpr uint32_t kYmmUpper = 1u << 2, kZmmHi256 = 1u << 6;
  return (lo & (kYmmUpper | kZmmHi256)) != 0;
}

#else

void ClearUpperVectorState() {}
bool UpperVectorStateDirty() { return false; }

#endif

}  // namespace sluice
