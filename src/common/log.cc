#include "common/log.h"

#include <spdlog/details/log_msg.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <utility>

namespace sluice {
namespace {

bool IsHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool NeedsEscape(unsigned char c) { return c < 0x20 || c == 0x7f; }

/// Forwards to another sink after making the message safe (see log.h). The formatter and level stay the inner
/// sink's, so the timestamp and level prefix are untouched.
class SafeSink final : public spdlog::sinks::sink {
 public:
  explicit SafeSink(spdlog::sink_ptr inner) : inner_(std::move(inner)) {}

  void log(const spdlog::details::log_msg& msg) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    std::string safe = EscapeControlChars(RedactTokens(payload));
    if (safe == payload) {
      inner_->log(msg);
      return;
    }
    spdlog::details::log_msg copy = msg;
    copy.payload = spdlog::string_view_t(safe.data(), safe.size());
    inner_->log(copy);
  }
  void flush() override { inner_->flush(); }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    inner_->set_formatter(std::move(formatter));
  }

 private:
  spdlog::sink_ptr inner_;
};

}  // namespace

std::string EscapeControlChars(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  static constexpr char kHex[] = "0123456789abcdef";
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (!NeedsEscape(c)) {
      out.push_back(ch);
      continue;
    }
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\0':
        out += "\\0";
        break;
      default:
        out += "\\x";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
        break;
    }
  }
  return out;
}

std::string RedactTokens(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (!IsHexDigit(text[i])) {
      out.push_back(text[i++]);
      continue;
    }
    size_t end = i;
    while (end < text.size() && IsHexDigit(text[end])) ++end;
    const size_t run = end - i;
    // Runs are maximal, so a longer hex string (a hash, an encoded key) is kept whole rather than cut
    // mid-way.
    if (run == 32 || run == 64) {
      out.append(text.substr(i, 4));
      out += "…";
    } else {
      out.append(text.substr(i, run));
    }
    i = end;
  }
  return out;
}

spdlog::sink_ptr MakeSafeSink(spdlog::sink_ptr inner) { return std::make_shared<SafeSink>(std::move(inner)); }

void InitLogging(std::string_view level) {
  spdlog::drop("sluice");  // main() sets up logging for every command; `serve` calls again with its level
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("sluice", MakeSafeSink(console));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::from_str(std::string(level)));
  spdlog::set_default_logger(logger);
  spdlog::flush_on(spdlog::level::warn);
}

}  // namespace sluice
