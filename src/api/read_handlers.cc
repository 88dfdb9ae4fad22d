// Read-back: Mixpanel's raw export API (/api/2.0/export, NDJSON streamed, gzip on request) and the profile
// query API (/api/2.0/engage).
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "api/request_util.h"
#include "api/service_impl.h"
#include "common/crypto.h"
#include "common/json_text.h"
#include "common/thread_name.h"
#include "expr/where.h"
#include "ingest/ingest.h"

namespace sluice::api {
namespace {

constexpr size_t kChunkBytes = 256 * 1024;
constexpr size_t kMaxQueuedChunks = 4;  // bounds memory per export stream to ~1 MiB
// Mixpanel's export refuses a `limit` over 100,000 events.
constexpr uint64_t kMaxExportLimit = 100'000;

/// Appends one event as Mixpanel's export line:
/// {"event":…,"properties":{"time":<s>,"distinct_id":…,"$insert_id":…,["$device_id":…,]["$user_id":…,]
///  "mp_processing_time_ms":…, …every other property as it arrived}}
void AppendExportLine(std::string& out, const store::EventView& e) {
  out += "{\"event\":";
  AppendJsonString(out, e.name);
  out += ",\"properties\":{\"time\":";
  int64_t seconds = e.time_us >= 0 ? e.time_us / 1'000'000 : -((-e.time_us + 999'999) / 1'000'000);
  AppendInt(out, seconds);
  out += ",\"distinct_id\":";
  AppendJsonString(out, e.distinct_id);
  out += ",\"$insert_id\":";
  AppendJsonString(out, e.insert_id);
  if (!e.device_id.empty()) {
    out += ",\"$device_id\":";
    AppendJsonString(out, e.device_id);
  }
  if (!e.user_id.empty()) {
    out += ",\"$user_id\":";
    AppendJsonString(out, e.user_id);
  }
  out += ",\"mp_processing_time_ms\":";
  AppendInt(out, e.ingested_ms);
  std::string_view rest = e.properties;  // "{...}" minified
  if (rest.size() > 2) {
    out += ',';
    out.append(rest.substr(1));  // keeps the closing brace
  } else {
    out += '}';
  }
  out += "}\n";
}

/// Runs the store scan on its own thread and hands chunks to the HTTP producer through a bounded queue, so a
/// multi-gigabyte export streams with bounded memory. Next never waits for the scan (the BodyProducer
/// contract: the I/O thread that calls it serves other connections), and the scan checks at every event
/// whether the stream was dropped, so a client gone during a long stretch of events a filter refuses costs
/// no more than that event. Destroying the stream cancels and joins the scan.
class ExportStream {
 public:
  using Emit = std::function<bool(std::string_view line)>;
  using ScanFn = std::function<Status(const Emit& emit, const std::atomic<bool>& cancelled)>;

  ExportStream(ScanFn scan, bool gzip, std::shared_ptr<void> slot) : gzip_(gzip), slot_(std::move(slot)) {
    if (gzip_) {
      zs_ = {};
      deflateInit2(&zs_, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    }
    thread_ = std::thread([this, scan = std::move(scan)] {
      SetCurrentThreadName("sl-export-api");
      std::string buf;
      Status s = scan(
          [&](std::string_view line) {
            buf.append(line);
            if (buf.size() >= kChunkBytes) return Push(std::exchange(buf, {}));
            return true;
          },
          cancelled_);
      if (s.ok() && !buf.empty()) Push(std::move(buf));
      std::lock_guard lock(mu_);
      if (!s.ok()) status_ = s;
      done_ = true;
      cv_.notify_all();
    });
  }

  ~ExportStream() {
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
      cv_.notify_all();
    }
    thread_.join();
    if (gzip_) deflateEnd(&zs_);
  }

  /// BodyProducer contract: appends what the scan has produced, nothing when it has produced nothing yet.
  Result<bool> Next(std::string& out) {
    std::string chunk;
    bool finished = false;
    {
      std::lock_guard lock(mu_);
      if (!queue_.empty()) {
        chunk = std::move(queue_.front());
        queue_.pop_front();
        cv_.notify_all();
      } else if (done_) {
        if (!status_.ok()) return status_.error();
        finished = true;
      } else {
        return true;  // nothing yet: asked again shortly
      }
    }
    if (!gzip_) {
      out += chunk;
      return !finished;
    }
    Compress(chunk, finished ? Z_FINISH : Z_SYNC_FLUSH, out);
    return !finished;
  }

 private:
  bool Push(std::string chunk) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return queue_.size() < kMaxQueuedChunks || cancelled_; });
    if (cancelled_) return false;
    queue_.push_back(std::move(chunk));
    cv_.notify_all();
    return true;
  }

