#include "aws/policy.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <vector>

namespace sluice::aws {
namespace {

namespace json = boost::json;

void Pretty(const json::value& v, std::string& out, int indent) {
  auto pad = [&](int n) { out.append(static_cast<size_t>(n) * 2, ' '); };
  switch (v.kind()) {
    case json::kind::object: {
      const auto& obj = v.get_object();
      if (obj.empty()) {
        out += "{}";
        return;
      }
      out += "{\n";
      size_t i = 0;
      for (const auto& kv : obj) {
        pad(indent + 1);
        out += json::serialize(json::value(kv.key()));
        out += ": ";
        Pretty(kv.value(), out, indent + 1);
        out += ++i < obj.size() ? ",\n" : "\n";
      }
      pad(indent);
      out += "}";
      return;
    }
    case json::kind::array: {
      const auto& arr = v.get_array();
      out += "[\n";
      for (size_t i = 0; i < arr.size(); ++i) {
        pad(indent + 1);
        Pretty(arr[i], out, indent + 1);
        out += i + 1 < arr.size() ? ",\n" : "\n";
      }
      pad(indent);
      out += "]";
      return;
    }
    default:
      out += json::serialize(v);
  }
}

std::string Render(const json::value& v) {
  std::string out;
  Pretty(v, out, 0);
  out += "\n";
  return out;
}

/// S3 bucket naming rules (general purpose buckets).
Status ValidateBucket(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) {
    return InvalidArgument(fmt::format("bucket name '{}' must be 3 to 63 characters", b));
  }
  for (char c : b) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) {
      return InvalidArgument(
          fmt::format("bucket name '{}' may only contain lower-case letters, digits, '.' and '-'", b));
    }
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(b.front()) || !alnum(b.back())) {
    return InvalidArgument(fmt::format("bucket name '{}' must start and end with a letter or digit", b));
  }
  return OkStatus();
}

Status ValidateExternalId(std::string_view id) {
  if (id.size() < 2 || id.size() > 1224) {
    return InvalidArgument("external ID must be 2 to 1224 characters");
  }
  for (char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              std::string_view("+=,.@:/_-").find(c) != std::string_view::npos;
    if (!ok) return InvalidArgument("external ID may only contain letters, digits and +=,.@:/_-");
  }
  return OkStatus();
}

}  // namespace

std::string ExternalIdTrustStatement(std::string_view principal, std::string_view external_id) {
  return fmt::format(R"({{"Effect": "Allow", "Principal": {{"AWS": "{}"}}, "Action": "sts:AssumeRole", )"
                     R"("Condition": {{"StringEquals": {{"sts:ExternalId": "{}"}}}}}})",
                     principal, external_id);
}

std::string_view PartitionOfRegion(std::string_view region) {
  if (region.starts_with("cn-")) return "aws-cn";
  if (region.starts_with("us-gov-")) return "aws-us-gov";
  return "aws";
}

bool IsAwsRegionName(std::string_view region) {
  if (region.size() > 32) return false;
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t dash = region.find('-', start);
    parts.push_back(
        region.substr(start, dash == std::string_view::npos ? std::string_view::npos : dash - start));
    if (dash == std::string_view::npos) break;
    start = dash + 1;
  }
  if (parts.size() < 3 || parts.front().size() != 2) return false;
  auto letters = [](std::string_view w) {
    return !w.empty() && std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; });
  };
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (!letters(parts[i])) return false;
  }
  const std::string_view number = parts.back();
  return !number.empty() && number.size() <= 2 &&
         std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string PrincipalFromCallerArn(std::string_view caller_arn) {
  // arn:<partition>:sts::<account>:assumed-role/<role>/<session>
  constexpr std::string_view kMarker = ":assumed-role/";
  size_t marker = caller_arn.find(kMarker);
  if (!caller_arn.starts_with("arn:") || marker == std::string_view::npos) return std::string(caller_arn);
  std::string_view head = caller_arn.substr(0, marker);  // arn:aws:sts::123
  std::string_view rest = caller_arn.substr(marker + kMarker.size());
  std::string_view role = rest.substr(0, rest.find('/'));
  size_t partition_end = head.find(':', 4);
  std::string_view partition = head.substr(4, partition_end - 4);
  std::string_view account = head.substr(head.rfind(':') + 1);
  return fmt::format("arn:{}:iam::{}:role/{}", partition, account, role);
}

