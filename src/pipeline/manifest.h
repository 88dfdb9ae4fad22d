// manifest.json: the list of a partition's current files, written after the files and before `complete`.
// A reader that follows it sees every record exactly once (SPEC §4, §7). Format (docs/pipelines.md#manifest):
//   {"version":1,"pipeline":"events-daily-s3","project_id":3,"data_source":"events","partition":"2026-11-20",
//    "generation":4,"change_seq":1234,"created_at":"2026-11-21T00:31:02Z","compression":"gzip",
//    "record_count":10,"uncompressed_bytes":5000,"bytes":900,
//    "files":[{"name":"sluice-g000004-p00000.json.gz","key":"3/mp_master_event/2026/11/20/sluice-…",
//              "records":10,"bytes":900,"uncompressed_bytes":5000,"sha256":"…"}]}
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::pipeline {

struct ManifestFile {
  std::string name;  // file name within the partition directory
  std::string key;   // key relative to the destination root (the customer's prefix is not included)
  uint64_t records = 0;
  uint64_t bytes = 0;
  uint64_t uncompressed_bytes = 0;
  std::string sha256;  // hex, of the stored object bytes
  bool operator==(const ManifestFile&) const = default;
};

struct Manifest {
  int version = 1;
  std::string pipeline;
  uint32_t project_id = 0;
  std::string data_source;  // events | people | identity
  std::string partition;    // unit label or "snapshot"
  uint64_t generation = 0;
  /// The store change sequence the export covers: every event written with a lower sequence is included.
  uint64_t change_seq = 0;
  std::string created_at;  // RFC 3339 UTC
  std::string compression;
  std::vector<ManifestFile> files;

  uint64_t record_count() const;
  uint64_t bytes() const;
  uint64_t uncompressed_bytes() const;
  bool operator==(const Manifest&) const = default;
};

/// Pretty-enough JSON (one line per file) for people who open it.
std::string ManifestToJson(const Manifest& manifest);
/// kInvalidArgument naming the problem when `json` is not a manifest of a known version.
Result<Manifest> ParseManifest(std::string_view json);

/// RFC 3339 UTC with seconds, e.g. "2026-11-21T00:31:02Z".
std::string FormatTimestamp(int64_t epoch_ms);

}  // namespace sluice::pipeline
