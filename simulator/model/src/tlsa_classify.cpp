// tlsa_classify.cpp — literal TLSA records (`record "3 1 1 <hex>";`) turned
// into the kinds the engine decides on, against a simulated certificate
// chain.
//
// The simulator has no real certificates, so each MX host gets a
// deterministic stand-in: its leaf certificate and public key are the bytes
// `leaf-cert:<host>` and `leaf-spki:<host>`, issued by one CA whose
// certificate and key are `ca-cert:tlsp-sim-ca` and `ca-spki:tlsp-sim-ca`.
// A scenario author computes a matching record with, for instance,
//   printf 'leaf-spki:mx1.partner.example' | sha256sum     -> "3 1 1 <digest>"
// which keeps literal records honest (a wrong digest really mismatches)
// without shipping key material.
#include <openssl/evp.h>

#include "tlsp/simulator.h"

namespace tlsp::sim {
namespace {

std::string digest(const EVP_MD* md, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1) return {};
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace

std::string simulated_leaf_certificate(std::string_view host) { return "leaf-cert:" + std::string(host); }
std::string simulated_leaf_public_key(std::string_view host) { return "leaf-spki:" + std::string(host); }
std::string simulated_ca_certificate() { return "ca-cert:tlsp-sim-ca"; }
std::string simulated_ca_public_key() { return "ca-spki:tlsp-sim-ca"; }

TlsaKind classify_tlsa_record(std::string_view host, const TlsaRecordScript& r) {
  if (r.kind) return *r.kind;
  // RFC 7672 §3.1.3: PKIX usages are not used for SMTP.
  if (r.usage == 0) return TlsaKind::pkix_ta;
  if (r.usage == 1) return TlsaKind::pkix_ee;
  // Usages 4..255 are unassigned: unusable, like malformed data (the engine
  // treats every unusable kind alike).
  if (r.usage != 2 && r.usage != 3) return TlsaKind::bad_length;
  if (r.selector > 1) return TlsaKind::bad_selector;
  if (r.mtype > 2) return TlsaKind::bad_mtype;
  static constexpr size_t kDigestSize[] = {0, 32, 64};  // full, SHA2-256, SHA2-512
  if (r.data.empty() || (r.mtype != 0 && r.data.size() != kDigestSize[r.mtype])) return TlsaKind::bad_length;

  const bool end_entity = r.usage == 3;
  std::string subject = end_entity ? (r.selector == 0 ? simulated_leaf_certificate(host) : simulated_leaf_public_key(host))
                                   : (r.selector == 0 ? simulated_ca_certificate() : simulated_ca_public_key());
  if (r.mtype == 1) subject = digest(EVP_sha256(), subject);
  if (r.mtype == 2) subject = digest(EVP_sha512(), subject);
  const bool match = subject == r.data;
  if (end_entity) return match ? TlsaKind::dane_ee_match : TlsaKind::dane_ee_mismatch;
  return match ? TlsaKind::dane_ta_match : TlsaKind::dane_ta_mismatch;
}

}  // namespace tlsp::sim
