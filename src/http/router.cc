// Router, Headers, Request/Response helpers and the request decoding helpers of server.h.
#include <algorithm>
#include <exception>
#include <string>
#include <string_view>

#include "common/crypto.h"
#include "common/json_text.h"
#include "common/strings.h"
#include "http/server.h"

namespace sluice::http {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Non-empty '/'-separated segments: "/a//b/" and "/a/b" route alike, which is what tolerating a trailing
/// slash needs.
std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> segments;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) segments.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return segments;
}

bool IsCapture(std::string_view segment) {
  return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

/// Whether a path's segments match a pattern's (literal segments equal, captures match anything).
bool SegmentsMatch(const std::vector<std::string>& pattern, const std::vector<std::string_view>& segments) {
  if (pattern.size() != segments.size()) return false;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (!IsCapture(pattern[i]) && pattern[i] != segments[i]) return false;
  }
  return true;
}

/// An Access-Control-Request-Headers value that is safe to echo: a short comma-separated list of header-name
/// tokens (RFC 9110 §5.6.2). Anything else is not echoed, so the browser refuses the unusual headers.
bool IsHeaderNameList(std::string_view value) {
  if (value.empty() || value.size() > 1024) return false;
  for (char c : value) {
    bool token = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!token && c != ',' && c != ' ' && c != '\t') return false;
  }
  return true;
}

/// The CORS headers of every answer on a cross-origin path. With an Origin (every browser CORS request has
/// one) it is echoed with Allow-Credentials: mixpanel-browser's XHR sets withCredentials, which a `*` would
/// fail. `Vary: Origin` keeps caches from serving one origin's answer to another.
void AddCorsHeaders(std::string_view origin, Headers& headers) {
  if (headers.Get("Access-Control-Allow-Origin")) return;
  if (!origin.empty()) {
    headers.Add("Access-Control-Allow-Origin", std::string(origin));
    headers.Add("Access-Control-Allow-Credentials", "true");
    headers.Add("Vary", "Origin");
  } else {
    headers.Add("Access-Control-Allow-Origin", "*");
  }
  // A 429's Retry-After is what a browser SDK needs to back off.
  headers.Add("Access-Control-Expose-Headers", "Retry-After");
}

void AddCorsHeaders(const Request& request, Response& response) {
  AddCorsHeaders(request.headers.Get("Origin").value_or(std::string_view()), response.headers);
}

/// Auth scheme token of "Authorization: <scheme> <credentials>", compared case-insensitively (RFC 9110 §11.1).
std::optional<std::string_view> AuthCredentials(const Headers& headers, std::string_view scheme) {
  auto value = headers.Get("Authorization");
  if (!value) return std::nullopt;
  std::string_view v = TrimSpace(*value);
  if (v.size() <= scheme.size() || !EqualsIgnoreCase(v.substr(0, scheme.size()), scheme) ||
      (v[scheme.size()] != ' ' && v[scheme.size()] != '\t')) {
    return std::nullopt;
  }
  std::string_view credentials = TrimSpace(v.substr(scheme.size()));
  if (credentials.empty()) return std::nullopt;
  return credentials;
}

}  // namespace

std::string JsonErrorBody(std::string_view message) {
  std::string body = "{\"error\":";
  AppendJsonString(body, message);
  body += ",\"status\":\"error\"}";
  return body;
}

// ---- Headers ----------------------------------------------------------------------------------------------------

void Headers::Add(std::string name, std::string value) { entries_.emplace_back(std::move(name), std::move(value)); }

void Headers::Set(std::string name, std::string value) {
  std::erase_if(entries_, [&](const auto& entry) { return EqualsIgnoreCase(entry.first, name); });
  entries_.emplace_back(std::move(name), std::move(value));
}

