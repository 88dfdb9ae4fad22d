// Imports one object of the customer's bucket: stream it (ObjectStore::GetStreaming), inflate and split it
// into lines (LineReader), shape each line for its format (records.h), validate batches with the same code as
// /import and /engage (ingest::ParseEvents with the /import rules, ingest::ParseProfileUpdates +
// ApplyProfileUpdate) and write them to the store. An invalid line is dropped, counted and reported with its
// line number; the rest of the file is imported.
//
// Exactly-once-ish: every event has a $insert_id (its own, or one derived from the line's content,
// InsertIdDeriver), so writing a batch twice stores each event once (the store deduplicates). `skip_lines`
// lets a restart resume after the lines a checkpoint says are stored.
//
// Memory is bounded by the LineReader's buffers plus one batch (≤ 2000 records, ≤ 10 MB, SPEC §3's /import
// limits).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "cloudimport/connector.h"
#include "cloudimport/line_reader.h"
#include "cloudimport/records.h"
#include "common/clock.h"
#include "common/geoip.h"
#include "common/result.h"
#include "common/string_cache_set.h"
#include "objstore/object_store.h"
#include "store/store.h"

namespace sluice::cloudimport {

struct FileProgress {
  /// Lines of the decompressed file whose records are stored or were dropped: a restart may skip them.
  uint64_t lines_done = 0;
  uint64_t events_processed = 0;  // non-blank lines handled (this import only, skipped lines excluded)
  uint64_t events_imported = 0;   // records stored
  uint64_t events_dropped = 0;    // invalid lines
  uint64_t bytes_read = 0;        // object bytes received (compressed)
};

struct FileImportOptions {
  const ConnectorSpec* spec = nullptr;
  /// The project's token (profile updates carry it through validation).
  std::string project_token;
  std::string key;
  /// Lines already stored by an earlier, interrupted import of the same object version.
  uint64_t skip_lines = 0;
  /// Country database: an event's `ip` property and a profile update's `$ip` give its country (neither
  /// address is stored). Null = no countries.
  const CountryLookup* geoip = nullptr;
  /// How lines without a $insert_id get one: the scheme of the file's first import (its checkpoint).
  InsertIdScheme insert_id_scheme = InsertIdScheme::kContent;
  const Clock* clock = &SystemClock::Instance();
  /// An invalid line: its 1-based line number and why it was dropped.
  std::function<void(uint64_t line, const std::string& reason)> on_error;
  /// After each commit: every 8000 lines (four /import-sized batches) the validated events are durably
  /// written and `progress` advances.
  std::function<void(const FileProgress&)> on_commit;
  /// Polled between batches and chunks; true stops the import with kCancelled.
  std::function<bool()> cancelled;
  /// Devices whose identity link this run already stored (or found stored): their links are not sent again.
  /// The store keeps the first link of a device, so re-sending one is a no-op that costs a lookup per event;
  /// a device the cache does not know (never stored, forgotten, or not kept) is simply sent. Shared by the
  /// files of a run; bounded (kMaxLinkedDevices, kMaxLinkedDeviceBytes). Null = no cache.
  StringCacheSet* linked_devices = nullptr;
  /// Bounds of the file's data (LineReader::Options): inflated size and gzip inflation ratio.
  uint64_t max_file_bytes = kMaxFileBytes;
  uint64_t max_inflation_ratio = kMaxInflationRatio;
  uint64_t inflation_check_after = kInflationCheckAfterBytes;
};

/// Bounds of FileImportOptions::linked_devices: its table is 8 MB, its strings at most 16 MB.
inline constexpr size_t kMaxLinkedDevices = 200'000;
inline constexpr size_t kMaxLinkedDeviceBytes = 16u << 20;

/// Imports `options.key` from `source` into `store` for project `spec->project_id`. `progress` holds what was
/// done even when an error is returned. Errors: the source's (kAccessDenied, kNotFound, kTransient…),
/// kInvalidArgument for a compression mismatch, corrupt gzip, more data than `max_file_bytes` or a gzip bomb
/// (the file is unusable as it is), the store's, or kCancelled.
Status ImportFile(objstore::ObjectStore& source, store::Store& store, const FileImportOptions& options,
                  FileProgress& progress);

/// Rewrites an ingest message about line `n` of a batch so it describes the line on its own: drops the
/// "line N " prefix and makes "at byte B" relative to the line (which started at byte `line_start` of the
/// batch).
std::string LocaliseMessage(std::string_view message, size_t line_start);

}  // namespace sluice::cloudimport
