// chstore::VersionClock: the version stamped on every row Sluice writes to ClickHouse (events, change rows,
// profile operations, identity links). ReplacingMergeTree keeps the row with the highest version, so a later
// write of the same dedup key wins; profile operations fold in version order.
//
// A version is the node's wall clock in microseconds, made strictly increasing per process (two writes in one
// microsecond, or a clock stepped back, still get increasing versions). Across nodes, versions order writes
// as far as the nodes' clocks agree (NTP keeps them within milliseconds); the change-tracking watermark
// allows for that skew (events.h).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "common/clock.h"

namespace sluice::chstore {

class VersionClock {
 public:
  /// `clock` is not owned and must outlive this; nullptr = SystemClock::Instance().
  explicit VersionClock(const Clock* clock = nullptr) : clock_(clock ? clock : &SystemClock::Instance()) {}

  /// A version larger than every one this object returned before.
  uint64_t Next() {
    const uint64_t now = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(clock_->Now().time_since_epoch()).count());
    uint64_t last = last_.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t next = now > last ? now : last + 1;
      if (last_.compare_exchange_weak(last, next, std::memory_order_relaxed)) return next;
    }
  }

 private:
  const Clock* clock_;
  std::atomic<uint64_t> last_{0};
};

}  // namespace sluice::chstore
