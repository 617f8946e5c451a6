// dane.cpp — TLSA records and DANE verification (tlsp/dane.h).
//
// Verification drives OpenSSL's public DANE API the way a TLS client does
// (SSL_CTX_dane_enable, SSL_dane_enable, SSL_dane_tlsa_add,
// SSL_dane_set_flags), but verifies a chain the peer already sent instead
// of doing a handshake: an X509_STORE_CTX gets the SSL handle's DANE state
// (X509_STORE_CTX_set0_dane) and its verification parameters (reference
// names, purpose, security level), which is what the handshake does inside
// ssl_verify_cert_chain(). Matching itself stays OpenSSL's: reimplementing
// it would be a second, untested DANE verifier, and the conformance cases
// are OpenSSL's own.
//
// Whether a record is usable at all is tlsa_usability.cpp's
// (classify_tlsa_record), which the verifier asks first.
#include "tlsp/dane.h"

#include "tlsp/base/quote.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <limits>
#include <memory>

namespace tlsp {
namespace {

// ---------------------------------------------------------------- text

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

using base::ticked;

std::string hex(const uint8_t* p, size_t n) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 0xF];
  }
  return out;
}

// The record as it appears in notes: the parameters and the start of the
// data, enough to find it in a zone file.
std::string short_form(const TlsaRecord& r) {
  constexpr size_t kShownBytes = 8;
  std::string s = std::to_string(r.usage) + " " + std::to_string(r.selector) + " " + std::to_string(r.mtype) + " " +
                  hex(r.data.data(), std::min(r.data.size(), kShownBytes));
  if (r.data.size() > kShownBytes) s += "...";
  return "`" + s + "`";
}

struct Mnemonic {
  std::string_view name;
  uint8_t value;
};

// RFC 7218 (and the IANA registry's private-use names).
constexpr std::array<Mnemonic, 5> kUsageNames = {
    {{"PKIX-TA", 0}, {"PKIX-EE", 1}, {"DANE-TA", 2}, {"DANE-EE", 3}, {"PrivCert", 255}}};
constexpr std::array<Mnemonic, 3> kSelectorNames = {{{"Cert", 0}, {"SPKI", 1}, {"PrivSel", 255}}};
constexpr std::array<Mnemonic, 4> kMtypeNames = {{{"Full", 0}, {"SHA2-256", 1}, {"SHA2-512", 2}, {"PrivMatch", 255}}};

template <size_t N>
std::optional<uint8_t> parse_field(std::string_view token, const std::array<Mnemonic, N>& names) {
  if (!token.empty() && is_digit(token[0])) {
    unsigned v = 0;
    for (char c : token) {
      if (!is_digit(c)) return std::nullopt;
      v = v * 10 + static_cast<unsigned>(c - '0');
      if (v > 255) return std::nullopt;  // also stops overflow on long inputs
    }
    return static_cast<uint8_t>(v);
  }
  for (const auto& m : names)
    if (iequals(token, m.name)) return m.value;
  return std::nullopt;
}

// ------------------------------------------------------------- OpenSSL

struct SslCtxFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct ChainFree {
  void operator()(STACK_OF(X509) * p) const { sk_X509_pop_free(p, X509_free); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using ChainPtr = std::unique_ptr<STACK_OF(X509), ChainFree>;

// OpenSSL reports through a per-thread error queue. Everything this file
// pushes there is popped again on the way out, so a caller's queue looks
// the same before and after (a stale entry would be blamed on its next
// TLS call).
class ErrorMark {
 public:
  ErrorMark() { ERR_set_mark(); }
  ~ErrorMark() { ERR_pop_to_mark(); }
  ErrorMark(const ErrorMark&) = delete;
  ErrorMark& operator=(const ErrorMark&) = delete;
};

std::string last_openssl_error() {
  unsigned long e = ERR_peek_last_error();
  if (e == 0) return "no detail from openssl";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// Passphrases never apply: certificates are not encrypted, and OpenSSL's
// default callback would otherwise prompt on the terminal.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

// Reads every certificate in `pem` (text outside the blocks ignored).
// Returns the problem, or "" when the text was read to its end.
std::string read_pem_certs(std::string_view pem, bool trusted_form, std::vector<X509Ptr>& out) {
  if (pem.size() > static_cast<size_t>(std::numeric_limits<int>::max())) return "the PEM text is too long";
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return "openssl cannot allocate a buffer: " + last_openssl_error();
  while (true) {
    X509* x = trusted_form ? PEM_read_bio_X509_AUX(bio.get(), nullptr, no_passphrase, nullptr)
                           : PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr);
    if (x == nullptr) break;
    out.emplace_back(x);
  }
  // The loop ends at the end of the text ("no start line") or at a block
  // that is not a certificate.
  unsigned long e = ERR_peek_last_error();
  if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) return "";
  return "certificate " + std::to_string(out.size() + 1) + " is not valid PEM: " + last_openssl_error();
}

DaneVerification failed(DaneVerification r, std::string problem) {
  r.problem = std::move(problem);
  r.verify_error = X509_V_ERR_UNSPECIFIED;
  r.verify_error_text = X509_verify_cert_error_string(r.verify_error);
  r.match_depth = -1;
  r.matched.reset();
  r.usable = 0;
  return r;
}

}  // namespace

