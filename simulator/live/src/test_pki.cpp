// test_pki.cpp — the run-time test PKI (tlsp/sim/test_pki.h).
//
// Two roots are made per TestPki: the trusted one (written to ca_file(),
// the bundle WebPKI checks use) and an untrusted one (kept only in memory,
// to issue CertKind::untrusted leaves). Every leaf gets its own fresh key.
// All keys are ECDSA P-256, all signatures SHA-256, serials are random
// (RFC 5280 §4.1.2.2: positive, at most 20 octets), and validity starts a
// day back so a peer whose clock is a little behind still accepts it.
//
// Failures here are the environment's (disk, OpenSSL allocation): they
// throw std::runtime_error with OpenSSL's words, since a test cannot go on
// without its certificates.
#include "tlsp/base/digest.h"
#include "tlsp/sim/test_pki.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>

namespace tlsp::sim {
namespace {

// Validity windows, in days relative to now.
constexpr long kBackdateDays = 1;         // notBefore of every usable certificate
constexpr long kRootLifetimeDays = 3650;  // roots outlive any test run
constexpr long kLeafLifetimeDays = 365;
constexpr long kExpiredNotBeforeDays = 30;  // CertKind::expired: 30 days back ...
constexpr long kExpiredNotAfterDays = 1;    // ... to 1 day back
constexpr int kSerialBits = 127;            // positive, fits 16 octets
constexpr long kSecondsPerDay = 86400;
// The name a CertKind::wrong_name leaf is issued for instead of the asked ones.
constexpr const char* kWrongName = "wrong-name.invalid";

struct KeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct CertFree {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using CertPtr = std::unique_ptr<X509, CertFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

[[noreturn]] void fail(const std::string& what) {
  unsigned long e = ERR_get_error();
  std::string detail = "no detail from openssl";
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    detail = buf;
  }
  ERR_clear_error();
  throw std::runtime_error("test pki: " + what + ": " + detail);
}

KeyPtr new_key() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) fail("cannot generate a P-256 key");
  return key;
}

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) fail(std::string("cannot make extension `") + OBJ_nid2sn(nid) + "`");
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) fail(std::string("cannot add extension `") + OBJ_nid2sn(nid) + "`");
}

// DNS subjectAltNames built as GENERAL_NAMEs, not from config text, so a
// name with a comma cannot turn into a second entry.
void add_dns_names(X509* cert, const std::vector<std::string>& names) {
  GENERAL_NAMES* gens = sk_GENERAL_NAME_new_null();
  if (gens == nullptr) fail("cannot allocate subjectAltName");
  for (const auto& n : names) {
    GENERAL_NAME* gen = GENERAL_NAME_new();
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (gen == nullptr || ia5 == nullptr || ASN1_STRING_set(ia5, n.data(), static_cast<int>(n.size())) != 1) {
      GENERAL_NAME_free(gen);
      ASN1_IA5STRING_free(ia5);
      GENERAL_NAMES_free(gens);
      fail("cannot allocate a dNSName for `" + n + "`");
    }
    GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
    if (sk_GENERAL_NAME_push(gens, gen) == 0) {
      GENERAL_NAME_free(gen);
      GENERAL_NAMES_free(gens);
      fail("cannot allocate subjectAltName");
    }
  }
  int ok = X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
  GENERAL_NAMES_free(gens);
  if (ok != 1) fail("cannot add subjectAltName");
}

struct Validity {
  long not_before_days;  // offset from now (negative: in the past)
  long not_after_days;
};

// A certificate for `key` named `cn`, signed by issuer_key (issuer_cert
// null: self-signed). `ca` selects the root profile.
CertPtr make_cert(EVP_PKEY* key, const std::string& cn, const std::vector<std::string>& dns_names, bool ca,
                  Validity validity, X509* issuer_cert, EVP_PKEY* issuer_key) {
  CertPtr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) fail("cannot allocate a certificate");

  BIGNUM* bn = BN_new();
  if (bn == nullptr || BN_rand(bn, kSerialBits, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get())) == nullptr) {
    BN_free(bn);
    fail("cannot make a serial number");
  }
  BN_free(bn);

  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), validity.not_before_days * kSecondsPerDay) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), validity.not_after_days * kSecondsPerDay) == nullptr)
    fail("cannot set the validity");

  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("tlsp test pki"), -1,
                                 -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1)
    fail("cannot set the subject `" + cn + "`");
  X509* issuer = issuer_cert != nullptr ? issuer_cert : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) != 1) fail("cannot set the issuer");
  if (X509_set_pubkey(cert.get(), key) != 1) fail("cannot set the public key");

  add_extension(cert.get(), issuer, NID_subject_key_identifier, "hash");
  add_extension(cert.get(), issuer, NID_authority_key_identifier, "keyid:always");
  if (ca) {
    add_extension(cert.get(), issuer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), issuer, NID_key_usage, "critical,digitalSignature");
    add_extension(cert.get(), issuer, NID_ext_key_usage, "serverAuth");
    if (!dns_names.empty()) add_dns_names(cert.get(), dns_names);
  }

  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) <= 0)
    fail("cannot sign the certificate for `" + cn + "`");
  return cert;
}

