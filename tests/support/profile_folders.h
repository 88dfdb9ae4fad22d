// Test folders for store::ProfileStore::ApplyProfileOps (header-only): seed profiles without the ingest
// module's operation encoding.
#pragma once

#include <optional>
#include <span>
#include <string>

#include "store/store.h"

namespace sluice::testing {

/// Each operation is the profile's new JSON text; the last one of a change wins.
class ReplaceFolder final : public store::ProfileFolder {
 public:
  store::ProfileFold Fold(const std::optional<std::string>&,
                          std::span<const std::string> ops) const override {
    store::ProfileFold fold;
    if (!ops.empty()) {
      fold.changed = true;
      fold.profile = ops.back();
    }
    return fold;
  }
};

}  // namespace sluice::testing
