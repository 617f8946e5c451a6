// tlsp/tls.h — the relay's TLS: the STARTTLS client (outbound) and the
// server context (inbound), on OpenSSL 3. With dane.cpp this is the only
// code that configures OpenSSL.
//
// Contract:
//  * Client: offers exactly the versions from min_version to TLS 1.3, SNI
//    is the MX host. The handshake itself never fails on the certificate
//    (SSL_VERIFY_NONE): the result reports what was seen (WebPKI status,
//    DANE verdict) and the enforcement engine decides. DANE uses OpenSSL's
//    DANE API (SSL_dane_enable, SSL_dane_tlsa_add) live in the handshake,
//    with the usable records only, and its summary agrees with
//    verify_dane() (tlsp/dane.h) on the same chain.
//  * Security level 0 (needed for TLS 1.0/1.1 with OpenSSL 3) only when
//    legacy_security_level is set; the caller sets it only for
//    unauthenticated levels whose minimum is `any` (SPEC §2, §4).
//  * version_refused distinguishes "no common protocol version" (the peer
//    only speaks versions below the minimum) from every other failure.
//  * Server: make_server_context() accepts the versions asked for; a
//    session runs at security level 0 only when the version it will agree
//    on (the highest one both the ClientHello and the server's set hold) is
//    below TLS 1.2: a client whose highest version is below 1.2, or any
//    client of a server whose set is (the client-hello callback lowers it
//    for that session alone).
//  * The client context is one shared SSL_CTX; every per-connection setting
//    is made on the SSL handle (tls.cpp says why).
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tlsp/dane.h"
#include "tlsp/engine.h"

namespace tlsp {

struct TlsClientParams {
  std::string sni;  // the MX host name
  TlsVersion min_version = TlsVersion::tls1_2;
  bool legacy_security_level = false;
  // Non-empty: DANE, with every record given (the caller passes the TLSA
  // answer as is; unusable records are counted, never handed to OpenSSL).
  std::vector<TlsaRecord> tlsa;
  // Reference names for DANE-TA name checks besides sni (the TLSA base name
  // when it differs, RFC 7672 §3.2.2).
  std::vector<std::string> dane_names;
  // Non-empty: check the chain against this CA bundle and sni as the name
  // (MTA-STS, RFC 8461 §4.2), reported in webpki.
  std::string ca_file;
  std::chrono::milliseconds timeout{30000};
  // Tests pin the verification time; empty: now.
  std::optional<int64_t> verify_time;
  // Test peers only (the relay leaves it 0): offer exactly these versions
  // instead of min_version..TLS 1.3, to play an old or odd client. Versions
  // below TLS 1.2 still need legacy_security_level.
  TlsVersionSet offer_versions = 0;
};

struct TlsClientResult {
  bool ok = false;  // the handshake completed
  // Failed: no protocol version in common, including a server that chose
  // TLS 1.0/1.1 when legacy_security_level was off.
  bool version_refused = false;
  std::string error;  // why it failed (OpenSSL's words)
  TlsVersion version = TlsVersion::none;
  std::string cipher;
  // WebPKI (when ca_file was given).
  CertStatus webpki = CertStatus::untrusted;
  std::string webpki_detail;
  // DANE (when tlsa was given): as DaneVerification (tlsp/dane.h).
  bool dane_authenticated = false;
  int dane_depth = -1;
  TlsaKindSet tlsa_kinds = 0;
  CertStatus dane_cert = CertStatus::valid;
  std::string dane_detail;
  // What the log says of the session (never a check; the checks are above):
  std::string group;             // the key exchange group, OpenSSL's name (X25519); "" when none
  std::string peer_subject;      // the leaf's subject (RFC 2253), "" without a certificate
  std::string peer_issuer;       // the leaf's issuer (RFC 2253)
  std::string peer_fingerprint;  // SHA-256 of the leaf (DER), lower-case hex
};

struct TlsServerResult {
  bool ok = false;
  std::string error;
  TlsVersion version = TlsVersion::none;
  std::string cipher;
  std::string group;  // the key exchange group, for the log
  std::string sni;
};

struct SslCtxDeleter {
  void operator()(SSL_CTX* p) const;
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// cert_file: PEM chain, leaf first; key_file: its PEM key. versions: the
// protocol versions to accept (a set need not be contiguous). Throws
// std::runtime_error naming the file on failure.
SslCtxPtr make_server_context(const std::string& cert_file, const std::string& key_file,
                              TlsVersionSet versions = kAllTlsVersions);

TlsVersion tls_version_of(const SSL* ssl);

}  // namespace tlsp
