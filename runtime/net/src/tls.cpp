// tls.cpp — the relay's TLS on OpenSSL 3 (tlsp/tls.h): the STARTTLS
// handshakes of tlsp::Stream, what the client saw (version, WebPKI status,
// DANE verdict), and the server context.
//
// Client context: one SSL_CTX for every client connection, made on first
// use and never freed (OpenSSL contexts are safe to share once configured).
// Everything that varies per connection is set on the SSL handle instead:
// protocol range, security level, SNI, DANE state, verification time. The
// context has DANE enabled (SSL_CTX_dane_enable) and an empty trust store,
// so a DANE connection without usable records authenticates nothing, as in
// verify_dane().
//
// DANE runs live in the handshake through OpenSSL's DANE API. The summary
// for the engine (tlsa_kinds, dane_cert) follows the rules of
// verify_dane() in dane.cpp, restated here in summarise_dane() rather than
// shared, since dane.cpp keeps them private; tests/net/tls_test.cpp checks
// both give the same answer on the same chain.
//
// WebPKI (MTA-STS) is checked after the handshake with its own
// X509_STORE_CTX: the peer's chain as untrusted certificates, the CA bundle
// as the trust store, sni as the reference name. Bundles are cached by
// path, size and modification time (at most kMaxCachedBundles), since the
// system bundle takes milliseconds to parse and a relay checks it per
// connection.
//
// Server context: min/max protocol and SSL_OP_NO_* for holes in the set,
// and a client-hello callback that lowers the security level to 0 for one
// session when the version that session will negotiate is below TLS 1.2:
// OpenSSL 3 refuses the SHA-1 signatures TLS 1.0/1.1 need at level 1, so
// without it a legacy client (or a legacy-only server) never completes.
#include "tlsp/tls.h"

#include "stream_impl.h"
#include "tlsp/base/digest.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>

