#include "common/string_cache_set.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <functional>

namespace sluice {

StringCacheSet::StringCacheSet(size_t max_members, size_t max_bytes)
    : max_members_(max_members == 0 ? 1 : max_members),
      // Offsets are 32-bit.
      max_bytes_(std::min<size_t>(max_bytes, UINT32_MAX)) {}

uint64_t StringCacheSet::Tag(std::string_view s) { return std::hash<std::string_view>{}(s) | 1; }

const StringCacheSet::Slot* StringCacheSet::Find(std::string_view s, uint64_t tag) const {
  const size_t mask = slots_.size() - 1;
  // The table is a power of two; the hash's high bits pick the start (its low bit is the tag's marker).
  size_t i = static_cast<size_t>(tag >> 17) & mask;
  for (size_t probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.tag == 0) return &slot;
    if (slot.tag == tag && slot.length == s.size() &&
        std::memcmp(bytes_.data() + slot.offset, s.data(), s.size()) == 0) {
      return &slot;
    }
  }
  return nullptr;
}

bool StringCacheSet::Contains(std::string_view s) const {
  if (size_ == 0) return false;
  const uint64_t tag = Tag(s);
  const Slot* slot = Find(s, tag);
  return slot != nullptr && slot->tag != 0;
}

void StringCacheSet::Insert(std::string_view s) {
  if (s.size() > max_bytes_) return;
  if (slots_.empty()) slots_.resize(std::bit_ceil(2 * max_members_));
  const uint64_t tag = Tag(s);
  const Slot* found = Find(s, tag);
  if (found != nullptr && found->tag != 0) return;  // a member already
  if (size_ >= max_members_ || bytes_.size() + s.size() > max_bytes_) {
    Clear();
    found = Find(s, tag);
  }
  if (found == nullptr) return;  // too far along its probe sequence to keep
  Slot& slot = slots_[static_cast<size_t>(found - slots_.data())];
  slot.tag = tag;
  slot.offset = static_cast<uint32_t>(bytes_.size());
  slot.length = static_cast<uint32_t>(s.size());
  bytes_.append(s);
  ++size_;
}

void StringCacheSet::Clear() {
  std::fill(slots_.begin(), slots_.end(), Slot{});
  bytes_.clear();
  size_ = 0;
}

}  // namespace sluice
