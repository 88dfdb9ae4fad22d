#include "objstore/testing/fake_object_store.h"

#include <fmt/format.h>

#include "common/crypto.h"

namespace sluice::objstore::testing {

std::string_view FakeObjectStore::OpName(Op op) {
  switch (op) {
    case Op::kHead: return "Head";
    case Op::kGet: return "Get";
    case Op::kGetStreaming: return "GetStreaming";
    case Op::kPut: return "Put";
    case Op::kNewWriter: return "NewWriter";
    case Op::kWriterWrite: return "Writer.Write";
    case Op::kWriterComplete: return "Writer.Complete";
    case Op::kList: return "List";
    case Op::kListEach: return "ListEach";
    case Op::kDelete: return "Delete";
    case Op::kCount_: break;
  }
  return "?";
}

class FakeWriter final : public ObjectWriter {
 public:
  FakeWriter(FakeObjectStore* store, std::string key, PutOptions options)
      : store_(store), key_(std::move(key)), options_(std::move(options)) {
    ++store_->open_writers_;
  }
  ~FakeWriter() override { Abort(); }

  Status Write(std::string_view data) override {
    if (done_) return InvalidArgument("Write after Complete/Abort");
    Status st = store_->Enter(FakeObjectStore::Op::kWriterWrite, key_);
    if (!st.ok()) {
      Abort();  // like S3: a failed part dooms the upload
      return st;
    }
    buffer_.append(data);
    return OkStatus();
  }

  Result<ObjectInfo> Complete() override {
    if (done_) return InvalidArgument("Complete after Complete/Abort");
    Status st = store_->Enter(FakeObjectStore::Op::kWriterComplete, key_);
    if (!st.ok()) {
      Abort();
      return st.error();
    }
    Finish();
    return store_->Store(key_, std::move(buffer_), options_);
  }

  void Abort() override {
    if (done_) return;
    Finish();
    ++store_->aborted_writers_;
    buffer_.clear();
  }

 private:
  void Finish() {
    done_ = true;
    --store_->open_writers_;
  }

  FakeObjectStore* store_;
  std::string key_;
  PutOptions options_;
  std::string buffer_;
  bool done_ = false;
};

FakeObjectStore::FakeObjectStore(const Clock* clock, std::string description)
    : clock_(clock != nullptr ? clock : &SystemClock::Instance()), description_(std::move(description)) {}

void FakeObjectStore::InjectFault(Fault fault) {
  std::lock_guard lock(mu_);
  faults_.push_back(std::move(fault));
}

void FakeObjectStore::ClearFaults() {
  std::lock_guard lock(mu_);
  faults_.clear();
}

void FakeObjectStore::ResetCounters() {
  for (auto& c : counters_) c = 0;
  faults_fired_ = 0;
}

Status FakeObjectStore::Enter(Op op, std::string_view key) {
  ++counters_[static_cast<size_t>(op)];
  std::lock_guard lock(mu_);
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->op != op) continue;
    if (!it->key_contains.empty() && key.find(it->key_contains) == std::string_view::npos) continue;
    Error e = it->error;
    if (it->times > 0 && --it->times == 0) faults_.erase(it);
    ++faults_fired_;
    return e;
  }
  return OkStatus();
}

ObjectInfo FakeObjectStore::InfoLocked(const std::string& key, const StoredObject& obj) const {
  return ObjectInfo{key, obj.data.size(), obj.etag, obj.last_modified_ms};
}

ObjectInfo FakeObjectStore::Store(std::string_view key, std::string data, const PutOptions& options) {
  StoredObject obj;
  // A content hash, like S3's ETag of a single-part upload (S3 uses MD5; any content hash serves the same role).
  obj.etag = HexEncode(AsStringView(Sha256(data))).substr(0, 32);
  obj.data = std::move(data);
  obj.options = options;
  obj.last_modified_ms = clock_->NowMillis();
  std::lock_guard lock(mu_);
  auto& slot = objects_[std::string(key)];
  slot = std::move(obj);
  return InfoLocked(std::string(key), slot);
}

