// tlsp/dane.h — DANE TLSA records for SMTP (RFC 6698, RFC 7671, RFC 7672;
// SPEC §4): the presentation form, whether a record is usable for SMTP, and
// verification of a peer's certificate chain against the records. With the
// (future) TLS client, this is the only code that uses OpenSSL's DANE API;
// docs/dane.md describes the rules.
//
// Contract:
//  * parse_tlsa_record() reads the RDATA presentation form
//    `usage selector mtype hex` (RFC 6698 §2.2): three decimal numbers
//    0..255 (or the RFC 7218 acronyms `DANE-EE`, `SPKI`, `SHA2-256`, ...,
//    case-insensitive),
//    then the certificate association data as hexadecimal, which may be
//    split by spaces. Any input gives a result or a one-line problem (lower
//    case, user text in backticks); never an exception.
//  * classify_tlsa_record() says whether a record can be used for SMTP and,
//    when it cannot, which TlsaKind the engine sees. It agrees with what
//    OpenSSL's SSL_dane_tlsa_add() accepts for usages 2 and 3
//    (tests/net/dane_verify_test.cpp checks that). The one rule: the simulator's
//    literal records ask it too, with TlsaData::stand_in (their full data
//    stands for DER and is not parsed).
//  * verify_dane() checks a chain exactly as a TLS client with OpenSSL's
//    DANE support would after the handshake, offline (no socket, no DNS),
//    and reports OpenSSL's verdict plus a TlsaKind summary for decide().
//    The records must come from a DNSSEC-secure answer: checking that is
//    the resolver's job, not this one's.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/engine.h"

