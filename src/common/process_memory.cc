#include "common/process_memory.h"

#include <malloc.h>

namespace sluice {

void KeepFreedMemory() {
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);  // allocations up to 32 MB come from (and return to) the heap
  ::mallopt(M_TRIM_THRESHOLD, 256 << 20);  // a free top of heap is kept up to 256 MB
}

}  // namespace sluice
