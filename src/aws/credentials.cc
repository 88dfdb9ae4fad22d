#include "aws/credentials.h"

#include <fmt/format.h>

#include <charconv>
#include <ctime>

namespace sluice::aws {

std::string Credentials::ToString() const {
  // Only a prefix of the access key id: enough to tell keys apart in logs, useless on its own.
  std::string id = access_key_id.size() > 8 ? access_key_id.substr(0, 8) + "…" : access_key_id;
  std::string out = id.empty() ? std::string("(no access key)") : id;
  if (!session_token.empty()) out += " (session token";
  if (expiration) {
    out += session_token.empty() ? " (" : ", ";
    out += "expires " + FormatIso8601(*expiration);
  }
  if (!session_token.empty() || expiration) out += ")";
  return out;
}

std::string FormatIso8601(TimePoint t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(t));
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
}

Result<TimePoint> ParseIso8601(std::string_view text) {
  auto fail = [&] { return InvalidArgument(fmt::format("not an ISO-8601 UTC timestamp: '{}'", text)); };
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+00:00)
  if (text.size() < 19 || text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't' &&
      text[10] != ' ') || text[13] != ':' || text[16] != ':') {
    return fail();
  }
  auto num = [&](size_t pos, size_t len, int& out) {
    auto [p, ec] = std::from_chars(text.data() + pos, text.data() + pos + len, out);
    return ec == std::errc() && p == text.data() + pos + len;
  };
  int year, month, day, hour, minute, second;
  if (!num(0, 4, year) || !num(5, 2, month) || !num(8, 2, day) || !num(11, 2, hour) || !num(14, 2, minute) ||
      !num(17, 2, second)) {
    return fail();
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return fail();
  size_t pos = 19;
  int64_t micros = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 6) micros = micros * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return fail();
    for (int d = digits; d < 6; ++d) micros *= 10;
  }
  std::string_view zone = text.substr(pos);
  int offset_minutes = 0;
  if (zone == "Z" || zone == "z" || zone.empty()) {
    offset_minutes = 0;
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int oh, om;
    if (!num(pos + 1, 2, oh) || !num(pos + 4, 2, om)) return fail();
    offset_minutes = (zone[0] == '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    return fail();
  }
  std::chrono::year_month_day ymd{std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
                                  std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return fail();
  auto tp = std::chrono::sys_days(ymd) + std::chrono::hours(hour) + std::chrono::minutes(minute) +
            std::chrono::seconds(second) + std::chrono::microseconds(micros) - std::chrono::minutes(offset_minutes);
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(tp.time_since_epoch()));
}

}  // namespace sluice::aws
