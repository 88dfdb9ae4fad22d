#include "pipeline/partition_exporter.h"

#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "pipeline/record_encoder.h"

namespace sluice::pipeline {
namespace {

std::string_view ContentType(Compression c) {
  switch (c) {
    case Compression::kGzip: return "application/gzip";
    case Compression::kZstd: return "application/zstd";
    case Compression::kNone: return "application/x-ndjson";
  }
  return "application/octet-stream";
}

int64_t NowMs(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.Now().time_since_epoch()).count();
}

/// Feeds encoded lines to the writer in batches of about `batch_bytes`.
class Batcher {
 public:
  Batcher(FileSetWriter& writer, size_t batch_bytes, const std::function<bool()>& cancelled)
      : writer_(writer), batch_bytes_(batch_bytes), cancelled_(cancelled) {
    buf_.reserve(batch_bytes + 64 * 1024);
  }
  std::string& buffer() { return buf_; }
  /// Call after appending one record; false when the writer failed (status() says why).
  bool Added() {
    ++records_;
    if (buf_.size() >= batch_bytes_) return Flush();
    return true;
  }
  bool Flush() {
    if (cancelled_ && cancelled_()) {
      status_ = Error(ErrorCode::kCancelled, "export interrupted (pipeline paused, canceled or server stopping)");
      return false;
    }
    if (records_ == 0) return status_.ok();
    status_ = writer_.AppendTaking(buf_, records_);  // hands a full batch over as a block, without a copy
    buf_.reserve(batch_bytes_ + 64 * 1024);          // the buffer handed back may be a block's size exactly
    records_ = 0;
    return status_.ok();
  }
  const Status& status() const { return status_; }

 private:
  FileSetWriter& writer_;
  size_t batch_bytes_;
  const std::function<bool()>& cancelled_;
  std::string buf_;
  uint64_t records_ = 0;
  Status status_;
};

/// Step 1: the data files.
Result<std::vector<FileEntry>> WriteDataFiles(store::Store& store, objstore::ObjectStore& destination,
                                              const ExportJob& job, const ExporterOptions& options,
                                              const std::string& dir) {
  FileSetOptions fo = options.files;
  fo.compression = job.compression;
  objstore::PutOptions po;
  po.content_type = std::string(ContentType(job.compression));
  FileSetWriter writer(
      destination,
      [&](int part) { return fmt::format("{}/{}", dir, DataFileName(job.generation, part, job.compression)); }, fo,
      po);
  Batcher batcher(writer, options.batch_bytes, options.cancelled);
  std::string device_distinct_id;
  Status scan;
  switch (job.source) {
    case DataSource::kEvents:
      // One scan for the whole unit (a day is 24 partitions): one store iterator and snapshot.
      scan =
          store.ScanPartitions(job.project, static_cast<store::Hour>(job.unit.first_hour),
                               static_cast<store::Hour>(job.unit.end_hour()), [&](const store::EventView& e) {
                                 if (job.selector && !job.selector->Accepts(e)) return true;
                                 AppendEventRecord(e, batcher.buffer());
                                 return batcher.Added();
                               });
      break;
    case DataSource::kPeople:
      scan = store.ScanProfiles(job.project, /*after=*/{},
                                [&](std::string_view distinct_id, std::string_view profile) {
                                  AppendPeopleRecord(distinct_id, profile, batcher.buffer());
                                  return batcher.Added();
                                });
      break;
    case DataSource::kIdentity:
      // The anonymous distinct_id is the one events carrying only that device id get (Simplified ID Merge:
      // "$device:<device_id>"), so the file joins to exported events on distinct_id.
      scan = store.ScanIdentity(job.project, [&](std::string_view device_id, std::string_view user_id) {
        if (device_id.starts_with("$device:")) {
          AppendIdentityRecord(device_id, user_id, batcher.buffer());
        } else {
          device_distinct_id.assign("$device:").append(device_id);
          AppendIdentityRecord(device_distinct_id, user_id, batcher.buffer());
        }
        return batcher.Added();
      });
      break;
  }
  if (scan.ok()) batcher.Flush();
  if (!batcher.status().ok()) {
    writer.Abort();
    return batcher.status().error().WithContext("uploading data files");
  }
  if (!scan.ok()) {
    writer.Abort();
    return scan.error().WithContext("reading the store");
  }
  return writer.Finish();
}

/// Keys of an abandoned generation's visible parts: parts complete in order, so probe until the first missing.
Result<std::vector<std::string>> ProbeAbandoned(objstore::ObjectStore& destination, const std::string& dir,
                                                const AbandonedGeneration& g, int first_part, int max_parts) {
  std::vector<std::string> keys;
  for (int part = first_part; part < max_parts; ++part) {
    std::string key = fmt::format("{}/{}", dir, DataFileName(g.generation, part, g.compression));
    auto head = destination.Head(key);
    if (!head.ok()) {
      if (head.error().code == ErrorCode::kNotFound) break;
      return head.error();
    }
    keys.push_back(std::move(key));
  }
  return keys;
}

}  // namespace

