// Scripted Azure answers for tests on aws::testing::FakeTransport: a Blob service error document as Azure
// sends it (XML body plus x-ms-error-code), and Entra ID token endpoint answers.
//
//   transport->SetHandler([](const http::OutboundRequest& r) -> Result<http::OutboundResponse> {
//     if (IsEntraTokenRequest(r)) return EntraToken();
//     return AzureError(403, "AuthorizationPermissionMismatch", kPermissionMismatchMessage);
//   });
#pragma once

#include <string>
#include <string_view>

#include "aws/fake_transport.h"

namespace sluice::azure::testing {

inline constexpr std::string_view kPermissionMismatchMessage =
    "This request is not authorized to perform this operation using this permission.";

/// A Blob service error: `<Error><Code>…</Code><Message>…</Message></Error>` with x-ms-error-code and a
/// request id.
inline http::OutboundResponse AzureError(int status, std::string_view code, std::string_view message) {
  return aws::testing::MakeResponse(status,
                                    "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>" +
                                        std::string(code) + "</Code><Message>" + std::string(message) +
                                        "</Message></Error>",
                                    {{"x-ms-error-code", std::string(code)}, {"x-ms-request-id", "r-1"}});
}

/// A request to the public cloud's Entra ID (the authority when AZURE_AUTHORITY_HOST is unset).
inline bool IsEntraTokenRequest(const http::OutboundRequest& r) {
  return r.url.find("login.microsoftonline.com") != std::string::npos;
}

/// Entra ID's answer with a (fake) bearer token valid for an hour.
inline http::OutboundResponse EntraToken() {
  return aws::testing::MakeResponse(
      200, R"({"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0.eyJ0.sig"})");
}

/// Entra ID's answer to a wrong client secret.
inline http::OutboundResponse EntraInvalidClient() {
  return aws::testing::MakeResponse(
      401,
      R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."})");
}

}  // namespace sluice::azure::testing
