// The XML parser AWS responses are read with; it lives in cloud/xml.h (Azure's Blob API reads XML too).
#pragma once

#include "cloud/xml.h"

namespace sluice::aws {

using cloud::ParseXml;
using cloud::XmlEscape;
using cloud::XmlLimits;
using cloud::XmlNode;

}  // namespace sluice::aws
