#include "objstore/destination_check.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "aws/errors.h"
#include "aws/policy.h"
#include "aws/providers.h"
#include "aws/sts.h"
#include "common/crypto.h"
#include "objstore/s3/s3_object_store.h"

namespace sluice::objstore {
namespace {

constexpr char kSessionName[] = "sluice-destination-check";

std::string TrimSlashes(std::string_view s) {
  while (!s.empty() && s.front() == '/') s.remove_prefix(1);
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return std::string(s);
}

std::string_view SseValue(Encryption::Mode mode) {
  switch (mode) {
    case Encryption::Mode::kNone:
      return "";
    case Encryption::Mode::kAes256:
      return "AES256";
    case Encryption::Mode::kKms:
      return "aws:kms";
  }
  return "";
}

bool MentionsKms(const Error& e) {
  return e.message.find("KMS") != std::string::npos || e.message.find("kms") != std::string::npos ||
         e.provider_code.starts_with("KMS");
}

class Checker {
 public:
  Checker(const DestinationSpec& spec, const DestinationCheckOptions& options)
      : spec_(spec), options_(options), prefix_(TrimSlashes(spec.prefix)) {
    result_.probe_key = ProbeKey(prefix_, RandomHex(64));
    result_.destination =
        fmt::format("s3://{}/{} ({}) via role {}", spec_.bucket, prefix_, spec_.region, spec_.role_arn);
    transport_ = options_.transport ? options_.transport
                                    : std::shared_ptr<http::HttpTransport>(http::MakeCurlTransport());
  }

  DestinationCheckResult Run() {
    if (!options_.base_credentials) {
      Fail("assume-role", "no credentials for Sluice's own identity were configured", {});
      SkipRest({"external-id", "put", "get", "encryption", "list", "delete"}, "Sluice has no AWS identity");
      return std::move(result_);
    }
    aws::StsOptions sts_options;
    sts_options.region = spec_.region.empty() ? "us-east-1" : spec_.region;
    sts_options.transport = transport_;
    sts_options.endpoint = spec_.sts_endpoint;  // never spec_.endpoint (see destination_check.h)
    sts_options.retry = options_.retry;
    sts_ = std::make_shared<aws::StsClient>(sts_options, options_.base_credentials);

    // No identity at all is a server set-up problem, not something STS rejected.
    if (auto own = options_.base_credentials->Get();
        !own.ok() && own.error().code == ErrorCode::kUnauthenticated) {
      Fail("assume-role",
           fmt::format(
               "Sluice has no AWS credentials of its own: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
               "a profile (AWS_PROFILE / ~/.aws/credentials) or a web identity (AWS_WEB_IDENTITY_TOKEN_FILE "
               "and AWS_ROLE_ARN) for the Sluice process, then try again. ({})",
               own.error().message),
           own.error());
      SkipRest({"external-id", "put", "get", "encryption", "list", "delete"},
               "Sluice has no AWS credentials");
      return std::move(result_);
    }

    auto role = AssumeRole();
    CheckExternalIdEnforced();
    if (!role) {
      SkipRest({"put", "get", "encryption", "list", "delete"}, "the role could not be assumed");
      return std::move(result_);
    }
    s3::S3StoreOptions store_options;
    store_options.bucket = spec_.bucket;
    store_options.region = spec_.region;
    store_options.endpoint = spec_.endpoint;
    store_options.encryption = spec_.encryption;
    store_options.retry = options_.retry;
    auto store = s3::S3ObjectStore::Create(
        store_options,
        std::make_shared<aws::StaticCredentialsProvider>(*role, "assume-role " + spec_.role_arn), transport_);
    if (!store.ok()) {
      Fail("put", "the destination settings are invalid: " + store.error().message, store.error());
      SkipRest({"get", "encryption", "list", "delete"}, "the destination settings are invalid");
      return std::move(result_);
    }
    store_ = std::move(store).value();
    RunObjectSteps();
    return std::move(result_);
  }

