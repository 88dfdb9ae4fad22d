#include "objstore/s3/s3_xml.h"

#include <ctime>

#include <fmt/format.h>

#include "aws/errors.h"
#include "aws/xml.h"

namespace sluice::objstore::s3 {

std::string StripQuotes(std::string_view etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return std::string(etag);
}

int64_t ParseS3Time(std::string_view text) {
  std::string s(text);
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  int64_t ms = 0;
  if (end != nullptr) {
    if (*end == '.') {
      // Fractional seconds: take up to 3 digits as milliseconds.
      int scale = 100;
      for (++end; *end >= '0' && *end <= '9'; ++end) {
        if (scale > 0) ms += (*end - '0') * scale;
        scale /= 10;
      }
    }
  } else {
    tm = {};
    end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S", &tm);
    if (end == nullptr) return 0;
  }
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

Result<ListPage> ParseListObjectsV2(std::string_view body) {
  SLUICE_ASSIGN_OR_RETURN(aws::XmlNode root, aws::ParseXml(body));
  if (root.name != "ListBucketResult") {
    return InvalidArgument(fmt::format("ListObjectsV2 answered <{}>, not <ListBucketResult>", root.name));
  }
  ListPage page;
  for (const aws::XmlNode* c : root.Children("Contents")) {
    ObjectInfo info;
    info.key = c->ChildText("Key");
    std::string size = c->ChildText("Size");
    char* end = nullptr;
    info.size = std::strtoull(size.c_str(), &end, 10);
    if (info.key.empty() || size.empty() || end == nullptr || *end != '\0') {
      return InvalidArgument(fmt::format("ListObjectsV2 entry without a valid Key/Size (key '{}')", info.key));
    }
    info.etag = StripQuotes(c->ChildText("ETag"));
    info.last_modified_ms = ParseS3Time(c->ChildText("LastModified"));
    page.objects.push_back(std::move(info));
  }
  page.is_truncated = root.ChildText("IsTruncated") == "true";
  page.next_continuation_token = root.ChildText("NextContinuationToken");
  if (page.is_truncated && page.next_continuation_token.empty()) {
    return InvalidArgument("ListObjectsV2 page is truncated but has no NextContinuationToken");
  }
  return page;
}

Result<std::string> ParseInitiateMultipartUpload(std::string_view body) {
  SLUICE_ASSIGN_OR_RETURN(aws::XmlNode root, aws::ParseXml(body));
  std::string id = root.ChildText("UploadId");
  if (root.name != "InitiateMultipartUploadResult" || id.empty()) {
    return InvalidArgument("CreateMultipartUpload answered without an UploadId");
  }
  return id;
}

Result<std::string> ParseCompleteMultipartUpload(std::string_view body) {
  if (auto doc = aws::ParseErrorDocument(body)) {
    Error e(aws::ClassifyAwsError(200, doc->code, doc->message),
            fmt::format("CompleteMultipartUpload failed after HTTP 200: {}", doc->message));
    e.provider_code = doc->code;
    e.request_id = doc->request_id;
    e.http_status = 200;
    return e;
  }
  SLUICE_ASSIGN_OR_RETURN(aws::XmlNode root, aws::ParseXml(body));
  // AWS answers <CompleteMultipartUploadResult>; moto names it <CompleteMultipartUploadResponse>. What matters
  // is the ETag: a 200 without one is not proof of success (the object may not exist).
  std::string etag = StripQuotes(root.ChildText("ETag"));
  if (!root.name.starts_with("CompleteMultipartUpload") || etag.empty()) {
    return Error(ErrorCode::kTransient,
                 fmt::format("CompleteMultipartUpload answered <{}> without an ETag", root.name));
  }
  return etag;
}

}  // namespace sluice::objstore::s3
