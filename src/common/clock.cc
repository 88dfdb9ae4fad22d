#include "common/clock.h"

namespace sluice {

const SystemClock& SystemClock::Instance() {
  static const SystemClock clock;
  return clock;
}

}  // namespace sluice