 private:
  CheckStep& Add(std::string name, bool ok, std::string message) {
    CheckStep s;
    s.name = std::move(name);
    s.ok = ok;
    s.message = std::move(message);
    result_.steps.push_back(std::move(s));
    return result_.steps.back();
  }
  void Pass(std::string name, std::string message) { Add(std::move(name), true, std::move(message)); }
  CheckStep& Fail(std::string name, std::string message, const Error& e) {
    CheckStep& s = Add(std::move(name), false, std::move(message));
    if (!e.message.empty() || e.code != ErrorCode::kInternal)
      s.error_code = std::string(ErrorCodeName(e.code));
    return s;
  }
  void SkipRest(std::initializer_list<const char*> names, const std::string& why) {
    for (const char* n : names) {
      CheckStep& s = Add(n, false, "skipped: " + why);
      s.skipped = true;
    }
  }

  std::string OwnPrincipal() {
    if (own_principal_.empty()) {
      auto id = sts_->GetCallerIdentity();
      own_principal_ = id.ok() ? aws::PrincipalFromCallerArn(id->arn) : "Sluice's AWS principal";
    }
    return own_principal_;
  }

  std::string TrustStatement() { return aws::ExternalIdTrustStatement(OwnPrincipal(), spec_.external_id); }

  std::string BucketArn() const {
    return fmt::format("arn:{}:s3:::{}", aws::PartitionOfRegion(spec_.region), spec_.bucket);
  }

  std::optional<aws::Credentials> AssumeRole() {
    aws::AssumeRoleRequest req;
    req.role_arn = spec_.role_arn;
    req.session_name = kSessionName;
    req.external_id = spec_.external_id;
    req.duration_seconds = 900;  // the shortest STS allows: the check needs seconds
    auto assumed = sts_->AssumeRole(req);
    if (assumed.ok()) {
      Pass("assume-role", fmt::format("assumed {} with external ID {} as {}", spec_.role_arn,
                                      spec_.external_id, assumed->assumed_role_arn));
      return assumed->credentials;
    }
    const Error& e = assumed.error();
    if (std::string problem = aws::CredentialsProblem(e); !problem.empty()) {
      Fail("assume-role",
           fmt::format("STS refused Sluice's own AWS credentials ({}): {}. ({})",
                       options_.base_credentials->Name(), problem, e.ToString()),
           e);
    } else if (e.code == ErrorCode::kAccessDenied) {
      CheckStep& s = Fail(
          "assume-role",
          fmt::format(
              "{} may not assume {} with external ID {}. The role's trust policy must allow sts:AssumeRole "
              "for {} with Condition StringEquals sts:ExternalId = {}, and Sluice's own IAM policy must "
              "allow sts:AssumeRole on the role. ({})",
              OwnPrincipal(), spec_.role_arn, spec_.external_id, OwnPrincipal(), spec_.external_id,
              e.ToString()),
          e);
      s.action = "sts:AssumeRole";
      s.resource = spec_.role_arn;
      s.policy_statement = TrustStatement();
    } else {
      Fail("assume-role", fmt::format("could not assume {}: {}", spec_.role_arn, e.ToString()), e);
    }
    return std::nullopt;
  }

  void CheckExternalIdEnforced() {
    auto enforced = aws::RoleRequiresExternalId(*sts_, spec_.role_arn, kSessionName);
    if (enforced.ok() && *enforced) {
      Pass("external-id", fmt::format("{} refused a wrong external ID", spec_.role_arn));
      return;
    }
    if (enforced.ok()) {
      CheckStep& s = Fail("external-id",
                          fmt::format("the trust policy of {} does not require sts:ExternalId; add Condition "
                                      "StringEquals sts:ExternalId = {} (confused-deputy protection)",
                                      spec_.role_arn, spec_.external_id),
                          Error(ErrorCode::kPermanent, "external ID not enforced"));
      s.error_code.clear();
      s.action = "sts:AssumeRole";
      s.resource = spec_.role_arn;
      s.policy_statement = TrustStatement();
      return;
    }
    Fail("external-id",
         fmt::format("could not verify that {} refuses a wrong external ID: {}", spec_.role_arn,
                     enforced.error().ToString()),
         enforced.error());
  }

