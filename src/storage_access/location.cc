#include "storage_access/location.h"

#include <fmt/format.h>

#include <algorithm>

#include "aws/endpoint_policy.h"
#include "aws/policy.h"
#include "azure/credentials.h"
#include "objstore/azure/blob_request.h"
#include "objstore/gcs/gcs_request.h"
#include "storage_access/static_credentials.h"

namespace sluice::storage_access {
namespace {

constexpr size_t kMaxDestinationPrefixBytes = 512;
constexpr size_t kMaxSourcePrefixBytes = 1024;  // S3's and GCS's longest key
constexpr size_t kMaxEndpointBytes = 2048;
constexpr size_t kMaxKmsKeyIdBytes = 2048;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || IsDigit(c); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool HasControlChar(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};

std::string WithPrefix(std::string_view prefix) {
  return prefix.empty() ? std::string() : "/" + std::string(prefix);
}

}  // namespace

std::string_view ToString(Provider p) {
  switch (p) {
    case Provider::kS3: return "s3";
    case Provider::kGcs: return "gcs";
    case Provider::kLocal: return "local";
    case Provider::kAzure: return "azure";
  }
  return "s3";
}

Provider ProviderOf(const Location& location) {
  return std::visit(Overloaded{[](const S3Location&) { return Provider::kS3; },
                               [](const GcsLocation&) { return Provider::kGcs; },
                               [](const LocalLocation&) { return Provider::kLocal; },
                               [](const AzureLocation&) { return Provider::kAzure; }},
                    location);
}

std::string Describe(const Location& location) {
  return std::visit(
      Overloaded{[](const S3Location& l) {
                   return fmt::format("s3://{}{} ({})", l.bucket, WithPrefix(l.prefix), l.region);
                 },
                 [](const GcsLocation& l) { return fmt::format("gs://{}{}", l.bucket, WithPrefix(l.prefix)); },
                 [](const LocalLocation& l) { return "local:" + l.path; },
                 [](const AzureLocation& l) { return AzureContainerUrl(l) + WithPrefix(l.prefix); }},
      location);
}

std::string EffectiveExternalId(const store::Project& project) {
  return project.external_id.empty() ? project.token : project.external_id;
}

Status ValidateS3BucketName(std::string_view bucket, std::string_view field) {
  bool ok = bucket.size() >= 3 && bucket.size() <= 63 && IsLowerAlnum(bucket.front()) &&
            IsLowerAlnum(bucket.back()) && std::all_of(bucket.begin(), bucket.end(), [](char c) {
              return IsLowerAlnum(c) || c == '-' || c == '.';
            });
  if (ok) return OkStatus();
  return InvalidArgument(
      fmt::format("{} '{}' is not a valid bucket name: 3 to 63 lower-case letters, digits, dots and hyphens, "
                  "starting and ending with a letter or digit (the name only, without s3:// or a path)",
                  field, bucket));
}

Status ValidateGcsBucketName(std::string_view bucket, std::string_view field) {
  if (objstore::gcs::ValidateBucketName(bucket).ok()) return OkStatus();
  return InvalidArgument(
      fmt::format("{} '{}' is not a valid GCS bucket name: 3 to 63 lower-case letters, digits, '-', '_' and "
                  "'.', starting and ending with a letter or digit (the name only, without gs:// or a path)",
                  field, bucket));
}

Status ValidateAwsRegion(std::string_view region, std::string_view field) {
  bool ok = !region.empty() && region.size() <= 32 &&
            std::all_of(region.begin(), region.end(), [](char c) { return IsLowerAlnum(c) || c == '-'; });
  if (ok) return OkStatus();
  return InvalidArgument(
      fmt::format("{} '{}' is not a region name such as us-east-1 or eu-west-1", field, region));
}

Status ValidateGcsRegion(std::string_view region, std::string_view field) {
  bool ok = !region.empty() && region.size() <= 64 &&
            std::all_of(region.begin(), region.end(), [](char c) { return IsAlnum(c) || c == '-'; });
  if (ok) return OkStatus();
  return InvalidArgument(fmt::format(
      "{} '{}' is not a GCS location such as US, EU, europe-west1 or nam4", field, region));
}

Status ValidateRoleArn(std::string_view arn, std::string_view field) {
  auto bad = [&] {
    return InvalidArgument(fmt::format(
        "{} '{}' is not an IAM role ARN: expected arn:aws:iam::<12-digit account id>:role/<role name>", field,
        arn));
  };
  std::string_view s = arn;
  if (s.substr(0, 4) != "arn:") return bad();
  s.remove_prefix(4);
  size_t colon = s.find(':');
  if (colon == 0 || colon == std::string_view::npos) return bad();
  for (char c : s.substr(0, colon)) {
    if (!IsLowerAlnum(c) && c != '-') return bad();
  }
  s.remove_prefix(colon + 1);
  if (s.substr(0, 5) != "iam::") return bad();
  s.remove_prefix(5);
  if (s.size() < 13 || !std::all_of(s.begin(), s.begin() + 12, IsDigit) || s[12] != ':') return bad();
  s.remove_prefix(13);
  if (s.substr(0, 5) != "role/" || s.size() == 5 || s.size() > 5 + 512) return bad();
  s.remove_prefix(5);
  for (char c : s) {
    // IAM role names and paths: alphanumerics and +=,.@_- plus '/' between path segments.
    if (!IsAlnum(c) && std::string_view("+=,.@_-/").find(c) == std::string_view::npos) return bad();
  }
  if (s.back() == '/') return bad();
  return OkStatus();
}

Status ValidateDestinationPrefix(std::string_view prefix, std::string_view field) {
  if (prefix.size() > kMaxDestinationPrefixBytes) {
    return InvalidArgument(fmt::format("{} is {} bytes long; at most {} are allowed", field, prefix.size(),
                                       kMaxDestinationPrefixBytes));
  }
  if (HasControlChar(prefix) || prefix.find('\\') != std::string_view::npos) {
    return InvalidArgument(fmt::format(
        "{} contains a control character or backslash: use letters, digits and / between parts", field));
  }
  if (prefix.empty()) return OkStatus();
  size_t pos = 0;
  while (true) {
    size_t slash = prefix.find('/', pos);
    std::string_view segment =
        prefix.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    if (segment.empty() || segment == "." || segment == "..") {
      return InvalidArgument(
          fmt::format("{} '{}' has an empty, '.' or '..' part: write it as parts separated by single "
                      "slashes, e.g. exports/mixpanel",
                      field, prefix));
    }
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  return OkStatus();
}

Status ValidateSourcePrefix(std::string_view prefix, std::string_view field) {
  if (prefix.size() > kMaxSourcePrefixBytes) {
    return InvalidArgument(fmt::format("'{}' is longer than {} bytes, the longest object key", field,
                                       kMaxSourcePrefixBytes));
  }
  if (HasControlChar(prefix)) {
    return InvalidArgument(fmt::format("'{}' contains a control character", field));
  }
  return OkStatus();
}

Status ValidateEndpointUrl(std::string_view endpoint, std::string_view field) {
  if (endpoint.size() > kMaxEndpointBytes) return InvalidArgument(fmt::format("{} is too long", field));
  // Scheme, host and port only (no user info, path or query).
  auto normalized = aws::NormalizeEndpoint(endpoint, field);
  if (!normalized.ok()) return normalized.error();
  return OkStatus();
}

Status ValidateAwsKmsKeyId(std::string_view key, std::string_view field) {
  if (key.size() > kMaxKmsKeyIdBytes || HasControlChar(key) || key.find(' ') != std::string_view::npos) {
    return InvalidArgument(fmt::format(
        "{} is not a KMS key id or ARN (too long, or contains spaces or control characters)", field));
  }
  return OkStatus();
}

Status ValidateGcsKmsKeyName(std::string_view name, std::string_view field) {
  // projects/P/locations/L/keyRings/R/cryptoKeys/K
  static constexpr std::string_view kParts[] = {"projects", "locations", "keyRings", "cryptoKeys"};
  std::string_view s = name;
  bool ok = name.size() <= 1024 && !HasControlChar(name);
  for (std::string_view part : kParts) {
    if (!ok) break;
    if (!s.starts_with(part) || s.size() <= part.size() || s[part.size()] != '/') {
      ok = false;
      break;
    }
    s.remove_prefix(part.size() + 1);
    size_t slash = s.find('/');
    std::string_view value = s.substr(0, slash);
    ok = !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
      return IsAlnum(c) || c == '-' || c == '_' || c == '.';
    });
    s = slash == std::string_view::npos ? std::string_view() : s.substr(slash + 1);
    if (part != "cryptoKeys" && slash == std::string_view::npos) ok = false;
    if (part == "cryptoKeys" && slash != std::string_view::npos) ok = false;
  }
  if (ok) return OkStatus();
  return InvalidArgument(fmt::format(
      "{} '{}' is not a Cloud KMS key name: expected projects/<project>/locations/<location>/keyRings/<ring>/"
      "cryptoKeys/<key>",
      field, name.substr(0, 300)));
}

