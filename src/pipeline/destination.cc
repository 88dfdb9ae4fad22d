#include "pipeline/destination.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "common/crypto.h"
#include "objstore/local/local_object_store.h"
#include "storage_access/destination_check.h"
#include "storage_access/open.h"

namespace sluice::pipeline {
namespace {

/// Closes a descriptor on scope exit.
struct FdCloser {
  int fd = -1;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

Error OutsideRoot(std::string_view local_path) {
  // One message for every way out of the root (.., absolute elsewhere, a symlink, a file in the way), so the
  // answer says nothing about what exists outside it.
  std::string shown(local_path.substr(0, 200));
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return InvalidArgument(fmt::format(
      "local_path '{}' is not a directory under this server's local export root: give a path relative to the "
      "root (e.g. exports/web), without '..' parts, symbolic links or files in the way",
      shown));
}

class Factory final : public DestinationFactory {
 public:
  explicit Factory(DestinationFactoryOptions options) : options_(std::move(options)) {
    if (!options_.transport) options_.transport = http::MakeCurlTransport();
    if (!options_.endpoints) {
      auto from_env = aws::EndpointPolicy::Create({}, aws::SystemEnv());
      // An invalid AWS_ENDPOINT_URL allows nothing extra (serve refuses to start with one anyway).
      options_.endpoints = from_env.ok() ? std::move(from_env).value() : aws::EndpointPolicy();
    }
    if (!options_.gcs_endpoints) {
      auto from_env = storage_access::MakeGcsEndpointPolicy({}, gcp::SystemEnv());
      options_.gcs_endpoints = from_env.ok() ? std::move(from_env).value() : aws::EndpointPolicy();
    }
    context_.aws_identity = options_.own_credentials;
    context_.google_identity = options_.google_identity;
    context_.transport = options_.transport;
    context_.s3_endpoints = *options_.endpoints;
    context_.gcs_endpoints = *options_.gcs_endpoints;
    context_.confine_local = [root = options_.local_export_root](const std::string& path) {
      return ConfineLocalPath(root, path);
    };
    context_.retry = options_.retry;
    context_.unsigned_payload_over_https = options_.unsigned_payload_over_https;
    context_.s3_part_size = options_.part_size;
    context_.s3_max_parts_in_flight = options_.max_parts_in_flight;
    context_.s3_upload_threads = options_.upload_threads;
    context_.gcs_chunk_size = options_.gcs_chunk_size;
    context_.azure_endpoints = options_.azure_endpoints;
    context_.static_credentials = options_.static_credentials;
  }

  Result<std::shared_ptr<objstore::ObjectStore>> Open(const Destination& d, const std::string& external_id,
                                                      const std::string& session,
                                                      const storage_access::Tenant& tenant) override {
    SLUICE_ASSIGN_OR_RETURN(
        storage_access::OpenedStore opened,
        storage_access::Open(ToLocation(d),
                             {.external_id = external_id,
                              .session_name = SessionName(session),
                              .purpose = storage_access::Purpose::kWrite,
                              .field_prefix = "",
                              .project_id = tenant.project_id,
                              .gcs_buckets = tenant.gcs_buckets},
                             context_));
    return opened.store;
  }

  Status Check(const Destination& d, const std::string& external_id,
               const storage_access::Tenant& tenant) override {
    if (d.type == DestinationType::kLocal) return CheckLocal(d);
    if (d.type == DestinationType::kS3 && !d.s3_credential.empty()) return CheckStaticKey(d, tenant);
    // The tenant binding before anything else, answered as is (the check below refuses it too).
    SLUICE_TRY(storage_access::CheckGcsBinding(ToLocation(d), tenant.gcs_buckets));
    // The tenant's endpoint, before any request is sent anywhere.
    if (d.type == DestinationType::kGcs) {
      SLUICE_TRY(options_.gcs_endpoints->Check(d.gcs_endpoint, "gcs_endpoint"));
    } else if (d.type == DestinationType::kAzure) {
      SLUICE_TRY(options_.azure_endpoints.Check(d.azure_endpoint, "azure_endpoint"));
    } else {
      SLUICE_TRY(options_.endpoints->Check(d.s3_endpoint));
    }
    storage_access::CheckContext cc;
    cc.external_id = external_id;
    cc.aws_identity = options_.own_credentials;
    cc.google_identity = options_.google_identity;
    cc.gcs_buckets = tenant.gcs_buckets;
    cc.transport = options_.transport;
    storage_access::DestinationCheckResult r = storage_access::CheckDestination(ToLocation(d), cc);
    if (r.ok()) return OkStatus();
    return Error(ErrorCode::kAccessDenied,
                 "destination check failed for " + r.destination + ":\n" + r.ToText());
  }

