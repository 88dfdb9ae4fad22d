// How a project is born, shared by every MetaStore backend (the embedded RocksStore, ZkMetaStore): the same
// credentials whichever store keeps it. The id is the backend's to assign.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/crypto.h"
#include "common/secret.h"
#include "store/store.h"

namespace sluice::store {

/// A project named `name`, created at `created_ms`, with a random public token and API secret of 128 bits
/// each (hex); id 0 until the backend assigns one.
inline Project NewProject(std::string_view name, int64_t created_ms) {
  Project project;
  project.name = std::string(name);
  project.token = RandomHex(128);
  project.api_secret = Secret(RandomHex(128));
  project.created_ms = created_ms;
  return project;
}

}  // namespace sluice::store
