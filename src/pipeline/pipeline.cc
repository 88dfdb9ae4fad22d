#include "pipeline/pipeline.h"

#include <filesystem>

namespace sluice::pipeline {

std::string_view ToString(DataSource v) {
  switch (v) {
    case DataSource::kEvents: return "events";
    case DataSource::kPeople: return "people";
    case DataSource::kIdentity: return "identity";
  }
  return "events";
}
std::string_view ToString(Frequency v) { return v == Frequency::kHourly ? "hourly" : "daily"; }
std::string_view ToString(Compression v) {
  switch (v) {
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
    case Compression::kNone: return "none";
  }
  return "gzip";
}
std::string_view ToString(DestinationType v) {
  switch (v) {
    case DestinationType::kS3: return "s3";
    case DestinationType::kGcs: return "gcs";
    case DestinationType::kLocal: return "local";
    case DestinationType::kAzure: return "azure";
  }
  return "s3";
}
std::string_view ToString(PipelineStatus v) {
  switch (v) {
    case PipelineStatus::kActive: return "active";
    case PipelineStatus::kPaused: return "paused";
    case PipelineStatus::kCanceled: return "canceled";
    case PipelineStatus::kFinished: return "finished";
  }
  return "active";
}
std::string_view ToString(TaskState v) {
  switch (v) {
    case TaskState::kPending: return "pending";
    case TaskState::kRunning: return "running";
    case TaskState::kRetried: return "retried";
    case TaskState::kFailed: return "failed";
    case TaskState::kCanceled: return "canceled";
    case TaskState::kTimedOut: return "timed_out";
    case TaskState::kSucceeded: return "succeeded";
  }
  return "pending";
}

std::optional<DataSource> ParseDataSource(std::string_view s) {
  if (s == "events") return DataSource::kEvents;
  if (s == "people") return DataSource::kPeople;
  if (s == "identity") return DataSource::kIdentity;
  return std::nullopt;
}
std::optional<Frequency> ParseFrequency(std::string_view s) {
  if (s == "hourly") return Frequency::kHourly;
  if (s == "daily") return Frequency::kDaily;
  return std::nullopt;
}
std::optional<Compression> ParseCompression(std::string_view s) {
  if (s == "gzip") return Compression::kGzip;
  if (s == "zstd") return Compression::kZstd;
  if (s == "none") return Compression::kNone;
  return std::nullopt;
}
std::optional<DestinationType> ParseDestinationType(std::string_view s) {
  if (s == "s3" || s == "s3-raw") return DestinationType::kS3;
  if (s == "gcs" || s == "gcs-raw") return DestinationType::kGcs;
  if (s == "azure-raw" || s == "azure-blob" || s == "azure") return DestinationType::kAzure;
  if (s == "local") return DestinationType::kLocal;
  return std::nullopt;
}

bool SameLocation(const Destination& a, const Destination& b) {
  if (a.type != b.type) return false;
  if (a.type == DestinationType::kLocal) {
    auto normal = [](const std::string& path) {
      std::string s = std::filesystem::path(path).lexically_normal().string();
      while (s.size() > 1 && s.back() == '/') s.pop_back();
      return s;
    };
    return normal(a.local_path) == normal(b.local_path);
  }
  if (a.type == DestinationType::kAzure) {
    return a.azure_storage_account == b.azure_storage_account && a.azure_container == b.azure_container &&
           a.azure_prefix == b.azure_prefix && a.azure_endpoint == b.azure_endpoint;
  }
  if (a.type == DestinationType::kGcs) {
    return a.gcs_bucket == b.gcs_bucket && a.gcs_prefix == b.gcs_prefix && a.gcs_endpoint == b.gcs_endpoint;
  }
  auto trim = [](std::string s) {
    while (!s.empty() && s.front() == '/') s.erase(s.begin());
    while (!s.empty() && s.back() == '/') s.pop_back();
    return s;
  };
  return a.s3_bucket == b.s3_bucket && trim(a.s3_prefix) == trim(b.s3_prefix) &&
         a.s3_endpoint == b.s3_endpoint;
}

}  // namespace sluice::pipeline