  // A failed S3 call: names the action, the resource and the statement to add when it was denied.
  void FailS3(const char* step, std::string_view action, const std::string& resource, const Error& e,
              std::string_view what) {
    if (std::string problem = aws::CredentialsProblem(e); !problem.empty()) {
      Fail(step, fmt::format("{} on {}: {}. ({})", action, resource, problem, e.ToString()), e);
      return;
    }
    if (e.code == ErrorCode::kAccessDenied) {
      std::string grant_resource = action == "s3:ListBucket" ? BucketArn() : BucketArn() + "/*";
      std::string msg = fmt::format("{} on {} was denied for {}. Add to the role's permission policy: {}",
                                    action, resource, spec_.role_arn, AllowStatement(action, grant_resource));
      if (MentionsKms(e) && spec_.encryption.mode == Encryption::Mode::kKms) {
        msg += fmt::format(
            ". The denial mentions KMS: the key policy of {} must allow kms:GenerateDataKey, kms:Encrypt and "
            "kms:Decrypt for the role",
            spec_.encryption.kms_key_id.empty() ? "the aws/s3 key" : spec_.encryption.kms_key_id);
      }
      msg += fmt::format(". ({})", e.ToString());
      CheckStep& s = Fail(step, std::move(msg), e);
      s.action = std::string(action);
      s.resource = resource;
      s.policy_statement = AllowStatement(action, grant_resource);
      return;
    }
    if (e.code == ErrorCode::kNotFound && e.provider_code == "NoSuchBucket") {
      Fail(
          step,
          fmt::format("bucket {} does not exist (region {}). ({})", spec_.bucket, spec_.region, e.ToString()),
          e);
      return;
    }
    Fail(step, fmt::format("{} failed: {}", what, e.ToString()), e);
  }

  void RunObjectSteps() {
    const std::string& key = result_.probe_key;
    const std::string object_arn = fmt::format("{}/{}", BucketArn(), key);
    const std::string bucket_arn = BucketArn();
    const std::string payload = fmt::format("sluice destination check {}\n", RandomHex(128));

    // put
    bool put_ok = false;
    auto put = store_->Put(key, payload, {.content_type = "text/plain"});
    if (put.ok()) {
      put_ok = true;
      std::string enc = put->server_side_encryption.empty() ? "none reported" : put->server_side_encryption;
      Pass("put", fmt::format("wrote {} ({} bytes, encryption: {})", key, payload.size(), enc));
    } else {
      FailS3("put", "s3:PutObject", object_arn, put.error(), "writing the probe object");
    }

    // get + encryption
    if (put_ok) {
      auto got = store_->Get(key);
      if (!got.ok()) {
        FailS3("get", "s3:GetObject", object_arn, got.error(), "reading the probe object back");
      } else if (*got != payload) {
        Fail("get",
             fmt::format(
                 "read back {} bytes that differ from the {} bytes written (a proxy or the store altered "
                 "the object)",
                 got->size(), payload.size()),
             Error(ErrorCode::kPermanent, "content mismatch"));
      } else {
        Pass("get", fmt::format("read {} back; {} bytes match", key, payload.size()));
      }
      CheckEncryption(key, object_arn);
    } else {
      SkipRest({"get", "encryption"}, "the probe object could not be written");
    }

    // list: runs even after a failed put, to report s3:ListBucket in the same pass.
    std::vector<ObjectInfo> listed;
    auto list = store_->ListEach(key, {}, [&](const ObjectInfo& o) {
      listed.push_back(o);
      return listed.size() < 10;
    });
    if (!list.ok()) {
      FailS3("list", "s3:ListBucket", bucket_arn, list.error(), "listing the probe's prefix");
    } else if (!put_ok) {
      Pass("list", fmt::format("listing {} is allowed (the probe object was not written)", key));
    } else if (std::none_of(listed.begin(), listed.end(),
                            [&](const ObjectInfo& o) { return o.key == key; })) {
      Fail("list", fmt::format("listing prefix {} did not return the probe object {}", key, key),
           Error(ErrorCode::kPermanent, "probe not listed"));
    } else {
      Pass("list", fmt::format("listing found {}", key));
    }

    // delete: also after a failed put (S3 authorises a delete of a missing key the same way).
    Status del = store_->Delete(key);
    if (!del.ok()) {
      FailS3("delete", "s3:DeleteObject", object_arn, del.error(), "deleting the probe object");
      if (put_ok) result_.steps.back().message += fmt::format(" The probe object {} was left behind.", key);
    } else {
      Pass("delete", put_ok ? fmt::format("deleted {}", key)
                            : fmt::format("deleting {} is allowed (the probe object was not written)", key));
    }
  }

