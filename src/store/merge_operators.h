// Internal: the RocksDB merge operators behind partition change tracking and the persisted counters.
#pragma once

#include <rocksdb/merge_operator.h>

#include <memory>

namespace sluice::store::internal {

/// Partition counters (see codec.h PartitionCounters): sums writes and bytes, keeps the max change_seq.
/// Associative and commutative, so RocksDB may combine operands in any grouping during flush/compaction and
/// a WriteEvents call never reads before writing.
std::shared_ptr<rocksdb::MergeOperator> NewPartitionCountersMergeOperator();

/// 8-byte little-endian unsigned maximum: persisted counters that must never go backwards even when
/// concurrent batches commit out of issue order.
std::shared_ptr<rocksdb::MergeOperator> NewMaxU64MergeOperator();

}  // namespace sluice::store::internal
