#include "cloud/provider_error.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cctype>

namespace sluice::cloud {

std::optional<OAuthError> ParseOAuthError(std::string_view body) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.as_object();
  const auto* err = o.if_contains("error");
  if (err == nullptr || !err->is_string()) return std::nullopt;
  OAuthError out;
  out.error = std::string(err->as_string());
  if (const auto* d = o.if_contains("error_description"); d && d->is_string()) {
    out.description = std::string(d->as_string());
  }
  return out;
}

std::string PrintableExcerpt(std::string_view body) {
  constexpr size_t kMax = 200;
  std::string s(body.substr(0, kMax));
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  if (body.size() > kMax) s += "…";
  return s;
}

std::string SafeToken(std::string_view value) {
  constexpr size_t kMax = 64;
  std::string out;
  for (char c : value.substr(0, kMax)) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) ||
                    std::string_view("._:/+=-").find(c) != std::string_view::npos;
    out.push_back(ok ? c : '?');
  }
  if (value.size() > kMax) out += "...";
  return out;
}

Error AnsweredError(ErrorCode code, std::string_view operation, const http::OutboundResponse& response,
                    std::string_view provider_code, std::string_view provider_message,
                    const std::vector<std::string>& notes, std::string_view request_id_header) {
  const std::string safe_code = SafeToken(provider_code);
  std::string text =
      PrintableExcerpt(provider_message.empty() ? std::string_view(response.body) : provider_message);
  std::string message = fmt::format("{} answered HTTP {}", operation, response.status);
  if (!safe_code.empty()) message += fmt::format(" ({})", safe_code);
  if (!text.empty()) message += ": " + text;
  for (const auto& note : notes) {
    if (!note.empty()) message += "; " + note;
  }
  Error error(code, std::move(message));
  error.http_status = response.status;
  error.provider_code = safe_code;
  error.request_id = SafeToken(response.Header(request_id_header));
  return error;
}

}  // namespace sluice::cloud
