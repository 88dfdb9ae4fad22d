// EventStore's default event batch: copies of the events, written by the store's WriteEvents. A store whose
// write path can take events one at a time (RocksStore) overrides NewEventBatch and WriteEventBatch.
#include <memory>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace sluice::store {
namespace {

class BufferedEventBatch final : public EventStore::EventBatch {
 public:
  BufferedEventBatch(const EventStore* owner, uint32_t project) : owner_(owner), project_(project) {}

  void Add(const Event& event, std::string_view properties) override {
    Event& e = events_.emplace_back(event);
    e.properties.assign(properties);
  }
  size_t size() const override { return events_.size(); }

  const EventStore* owner() const { return owner_; }
  uint32_t project() const { return project_; }
  std::vector<Event>& events() { return events_; }

 private:
  const EventStore* owner_;
  uint32_t project_;
  std::vector<Event> events_;
};

}  // namespace

std::unique_ptr<EventStore::EventBatch> EventStore::NewEventBatch(uint32_t project, size_t /*bytes_hint*/) {
  return std::make_unique<BufferedEventBatch>(this, project);
}

Status EventStore::WriteEventBatch(EventBatch& batch, std::span<const IdentityLink> links) {
  auto* buffered = dynamic_cast<BufferedEventBatch*>(&batch);
  if (buffered == nullptr || buffered->owner() != this) {
    return Error(ErrorCode::kInternal, "an event batch was handed to a store other than the one that made it");
  }
  Status s = WriteEvents(buffered->project(), buffered->events(), links);
  buffered->events().clear();
  return s;
}

}  // namespace sluice::store
