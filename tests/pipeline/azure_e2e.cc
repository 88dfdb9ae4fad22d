#include "pipeline/azure_e2e.h"

#include <fmt/format.h>

#include <cstdlib>

#include "azure/credentials.h"
#include "azure/executor.h"
#include "objstore/azure/azure_blob_store.h"

namespace sluice::testing::e2e {

Result<std::unique_ptr<AzureE2eEnvironment>> AzureE2eEnvironment::Start(const std::filesystem::path& dir,
                                                                        std::string tenant,
                                                                        std::string client,
                                                                        std::string secret) {
  std::unique_ptr<AzureE2eEnvironment> env(new AzureE2eEnvironment());
  env->cert_ = MakeLoopbackCert(dir.string());
  AzuriteServer::Options options;
  options.cert_path = env->cert_.cert_path;
  options.key_path = env->cert_.key_path;
  SLUICE_ASSIGN_OR_RETURN(env->azurite_, AzuriteServer::Start(options));
  env->entra_ = std::make_unique<EntraTokenEndpoint>(std::move(tenant), std::move(client), std::move(secret));
  http::TransportOptions tls;
  tls.ca_bundle = env->cert_.cert_path;
  env->transport_ = http::MakeCurlTransport(tls);
  // The operator's Entra ID authority; no AWS or Google identity at all.
  setenv("AZURE_AUTHORITY_HOST", env->entra_->Authority().c_str(), 1);
  for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                        "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS",
                        "GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "AZURE_CLIENT_SECRET"}) {
    unsetenv(v);
  }
  setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  return env;
}

Status AzureE2eEnvironment::CreateContainer(const std::string& container) {
  azure::Executor::Options o;
  o.transport = transport_;
  SLUICE_ASSIGN_OR_RETURN(o.credential, azure::StorageCredential::SharedKey(
                                            AzuriteServer::kAccount, Secret(AzuriteServer::kAccountKey)));
  azure::Executor executor(std::move(o));
  const std::string url = azurite_->BlobEndpoint() + "/" + container + "?restype=container";
  auto created = executor.Call([&] {
    return Result<http::OutboundRequest>(http::OutboundRequest{"PUT", url, {}, {}});
  });
  if (!created.ok()) return created.error();
  return OkStatus();
}

Result<std::shared_ptr<objstore::ObjectStore>> AzureE2eEnvironment::AccountKeyStore(
    const std::string& container, const std::string& prefix) {
  objstore::azure::AzureStoreOptions o;
  o.account = AzuriteServer::kAccount;
  o.container = container;
  o.prefix = prefix;
  o.endpoint = azurite_->BlobEndpoint();
  SLUICE_ASSIGN_OR_RETURN(auto credential, azure::StorageCredential::SharedKey(
                                               AzuriteServer::kAccount, Secret(AzuriteServer::kAccountKey)));
  SLUICE_ASSIGN_OR_RETURN(auto store, objstore::azure::AzureBlobStore::Create(o, credential, transport_));
  return std::shared_ptr<objstore::ObjectStore>(std::move(store));
}

std::string AzureE2eEnvironment::Origin() const {
  return fmt::format("https://127.0.0.1:{}", azurite_->port());
}

std::vector<std::string> AzureE2eEnvironment::ServeArgs() const {
  return {"--allow-azure-endpoint", Origin(), "--ca-bundle", cert_.cert_path};
}

}  // namespace sluice::testing::e2e
