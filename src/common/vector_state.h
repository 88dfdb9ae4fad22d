// The upper halves of the AVX registers, left dirty by isa-l, cleared before our code goes on.
//
// isa-l's hand-written AVX2/AVX-512 routines (CRC32C, CRC-32, deflate, inflate) return without VZEROUPPER
// (intel/isa-l#24: "maybe do vzeroupper yourself"). Until something clears them, every legacy-SSE
// (non-VEX) instruction the thread runs afterwards pays an AVX-SSE transition penalty — and most of the
// process is legacy SSE: RocksDB from Debian is a portable x86-64 build (its XXH3 block checksums, its
// iterators), and so is our own code and simdjson's "westmere" ingest parser. Measured on this project's
// EPYC VM: RocksDB's XXH3 over a 32 KiB block took 1.6 us on a clean thread and 7.0 us after one
// crc32_iscsi() (docs/operations.md, "Dirty AVX state"). The state is per thread and lasts until something
// clears it: the export's scanning thread wrote its unit's state through the journal (a CRC32C) just before
// its scan, and every block checksum of the scan then ran ~4x slower.
//
// Every call into isa-l goes through a wrapper that calls ClearUpperVectorState() before returning.
#pragma once

namespace sluice {

/// VZEROUPPER where the CPU has AVX (nothing elsewhere). Cheap: call it after each call into isa-l.
void ClearUpperVectorState();

/// Whether this thread's AVX upper state is in use, i.e. whether the next legacy-SSE instruction would pay
/// the transition penalty: XGETBV(1)'s YMM and ZMM_Hi256 bits. False where the CPU cannot tell (no AVX,
/// or no XGETBV with ECX=1). For tests.
bool UpperVectorStateDirty();

}  // namespace sluice
