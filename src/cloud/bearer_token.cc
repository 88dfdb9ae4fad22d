#include "cloud/bearer_token.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <charconv>
#include <ctime>

namespace sluice::cloud {

void WarnKeptAfterFailedRefresh(std::string_view what, std::string_view source, const Error& error,
                                TimePoint valid_until) {
  std::time_t t = std::chrono::system_clock::to_time_t(valid_until);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  spdlog::warn("refreshing {} from {} failed ({}); still using the current one, valid until {}", what, source,
               error.ToString(), buf);
}

Result<AccessToken> ParseTokenResponse(std::string_view body, TimePoint now, std::string_view source) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) {
    return Error(ErrorCode::kPermanent,
                 fmt::format("{} answered with something that is not a token (not JSON)", source));
  }
  const auto& o = v.as_object();
  const auto* token = o.if_contains("access_token");
  if (token == nullptr || !token->is_string() || token->as_string().empty()) {
    return Error(ErrorCode::kPermanent, fmt::format("{} answered without an access_token", source));
  }
  AccessToken out;
  out.token = Secret(std::string(token->as_string()));
  int64_t expires_in = 3600;
  if (const auto* e = o.if_contains("expires_in")) {
    if (e->is_int64()) {
      expires_in = e->as_int64();
    } else if (e->is_uint64()) {
      expires_in = static_cast<int64_t>(e->as_uint64());
    } else if (e->is_double()) {
      expires_in = static_cast<int64_t>(e->as_double());
    } else if (e->is_string()) {
      std::string_view s = e->as_string();
      int64_t parsed = 0;
      auto [ptr, err] = std::from_chars(s.data(), s.data() + s.size(), parsed);
      if (err == std::errc() && ptr == s.data() + s.size()) expires_in = parsed;
    }
  }
  out.expiration = now + std::chrono::seconds(expires_in);
  return out;
}

}  // namespace sluice::cloud
