#include "pipeline/azure_e2e_support.h"

#include <fmt/format.h>

#include <cstdlib>

#include "azure/credentials.h"
#include "azure/executor.h"
#include "common/crypto.h"
#include "objstore/azure/azure_blob_store.h"

namespace sluice::testing::e2e {

AzureE2e::AzureE2e() {
  dir_ = std::filesystem::temp_directory_path() / ("sluice-azure-e2e-" + RandomHex(64));
  std::filesystem::create_directories(dir_);
  cert_ = MakeLoopbackCert(dir_.string());
  AzuriteServer::Options ao;
  ao.cert_path = cert_.cert_path;
  ao.key_path = cert_.key_path;
  auto azurite = AzuriteServer::Start(ao);
  if (!azurite.ok()) {
    error_ = "Azurite could not start: " + azurite.error().ToString();
    return;
  }
  azurite_ = std::move(azurite).value();
  entra_ = std::make_unique<EntraTokenEndpoint>(kAzureTenant, kAzureClient, kAzureSecret);
  http::TransportOptions tls;
  tls.ca_bundle = cert_.cert_path;
  transport_ = http::MakeCurlTransport(tls);
  if (Status created = CreateContainer(kAzureContainer); !created.ok()) {
    error_ = "container: " + created.error().ToString();
    return;
  }
  // The operator's Entra ID authority; no AWS or Google identity at all.
  setenv("AZURE_AUTHORITY_HOST", entra_->Authority().c_str(), 1);
  for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                        "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS",
                        "GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST"}) {
    unsetenv(v);
  }
  setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

AzureE2e::~AzureE2e() {
  entra_.reset();
  azurite_.reset();
  transport_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string AzureE2e::Origin() const { return fmt::format("https://127.0.0.1:{}", azurite_->port()); }

std::vector<std::string> AzureE2e::ServeArgs(std::vector<std::string> extra,
                                             const std::vector<std::string>& also_allowed) const {
  extra.insert(extra.end(), {"--allow-azure-endpoint", Origin()});
  for (const auto& origin : also_allowed) extra.insert(extra.end(), {"--allow-azure-endpoint", origin});
  extra.insert(extra.end(), {"--ca-bundle", cert_.cert_path});
  return extra;
}

Params AzureE2e::PipelineParams(const std::string& secret, const std::string& endpoint) const {
  return {{"type", "azure-raw"},
          {"storage_account", AzuriteServer::kAccount},
          {"container_name", kAzureContainer},
          {"client_id", kAzureClient},
          {"client_secret", secret},
          {"tenant_id", kAzureTenant},
          {"azure_endpoint", endpoint.empty() ? Origin() : endpoint}};
}

Status AzureE2e::CreateContainer(const std::string& container) const {
  azure::Executor::Options o;
  o.transport = transport_;
  o.credential =
      *azure::StorageCredential::SharedKey(AzuriteServer::kAccount, Secret(AzuriteServer::kAccountKey));
  azure::Executor ex(std::move(o));
  const std::string url = azurite_->BlobEndpoint() + "/" + container + "?restype=container";
  auto r = ex.Call([&] { return Result<http::OutboundRequest>(http::OutboundRequest{"PUT", url, {}, {}}); });
  if (!r.ok()) return r.error();
  return OkStatus();
}

std::shared_ptr<objstore::ObjectStore> AzureE2e::Under(const std::string& prefix,
                                                       const std::string& container) const {
  objstore::azure::AzureStoreOptions o;
  o.account = AzuriteServer::kAccount;
  o.container = container;
  o.prefix = prefix;
  o.endpoint = azurite_->BlobEndpoint();
  auto cred =
      azure::StorageCredential::SharedKey(AzuriteServer::kAccount, Secret(AzuriteServer::kAccountKey));
  if (!cred.ok()) return nullptr;
  auto store = objstore::azure::AzureBlobStore::Create(o, *cred, transport_);
  if (!store.ok()) return nullptr;
  return std::shared_ptr<objstore::ObjectStore>(std::move(store).value());
}

}  // namespace sluice::testing::e2e