 private:
  static std::string SessionName(const std::string& session) {
    std::string out = "sluice-";
    for (char c : session) {
      const bool ok = std::isalnum(static_cast<unsigned char>(c)) ||
                      std::string_view("+=,.@_-").find(c) != std::string_view::npos;
      out += ok ? c : '-';
    }
    if (out.size() > 64) out.resize(64);
    return out;
  }

  /// A store reached with a named static key has no role to inspect: opening it (endpoint policy, the grant
  /// to the project) and writing then deleting a probe object under the prefix proves what the export needs.
  Status CheckStaticKey(const Destination& d, const storage_access::Tenant& tenant) {
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<objstore::ObjectStore> store, Open(d, "", "check", tenant));
    const std::string probe = ".sluice-probe-" + RandomHex(64);
    const std::string where = storage_access::Describe(ToLocation(d));
    if (auto put = store->Put(probe, "probe"); !put.ok()) {
      return Error(ErrorCode::kAccessDenied,
                   fmt::format("destination check failed for {}: writing a probe object with s3_credential '{}' "
                               "failed: {}. The key needs permission to write objects in the bucket",
                               where, d.s3_credential, put.error().ToString()));
    }
    if (Status del = store->Delete(probe); !del.ok()) {
      return Error(ErrorCode::kAccessDenied,
                   fmt::format("destination check failed for {}: deleting the probe object with s3_credential "
                               "'{}' failed: {}. The key needs permission to delete objects in the bucket",
                               where, d.s3_credential, del.error().ToString()));
    }
    return OkStatus();
  }

  Status CheckLocal(const Destination& d) const {
    SLUICE_ASSIGN_OR_RETURN(std::string dir, ConfineLocalPath(options_.local_export_root, d.local_path));
    auto store = objstore::LocalObjectStore::Open(dir);
    const std::string probe = ".sluice-probe-" + RandomHex(64);
    // The path is inside the root, so naming it is fine; the OS's error text is not passed on.
    if (!store.ok() || !(*store)->Put(probe, "probe").ok()) {
      return Error(
          ErrorCode::kAccessDenied,
          fmt::format("Sluice cannot write to local_path '{}' under the local export root: the operator "
                      "must make it writable for the server's user",
                      d.local_path));
    }
    if (!(*store)->Delete(probe).ok()) {
      return Error(
          ErrorCode::kAccessDenied,
          fmt::format("Sluice cannot delete files in local_path '{}' under the local export root: the "
                      "operator must make it writable for the server's user",
                      d.local_path));
    }
    return OkStatus();
  }