Result<PolicyDocuments> GeneratePolicies(const PolicyInputs& in) {
  SLUICE_TRY(ValidateBucket(in.bucket));
  if (!in.kms_key_arn.empty() && !in.kms_key_arn.starts_with("arn:")) {
    return InvalidArgument(
        fmt::format("KMS key '{}' must be given as a key ARN "
                    "(arn:<partition>:kms:<region>:<account>:key/<id>): a key policy "
                    "statement's Resource is an ARN",
                    in.kms_key_arn));
  }
  if (!in.principal_arn.empty() && !in.principal_arn.starts_with("arn:")) {
    return InvalidArgument(fmt::format("principal '{}' must be an IAM ARN", in.principal_arn));
  }
  if (!in.external_id.empty()) SLUICE_TRY(ValidateExternalId(in.external_id));

  // S3 ARNs carry the partition of the bucket's region; without a region, the partition of an ARN we were
  // given.
  std::string partition(PartitionOfRegion(in.region));
  if (in.region.empty()) {
    for (const std::string* arn : {&in.principal_arn, &in.kms_key_arn}) {
      if (arn->starts_with("arn:")) {
        size_t end = arn->find(':', 4);
        if (end != std::string::npos && end > 4) {
          partition = arn->substr(4, end - 4);
          break;
        }
      }
    }
  }
  if (partition != "aws" && partition != "aws-cn" && partition != "aws-us-gov") {
    return InvalidArgument(
        fmt::format("unknown ARN partition '{}': expected aws, aws-cn or aws-us-gov", partition));
  }
  std::string bucket_arn = fmt::format("arn:{}:s3:::{}", partition, in.bucket);
  json::array actions = in.import_only
                            ? json::array{"s3:GetObject", "s3:ListBucket"}
                            : json::array{"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:DeleteObject"};
  json::object data_statement{
      {"Sid", in.import_only ? "SluiceImportObjectAccess" : "SluiceS3AccessStatement"},
      {"Effect", "Allow"},
      {"Action", std::move(actions)},
      {"Resource", json::array{json::string(bucket_arn), json::string(bucket_arn + "/*")}}};

  PolicyDocuments docs;
  docs.data_policy =
      Render(json::object{{"Version", "2012-10-17"}, {"Statement", json::array{data_statement}}});
  if (!in.kms_key_arn.empty()) {
    // Export writes with SSE-KMS (encrypt, data keys, re-encrypt, describe); import only decrypts.
    json::array kms_actions = in.import_only ? json::array{"kms:Decrypt", "kms:DescribeKey"}
                                             : json::array{"kms:Decrypt",
                                                           "kms:Encrypt",
                                                           "kms:GenerateDataKey",
                                                           "kms:ReEncryptTo",
                                                           "kms:GenerateDataKeyWithoutPlaintext",
                                                           "kms:DescribeKey",
                                                           "kms:ReEncryptFrom"};
    json::object kms_statement{{"Sid", "SluiceKmsStatement"},
                               {"Effect", "Allow"},
                               {"Action", std::move(kms_actions)},
                               {"Resource", json::string(in.kms_key_arn)}};
    docs.kms_policy =
        Render(json::object{{"Version", "2012-10-17"}, {"Statement", json::array{kms_statement}}});
  }
  std::string principal = in.principal_arn.empty() ? std::string(kPrincipalPlaceholder) : in.principal_arn;
  std::string external_id = in.external_id.empty() ? std::string(kExternalIdPlaceholder) : in.external_id;
  json::object trust_statement{
      {"Effect", "Allow"},
      {"Principal", json::object{{"AWS", json::string(principal)}}},
      {"Action", "sts:AssumeRole"},
      {"Condition",
       json::object{{"StringEquals", json::object{{"sts:ExternalId", json::string(external_id)}}}}}};
  docs.trust_policy =
      Render(json::object{{"Version", "2012-10-17"}, {"Statement", json::array{trust_statement}}});
  return docs;
}

}  // namespace sluice::aws
