#include "cloudimport/file_importer.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <vector>

#include "cloudimport/line_reader.h"
#include "cloudimport/records.h"
#include "ingest/ingest.h"
#include "ingest/profile_ops.h"

namespace sluice::cloudimport {
namespace {

// A batch is what one /import request may carry (SPEC §3): ≤ 2000 records and ≤ 10 MB of JSON. Flush a little
// before the byte limit so one more line (≤ kMaxLineBytes plus an injected $insert_id) always fits.
constexpr size_t kBatchRecords = ingest::kMaxEventsPerBatch;
constexpr size_t kBatchFlushBytes = ingest::kMaxBatchBytes - kMaxLineBytes - 256;
static_assert(kBatchFlushBytes > ingest::kMaxBatchBytes / 2);
// Validated events are written (and the file's progress committed) every this many lines: one store write of
// four /import batches costs less per event than four (one WAL record and sync, one set of partition merges).
constexpr size_t kCommitRecords = 4 * kBatchRecords;
// Written events kept for reuse: one commit's worth, each holding at most this many bytes of strings.
constexpr size_t kMaxSpareEvents = kCommitRecords;
constexpr size_t kMaxSpareEventBytes = 2048;
// The most the events' write batch reserves up front (it grows past it when a commit's events need more).
constexpr size_t kMaxStashReserveBytes = 16u << 20;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

/// Whether the line mentions "$insert_id" anywhere. glibc's memmem, because string_view::find stops at every
/// '"' of the line (dozens per event) to compare.
bool MentionsInsertId(std::string_view line) {
  constexpr std::string_view kKey = "\"$insert_id\"";
  return ::memmem(line.data(), line.size(), kKey.data(), kKey.size()) != nullptr;
}

int64_t NowMicros(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::microseconds>(clock.Now().time_since_epoch()).count();
}

/// Accumulates shaped records, validates them in /import-sized batches and writes them.
class Batcher {
  using EventBatch = store::EventStore::EventBatch;

 public:
  Batcher(store::Store& store, const FileImportOptions& o, FileProgress& progress)
      : store_(store), o_(o), spec_(*o.spec), progress_(progress), insert_ids_(o.insert_id_scheme, o.key) {
    buffer_.reserve(1 << 20);
  }

  /// One line of the file (after `skip_lines`).
  Status Add(const Line& line) {
    ++pending_.processed;
    if (line.too_long) {
      Drop(line.number, fmt::format("the line is longer than {} bytes; an event must be smaller than 1 MB",
                                    kMaxLineBytes));
      return OkStatus();
    }
    if (count_ == kBatchRecords || buffer_.size() > kBatchFlushBytes) SLUICE_TRY(Flush());
    const size_t start = buffer_.size();
    std::string error;
    bool shaped = true;
    switch (spec_.data_format) {
      case DataFormat::kMixpanelEvent:
        // Lines without a $insert_id get a derived one: without it /import refuses the event, and with a
        // random one a re-import would duplicate it.
        if (MentionsInsertId(line.text) ||
            !AppendWithInsertId(line.text, insert_ids_.Next(line.text, line.number), buffer_)) {
          buffer_.append(line.text);
        }
        break;
      case DataFormat::kRemapEvent:
        shaped = AppendRemappedEvent(
            line.text, spec_, [&] { return insert_ids_.Next(line.text, line.number); }, buffer_, error);
        break;
      case DataFormat::kMixpanelPeople:
        shaped = AppendProfileWithToken(line.text, o_.project_token, buffer_, error);
        break;
      case DataFormat::kRemapPeople:
        shaped = AppendRemappedProfile(line.text, spec_, o_.project_token, buffer_, error);
        break;
    }
    if (!shaped) {
      buffer_.resize(start);
      Drop(line.number, error);
      return OkStatus();
    }
    buffer_.push_back('\n');
    starts_.push_back(start);
    lines_.push_back(line.number);
    ++count_;
    return OkStatus();
  }

  /// Validates what is pending and writes everything validated so far. On success every line handed to Add so
  /// far is accounted for.
  Status Commit() {
    SLUICE_TRY(Flush());
    if (stash_ == nullptr || stash_->size() == 0) {
      Settle();
      return OkStatus();
    }
    Status s = Write(stash_links_);
    stash_links_.clear();
    return s;
  }

