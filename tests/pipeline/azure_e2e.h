// The Azure end-to-end environment of the tests that drive the real `sluice serve` against Azure Blob
// Storage: Azurite in its OAuth mode (`--oauth basic` over HTTPS, a self-signed 127.0.0.1 certificate), a
// loopback Entra ID token endpoint for one service principal, and the operator's environment for the server
// (AZURE_AUTHORITY_HOST set to the token endpoint; AWS and Google identities unset, so nothing else is
// reached). The account key is the test's own credential, for setting up containers and reading them back.
//
//   auto env = AzureE2eEnvironment::Start(dir, kTenant, kClient, kSecret);
//   SLUICE_TRY((*env)->CreateContainer("acme-import"));
//   SluiceServer server(dir / "data", nullptr, (*env)->ServeArgs());   // --allow-azure-endpoint, --ca-bundle
//   auto customer = (*env)->AccountKeyStore("acme-import");
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "http/transport.h"
#include "objstore/object_store.h"
#include "support/azurite_server.h"
#include "support/entra_token_endpoint.h"

namespace sluice::testing::e2e {

class AzureE2eEnvironment {
 public:
  /// Starts Azurite (its certificate under `dir`) and the token endpoint for tenant/client/secret, and sets
  /// the process environment a server started afterwards inherits.
  static Result<std::unique_ptr<AzureE2eEnvironment>> Start(const std::filesystem::path& dir,
                                                            std::string tenant, std::string client,
                                                            std::string secret);

  /// Creates `container` with the account key.
  Status CreateContainer(const std::string& container);
  /// The container (under `prefix`) as the account key sees it.
  Result<std::shared_ptr<objstore::ObjectStore>> AccountKeyStore(const std::string& container,
                                                                 const std::string& prefix = "");

  /// "https://127.0.0.1:PORT": Azurite's origin, which the operator allows.
  std::string Origin() const;
  /// `sluice serve` arguments that allow Origin() and trust the certificate.
  std::vector<std::string> ServeArgs() const;

  AzuriteServer& azurite() { return *azurite_; }
  EntraTokenEndpoint& entra() { return *entra_; }
  const TestCert& cert() const { return cert_; }
  /// Trusts the certificate.
  const std::shared_ptr<http::HttpTransport>& transport() const { return transport_; }

 private:
  AzureE2eEnvironment() = default;

  TestCert cert_;
  std::unique_ptr<AzuriteServer> azurite_;
  std::unique_ptr<EntraTokenEndpoint> entra_;
  std::shared_ptr<http::HttpTransport> transport_;
};

}  // namespace sluice::testing::e2e
