#include "aws/sts.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>

#include "aws/policy.h"
#include "aws/xml.h"
#include "common/crypto.h"

namespace sluice::aws {
namespace {

constexpr std::string_view kStsVersion = "2011-06-15";

bool IsSessionNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '=' ||
         c == ',' || c == '.' || c == '@' || c == '_' || c == '-';
}

Executor::Options ExecutorOptions(const StsOptions& o, std::shared_ptr<CredentialsProvider> credentials) {
  Executor::Options e;
  e.transport = o.transport;
  e.credentials = std::move(credentials);
  e.signing = SigningOptions::Generic(o.region, "sts");
  e.retry = o.retry;
  e.clock = o.clock;
  e.sleep = o.sleep;
  e.random = o.random;
  e.steady_now = o.steady_now;
  return e;
}

/// Parses <…Result><Credentials>…</Credentials><AssumedRoleUser>…</AssumedRoleUser></…Result>.
Result<AssumedRole> ParseAssumedRole(std::string_view body, std::string_view result_element) {
  SLUICE_ASSIGN_OR_RETURN(XmlNode root, ParseXml(body));
  const XmlNode* result = root.Child(result_element);
  const XmlNode* creds = result != nullptr ? result->Child("Credentials") : nullptr;
  if (creds == nullptr) {
    return Error(ErrorCode::kPermanent, fmt::format("STS answered without {}/Credentials", result_element));
  }
  AssumedRole out;
  out.credentials.access_key_id = creds->ChildText("AccessKeyId");
  out.credentials.secret_access_key = Secret(creds->ChildText("SecretAccessKey"));
  out.credentials.session_token = Secret(creds->ChildText("SessionToken"));
  if (out.credentials.access_key_id.empty() || out.credentials.secret_access_key.empty()) {
    return Error(ErrorCode::kPermanent, "STS answered with incomplete credentials");
  }
  SLUICE_ASSIGN_OR_RETURN(TimePoint expiration, ParseIso8601(creds->ChildText("Expiration")));
  out.credentials.expiration = expiration;
  out.assumed_role_arn = result->Text("AssumedRoleUser/Arn");
  out.assumed_role_id = result->Text("AssumedRoleUser/AssumedRoleId");
  return out;
}

std::string Form(std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out.push_back('&');
    out += UriEncode(k, true);
    out.push_back('=');
    out += UriEncode(v, true);
  }
  return out;
}

}  // namespace

std::string ResolveStsEndpoint(std::string_view region, std::string_view explicit_endpoint,
                               const EnvGetter& env) {
  std::string endpoint;
  if (!explicit_endpoint.empty()) {
    endpoint = std::string(explicit_endpoint);
  } else if (auto sts = env("AWS_ENDPOINT_URL_STS")) {
    endpoint = *sts;
  } else if (auto any = env("AWS_ENDPOINT_URL")) {
    endpoint = *any;
  } else {
    // Only a region's own STS host: a name that is not a region's ("s3") would make this another service's
    // host, and Sluice's signed request would go there. Callers validate regions at the edge; this is the
    // last line (the global endpoint, which rejects a request signed for another region).
    std::string_view r = region.empty() ? std::string_view("us-east-1") : region;
    endpoint = IsAwsRegionName(r)
                   ? fmt::format("https://sts.{}.amazonaws.com{}", r, r.starts_with("cn-") ? ".cn" : "")
                   : std::string("https://sts.amazonaws.com");
  }
  while (endpoint.ends_with("/")) endpoint.pop_back();
  return endpoint;
}

std::string MakeSessionName(std::string_view project, std::string_view pipeline) {
  std::string name = "sluice-" + std::string(project);
  if (!pipeline.empty()) name += "-" + std::string(pipeline);
  for (char& c : name) {
    if (!IsSessionNameChar(c)) c = '-';
  }
  if (name.size() > 64) name.resize(64);
  return name;
}

Status ValidateSessionName(std::string_view name) {
  if (name.size() < 2 || name.size() > 64) {
    return InvalidArgument(fmt::format("role session name must be 2 to 64 characters, got {}", name.size()));
  }
  for (char c : name) {
    if (!IsSessionNameChar(c)) {
      return InvalidArgument(
          fmt::format("role session name '{}' has a character outside [A-Za-z0-9+=,.@_-]", name));
    }
  }
  return OkStatus();
}

