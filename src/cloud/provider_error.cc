#include "cloud/provider_error.h"

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

}  // namespace sluice::cloud
