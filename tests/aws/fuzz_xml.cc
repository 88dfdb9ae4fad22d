// libFuzzer target for the AWS XML parser and the error-document reader (untrusted bytes from the network).
// Build (see docs or the aws engineer's notes):
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc tests/aws/fuzz_xml.cc \
//     src/cloud/xml.cc src/cloud/url.cc src/aws/errors.cc src/http/transport.cc src/common/error.cc -lexpat -lfmt \
//     -o fuzz_xml
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "aws/errors.h"
#include "aws/xml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  sluice::aws::XmlLimits limits;
  limits.max_elements = 100'000;
  auto root = sluice::aws::ParseXml(input, limits);
  if (root.ok()) {
    // Walk what a client would read.
    (void)root->Text("Contents/Key");
    for (const auto* c : root->Children("Contents")) (void)c->ChildText("Size");
  }
  (void)sluice::aws::ParseErrorDocument(input);
  return 0;
}
