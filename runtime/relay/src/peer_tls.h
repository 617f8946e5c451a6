// peer_tls.h — TLS towards an outbound peer and what its handshake proves,
// as the engine's facts (SPEC §4): the TLSA records before a handshake and
// in the best case, the handshake's parameters for a rule and a mode, the
// facts a handshake adds, and the authentication a delivery logs.
// Not a public header.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "smtp_client.h"
#include "tlsp/dane.h"
#include "tlsp/engine.h"
#include "tlsp/tls.h"

namespace tlsp::relay {

// The TLSA records as the engine sees them before any handshake: usable
// records count as mismatches until a handshake proves a match.
TlsaKindSet kinds_before_handshake(const std::vector<TlsaRecord>& records);
// The same, as it would be after the best handshake (a usable record matched).
TlsaKindSet best_case(TlsaKindSet k);
// Every version below `v` (a peer that refused to go as low as `v` offers them).
TlsVersionSet versions_below(TlsVersion v);

// The handshake for `host` under a rule whose floor is `min_tls`: the
// lowest version `mode` allows (authentication needs TLS 1.2), the legacy
// security level only for a session that does not authenticate, the TLSA
// records for DANE, `ca_file` for a WebPKI check (empty: none).
TlsClientParams client_params(const std::string& host, TlsMode mode, MinTls min_tls, std::vector<TlsaRecord> tlsa,
                              const std::string& ca_file, std::chrono::milliseconds timeout);

// What the connection `o` adds to the DNS facts: STARTTLS, the versions
// the peer took or refused, and the certificate checks (`dane` or
// `webpki`) of its handshake.
void apply_observation(PeerFacts& f, const Observation& o, const TlsClientParams& params, bool dane, bool webpki);

// The `auth` of the attempt line: dane-ee, dane-ta, mta-sts or none.
std::string auth_of(const Outcome& out, const Observation& o, bool dane);

// Postfix's trust of an outbound TLS session, from the checks its handshake
// made with `params` (never a new check): Verified (DANE authenticated the
// peer, or the WebPKI chain and the name verified), Trusted (the WebPKI
// chain verified, the name did not match), Untrusted (nothing checked, or
// the chain did not verify), Anonymous (no certificate); "" without a
// session.
std::string_view tls_trust(const TlsClientResult& r, const TlsClientParams& params);

// What the log says of one outbound TLS session (its attempt and tls
// lines); empty when the connection has no TLS session.
struct PeerTlsSummary {
  TlsVersion version = TlsVersion::none;
  std::string cipher, group, trust, subject, issuer, fingerprint;
};
PeerTlsSummary tls_summary(const Observation& o, const TlsClientParams& params);

// Postfix's sentence for a session: "Verified TLS connection established
// to mx.example[192.0.2.1]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384
// key-exchange X25519" (`from` and no port for an inbound one).
std::string tls_established_text(std::string_view trust, std::string_view toward, TlsVersion version,
                                 std::string_view cipher, std::string_view group);

}  // namespace tlsp::relay