std::string NormalizeDestinationPrefix(std::string_view prefix) {
  while (!prefix.empty() && prefix.front() == '/') prefix.remove_prefix(1);
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  return std::string(prefix);
}

Status ValidateAzureStorageAccount(std::string_view account, std::string_view field) {
  if (objstore::azure::ValidateAccountName(account).ok()) return OkStatus();
  return InvalidArgument(fmt::format(
      "{} '{}' is not a valid storage account name: 3 to 24 lower-case letters and digits (the name only, as in "
      "https://NAME.blob.core.windows.net)",
      field, account.substr(0, 80)));
}

Status ValidateAzureContainerName(std::string_view container, std::string_view field) {
  if (objstore::azure::ValidateContainerName(container).ok()) return OkStatus();
  return InvalidArgument(
      fmt::format("{} '{}' is not a valid container name: 3 to 63 lower-case letters, digits and single hyphens, "
                  "starting and ending with a letter or digit",
                  field, container.substr(0, 80)));
}

Status ValidateAzureSourcePrefix(std::string_view prefix, std::string_view field) {
  SLUICE_TRY(ValidateSourcePrefix(prefix, field));
  bool dot_part = false;
  for (size_t pos = 0; pos <= prefix.size();) {
    size_t slash = prefix.find('/', pos);
    std::string_view part = prefix.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    if (part == "." || part == "..") dot_part = true;
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  if (dot_part || prefix.find('\\') != std::string_view::npos) {
    return InvalidArgument(fmt::format(
        "'{}' '{}' has a '.' or '..' part or a backslash: give the blob-name prefix as written in the container, "
        "e.g. exports/2024-",
        field, prefix.substr(0, 200)));
  }
  return OkStatus();
}

std::string AzureContainerUrl(const AzureLocation& l) {
  if (l.endpoint.empty()) return fmt::format("https://{}.blob.core.windows.net/{}", l.storage_account, l.container);
  return fmt::format("{}/{}/{}", l.endpoint, l.storage_account, l.container);
}

Status Validate(const Location& location, Role role, std::string_view field_prefix, std::string* bad_field) {
  std::string failed;
  auto check = [&](Status s, std::string_view name) -> Status {
    if (!s.ok()) failed = fmt::format("{}{}", field_prefix, name);
    return s;
  };
  auto field = [&](std::string_view name) { return fmt::format("{}{}", field_prefix, name); };
  auto prefix_rule = [&](std::string_view prefix, std::string_view name) {
    return role == Role::kDestination ? ValidateDestinationPrefix(prefix, field(name))
                                      : ValidateSourcePrefix(prefix, field(name));
  };
  Status result = std::visit(
      Overloaded{
          [&](const S3Location& l) -> Status {
            SLUICE_TRY(check(ValidateS3BucketName(l.bucket, field("s3_bucket")), "s3_bucket"));
            SLUICE_TRY(check(ValidateAwsRegion(l.region, field("s3_region")), "s3_region"));
            if (!l.credential.empty()) {
              // A static credential replaces the role: naming both is ambiguous.
              if (!l.role_arn.empty()) {
                failed = field("s3_role");
                return InvalidArgument(fmt::format("{} and {} exclude each other: give the role Sluice assumes or "
                                                   "the named static credential, not both",
                                                   field("s3_role"), field("s3_credential")));
              }
              SLUICE_TRY(check(ValidateCredentialName(l.credential, field("s3_credential")), "s3_credential"));
            } else {
              SLUICE_TRY(check(ValidateRoleArn(l.role_arn, field("s3_role")), "s3_role"));
              // The role is assumed at the STS endpoint of this region (sts.<region>.amazonaws.com).
              if (l.endpoint.empty() && !aws::IsAwsRegionName(l.region)) {
                failed = field("s3_region");
                return InvalidArgument(
                    fmt::format("{} '{}' is not an AWS region such as us-east-1 or eu-west-1",
                                field("s3_region"), l.region));
              }
            }
            SLUICE_TRY(check(prefix_rule(l.prefix, "s3_prefix"), "s3_prefix"));
            if (!l.endpoint.empty()) {
              SLUICE_TRY(check(ValidateEndpointUrl(l.endpoint, field("s3_endpoint")), "s3_endpoint"));
            }
            return check(ValidateAwsKmsKeyId(l.encryption.kms_key_id, field("s3_kms_key_id")), "s3_kms_key_id");
          },
          [&](const GcsLocation& l) -> Status {
            SLUICE_TRY(check(ValidateGcsBucketName(l.bucket, field("gcs_bucket")), "gcs_bucket"));
            if (!l.region.empty()) {
              SLUICE_TRY(check(ValidateGcsRegion(l.region, field("gcs_region")), "gcs_region"));
            }
            SLUICE_TRY(check(prefix_rule(l.prefix, "gcs_prefix"), "gcs_prefix"));
            if (!l.endpoint.empty()) {
              SLUICE_TRY(check(ValidateEndpointUrl(l.endpoint, field("gcs_endpoint")), "gcs_endpoint"));
            }
            if (!l.kms_key_name.empty()) {
              SLUICE_TRY(
                  check(ValidateGcsKmsKeyName(l.kms_key_name, field("gcs_kms_key_name")), "gcs_kms_key_name"));
            }
            return OkStatus();
          },
          [&](const LocalLocation&) -> Status { return OkStatus(); },
          [&](const AzureLocation& l) -> Status {
            SLUICE_TRY(check(ValidateAzureStorageAccount(l.storage_account, field("storage_account")),
                             "storage_account"));
            SLUICE_TRY(check(ValidateAzureContainerName(l.container, field("container_name")), "container_name"));
            SLUICE_TRY(check(role == Role::kDestination ? prefix_rule(l.prefix, "prefix")
                                                         : ValidateAzureSourcePrefix(l.prefix, field("prefix")),
                             "prefix"));
            // The principal's fields, each named as the caller's API names it.
            Status sp = azure::ValidateServicePrincipal(
                {.tenant_id = l.tenant_id, .client_id = l.client_id, .client_secret = l.client_secret});
            if (!sp.ok()) {
              std::string name = sp.error().message.starts_with("tenant_id")   ? "tenant_id"
                                 : sp.error().message.starts_with("client_id") ? "client_id"
                                                                         : "client_secret";
              failed = field(name);
              return InvalidArgument(fmt::format("{}{}", field_prefix, sp.error().message));
            }
            if (!l.endpoint.empty()) {
              SLUICE_TRY(check(ValidateEndpointUrl(l.endpoint, field("azure_endpoint")), "azure_endpoint"));
            }
            return OkStatus();
          }},
      location);
  if (!result.ok() && bad_field) *bad_field = failed;
  return result;
}

}  // namespace sluice::storage_access