  /// A line a resumed import skips (stored before): its derived $insert_id is counted, not used, so the
  /// identical lines after it get the ids they got before.
  void Skip(const Line& line) {
    if (line.too_long || o_.insert_id_scheme != InsertIdScheme::kContent) return;
    const bool derived = spec_.data_format == DataFormat::kMixpanelEvent
                             ? !MentionsInsertId(line.text) || NeedsDerivedInsertId(line.text, spec_)
                             : NeedsDerivedInsertId(line.text, spec_);
    if (derived) (void)insert_ids_.Next(line.text, line.number);
  }

  void set_last_line(uint64_t n) { last_line_ = n; }
  uint64_t last_line() const { return last_line_; }

 private:
  /// Validates what is pending: events wait in the stash for Commit, profile updates are applied.
  Status Flush() {
    if (count_ > 0) {
      if (IsPeopleFormat(spec_.data_format))
        SLUICE_TRY(FlushProfiles());
      else
        SLUICE_TRY(FlushEvents());
    }
    buffer_.clear();
    starts_.clear();
    lines_.clear();
    count_ = 0;
    return OkStatus();
  }

  /// The lines handled since the last write are accounted for: imported (just written) or dropped. Until then
  /// they are pending, so the counters of a file that fails midway add up (processed = imported + dropped).
  void Settle() {
    progress_.events_processed += pending_.processed;
    progress_.events_dropped += pending_.dropped;
    pending_ = {};
  }

  void Drop(uint64_t line, std::string reason) {
    ++pending_.dropped;
    if (o_.on_error) o_.on_error(line, reason);
  }

  std::string_view RecordText(size_t i) const {
    size_t end = i + 1 < starts_.size() ? starts_[i + 1] : buffer_.size();
    return std::string_view(buffer_).substr(starts_[i], end - starts_[i] - 1);  // without its '\n'
  }

  ingest::ParseOptions EventOptions() const {
    return {.endpoint = ingest::Endpoint::kImport,
            .format = ingest::PayloadFormat::kNdjson,
            .now_us = NowMicros(*o_.clock),
            .geoip = o_.geoip};
  }

  Status FlushEvents() {
    // Parsed in place (no copy of each line into the parser's padded buffer): the padding is appended, then
    // cut again. Each valid event goes into the store's write batch as the parser accepts it (its properties
    // copied once, while still in the cache); the parsed events, without properties, reuse the strings of
    // the ones before (spare_).
    const size_t records_end = buffer_.size();
    EventBatch& stash = Stash(records_end);
    const size_t stashed = stash.size();
    buffer_.append(ingest::kParsePadding, '\0');
    ingest::ParseOptions options = EventOptions();
    options.payload_padded = true;
    options.recycled_events = spare_.pool();
    options.sink = &stash;
    auto parsed = ingest::ParseEvents(std::string_view(buffer_).substr(0, records_end), options);
    buffer_.resize(records_end);
    if (!parsed.ok()) {
      // NDJSON fails as a whole only when no line is a JSON object, so nothing reached the batch.
      if (stash.size() != stashed) {
        return Error(ErrorCode::kInternal, "a batch of lines failed to parse after some of its events were "
                                           "stashed; the import stops so that none is written twice");
      }
      // Every line is garbage: validate line by line for per-line reasons.
      return FlushEventsOneByOne();
    }
    std::vector<IdentityLink>& links = stash_links_;
    for (auto& l : parsed->links) links.push_back(std::move(l));
    spare_.Recycle(parsed->events);
    for (const auto& e : parsed->errors) {
      if (e.reason == "missing_insert_id" && spec_.data_format == DataFormat::kMixpanelEvent) {
        // "$insert_id" appeared in the line, but not as a property: derive one and validate again.
        std::string fixed;
        const std::string_view text = RecordText(e.index);  // the line as read (appended as it was)
        if (AppendWithInsertId(text, insert_ids_.Next(text, lines_[e.index]), fixed)) {
          auto again = ingest::ParseEvents(fixed, EventOptions());
          if (again.ok() && again->errors.empty() && again->events.size() == 1) {
            stash.Add(again->events.front(), again->events.front().properties);
            for (auto& l : again->links) links.push_back(std::move(l));
            continue;
          }
        }
      }
      Drop(lines_[e.index], LocaliseMessage(e.message, starts_[e.index]));
    }
    return OkStatus();
  }

  Status FlushEventsOneByOne() {
    EventBatch& stash = Stash(0);
    std::vector<IdentityLink>& links = stash_links_;
    for (size_t i = 0; i < count_; ++i) {
      auto one = ingest::ParseEvents(RecordText(i), EventOptions());
      if (!one.ok()) {
        Drop(lines_[i], LocaliseMessage(one.error().message, 0));
        continue;
      }
      for (const auto& e : one->errors) Drop(lines_[i], LocaliseMessage(e.message, 0));
      for (const Event& e : one->events) stash.Add(e, e.properties);
      for (auto& l : one->links) links.push_back(std::move(l));
    }
    return OkStatus();
  }

