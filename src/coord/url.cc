#include "coord/url.h"

#include <fmt/format.h>

namespace sluice::coord {
namespace {

constexpr std::string_view kScheme = "zookeeper://";

Error Bad(std::string_view why) {
  return InvalidArgument(
      fmt::format("--coordination {}: expected zookeeper://HOST:PORT[,HOST:PORT...][/CHROOT]", why));
}

bool IsSegment(std::string_view seg) {
  if (seg.empty() || seg == "." || seg == ".." || seg.size() > 255) return false;
  for (char c : seg) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool IsValidNodePath(std::string_view path) {
  if (path == "/") return true;
  if (path.empty() || path.front() != '/') return false;
  size_t start = 1;
  while (true) {
    size_t slash = path.find('/', start);
    if (!IsSegment(path.substr(start, slash == std::string_view::npos ? path.npos : slash - start)))
      return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

std::string ZooKeeperUrl::ConnectString() const {
  std::string out;
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (i > 0) out += ',';
    out += hosts[i].ToString();
  }
  return out;
}

std::string ZooKeeperUrl::ToString() const { return std::string(kScheme) + ConnectString() + chroot; }

Result<ZooKeeperUrl> ParseZooKeeperUrl(std::string_view url) {
  if (url.substr(0, kScheme.size()) != kScheme) return Bad("must start with zookeeper://");
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("@?#") != std::string_view::npos) {
    return Bad("must not contain '@', '?' or '#' (no credentials or parameters)");
  }
  size_t slash = rest.find('/');
  ZooKeeperUrl out;
  auto hosts = ParseHostPortList(rest.substr(0, slash));
  if (!hosts.ok()) return Bad(hosts.error().message);
  out.hosts = std::move(hosts).value();
  if (slash != std::string_view::npos) {
    std::string_view chroot = rest.substr(slash);
    if (chroot == "/") return Bad("has an empty chroot (leave out the trailing '/')");
    if (!IsValidNodePath(chroot)) {
      return Bad(
          fmt::format("chroot '{}' must be /SEGMENT[/SEGMENT...] of [A-Za-z0-9_.-], without '.', '..', "
                      "empty segments or a trailing '/'",
                      chroot));
    }
    out.chroot = std::string(chroot);
  }
  return out;
}

}  // namespace sluice::coord
