#include "support/test_paths.h"

namespace sluice::testing {

const char* SourceDir() { return SLUICE_SOURCE_DIR; }
const char* BinaryDir() { return SLUICE_BINARY_DIR; }

}  // namespace sluice::testing