  /// The batch validated events wait in for Commit: one per file, emptied by each write and filled again.
  /// Sized at first for a commit's worth of lines like the `batch_bytes` of JSON just read.
  EventBatch& Stash(size_t batch_bytes) {
    if (stash_ == nullptr) {
      stash_ = store_.NewEventBatch(
          spec_.project_id, std::min(batch_bytes * (kCommitRecords / kBatchRecords), kMaxStashReserveBytes));
    }
    return *stash_;
  }

  Status Write(std::vector<IdentityLink>& links) {
    const size_t events = stash_->size();
    StringCacheSet* linked = o_.linked_devices;
    if (linked != nullptr && !links.empty()) {
      std::erase_if(links, [&](const IdentityLink& l) { return linked->Contains(l.device_id); });
    }
    SLUICE_TRY(store_.WriteEventBatch(*stash_, links));
    progress_.events_imported += events;
    Settle();
    if (linked != nullptr) {
      for (const auto& l : links) linked->Insert(l.device_id);
    }
    return OkStatus();
  }

  Status FlushProfiles() {
    const int64_t now = NowMicros(*o_.clock);
    auto parsed = ingest::ParseProfileUpdates(buffer_, ingest::PayloadFormat::kNdjson, now);
    std::vector<ingest::ProfileUpdate> updates;
    std::vector<size_t> records;  // the record (buffer line) of each update
    if (parsed.ok()) {
      for (const auto& e : parsed->errors)
        Drop(lines_[e.index], LocaliseMessage(e.message, starts_[e.index]));
      updates = std::move(parsed->updates);
      records = std::move(parsed->update_indexes);
    } else {
      for (size_t i = 0; i < count_; ++i) {
        auto one = ingest::ParseProfileUpdates(RecordText(i), ingest::PayloadFormat::kNdjson, now);
        if (!one.ok()) {
          Drop(lines_[i], LocaliseMessage(one.error().message, 0));
          continue;
        }
        for (const auto& e : one->errors) Drop(lines_[i], LocaliseMessage(e.message, 0));
        for (auto& u : one->updates) {
          updates.push_back(std::move(u));
          records.push_back(i);
        }
      }
    }
    if (updates.empty()) return OkStatus();
    // A line's own $ip places the profile, as on /engage (a file has no request address); it is not stored.
    for (ingest::ProfileUpdate& u : updates) u.country = ingest::ProfileCountry(o_.geoip, u, {});
    // As /engage: updates of one profile apply in file order, profiles in order of first appearance.
    std::vector<std::string> ids;
    std::unordered_map<std::string, std::vector<const ingest::ProfileUpdate*>> by_id;
    for (const auto& u : updates) {
      auto [it, inserted] = by_id.try_emplace(u.distinct_id);
      if (inserted) ids.push_back(u.distinct_id);
      it->second.push_back(&u);
    }
    // Refused updates are dropped like invalid lines (the file goes on); ApplyProfileUpdates never loses what
    // is stored.
    std::vector<std::pair<const ingest::ProfileUpdate*, std::string>> refused;
    std::vector<store::ProfileOps> changes;
    changes.reserve(ids.size());
    for (const std::string& id : ids) {
      store::ProfileOps& change = changes.emplace_back();
      change.id = id;
      for (const ingest::ProfileUpdate* u : by_id.at(id)) change.ops.push_back(ingest::EncodeProfileUpdate(*u));
    }
    std::vector<store::ProfileOpRefusal> refusals;
    SLUICE_TRY(store_.ApplyProfileOps(spec_.project_id, {}, changes, ingest::ProfileUpdateFolder(), &refusals));
    for (const auto& r : refusals) refused.emplace_back(by_id.at(changes[r.change].id)[r.op], r.message);
    for (const auto& [u, message] : refused)
      Drop(lines_[records[static_cast<size_t>(u - updates.data())]], message);
    progress_.events_imported += updates.size() - refused.size();
    Settle();
    return OkStatus();
  }

