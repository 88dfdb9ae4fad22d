// Pieces of classifying a provider's error answer that every provider client needs: the OAuth2 error shape
// (Google's and Entra ID's token endpoints) and a printable excerpt of a body that is not a known error document
// (a proxy's HTML page, a truncated body).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "http/transport.h"

namespace sluice::cloud {

/// An OAuth2 error answer (RFC 6749 §5.2): {"error":"invalid_client","error_description":"AADSTS7000215: …"}.
struct OAuthError {
  std::string error;
  std::string description;
};
/// nullopt when `body` is not JSON with a string "error".
std::optional<OAuthError> ParseOAuthError(std::string_view body);

/// `value` (a provider's error code or request id) made safe to show in a message or log: at most 64
/// characters, each of [A-Za-z0-9._:/+=-] (others become '?'), "..." when cut.
std::string SafeToken(std::string_view value);

/// The first 200 bytes of `body` with control characters replaced by spaces, "…" when cut: safe in one log
/// line, and short whatever an endpoint answers.
std::string PrintableExcerpt(std::string_view body);

/// The Error for a classified non-2xx answer, worded alike for every provider:
///   "<operation> answered HTTP <status> (<provider_code>): <provider_message, else a printable excerpt of
///   the body>; <note>; <note>"
/// with http_status, provider_code and request_id (the value of the `request_id_header` response header) set.
/// The provider's message is kept for what it names (an AADSTS code, a token audience, a missing permission)
/// but only as a PrintableExcerpt; the code and the request id are escaped and truncated to 64 characters.
Error AnsweredError(ErrorCode code, std::string_view operation, const http::OutboundResponse& response,
                    std::string_view provider_code, std::string_view provider_message,
                    const std::vector<std::string>& notes, std::string_view request_id_header);

}  // namespace sluice::cloud
