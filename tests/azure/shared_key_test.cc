// Shared Key stages against Microsoft's documented examples ("Authorize with Shared Key": canonicalized
// resource strings, the string-to-sign layout) and golden signatures computed independently (Python's hmac over
// the hand-written string to sign, Azurite's published development key).
#include "azure/shared_key.h"

#include <gtest/gtest.h>

namespace sluice::azure {
namespace {

constexpr const char* kAzuriteKey =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

TEST(SharedKey, CanonicalizedResourceMatchesTheDocumentedExamples) {
  // "Shared Key format for 2009-09-19 and later", Constructing the canonicalized resource string.
  EXPECT_EQ(CanonicalizedResource(
                "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata", "myaccount"),
            "/myaccount/mycontainer\ncomp:metadata\nrestype:container");
  EXPECT_EQ(CanonicalizedResource("https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=list&"
                                  "include=snapshots&include=metadata&include=uncommittedblobs",
                                  "myaccount"),
            "/myaccount/mycontainer\ncomp:list\ninclude:metadata,snapshots,uncommittedblobs\nrestype:container");
  // The secondary-location / emulator form keeps the account from the path as well.
  EXPECT_EQ(CanonicalizedResource("https://myaccount-secondary.blob.core.windows.net/mycontainer/myblob", "myaccount"),
            "/myaccount/mycontainer/myblob");
  EXPECT_EQ(CanonicalizedResource("http://127.0.0.1:10000/devstoreaccount1/c/b", "devstoreaccount1"),
            "/devstoreaccount1/devstoreaccount1/c/b");
  // Query values are decoded, names lower-cased; an empty path is "/".
  EXPECT_EQ(CanonicalizedResource("https://a.blob.core.windows.net?comp=list&Prefix=dir%2Fx%20y", "a"),
            "/a/\ncomp:list\nprefix:dir/x y");
}

TEST(SharedKey, CanonicalizedHeadersSortsAndLowerCasesOnlyXMsHeaders) {
  http::OutboundRequest r{"GET", "https://a.blob.core.windows.net/c", {}, {}};
  r.headers = {{"x-ms-version", "2021-12-02"}, {"Content-Type", "text/plain"}, {"X-Ms-Date", " Sun, 11 Oct 2009 21:49:13 GMT "},
               {"x-ms-blob-type", "BlockBlob"}};
  EXPECT_EQ(CanonicalizedHeaders(r),
            "x-ms-blob-type:BlockBlob\nx-ms-date:Sun, 11 Oct 2009 21:49:13 GMT\nx-ms-version:2021-12-02\n");
}

TEST(SharedKey, StringToSignHasTheDocumentedTwelveLines) {
  // The documented GET example ("Blob service: GET, version 2009-09-19 and later") with an empty Content-Length.
  http::OutboundRequest r{"GET",
                          "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata",
                          {{"x-ms-date", "Sun, 11 Oct 2009 21:49:13 GMT"}, {"x-ms-version", "2009-09-19"}},
                          {}};
  EXPECT_EQ(StringToSign(r, "myaccount"),
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sun, 11 Oct 2009 21:49:13 GMT\nx-ms-version:2009-09-19\n"
            "/myaccount/mycontainer\ncomp:metadata\nrestype:container");
}

TEST(SharedKey, PutBlobSignatureMatchesGolden) {
  http::OutboundRequest r{"PUT",
                          "http://127.0.0.1:10000/devstoreaccount1/exports/dir/a%20b.json",
                          {{"x-ms-blob-type", "BlockBlob"},
                           {"Content-MD5", "XrY7u+Ae7tCTyyK7j1rNww=="},
                           {"x-ms-blob-content-type", "application/octet-stream"},
                           {"x-ms-version", "2021-12-02"},
                           {"x-ms-date", "Sun, 11 Oct 2009 21:49:13 GMT"}},
                          http::RequestBody::FromString("hello world")};
  EXPECT_EQ(StringToSign(r, "devstoreaccount1"),
            "PUT\n\n\n11\nXrY7u+Ae7tCTyyK7j1rNww==\n\n\n\n\n\n\n\nx-ms-blob-content-type:application/octet-stream\n"
            "x-ms-blob-type:BlockBlob\nx-ms-date:Sun, 11 Oct 2009 21:49:13 GMT\nx-ms-version:2021-12-02\n"
            "/devstoreaccount1/devstoreaccount1/exports/dir/a%20b.json");
  ASSERT_TRUE(SignSharedKey(r, "devstoreaccount1", Secret(kAzuriteKey)).ok());
  EXPECT_EQ(r.headers.back().first, "Authorization");
  EXPECT_EQ(r.headers.back().second, "SharedKey devstoreaccount1:1HQGx8ZE8oEk3RWHmKSQ/r9fexZwZlXcCei/Tf50hWM=");
}

TEST(SharedKey, ListSignatureMatchesGolden) {
  http::OutboundRequest r{
      "GET",
      "http://127.0.0.1:10000/devstoreaccount1/exports?restype=container&comp=list&prefix=dir%2F&maxresults=2",
      {{"x-ms-version", "2021-12-02"}, {"x-ms-date", "Sun, 11 Oct 2009 21:49:13 GMT"}},
      {}};
  auto sig = SharedKeySignature(StringToSign(r, "devstoreaccount1"), Secret(kAzuriteKey));
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(*sig, "V46Y80BGyLmcvuQ5mahmygp3U4DNfwvfBPnn1PiUcak=");
}

TEST(SharedKey, AKeyThatIsNotBase64IsRefusedWithoutQuotingIt) {
  auto sig = SharedKeySignature("x", Secret("not base64 !!"));
  ASSERT_FALSE(sig.ok());
  EXPECT_EQ(sig.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(sig.error().message.find("not base64 !!"), std::string::npos);
}

TEST(SharedKey, FormatsRfc1123) {
  EXPECT_EQ(FormatRfc1123(std::chrono::system_clock::from_time_t(1255297753)), "Sun, 11 Oct 2009 21:49:13 GMT");
}

}  // namespace
}  // namespace sluice::azure
