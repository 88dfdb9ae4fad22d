#include "api/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace sluice::api {

int64_t RateLimiter::Acquire(uint32_t project, uint64_t bytes) {
  if (rate_ == 0) return 0;
  const double capacity = static_cast<double>(rate_);
  const double per_us = capacity / 60e6;
  const int64_t now_us =
      std::chrono::duration_cast<std::chrono::microseconds>(clock_.Now().time_since_epoch()).count();
  std::lock_guard lock(mu_);
  auto [it, inserted] = buckets_.try_emplace(project);
  Bucket& b = it->second;
  if (inserted) {
    b.tokens = capacity;
  } else if (now_us > b.last_us) {
    b.tokens = std::min(capacity, b.tokens + static_cast<double>(now_us - b.last_us) * per_us);
  }
  b.last_us = std::max(b.last_us, now_us);
  const double need = static_cast<double>(bytes);
  // A request larger than a whole minute's allowance is admitted once the bucket is full and leaves it in
  // debt (negative), so it is neither refused forever nor a way past the rate: the next bytes wait until the
  // debt is refilled.
  if (b.tokens >= std::min(need, capacity)) {
    b.tokens -= need;
    return 0;
  }
  const double deficit = std::min(need, capacity) - b.tokens;
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(deficit / per_us / 1e6)));
}

}  // namespace sluice::api
