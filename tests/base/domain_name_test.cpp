// domain_name_test.cpp — the one rule for domain names
// (tlsp/base/domain_name.h): each variant's accept/refuse table, the
// A-label checks and U-label suggestions (libidn2), and domain_of_address.
#include "tlsp/base/domain_name.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using namespace tlsp;

enum V { host, policy, question, mx };

NameCheck run(V v, const std::string& text) {
  switch (v) {
    case host: return check_host_name(text);
    case policy: return check_policy_name(text);
    case question: return check_dns_question_name(text);
    case mx: return check_mx_pattern(text);
  }
  return {};
}

// One row: the text, then per variant (host, policy, question, mx) the
// normal form it is accepted as, or "!" for refused.
struct Row {
  std::string text;
  std::string want[4];
};

const std::string kLabel63(63, 'a');
const std::string kLabel64(64, 'a');
// 253 characters: four labels of 62 and one of 1, joined by dots.
const std::string kName253 = std::string(62, 'a') + "." + std::string(62, 'b') + "." + std::string(62, 'c') + "." +
                             std::string(62, 'd') + ".e";
const std::string kName254 = "x" + kName253;

std::vector<Row> table() {
  const std::string R = "!";
  return {
      // ordinary names; upper case is folded
      {"mx.example.com", {"mx.example.com", "mx.example.com", "mx.example.com", "mx.example.com"}},
      {"MX.Example.COM", {"mx.example.com", "mx.example.com", "mx.example.com", "mx.example.com"}},
      {"localhost", {"localhost", "localhost", "localhost", "localhost"}},
      {"1mx.example", {"1mx.example", "1mx.example", "1mx.example", "1mx.example"}},  // RFC 1123: a digit may lead
      {"a-b.example", {"a-b.example", "a-b.example", "a-b.example", "a-b.example"}},
      // a trailing dot is ignored; the mx ABNF has none
      {"mx.example.", {"mx.example", "mx.example", "mx.example", R}},
      {".", {R, R, R, R}},
      {"", {R, R, R, R}},
      {"mx.example..", {R, R, R, R}},
      // empty labels
      {"a..example", {R, R, R, R}},
      {".example", {R, R, R, R}},
      // `_`: only in the underscore labels a resolver is asked for
      {"a_b.example", {R, R, R, R}},
      {"_mta-sts.example.com", {R, R, "_mta-sts.example.com", R}},
      {"_25._tcp.mx.example.com", {R, R, "_25._tcp.mx.example.com", R}},
      {"_25._TCP.MX.example.com.", {R, R, "_25._tcp.mx.example.com", R}},
      {"mx._tcp.example", {R, R, R, R}},  // underscore labels lead
      {"_.example", {R, R, R, R}},
      {"_-x.example", {R, R, R, R}},
      {"_25._tcp", {R, R, R, R}},  // no host name after them
      // hyphens at a label's ends
      {"-mx.example", {R, R, R, R}},
      {"mx-.example", {R, R, R, R}},
      {"mx.-example", {R, R, R, R}},
      {"_25._tcp.mx-.example", {R, R, R, R}},
      // `--` in the third and fourth places: only the policy variant refuses
      {"ab--cd.example", {"ab--cd.example", R, "ab--cd.example", "ab--cd.example"}},
      {"r4---sn-x.example", {"r4---sn-x.example", R, "r4---sn-x.example", "r4---sn-x.example"}},
      // label and name limits
      {kLabel63 + ".example", {kLabel63 + ".example", kLabel63 + ".example", kLabel63 + ".example",
                               kLabel63 + ".example"}},
      {kLabel64 + ".example", {R, R, R, R}},
      {kName253, {kName253, kName253, kName253, kName253}},
      {kName253 + ".", {kName253, kName253, kName253, R}},
      {kName254, {R, R, R, R}},
      // the last label is not all digits (that is an address)
      {"192.0.2.1", {R, R, R, R}},
      {"example.123", {R, R, R, R}},
      {"123.example", {"123.example", "123.example", "123.example", "123.example"}},
      // bytes that are not letters, digits, `-` or `.`
      {"exa mple.com", {R, R, R, R}},
      {"tab\t.example", {R, R, R, R}},
      {"a\\046b.example", {R, R, R, R}},
      {"a/b.example", {R, R, R, R}},
      {std::string("a\0b.example", 11), {R, R, R, R}},
      // wildcards: only as the whole leftmost label of an mx pattern
      {"*.example.com", {R, R, R, "*.example.com"}},
      {"*.EXAMPLE.com", {R, R, R, "*.example.com"}},
      {"*", {R, R, R, R}},
      {"*.", {R, R, R, R}},
      {"*.*.example", {R, R, R, R}},
      {"mx.*.example", {R, R, R, R}},
      {"*mx.example", {R, R, R, R}},
      // A-labels: valid ones pass in any case, invalid ones never
      {"xn--bcher-kva.example", {"xn--bcher-kva.example", "xn--bcher-kva.example", "xn--bcher-kva.example",
                                 "xn--bcher-kva.example"}},
      {"XN--BCHER-KVA.example", {"xn--bcher-kva.example", "xn--bcher-kva.example", "xn--bcher-kva.example",
                                 "xn--bcher-kva.example"}},
      {"*.xn--aca-6ma.com", {R, R, R, "*.xn--aca-6ma.com"}},
      {"_mta-sts.xn--bcher-kva.example", {R, R, "_mta-sts.xn--bcher-kva.example", R}},
      {"xn--a.example", {R, R, R, R}},           // decodes to U+0080, disallowed
      {"xn--.example", {R, R, R, R}},            // nothing after the prefix
      {"xn--bcher-kva-.example", {R, R, R, R}},  // ends in `-`
      {"xn--ab-9.example", {R, R, R, R}},        // not punycode
      {"xn--99999999999999999a.example", {R, R, R, R}},  // punycode overflow
      {"xn--abc.example", {R, R, R, R}},         // not punycode of a valid label
      {"xn--ls8h.example", {R, R, R, R}},        // U+1F4A9: not in IDNA2008
      {"*.xn--a.example", {R, R, R, R}},
      // non-ASCII bytes: a U-label name is refused (its A-label is suggested)
      {"b\xc3\xbc" "cher.example", {R, R, R, R}},
      {"\xff.example", {R, R, R, R}},
  };
}

