#include "azure/executor.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "azure/shared_key.h"
#include "cloud/provider_error.h"
#include "cloud/url.h"
#include "cloud/xml.h"

namespace sluice::azure {
namespace {

struct AzureErrorBody {
  std::string code;
  std::string message;
  std::string detail;
};

// Storage answers <Error><Code>…</Code><Message>…</Message></Error> (HEAD answers carry only the
// x-ms-error-code header); Entra ID answers OAuth JSON. Empty fields for anything else (a proxy's page).
AzureErrorBody ParseErrorBody(const http::OutboundResponse& response) {
  AzureErrorBody out;
  out.code = std::string(response.Header("x-ms-error-code"));
  std::string_view body = response.body;
  size_t first = body.find_first_not_of(" \t\r\n\xEF\xBB\xBF");
  if (first == std::string_view::npos) return out;
  if (body[first] == '<') {
    if (auto root = cloud::ParseXml(body.substr(first)); root.ok() && root->name == "Error") {
      if (out.code.empty()) out.code = root->ChildText("Code");
      out.message = root->ChildText("Message");
      // Why a signature or token was refused ("Invalid token audience.", "The MAC signature found in the HTTP
      // request '…' is not the same as any computed signature.").
      out.detail = root->ChildText("AuthenticationErrorDetail");
    }
  } else if (auto oauth = cloud::ParseOAuthError(body)) {
    out.code = std::move(oauth->error);
    out.message = std::move(oauth->description);
  }
  // Azure's messages end with "\nRequestId:…\nTime:…": keep the first line.
  if (size_t nl = out.message.find('\n'); nl != std::string::npos) out.message.resize(nl);
  if (!out.detail.empty()) out.message += (out.message.empty() ? "" : " ") + out.detail.substr(0, 300);
  return out;
}


bool IsOAuthError(std::string_view code) {
  return code == "invalid_client" || code == "invalid_grant" || code == "unauthorized_client" ||
         code == "invalid_request" || code == "invalid_scope";
}

constexpr std::string_view kCheckPrincipal =
    "check the service principal's tenant ID, client ID and client secret (an expired secret needs a new one: "
    "App registrations > the app > Certificates & secrets)";
constexpr std::string_view kCheckKey =
    "check the storage account name and its access key (Storage account > Security + networking > Access keys)";
constexpr std::string_view kCheckSas =
    "check that the SAS token is current, signed for this account and grants read, write, delete and list";
constexpr std::string_view kCheckCredentials =
    "check the storage account name and the credentials given for it (account key, SAS token or service "
    "principal)";

std::string_view RefusedHint(std::optional<StorageCredential::Kind> credential) {
  if (!credential) return kCheckCredentials;
  switch (*credential) {
    case StorageCredential::Kind::kToken:
      return kCheckPrincipal;
    case StorageCredential::Kind::kSharedKey:
      return kCheckKey;
    case StorageCredential::Kind::kSas:
      return kCheckSas;
  }
  return kCheckCredentials;
}
constexpr std::string_view kCheckRole =
    "grant the service principal the role Storage Blob Data Contributor on the container (`sluice azure roles` "
    "prints the az command), and check the account's firewall allows Sluice";

}  // namespace

Error ClassifyAzureResponse(const http::OutboundResponse& response, std::string_view operation,
                            std::optional<StorageCredential::Kind> credential) {
  AzureErrorBody body = ParseErrorBody(response);
  const int status = response.status;
  ErrorCode code = ErrorCode::kPermanent;
  std::string_view hint;
  if (IsOAuthError(body.code)) {
    code = body.code == "invalid_request" || body.code == "invalid_scope" ? ErrorCode::kInvalidArgument
                                                                          : ErrorCode::kUnauthenticated;
    hint = kCheckPrincipal;
    if (status >= 500) code = ErrorCode::kTransient;
  } else if (status == 400) {
    code = ErrorCode::kInvalidArgument;
  } else if (status == 401) {
    code = ErrorCode::kUnauthenticated;  // an expired or wrong bearer token (InvalidAuthenticationInfo)
    hint = kCheckPrincipal;
  } else if (status == 403) {
    // A refused signature or token is AuthenticationFailed on Azure; Azurite answers a wrong account key with
    // AuthorizationFailure but the same "Server failed to authenticate the request" message.
    const bool authentication = body.message.starts_with("Server failed to authenticate");
    if (body.code == "AuthorizationSourceIPMismatch" || body.code == "AuthorizationProtocolMismatch") {
      // The account's network rules, not the credential: the firewall refuses Sluice's address, or the
      // account requires HTTPS.
      code = ErrorCode::kAccessDenied;
      hint =
          body.code == "AuthorizationSourceIPMismatch"
              ? "the storage account's firewall refuses Sluice's address: allow it under Storage account > "
                "Security + networking > Networking"
              : "the storage account accepts HTTPS only (Secure transfer required): use an https endpoint";
    } else if (!authentication &&
               (body.code == "AuthorizationPermissionMismatch" || body.code == "AuthorizationFailure" ||
                body.code == "AuthorizationResourceTypeMismatch" ||
                body.code == "KeyBasedAuthenticationNotPermitted")) {
      code = ErrorCode::kAccessDenied;
      if (body.code == "KeyBasedAuthenticationNotPermitted") {
        hint = "the storage account does not allow Shared Key; use a service principal";
      } else if (credential == StorageCredential::Kind::kSas) {
        hint = kCheckSas;
      } else if (credential == StorageCredential::Kind::kSharedKey) {
        hint = "the account key allows everything: check the account's firewall (Networking) allows Sluice";
      } else {
        hint = kCheckRole;
      }
    } else {
      // AuthenticationFailed: a wrong account key (the signature did not match), an expired SAS, a token for
      // another audience or tenant.
      code = ErrorCode::kUnauthenticated;
      hint = RefusedHint(credential);
    }
  } else if (status == 404) {
    code = ErrorCode::kNotFound;
    if (body.code == "ContainerNotFound") hint = "check the container name (it must exist in the storage account)";
  } else if (status == 408) {
    code = ErrorCode::kTransient;
  } else if (status == 409 || status == 412) {
    code = ErrorCode::kConflict;
  } else if (status == 413) {
    code = ErrorCode::kTooLarge;
  } else if (status == 429 || (status == 503 && body.code == "ServerBusy")) {
    code = ErrorCode::kThrottled;
  } else if (status >= 500) {
    code = ErrorCode::kTransient;
  }
  return cloud::AnsweredError(code, operation, response, body.code, body.message, {std::string(hint)},
                              "x-ms-request-id");
}

Executor::Executor(Options options)
    : options_(std::move(options)), loop_({options_.retry, options_.sleep, options_.random, options_.steady_now}) {
  if (options_.clock == nullptr) options_.clock = &SystemClock::Instance();
}

Status Executor::Authorize(http::OutboundRequest& request) const {
  if (!options_.credential) return Status();
  const StorageCredential& cred = *options_.credential;
  request.headers.emplace_back("x-ms-version", std::string(kStorageApiVersion));
  request.headers.emplace_back("x-ms-date", FormatRfc1123(options_.clock->Now()));
  switch (cred.kind()) {
    case StorageCredential::Kind::kToken: {
      Result<cloud::AccessToken> token = cred.tokens()->Get();
      if (!token.ok()) return token.error().WithContext("access token from " + cred.tokens()->Name());
      request.headers.emplace_back("Authorization", "Bearer " + token->token.Reveal());
      return Status();
    }
    case StorageCredential::Kind::kSharedKey:
      return SignSharedKey(request, cred.account(), cred.secret());
    case StorageCredential::Kind::kSas:
      request.url += (request.url.find('?') == std::string::npos ? "?" : "&") + cred.secret().Reveal();
      return Status();
  }
  return Status();
}

Result<http::OutboundResponse> Executor::Attempt(http::OutboundRequest request, const CallOptions& call,
                                                 std::chrono::steady_clock::time_point deadline,
                                                 cloud::AttemptState& state) const {
  const std::string host(cloud::SplitUrl(request.url).authority);
  auto context = [&](const Error& e) { return e.WithContext(fmt::format("{} {}", call.operation, host)); };
  if (Status authorized = Authorize(request); !authorized.ok()) {
    state.final = true;
    return context(authorized.error());
  }
  Result<http::OutboundResponse> response = Error();
  if (call.sink) {
    auto sink = [&](std::string_view chunk) {
      state.delivered = true;
      return call.sink(chunk);
    };
    response = options_.transport->SendStreaming(request, deadline, sink);
  } else {
    response = options_.transport->Send(request, deadline);
  }
  if (!response.ok()) return context(response.error());
  if (response->status >= 200 && response->status < 300) return response;
  std::optional<StorageCredential::Kind> kind;
  if (options_.credential) kind = options_.credential->kind();
  return context(ClassifyAzureResponse(*response, call.operation, kind));
}

Result<http::OutboundResponse> Executor::Call(const RequestFactory& factory, const CallOptions& call) const {
  cloud::RetryLoop::Call loop_call;
  loop_call.operation = call.operation;
  loop_call.total_timeout = call.total_timeout;
  loop_call.attempt = [&](cloud::SteadyTime deadline, cloud::AttemptState& state) -> Result<http::OutboundResponse> {
    Result<http::OutboundRequest> request = factory();
    if (!request.ok()) {
      state.final = true;
      return std::move(request).error();
    }
    return Attempt(std::move(*request), call, deadline, state);
  };
  loop_call.refresh = [&](const Error& error) {
    const auto& cred = options_.credential;
    if (error.http_status != 401 || !cred || cred->kind() != StorageCredential::Kind::kToken) return false;
    spdlog::info("{}: access token from {} was refused (expired?); fetching a new one and retrying once",
                 call.operation, cred->tokens()->Name());
    cred->tokens()->Invalidate();
    return true;
  };
  return loop_.Run(loop_call);
}

}  // namespace sluice::azure
