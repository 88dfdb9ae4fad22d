#include "aws/providers.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace sluice::aws {
namespace {

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

std::optional<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<Credentials> KeysFrom(const IniSections& sections, std::string_view section) {
  auto it = sections.find(section);
  if (it == sections.end()) return std::nullopt;
  const auto& kv = it->second;
  auto id = kv.find("aws_access_key_id");
  auto secret = kv.find("aws_secret_access_key");
  if (id == kv.end() || secret == kv.end() || id->second.empty() || secret->second.empty()) return std::nullopt;
  Credentials c;
  c.access_key_id = id->second;
  c.secret_access_key = Secret(secret->second);
  if (auto token = kv.find("aws_session_token"); token != kv.end()) c.session_token = Secret(token->second);
  return c;
}

}  // namespace

EnvGetter SystemEnv() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
}

Result<Credentials> EnvironmentCredentialsProvider::Get() {
  auto id = env_("AWS_ACCESS_KEY_ID");
  auto secret = env_("AWS_SECRET_ACCESS_KEY");
  if (!id && !secret) {
    return Error(ErrorCode::kUnauthenticated, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
  }
  if (!id || !secret) {
    return Error(ErrorCode::kUnauthenticated,
                 fmt::format("{} is set but {} is not", id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                             id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID"));
  }
  Credentials c;
  c.access_key_id = *id;
  c.secret_access_key = Secret(*secret);
  if (auto token = env_("AWS_SESSION_TOKEN")) c.session_token = Secret(*token);
  return c;
}

IniSections ParseIni(std::string_view text, bool is_config) {
  IniSections sections;
  std::string current;
  bool in_section = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    if (!raw.empty() && (raw[0] == ' ' || raw[0] == '\t')) continue;  // nested (s3 = ...) settings
    std::string line = Trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      size_t close = line.find(']');
      std::string name = Trim(std::string_view(line).substr(1, close == std::string::npos ? line.size() - 1
                                                                                          : close - 1));
      if (is_config && name.starts_with("profile ")) name = Trim(std::string_view(name).substr(8));
      current = name;
      in_section = true;
      sections[current];
      continue;
    }
    if (!in_section) continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = Trim(std::string_view(line).substr(0, eq));
    std::string value = Trim(std::string_view(line).substr(eq + 1));
    // Inline comments only when preceded by whitespace (secrets may contain '#').
    for (const char* marker : {" #", "\t#", " ;", "\t;"}) {
      if (size_t c = value.find(marker); c != std::string::npos) value = Trim(std::string_view(value).substr(0, c));
    }
    for (char& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    sections[current][key] = value;
  }
  return sections;
}

std::string SharedCredentialsPath(const EnvGetter& env) {
  if (auto p = env("AWS_SHARED_CREDENTIALS_FILE")) return *p;
  return env("HOME").value_or("") + "/.aws/credentials";
}

std::string SharedConfigPath(const EnvGetter& env) {
  if (auto p = env("AWS_CONFIG_FILE")) return *p;
  return env("HOME").value_or("") + "/.aws/config";
}

std::string ResolveProfileName(std::string_view explicit_profile, const EnvGetter& env) {
  if (!explicit_profile.empty()) return std::string(explicit_profile);
  if (auto p = env("AWS_PROFILE")) return *p;
  return "default";
}

ProfileCredentialsProvider::ProfileCredentialsProvider(std::string profile, EnvGetter env)
    : profile_(ResolveProfileName(profile, env)), env_(std::move(env)) {}

Result<Credentials> ProfileCredentialsProvider::Get() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cached_) return *cached_;
  std::string credentials_path = SharedCredentialsPath(env_);
  std::string config_path = SharedConfigPath(env_);
  if (auto text = ReadWholeFile(credentials_path)) {
    if (auto c = KeysFrom(ParseIni(*text, false), profile_)) {
      cached_ = *c;
      return *c;
    }
  }
  if (auto text = ReadWholeFile(config_path)) {
    if (auto c = KeysFrom(ParseIni(*text, true), profile_)) {
      cached_ = *c;
      return *c;
    }
  }
  return Error(ErrorCode::kUnauthenticated,
               fmt::format("profile '{}' has no aws_access_key_id/aws_secret_access_key in {} or {}", profile_,
                           credentials_path, config_path));
}

void ProfileCredentialsProvider::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  cached_.reset();
}

std::optional<std::string> ProfileCredentialsProvider::Region() const {
  auto text = ReadWholeFile(SharedConfigPath(env_));
  if (!text) return std::nullopt;
  IniSections sections = ParseIni(*text, true);
  auto it = sections.find(profile_);
  if (it == sections.end()) return std::nullopt;
  auto r = it->second.find("region");
  if (r == it->second.end() || r->second.empty()) return std::nullopt;
  return r->second;
}

RefreshingCredentialsProvider::RefreshingCredentialsProvider(RefreshOptions options)
    : cache_(options, "credentials") {}

int RefreshingCredentialsProvider::refresh_count() const { return cache_.refresh_count(); }

Result<Credentials> RefreshingCredentialsProvider::Get() {
  return cache_.Get([this] { return Fetch(); }, Name());
}

void RefreshingCredentialsProvider::Invalidate() { cache_.Invalidate(); }

}  // namespace sluice::aws