std::string cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("cannot write a certificate as PEM");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    fail("cannot write a key as PEM");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw std::runtime_error("test pki: cannot write `" + path.string() + "`");
}

// A file-name-safe form of a host name.
std::string file_stem(const std::string& name) {
  constexpr size_t kMaxStem = 64;
  std::string s;
  for (char c : name.substr(0, kMaxStem))
    s += (std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.') ? c : '_';
  return s.empty() ? "cert" : s;
}

CertPtr read_pem_cert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  CertPtr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) fail("cannot read a certificate back from PEM");
  return cert;
}

}  // namespace

struct TestPki::Roots {
  KeyPtr trusted_key;
  CertPtr trusted_cert;
  KeyPtr untrusted_key;
  CertPtr untrusted_cert;
  std::mutex mutex;  // guards `issued` (file names) and OpenSSL's per-thread error queue use
  unsigned issued = 0;
};

TestPki::TestPki(std::string directory) : dir_(std::move(directory)), roots_(std::make_shared<Roots>()) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw std::runtime_error("test pki: cannot create `" + dir_ + "`: " + ec.message());
  const Validity root_validity{-kBackdateDays, kRootLifetimeDays};
  roots_->trusted_key = new_key();
  roots_->trusted_cert =
      make_cert(roots_->trusted_key.get(), "tlsp test root", {}, true, root_validity, nullptr, nullptr);
  roots_->untrusted_key = new_key();
  roots_->untrusted_cert =
      make_cert(roots_->untrusted_key.get(), "tlsp untrusted root", {}, true, root_validity, nullptr, nullptr);
  ca_file_ = (std::filesystem::path(dir_) / "ca.pem").string();
  write_file(ca_file_, cert_pem(roots_->trusted_cert.get()));
}

std::string TestPki::ca_pem() const {
  return cert_pem(roots_->trusted_cert.get());
}

TestCert TestPki::issue(const std::vector<std::string>& names, CertKind kind) {
  std::vector<std::string> sans = kind == CertKind::wrong_name ? std::vector<std::string>{kWrongName} : names;
  const std::string cn = sans.empty() ? std::string("tlsp test leaf") : sans.front();
  Validity validity{-kBackdateDays, kLeafLifetimeDays};
  if (kind == CertKind::expired) validity = {-kExpiredNotBeforeDays, -kExpiredNotAfterDays};

  std::lock_guard lock(roots_->mutex);
  KeyPtr key = new_key();
  X509* issuer_cert = nullptr;
  EVP_PKEY* issuer_key = nullptr;
  if (kind == CertKind::untrusted) {
    issuer_cert = roots_->untrusted_cert.get();
    issuer_key = roots_->untrusted_key.get();
  } else if (kind != CertKind::self_signed) {
    issuer_cert = roots_->trusted_cert.get();
    issuer_key = roots_->trusted_key.get();
  }
  CertPtr leaf = make_cert(key.get(), cn, sans, false, validity, issuer_cert, issuer_key);

  TestCert out;
  out.cert_pem = cert_pem(leaf.get());
  out.issuer_pem = issuer_cert != nullptr ? cert_pem(issuer_cert) : out.cert_pem;
  out.chain_pem = issuer_cert != nullptr ? out.cert_pem + out.issuer_pem : out.cert_pem;

  const std::string stem = std::to_string(++roots_->issued) + "-" + file_stem(cn);
  const std::filesystem::path dir(dir_);
  out.cert_file = (dir / (stem + ".crt")).string();
  out.key_file = (dir / (stem + ".key")).string();
  write_file(out.cert_file, out.chain_pem);
  write_file(out.key_file, key_pem(key.get()));
  std::filesystem::permissions(out.key_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  return out;
}

TlsaRecord TestPki::tlsa_for(const TestCert& cert, uint8_t usage, uint8_t selector, uint8_t mtype) {
  CertPtr x = read_pem_cert(usage == 2 ? cert.issuer_pem : cert.cert_pem);
  unsigned char* der = nullptr;
  int len = selector == 0 ? i2d_X509(x.get(), &der) : i2d_PUBKEY(X509_get0_pubkey(x.get()), &der);
  if (len <= 0) fail("cannot encode the certificate as DER");
  std::vector<uint8_t> bytes(der, der + len);
  OPENSSL_free(der);

  TlsaRecord r{usage, selector, mtype, {}};
  if (mtype == 0) {
    r.data = std::move(bytes);
    return r;
  }
  // Matching types other than 1 and 2 are not digests; a test asking for
  // one gets the SHA-256 digest under that type (an unusable record).
  const std::string d =
      base::digest(mtype == 2 ? base::Digest::sha512 : base::Digest::sha256,
                   std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  r.data.assign(d.begin(), d.end());
  return r;
}

}  // namespace tlsp::sim
