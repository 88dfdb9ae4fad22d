// Logging set-up. Modules log through spdlog directly; this configures the sink and level, and makes every
// line safe to log: the sink escapes control characters and redacts token-shaped values, so no call site can
// forget. Still: never log a Secret's revealed value, an Authorization header, a token or an API secret.
#pragma once

#include <spdlog/common.h>

#include <string>
#include <string_view>

namespace sluice {

/// level: trace|debug|info|warn|error|off. Logs go to stderr with UTC timestamps, through MakeSafeSink.
void InitLogging(std::string_view level);

/// `text` with every control character (C0, including NUL, CR, LF and TAB, and DEL) written as an escape
/// (`\n`, `\r`, `\t`, `\0`, `\x1b`, `\x7f`), so text from a tenant or a remote endpoint cannot forge log
/// lines or hide in the terminal.
std::string EscapeControlChars(std::string_view text);

/// `text` with every standalone run of exactly 32 or 64 hex digits (the shape of project tokens, API secrets
/// and minted admin tokens) cut to its first 4 digits and "…". Error messages that go to a tenant may name
/// its token (e.g. as the external ID to put in a trust policy); the log, read by operators, never shows it.
std::string RedactTokens(std::string_view text);

/// Wraps `inner`: each message is passed through RedactTokens and EscapeControlChars before `inner` formats
/// it.
spdlog::sink_ptr MakeSafeSink(spdlog::sink_ptr inner);

}  // namespace sluice
