// Hashing, HMAC, encodings and randomness on top of OpenSSL 3.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::string_view data);
/// Incremental SHA-256 for streamed bodies.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;
  void Update(std::string_view data);
  Sha256Digest Finish();

 private:
  void* ctx_;  // EVP_MD_CTX*
};

Sha256Digest HmacSha256(std::string_view key, std::string_view data);

std::string HexEncode(std::string_view bytes);
template <size_t N>
std::string HexEncode(const std::array<uint8_t, N>& bytes) {
  return HexEncode(std::string_view(reinterpret_cast<const char*>(bytes.data()), N));
}
inline std::string_view AsStringView(const Sha256Digest& d) {
  return std::string_view(reinterpret_cast<const char*>(d.data()), d.size());
}

std::string Base64Encode(std::string_view bytes);
/// Standard or URL-safe alphabet, padding optional, whitespace ignored. nullopt when not base64.
std::optional<std::string> Base64Decode(std::string_view text);

/// Cryptographically secure random bytes (OpenSSL RAND_bytes). Aborts if the RNG fails.
std::string RandomBytes(size_t n);
/// `bits` of randomness as lowercase hex (bits rounded up to whole bytes).
std::string RandomHex(size_t bits);

/// Compares without an early exit, so timing does not reveal how much of a secret matched.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

/// CRC32C (Castagnoli), as S3's x-amz-checksum-crc32c uses.
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

}  // namespace sluice