// ------------------------------------------------------- presentation form

TlsaParse<TlsaRecord> parse_tlsa_record(std::string_view text) {
  TlsaParse<TlsaRecord> result;
  auto fail = [&](std::string problem) {
    result.problem = std::move(problem);
    return result;
  };
  std::vector<std::string_view> tokens;
  for (size_t i = 0; i < text.size();) {
    while (i < text.size() && is_space(text[i])) ++i;
    size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > start) tokens.push_back(text.substr(start, i - start));
  }
  if (tokens.empty()) return fail("the TLSA record is empty");
  static constexpr std::string_view kField[] = {"certificate usage", "selector", "matching type"};
  if (tokens.size() < 4)
    return fail("the TLSA record has no " +
                std::string(tokens.size() < 3 ? kField[tokens.size()] : "certificate association data") +
                "; expected `usage selector mtype data`");

  TlsaRecord r;
  auto usage = parse_field(tokens[0], kUsageNames);
  if (!usage) return fail("certificate usage " + ticked(tokens[0]) + " is not a number from 0 to 255 or a usage name");
  auto selector = parse_field(tokens[1], kSelectorNames);
  if (!selector) return fail("selector " + ticked(tokens[1]) + " is not a number from 0 to 255 or a selector name");
  auto mtype = parse_field(tokens[2], kMtypeNames);
  if (!mtype) return fail("matching type " + ticked(tokens[2]) + " is not a number from 0 to 255 or a type name");
  r.usage = *usage;
  r.selector = *selector;
  r.mtype = *mtype;

  // RFC 6698 §2.2: the data is hex, and may be split by white space.
  size_t digits = 0;
  int high = -1;
  for (size_t t = 3; t < tokens.size(); ++t) {
    for (char c : tokens[t]) {
      int v = hex_value(c);
      if (v < 0)
        return fail("certificate association data " + ticked(tokens[t]) + " is not hexadecimal (" + ticked({&c, 1}) +
                    ")");
      ++digits;
      if (high < 0) {
        high = v;
      } else {
        r.data.push_back(static_cast<uint8_t>(high << 4 | v));
        high = -1;
      }
      if (r.data.size() > kMaxTlsaDataBytes)
        return fail("certificate association data is longer than " + std::to_string(kMaxTlsaDataBytes) +
                    " bytes, the most a TLSA record holds");
    }
  }
  if (high >= 0)
    return fail("certificate association data has an odd number of hex digits (" + std::to_string(digits) + ")");
  result.value = std::move(r);
  return result;
}

std::string format_tlsa_record(const TlsaRecord& r) {
  return std::to_string(r.usage) + " " + std::to_string(r.selector) + " " + std::to_string(r.mtype) + " " +
         hex(r.data.data(), r.data.size());
}

// --------------------------------------------------------------- verifier

