// A small XML-to-tree parser (expat underneath) for provider responses: S3 <Error>, STS <ErrorResponse>,
// AssumeRoleResponse, ListObjectsV2 / InitiateMultipartUpload / CompleteMultipartUpload results; Azure Blob
// <Error> and EnumerationResults.
//
// Usage:
//   SLUICE_ASSIGN_OR_RETURN(cloud::XmlNode root, cloud::ParseXml(response.body));
//   // root.name == "ListBucketResult" (namespace prefixes are dropped; xmlns attributes ignored)
//   for (const cloud::XmlNode* c : root.Children("Contents")) {
//     std::string key = c->ChildText("Key");          // exact text, spaces preserved, entities decoded
//     uint64_t size = std::stoull(c->ChildText("Size"));
//   }
//   std::string token = root.Text("NextContinuationToken");   // "" when absent
//   const cloud::XmlNode* creds = root.Find("AssumeRoleResult/Credentials");
//
// Safety: DOCTYPE declarations are rejected (AWS never sends them, and refusing them rules out entity expansion
// attacks); depth and element count are bounded. Leading whitespace before the document is skipped (S3 pads
// slow CompleteMultipartUpload responses with spaces before the XML declaration).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::cloud {

struct XmlNode {
  /// Local element name ("Error", "Key"), without a namespace prefix.
  std::string name;
  /// Character data directly inside this element, concatenated, exactly as in the document (not trimmed).
  std::string text;
  std::vector<XmlNode> children;

  /// First direct child named `child_name`, or nullptr.
  const XmlNode* Child(std::string_view child_name) const;
  /// All direct children named `child_name`, in document order.
  std::vector<const XmlNode*> Children(std::string_view child_name) const;
  /// Text of the first direct child named `child_name`, or "" when there is none.
  std::string ChildText(std::string_view child_name) const;
  /// The node at a '/'-separated path of child names below this node ("Error/Code"), or nullptr.
  const XmlNode* Find(std::string_view path) const;
  /// Text of Find(path), or "" when absent.
  std::string Text(std::string_view path) const;
};

struct XmlLimits {
  size_t max_depth = 64;
  size_t max_elements = 2'000'000;  // a 1000-key ListObjectsV2 page has ~10k elements
};

/// Parses a whole document and returns its root element. Errors: kInvalidArgument ("malformed XML at line L:
/// <reason>") for anything not well-formed, a DOCTYPE, or limits exceeded.
Result<XmlNode> ParseXml(std::string_view document, const XmlLimits& limits = {});

/// Escapes & < > " ' for element text and attribute values (request bodies such as CompleteMultipartUpload).
std::string XmlEscape(std::string_view text);

}  // namespace sluice::cloud
