// Named static credentials for S3-compatible stores (HMAC keys of GCS's XML API, MinIO, Ceph): an access key
// id and secret access key the operator stores once under a name and grants to projects, so that a pipeline
// (`s3_credential=NAME`) or an s3Import connector (connector_properties.s3_credential) can reach a store that
// has no IAM roles to assume. Sluice then signs with these keys (SigV4) and calls no STS.
//
//   StaticCredentialRegistry registry(store);
//   SLUICE_TRY(registry.Put({.name = "minio-eu", .access_key_id = "AKIA…", .secret_access_key = Secret(k),
//                            .projects = {3, 7}}));
//   SLUICE_ASSIGN_OR_RETURN(StaticCredential c, registry.ResolveFor("minio-eu", 3, "s3_credential"));
//
// Records live in the store's meta namespace "s3_credential", keyed by name. The secret is a Secret: it is
// never returned by the API, never logged and never part of an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/secret.h"
#include "store/store.h"

namespace sluice::storage_access {

struct StaticCredential {
  std::string name;
  std::string access_key_id;
  Secret secret_access_key;
  /// The projects that may use it; nullopt (a record without the list) = none.
  std::optional<std::vector<uint32_t>> projects;
  int64_t created_ms = 0;

  bool GrantedTo(uint32_t project) const;
};

/// 1-64 characters of lower-case letters, digits, '-' and '_', starting with a letter or digit.
Status ValidateCredentialName(std::string_view name, std::string_view field);
/// 3-128 characters of letters, digits, '.', '_' and '-' (AWS, MinIO and GCS HMAC key ids all fit; the id is
/// part of SigV4's Credential=ID/date/… scope, so '/', ',' and spaces cannot be).
Status ValidateAccessKeyId(std::string_view id, std::string_view field);
/// 8-256 printable ASCII characters without spaces. The message never contains the value.
Status ValidateSecretAccessKey(std::string_view secret, std::string_view field);

class StaticCredentialRegistry {
 public:
  explicit StaticCredentialRegistry(store::Store& store) : store_(store) {}

  /// Validates and stores `c` (kInvalidArgument naming the field; kConflict when the name is taken, so a
  /// typo cannot replace another credential: DELETE first to rotate).
  Status Create(const StaticCredential& c);
  /// kNotFound when absent.
  Status Delete(std::string_view name);
  Result<std::optional<StaticCredential>> Get(std::string_view name) const;
  /// Every credential, by name.
  Result<std::vector<StaticCredential>> List() const;

  /// The credential `name` if `project` may use it. A missing credential and one not granted to the project
  /// get the same kInvalidArgument (prefixed with `field`), so a tenant cannot learn which names exist.
  Result<StaticCredential> ResolveFor(std::string_view name, uint32_t project, std::string_view field) const;

 private:
  store::Store& store_;
};

}  // namespace sluice::storage_access
