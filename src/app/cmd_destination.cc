#include "app/cmd_destination.h"

#include <cctype>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "aws/sts.h"
#include "http/transport.h"
#include "objstore/destination_check.h"

namespace sluice::app {
namespace {

struct CheckFlags {
  objstore::DestinationSpec spec;
  std::string encryption = "none";
  bool json = false;
};

void RunCheck(CheckFlags& flags) {
  static const std::map<std::string, objstore::Encryption::Mode> kModes = {
      {"none", objstore::Encryption::Mode::kNone},
      {"aes", objstore::Encryption::Mode::kAes256},
      {"kms", objstore::Encryption::Mode::kKms}};
  std::string mode = flags.encryption;
  for (char& c : mode) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  flags.spec.encryption.mode = kModes.at(mode);  // CLI11 already checked the value
  if (!flags.spec.encryption.kms_key_id.empty() &&
      flags.spec.encryption.mode != objstore::Encryption::Mode::kKms) {
    std::cerr << "error: --kms-key-id needs --encryption kms\n";
    throw CLI::RuntimeError(2);
  }
  std::shared_ptr<http::HttpTransport> transport = http::MakeCurlTransport();
  aws::DefaultChainOptions chain;
  chain.transport = transport;
  chain.region = flags.spec.region;
  // STS never goes to --endpoint (an S3-compatible store must not see AssumeRole signed with Sluice's
  // identity).
  chain.sts_endpoint = flags.spec.sts_endpoint;
  objstore::DestinationCheckOptions options;
  options.base_credentials = aws::MakeDefaultCredentialsChain(chain);
  options.transport = transport;

  objstore::DestinationCheckResult result = objstore::CheckDestination(flags.spec, options);
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
  CLI::App* check =
      destination->add_subcommand("check",
                                  "Assume the customer's role (and verify it refuses a wrong external ID), "
                                  "then write, read, list and delete a "
                                  "probe object with the chosen encryption; names any missing permission");
  check->add_option("--bucket", flags->spec.bucket, "The customer's S3 bucket")->required();
  check->add_option("--region", flags->spec.region, "The bucket's region, e.g. eu-west-1")->required();
  check->add_option("--role", flags->spec.role_arn, "The customer's role ARN Sluice assumes")->required();
  check
      ->add_option("--external-id", flags->spec.external_id,
                   "External ID the role's trust policy requires (the project token)")
      ->required();
  check->add_option("--prefix", flags->spec.prefix, "Key prefix the pipeline writes under");
  check
      ->add_option("--encryption", flags->encryption,
                   "Server-side encryption: none, aes (SSE-S3) or kms (SSE-KMS), in any case")
      ->check(CLI::IsMember({"none", "aes", "kms"}, CLI::ignore_case));
  check->add_option("--kms-key-id", flags->spec.encryption.kms_key_id,
                    "KMS key ARN for --encryption kms (default: the aws/s3 key)");
  check->add_option("--endpoint", flags->spec.endpoint,
                    "S3-compatible endpoint URL (default: AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)");
  check->add_option(
      "--sts-endpoint", flags->spec.sts_endpoint,
      "STS endpoint URL (default: AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL, else the regional STS; "
      "never --endpoint)");
  check->add_flag("--json", flags->json, "Print one JSON object instead of the report");
  check->callback([flags] { RunCheck(*flags); });
}

}  // namespace sluice::app
