#include "pipeline/destination.h"

#include <filesystem>

#include <fmt/format.h>

#include "aws/sts.h"
#include "common/crypto.h"
#include "objstore/destination_check.h"
#include "objstore/local/local_object_store.h"
#include "objstore/s3/s3_object_store.h"

namespace sluice::pipeline {
namespace {

class Factory final : public DestinationFactory {
 public:
  explicit Factory(DestinationFactoryOptions options) : options_(std::move(options)) {
    if (!options_.transport) options_.transport = http::MakeCurlTransport();
  }

  Result<std::shared_ptr<objstore::ObjectStore>> Open(const Destination& d, const std::string& external_id,
                                                      const std::string& session) override {
    if (d.type == DestinationType::kLocal) {
      SLUICE_ASSIGN_OR_RETURN(auto local, objstore::LocalObjectStore::Open(d.local_path));
      return std::shared_ptr<objstore::ObjectStore>(std::move(local));
    }
    if (!options_.own_credentials) {
      return Error(ErrorCode::kUnauthenticated,
                   "Sluice has no AWS identity of its own to assume the customer's role with: set "
                   "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a web identity token for `sluice serve`");
    }
    aws::StsOptions sts;
    sts.region = d.s3_region.empty() ? "us-east-1" : d.s3_region;
    sts.transport = options_.transport;
    sts.endpoint = d.s3_endpoint;
    sts.retry = options_.retry;
    auto client = std::make_shared<aws::StsClient>(sts, options_.own_credentials);
    aws::AssumeRoleProvider::Options ar;
    ar.role_arn = d.s3_role;
    ar.session_name = SessionName(session);
    ar.external_id = external_id;
    auto provider = std::make_shared<aws::AssumeRoleProvider>(client, ar);

    objstore::s3::S3StoreOptions o;
    o.bucket = d.s3_bucket;
    o.region = d.s3_region;
    o.endpoint = d.s3_endpoint;
    o.prefix = d.s3_prefix;
    o.encryption = d.encryption;
    o.retry = options_.retry;
    o.part_size = options_.part_size;
    o.max_parts_in_flight = options_.max_parts_in_flight;
    o.upload_threads = options_.upload_threads;
    const bool plain_http = d.s3_endpoint.starts_with("http://");
    o.payload_signing = options_.unsigned_payload_over_https && !plain_http
                            ? objstore::s3::PayloadSigning::kUnsignedWithCrc32c
                            : objstore::s3::PayloadSigning::kSigned;
    SLUICE_ASSIGN_OR_RETURN(auto s3, objstore::s3::S3ObjectStore::Create(o, provider, options_.transport));
    return std::shared_ptr<objstore::ObjectStore>(std::move(s3));
  }

  Status Check(const Destination& d, const std::string& external_id) override {
    if (d.type == DestinationType::kLocal) return CheckLocal(d);
    objstore::DestinationSpec spec;
    spec.bucket = d.s3_bucket;
    spec.region = d.s3_region;
    spec.role_arn = d.s3_role;
    spec.external_id = external_id;
    spec.prefix = d.s3_prefix;
    spec.encryption = d.encryption;
    spec.endpoint = d.s3_endpoint;
    objstore::DestinationCheckOptions co;
    co.base_credentials = options_.own_credentials;
    co.transport = options_.transport;
    objstore::DestinationCheckResult r = objstore::CheckDestination(spec, co);
    if (r.ok()) return OkStatus();
    return Error(ErrorCode::kAccessDenied, "destination check failed for " + r.destination + ":\n" + r.ToText());
  }

 private:
  static std::string SessionName(const std::string& session) {
    std::string out = "sluice-";
    for (char c : session) {
      const bool ok = std::isalnum(static_cast<unsigned char>(c)) || std::string_view("+=,.@_-").find(c) !=
                                                                         std::string_view::npos;
      out += ok ? c : '-';
    }
    if (out.size() > 64) out.resize(64);
    return out;
  }

  static Status CheckLocal(const Destination& d) {
    if (d.local_path.empty() || !std::filesystem::path(d.local_path).is_absolute()) {
      return InvalidArgument("local_path must be an absolute directory path on the Sluice server");
    }
    SLUICE_ASSIGN_OR_RETURN(auto store, objstore::LocalObjectStore::Open(d.local_path));
    const std::string probe = ".sluice-probe-" + RandomHex(64);
    if (auto put = store->Put(probe, "probe"); !put.ok()) {
      return Error(ErrorCode::kAccessDenied,
                   fmt::format("cannot write to {}: {}", d.local_path, put.error().message));
    }
    if (auto del = store->Delete(probe); !del.ok()) {
      return Error(ErrorCode::kAccessDenied,
                   fmt::format("cannot delete from {}: {}", d.local_path, del.error().message));
    }
    return OkStatus();
  }

  DestinationFactoryOptions options_;
};

}  // namespace

std::unique_ptr<DestinationFactory> MakeDestinationFactory(DestinationFactoryOptions options) {
  return std::make_unique<Factory>(std::move(options));
}

std::string DescribeDestination(const Destination& d) {
  if (d.type == DestinationType::kLocal) return "local:" + d.local_path;
  std::string prefix = d.s3_prefix.empty() ? "" : "/" + d.s3_prefix;
  return fmt::format("s3://{}{} ({})", d.s3_bucket, prefix, d.s3_region);
}

}  // namespace sluice::pipeline
