#include "app/cmd_destination.h"

#include <cctype>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "app/azure_flags.h"
#include "aws/providers.h"
#include "aws/sts.h"
#include "gcp/credentials.h"
#include "http/transport.h"
#include "storage_access/destination_check.h"
#include "storage_access/location.h"

namespace sluice::app {
namespace {

struct CheckFlags {
  std::string provider = "s3";
  storage_access::DestinationSpec spec;
  std::string encryption = "none";
  std::string kms_key_name;
  std::string gcp_credentials;
  bool json = false;
  /// export (a pipeline's check: write, read, list, delete) or import (read-only: list and read; Azure).
  std::string purpose = "export";
  std::string ca_bundle;
  AzureFlagValues azure;
};

[[noreturn]] void Usage(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  throw CLI::RuntimeError(2);
}

storage_access::Location AzureLocationOf(const CheckFlags& flags) {
  const auto& s = flags.spec;
  if (!s.bucket.empty() || !s.region.empty() || !s.role_arn.empty() || !s.external_id.empty() || !s.prefix.empty() ||
      !s.endpoint.empty() || !s.sts_endpoint.empty() || flags.encryption != "none" || !s.encryption.kms_key_id.empty() ||
      !flags.kms_key_name.empty() || !flags.gcp_credentials.empty()) {
    Usage("--provider azure takes the --azure-* flags (--azure-storage-account, --azure-container, --azure-prefix, "
          "--azure-client-id, --azure-tenant-id, --azure-endpoint, --azure-client-secret-file or AZURE_CLIENT_SECRET); "
          "--bucket, --region, --prefix, --endpoint and the S3/GCS flags name another provider's bucket");
  }
  auto location = AzureLocationFromFlags(flags.azure, azure::SystemEnv());
  if (!location.ok()) Usage(location.error().message);
  const auto role =
      flags.purpose == "import" ? storage_access::Role::kSource : storage_access::Role::kDestination;
  // A pipeline writes under a "directory" (as the API normalises it); an import lists a raw name prefix.
  if (role == storage_access::Role::kDestination) {
    location->prefix = storage_access::NormalizeDestinationPrefix(location->prefix);
  }
  if (Status valid = storage_access::Validate(*location, role); !valid.ok()) Usage(valid.error().message);
  return *location;
}

storage_access::Location S3LocationOf(CheckFlags& flags) {
  static const std::map<std::string, objstore::Encryption::Mode> kModes = {
      {"none", objstore::Encryption::Mode::kNone},
      {"aes", objstore::Encryption::Mode::kAes256},
      {"kms", objstore::Encryption::Mode::kKms}};
  if (flags.spec.region.empty()) Usage("--region is required for an S3 bucket");
  if (flags.spec.role_arn.empty()) Usage("--role is required for an S3 bucket");
  if (flags.spec.external_id.empty()) Usage("--external-id is required for an S3 bucket");
  if (!flags.kms_key_name.empty() || !flags.gcp_credentials.empty()) {
    Usage("--kms-key-name and --gcp-credentials apply to --provider gcs");
  }
  std::string mode = flags.encryption;
  for (char& c : mode) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  flags.spec.encryption.mode = kModes.at(mode);  // CLI11 already checked the value
  if (!flags.spec.encryption.kms_key_id.empty() &&
      flags.spec.encryption.mode != objstore::Encryption::Mode::kKms) {
    Usage("--kms-key-id needs --encryption kms");
  }
  return storage_access::ToLocation(flags.spec);
}

storage_access::Location GcsLocationOf(const CheckFlags& flags) {
  const auto& s = flags.spec;
  if (!s.role_arn.empty() || !s.external_id.empty() || !s.sts_endpoint.empty() || flags.encryption != "none" ||
      !s.encryption.kms_key_id.empty()) {
    Usage("--role, --external-id, --sts-endpoint, --encryption and --kms-key-id apply to S3; a GCS bucket is "
          "reached as Sluice's own service account (see `sluice gcp roles`)");
  }
  storage_access::GcsLocation l{.bucket = s.bucket,
                                .prefix = s.prefix,
                                .region = s.region,
                                .endpoint = s.endpoint,
                                .kms_key_name = flags.kms_key_name};
  if (Status valid = storage_access::Validate(l, storage_access::Role::kDestination); !valid.ok()) {
    Usage(valid.error().message);
  }
  return l;
}

void RunCheck(CheckFlags& flags) {
  const bool gcs = flags.provider == "gcs";
  const bool azure = flags.provider == "azure";
  if (!azure && flags.azure.any()) Usage("the --azure-* flags need --provider azure");
  if (!azure && flags.spec.bucket.empty()) Usage("--bucket is required for --provider s3 and gcs");
  if (!azure && flags.purpose == "import") {
    Usage("--purpose import is the read-only check of --provider azure; an S3 or GCS import source is checked by "
          "`sluice import create`, which refuses a connector it cannot read");
  }
  storage_access::Location location = azure ? AzureLocationOf(flags) : gcs ? GcsLocationOf(flags) : S3LocationOf(flags);
  http::TransportOptions transport_options;
  transport_options.ca_bundle = flags.ca_bundle;  // "" = the system's CA store
  std::shared_ptr<http::HttpTransport> transport = http::MakeCurlTransport(transport_options);
  storage_access::CheckContext context;
  context.transport = transport;
  if (azure) {
    // The customer's own service principal; the operator runs the check, so the endpoint named is allowed. The
    // authority is AZURE_AUTHORITY_HOST (else the public cloud's).
    context.purpose =
        flags.purpose == "import" ? storage_access::Purpose::kRead : storage_access::Purpose::kWrite;
  } else if (gcs) {
    // The operator runs the check, so the endpoint they name is allowed; the token goes nowhere else.
    auto identity = gcp::MakeDefaultTokenProvider({.transport = transport}, flags.gcp_credentials);
    if (!identity.ok()) Usage(identity.error().message);
    context.google_identity = *identity;
    // The operator names the bucket here, outside any project: that is the binding (docs/gcs.md#binding).
    context.gcs_buckets = {flags.spec.bucket};
  } else {
    aws::DefaultChainOptions chain;
    chain.transport = transport;
    chain.region = flags.spec.region;
    // STS never goes to --endpoint (an S3-compatible store must not see AssumeRole signed with Sluice's
    // identity).
    chain.sts_endpoint = flags.spec.sts_endpoint;
    context.aws_identity = aws::MakeDefaultCredentialsChain(chain);
    context.external_id = flags.spec.external_id;
  }
  storage_access::DestinationCheckResult result = storage_access::CheckDestination(location, context);
  std::cout << (flags.json ? result.ToJson() + "\n" : result.ToText());
  std::cout.flush();
  if (!result.ok()) throw CLI::RuntimeError(1);
}

}  // namespace

void RegisterDestinationCommands(CLI::App& app) {
  CLI::App* destination =
      app.add_subcommand("destination", "Check a pipeline destination (customer's bucket)");
  destination->require_subcommand(1);
  auto flags = std::make_shared<CheckFlags>();
  CLI::App* check = destination->add_subcommand(
      "check",
      "S3: assume the customer's role (and verify it refuses a wrong external ID); GCS: authenticate as "
      "Sluice's service account; Azure: get a token for the customer's service principal. Then write, read, list "
      "and delete a probe object (--purpose import: only list and read, Azure); names any missing permission and "
      "what grants it");
  check->add_option("--provider", flags->provider, "s3 (default), gcs or azure")
      ->check(CLI::IsMember({"s3", "gcs", "azure"}))
      ->capture_default_str();
  check
      ->add_option("--purpose", flags->purpose,
                   "export: what a pipeline needs (write, read, list, delete a probe); import: what an azureImport "
                   "connector needs (list and read only; Storage Blob Data Reader), --provider azure only")
      ->check(CLI::IsMember({"export", "import"}))
      ->capture_default_str();
  check->add_option("--bucket", flags->spec.bucket, "The customer's bucket (S3 and GCS)");
  check->add_option("--region", flags->spec.region,
                    "The bucket's region, e.g. eu-west-1 (required for S3; optional for GCS)");
  check->add_option("--role", flags->spec.role_arn, "S3: the customer's role ARN Sluice assumes");
  check->add_option("--external-id", flags->spec.external_id,
                    "S3: external ID the role's trust policy requires (the project's external ID)");
  check->add_option("--prefix", flags->spec.prefix, "Key prefix the pipeline writes under");
  check
      ->add_option("--encryption", flags->encryption,
                   "S3 server-side encryption: none, aes (SSE-S3) or kms (SSE-KMS), in any case")
      ->check(CLI::IsMember({"none", "aes", "kms"}, CLI::ignore_case));
  check->add_option("--kms-key-id", flags->spec.encryption.kms_key_id,
                    "S3: KMS key ARN for --encryption kms (default: the aws/s3 key)");
  check->add_option("--kms-key-name", flags->kms_key_name,
                    "GCS: Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for the probe (CMEK)");
  check->add_option("--endpoint", flags->spec.endpoint,
                    "S3-compatible endpoint URL (default: AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL); for "
                    "GCS the JSON-API endpoint (default: STORAGE_EMULATOR_HOST, else Google)");
  check->add_option(
      "--sts-endpoint", flags->spec.sts_endpoint,
      "STS endpoint URL (default: AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL, else the regional STS; "
      "never --endpoint)");
  check->add_option("--gcp-credentials", flags->gcp_credentials,
                    "GCS: Sluice's service-account JSON key (default: GOOGLE_APPLICATION_CREDENTIALS, else the "
                    "metadata server)");
  AddAzureFlags(check, flags->azure);
  check->add_option("--ca-bundle", flags->ca_bundle,
                    "PEM file of the CAs trusted for the check's TLS connections (default: the system's CA store), "
                    "e.g. a private CA of an Azure or S3-compatible endpoint")
      ->check(CLI::ExistingFile);
  check->add_flag("--json", flags->json, "Print one JSON object instead of the report");
  check->callback([flags] { RunCheck(*flags); });
}

}  // namespace sluice::app
