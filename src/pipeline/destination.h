// Opens and checks a pipeline's destination: S3 (assuming the customer's role with the project's external ID),
// GCS (as Sluice's own service account) or a local directory. The manager talks to destinations only through
// this interface, so tests substitute an in-memory store. The work is the customer-storage layer's
// (storage_access/): this file turns a pipeline's flat parameters into a Location and keeps the operator's
// local export root.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credentials.h"
#include "aws/endpoint_policy.h"
#include "aws/retry.h"
#include "gcp/credentials.h"
#include "http/transport.h"
#include "objstore/object_store.h"
#include "pipeline/pipeline.h"
#include "storage_access/location.h"
#include "storage_access/open.h"
#include "storage_access/static_credentials.h"

namespace sluice::pipeline {

class DestinationFactory {
 public:
  virtual ~DestinationFactory() = default;
  /// The object store a pipeline writes to. `session` names the STS session (e.g. "p3-events-daily-s3");
  /// `tenant` is the project it writes for: a named static credential must be granted to it, and a GCS
  /// destination outside its bound buckets is refused (storage_access::CheckGcsBinding), at every run.
  virtual Result<std::shared_ptr<objstore::ObjectStore>> Open(const Destination& destination,
                                                              const std::string& external_id,
                                                              const std::string& session,
                                                              const storage_access::Tenant& tenant) = 0;
  /// Proves the destination works before a pipeline is accepted (S3 and GCS: the destination check of
  /// storage_access/destination_check.h). kAccessDenied whose message is the report with what to fix, or,
  /// for a GCS bucket not bound to the project, just the binding refusal.
  virtual Status Check(const Destination& destination, const std::string& external_id,
                       const storage_access::Tenant& tenant) = 0;
};

struct DestinationFactoryOptions {
  /// `sluice serve --local-export-root DIR`, canonical (realpath). Empty = type=local destinations are off:
  /// writing to the server's disk is the operator's decision, never a tenant's.
  std::string local_export_root;
  /// The S3-compatible endpoints a tenant's s3_endpoint may name (aws/endpoint_policy.h); nullopt = only the
  /// operator's AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3, read when the factory is made.
  std::optional<aws::EndpointPolicy> endpoints;
  /// Sluice's own identity; signs AssumeRole. Required for S3 destinations.
  std::shared_ptr<aws::CredentialsProvider> own_credentials;
  /// Sluice's own Google service account. Required for GCS destinations.
  std::shared_ptr<gcp::TokenProvider> google_identity;
  /// The GCS endpoints a tenant's gcs_endpoint may name (storage_access::MakeGcsEndpointPolicy); nullopt =
  /// only STORAGE_EMULATOR_HOST, read when the factory is made.
  std::optional<aws::EndpointPolicy> gcs_endpoints;
  /// The Azure blob endpoints a tenant's azure_endpoint may name (storage_access::MakeAzureEndpointPolicy;
  /// `serve --allow-azure-endpoint`). Default: none.
  aws::EndpointPolicy azure_endpoints;
  std::shared_ptr<http::HttpTransport> transport;  // null = libcurl
  /// The operator's named static credentials an s3_credential may name; null = none.
  std::shared_ptr<const storage_access::StaticCredentialRegistry> static_credentials;
  /// Retries of the exporters' S3 and STS requests.
  aws::RetryPolicy retry;
  /// Over https the payload is sent UNSIGNED with a CRC32C checksum that S3 verifies (TLS protects it in
  /// transit; saves a SHA-256 pass); over plain http (S3-compatible test endpoints) it is signed.
  bool unsigned_payload_over_https = true;
  uint64_t part_size = 8ull << 20;
  /// GCS resumable-upload chunk (a 256 KiB multiple).
  uint64_t gcs_chunk_size = 8ull << 20;
  int max_parts_in_flight = 2;
  int upload_threads = 4;
};

std::unique_ptr<DestinationFactory> MakeDestinationFactory(DestinationFactoryOptions options);

/// The directory a type=local destination writes to: `local_path` taken under `root` (a relative path) or an
/// absolute path inside `root`, with no ".." part, created if missing one directory at a time without
/// following any symbolic link (openat + O_NOFOLLOW), then re-checked with realpath. kInvalidArgument when
/// local destinations are off (`root` empty) or the path leaves the root; the message is the same whether or
/// not anything exists outside the root, and names nothing outside it.
Result<std::string> ConfineLocalPath(const std::string& root, std::string_view local_path);

/// The typed description of a pipeline's destination (its flat parameters as the API and the stored records
/// keep them).
storage_access::Location ToLocation(const Destination& destination);

/// "s3://bucket/prefix (region)", "gs://bucket/prefix" or "local:/path".
std::string DescribeDestination(const Destination& destination);

}  // namespace sluice::pipeline
