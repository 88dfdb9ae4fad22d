// Shared by the server and the client commands: addresses, and how a client finds the server and admin token.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "common/result.h"
#include "common/secret.h"

namespace sluice::app {

struct HostPort {
  std::string host;
  uint16_t port = 0;
};
std::optional<HostPort> ParseHostPort(const std::string& text);

/// The server writes its URL to DIR/server.url while it runs, so clients given only --data-dir find it.
void WriteServerUrl(const std::filesystem::path& dir, const std::string& url);

struct ClientTarget {
  std::string server_url;  // e.g. http://127.0.0.1:8080
  Secret admin_token;
};

/// Resolves the server and admin token: explicit flags, then SLUICE_SERVER / SLUICE_ADMIN_TOKEN, then the data
/// dir's server.url and admin-token files. Fails naming what is missing.
Result<ClientTarget> ResolveClientTarget(const std::string& server_flag, const std::string& token_flag,
                                         const std::string& data_dir);

}  // namespace sluice::app
