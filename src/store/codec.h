// Internal: byte layouts of the store's keys and values. Only src/store, its tests and the store backends
// that keep the same records elsewhere (src/chstore: projects in ZooKeeper) include this.
//
// Every value that may outlive a release starts with a format version byte so a later release can read old
// records. Integers inside keys are big-endian so RocksDB's bytewise order is numeric order; integers inside
// values are little-endian (the host order on every platform we ship, so decoding is a plain load).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/event.h"
#include "store/store.h"

namespace sluice::store::internal {

inline constexpr size_t kEventHashBytes = 16;
/// project (4 BE): the prefix of every ProjectKey (identity links, profiles, ...).
inline constexpr size_t kProjectKeyPrefixBytes = 4;
/// project (4 BE) + hour (4 BE): the events key prefix that names one partition.
inline constexpr size_t kPartitionPrefixBytes = 8;
inline constexpr size_t kEventKeyBytes = kPartitionPrefixBytes + kEventHashBytes;
/// Bumped whenever the event value layout changes; decoders keep accepting every older version.
inline constexpr uint8_t kEventFormatV1 = 1;
inline constexpr uint8_t kProjectFormatV1 = 1;
/// v1 plus the bound GCS buckets (a varint count, then each varint-prefixed).
inline constexpr uint8_t kProjectFormatV2 = 2;

void AppendBigEndian32(std::string& out, uint32_t v);
uint32_t LoadBigEndian32(const char* p);
void AppendLittleEndian64(std::string& out, uint64_t v);
uint64_t LoadLittleEndian64(const char* p);
void AppendVarint32(std::string& out, uint32_t v);
/// Reads a varint at `*p` (not past `end`), advancing `*p`. False when truncated or over 32 bits.
bool ReadVarint32(const char** p, const char* end, uint32_t* v);

/// The dedup hash: SHA-256 over the length-prefixed (name, distinct_id, second, insert_id), truncated to
/// 128 bits. Length prefixes keep ("ab","c") and ("a","bc") apart; 128 bits make an accidental collision
/// (which would silently replace an unrelated event) negligible at any realistic volume.
std::array<uint8_t, kEventHashBytes> EventDedupHash(const Event& event);
/// Floor division, so times before the epoch still truncate toward the earlier second.
int64_t TruncateToSecond(int64_t time_us);

/// 8-byte key prefix of partition (project, hour).
std::string PartitionPrefix(uint32_t project, Hour hour);
/// Full 24-byte events key (also the partitions column family key is the first 8 bytes).
std::string EventKey(uint32_t project, const Event& event);
using EventKeyArray = std::array<char, kEventKeyBytes>;
/// The same key without a heap allocation, for the write path.
EventKeyArray MakeEventKey(uint32_t project, const Event& event);
/// The smallest key greater than every key that starts with `prefix`; empty when no such key exists.
std::string PrefixSuccessor(std::string_view prefix);

/// Appends the versioned compact value of `event` to `out`.
void EncodeEventValue(const Event& event, int64_t ingested_ms, std::string& out);
/// The value without its last part, the properties' bytes: EncodeEventValue = head + event.properties. The
/// write path hands both parts to the WriteBatch, which copies the properties once instead of twice.
/// `properties_bytes`: the size of the properties that will follow (an event batch gets them apart from the
/// event, whose own `properties` is then empty).
void EncodeEventValueHead(const Event& event, int64_t ingested_ms, size_t properties_bytes, std::string& out);
/// Decodes without copying: the views point into `value`. False when the value is malformed.
bool DecodeEventValue(std::string_view value, EventView* view);

/// Partition change-tracking record, also the merge operand: writes, bytes, change_seq as 3×u64 LE.
struct PartitionCounters {
  uint64_t writes = 0;
  uint64_t bytes = 0;
  uint64_t change_seq = 0;
};
inline constexpr size_t kPartitionCountersBytes = 24;
std::string EncodePartitionCounters(const PartitionCounters& c);
bool DecodePartitionCounters(std::string_view value, PartitionCounters* c);

std::string EncodeProject(const Project& project);
std::optional<Project> DecodeProject(std::string_view value);

/// Key of a metadata record: len(ns) (1 byte) + ns + key, so one namespace is one contiguous key range and
/// no namespace is a prefix of another's range.
std::string MetaKey(std::string_view ns, std::string_view key);
/// project (4 BE) + suffix: the key layout of profiles and identity links.
std::string ProjectKey(uint32_t project, std::string_view suffix);
/// Appends ProjectKey(project, suffix) to `out` (many keys in one buffer).
void AppendProjectKey(std::string& out, uint32_t project, std::string_view suffix);

/// Group profiles live in the metadata column family under this namespace (one key range per project and
/// group key), so they need no column family of their own and no user-profile scan ever sees them.
inline constexpr std::string_view kGroupProfileNamespace = "group_profile";
/// project (4 BE) + varint32 len(group_key) + group_key: every group profile of one group key. The length
/// prefix keeps the ranges of "team" and "teams" apart.
std::string GroupProfilePrefix(uint32_t project, std::string_view group_key);
/// GroupProfilePrefix + group_id: the metadata key (before MetaKey) of one group profile.
std::string GroupProfileKey(uint32_t project, std::string_view group_key, std::string_view group_id);

}  // namespace sluice::store::internal
