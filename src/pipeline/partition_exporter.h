// Exports one partition — an events unit (a day or an hour) or a people/identity snapshot — to a destination:
//
//   1. scan the store, filter (event whitelist + `where`), encode one JSON record per line, compress, and upload
//      data files named for (partition, generation, part) — streaming, with bounded memory;
//   2. write manifest.json listing exactly those files (replacing the previous generation's manifest);
//   3. write the empty `complete` marker;
//   4. delete the files of earlier generations: the ones the previous manifest listed and any left behind by
//      attempts that never reached step 2 (found by probing their deterministic names, so the cleanup needs
//      no ListBucket on a prefix).
// A reader that follows the manifest therefore sees every record once at every moment. The caller (the
// manager) picks a new generation for every attempt and persists it first, so a retried or resumed export
// never rewrites a file a published manifest lists.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "expr/where.h"
#include "objstore/object_store.h"
#include "pipeline/file_set_writer.h"
#include "pipeline/layout.h"
#include "pipeline/manifest.h"
#include "pipeline/pipeline.h"
#include "store/store.h"

namespace sluice::pipeline {

/// Which events of a partition a pipeline exports (SPEC §4 `events`, `where`).
class EventSelector {
 public:
  /// kInvalidArgument with the expression's positioned message when `where` does not parse.
  static Result<EventSelector> Create(const std::vector<std::string>& events, const std::string& where);
  bool Accepts(const store::EventView& event) const;
  bool selects_all() const { return names_.empty() && !where_; }

 private:
  // Transparent hashing: looking up a scanned event's name needs no std::string per event.
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_set<std::string, NameHash, std::equal_to<>> names_;
  std::optional<expr::WhereFilter> where_;
};

/// A generation an earlier attempt may have left files of (it never published a manifest).
struct AbandonedGeneration {
  uint64_t generation = 0;
  Compression compression = Compression::kGzip;
};

struct ExportJob {
  uint32_t project = 0;
  std::string pipeline;
  DataSource source = DataSource::kEvents;
  Unit unit;  // events only
  uint64_t generation = 1;
  /// Recorded in the manifest: every store write with a lower change sequence is included.
  uint64_t change_seq = 0;
  Compression compression = Compression::kGzip;
  const EventSelector* selector = nullptr;  // events only; null = every event
  /// Cleanup after the new manifest is in place.
  std::vector<std::string> previous_files;  // keys the previous manifest listed
  std::vector<AbandonedGeneration> abandoned;
};

struct ExporterOptions {
  FileSetOptions files;  // compression is taken from the job
  /// Encoded bytes handed to the file writer at a time. At least files.block_bytes, a batch becomes one
  /// compression block as it is (FileSetWriter::AppendTaking), without being copied.
  size_t batch_bytes = 1 << 20;
  /// Upper bound when probing an abandoned generation's parts.
  int max_parts = 100'000;
  /// Polled between batches; true stops the export with kCancelled (pause, cancel, shutdown). Nothing published
  /// changes; the attempt's generation is cleaned up by the next one.
  std::function<bool()> cancelled;
  const Clock* clock = &SystemClock::Instance();
};

struct ExportResult {
  Manifest manifest;
  std::string dir;
  size_t deleted_files = 0;
  /// Old files whose delete failed after the manifest was published: harmless to readers (not listed), retried
  /// by the next export of the partition.
  std::vector<std::string> undeleted;
};

/// Runs steps 1–4 for `job`. On an error nothing published changes (the previous manifest stays valid); once
/// the manifest is published the export has succeeded and failed deletes are reported in `undeleted`.
Result<ExportResult> ExportPartition(store::Store& store, objstore::ObjectStore& destination, const ExportJob& job,
                                     const ExporterOptions& options = {});

/// The partition's directory for `job` (events unit dir or snapshot dir).
std::string PartitionDir(const ExportJob& job);

}  // namespace sluice::pipeline
