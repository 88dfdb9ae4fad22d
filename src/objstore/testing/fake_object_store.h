// FakeObjectStore: an in-memory ObjectStore for pipeline and import tests, with call counters and scripted
// faults. Semantics follow S3 where pipelines can observe them: writers are invisible until Complete(), a failed
// or aborted writer leaves nothing behind, List is sorted by key, Delete of a missing key succeeds.
//
//   FakeObjectStore store;
//   store.InjectFault({.op = FakeObjectStore::Op::kPut, .key_contains = "manifest",
//                      .error = Error(ErrorCode::kTransient, "boom"), .times = 2});
//   ... run the code under test ...
//   EXPECT_EQ(store.calls(FakeObjectStore::Op::kPut), 3);
//
// Thread-safe. Faults are checked in insertion order; the first matching one fires.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "objstore/object_store.h"

namespace sluice::objstore::testing {

class FakeObjectStore final : public ObjectStore {
 public:
  enum class Op {
    kHead,
    kGet,
    kGetStreaming,
    kPut,
    kNewWriter,
    kWriterWrite,     // each ObjectWriter::Write
    kWriterComplete,  // each ObjectWriter::Complete
    kList,
    kListEach,
    kDelete,
    kCount_,  // number of ops (not an op)
  };
  static std::string_view OpName(Op op);

  struct Fault {
    Op op = Op::kPut;
    /// Only keys (or list prefixes) containing this substring; empty = any.
    std::string key_contains;
    Error error{ErrorCode::kTransient, "injected fault"};
    /// How many matching calls fail; < 0 = every one until ClearFaults().
    int times = 1;
  };

  struct StoredObject {
    std::string data;
    PutOptions options;
    std::string etag;
    int64_t last_modified_ms = 0;
  };

  /// `clock` stamps last_modified (defaults to the system clock); it must outlive the store.
  explicit FakeObjectStore(const Clock* clock = nullptr, std::string description = "fake://memory");

  void InjectFault(Fault fault);
  void ClearFaults();
  /// Calls of `op` since construction or ResetCounters() (failed ones included).
  int calls(Op op) const { return counters_[static_cast<size_t>(op)].load(); }
  /// Calls that an injected fault failed.
  int faults_fired() const { return faults_fired_.load(); }
  void ResetCounters();

  /// Writers created and neither completed nor aborted (a leak in the code under test when > 0 at the end).
  int open_writers() const { return open_writers_.load(); }
  int aborted_writers() const { return aborted_writers_.load(); }

  /// Direct access for assertions and set-up (no counters, no faults).
  std::vector<std::string> Keys() const;
  std::optional<StoredObject> Object(std::string_view key) const;
  void SetObject(std::string_view key, std::string data, PutOptions options = {});
  size_t size() const;

  std::string Describe() const override { return description_; }
  Result<ObjectInfo> Head(std::string_view key) override;
  Result<std::string> Get(std::string_view key, uint64_t offset = 0,
                          std::optional<uint64_t> length = std::nullopt) override;
  Status GetStreaming(std::string_view key, const std::function<bool(std::string_view)>& sink) override;
  Result<ObjectInfo> Put(std::string_view key, std::string data, const PutOptions& options = {}) override;
  Result<std::unique_ptr<ObjectWriter>> NewWriter(std::string_view key, const PutOptions& options = {}) override;
  Result<std::vector<ObjectInfo>> List(std::string_view prefix) override;
  Status ListEach(std::string_view prefix, std::string_view start_after,
                  const std::function<bool(const ObjectInfo&)>& fn) override;
  Status Delete(std::string_view key) override;

 private:
  friend class FakeWriter;
  /// Counts the call and returns the injected error, if any.
  Status Enter(Op op, std::string_view key);
  ObjectInfo Store(std::string_view key, std::string data, const PutOptions& options);
  ObjectInfo InfoLocked(const std::string& key, const StoredObject& obj) const;

  const Clock* clock_;
  std::string description_;
  mutable std::mutex mu_;
  std::map<std::string, StoredObject, std::less<>> objects_;
  std::vector<Fault> faults_;
  std::array<std::atomic<int>, static_cast<size_t>(Op::kCount_)> counters_{};
  std::atomic<int> faults_fired_{0};
  std::atomic<int> open_writers_{0};
  std::atomic<int> aborted_writers_{0};
};

}  // namespace sluice::objstore::testing
