#include "jobs/fenced_write.h"

namespace sluice::jobs {

Status PutMetaUnderLease(store::MetaStore& store, UnitLease& lease, std::string_view ns, std::string_view key,
                         std::string_view value) {
  // The renewal is the cheap early answer (and the in-process lease's only check); the fence is the proof.
  SLUICE_TRY(lease.Renew());
  if (!lease.coordinated()) return store.PutMeta(ns, key, value);
  return store.PutMetaFenced(ns, key, value, store::Fence{lease.unit(), lease.token()});
}

}  // namespace sluice::jobs
