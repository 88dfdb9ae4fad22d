// Decoding Mixpanel-style requests: parameters that may come in the query or a form body, gzip bodies, and
// the `data=` parameter (base64 or URL-encoded JSON) that SDKs send to /track and /engage.
#pragma once

#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "http/server.h"
#include "ingest/ingest.h"

namespace sluice::api {

/// Lower-cased media type of Content-Type without parameters ("" when absent).
std::string ContentType(const http::Request& req);
bool IsFormUrlEncoded(const http::Request& req);

/// The body, gunzipped when Content-Encoding says gzip, bounded by `max_bytes` uncompressed (kTooLarge
/// beyond). Moves the body out of `req` (no copy of a multi-megabyte batch).
Result<std::string> DecodedBody(http::Request& req, size_t max_bytes);

/// DecodedBody for a parser that can use a padded view: a gzip body is inflated into this thread's reused
/// buffer followed by ingest::kParsePadding readable bytes (`*padded` = true, valid until the thread's next
/// call); any other body is moved into `storage` and viewed there.
Result<std::string_view> DecodedBodyView(http::Request& req, size_t max_bytes, std::string& storage,
                                        bool* padded);

/// The value of a `data=` parameter: JSON as is when it starts with '[' or '{', otherwise base64 (standard or
/// URL-safe). Fails with a message saying it is neither.
Result<std::string> DecodeDataParam(std::string_view value);

/// Query parameters and, for form bodies, the form fields (decoded once, lazily).
class RequestParams {
 public:
  explicit RequestParams(const http::Request& req);
  /// The query value, else the form value.
  std::optional<std::string_view> Get(std::string_view name) const;
  std::optional<std::string_view> Form(std::string_view name) const;
  /// "1"/"true" → true.
  bool Flag(std::string_view name) const;

 private:
  const http::Request& req_;
  std::vector<std::pair<std::string, std::string>> form_;
};

struct ClientPayloadData {
  std::string json;
  ingest::PayloadFormat format = ingest::PayloadFormat::kJson;
};

/// The JSON payload of a /track or /engage request in any of Mixpanel's three forms: `?data=` in the query
/// (GET), `data=` in a form body (base64 or URL-encoded JSON), or a JSON / NDJSON body.
/// Moves the body out of `req`.
Result<ClientPayloadData> ClientPayload(http::Request& req, const RequestParams& params, size_t max_bytes);

/// Parses parameter `name` (a query/form parameter or a path segment) as a whole decimal number in [min,
/// max]: ASCII digits only — no sign, space, exponent, fraction or hex — and no wrap-around, so "4294967297",
/// "1abc",
/// "-1" and "1e100" are refused instead of being read as 1, 1, 4294967295 and 1. kInvalidArgument naming the
/// parameter and the accepted range otherwise (the value echoed, truncated).
Result<uint64_t> ParseUint64(std::string_view name, std::string_view text, uint64_t min = 0,
                             uint64_t max = std::numeric_limits<uint64_t>::max());

template <std::unsigned_integral T>
Result<T> ParseUint(std::string_view name, std::string_view text, T min = 0,
                    T max = std::numeric_limits<T>::max()) {
  SLUICE_ASSIGN_OR_RETURN(uint64_t v, ParseUint64(name, text, min, max));
  return static_cast<T>(v);
}

/// Parses "YYYY-MM-DD" into days since the Unix epoch.
std::optional<int64_t> ParseDate(std::string_view date);

}  // namespace sluice::api