  store::Store& store_;
  const FileImportOptions& o_;
  const ConnectorSpec& spec_;
  FileProgress& progress_;
  InsertIdDeriver insert_ids_;
  std::string buffer_;           // shaped records, one per line
  std::vector<size_t> starts_;   // where each record starts in buffer_
  std::vector<uint64_t> lines_;  // file line number of each record
  size_t count_ = 0;
  struct {
    uint64_t processed = 0;
    uint64_t dropped = 0;
  } pending_;                 // lines handled but not written yet (Settle)
  uint64_t last_line_ = 0;    // highest file line handed to Add (or skipped)
  std::unique_ptr<EventBatch> stash_;  // validated events waiting for Commit (Stash())
  std::vector<IdentityLink> stash_links_;
  ingest::EventSpares spare_{kMaxSpareEvents, kMaxSpareEventBytes};  // written events, for the parser to refill
};

}  // namespace

std::string LocaliseMessage(std::string_view message, size_t line_start) {
  std::string_view m = message;
  // A whole-payload failure of a one-line batch: keep what it says about the line.
  constexpr std::string_view kNone = "malformed NDJSON: none of the ";
  if (m.starts_with(kNone)) {
    size_t open = m.find(" (");
    if (open != std::string_view::npos && m.ends_with(")")) m = m.substr(open + 2, m.size() - open - 3);
  }
  std::string out;
  if (m.starts_with("line ")) {
    size_t i = 5;
    while (i < m.size() && IsDigit(m[i])) ++i;
    if (i > 5 && i < m.size() && m[i] == ' ') {
      out = "the line";
      m.remove_prefix(i);
    }
  }
  // "at byte B" counts from the start of the batch: make it relative to the line.
  constexpr std::string_view kAtByte = "at byte ";
  size_t at = m.find(kAtByte);
  if (at != std::string_view::npos) {
    size_t i = at + kAtByte.size();
    size_t j = i;
    uint64_t b = 0;
    while (j < m.size() && IsDigit(m[j]) && j - i < 18) b = b * 10 + static_cast<uint64_t>(m[j++] - '0');
    if (j > i) {
      out.append(m.substr(0, i));
      out.append(std::to_string(b >= line_start ? b - line_start : b));
      out.append(m.substr(j));
      return out;
    }
  }
  out.append(m);
  return out;
}

Status ImportFile(objstore::ObjectStore& source, store::Store& store, const FileImportOptions& o,
                  FileProgress& progress) {
  Batcher batcher(store, o, progress);
  batcher.set_last_line(o.skip_lines);
  progress.lines_done = o.skip_lines;
  std::optional<Error> batch_error;
  auto commit = [&]() -> Status {
    const uint64_t handled = batcher.last_line();
    SLUICE_TRY(batcher.Commit());
    progress.lines_done = handled;
    if (o.on_commit) o.on_commit(progress);
    return OkStatus();
  };
  size_t since_commit = 0;
  LineReader reader({.compression = o.spec->compression,
                     .file = o.key,
                     .max_output_bytes = o.max_file_bytes,
                     .max_inflation_ratio = o.max_inflation_ratio,
                     .ratio_check_after = o.inflation_check_after},
                    [&](const Line& line) {
                      if (line.number <= o.skip_lines) {
                        batcher.Skip(line);
                        return true;
                      }
                      // A batch is about to be written: report the lines before this one as done once it is.
                      Status s = batcher.Add(line);
                      if (!s.ok()) {
                        batch_error = s.error();
                        return false;
                      }
                      batcher.set_last_line(line.number);
                      if (++since_commit >= kCommitRecords) {
                        since_commit = 0;
                        Status c = commit();
                        if (!c.ok()) {
                          batch_error = c.error();
                          return false;
                        }
                        if (o.cancelled && o.cancelled()) {
                          batch_error =
                              Error(ErrorCode::kCancelled, fmt::format("importing {} was stopped", o.key));
                          return false;
                        }
                      }
                      return true;
                    });
  Status streamed = source.GetStreaming(o.key, [&](std::string_view chunk) {
    progress.bytes_read += chunk.size();
    if (o.cancelled && o.cancelled()) {
      batch_error = Error(ErrorCode::kCancelled, fmt::format("importing {} was stopped", o.key));
      return false;
    }
    return reader.Feed(chunk).ok();
  });
  if (batch_error) return *batch_error;
  if (!streamed.ok()) {
    // The reader's own failure (compression mismatch, corrupt gzip) is the one to report.
    Status fed = reader.Feed({});
    if (!fed.ok() && fed.error().code != ErrorCode::kCancelled) return fed.error();
    return streamed.error();
  }
  SLUICE_TRY(reader.Finish());
  if (batch_error) return *batch_error;
  return commit();
}

}  // namespace sluice::cloudimport