  DestinationFactoryOptions options_;
  storage_access::AccessContext context_;
};

}  // namespace

std::unique_ptr<DestinationFactory> MakeDestinationFactory(DestinationFactoryOptions options) {
  return std::make_unique<Factory>(std::move(options));
}

Result<std::string> ConfineLocalPath(const std::string& root, std::string_view local_path) {
  if (root.empty()) {
    return InvalidArgument(
        "type=local destinations are not enabled on this server: the operator must start it with `sluice "
        "serve "
        "--local-export-root DIR` to allow pipelines to write under DIR (or use type=s3)");
  }
  if (local_path.empty() || local_path.size() > 4096 || local_path.find('\0') != std::string_view::npos) {
    return OutsideRoot(local_path);
  }
  // The parts below the root: a relative path is taken under it; an absolute one must start with it.
  std::vector<std::string> parts;
  auto split = [](std::string_view path, std::vector<std::string>& out) {
    size_t pos = 0;
    while (pos <= path.size()) {
      size_t slash = path.find('/', pos);
      if (slash == std::string_view::npos) slash = path.size();
      std::string_view part = path.substr(pos, slash - pos);
      if (!part.empty() && part != ".") out.emplace_back(part);
      pos = slash + 1;
    }
  };
  std::vector<std::string> given;
  split(local_path, given);
  if (local_path.front() == '/') {
    std::vector<std::string> root_parts;
    split(root, root_parts);
    if (given.size() < root_parts.size() ||
        !std::equal(root_parts.begin(), root_parts.end(), given.begin())) {
      return OutsideRoot(local_path);
    }
    parts.assign(given.begin() + static_cast<std::ptrdiff_t>(root_parts.size()), given.end());
  } else {
    parts = std::move(given);
  }
  for (const auto& part : parts) {
    if (part == "..") return OutsideRoot(local_path);
  }
  // Walk down from the root one directory at a time, never following a symbolic link, creating what is
  // missing.
  FdCloser dir{::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir.fd < 0) {
    return Unavailable("the local export root cannot be opened: the operator must check --local-export-root");
  }
  std::string out = root;
  for (const auto& part : parts) {
    int next = ::openat(dir.fd, part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT) {
      if (::mkdirat(dir.fd, part.c_str(), 0750) != 0 && errno != EEXIST) {
        return Error(
            ErrorCode::kAccessDenied,
            fmt::format("Sluice cannot create local_path '{}' under the local export root: the operator "
                        "must make the root writable for the server's user",
                        local_path.substr(0, 200)));
      }
      next = ::openat(dir.fd, part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (next < 0) return OutsideRoot(local_path);  // ELOOP (a symlink), ENOTDIR (a file), EACCES…
    ::close(dir.fd);
    dir.fd = next;
    out += "/" + part;
  }
  // Re-check after creation: the directory we hold must still resolve inside the root.
  char resolved[PATH_MAX];
  if (::realpath(out.c_str(), resolved) == nullptr) return OutsideRoot(local_path);
  std::string_view r(resolved);
  if (r != root && !(r.starts_with(root) && (root == "/" || r[root.size()] == '/')))
    return OutsideRoot(local_path);
  struct stat held {
  }, named{};
  if (::fstat(dir.fd, &held) != 0 || ::stat(resolved, &named) != 0 || held.st_dev != named.st_dev ||
      held.st_ino != named.st_ino) {
    return OutsideRoot(local_path);
  }
  return std::string(resolved);
}

storage_access::Location ToLocation(const Destination& d) {
  switch (d.type) {
    case DestinationType::kLocal:
      return storage_access::LocalLocation{.path = d.local_path};
    case DestinationType::kGcs:
      return storage_access::GcsLocation{.bucket = d.gcs_bucket,
                                         .prefix = d.gcs_prefix,
                                         .region = d.gcs_region,
                                         .endpoint = d.gcs_endpoint,
                                         .kms_key_name = d.gcs_kms_key_name};
    case DestinationType::kAzure:
      return storage_access::AzureLocation{.storage_account = d.azure_storage_account,
                                           .container = d.azure_container,
                                           .prefix = d.azure_prefix,
                                           .tenant_id = d.azure_tenant_id,
                                           .client_id = d.azure_client_id,
                                           .client_secret = d.azure_client_secret,
                                           .endpoint = d.azure_endpoint,
                                           .authority_host = ""};
    case DestinationType::kS3:
      break;
  }
  return storage_access::S3Location{.bucket = d.s3_bucket,
                                    .region = d.s3_region,
                                    .role_arn = d.s3_role,
                                    .prefix = d.s3_prefix,
                                    .endpoint = d.s3_endpoint,
                                    .encryption = d.encryption,
                                    .sts_endpoint = "",
                                    .credential = d.s3_credential};
}

std::string DescribeDestination(const Destination& d) { return storage_access::Describe(ToLocation(d)); }

}  // namespace sluice::pipeline