  void CheckEncryption(const std::string& key, const std::string& object_arn) {
    auto head = store_->Head(key);
    if (!head.ok()) {
      FailS3("encryption", "s3:GetObject", object_arn, head.error(), "reading the probe object's metadata");
      return;
    }
    std::string_view want = SseValue(spec_.encryption.mode);
    if (want.empty()) {
      Pass("encryption", head->server_side_encryption.empty()
                             ? "no server-side encryption requested or reported"
                             : fmt::format("no encryption requested; the bucket's default applied {}",
                                           head->server_side_encryption));
      return;
    }
    if (head->server_side_encryption != want) {
      Fail("encryption",
           fmt::format("requested x-amz-server-side-encryption {} but the stored object reports '{}'", want,
                       head->server_side_encryption),
           Error(ErrorCode::kPermanent, "encryption mismatch"));
      return;
    }
    if (spec_.encryption.mode == Encryption::Mode::kKms && !spec_.encryption.kms_key_id.empty() &&
        head->kms_key_id != spec_.encryption.kms_key_id) {
      // S3 reports the key ARN; a configured key id/alias may be written differently, so compare by suffix.
      if (!head->kms_key_id.ends_with(spec_.encryption.kms_key_id)) {
        Fail("encryption",
             fmt::format("requested KMS key {} but the stored object reports key '{}'",
                         spec_.encryption.kms_key_id, head->kms_key_id),
             Error(ErrorCode::kPermanent, "KMS key mismatch"));
        return;
      }
    }
    Pass("encryption", fmt::format("the object is stored with {}{}", want,
                                   head->kms_key_id.empty() ? "" : " (key " + head->kms_key_id + ")"));
  }

  const DestinationSpec& spec_;
  const DestinationCheckOptions& options_;
  std::string prefix_;
  std::shared_ptr<http::HttpTransport> transport_;
  std::shared_ptr<aws::StsClient> sts_;
  std::unique_ptr<s3::S3ObjectStore> store_;
  std::string own_principal_;
  DestinationCheckResult result_;
};

}  // namespace

std::string ProbeKey(std::string_view prefix, std::string_view suffix) {
  std::string p = TrimSlashes(prefix);
  return fmt::format("{}{}.sluice-probe-{}", p, p.empty() ? "" : "/", suffix);
}

std::string AllowStatement(std::string_view action, std::string_view resource) {
  return fmt::format(R"({{"Effect": "Allow", "Action": "{}", "Resource": "{}"}})", action, resource);
}

bool DestinationCheckResult::ok() const {
  return !steps.empty() && std::all_of(steps.begin(), steps.end(), [](const CheckStep& s) { return s.ok; });
}

std::string DestinationCheckResult::ToText() const {
  std::string out = fmt::format("Destination check of {}\n", destination);
  int failed = 0;
  for (const auto& s : steps) {
    const char* tag = s.ok ? "ok  " : (s.skipped ? "skip" : "FAIL");
    if (!s.ok && !s.skipped) ++failed;
    out += fmt::format("  [{}] {:<11} {}\n", tag, s.name, s.message);
    if (!s.policy_statement.empty())
      out += fmt::format("         {:<11} statement: {}\n", "", s.policy_statement);
  }
  out += ok() ? "Result: all checks passed\n"
              : fmt::format("Result: FAILED ({} of {} steps failed)\n", failed, steps.size());
  return out;
}

std::string DestinationCheckResult::ToJson() const {
  boost::json::array arr;
  for (const auto& s : steps) {
    arr.push_back(boost::json::object{{"name", s.name},
                                      {"ok", s.ok},
                                      {"skipped", s.skipped},
                                      {"message", s.message},
                                      {"action", s.action},
                                      {"resource", s.resource},
                                      {"policy_statement", s.policy_statement},
                                      {"error_code", s.error_code}});
  }
  boost::json::object o{{"ok", ok()}, {"destination", destination}, {"probe_key", probe_key}, {"steps", arr}};
  return boost::json::serialize(o);
}

DestinationCheckResult CheckDestination(const DestinationSpec& spec, const DestinationCheckOptions& options) {
  return Checker(spec, options).Run();
}

}  // namespace sluice::objstore
