// Pieces of classifying a provider's error answer that every provider client needs: the OAuth2 error shape
// (Google's and Entra ID's token endpoints) and a printable excerpt of a body that is not a known error document
// (a proxy's HTML page, a truncated body).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice::cloud {

/// An OAuth2 error answer (RFC 6749 §5.2): {"error":"invalid_client","error_description":"AADSTS7000215: …"}.
struct OAuthError {
  std::string error;
  std::string description;
};
/// nullopt when `body` is not JSON with a string "error".
std::optional<OAuthError> ParseOAuthError(std::string_view body);

/// The first 300 bytes of `body` with control characters replaced by spaces (safe in one log line).
std::string PrintableExcerpt(std::string_view body);

}  // namespace sluice::cloud
