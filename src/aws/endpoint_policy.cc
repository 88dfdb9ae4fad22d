#include "aws/endpoint_policy.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace sluice::aws {
namespace {

bool IsHostChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'; }

/// The value as the caller sent it, for the error message: at most 200 bytes, control characters as '?'.
std::string Shown(std::string_view url) {
  std::string out(url.substr(0, 200));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (url.size() > 200) out += "...";
  return out;
}

}  // namespace

Result<std::string> NormalizeEndpoint(std::string_view url, std::string_view what) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument(
        fmt::format("{} '{}' {}: give scheme, host and optional port only, e.g. "
                    "https://s3.example.com or http://minio.internal:9000",
                    what, Shown(url), why));
  };
  std::string scheme;
  std::string_view rest;
  auto starts_i = [&](std::string_view prefix) {
    return url.size() >= prefix.size() &&
           std::equal(prefix.begin(), prefix.end(), url.begin(),
                      [](char a, char b) { return a == (b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b); });
  };
  if (starts_i("http://")) {
    scheme = "http";
    rest = url.substr(7);
  } else if (starts_i("https://")) {
    scheme = "https";
    rest = url.substr(8);
  } else {
    return bad("must be an http:// or https:// URL");
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find_first_of("/?#") != std::string_view::npos) return bad("has a path, query or fragment");
  if (rest.find('@') != std::string_view::npos) return bad("has a user name or password");
  if (rest.empty()) return bad("has no host");
  std::string host;
  std::string_view port_text;
  if (rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("has an unterminated IPv6 address");
    std::string_view v6 = rest.substr(1, close - 1);
    if (v6.empty() || !std::all_of(v6.begin(), v6.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
        })) {
      return bad("has an invalid IPv6 address");
    }
    host = "[" + std::string(v6) + "]";
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("has characters after the IPv6 address");
      port_text = after.substr(1);
      if (port_text.empty()) return bad("has an empty port");
    }
  } else {
    size_t colon = rest.find(':');
    std::string_view h = rest.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
      if (port_text.empty()) return bad("has an empty port");
    }
    host.reserve(h.size());
    for (char c : h) host.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    if (host.empty() || host.size() > 253 || !std::all_of(host.begin(), host.end(), IsHostChar) ||
        host.front() == '.' || host.front() == '-' || host.find("..") != std::string::npos) {
      return bad("has an invalid host name");
    }
    while (host.ends_with('.')) host.pop_back();  // "example.com." names the same host
    if (host.empty()) return bad("has an invalid host name");
  }
  unsigned port = scheme == "https" ? 443 : 80;
  if (!port_text.empty()) {
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port == 0 || port > 65535 ||
        port_text.size() > 5) {
      return bad("has an invalid port");
    }
  }
  return fmt::format("{}://{}:{}", scheme, host, port);
}

Result<EndpointPolicy> EndpointPolicy::Create(const std::vector<std::string>& allowed, const EnvGetter& env) {
  EndpointPolicy policy;
  for (const auto& url : allowed) {
    SLUICE_ASSIGN_OR_RETURN(std::string n, NormalizeEndpoint(url, "--allow-endpoint"));
    policy.allowed_.insert(std::move(n));
  }
  for (const char* var : {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"}) {
    if (auto v = env(var)) {
      SLUICE_ASSIGN_OR_RETURN(std::string n, NormalizeEndpoint(*v, var));
      policy.allowed_.insert(std::move(n));
    }
  }
  return policy;
}

Status EndpointPolicy::Check(std::string_view endpoint, std::string_view what) const {
  if (endpoint.empty()) return OkStatus();
  SLUICE_ASSIGN_OR_RETURN(std::string n, NormalizeEndpoint(endpoint, what));
  if (allowed_.contains(n)) return OkStatus();
  return InvalidArgument(fmt::format(
      "{} '{}' is not an endpoint this Sluice server may use: leave it empty for {}, or ask the operator to "
      "allow it (`sluice serve {} {}`{}). No request was sent to it",
      what, Shown(endpoint), advice_.default_service, advice_.flag, n,
      advice_.env.empty() ? std::string() : " or " + advice_.env));
}

}  // namespace sluice::aws
