// dane_verify_test.cpp — DANE TLSA records and verification (tlsp/dane.h).
//
// Three parts:
//  * OpenSSL's own DANE conformance cases (../shared/conformance/openssl-dane:
//    54 in danetest.in, 1 in dane-cross.in) run through verify_dane() with
//    the expected X509_V_* result and match depth of each; the .cases.json
//    copies are checked to hold the same cases, so a mistake in reading the
//    .in files cannot hide;
//  * the presentation parser and the classifier, every TlsaKind;
//  * the verifier on chains made here (every TlsaKind it reports, names,
//    dates, digest agility, PKIX usages ignored for SMTP), and its summary
//    fed to decide(), which must reach OpenSSL's verdict.
// The clock is pinned: certificates are made around kNow and verified at it.
#include <gtest/gtest.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_support.h"
#include "tlsp/base/digest.h"
#include "tlsp/base/quote.h"
#include "tlsp/dane.h"
#include "tlsp/engine.h"

namespace {

using nlohmann::json;
using namespace tlsp;

// 2025-06-15: after every conformance certificate's notBefore, before
// every notAfter that is meant to be in date.
constexpr int64_t kNow = 1750000000;

// ------------------------------------------------------------ shared data

// $TLSP_SHARED_DIR/conformance/openssl-dane, or ../shared beside the
// source tree (test_support.h).
std::filesystem::path dane_dir() {
  return tlsp::testing_support::conformance_path("openssl-dane");
}

std::optional<std::string> read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// One case of danetest.in / dane-cross.in.
struct DaneCase {
  std::string file;
  int testno = 0;
  int ntlsa = 0, ncert = 0, nonamechecks = 0, want_error = 0, want_depth = 0;
  std::vector<TlsaRecord> tlsa;
  std::string chain_text;               // the certificates and the text between them
  std::vector<std::string> chain_pems;  // each certificate block
  std::string base_domain, ca_file;
};

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// Reads the format documented at the top of danetest.in: a header line of
// five integers, exactly <TLSA-count> TLSA lines, then text up to the end
// of the <cert-count>th certificate. Anything else in between (the
// subject= lines, and the extra TLSA-looking line of cases 43–46) is text
// between PEM blocks, as OpenSSL's PEM reader treats it.
std::vector<DaneCase> parse_in_file(const std::string& text, const std::string& file, const std::string& base_domain,
                                    const std::string& ca_file, std::string& error) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::vector<DaneCase> cases;
  size_t i = 0;
  while (i < lines.size()) {
    std::string line = trim(lines[i]);
    if (line.empty() || line[0] == '#') {
      ++i;
      continue;
    }
    DaneCase c;
    c.file = file;
    c.testno = static_cast<int>(cases.size()) + 1;
    c.base_domain = base_domain;
    c.ca_file = ca_file;
    int end = 0;
    if (std::sscanf(line.c_str(), "%d %d %d %d %d%n", &c.ntlsa, &c.ncert, &c.nonamechecks, &c.want_error, &c.want_depth,
                    &end) != 5 ||
        !trim(line.substr(static_cast<size_t>(end))).empty()) {
      error = file + " line " + std::to_string(i + 1) + ": not a case header: " + line;
      return {};
    }
    ++i;
    for (int t = 0; t < c.ntlsa; ++t, ++i) {
      if (i >= lines.size()) {
        error = file + ": case " + std::to_string(c.testno) + " ends inside its TLSA lines";
        return {};
      }
      auto r = parse_tlsa_record(lines[i]);
      if (!r) {
        error = file + " line " + std::to_string(i + 1) + ": " + r.problem;
        return {};
      }
      c.tlsa.push_back(*r.value);
    }
    std::string block;
    bool in_block = false;
    while (static_cast<int>(c.chain_pems.size()) < c.ncert) {
      if (i >= lines.size()) {
        error = file + ": case " + std::to_string(c.testno) + " ends before its certificates";
        return {};
      }
      const std::string l = trim(lines[i++]);
      c.chain_text += l + "\n";
      if (l == "-----BEGIN CERTIFICATE-----") in_block = true;
      if (in_block) block += l + "\n";
      if (l == "-----END CERTIFICATE-----") {
        c.chain_pems.push_back(block);
        block.clear();
        in_block = false;
      }
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

struct Conformance {
  std::vector<DaneCase> cases;
  std::string error;
};

const Conformance& conformance() {
  static const Conformance c = [] {
    Conformance out;
    struct Source {
      const char* file;
      const char* base_domain;
      const char* ca_file;
    };
    // The reference names and trust stores the conformance README gives.
    for (Source s : {Source{"danetest.in", "example.com", "danetest.pem"},
                     Source{"dane-cross.in", "server.example", "cross-root.pem"}}) {
      auto text = read_text(dane_dir() / s.file);
      if (!text) {
        out.error = "cannot read " + (dane_dir() / s.file).string() + " (set TLSP_SHARED_DIR to the shared folder)";
        return out;
      }
      auto cases = parse_in_file(*text, s.file, s.base_domain, s.ca_file, out.error);
      if (!out.error.empty()) return out;
      out.cases.insert(out.cases.end(), cases.begin(), cases.end());
    }
    return out;
  }();
  return c;
}

// The options OpenSSL's test driver uses: PKIX usages allowed (the cases
// test them), name checks for DANE-EE unless the case's flag says not.
DaneVerifyOptions conformance_options(const DaneCase& c, const std::string& trust_store) {
  DaneVerifyOptions o;
  o.dane_ee_name_checks = c.nonamechecks == 0;
  o.pkix_usages = true;
  o.trust_store_pem = trust_store;
  o.verify_time = kNow;
  return o;
}

std::string trust_store(const std::string& ca_file) {
  auto text = read_text(dane_dir() / ca_file);
  return text ? *text : std::string();
}

std::string describe(const DaneCase& c) {
  std::string s = c.file + " case " + std::to_string(c.testno) + ":";
  for (const auto& r : c.tlsa) s += " [" + format_tlsa_record(r).substr(0, 24) + "...]";
  return s;
}

// What decide() says for a dane-only host whose TLS works and whose TLSA
// answer is secure: authenticated delivery or not.
bool engine_authenticates(const DaneVerification& r) {
  PeerFacts f;
  f.starttls = true;
  f.peer_tls = kAllTlsVersions;
  f.cert = r.cert;
  f.tlsa_dnssec = DnsStatus::secure;
  f.tlsa = r.kinds;
  Outcome o = decide(Direction::outbound, RuleInput{Level::dane_only, MinTls::tls1_2}, f);
  return o.kind == OutcomeKind::deliver && o.channel == Channel::authenticated;
}

// -------------------------------------------------------------- conformance

TEST(DaneConformance, OpenSslCases) {
  TLSP_CONFORMANCE_DIR(dane, "openssl-dane");
  const auto& conf = conformance();
  ASSERT_TRUE(conf.error.empty()) << conf.error;
  std::map<std::string, std::string> stores;
  int ran = 0, passed = 0, per_file_danetest = 0, per_file_cross = 0;
  for (const auto& c : conf.cases) {
    SCOPED_TRACE(describe(c));
    if (!stores.count(c.ca_file)) stores[c.ca_file] = trust_store(c.ca_file);
    ASSERT_FALSE(stores[c.ca_file].empty()) << "cannot read the trust store " << c.ca_file;
    const std::vector<std::string> names = {c.base_domain};
    DaneVerification r = verify_dane_pem(c.chain_text, c.tlsa, names, conformance_options(c, stores[c.ca_file]));
    ++ran;
    (c.file == "danetest.in" ? per_file_danetest : per_file_cross)++;
    EXPECT_TRUE(r.problem.empty()) << r.problem;
    EXPECT_EQ(r.usable + r.unusable, c.ntlsa);
    EXPECT_EQ(r.verify_error, c.want_error) << "got " << r.verify_error_text;
    EXPECT_EQ(r.match_depth, c.want_depth);
    if (r.match_depth >= 0) {
      // The matched record is one of the case's records.
      ASSERT_TRUE(r.matched.has_value());
      EXPECT_NE(std::find(c.tlsa.begin(), c.tlsa.end(), *r.matched), c.tlsa.end());
    }
    if (r.problem.empty() && r.verify_error == c.want_error && r.match_depth == c.want_depth) ++passed;
  }
  std::printf("[ dane     ] openssl-dane conformance: %d cases ran (%d danetest.in + %d dane-cross.in), %d passed\n",
              ran, per_file_danetest, per_file_cross, passed);
  ::testing::Test::RecordProperty("cases_ran", ran);
  EXPECT_EQ(per_file_danetest, 54);
  EXPECT_EQ(per_file_cross, 1);
  ASSERT_GE(ran, 55) << "fewer conformance cases ran than the data holds";
}

// The JSON copies hold the same cases: the .in reader above read them right
// (counts, records, flags, expectations, certificates), and the extra
// TLSA-looking lines of cases 43–46 are indeed outside the counted ones.
TEST(DaneConformance, JsonCopiesAgreeWithInFiles) {
  TLSP_CONFORMANCE_DIR(dane, "openssl-dane");
  const auto& conf = conformance();
  ASSERT_TRUE(conf.error.empty()) << conf.error;
  size_t k = 0, ignored_lines = 0;
  for (const char* file : {"danetest.cases.json", "dane-cross.cases.json"}) {
    auto text = read_text(dane_dir() / file);
    ASSERT_TRUE(text) << "cannot read " << file;
    for (const auto& j : json::parse(*text)) {
      ASSERT_LT(k, conf.cases.size()) << file << " holds more cases than the .in files";
      const DaneCase& c = conf.cases[k++];
      SCOPED_TRACE(describe(c));
      EXPECT_EQ(j["file"].get<std::string>(), c.file);
      EXPECT_EQ(j["testno"].get<int>(), c.testno);
      EXPECT_EQ(j["base_domain"].get<std::string>(), c.base_domain);
      EXPECT_EQ(j["ca_file"].get<std::string>(), c.ca_file);
      EXPECT_EQ(j["nonamechecks"].get<bool>(), c.nonamechecks != 0);
      EXPECT_EQ(j["expect_verify_error"].get<int>(), c.want_error);
      EXPECT_EQ(j["expect_mdepth"].get<int>(), c.want_depth);
      ASSERT_EQ(j["tlsa"].size(), c.tlsa.size());
      for (size_t t = 0; t < c.tlsa.size(); ++t) {
        const auto& jt = j["tlsa"][t];
        auto r =
            parse_tlsa_record(std::to_string(jt["usage"].get<int>()) + " " + std::to_string(jt["selector"].get<int>()) +
                              " " + std::to_string(jt["mtype"].get<int>()) + " " + jt["data"].get<std::string>());
        ASSERT_TRUE(r) << r.problem;
        EXPECT_EQ(*r.value, c.tlsa[t]);
      }
      ASSERT_EQ(j["chain"].size(), c.chain_pems.size());
      for (size_t n = 0; n < c.chain_pems.size(); ++n)
        EXPECT_EQ(trim(j["chain"][n]["pem"].get<std::string>()), trim(c.chain_pems[n]));
      if (j.contains("ignored_tlsa_like_line")) {
        ++ignored_lines;
        const std::string line = j["ignored_tlsa_like_line"].get<std::string>();
        EXPECT_NE(c.chain_text.find(line), std::string::npos) << "the ignored line is not where the .in file has it";
        auto r = parse_tlsa_record(line);
        ASSERT_TRUE(r) << r.problem;
        EXPECT_EQ(std::find(c.tlsa.begin(), c.tlsa.end(), *r.value), c.tlsa.end());
      }
    }
  }
  EXPECT_EQ(k, conf.cases.size());
  EXPECT_EQ(ignored_lines, 4u);
}

// Driven as SMTP needs (PKIX usages never reach OpenSSL): the cases whose
// records are all DANE usages give OpenSSL's answers unchanged; the others
// have no usable record and are never DANE-authenticated. In both modes the
// summary, fed to decide(), agrees with OpenSSL.
TEST(DaneConformance, SmtpModeAndEngineAgree) {
  TLSP_CONFORMANCE_DIR(dane, "openssl-dane");
  const auto& conf = conformance();
  ASSERT_TRUE(conf.error.empty()) << conf.error;
  int checked = 0;
  for (const auto& c : conf.cases) {
    SCOPED_TRACE(describe(c));
    const std::string store = trust_store(c.ca_file);
    const std::vector<std::string> names = {c.base_domain};
    DaneVerifyOptions all = conformance_options(c, store);
    DaneVerifyOptions smtp = all;
    smtp.pkix_usages = false;
    DaneVerification ra = verify_dane_pem(c.chain_text, c.tlsa, names, all);
    DaneVerification rs = verify_dane_pem(c.chain_text, c.tlsa, names, smtp);
    const bool dane_only = std::all_of(c.tlsa.begin(), c.tlsa.end(), [](const TlsaRecord& t) { return t.usage >= 2; });
    if (dane_only) {
      EXPECT_EQ(rs.verify_error, ra.verify_error);
      EXPECT_EQ(rs.match_depth, ra.match_depth);
      EXPECT_EQ(rs.kinds, ra.kinds);
    } else {
      EXPECT_FALSE(rs.dane_authenticated());
      EXPECT_LT(rs.usable, c.ntlsa);
    }
    for (const DaneVerification* r : {&ra, &rs}) {
      const bool openssl = r->dane_authenticated() && r->matched && r->matched->usage >= 2;
      EXPECT_EQ(engine_authenticates(*r), openssl) << "kinds " << r->kinds << ", error " << r->verify_error;
    }
    ++checked;
  }
  EXPECT_GE(checked, 55);
}

// ------------------------------------------------------------------ parser

TEST(TlsaParse, Numbers) {
  auto r = parse_tlsa_record("3 1 1 0123456789abcdefABCDEF0123456789abcdefABCDEF0123456789abcdef0123");
  ASSERT_TRUE(r) << r.problem;
  EXPECT_EQ(r.value->usage, 3);
  EXPECT_EQ(r.value->selector, 1);
  EXPECT_EQ(r.value->mtype, 1);
  ASSERT_EQ(r.value->data.size(), 32u);
  EXPECT_EQ(r.value->data[0], 0x01);
  EXPECT_EQ(r.value->data[7], 0xEF);
  EXPECT_EQ(r.value->data[8], 0xAB);
}

TEST(TlsaParse, SpacesAcronymsAndRoundTrip) {
  // RFC 6698 §2.2: the data may be split by white space; RFC 7218 names.
  auto a = parse_tlsa_record("  DANE-EE\tspki  sha2-256  0a0b 0C0D\r\n");
  ASSERT_TRUE(a) << a.problem;
  EXPECT_EQ(*a.value, (TlsaRecord{3, 1, 1, {0x0A, 0x0B, 0x0C, 0x0D}}));
  auto b = parse_tlsa_record("dane-ta Cert Full 00");
  ASSERT_TRUE(b) << b.problem;
  EXPECT_EQ(*b.value, (TlsaRecord{2, 0, 0, {0x00}}));
  auto c = parse_tlsa_record("PrivCert PrivSel PrivMatch ff");
  ASSERT_TRUE(c) << c.problem;
  EXPECT_EQ(*c.value, (TlsaRecord{255, 255, 255, {0xFF}}));
  auto d = parse_tlsa_record("255 007 0 00");
  ASSERT_TRUE(d) << d.problem;
  EXPECT_EQ(d.value->selector, 7);

  const TlsaRecord rec{2, 1, 2, std::vector<uint8_t>(64, 0x5A)};
  EXPECT_EQ(format_tlsa_record(rec).substr(0, 10), "2 1 2 5A5A");
  auto back = parse_tlsa_record(format_tlsa_record(rec));
  ASSERT_TRUE(back) << back.problem;
  EXPECT_EQ(*back.value, rec);
}

TEST(TlsaParse, Errors) {
  struct Bad {
    const char* text;
    const char* problem;
  };
  const Bad kBad[] = {
      {"", "the TLSA record is empty"},
      {"   \t ", "the TLSA record is empty"},
      {"3", "the TLSA record has no selector; expected `usage selector mtype data`"},
      {"3 1", "the TLSA record has no matching type; expected `usage selector mtype data`"},
      {"3 1 1", "the TLSA record has no certificate association data; expected `usage selector mtype data`"},
      {"256 1 1 00", "certificate usage `256` is not a number from 0 to 255 or a usage name"},
      {"-1 1 1 00", "certificate usage `-1` is not a number from 0 to 255 or a usage name"},
      {"99999999999999999999 1 1 00",
       "certificate usage `99999999999999999999` is not a number from 0 to 255 or a usage name"},
      {"3x 1 1 00", "certificate usage `3x` is not a number from 0 to 255 or a usage name"},
      {"DANE-XX 1 1 00", "certificate usage `DANE-XX` is not a number from 0 to 255 or a usage name"},
      {"3 SPKIX 1 00", "selector `SPKIX` is not a number from 0 to 255 or a selector name"},
      {"3 1 SHA1 00", "matching type `SHA1` is not a number from 0 to 255 or a type name"},
      {"3 1 1 0g", "certificate association data `0g` is not hexadecimal (`g`)"},
      {"3 1 1 00 0x12", "certificate association data `0x12` is not hexadecimal (`x`)"},
      {"3 1 1 abc", "certificate association data has an odd number of hex digits (3)"},
      {"3 1 1 ab c", "certificate association data has an odd number of hex digits (3)"},
  };
  for (const auto& b : kBad) {
    SCOPED_TRACE(b.text);
    auto r = parse_tlsa_record(b.text);
    EXPECT_FALSE(r);
    EXPECT_EQ(r.problem, b.problem);
  }
  // A control character in user text is escaped as every message escapes it
  // (tlsp/base/quote.h), and long text is cut.
  auto r = parse_tlsa_record("3 1 1 \x01");
  EXPECT_EQ(r.problem, "certificate association data `\\x01` is not hexadecimal (`\\x01`)");
  auto l = parse_tlsa_record("3 1 1 " + std::string(300, 'z'));
  EXPECT_EQ(l.problem, "certificate association data `" + std::string(tlsp::base::kMaxQuotedChars, 'z') +
                           "...` is not hexadecimal (`z`)");
  // The longest data a TLSA record can hold, and one byte more.
  EXPECT_TRUE(parse_tlsa_record("3 0 0 " + std::string(2 * kMaxTlsaDataBytes, 'a')));
  auto big = parse_tlsa_record("3 0 0 " + std::string(2 * kMaxTlsaDataBytes + 2, 'a'));
  EXPECT_EQ(big.problem, "certificate association data is longer than 65532 bytes, the most a TLSA record holds");
}

// -------------------------------------------------------- certificates made here

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;

KeyPtr new_key() {
  return KeyPtr(EVP_EC_gen("P-256"), EVP_PKEY_free);
}

struct CertSpec {
  std::string cn;
  std::vector<std::string> dns;  // subjectAltName
  bool ca = false;
  int64_t not_before = kNow - 86400;
  int64_t not_after = kNow + 365 * 86400;
};

void add_ext(X509* x, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
  ASSERT_NE(e, nullptr) << value;
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}

// A certificate for `key`, signed by `issuer_key` (self-signed when
// `issuer` is null).
CertPtr make_cert(const CertSpec& s, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  static long serial = 1;
  CertPtr x(X509_new(), X509_free);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(s.cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : name);
  ASN1_TIME_set(X509_getm_notBefore(x.get()), static_cast<time_t>(s.not_before));
  ASN1_TIME_set(X509_getm_notAfter(x.get()), static_cast<time_t>(s.not_after));
  X509_set_pubkey(x.get(), key);
  X509* iss = issuer ? issuer : x.get();
  if (s.ca) {
    add_ext(x.get(), iss, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(x.get(), iss, NID_basic_constraints, "CA:FALSE");
  }
  if (!s.dns.empty()) {
    std::string san;
    for (const auto& d : s.dns) san += (san.empty() ? "DNS:" : ",DNS:") + d;
    add_ext(x.get(), iss, NID_subject_alt_name, san);
  }
  X509_sign(x.get(), issuer_key ? issuer_key : key, EVP_sha256());
  return x;
}

std::vector<uint8_t> der_cert(X509* x) {
  unsigned char* p = nullptr;
  int n = i2d_X509(x, &p);
  std::vector<uint8_t> out(p, p + n);
  OPENSSL_free(p);
  return out;
}

std::vector<uint8_t> der_spki(X509* x) {
  unsigned char* p = nullptr;
  int n = i2d_PUBKEY(X509_get0_pubkey(x), &p);
  std::vector<uint8_t> out(p, p + n);
  OPENSSL_free(p);
  return out;
}

std::vector<uint8_t> digest(const std::vector<uint8_t>& data, uint8_t mtype) {
  const std::string d = tlsp::base::digest(mtype == 1 ? tlsp::base::Digest::sha256 : tlsp::base::Digest::sha512,
                                           std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
  return std::vector<uint8_t>(d.begin(), d.end());
}

// A record for certificate `x` with the given parameters.
TlsaRecord tlsa_for(X509* x, uint8_t usage, uint8_t selector, uint8_t mtype) {
  std::vector<uint8_t> data = selector == 0 ? der_cert(x) : der_spki(x);
  return TlsaRecord{usage, selector, mtype, mtype == 0 ? data : digest(data, mtype)};
}

// A CA and a leaf it issued for mx.example.net; plus an unrelated CA.
struct Pki {
  KeyPtr ca_key = new_key(), leaf_key = new_key(), other_key = new_key();
  CertPtr ca = make_cert({"Test CA", {}, true, kNow - 30 * 86400}, ca_key.get(), nullptr, nullptr);
  CertPtr other = make_cert({"Other CA", {}, true}, other_key.get(), nullptr, nullptr);
  CertPtr leaf = make_cert({"mx.example.net", {"mx.example.net"}}, leaf_key.get(), ca.get(), ca_key.get());
  std::vector<X509*> chain() const { return {leaf.get(), ca.get()}; }
};

const Pki& pki() {
  static const Pki p;
  return p;
}

DaneVerifyOptions smtp() {
  DaneVerifyOptions o;
  o.verify_time = kNow;
  return o;
}

DaneVerification verify(std::span<X509* const> chain, std::vector<TlsaRecord> records,
                        std::vector<std::string> names = {"mx.example.net"}, DaneVerifyOptions o = smtp()) {
  return verify_dane(chain, records, names, o);
}

// -------------------------------------------------------------- classifier

TEST(TlsaClassify, UsableRecords) {
  X509* leaf = pki().leaf.get();
  for (uint8_t usage : {2, 3})
    for (uint8_t selector : {0, 1})
      for (uint8_t mtype : {0, 1, 2}) {
        TlsaRecord r = tlsa_for(leaf, usage, selector, mtype);
        SCOPED_TRACE(format_tlsa_record(r).substr(0, 30));
        TlsaUsability u = classify_tlsa_record(r);
        EXPECT_TRUE(u.usable()) << u.problem;
        EXPECT_TRUE(u.problem.empty());
        // Until a handshake proves a match, a usable record is a mismatch of its usage.
        EXPECT_EQ(u.kind_before_match, usage == 3 ? TlsaKind::dane_ee_mismatch : TlsaKind::dane_ta_mismatch);
      }
}

TEST(TlsaClassify, EveryUnusableKind) {
  X509* leaf = pki().leaf.get();
  std::vector<uint8_t> cert = der_cert(leaf), spki = der_spki(leaf);
  std::vector<uint8_t> cert_plus = cert;
  cert_plus.push_back(0);
  struct Case {
    TlsaRecord record;
    TlsaKind kind;
    const char* problem;
  };
  const Case kCases[] = {
      {{0, 1, 1, std::vector<uint8_t>(32)}, TlsaKind::pkix_ta, "usage 0 (PKIX-TA) is not used for SMTP"},
      {{1, 0, 0, cert}, TlsaKind::pkix_ee, "usage 1 (PKIX-EE) is not used for SMTP"},
      {{4, 1, 1, std::vector<uint8_t>(32)}, TlsaKind::bad_length, "usage 4 is not a known usage"},
      {{255, 1, 1, std::vector<uint8_t>(32)}, TlsaKind::bad_length, "usage 255 is not a known usage"},
      {{3, 2, 1, std::vector<uint8_t>(32)},
       TlsaKind::bad_selector,
       "selector 2 is not supported (0 certificate, 1 public key)"},
      {{2, 255, 1, std::vector<uint8_t>(32)},
       TlsaKind::bad_selector,
       "selector 255 is not supported (0 certificate, 1 public key)"},
      {{3, 1, 3, std::vector<uint8_t>(32)},
       TlsaKind::bad_mtype,
       "matching type 3 is not supported (0 full, 1 SHA2-256, 2 SHA2-512)"},
      {{3, 1, 1, std::vector<uint8_t>(31)}, TlsaKind::bad_length, "a SHA2-256 digest is 32 bytes, not 31"},
      {{3, 1, 1, std::vector<uint8_t>(64)}, TlsaKind::bad_length, "a SHA2-256 digest is 32 bytes, not 64"},
      {{2, 0, 2, std::vector<uint8_t>(32)}, TlsaKind::bad_length, "a SHA2-512 digest is 64 bytes, not 32"},
      {{3, 0, 0, {}}, TlsaKind::bad_length, "the data is empty"},
      {{3, 0, 0, {0x30, 0x03, 0x02, 0x01, 0x01}}, TlsaKind::bad_length, "the data is not one DER certificate"},
      {{3, 0, 0, spki}, TlsaKind::bad_length, "the data is not one DER certificate"},
      {{3, 0, 0, cert_plus}, TlsaKind::bad_length, "the data is not one DER certificate"},
      {{2, 1, 0, cert}, TlsaKind::bad_length, "the data is not one DER SubjectPublicKeyInfo"},
      {{2, 1, 0, {0xDE, 0xAD}}, TlsaKind::bad_length, "the data is not one DER SubjectPublicKeyInfo"},
  };
  TlsaKindSet seen = 0;
  for (const auto& c : kCases) {
    SCOPED_TRACE(format_tlsa_record(c.record).substr(0, 30));
    TlsaUsability u = classify_tlsa_record(c.record);
    ASSERT_FALSE(u.usable());
    EXPECT_EQ(*u.unusable, c.kind);
    EXPECT_EQ(u.kind_before_match, c.kind);
    EXPECT_EQ(u.problem, c.problem);
    seen |= tlsa_bit(c.kind);
  }
  EXPECT_EQ(seen, tlsa_bit(TlsaKind::pkix_ta) | tlsa_bit(TlsaKind::pkix_ee) | tlsa_bit(TlsaKind::bad_selector) |
                      tlsa_bit(TlsaKind::bad_mtype) | tlsa_bit(TlsaKind::bad_length));
  EXPECT_EQ(ERR_peek_error(), 0u) << "the classifier left errors on OpenSSL's queue";
}

// The classifier and SSL_dane_tlsa_add() agree on every DANE-usage record:
// none is accepted by one and refused by the other.
TEST(TlsaClassify, AgreesWithOpenSsl) {
  X509* leaf = pki().leaf.get();
  std::vector<TlsaRecord> records;
  for (uint8_t usage : {2, 3})
    for (uint8_t selector : {0, 1, 2})
      for (uint8_t mtype : {0, 1, 2, 3}) {
        records.push_back(tlsa_for(leaf, usage, selector > 1 ? 1 : selector, mtype > 2 ? 1 : mtype));
        records.back().selector = selector;
        records.back().mtype = mtype;
        TlsaRecord cut = records.back();
        if (!cut.data.empty()) cut.data.pop_back();
        records.push_back(cut);
      }
  for (const auto& r : records) {
    SCOPED_TRACE(format_tlsa_record(r).substr(0, 30));
    const bool classifier = classify_tlsa_record(r).usable();
    DaneVerification v = verify(pki().chain(), {r});
    ASSERT_TRUE(v.problem.empty()) << v.problem;
    EXPECT_EQ(v.usable == 1, classifier);
    for (const auto& note : v.notes) EXPECT_EQ(note.find("openssl rejects"), std::string::npos) << note;
  }
}

// ----------------------------------------------------------------- verifier

TEST(DaneVerify, DaneEeMatch) {
  X509* leaf = pki().leaf.get();
  for (uint8_t selector : {0, 1})
    for (uint8_t mtype : {0, 1, 2}) {
      TlsaRecord rec = tlsa_for(leaf, 3, selector, mtype);
      SCOPED_TRACE(format_tlsa_record(rec).substr(0, 30));
      DaneVerification r = verify(pki().chain(), {rec});
      EXPECT_TRUE(r.problem.empty()) << r.problem;
      EXPECT_EQ(r.verify_error, X509_V_OK) << r.verify_error_text;
      EXPECT_EQ(r.match_depth, 0);
      ASSERT_TRUE(r.matched);
      EXPECT_EQ(*r.matched, rec);
      EXPECT_EQ(r.usable, 1);
      EXPECT_EQ(r.record_kinds, std::vector<TlsaKind>{TlsaKind::dane_ee_match});
      EXPECT_EQ(r.kinds, tlsa_bit(TlsaKind::dane_ee_match));
      EXPECT_TRUE(r.dane_authenticated());
      EXPECT_TRUE(engine_authenticates(r));
    }
}

// SPEC §4: DANE-EE ignores names and dates (and the issuer): an expired,
// self-issued leaf for another name still authenticates, without any
// trust store.
TEST(DaneVerify, DaneEeIgnoresNamesAndDates) {
  KeyPtr key = new_key();
  CertPtr odd = make_cert({"elsewhere.example", {"elsewhere.example"}, false, kNow - 10 * 86400, kNow - 86400},
                          key.get(), nullptr, nullptr);
  std::vector<X509*> chain = {odd.get()};
  DaneVerification r = verify(chain, {tlsa_for(odd.get(), 3, 1, 1)});
  EXPECT_EQ(r.verify_error, X509_V_OK) << r.verify_error_text;
  EXPECT_EQ(r.match_depth, 0);
  EXPECT_TRUE(r.dane_authenticated());

  // Unless name checks are asked for (not SMTP): OpenSSL then refuses,
  // and the summary must not let the engine accept.
  DaneVerifyOptions o = smtp();
  o.dane_ee_name_checks = true;
  DaneVerification n = verify(chain, {tlsa_for(odd.get(), 3, 1, 1)}, {"mx.example.net"}, o);
  EXPECT_EQ(n.verify_error, X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_EQ(n.match_depth, 0);
  EXPECT_FALSE(n.dane_authenticated());
  EXPECT_EQ(n.kinds, tlsa_bit(TlsaKind::dane_ee_mismatch));
  EXPECT_FALSE(engine_authenticates(n));
}

TEST(DaneVerify, DaneEeMismatch) {
  DaneVerification r = verify(pki().chain(), {tlsa_for(pki().other.get(), 3, 1, 1)});
  EXPECT_EQ(r.verify_error, X509_V_ERR_DANE_NO_MATCH);
  EXPECT_EQ(r.match_depth, -1);
  EXPECT_FALSE(r.matched);
  EXPECT_EQ(r.kinds, tlsa_bit(TlsaKind::dane_ee_mismatch));
  EXPECT_FALSE(r.dane_authenticated());
  EXPECT_FALSE(engine_authenticates(r));
}

TEST(DaneVerify, DaneTaMatch) {
  for (uint8_t selector : {0, 1})
    for (uint8_t mtype : {0, 1, 2}) {
      TlsaRecord rec = tlsa_for(pki().ca.get(), 2, selector, mtype);
      SCOPED_TRACE(format_tlsa_record(rec).substr(0, 30));
      DaneVerification r = verify(pki().chain(), {rec});
      EXPECT_EQ(r.verify_error, X509_V_OK) << r.verify_error_text;
      EXPECT_EQ(r.match_depth, 1);
      ASSERT_TRUE(r.matched);
      EXPECT_EQ(*r.matched, rec);
      EXPECT_EQ(r.kinds, tlsa_bit(TlsaKind::dane_ta_match));
      EXPECT_EQ(r.cert, CertStatus::valid);
      EXPECT_TRUE(r.dane_authenticated());
      EXPECT_TRUE(engine_authenticates(r));
    }
}

// RFC 7672 §3.2: the TLSA base domain and the other reference names; a
// wildcard covers one whole leftmost label.
TEST(DaneVerify, DaneTaNames) {
  const TlsaRecord ta = tlsa_for(pki().ca.get(), 2, 0, 1);
  EXPECT_EQ(verify(pki().chain(), {ta}, {"mx.example.net"}).verify_error, X509_V_OK);
  EXPECT_EQ(verify(pki().chain(), {ta}, {"MX.Example.NET"}).verify_error, X509_V_OK);
  EXPECT_EQ(verify(pki().chain(), {ta}, {"other.example", "mx.example.net"}).verify_error, X509_V_OK);

  DaneVerification wrong = verify(pki().chain(), {ta}, {"other.example"});
  EXPECT_EQ(wrong.verify_error, X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_EQ(wrong.match_depth, 1);
  EXPECT_EQ(wrong.kinds, tlsa_bit(TlsaKind::dane_ta_match));
  EXPECT_EQ(wrong.cert, CertStatus::wrong_name);
  EXPECT_FALSE(wrong.dane_authenticated());
  EXPECT_FALSE(engine_authenticates(wrong));

  const Pki& p = pki();
  KeyPtr k = new_key();
  CertPtr wild = make_cert({"wild", {"*.example.net"}}, k.get(), p.ca.get(), p.ca_key.get());
  CertPtr partial = make_cert({"partial", {"m*.example.net"}}, k.get(), p.ca.get(), p.ca_key.get());
  std::vector<X509*> wild_chain = {wild.get(), p.ca.get()}, partial_chain = {partial.get(), p.ca.get()};
  EXPECT_EQ(verify(wild_chain, {ta}).verify_error, X509_V_OK);
  EXPECT_EQ(verify(wild_chain, {ta}, {"a.mx.example.net"}).verify_error, X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_EQ(verify(partial_chain, {ta}).verify_error, X509_V_ERR_HOSTNAME_MISMATCH);
}

// SPEC §4: with DANE-TA the leaf must be in date.
TEST(DaneVerify, DaneTaDates) {
  const Pki& p = pki();
  KeyPtr k = new_key();
  CertPtr old = make_cert({"old", {"mx.example.net"}, false, kNow - 10 * 86400, kNow - 86400}, k.get(), p.ca.get(),
                          p.ca_key.get());
  CertPtr young = make_cert({"young", {"mx.example.net"}, false, kNow + 86400, kNow + 10 * 86400}, k.get(), p.ca.get(),
                            p.ca_key.get());
  const TlsaRecord ta = tlsa_for(p.ca.get(), 2, 1, 1);
  for (X509* leaf : {old.get(), young.get()}) {
    std::vector<X509*> chain = {leaf, p.ca.get()};
    DaneVerification r = verify(chain, {ta});
    EXPECT_EQ(r.verify_error, leaf == old.get() ? X509_V_ERR_CERT_HAS_EXPIRED : X509_V_ERR_CERT_NOT_YET_VALID);
    EXPECT_EQ(r.match_depth, 1);
    EXPECT_EQ(r.kinds, tlsa_bit(TlsaKind::dane_ta_match));
    EXPECT_EQ(r.cert, CertStatus::expired);
    EXPECT_FALSE(engine_authenticates(r));
  }
  // The pinned clock is what decides: verified at a time inside its
  // validity, the old leaf is fine.
  DaneVerifyOptions then = smtp();
  then.verify_time = kNow - 5 * 86400;
  std::vector<X509*> chain = {old.get(), p.ca.get()};
  EXPECT_EQ(verify(chain, {ta}, {"mx.example.net"}, then).verify_error, X509_V_OK);
}

TEST(DaneVerify, DaneTaMismatch) {
  DaneVerification r = verify(pki().chain(), {tlsa_for(pki().other.get(), 2, 0, 1)});
  EXPECT_EQ(r.verify_error, X509_V_ERR_DANE_NO_MATCH);
  EXPECT_EQ(r.match_depth, -1);
  EXPECT_EQ(r.kinds, tlsa_bit(TlsaKind::dane_ta_mismatch));
  EXPECT_FALSE(engine_authenticates(r));
  // A DANE-TA record for the leaf itself is no trust anchor for it.
  DaneVerification self = verify(pki().chain(), {tlsa_for(pki().leaf.get(), 2, 0, 1)});
  EXPECT_NE(self.verify_error, X509_V_OK);
  EXPECT_FALSE(engine_authenticates(self));
}

// RFC 7671 §9: when one usage and selector has SHA2-256 and SHA2-512
// records, only the SHA2-512 ones count.
TEST(DaneVerify, PrefersSha512) {
  X509* leaf = pki().leaf.get();
  TlsaRecord good256 = tlsa_for(leaf, 3, 1, 1), good512 = tlsa_for(leaf, 3, 1, 2);
  TlsaRecord bad256 = good256, bad512 = good512;
  bad256.data[0] ^= 1;
  bad512.data[0] ^= 1;

  DaneVerification a = verify(pki().chain(), {good256, bad512});
  EXPECT_EQ(a.verify_error, X509_V_ERR_DANE_NO_MATCH) << "the SHA2-256 record should have been set aside";
  EXPECT_EQ(a.kinds, tlsa_bit(TlsaKind::dane_ee_mismatch));

  DaneVerification b = verify(pki().chain(), {bad256, good512});
  EXPECT_EQ(b.verify_error, X509_V_OK);
  ASSERT_TRUE(b.matched);
  EXPECT_EQ(b.matched->mtype, 2);
  EXPECT_EQ(b.record_kinds, (std::vector<TlsaKind>{TlsaKind::dane_ee_mismatch, TlsaKind::dane_ee_match}));

  // Another selector is another set: its SHA2-256 record still counts.
  TlsaRecord cert256 = tlsa_for(leaf, 3, 0, 1);
  EXPECT_EQ(verify(pki().chain(), {cert256, bad512}).verify_error, X509_V_OK);
}

// RFC 7672 §3.1.3: PKIX usages are unusable for SMTP, even when they would
// match; with nothing usable there is no DANE authentication.
TEST(DaneVerify, PkixUsagesIgnoredForSmtp) {
  X509* leaf = pki().leaf.get();
  DaneVerification r = verify(pki().chain(), {tlsa_for(leaf, 1, 1, 1), tlsa_for(pki().ca.get(), 0, 0, 1)});
  EXPECT_EQ(r.usable, 0);
  EXPECT_EQ(r.unusable, 2);
  EXPECT_EQ(r.kinds, tlsa_bit(TlsaKind::pkix_ee) | tlsa_bit(TlsaKind::pkix_ta));
  EXPECT_EQ(r.match_depth, -1);
  EXPECT_FALSE(r.dane_authenticated());
  ASSERT_EQ(r.notes.size(), 2u);
  EXPECT_NE(r.notes[0].find("is not used for SMTP"), std::string::npos) << r.notes[0];
  // The engine sees all-unusable records: never an authenticated delivery.
  EXPECT_FALSE(engine_authenticates(r));
}

TEST(DaneVerify, MixedRecordsSummary) {
  X509* leaf = pki().leaf.get();
  std::vector<TlsaRecord> recs = {
      tlsa_for(leaf, 1, 1, 1),               // pkix_ee
      {3, 1, 1, std::vector<uint8_t>(31)},   // bad_length
      {3, 3, 1, std::vector<uint8_t>(32)},   // bad_selector
      {3, 1, 9, std::vector<uint8_t>(32)},   // bad_mtype
      tlsa_for(pki().other.get(), 2, 1, 1),  // dane_ta_mismatch
      tlsa_for(leaf, 3, 1, 1),               // dane_ee_match
  };
  DaneVerification r = verify(pki().chain(), recs);
  EXPECT_EQ(r.verify_error, X509_V_OK) << r.verify_error_text;
  EXPECT_EQ(r.usable, 2);
  EXPECT_EQ(r.unusable, 4);
  EXPECT_EQ(r.record_kinds,
            (std::vector<TlsaKind>{TlsaKind::pkix_ee, TlsaKind::bad_length, TlsaKind::bad_selector, TlsaKind::bad_mtype,
                                   TlsaKind::dane_ta_mismatch, TlsaKind::dane_ee_match}));
  EXPECT_EQ(r.notes.size(), 4u);
  EXPECT_TRUE(engine_authenticates(r));

  // Every kind the engine knows comes out of this file somewhere.
  TlsaKindSet all = r.kinds | verify(pki().chain(), {tlsa_for(pki().ca.get(), 2, 1, 1)}).kinds |
                    verify(pki().chain(), {tlsa_for(pki().other.get(), 3, 1, 1)}).kinds |
                    verify(pki().chain(), {tlsa_for(pki().ca.get(), 0, 1, 1)}).kinds;
  EXPECT_EQ(all, (1u << kTlsaKindCount) - 1);
}

TEST(DaneVerify, PemChain) {
  auto pem = [](X509* x) {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char* p = nullptr;
    long n = BIO_get_mem_data(b, &p);
    std::string s(p, static_cast<size_t>(n));
    BIO_free(b);
    return s;
  };
  const std::string chain = "subject= leaf\n" + pem(pki().leaf.get()) + "text between\n" + pem(pki().ca.get());
  const std::vector<std::string> names = {"mx.example.net"};
  const std::vector<TlsaRecord> ta = {tlsa_for(pki().ca.get(), 2, 1, 2)};
  DaneVerification r = verify_dane_pem(chain, ta, names, smtp());
  EXPECT_TRUE(r.problem.empty()) << r.problem;
  EXPECT_EQ(r.verify_error, X509_V_OK);
  EXPECT_EQ(r.match_depth, 1);

  // A trust store does not change DANE-TA (and SMTP passes none).
  DaneVerifyOptions with_store = smtp();
  with_store.trust_store_pem = pem(pki().other.get());
  EXPECT_EQ(verify_dane_pem(chain, ta, names, with_store).verify_error, X509_V_OK);
}

// The environment's mistakes are a problem and a failed verdict, never a
// success and never a crash; OpenSSL's error queue is left as found.
TEST(DaneVerify, Problems) {
  ERR_clear_error();
  const std::vector<TlsaRecord> ee = {tlsa_for(pki().leaf.get(), 3, 1, 1)};
  const std::vector<std::string> names = {"mx.example.net"};
  struct Bad {
    DaneVerification r;
    const char* problem_starts;
  };
  DaneVerifyOptions bad_store = smtp();
  bad_store.trust_store_pem = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
  DaneVerifyOptions empty_store = smtp();
  empty_store.trust_store_pem = "no certificates here\n";
  const Bad kBad[] = {
      {verify_dane({}, ee, names, smtp()), "the peer sent no certificate"},
      {verify_dane(pki().chain(), ee, {}, smtp()), "no reference name"},
      {verify_dane(pki().chain(), ee, std::vector<std::string>{""}, smtp()), "no reference name"},
      {verify_dane_pem("", ee, names, smtp()), "the peer chain holds no PEM certificate"},
      {verify_dane_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", ee, names, smtp()),
       "the peer chain: certificate 1 is not valid PEM"},
      {verify_dane(pki().chain(), ee, names, bad_store), "the trust store: certificate 1 is not valid PEM"},
      {verify_dane(pki().chain(), ee, names, empty_store), "the trust store holds no certificate"},
  };
  for (const auto& b : kBad) {
    SCOPED_TRACE(b.problem_starts);
    EXPECT_EQ(b.r.problem.rfind(b.problem_starts, 0), 0u) << b.r.problem;
    EXPECT_NE(b.r.verify_error, X509_V_OK);
    EXPECT_EQ(b.r.match_depth, -1);
    EXPECT_FALSE(b.r.dane_authenticated());
    // The records are still summarised, as mismatches: never a match.
    EXPECT_EQ(b.r.kinds, tlsa_bit(TlsaKind::dane_ee_mismatch));
    EXPECT_FALSE(engine_authenticates(b.r));
  }
  EXPECT_EQ(ERR_peek_error(), 0u) << "OpenSSL errors leaked to the caller's queue";
}

}  // namespace