std::vector<std::string> FakeObjectStore::Keys() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> keys;
  for (const auto& [k, v] : objects_) keys.push_back(k);
  return keys;
}

std::optional<FakeObjectStore::StoredObject> FakeObjectStore::Object(std::string_view key) const {
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

void FakeObjectStore::SetObject(std::string_view key, std::string data, PutOptions options) {
  Store(key, std::move(data), options);
}

size_t FakeObjectStore::size() const {
  std::lock_guard lock(mu_);
  return objects_.size();
}

Result<ObjectInfo> FakeObjectStore::Head(std::string_view key) {
  SLUICE_TRY(Enter(Op::kHead, key));
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return NotFound(fmt::format("{}/{} does not exist", description_, key));
  return InfoLocked(it->first, it->second);
}

Result<std::string> FakeObjectStore::Get(std::string_view key, uint64_t offset, std::optional<uint64_t> length) {
  SLUICE_TRY(Enter(Op::kGet, key));
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return NotFound(fmt::format("{}/{} does not exist", description_, key));
  const std::string& data = it->second.data;
  if (offset > data.size() || (offset == data.size() && !data.empty() && length.has_value())) {
    return InvalidArgument(fmt::format("range starts at {} beyond the end of {} ({} bytes)", offset, key,
                                       data.size()));
  }
  return data.substr(offset, length.value_or(std::string::npos));
}

Status FakeObjectStore::GetStreaming(std::string_view key, const std::function<bool(std::string_view)>& sink) {
  SLUICE_TRY(Enter(Op::kGetStreaming, key));
  std::string data;
  {
    std::lock_guard lock(mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return NotFound(fmt::format("{}/{} does not exist", description_, key));
    data = it->second.data;
  }
  // Small chunks so consumers see chunk boundaries in tests.
  constexpr size_t kChunk = 64 * 1024;
  for (size_t off = 0; off < data.size(); off += kChunk) {
    if (!sink(std::string_view(data).substr(off, kChunk))) {
      return Error(ErrorCode::kCancelled, fmt::format("reading {} stopped by the consumer", key));
    }
  }
  return OkStatus();
}

Result<ObjectInfo> FakeObjectStore::Put(std::string_view key, std::string data, const PutOptions& options) {
  SLUICE_TRY(Enter(Op::kPut, key));
  return Store(key, std::move(data), options);
}

Result<std::unique_ptr<ObjectWriter>> FakeObjectStore::NewWriter(std::string_view key, const PutOptions& options) {
  SLUICE_TRY(Enter(Op::kNewWriter, key));
  return std::unique_ptr<ObjectWriter>(std::make_unique<FakeWriter>(this, std::string(key), options));
}

Result<std::vector<ObjectInfo>> FakeObjectStore::List(std::string_view prefix) {
  SLUICE_TRY(Enter(Op::kList, prefix));
  std::lock_guard lock(mu_);
  std::vector<ObjectInfo> out;
  for (auto it = objects_.lower_bound(prefix); it != objects_.end() && it->first.starts_with(prefix); ++it) {
    out.push_back(InfoLocked(it->first, it->second));
  }
  return out;
}

Status FakeObjectStore::ListEach(std::string_view prefix, std::string_view start_after,
                                 const std::function<bool(const ObjectInfo&)>& fn) {
  SLUICE_TRY(Enter(Op::kListEach, prefix));
  std::vector<ObjectInfo> snapshot;
  {
    std::lock_guard lock(mu_);
    for (auto it = objects_.lower_bound(prefix); it != objects_.end() && it->first.starts_with(prefix); ++it) {
      if (!start_after.empty() && it->first <= start_after) continue;
      snapshot.push_back(InfoLocked(it->first, it->second));
    }
  }
  // The callback runs without the lock: it may call back into the store.
  for (const auto& info : snapshot) {
    if (!fn(info)) break;
  }
  return OkStatus();
}

Status FakeObjectStore::Delete(std::string_view key) {
  SLUICE_TRY(Enter(Op::kDelete, key));
  std::lock_guard lock(mu_);
  if (auto it = objects_.find(key); it != objects_.end()) objects_.erase(it);
  return OkStatus();
}

}  // namespace sluice::objstore::testing
