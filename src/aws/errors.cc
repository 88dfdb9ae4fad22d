#include "aws/errors.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "aws/xml.h"

namespace sluice::aws {
namespace {

bool ContainsI(std::string_view haystack, std::string_view needle) {
  auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
  return it != haystack.end();
}

template <size_t N>
bool OneOf(std::string_view code, const std::array<std::string_view, N>& codes) {
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}

ErrorCode ClassifyStatus(int status) {
  switch (status) {
    case 400:
      return ErrorCode::kInvalidArgument;
    case 401:
      return ErrorCode::kUnauthenticated;
    case 403:
      return ErrorCode::kAccessDenied;
    case 404:
      return ErrorCode::kNotFound;
    case 408:
      return ErrorCode::kTransient;
    case 409:
      return ErrorCode::kConflict;
    case 412:
      return ErrorCode::kConflict;
    case 413:
      return ErrorCode::kTooLarge;
    case 416:
      return ErrorCode::kInvalidArgument;
    case 429:
      return ErrorCode::kThrottled;
    case 500:
    case 502:
    case 503:
    case 504:
      return ErrorCode::kTransient;
    default:
      return status >= 500 ? ErrorCode::kTransient : ErrorCode::kPermanent;
  }
}

/// What a user should check, by class (appended to the provider's message).
std::string_view Hint(ErrorCode code) {
  switch (code) {
    case ErrorCode::kAccessDenied:
      return "check the role's permission policy (and the KMS key policy when SSE-KMS is used)";
    case ErrorCode::kUnauthenticated:
      return "check Sluice's own AWS credentials (access key id, secret, session token)";
    case ErrorCode::kExpiredToken:
      return "temporary credentials expired";
    case ErrorCode::kClockSkew:
      return "check this machine's clock (NTP)";
    default:
      return {};
  }
}

}  // namespace

std::optional<AwsErrorDocument> ParseErrorDocument(std::string_view body) {
  if (body.find('<') == std::string_view::npos) return std::nullopt;
  Result<XmlNode> root = ParseXml(body);
  if (!root.ok()) return std::nullopt;
  const XmlNode* error = nullptr;
  AwsErrorDocument doc;
  if (root->name == "Error") {
    error = &*root;
    doc.request_id = error->ChildText("RequestId");
  } else if (root->name == "ErrorResponse" || root->name == "Response") {
    // Query APIs: <ErrorResponse><Error>…</Error><RequestId>; EC2 style: <Response><Errors><Error>…
    error = root->Child("Error");
    if (error == nullptr) error = root->Find("Errors/Error");
    doc.request_id = root->ChildText("RequestId");
    if (doc.request_id.empty()) doc.request_id = root->ChildText("RequestID");
  }
  if (error == nullptr) return std::nullopt;
  doc.code = error->ChildText("Code");
  doc.message = error->ChildText("Message");
  doc.type = error->ChildText("Type");
  if (doc.request_id.empty()) doc.request_id = error->ChildText("RequestId");
  if (doc.code.empty()) return std::nullopt;
  return doc;
}

ErrorCode ClassifyAwsError(int http_status, std::string_view code, std::string_view message) {
  static constexpr std::array<std::string_view, 5> kNotFound = {"NoSuchKey", "NoSuchBucket", "NoSuchUpload",
                                                                "NoSuchEntity", "NotFound"};
  static constexpr std::array<std::string_view, 4> kDenied = {"AccessDenied", "AccessDeniedException",
                                                              "AllAccessDisabled", "AccountProblem"};
  static constexpr std::array<std::string_view, 9> kThrottled = {"SlowDown",
                                                                 "Throttling",
                                                                 "ThrottlingException",
                                                                 "RequestLimitExceeded",
                                                                 "TooManyRequestsException",
                                                                 "ProvisionedThroughputExceededException",
                                                                 "RequestThrottled",
                                                                 "RequestThrottledException",
                                                                 "BandwidthLimitExceeded"};
  static constexpr std::array<std::string_view, 7> kTransient = {
      "InternalError",         "InternalFailure",         "ServiceUnavailable",     "RequestTimeout",
      "IDPCommunicationError", "RequestTimeoutException", "PriorRequestNotComplete"};
  static constexpr std::array<std::string_view, 4> kExpired = {"ExpiredToken", "ExpiredTokenException",
                                                               "TokenRefreshRequired", "RequestExpiredToken"};
  static constexpr std::array<std::string_view, 2> kSkew = {"RequestTimeTooSkewed", "RequestExpired"};
  static constexpr std::array<std::string_view, 9> kUnauthenticated = {
      "InvalidAccessKeyId",   "SignatureDoesNotMatch",       "InvalidClientTokenId",
      "InvalidToken",         "MissingAuthenticationToken",  "IncompleteSignature",
      "InvalidIdentityToken", "UnrecognizedClientException", "AuthFailure"};
  static constexpr std::array<std::string_view, 18> kInvalid = {
      "InvalidArgument",       "InvalidRequest",    "MalformedXML",
      "EntityTooSmall",        "InvalidPart",       "InvalidPartOrder",
      "InvalidBucketName",     "KeyTooLongError",   "ValidationError",
      "InvalidParameterValue", "InvalidParameter",  "MalformedPolicyDocument",
      "PackedPolicyTooLarge",  "PermanentRedirect", "AuthorizationHeaderMalformed",
      "InvalidRange",          "InvalidDigest",     "BadDigest"};
  static constexpr std::array<std::string_view, 2> kTooLarge = {"EntityTooLarge", "MaxMessageLengthExceeded"};
  static constexpr std::array<std::string_view, 3> kConflict = {"PreconditionFailed", "OperationAborted",
                                                                "ConditionalRequestConflict"};

  if (code.empty()) return ClassifyStatus(http_status);
  if (code.starts_with("KMS.")) {
    std::string_view kms = code.substr(4);
    if (ContainsI(kms, "Throttling")) return ErrorCode::kThrottled;
    if (ContainsI(kms, "NotFound")) return ErrorCode::kNotFound;
    if (ContainsI(kms, "Internal") || ContainsI(kms, "Unavailable")) return ErrorCode::kTransient;
    // AccessDenied, Disabled, InvalidState, InvalidKeyUsage…: the customer's key setup refuses us.
    return ErrorCode::kAccessDenied;
  }
  if (OneOf(code, kNotFound)) return ErrorCode::kNotFound;
  if (OneOf(code, kDenied)) return ErrorCode::kAccessDenied;
  if (OneOf(code, kThrottled)) return ErrorCode::kThrottled;
  if (code == "ServiceUnavailable" && ContainsI(message, "reduce your request rate"))
    return ErrorCode::kThrottled;
  if (OneOf(code, kTransient)) return ErrorCode::kTransient;
  if (OneOf(code, kExpired)) return ErrorCode::kExpiredToken;
  if (OneOf(code, kSkew)) return ErrorCode::kClockSkew;
  if (code == "SignatureDoesNotMatch" &&
      (ContainsI(message, "signature expired") || ContainsI(message, "skew") ||
       ContainsI(message, "is now earlier than") || ContainsI(message, "is now later than"))) {
    return ErrorCode::kClockSkew;
  }
  if (OneOf(code, kUnauthenticated)) return ErrorCode::kUnauthenticated;
  if (OneOf(code, kInvalid)) return ErrorCode::kInvalidArgument;
  if (OneOf(code, kTooLarge)) return ErrorCode::kTooLarge;
  if (OneOf(code, kConflict)) return ErrorCode::kConflict;
  // An unknown code on a 5xx is still the server's problem; on a 503 it is usually load shedding.
  if (http_status == 503) return ErrorCode::kThrottled;
  if (http_status >= 500) return ErrorCode::kTransient;
  if (http_status == 429) return ErrorCode::kThrottled;
  return ErrorCode::kPermanent;
}

Error ErrorFromResponse(const http::OutboundResponse& response, std::string_view operation) {
  std::optional<AwsErrorDocument> doc = ParseErrorDocument(response.body);
  Error e;
  e.http_status = response.status;
  std::string raw_code;
  if (doc) {
    raw_code = doc->code;
    e.request_id = SafeToken(doc->request_id);
  }
  if (e.request_id.empty()) e.request_id = SafeToken(response.Header("x-amz-request-id"));
  if (e.request_id.empty()) e.request_id = SafeToken(response.Header("x-amzn-requestid"));
  // Classified on the raw code and message; only the escaped code is kept.
  e.code = ClassifyAwsError(response.status, raw_code, doc ? doc->message : std::string_view());
  e.provider_code = SafeToken(raw_code);
  std::string what;
  switch (e.code) {
    case ErrorCode::kAccessDenied:
      what = "access denied";
      break;
    case ErrorCode::kNotFound:
      what = raw_code == "NoSuchBucket" ? "the bucket does not exist" : "not found";
      break;
    case ErrorCode::kUnauthenticated:
      what = "the request's credentials were rejected";
      break;
    case ErrorCode::kExpiredToken:
      what = "the credentials have expired";
      break;
    case ErrorCode::kClockSkew:
      what = "the request time is too far from the server's clock";
      break;
    case ErrorCode::kThrottled:
      what = "throttled (slow down)";
      break;
    case ErrorCode::kTransient:
      what = "the service is temporarily unavailable";
      break;
    case ErrorCode::kInvalidArgument:
      what = "the request was refused as invalid";
      break;
    case ErrorCode::kTooLarge:
      what = "too large";
      break;
    case ErrorCode::kConflict:
      what = "a precondition or concurrent operation conflicted";
      break;
    default:
      what = "the request failed";
      break;
  }
  if (!doc && response.status >= 300 && response.status < 400) {
    what =
        "the endpoint answered with a redirect, which Sluice does not follow: check the bucket's region "
        "(s3_region) and, for an S3-compatible store, s3_endpoint";
  }
  what += doc ? fmt::format(" ({})", e.provider_code) : fmt::format(" (HTTP {})", response.status);
  // Facts we derive from the provider's text are stated in our words (the text itself is not copied).
  if (doc && e.code == ErrorCode::kAccessDenied &&
      (ContainsI(doc->message, "kms") || raw_code.starts_with("KMS"))) {
    what += "; the refusal mentions KMS";
  }
  if (raw_code == "PermanentRedirect" || raw_code == "AuthorizationHeaderMalformed" ||
      response.status == 301) {
    std::string_view region = response.Header("x-amz-bucket-region");
    if (!region.empty()) what += fmt::format(" (the bucket is in region {})", SafeToken(region));
  }
  std::string_view hint = Hint(e.code);
  e.message = hint.empty() ? fmt::format("{} failed: {}", operation, what)
                           : fmt::format("{} failed: {}; {}", operation, what, hint);
  return e;
}

FixArea FixAreaOf(const Error& e) {
  switch (e.code) {
    case ErrorCode::kAccessDenied:
      return FixArea::kPermissions;
    case ErrorCode::kUnauthenticated:
      return FixArea::kCredentials;
    case ErrorCode::kClockSkew:
      return FixArea::kClock;
    case ErrorCode::kExpiredToken:
      return FixArea::kExpiredCredentials;
    case ErrorCode::kNotFound:
      return FixArea::kNotFound;
    default:
      return FixArea::kOther;
  }
}

std::string CredentialsProblem(const Error& e) {
  std::string code =
      e.provider_code.empty() ? std::string(ErrorCodeName(e.code)) : SafeToken(e.provider_code);
  switch (FixAreaOf(e)) {
    case FixArea::kCredentials:
      return fmt::format(
          "the request's credentials were rejected ({}): Sluice's AWS credentials are wrong or this "
          "machine's "
          "clock is skewed. Check the access key ID and the secret access key (and session token) Sluice "
          "runs "
          "with, and that the clock is synchronised (NTP); this is not a missing permission",
          code);
    case FixArea::kClock:
      return fmt::format(
          "the request time was refused ({}): this machine's clock is skewed from AWS's; synchronise it "
          "(NTP)",
          code);
    case FixArea::kExpiredCredentials:
      return fmt::format(
          "the credentials have expired ({}): renew the session token Sluice runs with (temporary "
          "credentials), "
          "or check the clock (NTP)",
          code);
    default:
      return {};
  }
}

}  // namespace sluice::aws