namespace tlsp {
namespace {

using Clock = std::chrono::steady_clock;

// How many CA bundles stay parsed (a relay uses one or two).
constexpr size_t kMaxCachedBundles = 8;
// OpenSSL error-queue entries quoted in a failure message.
constexpr int kMaxErrorsQuoted = 3;

struct StoreFree {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};
using StorePtr = std::unique_ptr<X509_STORE, StoreFree>;

int proto_of(TlsVersion v) {
  switch (v) {
    case TlsVersion::tls1_0:
      return TLS1_VERSION;
    case TlsVersion::tls1_1:
      return TLS1_1_VERSION;
    case TlsVersion::tls1_2:
      return TLS1_2_VERSION;
    case TlsVersion::tls1_3:
      return TLS1_3_VERSION;
    case TlsVersion::none:
      break;
  }
  return 0;
}

TlsVersion version_of_proto(int proto) {
  switch (proto) {
    case TLS1_VERSION:
      return TlsVersion::tls1_0;
    case TLS1_1_VERSION:
      return TlsVersion::tls1_1;
    case TLS1_2_VERSION:
      return TlsVersion::tls1_2;
    case TLS1_3_VERSION:
      return TlsVersion::tls1_3;
    default:
      return TlsVersion::none;
  }
}

constexpr TlsVersion kVersions[] = {TlsVersion::tls1_0, TlsVersion::tls1_1, TlsVersion::tls1_2, TlsVersion::tls1_3};

uint64_t no_version_option(TlsVersion v) {
  switch (v) {
    case TlsVersion::tls1_0:
      return SSL_OP_NO_TLSv1;
    case TlsVersion::tls1_1:
      return SSL_OP_NO_TLSv1_1;
    case TlsVersion::tls1_2:
      return SSL_OP_NO_TLSv1_2;
    case TlsVersion::tls1_3:
      return SSL_OP_NO_TLSv1_3;
    case TlsVersion::none:
      break;
  }
  return 0;
}

TlsVersion lowest(TlsVersionSet set) {
  for (TlsVersion v : kVersions)
    if (set & version_bit(v)) return v;
  return TlsVersion::none;
}
TlsVersion highest(TlsVersionSet set) {
  TlsVersion h = TlsVersion::none;
  for (TlsVersion v : kVersions)
    if (set & version_bit(v)) h = v;
  return h;
}

// The protocol range for exactly `set`: min and max, and the versions in
// between that are not in the set switched off. Returns false when OpenSSL
// refuses (it never should for these constants).
template <typename Handle>
bool restrict_versions(Handle* h, TlsVersionSet set, int (*set_min)(Handle*, int), int (*set_max)(Handle*, int),
                       uint64_t (*set_options)(Handle*, uint64_t)) {
  const TlsVersion lo = lowest(set), hi = highest(set);
  if (lo == TlsVersion::none) return false;
  if (set_min(h, proto_of(lo)) != 1 || set_max(h, proto_of(hi)) != 1) return false;
  uint64_t holes = 0;
  for (TlsVersion v : kVersions)
    if (v > lo && v < hi && !(set & version_bit(v))) holes |= no_version_option(v);
  if (holes != 0) set_options(h, holes);
  return true;
}

int ssl_set_min(SSL* s, int v) {
  return static_cast<int>(SSL_set_min_proto_version(s, v));
}
int ssl_set_max(SSL* s, int v) {
  return static_cast<int>(SSL_set_max_proto_version(s, v));
}
uint64_t ssl_set_options(SSL* s, uint64_t o) {
  return SSL_set_options(s, o);
}
int ctx_set_min(SSL_CTX* c, int v) {
  return static_cast<int>(SSL_CTX_set_min_proto_version(c, v));
}
int ctx_set_max(SSL_CTX* c, int v) {
  return static_cast<int>(SSL_CTX_set_max_proto_version(c, v));
}
uint64_t ctx_set_options(SSL_CTX* c, uint64_t o) {
  return SSL_CTX_set_options(c, o);
}

std::string error_text(unsigned long e) {
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// Why an SSL call failed, in OpenSSL's words, and whether it was because
// the two sides have no protocol version in common. Drains the queue.
struct HandshakeFailure {
  std::string text;
  bool version_refused = false;
};

bool is_version_reason(int reason) {
  switch (reason) {
    case SSL_R_UNSUPPORTED_PROTOCOL:          // the peer's version is not enabled here
    case SSL_R_NO_PROTOCOLS_AVAILABLE:        // nothing enabled at this security level
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:  // the peer said so (alert 70)
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_WRONG_SSL_VERSION:
    case SSL_R_UNSUPPORTED_SSL_VERSION:
    case SSL_R_BAD_PROTOCOL_VERSION_NUMBER:
      return true;
    default:
      return false;
  }
}

HandshakeFailure describe_failure(IoStatus status, int ssl_error, const char* what) {
  HandshakeFailure f;
  if (status == IoStatus::timeout) {
    ERR_clear_error();
    f.text = std::string("timed out in the ") + what;
    return f;
  }
  int quoted = 0;
  while (unsigned long e = ERR_get_error()) {
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && is_version_reason(ERR_GET_REASON(e))) f.version_refused = true;
    if (quoted++ < kMaxErrorsQuoted) f.text += (f.text.empty() ? "" : "; ") + error_text(e);
  }
  if (f.text.empty()) {
    if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN)
      f.text = errno != 0 ? std::string("connection error: ") + std::strerror(errno) : "the peer closed the connection";
    else
      f.text = "ssl error " + std::to_string(ssl_error);
  }
  f.text = std::string(what) + " failed: " + f.text;
  return f;
}

// ------------------------------------------------------------ client context

SSL_CTX* client_context(std::string& error) {
  static std::once_flag once;
  static SSL_CTX* ctx = nullptr;
  static std::string problem;
  std::call_once(once, [] {
    SSL_CTX* c = SSL_CTX_new(TLS_client_method());
    // The digests and their order are OpenSSL's defaults, pinned as
    // dane.cpp pins them so the two verifiers cannot drift apart.
    if (c == nullptr || SSL_CTX_dane_enable(c) <= 0 || SSL_CTX_dane_mtype_set(c, EVP_sha256(), 1, 1) <= 0 ||
        SSL_CTX_dane_mtype_set(c, EVP_sha512(), 2, 2) <= 0) {
      problem = "openssl cannot make the client context: " + error_text(ERR_get_error());
      SSL_CTX_free(c);
      ERR_clear_error();
      return;
    }
    // The handshake never fails on the certificate: the result reports it
    // and the engine decides (tlsp/tls.h).
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
    ctx = c;
  });
  if (ctx == nullptr) error = problem;
  return ctx;
}

// ------------------------------------------------------------- CA bundles

struct BundleKey {
  std::string path;
  off_t size;
  int64_t mtime_ns;
  auto operator<=>(const BundleKey&) const = default;
};

// A parsed CA bundle (the caller owns one reference), or null with `error`.
StorePtr ca_store(const std::string& path, std::string& error) {
  static std::mutex mutex;
  static std::map<BundleKey, StorePtr> cache;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    error = "cannot read CA bundle `" + path + "`: " + std::strerror(errno);
    return nullptr;
  }
  BundleKey key{path, st.st_size, static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  std::lock_guard lock(mutex);
  auto it = cache.find(key);
  if (it == cache.end()) {
    StorePtr store(X509_STORE_new());
    if (!store || X509_STORE_load_file(store.get(), path.c_str()) != 1) {
      error = "cannot load CA bundle `" + path + "`: " + error_text(ERR_get_error());
      ERR_clear_error();
      return nullptr;
    }
    // An older version of the same file, or too many files: forget them.
    for (auto i = cache.begin(); i != cache.end();)
      i = (i->first.path == path || cache.size() >= kMaxCachedBundles) ? cache.erase(i) : std::next(i);
    it = cache.emplace(key, std::move(store)).first;
  }
  X509_STORE_up_ref(it->second.get());
  return StorePtr(it->second.get());
}

CertStatus webpki_status(int err) {
  switch (err) {
    case X509_V_OK:
      return CertStatus::valid;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
      return CertStatus::expired;
    case X509_V_ERR_HOSTNAME_MISMATCH:
      return CertStatus::wrong_name;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      return CertStatus::self_signed;
    default:
      // No path to a trusted root (unknown issuer, a self-signed root not
      // in the bundle, a bad signature, a CA that may not issue): for the
      // engine all of these are "not trusted".
      return CertStatus::untrusted;
  }
}

// OpenSSL verifies in a fixed order (chain building and trust, then
// extensions, then the name, then signatures and dates) and stops at the
// first error, so the error it reports is the most basic fault: a chain
// that is both untrusted and expired is reported untrusted.
void check_webpki(SSL* ssl, const TlsClientParams& p, TlsClientResult& r) {
  std::string error;
  StorePtr store = ca_store(p.ca_file, error);
  if (!store) {
    r.webpki = CertStatus::untrusted;
    r.webpki_detail = error;
    return;
  }
  X509* leaf = SSL_get0_peer_certificate(ssl);
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  if (leaf == nullptr) {
    r.webpki = CertStatus::untrusted;
    r.webpki_detail = "the peer sent no certificate";
    return;
  }
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> sctx(X509_STORE_CTX_new());
  if (!sctx || X509_STORE_CTX_init(sctx.get(), store.get(), leaf, chain) != 1 ||
      X509_STORE_CTX_set_default(sctx.get(), "ssl_server") != 1) {
    r.webpki = CertStatus::untrusted;
    r.webpki_detail = "openssl cannot set up verification: " + error_text(ERR_get_error());
    ERR_clear_error();
    return;
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(sctx.get());
  if (!p.sni.empty()) {
    X509_VERIFY_PARAM_set1_host(param, p.sni.c_str(), p.sni.size());
    // RFC 8461 §4.2 (via RFC 6125): a wildcard is a whole leftmost label.
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  }
  if (p.verify_time) X509_STORE_CTX_set_time(sctx.get(), 0, static_cast<time_t>(*p.verify_time));
  int ok = X509_verify_cert(sctx.get());
  int err = X509_STORE_CTX_get_error(sctx.get());
  if (ok <= 0 && err == X509_V_OK) err = X509_V_ERR_UNSPECIFIED;
  ERR_clear_error();
  r.webpki = webpki_status(err);
  r.webpki_detail = X509_verify_cert_error_string(err);
  if (err != X509_V_OK) r.webpki_detail += " at depth " + std::to_string(X509_STORE_CTX_get_error_depth(sctx.get()));
}

// ------------------------------------------------------------------- DANE

// What the DANE set-up did before the handshake: per record, whether it
// went to OpenSSL, and the kind it has until the match is known.
struct DaneSetup {
  bool enabled = false;
  std::vector<bool> to_openssl;
  std::vector<TlsaKind> kinds;
  std::vector<std::string> notes;
  int usable = 0;
  std::string problem;
};

// The record as notes show it: parameters and the first bytes of the data,
// enough to find it in a zone file (the form verify_dane() uses).
std::string short_record(const TlsaRecord& r) {
  constexpr size_t kShownBytes = 8;
  TlsaRecord head = r;
  if (head.data.size() > kShownBytes) head.data.resize(kShownBytes);
  std::string s = format_tlsa_record(head);
  if (r.data.size() > kShownBytes) s += "...";
  return "`" + s + "`";
}

// The classifier's verdict for every record, then OpenSSL's (as
// verify_dane() does): usable records start as mismatches.
DaneSetup setup_dane(SSL* ssl, const TlsClientParams& p) {
  DaneSetup d;
  for (const TlsaRecord& rec : p.tlsa) {
    TlsaUsability u = classify_tlsa_record(rec);
    d.to_openssl.push_back(u.usable());
    if (u.usable()) {
      d.kinds.push_back(u.kind_before_match);
    } else {
      d.kinds.push_back(*u.unusable);
      d.notes.push_back(short_record(rec) + ": " + u.problem);
    }
  }
  const std::string& base = !p.sni.empty() ? p.sni : (p.dane_names.empty() ? p.sni : p.dane_names.front());
  if (base.empty()) {
    d.problem = "no reference name (the TLSA base domain)";
    return d;
  }
  if (SSL_dane_enable(ssl, base.c_str()) <= 0) {
    d.problem = "openssl does not accept the TLSA base domain `" + base + "`: " + error_text(ERR_get_error());
    ERR_clear_error();
    return d;
  }
  d.enabled = true;
  for (const std::string& n : p.dane_names)
    if (n != base && SSL_add1_host(ssl, n.c_str()) != 1) {
      d.notes.push_back("openssl does not accept the reference name `" + n + "`");
      ERR_clear_error();
    }
  // RFC 7672 §3.2: a wildcard matches one whole leftmost label only; §3.1.1:
  // a DANE-EE match ignores names.
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
  for (size_t i = 0; i < p.tlsa.size(); ++i) {
    if (!d.to_openssl[i]) continue;
    const TlsaRecord& rec = p.tlsa[i];
    int rc = SSL_dane_tlsa_add(ssl, rec.usage, rec.selector, rec.mtype, rec.data.data(), rec.data.size());
    if (rc > 0) {
      ++d.usable;
      continue;
    }
    // The classifier accepted what OpenSSL refuses: OpenSSL verifies, so
    // OpenSSL decides (as in verify_dane()).
    d.to_openssl[i] = false;
    d.kinds[i] = TlsaKind::bad_length;
    d.notes.push_back(short_record(rec) + ": openssl rejects it: " + error_text(ERR_get_error()));
    ERR_clear_error();
  }
  return d;
}

// After the handshake: OpenSSL's verdict and the summary, by verify_dane()'s
// rules (tlsp/dane.h, DaneVerification).
void summarise_dane(SSL* ssl, const TlsClientParams& p, DaneSetup& d, TlsClientResult& r) {
  auto finish = [&](const std::string& head) {
    r.tlsa_kinds = 0;
    for (TlsaKind k : d.kinds) r.tlsa_kinds |= tlsa_bit(k);
    r.dane_detail = head;
    for (const std::string& n : d.notes) r.dane_detail += "; " + n;
  };
  if (!d.problem.empty() || !d.enabled) {
    finish(d.problem);
    return;
  }
  const long err = SSL_get_verify_result(ssl);
  // OpenSSL hides the match once verification failed; like verify_dane(),
  // look with the result set to OK for a moment so a DANE-TA match that
  // failed the name or date check is still seen.
  SSL_set_verify_result(ssl, X509_V_OK);
  uint8_t usage = 0, selector = 0, mtype = 0;
  const unsigned char* data = nullptr;
  size_t dlen = 0;
  int depth = SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data, &dlen);
  SSL_set_verify_result(ssl, err);
  std::string head = X509_verify_cert_error_string(err);
  r.dane_depth = depth < 0 ? -1 : depth;
  r.dane_authenticated = d.usable > 0 && err == X509_V_OK && depth >= 0;
  if (depth >= 0) {
    const TlsaRecord matched{usage, selector, mtype, std::vector<uint8_t>(data, data + dlen)};
    bool counts = err == X509_V_OK;
    if (!counts && usage == 2) {
      if (err == X509_V_ERR_HOSTNAME_MISMATCH) {
        counts = true;
        r.dane_cert = CertStatus::wrong_name;
      } else if (err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID) {
        counts = true;
        r.dane_cert = CertStatus::expired;
      }
    }
    if (counts && usage >= 2)
      for (size_t i = 0; i < p.tlsa.size(); ++i)
        if (d.to_openssl[i] && p.tlsa[i] == matched && d.kinds[i] != TlsaKind::bad_length)
          d.kinds[i] = usage == 3 ? TlsaKind::dane_ee_match : TlsaKind::dane_ta_match;
    head = (usage == 3   ? "dane-ee"
            : usage == 2 ? "dane-ta"
                         : "pkix") +
           std::string(" match at depth ") + std::to_string(depth) + ": " + head;
  } else if (d.usable == 0) {
    head = "no usable TLSA record: " + head;
  } else {
    head = "no TLSA record matches: " + head;
  }
  finish(head);
}

std::string subject_of(X509* cert) {
  if (cert == nullptr) return "";
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "";
  X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* text = nullptr;
  long n = BIO_get_mem_data(bio, &text);
  std::string out(text, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

std::string issuer_of(X509* cert) {
  if (cert == nullptr) return "";
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "";
  X509_NAME_print_ex(bio, X509_get_issuer_name(cert), 0, XN_FLAG_RFC2253);
  char* text = nullptr;
  long n = BIO_get_mem_data(bio, &text);
  std::string out(text, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

std::string fingerprint_of(X509* cert) {
  if (cert == nullptr) return "";
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert, &der);
  if (n <= 0) return "";
  std::string bytes(reinterpret_cast<const char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  const auto d = base::sha256(bytes);
  return base::hex(d);
}

// The negotiated key exchange group (TLS 1.3, and ECDHE in TLS 1.2).
std::string group_of(SSL* ssl) {
  const int nid = SSL_get_negotiated_group(ssl);
  if (nid <= 0) return "";
  const char* name = SSL_group_to_name(ssl, nid);
  return name ? name : "";
}

// Whether `name` is an IP literal (SNI carries host names only, RFC 6066 §3).
bool is_ip_literal(const std::string& name) {
  if (name.find(':') != std::string::npos) return true;
  for (char c : name)
    if (!(c == '.' || (c >= '0' && c <= '9'))) return false;
  return !name.empty();
}

// ---------------------------------------------------------- server context

// The client-hello callback's argument is the context's version set, held
// in the pointer itself (no allocation whose lifetime must follow the
// context's).
int on_client_hello(SSL* ssl, int* /*alert*/, void* arg) {
  const auto server = static_cast<TlsVersionSet>(reinterpret_cast<uintptr_t>(arg));
  TlsVersionSet offered = 0;
  const unsigned char* ext = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &ext, &len) == 1 && len >= 1) {
    // RFC 8446 §4.2.1: a length octet, then two octets per version
    // (unknown and GREASE values simply match nothing).
    const size_t n = std::min<size_t>(ext[0], len - 1);
    for (size_t i = 1; i + 1 <= n; i += 2)
      offered |= version_bit(version_of_proto(ext[i] << 8 | ext[i + 1])) & kAllTlsVersions;
  } else {
    // No extension: the client speaks every version up to legacy_version.
    const int legacy = static_cast<int>(SSL_client_hello_get0_legacy_version(ssl));
    for (TlsVersion v : kVersions)
      if (v != TlsVersion::tls1_3 && proto_of(v) <= legacy) offered |= version_bit(v);
  }
  const TlsVersion will_speak = highest(offered & server);
  if (will_speak != TlsVersion::none && will_speak < TlsVersion::tls1_2) SSL_set_security_level(ssl, 0);
  return SSL_CLIENT_HELLO_SUCCESS;
}

}  // namespace

void SslCtxDeleter::operator()(SSL_CTX* p) const {
  SSL_CTX_free(p);
}

TlsVersion tls_version_of(const SSL* ssl) {
  return ssl == nullptr ? TlsVersion::none : version_of_proto(SSL_version(ssl));
}

SslCtxPtr make_server_context(const std::string& cert_file, const std::string& key_file, TlsVersionSet versions) {
  auto fail = [](const std::string& what) -> SslCtxPtr {
    std::string detail = error_text(ERR_get_error());
    ERR_clear_error();
    throw std::runtime_error(what + ": " + detail);
  };
  versions &= kAllTlsVersions;
  if (versions == 0) throw std::runtime_error("the server accepts no TLS version");
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return fail("openssl cannot make a server context");
  if (!restrict_versions(ctx.get(), versions, ctx_set_min, ctx_set_max, ctx_set_options))
    return fail("openssl refuses the protocol versions");
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1)
    return fail("cannot load certificate chain `" + cert_file + "`");
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return fail("cannot load private key `" + key_file + "`");
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return fail("private key `" + key_file + "` does not match certificate `" + cert_file + "`");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_client_hello_cb(ctx.get(), on_client_hello, reinterpret_cast<void*>(static_cast<uintptr_t>(versions)));
  return ctx;
}

TlsClientResult Stream::start_tls_client(const TlsClientParams& params) {
  TlsClientResult r;
  Impl& m = *impl_;
  // RFC 3207 §4.1: nothing received before the handshake may be used after.
  m.drop_unread();
  if (m.ssl != nullptr) {
    r.error = "the connection already uses TLS";
    return r;
  }
  SSL_CTX* ctx = client_context(r.error);
  if (ctx == nullptr) return r;
  SSL* ssl = SSL_new(ctx);
  auto abandon = [&](std::string why) {
    r.ok = false;
    r.error = std::move(why);
    SSL_free(ssl);
    m.ssl = nullptr;
    ERR_clear_error();
    return r;
  };
  if (ssl == nullptr || SSL_set_fd(ssl, m.fd) != 1)
    return abandon("openssl cannot make a connection: " + error_text(ERR_get_error()));
  SSL_set_connect_state(ssl);

  const TlsVersionSet offer =
      params.offer_versions != 0 ? params.offer_versions & kAllTlsVersions
                                 : static_cast<TlsVersionSet>(kAllTlsVersions & ~(version_bit(params.min_version) - 1));
  if (offer == 0 || !restrict_versions(ssl, offer, ssl_set_min, ssl_set_max, ssl_set_options))
    return abandon("no TLS version to offer");
  if (params.legacy_security_level) SSL_set_security_level(ssl, 0);
  if (!params.sni.empty() && !is_ip_literal(params.sni) && SSL_set_tlsext_host_name(ssl, params.sni.c_str()) != 1)
    return abandon("openssl does not accept the server name `" + params.sni + "`");
  if (params.verify_time) X509_VERIFY_PARAM_set_time(SSL_get0_param(ssl), static_cast<time_t>(*params.verify_time));

  DaneSetup dane;
  if (!params.tlsa.empty()) dane = setup_dane(ssl, params);

  m.ssl = ssl;
  const auto saved = m.timeout;
  m.timeout = params.timeout;
  int ssl_error = 0;
  IoStatus s = m.ssl_call([&] { return SSL_connect(ssl); }, m.deadline(), ssl_error);
  m.timeout = saved;
  if (s != IoStatus::ok) {
    HandshakeFailure f = describe_failure(s, ssl_error, "the TLS handshake");
    r.version_refused = f.version_refused;
    // The server chose TLS 1.0/1.1 and this client, above security level
    // 0, cannot accept its SHA-1 signatures (OpenSSL then complains about
    // the signature, not the version): in effect no version in common.
    const TlsVersion chosen = tls_version_of(ssl);
    if (s == IoStatus::error && !params.legacy_security_level && chosen != TlsVersion::none &&
        chosen < TlsVersion::tls1_2) {
      r.version_refused = true;
      f.text += " (the server chose " + std::string(to_string(chosen)) + ", which needs the legacy security level)";
    }
    return abandon(f.text);
  }

  r.ok = true;
  r.version = tls_version_of(ssl);
  r.cipher = SSL_get_cipher_name(ssl);
  r.group = group_of(ssl);
  X509* leaf = SSL_get0_peer_certificate(ssl);
  r.peer_subject = subject_of(leaf);
  r.peer_issuer = issuer_of(leaf);
  r.peer_fingerprint = fingerprint_of(leaf);
  if (!params.ca_file.empty()) check_webpki(ssl, params, r);
  if (!params.tlsa.empty()) summarise_dane(ssl, params, dane, r);
  ERR_clear_error();
  return r;
}

TlsServerResult Stream::start_tls_server(SSL_CTX* ctx) {
  TlsServerResult r;
  Impl& m = *impl_;
  m.drop_unread();  // RFC 3207 §4.1, the command-injection attack
  if (m.ssl != nullptr) {
    r.error = "the connection already uses TLS";
    return r;
  }
  SSL* ssl = ctx == nullptr ? nullptr : SSL_new(ctx);
  if (ssl == nullptr || SSL_set_fd(ssl, m.fd) != 1) {
    r.error = "openssl cannot make a connection: " + error_text(ERR_get_error());
    SSL_free(ssl);
    ERR_clear_error();
    return r;
  }
  SSL_set_accept_state(ssl);
  m.ssl = ssl;
  int ssl_error = 0;
  IoStatus s = m.ssl_call([&] { return SSL_accept(ssl); }, m.deadline(), ssl_error);
  if (s != IoStatus::ok) {
    r.error = describe_failure(s, ssl_error, "the TLS handshake").text;
    SSL_free(ssl);
    m.ssl = nullptr;
    ERR_clear_error();
    return r;
  }
  r.ok = true;
  r.version = tls_version_of(ssl);
  r.cipher = SSL_get_cipher_name(ssl);
  r.group = group_of(ssl);
  if (const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) r.sni = name;
  return r;
}

}  // namespace tlsp