  void Compress(std::string_view in, int flush, std::string& out) {
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs_.avail_in = static_cast<uInt>(in.size());
    char buf[64 * 1024];
    do {
      zs_.next_out = reinterpret_cast<Bytef*>(buf);
      zs_.avail_out = sizeof(buf);
      deflate(&zs_, flush);
      out.append(buf, sizeof(buf) - zs_.avail_out);
    } while (zs_.avail_out == 0 || zs_.avail_in > 0);
  }

  const bool gzip_;
  const std::shared_ptr<void> slot_;  // the project's export slot, given back with the stream
  z_stream zs_{};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool done_ = false;
  std::atomic<bool> cancelled_{false};
  Status status_;
  std::thread thread_;
};

/// Where the next page of an /api/2.0/engage listing starts, handed out as its `session_id`: the page it
/// follows, the listing's total (counted on the first page), the last id of that page and the profile set.
/// It steers only which of the caller's own profiles are read (the project comes from the credentials).
struct EngageCursor {
  uint64_t page = 0;
  uint64_t total = 0;
  std::string after;
  std::string group;
};

/// URL-safe base64 (no padding) of a small JSON object.
std::string EncodeEngageCursor(const EngageCursor& c) {
  std::string text = Base64Encode(boost::json::serialize(boost::json::object{
      {"v", 1}, {"page", c.page}, {"total", c.total}, {"after", c.after}, {"group", c.group}}));
  for (char& ch : text) ch = ch == '+' ? '-' : ch == '/' ? '_' : ch;
  while (!text.empty() && text.back() == '=') text.pop_back();
  return text;
}

std::optional<EngageCursor> DecodeEngageCursor(std::string_view text) {
  if (text.size() > 4096) return std::nullopt;
  std::string b64(text);
  for (char& ch : b64) ch = ch == '-' ? '+' : ch == '_' ? '/' : ch;
  while (b64.size() % 4 != 0) b64.push_back('=');
  std::optional<std::string> json = Base64Decode(b64);
  if (!json) return std::nullopt;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(*json, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.as_object();
  const auto* version = o.if_contains("v");
  const auto* page = o.if_contains("page");
  const auto* total = o.if_contains("total");
  const auto* after = o.if_contains("after");
  const auto* group = o.if_contains("group");
  if (!version || !version->is_int64() || version->as_int64() != 1 || !page || !page->is_number() || !total ||
      !total->is_number() || !after || !after->is_string() || !group || !group->is_string()) {
    return std::nullopt;
  }
  boost::system::error_code page_ec, total_ec;
  EngageCursor c;
  c.page = page->to_number<uint64_t>(page_ec);
  c.total = total->to_number<uint64_t>(total_ec);
  if (page_ec || total_ec) return std::nullopt;
  // A cursor this server made holds a stored id: at most kMaxProfileIdChars characters of UTF-8.
  constexpr size_t kMaxIdBytes = 4 * ingest::kMaxProfileIdChars;
  if (after->as_string().size() > kMaxIdBytes || group->as_string().size() > kMaxIdBytes) return std::nullopt;
  c.after = std::string(after->as_string());
  c.group = std::string(group->as_string());
  return c;
}

bool AcceptsGzip(const http::Request& req) {
  auto ae = req.headers.Get("Accept-Encoding");
  return ae && ae->find("gzip") != std::string_view::npos;
}

}  // namespace

std::shared_ptr<void> ProjectSlots::TryTake(uint32_t project) {
  std::lock_guard lock(mu_);
  if (total_ > 0 && taken_ >= total_) return nullptr;
  auto it = running_.find(project);
  if (it != running_.end() && it->second >= per_project_) return nullptr;
  ++running_[project];
  ++taken_;
  // Not null (a null handle would read as "no slot"); it owns nothing, its deleter gives the slot back.
  return std::shared_ptr<void>(static_cast<void*>(this), [self = shared_from_this(), project](void*) {
    std::lock_guard release(self->mu_);
    --self->taken_;
    if (--self->running_[project] == 0) self->running_.erase(project);
  });
}

std::shared_ptr<void> ServiceImpl::TakeBucketCheckSlot(uint32_t project, http::Response& busy) {
  std::shared_ptr<void> slot = bucket_check_slots_->TryTake(project);
  if (!slot) {
    busy = JsonError(429,
                     "another request of this project is checking its bucket, or this server is checking as "
                     "many buckets as it allows at once (pipeline create and edit, Cloud Import connector "
                     "create); retry in a few seconds");
    busy.headers.Set("Retry-After", "5");
  }
  return slot;
}

http::Response ServiceImpl::HandleExport(http::Request& req) {
  http::Response error;
  auto project = AuthenticateProjectRequest(req, error);
  if (!project) return error;
  RequestParams params(req);

  auto from = params.Get("from_date");
  auto to = params.Get("to_date");
  if (!from || !to) return JsonError(400, "from_date and to_date are required (YYYY-MM-DD, UTC, inclusive)");
  auto from_day = ParseDate(*from);
  auto to_day = ParseDate(*to);
  if (!from_day) return JsonError(400, fmt::format("from_date '{}' is not a date of the form YYYY-MM-DD", *from));
  if (!to_day) return JsonError(400, fmt::format("to_date '{}' is not a date of the form YYYY-MM-DD", *to));
  if (*to_day < *from_day) return JsonError(400, "to_date is before from_date");
  // Event times are seconds since 1970 and the store keys them unsigned: an earlier day can hold nothing, and
  // an empty 200 would look like "no events" rather than a wrong date.
  if (*from_day < 0) {
    return JsonError(400,
                     fmt::format("from_date '{}' is before 1970-01-01; events are stored from 1970-01-01 on, "
                                 "so use that date or a later one",
                                 *from));
  }
  // Compiled once per request; WhereFilter::Matches is const and cheap per event.
  std::optional<expr::WhereFilter> where_filter;
  if (auto where = params.Get("where"); where && !where->empty()) {
    auto compiled = expr::WhereFilter::Compile(*where);
    if (!compiled.ok()) return JsonError(400, compiled.error().message);
    where_filter.emplace(std::move(compiled).value());
  }

  std::set<std::string, std::less<>> event_filter;
  if (auto ev = params.Get("event"); ev && !ev->empty()) {
    boost::system::error_code ec;
    auto v = boost::json::parse(*ev, ec);
    if (ec || !v.is_array()) {
      return JsonError(400, "'event' must be a JSON array of event names, e.g. event=[\"Signed up\"]");
    }
    for (const auto& name : v.as_array()) {
      if (!name.is_string()) return JsonError(400, "'event' must contain only strings");
      event_filter.emplace(name.as_string().c_str());
    }
  }
  uint64_t limit = 0;  // 0 = no limit
  if (auto l = params.Get("limit"); l && !l->empty()) {
    // Mixpanel's export caps `limit` at 100,000 events; without it the export is whole.
    auto parsed = ParseUint64("limit", *l, 1, kMaxExportLimit);
    if (!parsed.ok()) return JsonError(400, parsed.error().message);
    limit = *parsed;
  }

  const auto from_hour = static_cast<store::Hour>(*from_day * 24);
  const auto to_hour = static_cast<store::Hour>(*to_day * 24 + 23);
  const uint32_t project_id = project->id;
  store::Store* st = &store_;
  std::shared_ptr<void> slot = export_slots_->TryTake(project->id);
  if (!slot) {
    http::Response busy = JsonError(
        429, fmt::format("this project already has {} exports running; retry when one of them has finished",
                         kExportsPerProject));
    busy.headers.Set("Retry-After", "10");
    return busy;
  }
  auto scan = [st, project_id, from_hour, to_hour, event_filter = std::move(event_filter),
               where_filter = std::move(where_filter),
               limit](const ExportStream::Emit& emit, const std::atomic<bool>& cancelled) -> Status {
    SLUICE_ASSIGN_OR_RETURN(auto partitions, st->ListPartitions(project_id, from_hour, to_hour));
    uint64_t emitted = 0;
    std::string line;
    bool stop = false;
    for (const auto& p : partitions) {
      SLUICE_TRY(st->ScanPartition(project_id, p.hour, [&](const store::EventView& e) {
        if (cancelled.load(std::memory_order_relaxed)) {
          stop = true;
          return false;
        }
        if (!event_filter.empty() && !event_filter.contains(e.name)) return true;
        if (where_filter && !where_filter->Matches(expr::EventFields{.name = e.name,
                                                                     .time_us = e.time_us,
                                                                     .distinct_id = e.distinct_id,
                                                                     .device_id = e.device_id,
                                                                     .user_id = e.user_id,
                                                                     .insert_id = e.insert_id,
                                                                     .properties = e.properties})) {
          return true;
        }
        line.clear();
        AppendExportLine(line, e);
        if (!emit(line)) {
          stop = true;
          return false;
        }
        if (limit && ++emitted >= limit) {
          stop = true;
          return false;
        }
        return true;
      }));
      if (stop) break;
    }
    return OkStatus();
  };

  const bool gzip = AcceptsGzip(req);
  auto stream = std::make_shared<ExportStream>(std::move(scan), gzip, std::move(slot));
  http::Response r;
  r.status = 200;
  r.headers.Set("Content-Type", "application/x-ndjson");
  if (gzip) r.headers.Set("Content-Encoding", "gzip");
  r.stream = [stream](std::string& out) { return stream->Next(out); };
  return r;
}

http::Response ServiceImpl::HandleEngageQuery(http::Request& req) {
  http::Response error;
  auto project = AuthenticateProjectRequest(req, error);
  if (!project) return error;
  RequestParams params(req);
  if (auto where = params.Get("where"); where && !where->empty()) {
    return JsonError(400, "the 'where' parameter is not supported by this server version");
  }
  uint64_t page = 0, page_size = 1000;
  if (auto p = params.Get("page"); p && !p->empty()) {
    // Bounded so page * page_size cannot overflow.
    auto parsed = ParseUint64("page", *p, 0, 1'000'000'000);
    if (!parsed.ok()) return JsonError(400, parsed.error().message);
    page = *parsed;
  }
  if (auto s = params.Get("page_size"); s && !s->empty()) {
    auto parsed = ParseUint64("page_size", *s, 1, 10'000);
    if (!parsed.ok()) return JsonError(400, parsed.error().message);
    page_size = *parsed;
  }

  // Profiles go into the answer as stored, not re-serialized: numbers keep the text they arrived with
  // (Boost.JSON would print 19.90 as 1.99E1).
  std::string results;
  size_t result_count = 0;
  uint64_t total = 0;
  auto add = [&](std::string_view id, std::string_view json) {
    const std::optional<std::string> repaired = ReplaceNonFiniteTokens(json);
    std::string_view props = repaired ? std::string_view(*repaired) : json;
    if (auto v = ingest::ParseProfileJson(props); !v.ok() || !v->is_object()) {
      spdlog::warn("profile '{}' of project {} is not a JSON object; answered as {{}}", ingest::Echo(id),
                   project->id);
      props = "{}";
    }
    if (result_count++ > 0) results.push_back(',');
    results += "{\"$distinct_id\":";
    AppendJsonString(results, id);
    results += ",\"$properties\":";
    results += props;
    results.push_back('}');
  };
  // A listing (no distinct_id) pages through one profile set: the users' (group "") or one group key's.
  const std::string group(params.Get("data_group_id").value_or(""));
  const std::string_view one_id = params.Get("distinct_id").value_or("");
  // No stored profile has a longer id or group key (/engage and /groups refuse them), so a longer one is a
  // client error, and never reaches the store (ClickHouse refuses an over-long query, as a 503).
  for (const auto& [name, value] :
       {std::pair<std::string_view, std::string_view>{"distinct_id", one_id}, {"data_group_id", group}}) {
    const size_t chars = ingest::Utf8CharCount(value);
    if (chars > ingest::kMaxProfileIdChars) {
      return JsonError(
          400, fmt::format("{} is {} characters long; profile ids and group keys have at most {}", name,
                           chars, ingest::kMaxProfileIdChars));
    }
  }
  std::string session_id;
  if (!one_id.empty()) {
    auto profile = group.empty() ? store_.GetProfile(project->id, one_id)
                                 : store_.GetGroupProfile(project->id, group, one_id);
    if (!profile.ok()) {
      return JsonError(503,
                       StoreFailureForTenant("reading the profile failed", project->id, profile.error()));
    }
    if (*profile) {
      add(one_id, **profile);
      total = 1;
    }
  } else {
    // The page after a full one resumes after its last id when the caller passes the session_id that page
    // answered (Mixpanel's paging), instead of reading every profile before it again.
    std::optional<EngageCursor> cursor;
    if (auto sid = params.Get("session_id"); sid && !sid->empty()) {
      cursor = DecodeEngageCursor(*sid);
      if (!cursor) {
        return JsonError(400,
                         "session_id is not one this server answered: pass the session_id of the previous "
                         "page's answer with page set to one more than its page, or no session_id");
      }
      if (cursor->page + 1 != page || cursor->group != group)
        cursor.reset();  // another listing: from the start
    }
    std::string last_id;
    const auto scan = [&](std::string_view after,
                          const std::function<bool(std::string_view, std::string_view)>& fn) {
      return group.empty() ? store_.ScanProfiles(project->id, after, fn)
                           : store_.ScanGroupProfiles(project->id, group, after, fn);
    };
    Status s;
    if (cursor) {
      total = cursor->total;
      s = scan(cursor->after, [&](std::string_view id, std::string_view json) {
        add(id, json);
        last_id = id;
        return result_count < page_size;
      });
    } else {
      const uint64_t skip = page * page_size;
      s = scan({}, [&](std::string_view id, std::string_view json) {
        if (total >= skip && total < skip + page_size) {
          add(id, json);
          last_id = id;
        }
        ++total;
        return true;
      });
    }
    if (!s.ok())
      return JsonError(503, StoreFailureForTenant("reading profiles failed", project->id, s.error()));
    if (result_count == page_size) session_id = EncodeEngageCursor({page, total, last_id, group});
  }
  return http::Response::Json(
      200,
      fmt::format(R"({{"page":{},"page_size":{},"results":[{}],"session_id":"{}","status":"ok","total":{}}})",
                  page, page_size, results, session_id, total));
}

}  // namespace sluice::api
