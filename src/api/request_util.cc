#include "api/request_util.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>

#include "common/compression.h"
#include "common/crypto.h"
#include "common/strings.h"

namespace sluice::api {
namespace {

// Echoed values are cut so a megabyte of garbage does not come back in the error.
constexpr size_t kMaxEchoedChars = 64;

// Cut on a UTF-8 boundary (ingest::Echo), so the JSON error body stays valid UTF-8.
std::string Echo(std::string_view text) {
  if (text.size() <= kMaxEchoedChars) return std::string(text);
  return fmt::format("{} ({} characters)", ingest::Echo(text), text.size());
}

}  // namespace

Result<uint64_t> ParseUint64(std::string_view name, std::string_view text, uint64_t min, uint64_t max) {
  auto refuse = [&] {
    return InvalidArgument(
        fmt::format("{} '{}' is not valid: it must be a whole number from {} to {}, written with "
                    "decimal digits only",
                    name, Echo(text), min, max));
  };
  if (text.empty()) return refuse();
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return refuse();
    const auto digit = static_cast<uint64_t>(c - '0');
    // Checked before it can wrap: v * 10 + digit > UINT64_MAX.
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) return refuse();
    v = v * 10 + digit;
  }
  if (v < min || v > max) return refuse();
  return v;
}

std::string ContentType(const http::Request& req) {
  auto ct = req.headers.Get("Content-Type");
  if (!ct) return {};
  std::string_view v = *ct;
  v = v.substr(0, v.find(';'));
  return AsciiLower(TrimSpace(v));
}

bool IsFormUrlEncoded(const http::Request& req) {
  return ContentType(req) == "application/x-www-form-urlencoded";
}

Result<std::string> DecodedBody(http::Request& req, size_t max_bytes) {
  auto enc = req.headers.Get("Content-Encoding");
  std::string encoding = enc ? AsciiLower(TrimSpace(*enc)) : std::string();
  if (encoding.empty() || encoding == "identity") {
    if (req.body.size() > max_bytes) {
      return Error(ErrorCode::kTooLarge,
                   fmt::format("Request Entity Too Large: the body has {} bytes; the limit is {} "
                               "bytes of uncompressed JSON per request",
                               req.body.size(), max_bytes));
    }
    return std::move(req.body);
  }
  if (encoding == "gzip" || encoding == "x-gzip") {
    auto out = GunzipBounded(req.body, max_bytes);
    if (!out.ok() && out.error().code == ErrorCode::kTooLarge) {
      return Error(ErrorCode::kTooLarge,
                   fmt::format("Request Entity Too Large: the gzip body expands beyond {} bytes "
                               "of uncompressed JSON per request",
                               max_bytes));
    }
    return out;
  }
  return InvalidArgument(
      fmt::format("unsupported Content-Encoding '{}': send gzip or no encoding", ingest::Echo(encoding)));
}

Result<std::string_view> DecodedBodyView(http::Request& req, size_t max_bytes, std::string& storage,
                                        bool* padded) {
  *padded = false;
  auto enc = req.headers.Get("Content-Encoding");
  const std::string encoding = enc ? AsciiLower(TrimSpace(*enc)) : std::string();
  if (encoding == "gzip" || encoding == "x-gzip") {
    auto out = GunzipBoundedPadded(req.body, max_bytes, ingest::kParsePadding);
    if (!out.ok() && out.error().code == ErrorCode::kTooLarge) {
      return Error(ErrorCode::kTooLarge,
                   fmt::format("Request Entity Too Large: the gzip body expands beyond {} bytes "
                               "of uncompressed JSON per request",
                               max_bytes));
    }
    if (out.ok()) *padded = true;
    return out;
  }
  SLUICE_ASSIGN_OR_RETURN(storage, DecodedBody(req, max_bytes));
  return std::string_view(storage);
}

