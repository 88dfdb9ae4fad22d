// jobs::PutMetaUnderLease: commits a unit's state only while the unit's lease is still this holder's, in
// the same atomic step as the write.
//
// Why not Renew() then PutMeta(): a holder paused between the two (GC, SIGSTOP) past its lease's expiry
// could still write once after another node took the unit over, overwriting the new holder's state. A lease
// kept in ZooKeeper therefore writes through store::MetaStore::PutMetaFenced with its fencing token: the
// record write and the fence's compare-and-set are one ZooKeeper transaction, and a stale token is refused.
//
//   SLUICE_TRY(lease.Renew());   // the cheap early answer: a lease known to be lost writes nothing
//   SLUICE_TRY(jobs::PutMetaUnderLease(store, lease, "pipeline_unit", key, json));  // the proof
#pragma once

#include <string_view>

#include "common/result.h"
#include "jobs/lease.h"
#include "store/store.h"

namespace sluice::jobs {

/// Writes the record fenced by the lease's token when the lease is coordinated (kConflict "stale fencing
/// token" when a later holder took the unit since, the record unchanged), or a plain PutMeta for an
/// in-process lease (see store::MetaStore::PutMetaFenced). Does not renew: callers renew first, as before.
Status PutMetaUnderLease(store::MetaStore& store, const UnitLease& lease, std::string_view ns,
                         std::string_view key, std::string_view value);

}  // namespace sluice::jobs
