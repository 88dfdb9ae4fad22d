// The JSON Pipelines management API's parameters (SPEC §4): reading them from a Mixpanel-style request (query
// or form body, repeated keys kept), turning a create form into a PipelineSpec, applying an edit form to an
// existing spec, and validating the result with messages written for the API caller ({"error": message}).
//
//   PipelineParams params(req);                                   // query first, then the form body
//   Result<pipeline::PipelineSpec> spec = ParseCreateParams(params, project.id, "2026-11-24");
//   if (!spec.ok()) return JsonError(400, spec.error().message);
//
// Everything here is pure (no I/O, no clock: "today" is passed in), so it is tested without a server.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "http/server.h"
#include "pipeline/pipeline.h"

namespace sluice::api {

/// Query parameters followed by the fields of an application/x-www-form-urlencoded body, in order, with
/// repeated keys kept (Mixpanel clients repeat `events=`). Mixpanel's clients send these parameters either
/// way, so both are read; when a name appears in both, the query's values come first.
class PipelineParams {
 public:
  explicit PipelineParams(const http::Request& req);
  explicit PipelineParams(std::vector<std::pair<std::string, std::string>> pairs)
      : pairs_(std::move(pairs)) {}

  /// The first value of `name`.
  std::optional<std::string_view> Get(std::string_view name) const;
  /// Every value of `name`, in order.
  std::vector<std::string_view> All(std::string_view name) const;
  bool Has(std::string_view name) const { return Get(name).has_value(); }

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

/// "true"/"1"/"yes"/"on" and "false"/"0"/"no"/"off" (any case); anything else is a 400 naming the parameter.
Result<bool> ParseBoolParam(std::string_view name, std::string_view value);

/// The `events` whitelist: each value is one event name, except a value that starts with '[' which must be a
/// JSON array of strings (Mixpanel's clients send both forms). Duplicates are dropped, order is kept; an
/// empty list (no values, `events=` or `events=[]`) means every event.
Result<std::vector<std::string>> ParseEventsParam(const std::vector<std::string_view>& values);

/// Task states to show (`status` of …/status and …/timeline): repeated, comma-separated or a JSON array of
/// pending running retried failed canceled timed_out succeeded. Empty = all.
Result<std::vector<pipeline::TaskState>> ParseTaskStatesParam(const std::vector<std::string_view>& values);

/// A create form → a spec for PipelineManager::Create. `today` is the current UTC date (YYYY-MM-DD):
/// from_date may not be after it. Checks every parameter (see ValidatePipelineSpec); Mixpanel's limits that
/// need the other pipelines of the project (six months back, how many per project, overlapping dates) are the
/// manager's. Parameters this API does not know are ignored, as Mixpanel does.
Result<pipeline::PipelineSpec> ParseCreateParams(const PipelineParams& params, uint32_t project_id,
                                                 std::string_view today);

/// Applies an edit form to `spec` (the pipeline as it is now): events, where, frequency, sync, to_date,
/// compression, the s3_* destination and local_path may change; type, data_source, from_date and trial may
/// only be repeated with their current value. An empty `events`, `where` or `to_date` clears it. Then
/// validates the result.
Status ApplyEditParams(const PipelineParams& params, pipeline::PipelineSpec& spec);

/// The checks shared by create and edit: dates well formed and ordered, frequency allowed for the data
/// source, events/where only for events, a complete destination for the type (bucket, region and role ARN for
/// s3; a local_path without `..` for local), no parameters of the other type, a KMS key only with
/// s3_encryption=kms, and a `where` expression that compiles.
Status ValidatePipelineSpec(const pipeline::PipelineSpec& spec);

/// "YYYY-MM-DD" of a day number (days since 1970-01-01).
std::string FormatDate(int64_t days);
/// ISO-8601 UTC with seconds, "2026-11-24T00:30:00Z", of epoch milliseconds.
std::string FormatTimestampMs(int64_t ms);

}  // namespace sluice::api
