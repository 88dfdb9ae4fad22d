#include "app/config.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <fmt/format.h>

namespace sluice::app {

std::optional<HostPort> ParseHostPort(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  HostPort hp;
  hp.host = text.substr(0, colon);
  if (hp.host.size() > 2 && hp.host.front() == '[' && hp.host.back() == ']') hp.host = hp.host.substr(1, hp.host.size() - 2);
  // Whole string, decimal digits only: stoul would accept " 80", "+80" and wrap "-1".
  const std::string digits = text.substr(colon + 1);
  if (digits.empty() || digits.size() > 5 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const unsigned long port = std::stoul(digits);
  if (port > 65535) return std::nullopt;
  hp.port = static_cast<uint16_t>(port);
  return hp;
}

void WriteServerUrl(const std::filesystem::path& dir, const std::string& url) {
  auto tmp = dir / "server.url.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << url << "\n";
  }
  std::error_code ec;
  std::filesystem::rename(tmp, dir / "server.url", ec);
}

namespace {
std::string ReadFirstLine(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  return line;
}
}  // namespace

Result<ClientTarget> ResolveClientTarget(const std::string& server_flag, const std::string& token_flag,
                                         const std::string& data_dir) {
  ClientTarget t;
  std::filesystem::path dir(data_dir.empty() ? "./data" : data_dir);
  t.server_url = server_flag;
  if (t.server_url.empty()) {
    if (const char* env = std::getenv("SLUICE_SERVER"); env && *env) t.server_url = env;
  }
  if (t.server_url.empty()) t.server_url = ReadFirstLine(dir / "server.url");
  if (t.server_url.empty()) {
    return InvalidArgument(fmt::format("cannot find the server: pass --server URL, set SLUICE_SERVER, or point "
                                       "--data-dir at a running server's data dir (no {} found)",
                                       (dir / "server.url").string()));
  }
  while (!t.server_url.empty() && t.server_url.back() == '/') t.server_url.pop_back();
  std::string token = token_flag;
  if (token.empty()) {
    if (const char* env = std::getenv("SLUICE_ADMIN_TOKEN"); env && *env) token = env;
  }
  if (token.empty()) token = ReadFirstLine(dir / "admin-token");
  if (token.empty()) {
    return InvalidArgument(fmt::format("no admin token: pass --admin-token, set SLUICE_ADMIN_TOKEN, or point "
                                       "--data-dir at the server's data dir (no {} found)",
                                       (dir / "admin-token").string()));
  }
  t.admin_token = Secret(token);
  return t;
}

}  // namespace sluice::app