Result<EventSelector> EventSelector::Create(const std::vector<std::string>& events, const std::string& where) {
  EventSelector s;
  s.names_.insert(events.begin(), events.end());
  if (!where.empty()) {
    SLUICE_ASSIGN_OR_RETURN(expr::WhereFilter filter, expr::WhereFilter::Compile(where));
    s.where_.emplace(std::move(filter));
  }
  return s;
}

bool EventSelector::Accepts(const store::EventView& e) const {
  if (!names_.empty() && !names_.contains(e.name)) return false;
  if (!where_) return true;
  expr::EventFields f;
  f.name = e.name;
  f.time_us = e.time_us;
  f.distinct_id = e.distinct_id;
  f.device_id = e.device_id;
  f.user_id = e.user_id;
  f.insert_id = e.insert_id;
  f.properties = e.properties;
  return where_->Matches(f);
}

std::string PartitionDir(const ExportJob& job) {
  return job.source == DataSource::kEvents ? EventsUnitDir(job.project, job.unit) : SnapshotDir(job.project, job.source);
}

Result<ExportResult> ExportPartition(store::Store& store, objstore::ObjectStore& destination, const ExportJob& job,
                                     const ExporterOptions& options) {
  ExportResult result;
  result.dir = PartitionDir(job);
  const std::string& dir = result.dir;

  SLUICE_ASSIGN_OR_RETURN(std::vector<FileEntry> files, WriteDataFiles(store, destination, job, options, dir));

  Manifest& m = result.manifest;
  m.pipeline = job.pipeline;
  m.project_id = job.project;
  m.data_source = std::string(ToString(job.source));
  m.partition = job.source == DataSource::kEvents ? UnitLabel(job.unit) : "snapshot";
  m.generation = job.generation;
  m.change_seq = job.change_seq;
  m.created_at = FormatTimestamp(NowMs(*options.clock));
  m.compression = std::string(ToString(job.compression));
  for (FileEntry& f : files) {
    ManifestFile mf;
    mf.key = f.key;
    mf.name = f.key.substr(dir.size() + 1);
    mf.records = f.records;
    mf.bytes = f.bytes;
    mf.uncompressed_bytes = f.uncompressed_bytes;
    mf.sha256 = std::move(f.sha256);
    m.files.push_back(std::move(mf));
  }

  // Abandoned generations are probed before publishing so that a probe error fails the export cleanly.
  // Also parts of this generation beyond the last one written now: an earlier try of the same attempt may
  // have produced more parts before failing.
  std::vector<std::string> stale = job.previous_files;
  std::vector<AbandonedGeneration> probes = job.abandoned;
  probes.push_back({job.generation, job.compression});
  for (const AbandonedGeneration& g : probes) {
    const int first_part = g.generation == job.generation ? static_cast<int>(files.size()) : 0;
    SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> keys,
                            ProbeAbandoned(destination, dir, g, first_part, options.max_parts));
    stale.insert(stale.end(), keys.begin(), keys.end());
  }

  objstore::PutOptions json_put;
  json_put.content_type = "application/json";
  if (auto put = destination.Put(fmt::format("{}/{}", dir, kManifestName), ManifestToJson(m), json_put); !put.ok()) {
    return put.error().WithContext("writing manifest.json");
  }
  objstore::PutOptions marker_put;
  marker_put.content_type = "text/plain";
  if (auto put = destination.Put(fmt::format("{}/{}", dir, kCompleteName), std::string(), marker_put); !put.ok()) {
    return put.error().WithContext("writing the complete marker");
  }

  std::unordered_set<std::string> current;
  for (const ManifestFile& f : m.files) current.insert(f.key);
  for (const std::string& key : stale) {
    if (current.contains(key)) continue;
    if (auto del = destination.Delete(key); !del.ok()) {
      spdlog::warn("pipeline {}: could not delete superseded file {}: {} (retried at the next export)", job.pipeline,
                   key, del.error().message);
      result.undeleted.push_back(key);
    } else {
      ++result.deleted_files;
    }
  }
  return result;
}

}  // namespace sluice::pipeline
