// Opens and checks a pipeline's destination: S3 (assuming the customer's role with the project's external ID)
// or a local directory. The manager talks to destinations only through this interface, so tests substitute
// an in-memory store.
#pragma once

#include <memory>
#include <string>

#include "aws/credentials.h"
#include "aws/retry.h"
#include "http/transport.h"
#include "objstore/object_store.h"
#include "pipeline/pipeline.h"

namespace sluice::pipeline {

class DestinationFactory {
 public:
  virtual ~DestinationFactory() = default;
  /// The object store a pipeline writes to. `session` names the STS session (e.g. "p3-events-daily-s3").
  virtual Result<std::shared_ptr<objstore::ObjectStore>> Open(const Destination& destination,
                                                              const std::string& external_id,
                                                              const std::string& session) = 0;
  /// Proves the destination works before a pipeline is accepted (S3: the full destination check of
  /// objstore/destination_check.h). kAccessDenied whose message is the report with what to fix.
  virtual Status Check(const Destination& destination, const std::string& external_id) = 0;
};

struct DestinationFactoryOptions {
  /// Sluice's own identity; signs AssumeRole. Required for S3 destinations.
  std::shared_ptr<aws::CredentialsProvider> own_credentials;
  std::shared_ptr<http::HttpTransport> transport;  // null = libcurl
  /// Retries of the exporters' S3 and STS requests.
  aws::RetryPolicy retry;
  /// Over https the payload is sent UNSIGNED with a CRC32C checksum that S3 verifies (TLS protects it in
  /// transit; saves a SHA-256 pass); over plain http (S3-compatible test endpoints) it is signed.
  bool unsigned_payload_over_https = true;
  uint64_t part_size = 8ull << 20;
  int max_parts_in_flight = 2;
  int upload_threads = 4;
};

std::unique_ptr<DestinationFactory> MakeDestinationFactory(DestinationFactoryOptions options);

/// "s3://bucket/prefix (region)" or "local:/path".
std::string DescribeDestination(const Destination& destination);

}  // namespace sluice::pipeline
