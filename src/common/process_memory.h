// How a long-running server process holds its heap memory.
#pragma once

namespace sluice {

/// Makes glibc keep the memory the process frees instead of handing it back to the kernel and faulting it in
/// again on the next request. With glibc's defaults a freed top of heap over 128 KB is returned and every
/// allocation between 128 KB and its dynamic threshold (up to 32 MB) is a fresh mmap, so each 2000-event
/// batch's ~2 MB buffers (inflated body, parser index, write batch) paid hundreds of page faults, several µs
/// each on virtual machines. Peak memory is unchanged: what the process held at its peak stays resident.
/// Call once, before the threads that serve requests start.
void KeepFreedMemory();

}  // namespace sluice
