// URL pieces every provider client needs: RFC 3986 percent-encoding as AWS's SigV4 and Azure's Blob API
// expect it, decoding, and a non-allocating split of an absolute URL.
//
//   std::string path = "/" + container + "/" + cloud::UriEncode(blob_name, /*encode_slash=*/false);
//   cloud::UrlParts p = cloud::SplitUrl("https://a.blob.core.windows.net/c/b?comp=list");   // p.query == "comp=list"
#pragma once

#include <string>
#include <string_view>

namespace sluice::cloud {

/// Every byte except A-Z a-z 0-9 - _ . ~ becomes %XX (upper-case hex); '/' too unless !encode_slash. Space is
/// %20, never '+'.
std::string UriEncode(std::string_view s, bool encode_slash);
/// Decodes %XX escapes (a '+' stays '+'); malformed escapes are kept literally.
std::string UriDecode(std::string_view s);

/// Split view of an absolute URL (no allocation).
struct UrlParts {
  std::string_view scheme;
  std::string_view authority;  // host[:port] (userinfo removed)
  std::string_view path;       // "" or starting with '/'
  std::string_view query;      // without '?', "" when none
};
UrlParts SplitUrl(std::string_view url);

}  // namespace sluice::cloud
