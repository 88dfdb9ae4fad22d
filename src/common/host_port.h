// HostPort lists as they appear in service URLs (clickhouse://a:8123,b:8123/db,
// zookeeper://z1:2181,z2:2181/x). One strict parser for both, so the two URL schemes accept exactly the same
// host syntax.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice {

struct HostPort {
  /// A DNS name or IPv4 literal, or an IPv6 literal without its brackets.
  std::string host;
  uint16_t port = 0;

  /// "host:port", with brackets around an IPv6 literal.
  std::string ToString() const;
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

/// Parses "HOST:PORT[,HOST:PORT...]". HOST is a DNS name (letters, digits, '-', '.'; labels not starting or
/// ending with '-'), an IPv4 literal, or "[IPv6]"; PORT is required, decimal, 1..65535. No spaces, no empty
/// entries, no duplicates. kInvalidArgument naming the offending entry otherwise (callers add which URL).
Result<std::vector<HostPort>> ParseHostPortList(std::string_view text);

}  // namespace sluice
