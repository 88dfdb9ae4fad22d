// Shared Key authorisation for the Blob service ("Authorize with Shared Key", version 2009-09-19 and later):
// a pure signer, each stage a free function tested on its own against Microsoft's documented examples.
//
//   StringToSign = VERB \n Content-Encoding \n Content-Language \n Content-Length ("" when 0) \n Content-MD5 \n
//                  Content-Type \n Date \n If-Modified-Since \n If-Match \n If-None-Match \n
//                  If-Unmodified-Since \n Range \n CanonicalizedHeaders CanonicalizedResource
//   Authorization: SharedKey <account>:Base64(HMAC-SHA256(Base64Decode(key), UTF-8(StringToSign)))
//
// CanonicalizedHeaders: every x-ms-* header, name lower-cased, sorted, "name:value\n" (value trimmed).
// CanonicalizedResource: "/" + account + the URL path as sent (path-style emulator URLs therefore carry the
// account twice: "/devstoreaccount1/devstoreaccount1/container/blob"), then per query parameter, sorted by
// lower-cased name, "\nname:value[,value…]" with values decoded and sorted.
//
// Usage:
//   http::OutboundRequest r{"PUT", url, {{"x-ms-date", date}, {"x-ms-version", kStorageApiVersion}, …}, body};
//   azure::SignSharedKey(r, "account", key);   // appends the Authorization header
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "common/secret.h"
#include "common/clock.h"
#include "http/transport.h"

namespace sluice::azure {

/// The REST API version every request pins with x-ms-version (Azurite 3.35 serves it; encryption scopes need
/// 2019-02-02 or later, customer-provided keys 2018-06-17 or later).
inline constexpr std::string_view kStorageApiVersion = "2021-12-02";

/// "Sun, 11 Oct 2009 21:49:13 GMT" (RFC 1123, as x-ms-date wants it).
std::string FormatRfc1123(TimePoint t);

/// The CanonicalizedHeaders block of `request` (ends with '\n' when there is any x-ms-* header).
std::string CanonicalizedHeaders(const http::OutboundRequest& request);
/// The CanonicalizedResource of `url` for `account`.
std::string CanonicalizedResource(std::string_view url, std::string_view account);
/// The whole string to sign. Content-Length comes from the body (the transport adds the header).
std::string StringToSign(const http::OutboundRequest& request, std::string_view account);

/// Base64 HMAC-SHA256 of `string_to_sign` under the base64 account key. kInvalidArgument when the key is not
/// base64 (the message never quotes it).
Result<std::string> SharedKeySignature(std::string_view string_to_sign, const Secret& account_key);
/// Appends "Authorization: SharedKey account:signature".
Status SignSharedKey(http::OutboundRequest& request, std::string_view account, const Secret& account_key);

}  // namespace sluice::azure
