// The IAM documents a customer creates so Sluice can reach their bucket (SPEC §5; docs/security.md), in the
// shape of Mixpanel's published policies: the data policy, the KMS key policy statement (when a customer key
// is used) and the role's trust policy with the ExternalId condition.
//
// Usage:
//   aws::PolicyInputs in{.bucket = "acme-events", .kms_key_arn = "arn:aws:kms:…:key/…",
//                        .principal_arn = "arn:aws:iam::111122223333:user/sluice", .external_id = token};
//   SLUICE_ASSIGN_OR_RETURN(aws::PolicyDocuments docs, aws::GeneratePolicies(in));
//   std::cout << docs.data_policy << docs.trust_policy;   // pretty-printed JSON, 2-space indent
//
// `sluice aws policies` (src/app/cmd_aws.cc) prints them.
#pragma once

#include <optional>
#include <string>

#include "common/result.h"

namespace sluice::aws {

/// Printed in place of an ExternalId that was not given: the customer replaces it with the project token.
inline constexpr std::string_view kExternalIdPlaceholder = "<SLUICE_PROJECT_TOKEN>";
/// Printed in place of Sluice's principal when it could not be determined.
inline constexpr std::string_view kPrincipalPlaceholder = "<SLUICE_PRINCIPAL_ARN>";

struct PolicyInputs {
  std::string bucket;
  /// Customer-managed KMS key ARN; empty = SSE-S3 or the aws/s3 default key (no key policy needed).
  std::string kms_key_arn;
  /// Sluice's IAM principal (user or role ARN); empty = kPrincipalPlaceholder.
  std::string principal_arn;
  /// The external ID (SPEC §5: the project token); empty = kExternalIdPlaceholder.
  std::string external_id;
  /// Cloud Import (bucket → Sluice) needs only s3:GetObject and s3:ListBucket (and kms:Decrypt).
  bool import_only = false;
  /// The bucket's region: picks the ARN partition (cn-* → aws-cn, us-gov-* → aws-us-gov). Empty = the
  /// partition of principal_arn or kms_key_arn when given, else aws.
  std::string region;
};

struct PolicyDocuments {
  std::string data_policy;
  /// Present when kms_key_arn was given.
  std::optional<std::string> kms_policy;
  std::string trust_policy;
};

/// The ARN partition of a region: "aws-cn" for cn-*, "aws-us-gov" for us-gov-*, "aws" otherwise.
std::string_view PartitionOfRegion(std::string_view region);

/// Whether `region` has the shape of an AWS region name: two letters, one or more lower-case words, a number
/// ("us-east-1", "ap-southeast-5", "us-gov-west-1", "eu-isoe-west-1"). Not "s3" or "s3-external-1": those
/// would make "sts.<region>.amazonaws.com" another service's host.
bool IsAwsRegionName(std::string_view region);

/// Validates the inputs (bucket name rules, ARN shapes, ExternalId charset) and renders the documents.
/// Errors: kInvalidArgument naming the bad input.
Result<PolicyDocuments> GeneratePolicies(const PolicyInputs& inputs);

/// The trust-policy statement that lets `principal` assume a role only with `external_id`, as one line of
/// JSON:
/// {"Effect": "Allow", "Principal": {"AWS": "…"}, "Action": "sts:AssumeRole",
///  "Condition": {"StringEquals": {"sts:ExternalId": "…"}}}
std::string ExternalIdTrustStatement(std::string_view principal, std::string_view external_id);

/// A trust policy must name a role, not one of its sessions: "arn:aws:sts::1:assumed-role/R/s" →
/// "arn:aws:iam::1:role/R". Other ARNs are returned unchanged. (GetCallerIdentity returns the session ARN
/// when Sluice itself runs under a role.)
std::string PrincipalFromCallerArn(std::string_view caller_arn);

}  // namespace sluice::aws
