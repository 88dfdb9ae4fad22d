// LocalObjectStore: a directory as an object store (pipeline type `local`, tests, air-gapped set-ups).
//
// Keys map to paths under the root ("a/b/c.json.gz" -> <root>/a/b/c.json.gz). Keys that could escape the root or
// alias another key ("..", ".", empty segments, a leading '/', NUL) are rejected with kInvalidArgument.
// Visibility is atomic like S3's: data goes to a temporary file in the destination directory, is fsync'ed and
// then renamed over the key (and the directory fsync'ed), so a reader sees the old object or the new one, never
// a prefix of it. Temporary files carry ".sluice-tmp-" in their name and are never listed.
//
// Thread-safe: operations share no mutable state beyond the file system.
#pragma once

#include <filesystem>
#include <string>

#include "objstore/object_store.h"

namespace sluice::objstore {

class LocalObjectStore final : public ObjectStore {
 public:
  /// Marker in the names of in-progress files (skipped by List, safe to delete when no writer runs).
  static constexpr std::string_view kTempMarker = ".sluice-tmp-";

  /// `root` is created if missing (see Open()).
  explicit LocalObjectStore(std::filesystem::path root);

  /// Creates `root` (and parents) and checks it is a writable directory.
  static Result<std::unique_ptr<LocalObjectStore>> Open(const std::filesystem::path& root);

  /// Validates `key` and returns its path under the root.
  Result<std::filesystem::path> PathForKey(std::string_view key) const;

  std::string Describe() const override;
  /// ETag is "<size hex>-<mtime ns hex>": it changes whenever the object is replaced.
  Result<ObjectInfo> Head(std::string_view key) override;
  Result<std::string> Get(std::string_view key, uint64_t offset = 0,
                          std::optional<uint64_t> length = std::nullopt) override;
  Status GetStreaming(std::string_view key, const std::function<bool(std::string_view)>& sink) override;
  /// `options` are accepted and ignored (a file has no content type).
  Result<ObjectInfo> Put(std::string_view key, std::string data, const PutOptions& options = {}) override;
  Result<std::unique_ptr<ObjectWriter>> NewWriter(std::string_view key, const PutOptions& options = {}) override;
  Result<std::vector<ObjectInfo>> List(std::string_view prefix) override;
  Status ListEach(std::string_view prefix, std::string_view start_after,
                  const std::function<bool(const ObjectInfo&)>& fn) override;
  /// Also removes directories left empty (best effort), as S3 has no directories to leave behind.
  Status Delete(std::string_view key) override;

 private:
  std::filesystem::path root_;
};

/// Checks a key against the rules above; shared with tests.
Status ValidateLocalKey(std::string_view key);

}  // namespace sluice::objstore
