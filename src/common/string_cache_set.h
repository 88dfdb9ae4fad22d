// A bounded set of short strings for caches whose "not known" answer is always safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

/// Remembers up to `max_members` strings (and `max_bytes` of them) in one flat open-addressing table of
/// (hash, offset, length) and one byte arena: a member costs no allocation of its own, and a lookup usually
/// touches one cache line of the table (plus one of the arena on a hit). std::unordered_set<std::string> paid two
/// allocations per member and a pointer chase per lookup: ~5% of a Cloud Import's CPU for its identity links.
///
/// A cache, not a set: Contains() may answer false for a member (never true for a non-member). That happens
/// only when a probe sequence grows past kMaxProbe slots, i.e. under inputs built to collide in the hash, so
/// such inputs cost a bounded amount of work per call instead of a quadratic table walk. When either bound is
/// reached, Insert() clears the set and starts over.
class StringCacheSet {
 public:
  static constexpr size_t kMaxProbe = 32;

  StringCacheSet(size_t max_members, size_t max_bytes);

  bool Contains(std::string_view s) const;
  /// Adds `s` (no-op if present or if its probe sequence is too long; clears first if the set is full).
  void Insert(std::string_view s);
  void Clear();

  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t tag = 0;  // the hash with its low bit set; 0 = empty
    uint32_t offset = 0;
    uint32_t length = 0;
  };

  static uint64_t Tag(std::string_view s);
  /// The slot holding `s`, or the empty slot where it would go, or nullptr past kMaxProbe.
  const Slot* Find(std::string_view s, uint64_t tag) const;

  size_t max_members_;
  size_t max_bytes_;
  std::vector<Slot> slots_;  // a power of two >= 2 * max_members_, allocated on the first Insert()
  std::string bytes_;
  size_t size_ = 0;
};

}  // namespace sluice
