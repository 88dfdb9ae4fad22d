#include "storage_access/destination_check.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "aws/errors.h"
#include "aws/policy.h"
#include "aws/providers.h"
#include "aws/sts.h"
#include "common/crypto.h"
#include "objstore/gcs/gcs_object_store.h"
#include "objstore/s3/s3_object_store.h"
#include "storage_access/open.h"

namespace sluice::storage_access {
namespace {

using objstore::ObjectInfo;

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

// ---- what each provider's steps need: data, so a provider is a table plus its denial advice ----------------

/// One object step: its name in the report and the permission (IAM action / GCS permission) it exercises.
struct StepRule {
  const char* step;
  std::string_view permission;
  bool on_bucket;  // the permission is granted on the bucket (s3:ListBucket), not on its objects
};

struct ProviderRules {
  StepRule put, get, encryption, list, del;
};

constexpr ProviderRules kS3Rules{
    .put = {"put", "s3:PutObject", false},
    .get = {"get", "s3:GetObject", false},
    .encryption = {"encryption", "s3:GetObject", false},
    .list = {"list", "s3:ListBucket", true},
    .del = {"delete", "s3:DeleteObject", false},
};

constexpr ProviderRules kGcsRules{
    .put = {"put", "storage.objects.create", false},
    .get = {"get", "storage.objects.get", false},
    .encryption = {"encryption", "storage.objects.get", false},
    .list = {"list", "storage.objects.list", true},
    .del = {"delete", "storage.objects.delete", false},
};

// Azure RBAC data actions; Storage Blob Data Contributor grants all of them on the container.
constexpr ProviderRules kAzureRules{
    .put = {"put", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", false},
    .get = {"get", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", false},
    .encryption = {"encryption", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", false},
    .list = {"list", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", true},
    .del = {"delete", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete", false},
};

/// The report and the object steps every provider shares (put, get, encryption, list, delete of a probe).
class StepRunner {
 public:
  StepRunner(const ProviderRules& rules, std::string_view prefix) : rules_(rules), prefix_(TrimSlashes(prefix)) {
    result_.probe_key = ProbeKey(prefix_, RandomHex(64));
  }
  virtual ~StepRunner() = default;

 protected:
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

  /// The resource a step's permission applies to, as the provider names it.
  virtual std::string Resource(const StepRule& rule, const std::string& key) const = 0;
  /// A failed call: names the permission, the resource and what grants it when it was denied.
  virtual void FailCall(const StepRule& rule, const std::string& resource, const Error& e,
                        std::string_view what) = 0;
  /// The encryption step after a successful put (reads the probe's metadata).
  virtual void CheckEncryption(const std::string& key) = 0;

  void RunObjectSteps() {
    const std::string& key = result_.probe_key;
    const std::string payload = fmt::format("sluice destination check {}\n", RandomHex(128));

    // put
    bool put_ok = false;
    auto put = store_->Put(key, payload, {.content_type = "text/plain"});
    if (put.ok()) {
      put_ok = true;
      std::string enc = put->server_side_encryption.empty() ? "none reported" : put->server_side_encryption;
      Pass("put", fmt::format("wrote {} ({} bytes, encryption: {})", key, payload.size(), enc));
    } else {
      FailCall(rules_.put, Resource(rules_.put, key), put.error(), "writing the probe object");
    }

    // get + encryption
    if (put_ok) {
      auto got = store_->Get(key);
      if (!got.ok()) {
        FailCall(rules_.get, Resource(rules_.get, key), got.error(), "reading the probe object back");
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
      CheckEncryption(key);
    } else {
      SkipRest({"get", "encryption"}, "the probe object could not be written");
    }

    // list: runs even after a failed put, to report the list permission in the same pass.
    std::vector<ObjectInfo> listed;
    auto list = store_->ListEach(key, {}, [&](const ObjectInfo& o) {
      listed.push_back(o);
      return listed.size() < 10;
    });
    if (!list.ok()) {
      FailCall(rules_.list, Resource(rules_.list, key), list.error(), "listing the probe's prefix");
    } else if (!put_ok) {
      Pass("list", fmt::format("listing {} is allowed (the probe object was not written)", key));
    } else if (std::none_of(listed.begin(), listed.end(),
                            [&](const ObjectInfo& o) { return o.key == key; })) {
      Fail("list", fmt::format("listing prefix {} did not return the probe object {}", key, key),
           Error(ErrorCode::kPermanent, "probe not listed"));
    } else {
      Pass("list", fmt::format("listing found {}", key));
    }

    // delete: also after a failed put (S3 and GCS authorise a delete of a missing key the same way).
    Status del = store_->Delete(key);
    if (!del.ok()) {
      FailCall(rules_.del, Resource(rules_.del, key), del.error(), "deleting the probe object");
      if (put_ok) result_.steps.back().message += fmt::format(" The probe object {} was left behind.", key);
    } else {
      Pass("delete", put_ok ? fmt::format("deleted {}", key)
                            : fmt::format("deleting {} is allowed (the probe object was not written)", key));
    }
  }

  const ProviderRules& rules_;
  std::string prefix_;
  std::shared_ptr<objstore::ObjectStore> store_;
  DestinationCheckResult result_;
};

class Checker final : public StepRunner {
 public:
  Checker(const DestinationSpec& spec, const DestinationCheckOptions& options)
      : StepRunner(kS3Rules, spec.prefix), spec_(spec), options_(options) {
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
      // Where the server looked (its files, which variables it has) is the operator's to read, in the log;
      // the check's answer goes to the tenant who asked for it.
      spdlog::error("destination check: Sluice has no AWS credentials of its own: {}", own.error().message);
      Fail("assume-role",
           "Sluice has no AWS credentials of its own: the operator sets AWS_ACCESS_KEY_ID and "
           "AWS_SECRET_ACCESS_KEY, a profile (AWS_PROFILE / ~/.aws/credentials) or a web identity "
           "(AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN) for the Sluice process (the server's log says "
           "where "
           "it looked), then try again",
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
    objstore::s3::S3StoreOptions store_options;
    store_options.bucket = spec_.bucket;
    store_options.region = spec_.region;
    store_options.endpoint = spec_.endpoint;
    store_options.encryption = spec_.encryption;
    store_options.retry = options_.retry;
    auto store = objstore::s3::S3ObjectStore::Create(
        store_options,
        std::make_shared<aws::StaticCredentialsProvider>(*role, "assume-role " + spec_.role_arn), transport_);
    if (!store.ok()) {
      Fail("put", "the destination settings are invalid: " + store.error().message, store.error());
      SkipRest({"get", "encryption", "list", "delete"}, "the destination settings are invalid");
      return std::move(result_);
    }
    store_ = std::shared_ptr<objstore::ObjectStore>(std::move(store).value());
    RunObjectSteps();
    return std::move(result_);
  }

 private:
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
      spdlog::error("destination check: STS refused Sluice's own AWS credentials ({}): {}",
                    options_.base_credentials->Name(), e.ToString());
      Fail(
          "assume-role",
          fmt::format("STS refused Sluice's own AWS credentials: {}. This is the server's identity, not your "
                      "role: the operator fixes it (the server's log names the credential source)",
                      problem),
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

  std::string Resource(const StepRule& rule, const std::string& key) const override {
    return rule.on_bucket ? BucketArn() : fmt::format("{}/{}", BucketArn(), key);
  }

  // A failed S3 call: names the action, the resource and the statement to add when it was denied.
  void FailCall(const StepRule& rule, const std::string& resource, const Error& e,
                std::string_view what) override {
    const char* step = rule.step;
    const std::string_view action = rule.permission;
    if (std::string problem = aws::CredentialsProblem(e); !problem.empty()) {
      Fail(step, fmt::format("{} on {}: {}. ({})", action, resource, problem, e.ToString()), e);
      return;
    }
    if (e.code == ErrorCode::kAccessDenied) {
      std::string grant_resource = rule.on_bucket ? BucketArn() : BucketArn() + "/*";
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

  void CheckEncryption(const std::string& key) override {
    auto head = store_->Head(key);
    if (!head.ok()) {
      FailCall(rules_.encryption, Resource(rules_.encryption, key), head.error(),
               "reading the probe object's metadata");
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
  std::shared_ptr<http::HttpTransport> transport_;
  std::shared_ptr<aws::StsClient> sts_;
  std::string own_principal_;
};

/// The GCS check: Sluice's own service account, on which the customer granted roles.
class GcsChecker final : public StepRunner {
 public:
  GcsChecker(const GcsLocation& location, const CheckContext& context)
      : StepRunner(kGcsRules, location.prefix), location_(location), context_(context) {}

  DestinationCheckResult Run() {
    email_ = context_.google_identity ? context_.google_identity->Email() : "";
    result_.destination = fmt::format("gs://{}/{} as {}", location_.bucket, prefix_,
                                      email_.empty() ? "Sluice's service account" : email_);
    // The tenant binding first: nothing is sent for a bucket the project may not use.
    if (Status bound = CheckGcsBinding(location_, context_.gcs_buckets); !bound.ok()) {
      Fail("binding", bound.error().message, bound.error());
      SkipRest({"identity", "put", "get", "encryption", "list", "delete"}, "the bucket is not bound to the project");
      return std::move(result_);
    }
    if (!context_.google_identity) {
      Fail("identity",
           "Sluice has no Google identity of its own: set GOOGLE_APPLICATION_CREDENTIALS to its service "
           "account's JSON key, or run it where the GCE/GKE metadata server answers, then try again",
           Error(ErrorCode::kUnauthenticated, "no Google identity"));
      SkipRest({"put", "get", "encryption", "list", "delete"}, "Sluice has no Google identity");
      return std::move(result_);
    }
    auto token = context_.google_identity->Get();
    if (!token.ok()) {
      // Where the key is and how the exchange failed (a file path, the token host) are the operator's: the
      // answer, which a tenant may read, says whose problem it is.
      spdlog::error("destination check: no Google access token for {}: {}", context_.google_identity->Name(),
                    token.error().ToString());
      Fail("identity",
           fmt::format("Sluice could not get an access token for its Google service account{}: this is for "
                       "the server's operator to fix (the server's log names the cause; check the key named "
                       "by GOOGLE_APPLICATION_CREDENTIALS or --gcp-credentials, and that the account and key "
                       "are enabled)",
                       email_.empty() ? "" : " " + email_),
           token.error());
      SkipRest({"put", "get", "encryption", "list", "delete"}, "Sluice has no access token");
      return std::move(result_);
    }
    Pass("identity", fmt::format("Sluice authenticates as {}", email_.empty() ? context_.google_identity->Name()
                                                                               : email_));
    AccessContext ctx;
    ctx.google_identity = context_.google_identity;
    ctx.transport = context_.transport;
    ctx.retry = context_.retry;
    ctx.env = context_.env;
    // The caller checked a tenant's endpoint against the operator's policy; the check allows it here.
    if (!location_.endpoint.empty()) {
      auto policy = MakeGcsEndpointPolicy({location_.endpoint}, context_.env);
      if (policy.ok()) ctx.gcs_endpoints = std::move(policy).value();
    }
    // Rooted at the bucket, like the S3 check: the probe key carries the prefix.
    GcsLocation bare = location_;
    bare.prefix.clear();
    auto opened = Open(bare, Grant{.purpose = Purpose::kWrite, .gcs_buckets = context_.gcs_buckets}, ctx);
    if (!opened.ok()) {
      Fail("put", "the destination settings are invalid: " + opened.error().message, opened.error());
      SkipRest({"get", "encryption", "list", "delete"}, "the destination settings are invalid");
      return std::move(result_);
    }
    store_ = opened->store;
    RunObjectSteps();
    return std::move(result_);
  }

 private:
  std::string Resource(const StepRule& rule, const std::string& key) const override {
    return rule.on_bucket ? fmt::format("gs://{}", location_.bucket)
                          : fmt::format("gs://{}/{}", location_.bucket, key);
  }

  void FailCall(const StepRule& rule, const std::string& resource, const Error& e,
                std::string_view what) override {
    if (e.code == ErrorCode::kAccessDenied) {
      // GCS names the missing permission when it can; the step knows which one it exercised otherwise.
      std::string permission =
          e.provider_code.starts_with("storage.") ? e.provider_code : std::string(rule.permission);
      std::string role = objstore::gcs::RoleForPermission(permission);
      const std::string who = email_.empty() ? "Sluice's service account" : email_;
      std::string role_id;
      if (size_t open = role.find('('); open != std::string::npos) {
        role_id = role.substr(open + 1, role.find(')', open) - open - 1);
      }
      std::string msg = fmt::format("{} on {} was denied for {}: {} is missing", what, resource, who, permission);
      if (!role.empty()) msg += fmt::format(". Grant {} to {} on gs://{}", role, who, location_.bucket);
      if (!location_.kms_key_name.empty() && e.message.find("kms") != std::string::npos) {
        msg += fmt::format(". The denial mentions Cloud KMS: the Cloud Storage service agent of the bucket's "
                           "project needs roles/cloudkms.cryptoKeyEncrypterDecrypter on {}",
                           location_.kms_key_name);
      }
      msg += fmt::format(". ({})", e.ToString());
      CheckStep& s = Fail(rule.step, std::move(msg), e);
      s.action = permission;
      s.resource = resource;
      if (!role_id.empty()) {
        s.policy_statement = GcloudBindingCommand(location_.bucket, email_.empty() ? "<SLUICE_SERVICE_ACCOUNT_EMAIL>" : email_, role_id);
      }
      return;
    }
    if (e.code == ErrorCode::kUnauthenticated) {
      Fail(rule.step,
           fmt::format("{} on {}: Google refused Sluice's access token ({}). ({})", what, resource,
                       email_.empty() ? "Sluice's service account" : email_, e.ToString()),
           e);
      return;
    }
    if (e.code == ErrorCode::kNotFound) {
      Fail(rule.step,
           fmt::format("bucket gs://{} does not exist, or is not visible to {}. ({})", location_.bucket,
                       email_.empty() ? "Sluice's service account" : email_, e.ToString()),
           e);
      return;
    }
    Fail(rule.step, fmt::format("{} failed: {}", what, e.ToString()), e);
  }

  void CheckEncryption(const std::string& key) override {
    if (location_.kms_key_name.empty()) {
      Pass("encryption", "no customer-managed key requested (Google-managed encryption)");
      return;
    }
    auto head = store_->Head(key);
    if (!head.ok()) {
      FailCall(rules_.encryption, Resource(rules_.encryption, key), head.error(),
               "reading the probe object's metadata");
      return;
    }
    // GCS reports the key version: projects/…/cryptoKeys/K/cryptoKeyVersions/N.
    if (!head->kms_key_id.starts_with(location_.kms_key_name)) {
      Fail("encryption",
           fmt::format("requested kmsKeyName {} but the stored object reports '{}'", location_.kms_key_name,
                       head->kms_key_id),
           Error(ErrorCode::kPermanent, "CMEK mismatch"));
      return;
    }
    Pass("encryption", fmt::format("the object is stored with the customer-managed key {}", head->kms_key_id));
  }

  const GcsLocation& location_;
  const CheckContext& context_;
  std::string email_;
};

/// The Azure check: the customer's own service principal, to which the customer assigned a data role on the
/// container.
class AzureChecker final : public StepRunner {
 public:
  AzureChecker(const AzureLocation& location, const CheckContext& context)
      : StepRunner(kAzureRules, location.prefix), location_(location), context_(context) {}

  DestinationCheckResult Run() {
    result_.destination = fmt::format("{}/{} as service principal {}", AzureContainerUrl(location_), prefix_,
                                      location_.client_id);
    const bool read_only = context_.purpose == Purpose::kRead;
    if (read_only) role_ = kAzureReaderRole;
    AccessContext ctx;
    ctx.transport = context_.transport;
    ctx.retry = context_.retry;
    ctx.azure_env = context_.azure_env;
    // The caller checked a tenant's endpoint against the operator's policy; the check allows it here.
    if (!location_.endpoint.empty()) {
      auto policy = MakeAzureEndpointPolicy({location_.endpoint});
      if (policy.ok()) ctx.azure_endpoints = std::move(policy).value();
    }
    // Rooted at the container, like the S3 check: the probe key carries the prefix.
    AzureLocation bare = location_;
    bare.prefix.clear();
    auto opened = Open(bare, Grant{.purpose = Purpose::kWrite}, ctx);
    if (!opened.ok()) {
      Fail("identity", "the destination settings are invalid: " + opened.error().message, opened.error());
      if (read_only) {
        SkipRest({"list", "get"}, "the source settings are invalid");
      } else {
        SkipRest({"put", "get", "encryption", "list", "delete"}, "the destination settings are invalid");
      }
      return std::move(result_);
    }
    store_ = opened->store;
    // The token first: a wrong secret is named as such, not as five failed object steps.
    auto probe = store_->ListEach(result_.probe_key, {}, [](const objstore::ObjectInfo&) { return false; });
    if (!probe.ok() && probe.error().code == ErrorCode::kUnauthenticated) {
      FailIdentity(probe.error(), "identity");
      if (read_only) {
        SkipRest({"list", "get"}, "Entra ID issued no token for the service principal");
      } else {
        SkipRest({"put", "get", "encryption", "list", "delete"},
                 "Entra ID issued no token for the service principal");
      }
      return std::move(result_);
    }
    Pass("identity", fmt::format("Entra ID issued a token for the service principal {} of tenant {}",
                                 location_.client_id, location_.tenant_id));
    if (read_only) {
      RunReadSteps();
    } else {
      RunObjectSteps();
    }
    return std::move(result_);
  }

 private:
  void FailIdentity(const Error& e, const char* step) {
    Fail(step, fmt::format("{}. ({})", AzureCredentialAdvice(location_), e.ToString()), e);
  }

  /// An import's steps: list the raw prefix, then read one byte of the first blob found, or a blob that does
  /// not exist ("not found" proves reading is allowed; without the role Azure answers 403). Nothing is written.
  void RunReadSteps() {
    std::optional<objstore::ObjectInfo> first;
    auto list = store_->ListEach(location_.prefix, {}, [&](const objstore::ObjectInfo& o) {
      if (o.key.ends_with('/')) return true;  // a "folder" placeholder
      first = o;
      return false;
    });
    if (!list.ok()) {
      FailCall(rules_.list, Resource(rules_.list, location_.prefix), list.error(), "listing the prefix");
      if (list.error().code == ErrorCode::kNotFound) {
        SkipRest({"get"}, "the container does not exist");
        return;
      }
    } else {
      Pass("list", first ? fmt::format("listing '{}' is allowed; the first blob is {}", location_.prefix, first->key)
                         : fmt::format("listing '{}' is allowed; no blob is there yet", location_.prefix));
    }
    const std::string key = first ? first->key : result_.probe_key;
    auto got = first && first->size > 0 ? store_->Get(key, 0, 1) : store_->Get(key);
    if (got.ok()) {
      Pass("get", fmt::format("reading {} is allowed", key));
    } else if (!first && got.error().code == ErrorCode::kNotFound) {
      Pass("get", fmt::format("reading is allowed ({}, which does not exist, answered not found)", key));
    } else {
      FailCall(rules_.get, Resource(rules_.get, key), got.error(), "reading a blob");
    }
  }

  std::string Resource(const StepRule& rule, const std::string& key) const override {
    return rule.on_bucket ? AzureContainerUrl(location_) : AzureContainerUrl(location_) + "/" + key;
  }

  void FailCall(const StepRule& rule, const std::string& resource, const Error& e,
                std::string_view what) override {
    if (e.code == ErrorCode::kAccessDenied) {
      std::string command = AzRoleAssignmentCommand(location_, role_);
      std::string msg = fmt::format(
          "{} on {} was denied: {} is missing. Assign {} to the service principal {} on container {} of account "
          "{} (`{}`). ({})",
          what, resource, rule.permission, role_, location_.client_id, location_.container,
          location_.storage_account, command, e.ToString());
      CheckStep& s = Fail(rule.step, std::move(msg), e);
      s.action = std::string(rule.permission);
      s.resource = resource;
      s.policy_statement = std::move(command);
      return;
    }
    if (e.code == ErrorCode::kUnauthenticated) {
      FailIdentity(e, rule.step);
      return;
    }
    if (e.code == ErrorCode::kNotFound) {
      Fail(rule.step,
           fmt::format("container {} of storage account {} does not exist ({}). ({})", location_.container,
                       location_.storage_account, AzureContainerUrl(location_), e.ToString()),
           e);
      return;
    }
    Fail(rule.step, fmt::format("{} failed: {}", what, e.ToString()), e);
  }

  void CheckEncryption(const std::string&) override {
    Pass("encryption",
         "Azure Storage encrypts every blob (Microsoft-managed keys unless the account sets its own)");
  }

  const AzureLocation& location_;
  const CheckContext& context_;
  std::string_view role_ = kAzureWriterRole;  // the role a denial names
};

}  // namespace

std::string AzRoleAssignmentCommand(const AzureLocation& location) {
  return AzRoleAssignmentCommand(location, kAzureWriterRole);
}

std::string AzRoleAssignmentCommand(const AzureLocation& location, std::string_view role) {
  return fmt::format(
      "az role assignment create --assignee {} --role \"{}\" --scope "
      "\"$(az storage account show --name {} --query id --output tsv)/blobServices/default/containers/{}\"",
      location.client_id, role, location.storage_account, location.container);
}

std::string AzureCredentialAdvice(const AzureLocation& location) {
  return fmt::format(
      "Microsoft Entra ID refused the service principal {} of tenant {}: check client_secret (App registrations > "
      "the app > Certificates & secrets: the secret's Value, not its Secret ID, and not expired), client_id (the "
      "Application (client) ID) and tenant_id (the Directory (tenant) ID)",
      location.client_id, location.tenant_id);
}

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

DestinationCheckResult CheckDestination(const Location& location, const CheckContext& context) {
  if (const auto* gcs = std::get_if<GcsLocation>(&location)) return GcsChecker(*gcs, context).Run();
  if (const auto* az = std::get_if<AzureLocation>(&location)) return AzureChecker(*az, context).Run();
  if (const auto* s3 = std::get_if<S3Location>(&location)) {
    DestinationSpec spec{.bucket = s3->bucket,
                         .region = s3->region,
                         .role_arn = s3->role_arn,
                         .external_id = context.external_id,
                         .prefix = s3->prefix,
                         .encryption = s3->encryption,
                         .endpoint = s3->endpoint,
                         .sts_endpoint = s3->sts_endpoint};
    DestinationCheckOptions options{
        .base_credentials = context.aws_identity, .transport = context.transport, .retry = context.retry};
    return Checker(spec, options).Run();
  }
  DestinationCheckResult r;
  r.destination = Describe(location);
  CheckStep step;
  step.name = "put";
  step.message = "a local directory is checked by the pipeline's destination factory";
  r.steps.push_back(std::move(step));
  return r;
}

S3Location ToLocation(const DestinationSpec& spec) {
  return S3Location{.bucket = spec.bucket,
                    .region = spec.region,
                    .role_arn = spec.role_arn,
                    .prefix = spec.prefix,
                    .endpoint = spec.endpoint,
                    .encryption = spec.encryption,
                    .sts_endpoint = spec.sts_endpoint};
}

std::string GcloudBindingCommand(std::string_view bucket, std::string_view email, std::string_view role_id) {
  return fmt::format("gcloud storage buckets add-iam-policy-binding gs://{} --member=serviceAccount:{} --role={}",
                     bucket, email, role_id);
}

}  // namespace sluice::storage_access