const char* kVariantNames[] = {"host", "policy", "question", "mx"};

TEST(DomainName, AcceptRefuseTable) {
  for (const Row& row : table())
    for (int v = 0; v < 4; ++v) {
      SCOPED_TRACE(std::string(kVariantNames[v]) + " `" + row.text + "`");
      NameCheck c = run(static_cast<V>(v), row.text);
      if (row.want[v] == "!") {
        EXPECT_FALSE(c.ok()) << "accepted as " << c.name;
        EXPECT_FALSE(c.problem.empty());
        EXPECT_NE(c.fault, NameFault::none);
      } else {
        EXPECT_TRUE(c.ok()) << c.problem;
        EXPECT_EQ(c.name, row.want[v]);
        EXPECT_TRUE(c.problem.empty());
      }
    }
}

TEST(DomainName, FaultsNameTheRuleBroken) {
  EXPECT_EQ(check_host_name("").fault, NameFault::empty);
  EXPECT_EQ(check_host_name(kName254).fault, NameFault::too_long);
  EXPECT_EQ(check_host_name("a..b").fault, NameFault::empty_label);
  EXPECT_EQ(check_host_name(kLabel64 + ".example").fault, NameFault::label_too_long);
  EXPECT_EQ(check_host_name("b\xc3\xbc" "cher.example").fault, NameFault::not_ascii);
  EXPECT_EQ(check_host_name("a_b.example").fault, NameFault::bad_character);
  EXPECT_EQ(check_host_name("a-.example").fault, NameFault::hyphen_at_label_end);
  EXPECT_EQ(check_policy_name("ab--c.example").fault, NameFault::reserved_label);
  EXPECT_EQ(check_host_name("xn--a.example").fault, NameFault::bad_a_label);
  EXPECT_EQ(check_host_name("example.123").fault, NameFault::numeric_last_label);

  NameCheck bad_char = check_host_name("a_b.example");
  EXPECT_EQ(bad_char.label, "a_b");
  EXPECT_EQ(bad_char.problem, "invalid character `_` in label `a_b`");
  NameCheck a_label = check_host_name("xn--a.example");
  EXPECT_EQ(a_label.label, "xn--a");
  EXPECT_NE(a_label.problem.find("`xn--a` is not a valid IDNA A-label"), std::string::npos) << a_label.problem;
  EXPECT_NE(check_host_name("xn--ab-9.example").problem.find("not valid punycode"), std::string::npos);
  // Control bytes are never copied into a message as they are.
  NameCheck ctl = check_host_name("a\x1b[2Jb.example");
  EXPECT_EQ(ctl.problem.find('\x1b'), std::string::npos) << ctl.problem;
  EXPECT_NE(ctl.problem.find("\\x1b"), std::string::npos) << ctl.problem;
}