std::optional<std::string_view> Headers::Get(std::string_view name) const {
  for (const auto& [key, value] : entries_) {
    if (EqualsIgnoreCase(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

// ---- Request / Response ---------------------------------------------------------------------------------------

std::optional<std::string_view> Request::Query(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return std::string_view(value);
  }
  return std::nullopt;
}

Response Response::Json(int status, std::string json) {
  Response response;
  response.status = status;
  response.headers.Add("Content-Type", "application/json");
  response.body = std::move(json);
  return response;
}

Response Response::Text(int status, std::string text, std::string_view content_type) {
  Response response;
  response.status = status;
  response.headers.Add("Content-Type", std::string(content_type));
  response.body = std::move(text);
  return response;
}

// ---- Router -----------------------------------------------------------------------------------------------------

void Router::Add(std::string_view method, std::string_view pattern, Handler handler) {
  Route route;
  route.method = std::string(method);
  for (std::string_view segment : SplitPath(pattern)) {
    route.segments.emplace_back(segment);
    if (!IsCapture(segment)) ++route.literal_segments;
  }
  route.handler = std::move(handler);
  route.pattern = std::string(pattern);
  routes_.push_back(std::move(route));
}

void Router::AllowCrossOrigin(std::string_view pattern) {
  std::vector<std::string> segments;
  for (std::string_view segment : SplitPath(pattern)) segments.emplace_back(segment);
  cross_origin_patterns_.push_back(std::move(segments));
}

bool Router::CrossOriginAllowed(const std::vector<std::string_view>& segments) const {
  return std::any_of(
      cross_origin_patterns_.begin(), cross_origin_patterns_.end(),
      [&](const std::vector<std::string>& pattern) { return SegmentsMatch(pattern, segments); });
}

void Router::AddCrossOriginHeaders(std::string_view target, std::string_view origin,
                                   Headers& response_headers) const {
  if (CrossOriginAllowed(SplitPath(target.substr(0, target.find('?')))))
    AddCorsHeaders(origin, response_headers);
}

Response Router::Preflight(const Request& request, const std::vector<std::string_view>& segments,
                           std::string* route_label) const {
  std::string methods;
  const Route* first = nullptr;
  for (const Route& route : routes_) {
    if (!SegmentsMatch(route.segments, segments)) continue;
    if (first == nullptr) first = &route;
    if (methods.find(route.method) == std::string::npos) methods += route.method + ", ";
  }
  if (route_label != nullptr) *route_label = first != nullptr ? first->pattern : "unmatched";
  if (first == nullptr) {
    return Response::Json(404, JsonErrorBody("no route for " + request.method + " " + request.path));
  }
  methods += "OPTIONS";
  Response response;
  response.status = 204;
  response.headers.Add("Allow", methods);
  response.headers.Add("Access-Control-Allow-Methods", methods);
  if (auto wanted = request.headers.Get("Access-Control-Request-Headers");
      wanted && IsHeaderNameList(*wanted)) {
    response.headers.Add("Access-Control-Allow-Headers", std::string(*wanted));
  }
  response.headers.Add("Access-Control-Max-Age", std::to_string(kCorsMaxAgeSeconds));
  AddCorsHeaders(request, response);
  response.headers.Set("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
  return response;
}

namespace {

/// Whether a browser marked `request` as made by a page of another site (Go's net/http CrossOriginProtection,
/// after Filippo Valsorda's analysis): every current browser sends Sec-Fetch-Site, "same-origin" for the
/// console's own requests and "none" for what the user typed; older ones at least send an Origin, which then
/// must name this host. Clients that are not browsers (SDKs, curl, the CLI) send neither and are not refused.
bool IsCrossSiteBrowserRequest(const Request& request) {
  if (auto site = request.headers.Get("Sec-Fetch-Site")) {
    return !EqualsIgnoreCase(*site, "same-origin") && !EqualsIgnoreCase(*site, "none");
  }
  auto origin = request.headers.Get("Origin");
  if (!origin) return false;
  auto host = request.headers.Get("Host");
  const size_t scheme_end = origin->find("://");
  return !host || scheme_end == std::string_view::npos ||
         !EqualsIgnoreCase(origin->substr(scheme_end + 3), *host);
}

/// Methods a page of another site could use to change something (GET and HEAD only read, and without CORS
/// headers the page cannot see what they answer).
bool IsUnsafeMethod(std::string_view method) {
  return method != "GET" && method != "HEAD" && method != "OPTIONS";
}

}  // namespace

Response Router::Dispatch(Request& request, std::string* route_label) const {
  const std::vector<std::string_view> segments = SplitPath(request.path);
  if (CrossOriginAllowed(segments)) {
    if (request.method == "OPTIONS") return Preflight(request, segments, route_label);
    Response response = DispatchRoute(request, segments, route_label);
    AddCorsHeaders(request, response);
    return response;
  }
  // A browser that holds a project's secret (typed into its Basic login prompt, or cached from a URL) sends
  // it with a form another website posts here: refuse such a request before any handler sees it.
  if (IsUnsafeMethod(request.method) && IsCrossSiteBrowserRequest(request)) {
    if (route_label != nullptr) *route_label = "unmatched";
    return Response::Json(
        403,
        JsonErrorBody("cross-site request refused: " + request.method + " " + request.path +
                      " takes requests from Sluice's own console and from clients that are not browsers, "
                      "never from another website's page (it could use credentials the browser saved)"));
  }
  return DispatchRoute(request, segments, route_label);
}

Response Router::DispatchRoute(Request& request, const std::vector<std::string_view>& segments,
                               std::string* route_label) const {
  const Route* best = nullptr;
  std::vector<std::string_view> allowed;  // methods of routes matching the path, for 405's Allow header
  for (const Route& route : routes_) {
    if (!SegmentsMatch(route.segments, segments)) continue;
    if (route.method != request.method) {
      if (std::find(allowed.begin(), allowed.end(), route.method) == allowed.end()) allowed.push_back(route.method);
      continue;
    }
    if (best == nullptr || route.literal_segments > best->literal_segments) best = &route;
  }
  if (best == nullptr) {
    if (route_label != nullptr) *route_label = "unmatched";
    if (!allowed.empty()) {
      Response response =
          Response::Json(405, JsonErrorBody("method " + request.method + " is not allowed for " + request.path));
      std::string allow;
      for (std::string_view method : allowed) {
        if (!allow.empty()) allow += ", ";
        allow += method;
      }
      response.headers.Add("Allow", std::move(allow));
      return response;
    }
    return Response::Json(404, JsonErrorBody("no route for " + request.method + " " + request.path));
  }
  if (route_label != nullptr) *route_label = best->pattern;
  request.path_params.clear();
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string& want = best->segments[i];
    if (IsCapture(want)) {
      request.path_params.emplace(want.substr(1, want.size() - 2), std::string(segments[i]));
    }
  }
  // A throwing handler must not take the I/O thread (and every connection on it) down with it.
  try {
    return best->handler(request);
  } catch (const std::exception& e) {
    return Response::Json(500, JsonErrorBody(std::string("internal error: ") + e.what()));
  } catch (...) {
    return Response::Json(500, JsonErrorBody("internal error"));
  }
}

// ---- Decoding helpers -------------------------------------------------------------------------------------------

std::optional<std::string> PercentDecode(std::string_view text, bool plus_as_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = HexValue(text[i + 1]);
      int lo = HexValue(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ParseForm(std::string_view body) {
  std::vector<std::pair<std::string, std::string>> pairs;
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('&', start);
    if (end == std::string_view::npos) end = body.size();
    std::string_view pair = body.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    // A malformed escape ("100%", "%zz") keeps its raw text rather than dropping the field: SDK payloads are
    // validated later anyway, and losing a parameter silently would be worse.
    auto decoded_key = PercentDecode(key, true);
    auto decoded_value = PercentDecode(value, true);
    pairs.emplace_back(decoded_key ? std::move(*decoded_key) : std::string(key),
                       decoded_value ? std::move(*decoded_value) : std::string(value));
  }
  return pairs;
}

std::optional<BasicCredentials> ParseBasicAuth(const Headers& headers) {
  auto credentials = AuthCredentials(headers, "Basic");
  if (!credentials) return std::nullopt;
  auto decoded = Base64Decode(*credentials);
  if (!decoded || decoded->empty()) return std::nullopt;
  BasicCredentials out;
  size_t colon = decoded->find(':');
  if (colon == std::string::npos) {
    // Tolerated: some clients send the API secret alone, without Mixpanel's trailing ':'.
    out.user = std::move(*decoded);
  } else {
    out.user = decoded->substr(0, colon);
    out.password = decoded->substr(colon + 1);
  }
  if (out.user.empty() && out.password.empty()) return std::nullopt;
  return out;
}

std::optional<std::string> ParseBearer(const Headers& headers) {
  auto credentials = AuthCredentials(headers, "Bearer");
  if (!credentials) return std::nullopt;
  return std::string(*credentials);
}

}  // namespace sluice::http
