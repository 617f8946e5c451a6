// peer_tls.cpp — TLS towards an outbound peer, as engine facts
// (peer_tls.h).
#include "peer_tls.h"

#include <algorithm>

namespace tlsp::relay {

TlsaKindSet kinds_before_handshake(const std::vector<TlsaRecord>& records) {
  TlsaKindSet k = 0;
  for (const TlsaRecord& r : records) {
    k |= tlsa_bit(classify_tlsa_record(r).kind_before_match);
  }
  return k;
}

TlsaKindSet best_case(TlsaKindSet k) {
  if (k & kUsableTlsaKinds) k |= tlsa_bit(TlsaKind::dane_ee_match);
  return k;
}

TlsVersionSet versions_below(TlsVersion v) {
  TlsVersionSet s = 0;
  for (int i = static_cast<int>(TlsVersion::tls1_0); i < static_cast<int>(v); ++i)
    s |= version_bit(static_cast<TlsVersion>(i));
  return s;
}

TlsClientParams client_params(const std::string& host, TlsMode mode, MinTls min_tls, std::vector<TlsaRecord> tlsa,
                              const std::string& ca_file, std::chrono::milliseconds timeout) {
  TlsClientParams p;
  p.sni = host;
  const TlsVersion floor = floor_of(min_tls);
  p.min_version = mode == TlsMode::authenticate ? std::max(floor, TlsVersion::tls1_2) : floor;
  // OpenSSL 3 needs security level 0 for TLS 1.0/1.1; only ever for a
  // session that does not authenticate (SPEC §2, §4).
  p.legacy_security_level = mode == TlsMode::encrypt && p.min_version < TlsVersion::tls1_2;
  p.tlsa = std::move(tlsa);
  p.ca_file = ca_file;
  p.timeout = timeout;
  return p;
}

void apply_observation(PeerFacts& f, const Observation& o, const TlsClientParams& params, bool dane, bool webpki) {
  f.starttls = o.starttls;
  if (!o.tls_attempted) return;
  if (o.tls.ok) {
    f.peer_tls = version_bit(o.tls.version);
    if (dane) {
      f.tlsa = o.tls.tlsa_kinds;
      f.cert = o.tls.dane_cert;
    } else if (webpki) {
      f.cert = o.tls.webpki;
    }
  } else if (o.tls.version_refused) {
    f.peer_tls = versions_below(params.min_version);
  } else {
    f.peer_tls = 0;
  }
}

std::string auth_of(const Outcome& out, const Observation& o, bool dane) {
  if (out.channel != Channel::authenticated) return "none";
  if (dane) return (o.tls.tlsa_kinds & tlsa_bit(TlsaKind::dane_ee_match)) ? "dane-ee" : "dane-ta";
  return "mta-sts";
}

std::string_view tls_trust(const TlsClientResult& r, const TlsClientParams& params) {
  if (!r.ok) return "";
  if (r.peer_fingerprint.empty()) return "Anonymous";
  if (!params.tlsa.empty() && r.dane_authenticated) return "Verified";
  if (!params.ca_file.empty()) {
    if (r.webpki == CertStatus::valid) return "Verified";
    // OpenSSL checks the name only after the chain was built to a trusted
    // root: a wrong name means the chain itself verified.
    if (r.webpki == CertStatus::wrong_name) return "Trusted";
  }
  return "Untrusted";
}

PeerTlsSummary tls_summary(const Observation& o, const TlsClientParams& params) {
  PeerTlsSummary s;
  if (!o.tls_attempted || !o.tls.ok) return s;
  s.version = o.tls.version;
  s.cipher = o.tls.cipher;
  s.group = o.tls.group;
  s.trust = std::string(tls_trust(o.tls, params));
  s.subject = o.tls.peer_subject;
  s.issuer = o.tls.peer_issuer;
  s.fingerprint = o.tls.peer_fingerprint;
  return s;
}

std::string tls_established_text(std::string_view trust, std::string_view toward, TlsVersion version,
                                 std::string_view cipher, std::string_view group) {
  static constexpr std::string_view kPostfixNames[] = {"none", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"};
  const auto v = static_cast<size_t>(version);
  std::string t = std::string(trust) + " TLS connection established " + std::string(toward) + ": " +
                  std::string(v < std::size(kPostfixNames) ? kPostfixNames[v] : "unknown") + " with cipher " +
                  std::string(cipher);
  if (!group.empty()) t += " key-exchange " + std::string(group);
  return t;
}

}  // namespace tlsp::relay
