#include "store/merge_operators.h"

#include <algorithm>
#include <string>

#include "store/codec.h"

namespace sluice::store::internal {
namespace {

class PartitionCountersMergeOperator final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing_value, const rocksdb::Slice& value,
             std::string* new_value, rocksdb::Logger* /*logger*/) const override {
    PartitionCounters acc;
    if (existing_value != nullptr && !DecodePartitionCounters(existing_value->ToStringView(), &acc)) {
      return false;  // surfaces as Status::Corruption to the reader
    }
    PartitionCounters operand;
    if (!DecodePartitionCounters(value.ToStringView(), &operand)) return false;
    acc.writes += operand.writes;
    acc.bytes += operand.bytes;
    acc.change_seq = std::max(acc.change_seq, operand.change_seq);
    *new_value = EncodePartitionCounters(acc);
    return true;
  }
  // The name is persisted in the OPTIONS file; renaming it breaks opening existing data dirs.
  const char* Name() const override { return "sluice.PartitionCounters.v1"; }
};

class MaxU64MergeOperator final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing_value, const rocksdb::Slice& value,
             std::string* new_value, rocksdb::Logger* /*logger*/) const override {
    if (value.size() != 8 || (existing_value != nullptr && existing_value->size() != 8)) return false;
    uint64_t v = LoadLittleEndian64(value.data());
    if (existing_value != nullptr) v = std::max(v, LoadLittleEndian64(existing_value->data()));
    new_value->clear();
    AppendLittleEndian64(*new_value, v);
    return true;
  }
  const char* Name() const override { return "sluice.MaxU64.v1"; }
};

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> NewPartitionCountersMergeOperator() {
  return std::make_shared<PartitionCountersMergeOperator>();
}

std::shared_ptr<rocksdb::MergeOperator> NewMaxU64MergeOperator() { return std::make_shared<MaxU64MergeOperator>(); }

}  // namespace sluice::store::internal
