// tlsp/base/digest.h — digests of bytes and the hex form of bytes, with one
// owner each: the SHA-256 of a policy source (the table names its sources
// by it, as sha256sum would), the MTA-STS cache's file names, the TLSA
// digests of the test PKI and of the scenario model's literal records, and
// every lower-case hex text of bytes (digests in `tlsp inspect` and JSON,
// random message ids).
//
// Contract: digest() returns the raw digest (32 bytes for SHA-256, 64 for
// SHA-512) through libcrypto's one-shot EVP_Digest, and throws
// std::runtime_error if libcrypto fails (it does not for these digests);
// hex() writes two lower-case digits per byte.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace tlsp::base {

enum class Digest : uint8_t { sha256, sha512 };

std::string digest(Digest kind, std::string_view data);
std::array<uint8_t, 32> sha256(std::string_view data);

std::string hex(std::span<const uint8_t> bytes);
inline std::string hex(std::string_view bytes) {
  return hex(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

}  // namespace tlsp::base
