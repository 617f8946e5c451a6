// peer_tls_test.cpp — Postfix's trust of an outbound TLS session, as the
// relay log names it (peer_tls.h, docs/logs.md): every combination of what
// the handshake checked and found, against the table of docs/logs.md. The
// relay's own sessions show each in relay_log_outputs_test.cpp.
#include "peer_tls.h"

#include <gtest/gtest.h>

#include <string>

using namespace tlsp;
using namespace tlsp::relay;

namespace {

struct Case {
  bool handshake, certificate, dane_checked, dane_authenticated, webpki_checked;
  CertStatus webpki;
  std::string trust;
};

TEST(PeerTlsTrust, FollowsWhatTheHandshakeChecked) {
  const Case cases[] = {
      // No session, no trust.
      {false, true, true, true, true, CertStatus::valid, ""},
      // No certificate: Anonymous, whatever was asked.
      {true, false, true, false, true, CertStatus::untrusted, "Anonymous"},
      // DANE authenticated the peer: Verified, the WebPKI aside.
      {true, true, true, true, false, CertStatus::untrusted, "Verified"},
      {true, true, true, true, true, CertStatus::self_signed, "Verified"},
      // DANE asked and not authenticated: Untrusted.
      {true, true, true, false, false, CertStatus::valid, "Untrusted"},
      // WebPKI (MTA-STS): chain and name Verified; chain only Trusted;
      // anything else Untrusted.
      {true, true, false, false, true, CertStatus::valid, "Verified"},
      {true, true, false, false, true, CertStatus::wrong_name, "Trusted"},
      {true, true, false, false, true, CertStatus::expired, "Untrusted"},
      {true, true, false, false, true, CertStatus::self_signed, "Untrusted"},
      {true, true, false, false, true, CertStatus::untrusted, "Untrusted"},
      // Nothing checked (opportunistic, mandatory): Untrusted, even if the
      // result's defaults look valid.
      {true, true, false, false, false, CertStatus::valid, "Untrusted"},
      {true, true, false, true, false, CertStatus::valid, "Untrusted"},
  };
  for (const Case& c : cases) {
    TlsClientResult r;
    r.ok = c.handshake;
    if (c.certificate) r.peer_fingerprint = std::string(64, 'a');
    r.dane_authenticated = c.dane_authenticated;
    r.webpki = c.webpki;
    TlsClientParams p;
    if (c.dane_checked) p.tlsa.push_back(TlsaRecord{});
    if (c.webpki_checked) p.ca_file = "/etc/ssl/certs/ca-certificates.crt";
    EXPECT_EQ(tls_trust(r, p), c.trust) << c.handshake << c.certificate << c.dane_checked << c.dane_authenticated
                                        << c.webpki_checked << " " << to_string(c.webpki);
  }
}

TEST(PeerTlsTrust, PostfixsSentence) {
  EXPECT_EQ(tls_established_text("Verified", "to mx.example[192.0.2.1]:25", TlsVersion::tls1_3,
                                 "TLS_AES_256_GCM_SHA384", "x25519"),
            "Verified TLS connection established to mx.example[192.0.2.1]:25: TLSv1.3 with cipher "
            "TLS_AES_256_GCM_SHA384 key-exchange x25519");
  EXPECT_EQ(tls_established_text("Untrusted", "to mx.example[192.0.2.1]:25", TlsVersion::tls1_2,
                                 "ECDHE-RSA-AES256-GCM-SHA384", ""),
            "Untrusted TLS connection established to mx.example[192.0.2.1]:25: TLSv1.2 with cipher "
            "ECDHE-RSA-AES256-GCM-SHA384");
}

}  // namespace