namespace {

DaneVerification verify_chain(std::span<X509* const> chain, std::span<const TlsaRecord> records,
                              std::span<const std::string> names, const DaneVerifyOptions& options) {
  ErrorMark mark;
  DaneVerification result;

  // Judge every record first, so the summary is complete even when the
  // chain cannot be verified. A usable record starts as a mismatch and
  // becomes a match only when OpenSSL says it authenticated the chain.
  std::vector<bool> to_openssl(records.size(), false);
  for (size_t i = 0; i < records.size(); ++i) {
    const TlsaRecord& rec = records[i];
    TlsaUsability u = classify_tlsa_record(rec);
    const bool pkix = rec.usage <= 1;
    if (u.usable()) {
      result.record_kinds.push_back(u.kind_before_match);
      to_openssl[i] = true;
    } else {
      result.record_kinds.push_back(*u.unusable);
      // With pkix_usages on, OpenSSL judges the PKIX record itself; its
      // kind stays pkix_*, which the engine never uses.
      if (pkix && options.pkix_usages)
        to_openssl[i] = true;
      else
        result.notes.push_back(short_form(rec) + ": " + u.problem);
    }
  }

  if (chain.empty()) return failed(std::move(result), "the peer sent no certificate");
  for (X509* x : chain)
    if (x == nullptr) return failed(std::move(result), "the certificate chain has a null entry");
  if (names.empty() || names[0].empty()) return failed(std::move(result), "no reference name (the TLSA base domain)");

  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx || SSL_CTX_dane_enable(ctx.get()) <= 0)
    return failed(std::move(result), "openssl cannot enable DANE: " + last_openssl_error());
  // These are OpenSSL's defaults, set here so the preference does not hang
  // on a default: a larger ordinal is stronger, and when one usage and
  // selector has records of both types only SHA2-512 ones are used
  // (RFC 7671 §9, digest algorithm agility).
  if (SSL_CTX_dane_mtype_set(ctx.get(), EVP_sha256(), 1, 1) <= 0 ||
      SSL_CTX_dane_mtype_set(ctx.get(), EVP_sha512(), 2, 2) <= 0)
    return failed(std::move(result), "openssl cannot set the DANE digests: " + last_openssl_error());

