#include "azure/shared_key.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <vector>

#include "cloud/url.h"
#include "common/crypto.h"
#include "common/strings.h"

namespace sluice::azure {
namespace {

std::string_view HeaderValue(const http::OutboundRequest& request, std::string_view name) {
  for (const auto& [k, v] : request.headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return {};
}

}  // namespace

std::string FormatRfc1123(TimePoint t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  return fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} GMT", kDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string CanonicalizedHeaders(const http::OutboundRequest& request) {
  std::vector<std::pair<std::string, std::string>> ms;
  for (const auto& [k, v] : request.headers) {
    std::string name = AsciiLower(k);
    if (name.starts_with("x-ms-")) ms.emplace_back(std::move(name), std::string(TrimSpace(v)));
  }
  std::stable_sort(ms.begin(), ms.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out;
  for (const auto& [k, v] : ms) out += k + ":" + v + "\n";
  return out;
}

std::string CanonicalizedResource(std::string_view url, std::string_view account) {
  cloud::UrlParts parts = cloud::SplitUrl(url);
  std::string out = "/" + std::string(account) + (parts.path.empty() ? std::string("/") : std::string(parts.path));
  std::map<std::string, std::vector<std::string>> params;
  std::string_view query = parts.query;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string name = AsciiLower(cloud::UriDecode(pair.substr(0, eq)));
    std::string value = eq == std::string_view::npos ? "" : cloud::UriDecode(pair.substr(eq + 1));
    params[name].push_back(std::move(value));
  }
  for (auto& [name, values] : params) {
    std::sort(values.begin(), values.end());
    out += "\n" + name + ":";
    for (size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + values[i];
  }
  return out;
}

std::string StringToSign(const http::OutboundRequest& request, std::string_view account) {
  // Version 2015-02-21 and later: an empty Content-Length line when the length is zero.
  std::string length = request.body.length > 0 ? std::to_string(request.body.length) : "";
  std::string s = request.method + "\n";
  for (std::string_view header : {"Content-Encoding", "Content-Language"}) s += std::string(HeaderValue(request, header)) + "\n";
  s += length + "\n";
  for (std::string_view header : {"Content-MD5", "Content-Type", "Date", "If-Modified-Since", "If-Match",
                                  "If-None-Match", "If-Unmodified-Since", "Range"}) {
    s += std::string(HeaderValue(request, header)) + "\n";
  }
  return s + CanonicalizedHeaders(request) + CanonicalizedResource(request.url, account);
}

Result<std::string> SharedKeySignature(std::string_view string_to_sign, const Secret& account_key) {
  std::optional<std::string> key = Base64Decode(account_key.Reveal());
  if (!key || key->empty()) {
    return InvalidArgument(
        "the storage account key is not base64; copy key1 or key2 from the storage account's Access keys page");
  }
  return Base64Encode(AsStringView(HmacSha256(*key, string_to_sign)));
}

Status SignSharedKey(http::OutboundRequest& request, std::string_view account, const Secret& account_key) {
  SLUICE_ASSIGN_OR_RETURN(std::string signature, SharedKeySignature(StringToSign(request, account), account_key));
  request.headers.emplace_back("Authorization", fmt::format("SharedKey {}:{}", account, signature));
  return Status();
}

}  // namespace sluice::azure
