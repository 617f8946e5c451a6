// tlsa_usability.cpp — whether a TLSA record is usable for SMTP (tlsp/dane.h,
// classify_tlsa_record; RFC 7672 §3.1, SPEC §4), and which TlsaKind the
// engine sees when it is not. The one owner of that rule: the verifier
// (dane.cpp), the TLS client, the relay's pre-handshake view and the
// simulator's literal records all ask here.
//
// The checks repeat SSL_dane_tlsa_add()'s by hand so that a record can be
// judged without building an SSL handle, and name the reason in the
// engine's terms. No I/O and no SSL library: libcrypto only, to parse full
// data as DER, so the simulator's model can link it.
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tlsp/dane.h"

namespace tlsp {
namespace {

// Whether `data` is exactly one DER certificate (selector 0) or
// SubjectPublicKeyInfo (selector 1), as SSL_dane_tlsa_add() requires. What
// the parse pushes onto OpenSSL's per-thread error queue is popped again, so
// a caller's queue looks the same before and after.
bool parses_completely(uint8_t selector, const std::vector<uint8_t>& data) {
  ERR_set_mark();
  const unsigned char* p = data.data();
  const long n = static_cast<long>(data.size());
  bool ok = false;
  if (selector == 0) {
    X509* x = d2i_X509(nullptr, &p, n);
    ok = x != nullptr && p == data.data() + data.size();
    X509_free(x);
  } else {
    EVP_PKEY* k = d2i_PUBKEY(nullptr, &p, n);
    ok = k != nullptr && p == data.data() + data.size();
    EVP_PKEY_free(k);
  }
  ERR_pop_to_mark();
  return ok;
}

}  // namespace

TlsaUsability classify_tlsa_record(const TlsaRecord& r, TlsaData data) {
  auto unusable = [](TlsaKind k, std::string why) { return TlsaUsability{k, std::move(why), k}; };
  auto usable = [&r] {
    TlsaUsability u;
    u.kind_before_match = r.usage == 3 ? TlsaKind::dane_ee_mismatch : TlsaKind::dane_ta_mismatch;
    return u;
  };
  switch (r.usage) {
    case 0:
      return unusable(TlsaKind::pkix_ta, "usage 0 (PKIX-TA) is not used for SMTP");
    case 1:
      return unusable(TlsaKind::pkix_ee, "usage 1 (PKIX-EE) is not used for SMTP");
    case 2:
    case 3:
      break;
    default:
      return unusable(TlsaKind::bad_length, "usage " + std::to_string(r.usage) + " is not a known usage");
  }
  if (r.selector > 1)
    return unusable(TlsaKind::bad_selector,
                    "selector " + std::to_string(r.selector) + " is not supported (0 certificate, 1 public key)");
  if (r.mtype > 2)
    return unusable(TlsaKind::bad_mtype,
                    "matching type " + std::to_string(r.mtype) + " is not supported (0 full, 1 SHA2-256, 2 SHA2-512)");
  if (r.mtype != 0) {
    const size_t want = r.mtype == 1 ? 32 : 64;
    if (r.data.size() != want)
      return unusable(TlsaKind::bad_length, std::string(r.mtype == 1 ? "a SHA2-256" : "a SHA2-512") + " digest is " +
                                                std::to_string(want) + " bytes, not " + std::to_string(r.data.size()));
    return usable();
  }
  if (r.data.empty()) return unusable(TlsaKind::bad_length, "the data is empty");
  if (data == TlsaData::der && !parses_completely(r.selector, r.data))
    return unusable(TlsaKind::bad_length, r.selector == 0 ? "the data is not one DER certificate"
                                                          : "the data is not one DER SubjectPublicKeyInfo");
  return usable();
}

}  // namespace tlsp
