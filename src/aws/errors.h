// AWS error responses → sluice::Error, classified once here (STYLE: "classify provider errors once, at the
// edge"). Used by aws::Executor for every S3 and STS response; callers see only ErrorCode classes plus the
// provider code, request id and HTTP status kept on the Error.
//
// Usage:
//   Error e = aws::ErrorFromResponse(response, "PutObject");  // non-2xx response
//   if (auto doc = aws::ParseErrorDocument(body)) ...          // a 200 that carries <Error> (CompleteMultipartUpload)
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "http/transport.h"

namespace sluice::aws {

/// The fields of an AWS error document.
struct AwsErrorDocument {
  std::string code;        // "NoSuchKey", "AccessDenied", "ExpiredToken", …
  std::string message;
  std::string request_id;  // S3 <RequestId> / Query <RequestId> outside <Error>
  std::string type;        // Query APIs: "Sender" | "Receiver"
};

/// Parses S3's `<Error><Code/><Message/><RequestId/></Error>` and the Query (STS/IAM) form
/// `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`. nullopt when `body` is
/// neither (empty, HTML from a proxy, truncated).
std::optional<AwsErrorDocument> ParseErrorDocument(std::string_view body);

/// The class of an AWS error from its HTTP status and provider code (code wins when present):
///   not found        NoSuchKey, NoSuchBucket, NoSuchUpload, NoSuchEntity, 404
///   access denied    AccessDenied, AllAccessDisabled, KMS.*AccessDenied*/KMS.*Disabled*, 403
///   throttled        SlowDown, Throttling, ThrottlingException, RequestLimitExceeded, TooManyRequests…, 429
///   transient        InternalError, ServiceUnavailable, RequestTimeout, IDPCommunicationError, 500 502 503 504
///   expired token    ExpiredToken, ExpiredTokenException, TokenRefreshRequired
///   clock skew       RequestTimeTooSkewed, RequestExpired, SignatureDoesNotMatch when the message says the
///                    signature expired / the time is skewed
///   unauthenticated  InvalidAccessKeyId, SignatureDoesNotMatch, InvalidClientTokenId, InvalidToken,
///                    MissingAuthenticationToken, IncompleteSignature, InvalidIdentityToken, 401
///   invalid          InvalidArgument, InvalidRequest, MalformedXML, EntityTooSmall, InvalidPart, InvalidPartOrder,
///                    InvalidBucketName, KeyTooLongError, ValidationError, PermanentRedirect,
///                    AuthorizationHeaderMalformed, InvalidRange, 400 416
///   too large        EntityTooLarge, 413          conflict  PreconditionFailed, OperationAborted, 409 412
///   permanent        everything else
ErrorCode ClassifyAwsError(int http_status, std::string_view code, std::string_view message);

/// Builds the Error for a failed response of `operation` (e.g. "PutObject", "AssumeRole"): class, a message
/// that says what to check, provider code, request id (x-amz-request-id header, x-amzn-RequestId or the
/// document's RequestId) and HTTP status. Never includes request headers.
Error ErrorFromResponse(const http::OutboundResponse& response, std::string_view operation);

}  // namespace sluice::aws
