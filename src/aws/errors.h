// AWS error responses → sluice::Error, classified once here (STYLE: "classify provider errors once, at the
// edge"). Used by aws::Executor for every S3 and STS response; callers see only ErrorCode classes plus the
// provider code, request id and HTTP status kept on the Error.
//
// Usage:
//   Error e = aws::ErrorFromResponse(response, "PutObject");  // non-2xx response
//   if (auto doc = aws::ParseErrorDocument(body)) ...          // a 200 that carries <Error>
//   (CompleteMultipartUpload)
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "cloud/provider_error.h"
#include "common/error.h"
#include "http/transport.h"

namespace sluice::aws {

/// The fields of an AWS error document.
struct AwsErrorDocument {
  std::string code;  // "NoSuchKey", "AccessDenied", "ExpiredToken", …
  std::string message;
  std::string request_id;  // S3 <RequestId> / Query <RequestId> outside <Error>
  std::string type;        // Query APIs: "Sender" | "Receiver"
};

/// Parses S3's `<Error><Code/><Message/><RequestId/></Error>` and the Query (STS/IAM) form
/// `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`. nullopt when `body`
/// is neither (empty, HTML from a proxy, truncated).
std::optional<AwsErrorDocument> ParseErrorDocument(std::string_view body);

/// The class of an AWS error from its HTTP status and provider code (code wins when present):
///   not found        NoSuchKey, NoSuchBucket, NoSuchUpload, NoSuchEntity, 404
///   access denied    AccessDenied, AllAccessDisabled, KMS.*AccessDenied*/KMS.*Disabled*, 403
///   throttled        SlowDown, Throttling, ThrottlingException, RequestLimitExceeded, TooManyRequests…, 429
///   transient        InternalError, ServiceUnavailable, RequestTimeout, IDPCommunicationError, 500 502 503
///   504 expired token    ExpiredToken, ExpiredTokenException, TokenRefreshRequired clock skew
///   RequestTimeTooSkewed, RequestExpired, SignatureDoesNotMatch when the message says the
///                    signature expired / the time is skewed
///   unauthenticated  InvalidAccessKeyId, SignatureDoesNotMatch, InvalidClientTokenId, InvalidToken,
///                    MissingAuthenticationToken, IncompleteSignature, InvalidIdentityToken, 401
///   invalid          InvalidArgument, InvalidRequest, MalformedXML, EntityTooSmall, InvalidPart,
///   InvalidPartOrder,
///                    InvalidBucketName, KeyTooLongError, ValidationError, PermanentRedirect,
///                    AuthorizationHeaderMalformed, InvalidRange, 400 416
///   too large        EntityTooLarge, 413          conflict  PreconditionFailed, OperationAborted, 409 412
///   permanent        everything else
ErrorCode ClassifyAwsError(int http_status, std::string_view code, std::string_view message);

/// Builds the Error for a failed response of `operation` (e.g. "PutObject", "AssumeRole"): class, a message
/// in our own words that says what to check, provider code, request id (x-amz-request-id header,
/// x-amzn-RequestId or the document's RequestId) and HTTP status. The endpoint's own text (its <Message>, an
/// HTML page, a body) is never copied into the error: an endpoint may be hostile or just noisy, and errors go
/// to logs and API callers. The provider code and request id are kept only as SafeToken()s. Never includes
/// request headers.
Error ErrorFromResponse(const http::OutboundResponse& response, std::string_view operation);

/// `value` made safe to show in a message or log (cloud::SafeToken, shared with GCS and Azure errors).
using cloud::SafeToken;

/// What the person who must fix a failed AWS call should look at. ONE classification shared by the
/// destination check and Cloud Import, so that a rejected signature is never reported as a missing
/// permission.
enum class FixArea {
  kPermissions,         // access denied: the role's permission policy (or KMS key policy, trust policy)
  kCredentials,         // the signature or key was rejected (SignatureDoesNotMatch, InvalidAccessKeyId, …)
  kClock,               // the request time is too far from the server's
  kExpiredCredentials,  // temporary credentials expired (ExpiredToken)
  kNotFound,            // bucket/key missing
  kOther,
};
FixArea FixAreaOf(const Error& e);

/// For kCredentials, kClock and kExpiredCredentials: what to fix, in a sentence naming the provider code
/// (e.g. "the request's credentials were rejected (SignatureDoesNotMatch): Sluice's AWS credentials are wrong
/// or this machine's clock is skewed; …"). Empty for the other areas.
std::string CredentialsProblem(const Error& e);

}  // namespace sluice::aws
