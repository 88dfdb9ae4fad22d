#include "store/codec.h"

#include <cstring>

#include "common/crypto.h"

namespace sluice::store::internal {

void AppendBigEndian32(std::string& out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                     static_cast<char>(v)};
  out.append(b, 4);
}

uint32_t LoadBigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

void AppendLittleEndian64(std::string& out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out.append(b, 8);
}

uint64_t LoadLittleEndian64(const char* p) {
  // memcpy compiles to one load on little-endian hosts; the shifts keep big-endian hosts correct.
  unsigned char b[8];
  std::memcpy(b, p, 8);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

void AppendVarint32(std::string& out, uint32_t v) {
  char b[5];
  size_t n = 0;
  while (v >= 0x80) {
    b[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  b[n++] = static_cast<char>(v);
  out.append(b, n);
}

bool ReadVarint32(const char** p, const char* end, uint32_t* v) {
  uint32_t result = 0;
  for (int shift = 0; shift <= 28 && *p < end; shift += 7) {
    const auto byte = static_cast<unsigned char>(**p);
    ++*p;
    result |= uint32_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) {
      if (shift == 28 && byte > 0x0f) return false;  // more than 32 bits
      *v = result;
      return true;
    }
  }
  return false;
}

int64_t TruncateToSecond(int64_t time_us) {
  int64_t seconds = time_us / 1'000'000;
  if (time_us % 1'000'000 < 0) --seconds;
  return seconds;
}

namespace {

void AppendLengthPrefixed(std::string& out, std::string_view s) {
  AppendBigEndian32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

}  // namespace

std::array<uint8_t, kEventHashBytes> EventDedupHash(const Event& event) {
  // Reused per thread: the write path hashes every event and a fresh allocation each time shows in profiles.
  thread_local std::string buf;
  buf.clear();
  AppendLengthPrefixed(buf, event.name);
  AppendLengthPrefixed(buf, event.distinct_id);
  const auto second = static_cast<uint64_t>(TruncateToSecond(event.time_us));
  AppendBigEndian32(buf, static_cast<uint32_t>(second >> 32));
  AppendBigEndian32(buf, static_cast<uint32_t>(second));
  AppendLengthPrefixed(buf, event.insert_id);
  const Sha256Digest digest = Sha256(buf);
  std::array<uint8_t, kEventHashBytes> out;
  std::memcpy(out.data(), digest.data(), kEventHashBytes);
  return out;
}

std::string PartitionPrefix(uint32_t project, Hour hour) {
  std::string key;
  key.reserve(kEventKeyBytes);
  AppendBigEndian32(key, project);
  AppendBigEndian32(key, hour);
  return key;
}

std::string EventKey(uint32_t project, const Event& event) {
  std::string key = PartitionPrefix(project, HourOf(event.time_us));
  const auto hash = EventDedupHash(event);
  key.append(reinterpret_cast<const char*>(hash.data()), hash.size());
  return key;
}

EventKeyArray MakeEventKey(uint32_t project, const Event& event) {
  EventKeyArray key;
  const uint32_t hour = HourOf(event.time_us);
  for (int i = 0; i < 4; ++i) {
    key[i] = static_cast<char>(project >> (24 - 8 * i));
    key[4 + i] = static_cast<char>(hour >> (24 - 8 * i));
  }
  const auto hash = EventDedupHash(event);
  std::memcpy(key.data() + kPartitionPrefixBytes, hash.data(), kEventHashBytes);
  return key;
}

std::string PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(s.back());
    if (last != 0xff) {
      ++last;
      return s;
    }
    s.pop_back();
  }
  return s;
}

// Event value v1:
//   u8 version | i64 LE time_us | i64 LE ingested_ms |
//   (varint32 length + bytes) × {name, distinct_id, device_id, user_id, insert_id, properties}
// The fixed part comes first so the decoder does two loads; each string is a pointer bump.
void EncodeEventValue(const Event& event, int64_t ingested_ms, std::string& out) {
  EncodeEventValueHead(event, ingested_ms, event.properties.size(), out);
  out.append(event.properties);
}

void EncodeEventValueHead(const Event& event, int64_t ingested_ms, size_t properties_bytes, std::string& out) {
  out.push_back(static_cast<char>(kEventFormatV1));
  AppendLittleEndian64(out, static_cast<uint64_t>(event.time_us));
  AppendLittleEndian64(out, static_cast<uint64_t>(ingested_ms));
  for (const std::string* s : {&event.name, &event.distinct_id, &event.device_id, &event.user_id,
                               &event.insert_id}) {
    AppendVarint32(out, static_cast<uint32_t>(s->size()));
    out.append(*s);
  }
  AppendVarint32(out, static_cast<uint32_t>(properties_bytes));
}

bool DecodeEventValue(std::string_view value, EventView* view) {
  if (value.size() < 17 || static_cast<uint8_t>(value[0]) != kEventFormatV1) return false;
  const char* p = value.data() + 1;
  const char* const end = value.data() + value.size();
  view->time_us = static_cast<int64_t>(LoadLittleEndian64(p));
  view->ingested_ms = static_cast<int64_t>(LoadLittleEndian64(p + 8));
  p += 16;
  for (std::string_view* s : {&view->name, &view->distinct_id, &view->device_id, &view->user_id,
                              &view->insert_id, &view->properties}) {
    uint32_t len = 0;
    if (!ReadVarint32(&p, end, &len) || static_cast<size_t>(end - p) < len) return false;
    *s = std::string_view(p, len);
    p += len;
  }
  return p == end;
}

std::string EncodePartitionCounters(const PartitionCounters& c) {
  std::string out;
  out.reserve(kPartitionCountersBytes);
  AppendLittleEndian64(out, c.writes);
  AppendLittleEndian64(out, c.bytes);
  AppendLittleEndian64(out, c.change_seq);
  return out;
}

bool DecodePartitionCounters(std::string_view value, PartitionCounters* c) {
  if (value.size() != kPartitionCountersBytes) return false;
  c->writes = LoadLittleEndian64(value.data());
  c->bytes = LoadLittleEndian64(value.data() + 8);
  c->change_seq = LoadLittleEndian64(value.data() + 16);
  return true;
}

// Project v1: u8 version | u32 BE id | i64 LE created_ms | varint-prefixed name, token, api_secret,
// external_id. v2 appends varint count | varint-prefixed gcs_buckets (v1 records read as no buckets).
std::string EncodeProject(const Project& project) {
  std::string out;
  out.push_back(static_cast<char>(kProjectFormatV2));
  AppendBigEndian32(out, project.id);
  AppendLittleEndian64(out, static_cast<uint64_t>(project.created_ms));
  for (const std::string* s : {&project.name, &project.token, &project.api_secret.Reveal(), &project.external_id}) {
    AppendVarint32(out, static_cast<uint32_t>(s->size()));
    out.append(*s);
  }
  AppendVarint32(out, static_cast<uint32_t>(project.gcs_buckets.size()));
  for (const std::string& b : project.gcs_buckets) {
    AppendVarint32(out, static_cast<uint32_t>(b.size()));
    out.append(b);
  }
  return out;
}

std::optional<Project> DecodeProject(std::string_view value) {
  if (value.size() < 13) return std::nullopt;
  const uint8_t version = static_cast<uint8_t>(value[0]);
  if (version != kProjectFormatV1 && version != kProjectFormatV2) return std::nullopt;
  Project project;
  const char* p = value.data() + 1;
  const char* const end = value.data() + value.size();
  project.id = LoadBigEndian32(p);
  project.created_ms = static_cast<int64_t>(LoadLittleEndian64(p + 4));
  p += 12;
  std::string fields[4];
  for (std::string& s : fields) {
    uint32_t len = 0;
    if (!ReadVarint32(&p, end, &len) || static_cast<size_t>(end - p) < len) return std::nullopt;
    s.assign(p, len);
    p += len;
  }
  if (version == kProjectFormatV2) {
    uint32_t count = 0;
    if (!ReadVarint32(&p, end, &count) || count > static_cast<size_t>(end - p)) return std::nullopt;
    project.gcs_buckets.resize(count);
    for (std::string& b : project.gcs_buckets) {
      uint32_t len = 0;
      if (!ReadVarint32(&p, end, &len) || static_cast<size_t>(end - p) < len) return std::nullopt;
      b.assign(p, len);
      p += len;
    }
  }
  if (p != end) return std::nullopt;
  project.name = std::move(fields[0]);
  project.token = std::move(fields[1]);
  project.api_secret = Secret(std::move(fields[2]));
  project.external_id = std::move(fields[3]);
  return project;
}

std::string MetaKey(std::string_view ns, std::string_view key) {
  std::string out;
  out.reserve(1 + ns.size() + key.size());
  out.push_back(static_cast<char>(ns.size()));
  out.append(ns);
  out.append(key);
  return out;
}

std::string ProjectKey(uint32_t project, std::string_view suffix) {
  std::string out;
  out.reserve(4 + suffix.size());
  AppendProjectKey(out, project, suffix);
  return out;
}

void AppendProjectKey(std::string& out, uint32_t project, std::string_view suffix) {
  AppendBigEndian32(out, project);
  out.append(suffix);
}

std::string GroupProfilePrefix(uint32_t project, std::string_view group_key) {
  std::string out;
  out.reserve(4 + 5 + group_key.size());
  AppendBigEndian32(out, project);
  AppendVarint32(out, static_cast<uint32_t>(group_key.size()));
  out.append(group_key);
  return out;
}

std::string GroupProfileKey(uint32_t project, std::string_view group_key, std::string_view group_id) {
  std::string out = GroupProfilePrefix(project, group_key);
  out.append(group_id);
  return out;
}

}  // namespace sluice::store::internal