StsClient::StsClient(StsOptions options, std::shared_ptr<CredentialsProvider> base)
    : options_(std::move(options)),
      endpoint_(ResolveStsEndpoint(options_.region, options_.endpoint, options_.env)),
      signed_(ExecutorOptions(options_, std::move(base))),
      unsigned_(ExecutorOptions(options_, nullptr)) {}

Result<http::OutboundResponse> StsClient::Post(const Executor& executor, std::string operation,
                                               std::string form) const {
  auto body = http::RequestBody::FromString(std::move(form));
  std::string url = endpoint_ + "/";
  CallOptions call;
  call.operation = std::move(operation);
  return executor.Call(
      [&]() -> Result<http::OutboundRequest> {
        return http::OutboundRequest{
            "POST", url, {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}}, body};
      },
      call);
}

Result<AssumedRole> StsClient::AssumeRole(const AssumeRoleRequest& request) const {
  SLUICE_TRY(ValidateSessionName(request.session_name));
  std::string duration = std::to_string(request.duration_seconds);
  std::string form = Form({{"Action", "AssumeRole"},
                           {"Version", kStsVersion},
                           {"RoleArn", request.role_arn},
                           {"RoleSessionName", request.session_name},
                           {"DurationSeconds", duration}});
  if (!request.external_id.empty()) form += "&" + Form({{"ExternalId", request.external_id}});
  Result<http::OutboundResponse> response = Post(signed_, "AssumeRole", std::move(form));
  if (!response.ok()) {
    Error e = std::move(response).error();
    if (e.code == ErrorCode::kAccessDenied) {
      e.message += fmt::format(
          ". Role {} refused Sluice: its trust policy must allow sts:AssumeRole for Sluice's principal{}",
          request.role_arn,
          request.external_id.empty() ? std::string()
                                      : " with the condition StringEquals sts:ExternalId = the external ID "
                                        "configured for this project");
    }
    return e;
  }
  return ParseAssumedRole(response->body, "AssumeRoleResult");
}

Result<AssumedRole> StsClient::AssumeRoleWithWebIdentity(std::string_view role_arn,
                                                         std::string_view session_name,
                                                         const Secret& web_identity_token,
                                                         int duration_seconds) const {
  SLUICE_TRY(ValidateSessionName(session_name));
  std::string duration = std::to_string(duration_seconds);
  std::string form = Form({{"Action", "AssumeRoleWithWebIdentity"},
                           {"Version", kStsVersion},
                           {"RoleArn", role_arn},
                           {"RoleSessionName", session_name},
                           {"WebIdentityToken", web_identity_token.Reveal()},
                           {"DurationSeconds", duration}});
  SLUICE_ASSIGN_OR_RETURN(http::OutboundResponse response,
                          Post(unsigned_, "AssumeRoleWithWebIdentity", std::move(form)));
  return ParseAssumedRole(response.body, "AssumeRoleWithWebIdentityResult");
}

Result<CallerIdentity> StsClient::GetCallerIdentity() const {
  SLUICE_ASSIGN_OR_RETURN(
      http::OutboundResponse response,
      Post(signed_, "GetCallerIdentity", Form({{"Action", "GetCallerIdentity"}, {"Version", kStsVersion}})));
  SLUICE_ASSIGN_OR_RETURN(XmlNode root, ParseXml(response.body));
  const XmlNode* result = root.Child("GetCallerIdentityResult");
  if (result == nullptr) return Error(ErrorCode::kPermanent, "STS answered without GetCallerIdentityResult");
  return CallerIdentity{result->ChildText("Account"), result->ChildText("Arn"), result->ChildText("UserId")};
}

Result<bool> RoleRequiresExternalId(const StsClient& sts, std::string_view role_arn,
                                    std::string_view session_name) {
  AssumeRoleRequest req;
  req.role_arn = std::string(role_arn);
  req.session_name = std::string(session_name);
  req.external_id = "sluice-wrong-" + RandomHex(64);
  req.duration_seconds = 900;  // the shortest STS allows; the credentials are dropped at once
  Result<AssumedRole> assumed = sts.AssumeRole(req);
  if (assumed.ok()) return false;
  if (assumed.error().code == ErrorCode::kAccessDenied) return true;
  return assumed.error();
}

AssumeRoleProvider::AssumeRoleProvider(std::shared_ptr<StsClient> sts, Options options)
    : RefreshingCredentialsProvider(options.refresh), sts_(std::move(sts)), options_(std::move(options)) {}

