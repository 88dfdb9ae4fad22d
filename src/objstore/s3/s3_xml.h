// Parsing of S3 result documents (on top of aws/xml.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "objstore/object_store.h"

namespace sluice::objstore::s3 {

/// One ListObjectsV2 page.
struct ListPage {
  std::vector<ObjectInfo> objects;  // keys as S3 returned them (full keys, not relative to a store prefix)
  bool is_truncated = false;
  std::string next_continuation_token;
};

/// Parses <ListBucketResult>. kInvalidArgument for a malformed page, including a truncated page without a
/// NextContinuationToken (which would otherwise loop forever or stop silently).
Result<ListPage> ParseListObjectsV2(std::string_view body);

/// Parses <InitiateMultipartUploadResult> and returns the UploadId (kInvalidArgument when missing/empty).
Result<std::string> ParseInitiateMultipartUpload(std::string_view body);

/// Parses the body of a 200 CompleteMultipartUpload response. S3 may answer 200 and then report a failure in
/// an <Error> document (the status line is sent before the parts are assembled), so an <Error> body becomes the
/// classified error. Returns the final ETag without quotes.
Result<std::string> ParseCompleteMultipartUpload(std::string_view body);

/// "Wed, 12 Oct 2009 17:50:00 GMT" (HTTP date) or "2009-10-12T17:50:00.000Z" (ISO-8601 in XML) → ms since
/// the epoch; 0 when unparseable (the time is informational).
int64_t ParseS3Time(std::string_view text);

/// Removes surrounding double quotes from an ETag.
std::string StripQuotes(std::string_view etag);

}  // namespace sluice::objstore::s3
