// Clock: every time-dependent component takes one so tests can drive time by hand.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace sluice {

using TimePoint = std::chrono::system_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  /// Wall-clock time (UTC).
  virtual TimePoint Now() const = 0;
  int64_t NowMillis() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Now().time_since_epoch()).count();
  }
};

class SystemClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::system_clock::now(); }
  /// Process-wide instance.
  static const SystemClock& Instance();
};

/// A clock that only moves when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start) : now_us_(ToMicros(start)) {}
  TimePoint Now() const override {
    return TimePoint(std::chrono::microseconds(now_us_.load(std::memory_order_relaxed)));
  }
  void Set(TimePoint t) { now_us_.store(ToMicros(t)); }
  void Advance(std::chrono::microseconds d) { now_us_.fetch_add(d.count()); }

 private:
  static int64_t ToMicros(TimePoint t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  }
  std::atomic<int64_t> now_us_;
};

}  // namespace sluice
