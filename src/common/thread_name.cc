#include "common/thread_name.h"

#include <pthread.h>

#include <algorithm>

namespace sluice {
namespace {
constexpr size_t kMaxNameBytes = 15;  // TASK_COMM_LEN - 1
}  // namespace

void SetCurrentThreadName(std::string_view name) {
  char buf[kMaxNameBytes + 1] = {};
  const size_t n = std::min(name.size(), kMaxNameBytes);
  name.copy(buf, n);
  (void)::pthread_setname_np(::pthread_self(), buf);
}

std::string CurrentThreadName() {
  char buf[kMaxNameBytes + 1] = {};
  if (::pthread_getname_np(::pthread_self(), buf, sizeof(buf)) != 0) return {};
  return buf;
}

}  // namespace sluice
