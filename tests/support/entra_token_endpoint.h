// A loopback OAuth2 token endpoint shaped like Microsoft Entra ID's v2.0 one, and a self-signed certificate
// for 127.0.0.1 (Azurite's HTTPS in its OAuth mode). The endpoint checks the client-credentials form Sluice
// posts for one service principal and answers as Entra ID does: a JWT whose claims Azurite's `--oauth basic`
// accepts, 401 invalid_client (AADSTS7000215) for a wrong secret, 400 for a malformed request, and on request
// (FailNext) 500s as in an Entra ID outage. Every loop is bounded by the stop flag; it listens on a free
// 127.0.0.1 port.
//
//   EntraTokenEndpoint entra(kTenant, kClient, "good~secret");
//   setenv("AZURE_AUTHORITY_HOST", entra.Authority().c_str(), 1);   // http://127.0.0.1:PORT
//   TestCert cert = MakeLoopbackCert(dir);                            // cert.pem / key.pem under dir
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "support/loopback_http.h"

namespace sluice::testing {

class EntraTokenEndpoint {
 public:
  EntraTokenEndpoint(std::string tenant, std::string client, std::string secret);
  ~EntraTokenEndpoint();
  EntraTokenEndpoint(const EntraTokenEndpoint&) = delete;
  EntraTokenEndpoint& operator=(const EntraTokenEndpoint&) = delete;

  /// "http://127.0.0.1:PORT" (the authority host; the tenant goes in the path).
  std::string Authority() const;
  /// Token requests answered (any outcome).
  int requests() const { return requests_.load(); }
  /// The next `count` token requests are answered 500 with Entra ID's error JSON (an outage; retryable).
  void FailNext(int count) { fail_next_ = count; }
  /// Token requests answered 500 by FailNext.
  int failures_answered() const { return failures_answered_.load(); }

 private:
  void Serve();

  std::string tenant_, client_, secret_;
  uint16_t port_ = 0;
  Fd listen_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> fail_next_{0};
  std::atomic<int> failures_answered_{0};
  std::thread thread_;
};

/// "header.claims.signature" with each part base64url-encoded (no padding); the signature is not one.
std::string UnsignedJwt(std::string_view header_json, std::string_view claims_json);

/// A self-signed certificate for 127.0.0.1 (subjectAltName IP:127.0.0.1), valid for an hour, written as PEM.
struct TestCert {
  std::string cert_path;
  std::string key_path;
};
TestCert MakeLoopbackCert(const std::string& dir);

}  // namespace sluice::testing