Result<Credentials> AssumeRoleProvider::Fetch() {
  AssumeRoleRequest request{options_.role_arn, options_.session_name, options_.external_id,
                            options_.duration_seconds};
  SLUICE_ASSIGN_OR_RETURN(AssumedRole role, sts_->AssumeRole(request));
  spdlog::info("assumed role {} as {} (credentials {})", options_.role_arn, role.assumed_role_arn,
               role.credentials.ToString());
  return role.credentials;
}

WebIdentityProvider::WebIdentityProvider(std::shared_ptr<StsClient> sts, Options options)
    : RefreshingCredentialsProvider(options.refresh), sts_(std::move(sts)), options_(std::move(options)) {}

std::optional<WebIdentityProvider::Options> WebIdentityProvider::OptionsFromEnv(const EnvGetter& env) {
  auto file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
  auto role = env("AWS_ROLE_ARN");
  if (!file || !role) return std::nullopt;
  Options o;
  o.token_file = *file;
  o.role_arn = *role;
  if (auto name = env("AWS_ROLE_SESSION_NAME")) o.session_name = *name;
  return o;
}

Result<Credentials> WebIdentityProvider::Fetch() {
  std::ifstream in(options_.token_file, std::ios::binary);
  if (!in) {
    return Error(ErrorCode::kUnauthenticated,
                 fmt::format("cannot read the web identity token file {}", options_.token_file));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string token = ss.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  if (token.empty()) {
    return Error(ErrorCode::kUnauthenticated,
                 fmt::format("web identity token file {} is empty", options_.token_file));
  }
  SLUICE_ASSIGN_OR_RETURN(
      AssumedRole role, sts_->AssumeRoleWithWebIdentity(options_.role_arn, options_.session_name,
                                                        Secret(std::move(token)), options_.duration_seconds));
  return role.credentials;
}

namespace {

/// Tries each source in order until one yields credentials, then sticks to it.
class ChainProvider final : public CredentialsProvider {
 public:
  explicit ChainProvider(std::vector<std::shared_ptr<CredentialsProvider>> chain)
      : chain_(std::move(chain)) {}

  Result<Credentials> Get() override {
    std::shared_ptr<CredentialsProvider> chosen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      chosen = chosen_;
    }
    if (chosen) return chosen->Get();
    std::string tried;
    for (const auto& p : chain_) {
      Result<Credentials> c = p->Get();
      if (c.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        chosen_ = p;
        spdlog::info("AWS credentials for Sluice's own identity come from {}", p->Name());
        return c;
      }
      // A configured source that fails for a real reason (e.g. web identity denied) must not be skipped
      // silently in favour of some unrelated profile.
      if (c.error().code != ErrorCode::kUnauthenticated) return c.error().WithContext(p->Name());
      if (!tried.empty()) tried += "; ";
      tried += p->Name() + ": " + c.error().message;
    }
    return Error(ErrorCode::kUnauthenticated, "no AWS credentials found (tried " + tried + ")");
  }

  void Invalidate() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (chosen_) chosen_->Invalidate();
  }

  std::string Name() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return chosen_ ? chosen_->Name() : "default chain";
  }

 private:
  std::vector<std::shared_ptr<CredentialsProvider>> chain_;
  mutable std::mutex mu_;
  std::shared_ptr<CredentialsProvider> chosen_;
};

}  // namespace

std::shared_ptr<CredentialsProvider> MakeDefaultCredentialsChain(DefaultChainOptions options) {
  std::vector<std::shared_ptr<CredentialsProvider>> chain;
  if (options.explicit_credentials) {
    chain.push_back(std::make_shared<StaticCredentialsProvider>(*options.explicit_credentials, "explicit"));
  }
  chain.push_back(std::make_shared<EnvironmentCredentialsProvider>(options.env));
  if (auto web = WebIdentityProvider::OptionsFromEnv(options.env)) {
    std::string region = options.region;
    if (region.empty())
      region = options.env("AWS_REGION").value_or(options.env("AWS_DEFAULT_REGION").value_or("us-east-1"));
    StsOptions sts_options;
    sts_options.region = region;
    sts_options.transport = options.transport;
    sts_options.endpoint = options.sts_endpoint;
    sts_options.env = options.env;
    sts_options.clock = options.clock;
    auto sts = std::make_shared<StsClient>(std::move(sts_options), nullptr);
    web->refresh.clock = options.clock;
    chain.push_back(std::make_shared<WebIdentityProvider>(std::move(sts), std::move(*web)));
  }
  chain.push_back(std::make_shared<ProfileCredentialsProvider>(options.profile, options.env));
  return std::make_shared<ChainProvider>(std::move(chain));
}

}  // namespace sluice::aws
