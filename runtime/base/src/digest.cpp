// digest.cpp — see tlsp/base/digest.h.
#include "tlsp/base/digest.h"

#include <openssl/evp.h>

#include <cstring>
#include <stdexcept>

namespace tlsp::base {

std::string digest(Digest kind, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const EVP_MD* md = kind == Digest::sha512 ? EVP_sha512() : EVP_sha256();
  if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1)
    throw std::runtime_error("cannot compute a digest (libcrypto)");
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::array<uint8_t, 32> sha256(std::string_view data) {
  const std::string d = digest(Digest::sha256, data);
  std::array<uint8_t, 32> out{};
  std::memcpy(out.data(), d.data(), out.size());
  return out;
}

std::string hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

}  // namespace tlsp::base
