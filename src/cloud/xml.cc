#include "cloud/xml.h"

#include <expat.h>
#include <fmt/format.h>

#include <climits>
#include <memory>

namespace sluice::cloud {
namespace {

std::string_view LocalName(const XML_Char* name) {
  std::string_view n(name);
  if (size_t colon = n.rfind(':'); colon != std::string_view::npos) n.remove_prefix(colon + 1);
  return n;
}

struct ParseState {
  XML_Parser parser = nullptr;
  XmlLimits limits;
  XmlNode root;
  bool have_root = false;
  std::vector<XmlNode*> stack;
  size_t elements = 0;
  std::string error;  // set when we stop the parser ourselves
};

void Stop(ParseState* s, std::string reason) {
  if (s->error.empty()) s->error = std::move(reason);
  XML_StopParser(s->parser, XML_FALSE);
}

void OnStart(void* user, const XML_Char* name, const XML_Char**) {
  auto* s = static_cast<ParseState*>(user);
  if (++s->elements > s->limits.max_elements) return Stop(s, "too many elements");
  if (s->stack.size() >= s->limits.max_depth) return Stop(s, "nesting too deep");
  XmlNode* node;
  if (s->stack.empty()) {
    node = &s->root;  // expat itself rejects a second root element
    s->have_root = true;
  } else {
    s->stack.back()->children.emplace_back();
    node = &s->stack.back()->children.back();
  }
  node->name = std::string(LocalName(name));
  s->stack.push_back(node);
}

void OnEnd(void* user, const XML_Char*) {
  auto* s = static_cast<ParseState*>(user);
  if (!s->stack.empty()) s->stack.pop_back();
}

void OnText(void* user, const XML_Char* data, int len) {
  auto* s = static_cast<ParseState*>(user);
  if (!s->stack.empty()) s->stack.back()->text.append(data, static_cast<size_t>(len));
}

void OnDoctype(void* user, const XML_Char*, const XML_Char*, const XML_Char*, int) {
  Stop(static_cast<ParseState*>(user), "DOCTYPE declarations are not accepted");
}

}  // namespace

const XmlNode* XmlNode::Child(std::string_view child_name) const {
  for (const XmlNode& c : children) {
    if (c.name == child_name) return &c;
  }
  return nullptr;
}

std::vector<const XmlNode*> XmlNode::Children(std::string_view child_name) const {
  std::vector<const XmlNode*> out;
  for (const XmlNode& c : children) {
    if (c.name == child_name) out.push_back(&c);
  }
  return out;
}

std::string XmlNode::ChildText(std::string_view child_name) const {
  const XmlNode* c = Child(child_name);
  return c != nullptr ? c->text : std::string();
}

const XmlNode* XmlNode::Find(std::string_view path) const {
  const XmlNode* node = this;
  while (!path.empty() && node != nullptr) {
    size_t slash = path.find('/');
    node = node->Child(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
  }
  return node;
}

std::string XmlNode::Text(std::string_view path) const {
  const XmlNode* node = Find(path);
  return node != nullptr ? node->text : std::string();
}

Result<XmlNode> ParseXml(std::string_view document, const XmlLimits& limits) {
  size_t start = document.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return InvalidArgument("malformed XML: empty document");
  document.remove_prefix(start);
  if (document.size() > static_cast<size_t>(INT_MAX)) return InvalidArgument("malformed XML: document too large");

  std::unique_ptr<std::remove_pointer_t<XML_Parser>, decltype(&XML_ParserFree)> parser(XML_ParserCreate("UTF-8"),
                                                                                      &XML_ParserFree);
  if (!parser) return Internal("cannot create an XML parser");
  ParseState state;
  state.parser = parser.get();
  state.limits = limits;
  XML_SetUserData(parser.get(), &state);
  XML_SetElementHandler(parser.get(), &OnStart, &OnEnd);
  XML_SetCharacterDataHandler(parser.get(), &OnText);
  XML_SetStartDoctypeDeclHandler(parser.get(), &OnDoctype);
  XML_SetParamEntityParsing(parser.get(), XML_PARAM_ENTITY_PARSING_NEVER);

  XML_Status status =
      XML_Parse(parser.get(), document.data(), static_cast<int>(document.size()), /*isFinal=*/XML_TRUE);
  if (status != XML_STATUS_OK || !state.error.empty()) {
    std::string reason = !state.error.empty() ? state.error : XML_ErrorString(XML_GetErrorCode(parser.get()));
    return InvalidArgument(fmt::format("malformed XML at line {}: {}",
                                       XML_GetCurrentLineNumber(parser.get()), reason));
  }
  if (!state.have_root) return InvalidArgument("malformed XML: no root element");
  return std::move(state.root);
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace sluice::cloud
