// The Azure side of the real-binary tests (JSON Pipelines, Cloud Import): Azurite in its OAuth mode
// (`--oauth basic` over HTTPS with a self-signed 127.0.0.1 certificate), a loopback Entra ID token endpoint
// set as the operator's AZURE_AUTHORITY_HOST, the container created with the account key, and the process
// environment cleared of AWS and Google identities. One per test suite; the account key is used only for the
// test's own assertions (Under), never given to Sluice.
//
//   static AzureE2e* azure_ = new AzureE2e();              // in SetUpTestSuite; check azure_->error()
//   SluiceServer server(dir / "data", nullptr, azure_->ServeArgs({"--pipeline-unit-parallelism", "2"}));
//   Params params = azure_->PipelineParams();              // type=azure-raw …
//   azure_endpoint=azure_->Origin() auto under = azure_->Under("prefix");                  // the container
//   as the customer sees it
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "http/transport.h"
#include "objstore/object_store.h"
#include "pipeline/e2e_support.h"
#include "support/azurite_server.h"
#include "support/entra_token_endpoint.h"

namespace sluice::testing::e2e {

/// The customer's service principal and container, as the suites use them.
inline constexpr char kAzureTenant[] = "72f988bf-86f1-41af-91ab-2d7cd011db47";
inline constexpr char kAzureClient[] = "11111111-2222-3333-4444-555555555555";
inline constexpr char kAzureSecret[] = "az~Pipeline.secret_0123456789";
inline constexpr char kAzureContainer[] = "acme-exports";

class AzureE2e {
 public:
  /// Starts Azurite (HTTPS, OAuth) and the token endpoint, creates kAzureContainer and sets the environment
  /// (AZURE_AUTHORITY_HOST; no AWS or Google identity). error() says what failed.
  AzureE2e();
  ~AzureE2e();
  AzureE2e(const AzureE2e&) = delete;
  AzureE2e& operator=(const AzureE2e&) = delete;

  /// Empty when everything started.
  const std::string& error() const { return error_; }
  AzuriteServer& azurite() { return *azurite_; }
  EntraTokenEndpoint& entra() { return *entra_; }
  /// The certificate Azurite serves (and its own CA: pass it to --ca-bundle).
  const TestCert& cert() const { return cert_; }
  /// A temporary directory for the suite (removed by the destructor).
  const std::filesystem::path& dir() const { return dir_; }
  /// An HTTPS transport trusting cert().
  const std::shared_ptr<http::HttpTransport>& transport() const { return transport_; }

  /// "https://127.0.0.1:PORT": Azurite's origin, the azure_endpoint the operator allows.
  std::string Origin() const;
  /// `sluice serve` arguments: `extra`, then --allow-azure-endpoint Origin() (and each of `also_allowed`) and
  /// --ca-bundle cert().
  std::vector<std::string> ServeArgs(std::vector<std::string> extra = {},
                                     const std::vector<std::string>& also_allowed = {}) const;
  /// The pipeline parameters of the suite's service principal and container (type=azure-raw,
  /// azure_endpoint = `endpoint`, or Origin() when empty).
  Params PipelineParams(const std::string& secret = kAzureSecret, const std::string& endpoint = "") const;
  /// The container under `prefix`, seen with the account key (the customer's uploads and the test's
  /// assertions only). Null if it cannot be built.
  std::shared_ptr<objstore::ObjectStore> Under(const std::string& prefix,
                                               const std::string& container = kAzureContainer) const;
  /// Creates another container with the account key (the customer's own setup).
  Status CreateContainer(const std::string& container) const;

 private:
  std::filesystem::path dir_;
  TestCert cert_;
  std::unique_ptr<AzuriteServer> azurite_;
  std::unique_ptr<EntraTokenEndpoint> entra_;
  std::shared_ptr<http::HttpTransport> transport_;
  std::string error_;
};

}  // namespace sluice::testing::e2e
