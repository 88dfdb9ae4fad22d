#include "clickhouse/url.h"

#include <fmt/format.h>

namespace sluice::clickhouse {
namespace {

constexpr std::string_view kScheme = "clickhouse://";
constexpr std::string_view kSyntax = "clickhouse://HOST:PORT[,HOST:PORT...]/DB[?cluster=NAME]";

Error Bad(std::string_view why) {
  return InvalidArgument(fmt::format("--store {}: expected {}", why, kSyntax));
}

}  // namespace

bool IsPlainIdentifier(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (!(alpha || (digit && i > 0))) return false;
  }
  return true;
}

std::string ClickHouseUrl::ToString() const {
  std::string out(kScheme);
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (i > 0) out += ',';
    out += hosts[i].ToString();
  }
  out += '/';
  out += database;
  if (!cluster.empty()) out += "?cluster=" + cluster;
  return out;
}

Result<ClickHouseUrl> ParseClickHouseUrl(std::string_view url) {
  if (url.substr(0, kScheme.size()) != kScheme) return Bad("must start with clickhouse://");
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("@#") != std::string_view::npos) {
    return Bad("must not contain '@' or '#' (credentials are not taken from the URL)");
  }
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return Bad("has no /DB");
  ClickHouseUrl out;
  auto hosts = ParseHostPortList(rest.substr(0, slash));
  if (!hosts.ok()) return Bad(hosts.error().message);
  out.hosts = std::move(hosts).value();
  std::string_view path = rest.substr(slash + 1);
  std::string_view query;
  if (size_t q = path.find('?'); q != std::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
    if (query.empty()) return Bad("has an empty query after '?'");
  }
  if (!IsPlainIdentifier(path)) {
    return Bad(fmt::format("database '{}' must be a plain name ([A-Za-z_][A-Za-z0-9_]*, at most 64)", path));
  }
  out.database = std::string(path);
  bool seen_cluster = false;
  size_t start = 0;
  while (!query.empty() && start <= query.size()) {
    size_t amp = query.find('&', start);
    std::string_view param = query.substr(start, amp == std::string_view::npos ? query.npos : amp - start);
    size_t eq = param.find('=');
    std::string_view key = param.substr(0, eq);
    if (key != "cluster") return Bad(fmt::format("has an unknown parameter '{}' (only cluster=NAME)", key));
    if (seen_cluster) return Bad("names cluster twice");
    seen_cluster = true;
    std::string_view value = eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
    if (!IsPlainIdentifier(value)) {
      return Bad(fmt::format("cluster '{}' must be a plain name ([A-Za-z_][A-Za-z0-9_]*)", value));
    }
    out.cluster = std::string(value);
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return out;
}

}  // namespace sluice::clickhouse