  // A fresh SSL_CTX has an empty store (no system CAs): only what the
  // caller gives is trusted, and for SMTP that is nothing.
  if (!options.trust_store_pem.empty()) {
    std::vector<X509Ptr> anchors;
    std::string problem = read_pem_certs(options.trust_store_pem, true, anchors);
    if (!problem.empty()) return failed(std::move(result), "the trust store: " + problem);
    if (anchors.empty()) return failed(std::move(result), "the trust store holds no certificate");
    X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
    for (const auto& a : anchors)
      if (X509_STORE_add_cert(store, a.get()) != 1)
        return failed(std::move(result), "openssl cannot add a trust anchor: " + last_openssl_error());
  }

  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  if (!ssl) return failed(std::move(result), "openssl cannot create a connection: " + last_openssl_error());
  SSL_set_connect_state(ssl.get());
  if (SSL_dane_enable(ssl.get(), names[0].c_str()) <= 0)
    return failed(std::move(result),
                  "openssl does not accept the TLSA base domain " + ticked(names[0]) + ": " + last_openssl_error());
  for (size_t i = 1; i < names.size(); ++i)
    if (SSL_add1_host(ssl.get(), names[i].c_str()) != 1)
      return failed(std::move(result),
                    "openssl does not accept the reference name " + ticked(names[i]) + ": " + last_openssl_error());
  // RFC 7672 §3.2: a wildcard matches one whole leftmost label only.
  SSL_set_hostflags(ssl.get(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (!options.dane_ee_name_checks) SSL_dane_set_flags(ssl.get(), DANE_FLAG_NO_DANE_EE_NAMECHECKS);

  for (size_t i = 0; i < records.size(); ++i) {
    if (!to_openssl[i]) {
      ++result.unusable;
      continue;
    }
    const TlsaRecord& rec = records[i];
    int rc = SSL_dane_tlsa_add(ssl.get(), rec.usage, rec.selector, rec.mtype, rec.data.data(), rec.data.size());
    if (rc < 0)
      return failed(std::move(result),
                    "openssl failed to load TLSA record " + short_form(rec) + ": " + last_openssl_error());
    if (rc == 0) {
      // The classifier accepted what OpenSSL refuses (or a PKIX record is
      // malformed): OpenSSL is what verifies, so OpenSSL decides.
      ++result.unusable;
      if (rec.usage >= 2) result.record_kinds[i] = TlsaKind::bad_length;
      result.notes.push_back(short_form(rec) + ": openssl rejects it: " + last_openssl_error());
      continue;
    }
    ++result.usable;
  }

  ChainPtr untrusted(sk_X509_new_null());
  if (!untrusted) return failed(std::move(result), "openssl cannot allocate the chain: " + last_openssl_error());
  for (X509* x : chain) {
    if (!sk_X509_push(untrusted.get(), x))
      return failed(std::move(result), "openssl cannot allocate the chain: " + last_openssl_error());
    X509_up_ref(x);
  }

  // What ssl_verify_cert_chain() does during a handshake, minus the
  // handshake: the peer's certificates as untrusted, the server purpose,
  // the connection's names and security level, and its DANE state.
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> sctx(X509_STORE_CTX_new());
  if (!sctx || X509_STORE_CTX_init(sctx.get(), SSL_CTX_get_cert_store(ctx.get()), chain[0], untrusted.get()) != 1 ||
      X509_STORE_CTX_set_ex_data(sctx.get(), SSL_get_ex_data_X509_STORE_CTX_idx(), ssl.get()) != 1 ||
      X509_STORE_CTX_set_default(sctx.get(), "ssl_server") != 1)
    return failed(std::move(result), "openssl cannot set up verification: " + last_openssl_error());
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(sctx.get());
  if (X509_VERIFY_PARAM_set1(param, SSL_get0_param(ssl.get())) != 1)
    return failed(std::move(result), "openssl cannot set up verification: " + last_openssl_error());
  X509_VERIFY_PARAM_set_auth_level(param, SSL_get_security_level(ssl.get()));
  if (options.verify_time) X509_STORE_CTX_set_time(sctx.get(), 0, static_cast<time_t>(*options.verify_time));
  X509_STORE_CTX_set0_dane(sctx.get(), SSL_get0_dane(ssl.get()));

  int ok = X509_verify_cert(sctx.get());
  int err = X509_STORE_CTX_get_error(sctx.get());
  // A negative return or a failure without a code is an internal error;
  // it must never read as success.
  if (ok <= 0 && err == X509_V_OK) err = X509_V_ERR_UNSPECIFIED;
  result.verify_error = err;
  result.verify_error_text = X509_verify_cert_error_string(err);

  // OpenSSL hides the match once verification failed. Like its own tests,
  // look under the hood with the result set to OK for a moment, so a
  // DANE-TA match that failed the name check is still reported (the
  // engine needs it to say "wrong name" rather than "no match").
  SSL_set_verify_result(ssl.get(), X509_V_OK);
  uint8_t usage = 0, selector = 0, mtype = 0;
  const unsigned char* data = nullptr;
  size_t dlen = 0;
  result.match_depth = SSL_get0_dane_tlsa(ssl.get(), &usage, &selector, &mtype, &data, &dlen);
  SSL_set_verify_result(ssl.get(), err);
  if (result.match_depth < 0) {
    result.match_depth = -1;
    return result;
  }
  result.matched = TlsaRecord{usage, selector, mtype, std::vector<uint8_t>(data, data + dlen)};

  // Keep the summary's verdict equal to OpenSSL's (see the header).
  bool counts = err == X509_V_OK;
  if (!counts && usage == 2) {
    if (err == X509_V_ERR_HOSTNAME_MISMATCH) {
      counts = true;
      result.cert = CertStatus::wrong_name;
    } else if (err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID) {
      counts = true;
      result.cert = CertStatus::expired;
    }
  }
  if (counts && usage >= 2)
    for (size_t i = 0; i < records.size(); ++i)
      if (to_openssl[i] && records[i] == *result.matched && result.record_kinds[i] != TlsaKind::bad_length)
        result.record_kinds[i] = usage == 3 ? TlsaKind::dane_ee_match : TlsaKind::dane_ta_match;
  return result;
}

}  // namespace

DaneVerification verify_dane(std::span<X509* const> chain, std::span<const TlsaRecord> records,
                             std::span<const std::string> names, const DaneVerifyOptions& options) {
  DaneVerification r = verify_chain(chain, records, names, options);
  for (TlsaKind k : r.record_kinds) r.kinds |= tlsa_bit(k);
  return r;
}

DaneVerification verify_dane_pem(std::string_view chain_pem, std::span<const TlsaRecord> records,
                                 std::span<const std::string> names, const DaneVerifyOptions& options) {
  std::vector<X509Ptr> certs;
  std::string problem;
  {
    ErrorMark mark;
    problem = read_pem_certs(chain_pem, false, certs);
  }
  if (!problem.empty() || certs.empty()) {
    // Classify anyway so the summary says what the records were.
    DaneVerification r = verify_dane({}, records, names, options);
    r.problem = problem.empty() ? "the peer chain holds no PEM certificate" : "the peer chain: " + problem;
    return r;
  }
  std::vector<X509*> raw;
  for (const auto& c : certs) raw.push_back(c.get());
  return verify_dane(raw, records, names, options);
}

}  // namespace tlsp
