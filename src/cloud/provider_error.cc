#include "cloud/provider_error.h"

#include <fmt/format.h>

#include <boost/json.hpp>

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
  std::string s(body.substr(0, 300));
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return s;
}

Error AnsweredError(ErrorCode code, std::string_view operation, const http::OutboundResponse& response,
                    std::string_view provider_code, std::string_view provider_message,
                    const std::vector<std::string>& notes, std::string_view request_id_header) {
  std::string text = provider_message.empty() ? PrintableExcerpt(response.body) : std::string(provider_message);
  std::string message = fmt::format("{} answered HTTP {}", operation, response.status);
  if (!provider_code.empty()) message += fmt::format(" ({})", provider_code);
  if (!text.empty()) message += ": " + text;
  for (const auto& note : notes) {
    if (!note.empty()) message += "; " + note;
  }
  Error error(code, std::move(message));
  error.http_status = response.status;
  error.provider_code = std::string(provider_code);
  error.request_id = std::string(response.Header(request_id_header));
  return error;
}

}  // namespace sluice::cloud