TEST(DomainName, ULabelsGetTheirALabelAsSuggestion) {
  EXPECT_EQ(check_policy_name("b\xc3\xbc" "cher.example").suggestion, "xn--bcher-kva.example");
  EXPECT_EQ(check_policy_name("B\xc3\x9c" "cher.Example.").suggestion, "xn--bcher-kva.example");  // mapped
  EXPECT_EQ(check_host_name("\xc3\xb1" "aca.com").suggestion, "xn--aca-6ma.com");
  EXPECT_EQ(check_mx_pattern("*.\xc3\xb1" "aca.com").suggestion, "*.xn--aca-6ma.com");
  // No suggestion when the A-label form would be refused too, or there is none.
  EXPECT_EQ(check_host_name("\xf0\x9f\x92\xa9.example").suggestion, "");  // not in IDNA2008
  EXPECT_EQ(check_host_name("\xc3\xbc..example").suggestion, "");
  EXPECT_EQ(check_host_name("\xff.example").suggestion, "");              // not UTF-8
  EXPECT_EQ(check_host_name("xn--bcher-kva.example").suggestion, "");     // accepted: nothing to suggest
}

TEST(DomainName, LookupForm) {
  EXPECT_EQ(lookup_form("MX.Example."), "mx.example");
  EXPECT_EQ(lookup_form("\xc3\x91" "aca.com"), "xn--aca-6ma.com");
  EXPECT_EQ(lookup_form("x.\xc3\xb1" "aca.com"), "x.xn--aca-6ma.com");
  EXPECT_EQ(lookup_form("\xff.example"), std::nullopt);
}

// One function, one answer, for the relay and the simulator alike.
TEST(DomainName, DomainOfAddress) {
  EXPECT_EQ(domain_of_address("bob@Partner.Example."), "partner.example");
  EXPECT_EQ(domain_of_address("\"a@b\"@partner.example"), "partner.example");  // the last `@`
  EXPECT_EQ(domain_of_address("@x"), "");                                       // no local part
  EXPECT_EQ(domain_of_address("@partner.example"), "");
  EXPECT_EQ(domain_of_address("bob"), "");
  EXPECT_EQ(domain_of_address(""), "");
  EXPECT_EQ(domain_of_address("bob@"), "");
  EXPECT_EQ(domain_of_address("bob@[192.0.2.1]"), "");  // an address literal is no domain
  EXPECT_EQ(domain_of_address("bob@a..example"), "");
  EXPECT_EQ(domain_of_address("bob@a_b.example"), "");
  EXPECT_EQ(domain_of_address("bob@xn--a.example"), "");
  EXPECT_EQ(domain_of_address("bob@b\xc3\xbc" "cher.example"), "");
}

}  // namespace
