// tlsa_classify.cpp — literal TLSA records (`record "3 1 1 <hex>";`) turned
// into the kinds the engine decides on, against a simulated certificate
// chain.
//
// Whether a record is usable at all is runtime/net's rule
// (tlsp::classify_tlsa_record, tlsa_usability.cpp), asked with the data
// marked as a stand-in: the only rule it cannot apply here is that full
// data (matching type 0) parses as DER. What is left to the model is the
// match of a usable record against the host's stand-in chain.
//
// The simulator has no real certificates, so each MX host gets a
// deterministic stand-in: its leaf certificate and public key are the bytes
// `leaf-cert:<host>` and `leaf-spki:<host>`, issued by one CA whose
// certificate and key are `ca-cert:tlsp-sim-ca` and `ca-spki:tlsp-sim-ca`.
// A scenario author computes a matching record with, for instance,
//   printf 'leaf-spki:mx1.partner.example' | sha256sum     -> "3 1 1 <digest>"
// which keeps literal records honest (a wrong digest really mismatches)
// without shipping key material.

#include "tlsp/base/digest.h"
#include "tlsp/dane.h"
#include "tlsp/simulator.h"

namespace tlsp::sim {
namespace {


}  // namespace

std::string simulated_leaf_certificate(std::string_view host) { return "leaf-cert:" + std::string(host); }
std::string simulated_leaf_public_key(std::string_view host) { return "leaf-spki:" + std::string(host); }
std::string simulated_ca_certificate() { return "ca-cert:tlsp-sim-ca"; }
std::string simulated_ca_public_key() { return "ca-spki:tlsp-sim-ca"; }

TlsaKind classify_tlsa_record(std::string_view host, const TlsaRecordScript& r) {
  if (r.kind) return *r.kind;
  const TlsaRecord record{r.usage, r.selector, r.mtype, std::vector<uint8_t>(r.data.begin(), r.data.end())};
  const TlsaUsability usability = tlsp::classify_tlsa_record(record, TlsaData::stand_in);
  if (!usability.usable()) return *usability.unusable;

  const bool end_entity = r.usage == 3;
  std::string subject = end_entity ? (r.selector == 0 ? simulated_leaf_certificate(host) : simulated_leaf_public_key(host))
                                   : (r.selector == 0 ? simulated_ca_certificate() : simulated_ca_public_key());
  if (r.mtype == 1) subject = base::digest(base::Digest::sha256, subject);
  if (r.mtype == 2) subject = base::digest(base::Digest::sha512, subject);
  const bool match = subject == r.data;
  if (end_entity) return match ? TlsaKind::dane_ee_match : TlsaKind::dane_ee_mismatch;
  return match ? TlsaKind::dane_ta_match : TlsaKind::dane_ta_mismatch;
}

}  // namespace tlsp::sim