namespace tlsp {

// RFC 6698 §2.1: one TLSA RDATA. `data` is the certificate association
// data in wire form (binary), not hex.
struct TlsaRecord {
  uint8_t usage = 0;     // 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE
  uint8_t selector = 0;  // 0 full certificate, 1 SubjectPublicKeyInfo
  uint8_t mtype = 0;     // 0 exact data, 1 SHA2-256, 2 SHA2-512
  std::vector<uint8_t> data;
  friend bool operator==(const TlsaRecord&, const TlsaRecord&) = default;
};

// An RDATA is at most 65535 octets; three of them are usage, selector and
// matching type.
inline constexpr size_t kMaxTlsaDataBytes = 65535 - 3;

// A parse result: the value, or a one-line reason why the text is not one.
template <typename T>
struct TlsaParse {
  std::optional<T> value;
  std::string problem;
  explicit operator bool() const { return value.has_value(); }
};

TlsaParse<TlsaRecord> parse_tlsa_record(std::string_view text);

// The presentation form: `3 1 1 0A1B...` (upper-case hex, no spaces), which
// parse_tlsa_record() reads back to the same record.
std::string format_tlsa_record(const TlsaRecord& record);

// Whether a record is usable for SMTP (RFC 7672 §3.1): usage 2 or 3,
// selector 0 or 1, matching type 0, 1 or 2, a digest of 32 (SHA2-256) or
// 64 (SHA2-512) octets, and for matching type 0 data that parses completely
// as a certificate (selector 0) or a SubjectPublicKeyInfo (selector 1).
struct TlsaUsability {
  // Empty: usable. Otherwise the kind the engine sees (pkix_ta, pkix_ee,
  // bad_selector, bad_mtype or bad_length). The engine has no kind for an
  // unknown usage (4..255); it is reported as bad_length, the "malformed"
  // kind, since every unusable kind decides the same (SPEC §4).
  std::optional<TlsaKind> unusable;
  std::string problem;  // why, when unusable
  // The kind decide() sees until a handshake proves a match: the unusable
  // kind, or for a usable record the mismatch of its usage
  // (dane_ee_mismatch, dane_ta_mismatch). The one place that says so: the
  // verifier, the TLS client and the relay's pre-handshake view use it.
  TlsaKind kind_before_match = TlsaKind::bad_length;
  bool usable() const { return !unusable.has_value(); }
};

// What the data of a matching type 0 (full) record is: DER, as on the wire
// (it must parse completely as a certificate or SubjectPublicKeyInfo), or a
// stand-in for DER (the simulator's model, whose chains are stand-in bytes,
// docs/scenarios.md): every other rule applies alike.
enum class TlsaData : uint8_t { der, stand_in };

// The one rule (tlsa_usability.cpp): the verifier, the TLS client, the
// relay and the simulator's literal records all classify here.
TlsaUsability classify_tlsa_record(const TlsaRecord& record, TlsaData data = TlsaData::der);

struct DaneVerifyOptions {
  // RFC 7672 §3.1.1 and SPEC §4: for SMTP a DANE-EE match ignores names
  // (OpenSSL's DANE_FLAG_NO_DANE_EE_NAMECHECKS). True only for protocols
  // where an "unknown key share" matters, and for OpenSSL's own test cases.
  bool dane_ee_name_checks = false;
  // RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are not used for SMTP, so by
  // default they never reach OpenSSL (they count as unusable). True only to
  // replay OpenSSL's conformance cases, which also test those usages.
  bool pkix_usages = false;
  // Trust anchors for the PKIX usages, as PEM certificates. SMTP DANE never
  // uses the WebPKI: leave empty outside tests.
  std::string trust_store_pem;
  // The moment to verify at, seconds since the epoch; empty: now. Tests pin
  // it so they do not depend on the clock.
  std::optional<int64_t> verify_time;
};

struct DaneVerification {
  // OpenSSL's verdict: an X509_V_* code (0 is X509_V_OK) and its text.
  int verify_error = 0;
  std::string verify_error_text;
  // SSL_get0_dane_authority(): -1 no match, 0 the leaf, n the chain
  // certificate at depth n. Reported also when the chain was then rejected
  // for another reason (a DANE-TA match with a name mismatch gives depth 1
  // or 2 and error 62), as OpenSSL's own tests do.
  int match_depth = -1;
  // SSL_get0_dane_tlsa(): the record that matched (when match_depth >= 0).
  std::optional<TlsaRecord> matched;
  // Records handed to OpenSSL and accepted / not used (classifier or
  // OpenSSL said unusable, or a PKIX usage while pkix_usages is off).
  int usable = 0;
  int unusable = 0;
  // The summary for decide(): one kind per input record (in order) and
  // their union for PeerFacts::tlsa. A usable record is *_match when it is
  // the record that authenticated the chain, else *_mismatch. The summary
  // is built so that decide() reaches OpenSSL's verdict: a DANE-TA match
  // rejected for the leaf's name or dates stays dane_ta_match and `cert`
  // says why (wrong_name, expired), as the engine's DANE-TA rule expects;
  // a match rejected for any other reason is summarised as a mismatch.
  std::vector<TlsaKind> record_kinds;
  TlsaKindSet kinds = 0;
  CertStatus cert = CertStatus::valid;
  // Why each unusable record is unusable, one line each (`3 1 1 ...`: ...).
  std::vector<std::string> notes;
  // Non-empty when the inputs could not be used at all (no chain, a chain
  // or trust store that is not PEM, no reference name, an OpenSSL internal
  // failure); the verdict is then a failure.
  std::string problem;

  // Authenticated by DANE: at least one usable record, a match, and
  // OpenSSL accepted the chain. (With no usable record OpenSSL falls back
  // to the trust store: that success is not DANE.)
  bool dane_authenticated() const { return problem.empty() && usable > 0 && verify_error == 0 && match_depth >= 0; }
};

// Verifies `chain` (leaf first, the certificates the peer sent) against
// `records`. `names` are the reference identifiers (RFC 7672 §3.2): the
// first is the TLSA base domain (the MX host: SSL_dane_enable()), the
// others are also accepted (SSL_add1_host(), e.g. the next-hop domain).
// Names are checked for DANE-TA (and for DANE-EE only when asked), with
// wildcards covering a whole leftmost label only.
DaneVerification verify_dane(std::span<X509* const> chain, std::span<const TlsaRecord> records,
                             std::span<const std::string> names, const DaneVerifyOptions& options = {});

// The same with the chain as PEM text (text between the blocks ignored).
DaneVerification verify_dane_pem(std::string_view chain_pem, std::span<const TlsaRecord> records,
                                 std::span<const std::string> names, const DaneVerifyOptions& options = {});

}  // namespace tlsp
