#include "jobs/fenced_write.h"

namespace sluice::jobs {

Status PutMetaUnderLease(store::MetaStore& store, const UnitLease& lease, std::string_view ns,
                         std::string_view key, std::string_view value) {
  if (!lease.coordinated()) return store.PutMeta(ns, key, value);
  return store.PutMetaFenced(ns, key, value, store::Fence{lease.unit(), lease.token()});
}

}  // namespace sluice::jobs