Result<std::string> DecodeDataParam(std::string_view value) {
  std::string_view v = TrimSpace(value);
  if (v.empty()) return InvalidArgument("the 'data' parameter is empty");
  if (v.front() == '[' || v.front() == '{') return std::string(v);
  // Mixpanel's official Node SDK (track_batch, import_batch) and other clients send `data=<base64>` in a form
  // body or query without percent-encoding it, so form decoding turns each '+' of the base64 into a space.
  // Base64 has no spaces: every space is a '+' again (skipping them, as line breaks are, decoded garbage).
  std::string plus_restored;
  if (v.find(' ') != std::string_view::npos) {
    plus_restored.assign(v);
    std::replace(plus_restored.begin(), plus_restored.end(), ' ', '+');
    v = plus_restored;
  }
  auto decoded = Base64Decode(v);
  if (!decoded) {
    return InvalidArgument("the 'data' parameter is neither JSON nor base64-encoded JSON");
  }
  return std::move(*decoded);
}

RequestParams::RequestParams(const http::Request& req) : req_(req) {
  if (IsFormUrlEncoded(req) && !req.headers.Get("Content-Encoding")) form_ = http::ParseForm(req.body);
}

std::optional<std::string_view> RequestParams::Get(std::string_view name) const {
  if (auto q = req_.Query(name)) return q;
  return Form(name);
}

std::optional<std::string_view> RequestParams::Form(std::string_view name) const {
  for (const auto& [k, v] : form_) {
    if (k == name) return std::string_view(v);
  }
  return std::nullopt;
}

bool RequestParams::Flag(std::string_view name) const {
  auto v = Get(name);
  return v && (*v == "1" || *v == "true");
}

Result<ClientPayloadData> ClientPayload(http::Request& req, const RequestParams& params, size_t max_bytes) {
  ClientPayloadData out;
  if (auto data = req.Query("data")) {
    SLUICE_ASSIGN_OR_RETURN(out.json, DecodeDataParam(*data));
    return out;
  }
  // A plain form body was already parsed by RequestParams.
  if (auto data = params.Form("data")) {
    SLUICE_ASSIGN_OR_RETURN(out.json, DecodeDataParam(*data));
    return out;
  }
  SLUICE_ASSIGN_OR_RETURN(std::string body, DecodedBody(req, max_bytes));
  // A gzip form body, or a form body sent without its Content-Type.
  if (IsFormUrlEncoded(req) || TrimSpace(body).substr(0, 5) == "data=") {
    for (auto& [k, v] : http::ParseForm(body)) {
      if (k == "data") {
        SLUICE_ASSIGN_OR_RETURN(out.json, DecodeDataParam(v));
        return out;
      }
    }
    std::string_view t = TrimSpace(body);
    if (t.empty() || (t.front() != '[' && t.front() != '{')) {
      return InvalidArgument(
          "no 'data' parameter: send data=<base64 JSON> in the query or form body, or a JSON body");
    }
  }
  auto ct = ContentType(req);
  if (ct == "application/x-ndjson" || ct == "application/ndjson") out.format = ingest::PayloadFormat::kNdjson;
  if (TrimSpace(body).empty()) {
    return InvalidArgument(
        "empty request: send data=<base64 JSON> in the query or form body, or a JSON body");
  }
  out.json = std::move(body);
  return out;
}

std::optional<int64_t> ParseDate(std::string_view date) {
  using namespace std::chrono;
  if (date.size() != 10 || date[4] != '-' || date[7] != '-') return std::nullopt;
  int y = 0, m = 0, d = 0;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(date[i]))) return std::nullopt;
  }
  auto digits = [&](size_t from, size_t n) {
    int v = 0;
    for (size_t i = from; i < from + n; ++i) v = v * 10 + (date[i] - '0');
    return v;
  };
  y = digits(0, 4);
  m = digits(5, 2);
  d = digits(8, 2);
  year_month_day ymd{year{y}, month{static_cast<unsigned>(m)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return sys_days(ymd).time_since_epoch().count();
}

}  // namespace sluice::api
