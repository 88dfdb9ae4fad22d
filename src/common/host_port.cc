#include "common/host_port.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace sluice {
namespace {

bool IsDnsName(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    std::string_view label = host.substr(start, dot == std::string_view::npos ? host.npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

bool IsIpv6Literal(std::string_view host) {
  if (host.size() < 2 || host.find(':') == std::string_view::npos) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
  });
}

}  // namespace

std::string HostPort::ToString() const {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                             : fmt::format("{}:{}", host, port);
}

Result<std::vector<HostPort>> ParseHostPortList(std::string_view text) {
  if (text.empty()) return InvalidArgument("names no HOST:PORT");
  std::vector<HostPort> out;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string_view entry = text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    auto bad = [&](std::string_view why) {
      return InvalidArgument(fmt::format("host entry '{}' {}", entry, why));
    };
    if (entry.empty()) return bad("is empty");
    HostPort hp;
    std::string_view port_text;
    if (entry.front() == '[') {
      size_t close = entry.find(']');
      if (close == std::string_view::npos) return bad("has an unclosed '['");
      hp.host = std::string(entry.substr(1, close - 1));
      if (!IsIpv6Literal(hp.host)) return bad("is not a valid IPv6 literal");
      if (close + 1 >= entry.size() || entry[close + 1] != ':') return bad("has no port");
      port_text = entry.substr(close + 2);
    } else {
      size_t colon = entry.rfind(':');
      if (colon == std::string_view::npos) return bad("has no port");
      hp.host = std::string(entry.substr(0, colon));
      if (!IsDnsName(hp.host)) return bad("has an invalid host name");
      port_text = entry.substr(colon + 1);
    }
    unsigned port = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() || port == 0 ||
        port > 65535 || port_text.front() == '+') {
      return bad("has an invalid port (1-65535)");
    }
    hp.port = static_cast<uint16_t>(port);
    if (std::find(out.begin(), out.end(), hp) != out.end()) return bad("is listed twice");
    out.push_back(std::move(hp));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace sluice
