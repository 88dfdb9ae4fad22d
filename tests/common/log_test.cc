#include "common/log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <sstream>

#include "common/crypto.h"

namespace sluice {
namespace {

/// A logger built like InitLogging's (same pattern, MakeSafeSink), writing into `out`.
std::shared_ptr<spdlog::logger> SafeLogger(std::ostringstream& out) {
  auto inner = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto logger = std::make_shared<spdlog::logger>("test", MakeSafeSink(inner));
  logger->set_pattern("%l %v");
  logger->set_level(spdlog::level::trace);
  return logger;
}

size_t Lines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST(LogTest, EscapesControlCharacters) {
  EXPECT_EQ(EscapeControlChars("plain text, 100% ok / \\ é"), "plain text, 100% ok / \\ é");
  EXPECT_EQ(EscapeControlChars("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(EscapeControlChars(std::string_view("nul\0here", 8)), "nul\\0here");
  EXPECT_EQ(EscapeControlChars("\x1b[31mred\x7f\x01"), "\\x1b[31mred\\x7f\\x01");
}

TEST(LogTest, InjectedNewlineCannotForgeALogLine) {
  std::ostringstream out;
  auto logger = SafeLogger(out);
  const std::string endpoint_text = "bucket missing\n[error] forged: admin logged in\r\n";
  logger->warn("destination check failed: {}", endpoint_text);
  logger->info("project name {}", std::string("evil\0name", 9));
  const std::string text = out.str();
  EXPECT_EQ(Lines(text), 2u) << text;
  EXPECT_NE(
      text.find("warning destination check failed: bucket missing\\n[error] forged: admin logged in\\r\\n\n"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("info project name evil\\0name\n"), std::string::npos) << text;
}

TEST(LogTest, RedactsTokenShapedValues) {
  const std::string token = RandomHex(128);  // a project token / API secret: 32 hex digits
  const std::string admin = RandomHex(256);  // a minted admin token: 64 hex digits
  EXPECT_EQ(RedactTokens("token " + token + "."), "token " + token.substr(0, 4) + "….");
  EXPECT_EQ(RedactTokens(admin), admin.substr(0, 4) + "…");
  // Other hex runs (a 48-digit encoded key, a 40-digit commit, short ids) are kept.
  const std::string key = RandomHex(192);
  EXPECT_EQ(RedactTokens("key " + key), "key " + key);
  EXPECT_EQ(RedactTokens("run 0123abcd"), "run 0123abcd");
}

// The text a failed destination check produces (objstore/destination_check.cc) names the external ID, which
// by default is the project token: the client may see it, the log must not.
TEST(LogTest, DestinationCheckFailureLogContainsNoToken) {
  std::ostringstream out;
  auto logger = SafeLogger(out);
  const std::string token = RandomHex(128);
  const std::string failure =
      "arn:aws:iam::111122223333:user/sluice may not assume arn:aws:iam::111122223333:role/export with "
      "external "
      "ID " +
      token +
      ". The role's trust policy must allow sts:AssumeRole for arn:aws:iam::111122223333:user/sluice "
      "with Condition StringEquals sts:ExternalId = " +
      token + " (AccessDenied)";
  logger->info("pipeline create refused (project 7, pipeline 'p'): {}", failure);
  const std::string text = out.str();
  EXPECT_EQ(text.find(token), std::string::npos) << text;
  EXPECT_NE(text.find("external ID " + token.substr(0, 4) + "…"), std::string::npos) << text;
}

}  // namespace
}  // namespace sluice
