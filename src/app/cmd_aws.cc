#include "app/cmd_aws.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "aws/policy.h"
#include "aws/sts.h"
#include "http/transport.h"

namespace sluice::app {
namespace {

struct PoliciesFlags {
  std::string bucket;
  std::string kms_key_arn;
  std::string external_id;
  std::string principal;
  std::string region;
  bool import_only = false;
  bool json = false;
};

/// Sluice's own principal via sts:GetCallerIdentity on the default chain; an Error when there are no
/// credentials or STS cannot be reached (the caller falls back to a placeholder).
Result<std::string> OwnPrincipal(const std::string& region) {
  std::shared_ptr<http::HttpTransport> transport = http::MakeCurlTransport();
  aws::DefaultChainOptions chain;
  chain.transport = transport;
  aws::EnvGetter env = aws::SystemEnv();
  aws::StsOptions sts_options;
  sts_options.region =
      !region.empty() ? region : env("AWS_REGION").value_or(env("AWS_DEFAULT_REGION").value_or("us-east-1"));
  sts_options.transport = transport;
  sts_options.retry.max_attempts = 3;
  sts_options.retry.total_timeout = std::chrono::seconds(30);
  aws::StsClient sts(sts_options, aws::MakeDefaultCredentialsChain(chain));
  SLUICE_ASSIGN_OR_RETURN(aws::CallerIdentity id, sts.GetCallerIdentity());
  return aws::PrincipalFromCallerArn(id.arn);
}

void RunPolicies(const PoliciesFlags& flags) {
  aws::PolicyInputs in;
  in.bucket = flags.bucket;
  in.kms_key_arn = flags.kms_key_arn;
  in.external_id = flags.external_id;
  in.import_only = flags.import_only;
  in.principal_arn = flags.principal;
  in.region = flags.region;
  if (in.principal_arn.empty()) {
    Result<std::string> own = OwnPrincipal(flags.region);
    if (own.ok()) {
      in.principal_arn = *own;
      std::cerr << "Principal: " << in.principal_arn
                << " (Sluice's own identity, from sts:GetCallerIdentity)\n";
    } else {
      std::cerr << "Could not determine Sluice's own AWS identity (" << own.error().ToString() << ").\n"
                << "Pass --principal <arn> or replace " << aws::kPrincipalPlaceholder
                << " with the ARN of the IAM user or role Sluice runs as.\n";
    }
  }
  Result<aws::PolicyDocuments> docs = aws::GeneratePolicies(in);
  if (!docs.ok()) {
    std::cerr << "error: " << docs.error().message << "\n";
    throw CLI::RuntimeError(2);
  }
  if (flags.json) {
    boost::json::object out{{"data_policy", boost::json::parse(docs->data_policy)},
                            {"kms_policy", docs->kms_policy ? boost::json::parse(*docs->kms_policy)
                                                            : boost::json::value(nullptr)},
                            {"trust_policy", boost::json::parse(docs->trust_policy)}};
    std::cout << boost::json::serialize(out) << "\n";
    return;
  }
  const char* what = flags.import_only ? "Cloud Import (read-only)" : "export";
  std::cout << fmt::format(
                   "# 1. Data policy ({}): IAM → Policies → Create policy → JSON, then attach it to the "
                   "role.\n",
                   what)
            << docs->data_policy << "\n";
  if (docs->kms_policy) {
    std::cout << "# 2. KMS policy for the customer-managed key: attach it to the role as well (or merge the "
                 "statement into the key policy).\n"
              << *docs->kms_policy << "\n";
  } else {
    std::cout << "# 2. KMS policy: not needed (no --kms-key-arn: SSE-S3, or SSE-KMS with the aws/s3 default "
                 "key).\n\n";
  }
  std::cout << "# 3. Trust policy: the role's Trust relationships → Edit trust policy.\n"
            << docs->trust_policy;
  if (flags.external_id.empty()) {
    std::cout
        << "\n# Replace " << aws::kExternalIdPlaceholder
        << " with the project's token: Sluice sends it as the ExternalId when it assumes the role, and the "
           "condition makes the role refuse anyone who does not (confused-deputy protection).\n";
  }
}

}  // namespace

void RegisterAwsCommands(CLI::App& app) {
  CLI::App* aws = app.add_subcommand("aws", "Helpers for a customer's AWS set-up (IAM policies)");
  aws->require_subcommand(1);
  auto flags = std::make_shared<PoliciesFlags>();
  CLI::App* policies = aws->add_subcommand(
      "policies",
      "Print the data, KMS and trust policies a customer creates so Sluice can reach their bucket");
  policies->add_option("--bucket", flags->bucket, "The customer's S3 bucket")->required();
  policies->add_option("--kms-key-arn", flags->kms_key_arn, "Customer-managed KMS key ARN (SSE-KMS)");
  policies->add_option(
      "--external-id", flags->external_id,
      "External ID the trust policy requires (default: a placeholder for the project token)");
  policies->add_option(
      "--principal", flags->principal,
      "Sluice's IAM principal ARN (default: sts:GetCallerIdentity of Sluice's own credentials)");
  policies->add_option(
      "--region", flags->region,
      "The bucket's region; cn-* and us-gov-* regions get the aws-cn / aws-us-gov ARN partition");
  policies->add_flag("--import", flags->import_only,
                     "Read-only variant for Cloud Import (GetObject, ListBucket)");
  policies->add_flag("--json", flags->json, "Print one JSON object instead of annotated documents");
  policies->callback([flags] { RunPolicies(*flags); });
}

}  // namespace sluice::app
