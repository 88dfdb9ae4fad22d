// Credential providers for Sluice's OWN AWS identity: static/explicit, environment, shared credentials/config
// files, and the caching base class the refreshing providers (web identity, AssumeRole — see aws/sts.h) share.
// The default chain (explicit → environment → web identity → profile) is aws::MakeDefaultCredentialsChain in
// aws/sts.h because web identity needs STS.
//
// Usage:
//   auto env = std::make_shared<aws::EnvironmentCredentialsProvider>();
//   auto profile = std::make_shared<aws::ProfileCredentialsProvider>("analytics");   // "" = AWS_PROFILE|default
//   Result<aws::Credentials> c = profile->Get();
//
// Environment access goes through an EnvGetter so tests never touch the process environment.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credentials.h"
#include "cloud/refreshing.h"
#include "common/clock.h"

namespace sluice::aws {

/// Reads an environment variable; nullopt when unset (an empty value counts as unset).
using EnvGetter = std::function<std::optional<std::string>(std::string_view name)>;
/// The process environment.
EnvGetter SystemEnv();

/// Fixed credentials (explicit configuration, tests).
class StaticCredentialsProvider final : public CredentialsProvider {
 public:
  explicit StaticCredentialsProvider(Credentials credentials, std::string name = "static")
      : credentials_(std::move(credentials)), name_(std::move(name)) {}
  Result<Credentials> Get() override { return credentials_; }
  void Invalidate() override {}
  std::string Name() const override { return name_; }

 private:
  Credentials credentials_;
  std::string name_;
};

/// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN], read at every Get() (cheap), so a rotated
/// environment (container restarts aside) is picked up. kUnauthenticated when unset or half set.
class EnvironmentCredentialsProvider final : public CredentialsProvider {
 public:
  explicit EnvironmentCredentialsProvider(EnvGetter env = SystemEnv()) : env_(std::move(env)) {}
  Result<Credentials> Get() override;
  void Invalidate() override {}
  std::string Name() const override { return "environment"; }

 private:
  EnvGetter env_;
};

/// One INI file: section name → key → value. Section names are as written, except that a config file's
/// "[profile x]" becomes "x" (and "[default]" stays "default"), so both files index the same way.
using IniSections = std::map<std::string, std::map<std::string, std::string>, std::less<>>;
/// Parses the AWS shared credentials/config format: "[section]", "key = value", comments starting with '#' or
/// ';', indented continuation lines (nested settings) ignored. `is_config` applies the "[profile x]" rule.
IniSections ParseIni(std::string_view text, bool is_config);

/// Where the shared files are: AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE, else ~/.aws/credentials and
/// ~/.aws/config ($HOME).
std::string SharedCredentialsPath(const EnvGetter& env);
std::string SharedConfigPath(const EnvGetter& env);
/// The profile to use: `explicit_profile` if not empty, else AWS_PROFILE, else "default".
std::string ResolveProfileName(std::string_view explicit_profile, const EnvGetter& env);

/// Static keys from the shared files: aws_access_key_id / aws_secret_access_key [/ aws_session_token] in the
/// credentials file's [name] section, else the config file's [profile name] ([default]) section. Files are read
/// on the first Get() and again after Invalidate(). kUnauthenticated when the profile has no keys (its name and
/// the files looked at are in the message).
class ProfileCredentialsProvider final : public CredentialsProvider {
 public:
  explicit ProfileCredentialsProvider(std::string profile = "", EnvGetter env = SystemEnv());
  Result<Credentials> Get() override;
  void Invalidate() override;
  std::string Name() const override { return "profile " + profile_; }
  /// The profile's `region` setting from the config file, if any.
  std::optional<std::string> Region() const;

 private:
  std::string profile_;
  EnvGetter env_;
  std::mutex mu_;
  std::optional<Credentials> cached_;
};

/// Base for providers whose credentials expire (STS): serves them through cloud::RefreshingCache — cached,
/// refreshed `refresh_margin` before expiry with one refresh in flight, and, when a refresh fails while the
/// cached credentials are still valid, kept (with a warning) and refreshed again no sooner than `retry_interval`.
class RefreshingCredentialsProvider : public CredentialsProvider {
 public:
  using RefreshOptions = cloud::RefreshOptions;

  explicit RefreshingCredentialsProvider(RefreshOptions options);
  Result<Credentials> Get() final;
  void Invalidate() final;

  /// How many successful fetches happened (tests, metrics).
  int refresh_count() const;

 protected:
  /// Fetches new credentials from the source (called with the refresh lock held: one at a time).
  virtual Result<Credentials> Fetch() = 0;

 private:
  cloud::RefreshingCache<Credentials> cache_;
};

}  // namespace sluice::aws
