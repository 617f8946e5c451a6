// tlsp/sim/test_pki.h — certificates for tests and live simulation, made at
// run time with OpenSSL: a trusted test root, an untrusted root, and leaf
// certificates of every kind a scenario scripts.
//
// Contract: everything is generated fresh (ECDSA P-256, SHA-256) in the
// given directory; nothing is read from the system. Files are PEM: a leaf's
// cert_file holds the leaf then its issuer (so DANE-TA finds the anchor in
// the chain), key_file its key. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tlsp/dane.h"

namespace tlsp::sim {

enum class CertKind : uint8_t {
  valid,        // issued by the trusted root, in date, names as given
  expired,      // issued by the trusted root, notAfter in the past
  wrong_name,   // issued by the trusted root for "wrong-name.invalid"
  self_signed,  // its own issuer
  untrusted,    // issued by a root not in ca_file()
};

struct TestCert {
  std::string cert_file;  // leaf + issuer, PEM
  std::string key_file;
  std::string cert_pem;    // the leaf alone
  std::string chain_pem;   // leaf + issuer (what cert_file holds)
  std::string issuer_pem;  // the issuer (the leaf itself when self-signed)
};

class TestPki {
 public:
  // Creates the directory if needed; makes both roots.
  explicit TestPki(std::string directory);
  const std::string& directory() const { return dir_; }
  const std::string& ca_file() const { return ca_file_; }  // the trusted root only
  std::string ca_pem() const;

  // names: DNS subjectAltNames (the first is also the CN).
  TestCert issue(const std::vector<std::string>& names, CertKind kind = CertKind::valid);

  // A TLSA record for a certificate: usage 3 matches the leaf, usage 2 the
  // issuer; selector 0 full cert / 1 SPKI; mtype 0 full / 1 SHA-256 /
  // 2 SHA-512.
  static TlsaRecord tlsa_for(const TestCert& cert, uint8_t usage, uint8_t selector = 1, uint8_t mtype = 1);

 private:
  std::string dir_;
  std::string ca_file_;
  struct Roots;
  std::shared_ptr<Roots> roots_;
};

}  // namespace tlsp::sim
