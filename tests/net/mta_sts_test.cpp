// mta_sts_test.cpp — the RFC 8461 parsers and the MX matcher (tlsp/mta_sts.h)
// against the shared conformance vectors (../shared/conformance/mtasts/,
// extracted from three independent implementations), plus the limits and
// corner cases the vectors do not cover.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "test_support.h"
#include "tlsp/mta_sts.h"

namespace {

using nlohmann::json;
using namespace tlsp;

const json& vectors() {
  static const json v = [] {
    std::ifstream in(tlsp::testing_support::conformance_path("mtasts") / "mtasts-vectors.json");
    if (!in) return json();
    return json::parse(in);
  }();
  return v;
}

// Skips when the shared folder is missing (TLSP_CONFORMANCE_DIR); a folder
// without a readable vector file is a failure.
#define REQUIRE_VECTORS()                 \
  TLSP_CONFORMANCE_DIR(mtasts, "mtasts"); \
  ASSERT_TRUE(vectors().is_object()) << "cannot read " << (mtasts / "mtasts-vectors.json").string()

std::string mode_name(StsMode m) { return std::string(to_string(m)); }

// ---------------------------------------------------------- conformance

TEST(MtaStsConformance, TxtRecords) {
  REQUIRE_VECTORS();
  size_t n = 0;
  for (const auto& c : vectors()["dns_txt_record"]) {
    const std::string txt = c["txt"];
    SCOPED_TRACE("txt: `" + txt + "` (" + c["source"].get<std::string>() + ")");
    auto r = parse_mta_sts_txt(txt);
    if (c["expect"] == "valid") {
      ASSERT_TRUE(r) << r.problem;
      EXPECT_EQ(r.value->id, c["id"].get<std::string>());
    } else {
      EXPECT_FALSE(r);
      EXPECT_FALSE(r.problem.empty());
    }
    ++n;
  }
  EXPECT_EQ(n, 10u);
}

TEST(MtaStsConformance, PolicyBodies) {
  REQUIRE_VECTORS();
  size_t n = 0;
  for (const auto& c : vectors()["policy_text"]) {
    const std::string body = c["policy_text"];
    SCOPED_TRACE("policy: `" + body + "` (" + c["source"].get<std::string>() + ")");
    auto r = parse_mta_sts_policy(body);
    if (c["expect"] == "valid") {
      ASSERT_TRUE(r) << r.problem;
      EXPECT_EQ(mode_name(r.value->mode), c["mode"].get<std::string>());
      EXPECT_EQ(r.value->max_age, c["max_age"].get<uint32_t>());
      EXPECT_EQ(r.value->mx, c["mx"].get<std::vector<std::string>>());
    } else {
      EXPECT_FALSE(r);
    }
    ++n;
  }
  EXPECT_EQ(n, 13u);
}

TEST(MtaStsConformance, MxMatching) {
  REQUIRE_VECTORS();
  size_t checked = 0, idna = 0;
  for (const auto& c : vectors()["mx_match"]) {
    const std::string host = c["mx_host"];
    const auto patterns = c["policy_mx"].get<std::vector<std::string>>();
    SCOPED_TRACE("host `" + host + "` against " + c["policy_mx"].dump());
    EXPECT_EQ(mta_sts_mx_matches(host, patterns), c["expect_match"].get<bool>());
    ++checked;
    if (c["needs_idna"].get<bool>()) ++idna;
  }
  EXPECT_EQ(checked, 21u);
  // U-label / A-label equivalence (libidn2), e.g. `x.ñaca.com` against
  // `x.xn--aca-6ma.com`.
  EXPECT_EQ(idna, 4u);
}

TEST(MtaStsConformance, TxtTokenizing) {
  REQUIRE_VECTORS();
  for (const auto& c : vectors()["snawoot_record_tokenize"]) {
    const std::string txt = c["txt"];
    SCOPED_TRACE("txt: `" + txt + "`");
    std::map<std::string, std::string> got;
    for (auto& [k, v] : split_mta_sts_txt(txt)) got[k] = v;
    EXPECT_EQ(got, (c["expect_fields"].get<std::map<std::string, std::string>>()));
  }
}

TEST(MtaStsConformance, ContentTypes) {
  REQUIRE_VECTORS();
  for (const auto& c : vectors()["snawoot_content_type"]) {
    const std::string ct = c["content_type"];
    SCOPED_TRACE("content type: `" + ct + "`");
    EXPECT_EQ(is_text_plain_content_type(ct), c["expect_text_plain"].get<bool>());
  }
}

// -------------------------------------------------------------- limits

TEST(MtaStsPolicy, MaxAgeLimit) {
  EXPECT_TRUE(parse_mta_sts_policy("version: STSv1\nmode: none\nmax_age: 31557600\n"));
  auto r = parse_mta_sts_policy("version: STSv1\nmode: none\nmax_age: 31557601\n");
  EXPECT_FALSE(r);
  EXPECT_NE(r.problem.find("31557600"), std::string::npos) << r.problem;
  EXPECT_FALSE(parse_mta_sts_policy("version: STSv1\nmode: none\nmax_age: 00000000001\n"));  // 11 digits
  EXPECT_FALSE(parse_mta_sts_policy("version: STSv1\nmode: none\nmax_age: -1\n"));
}

TEST(MtaStsPolicy, SizeLimit) {
  std::string body = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n";
  EXPECT_TRUE(parse_mta_sts_policy(body));
  std::string filler = "x-padding: " + std::string(100, 'a') + "\n";
  while (body.size() + filler.size() <= kMaxStsPolicyBytes) body += filler;
  EXPECT_TRUE(parse_mta_sts_policy(body)) << "at most 64 KiB is accepted";
  body += filler;
  EXPECT_FALSE(parse_mta_sts_policy(body));
}

TEST(MtaStsPolicy, StrictSyntax) {
  const std::string ok = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400";
  EXPECT_TRUE(parse_mta_sts_policy(ok));
  EXPECT_TRUE(parse_mta_sts_policy(ok + "\r\n"));
  EXPECT_FALSE(parse_mta_sts_policy(ok + "\n\n")) << "one terminator may end the file, not an empty line";
  EXPECT_FALSE(parse_mta_sts_policy("version: STSv1\n\nmode: enforce\nmx: mx.example.com\nmax_age: 86400"));
  EXPECT_FALSE(parse_mta_sts_policy(ok + "\nmode: testing")) << "mode twice";
  EXPECT_FALSE(parse_mta_sts_policy("Version: STSv1\nmode: none\nmax_age: 1")) << "keys are case-sensitive";
  EXPECT_FALSE(parse_mta_sts_policy("version: STSv1\nmode: ENFORCE\nmx: mx.example.com\nmax_age: 1"));
  EXPECT_FALSE(parse_mta_sts_policy(" version: STSv1\nmode: none\nmax_age: 1")) << "leading space";
  EXPECT_FALSE(parse_mta_sts_policy("version: STSv1\nmode: enforce\nmx: mx..example.com\nmax_age: 1"));
  EXPECT_FALSE(parse_mta_sts_policy("version: STSv1\nmode: enforce\nmx: *.*.example.com\nmax_age: 1"));
  EXPECT_FALSE(parse_mta_sts_policy("version: STSv1\nmode: enforce\nmx: mx.example.com.\nmax_age: 1"));
  // The pattern is a host name (tlsp/base/domain_name.h): no `_`, no hyphen
  // at a label's ends, A-labels only and valid ones (RFC 8461 §3.2).
  for (const char* bad : {"mx_1.example.com", "mx-.example.com", "xn--a.example.com", "\xc3\xb1" "aca.com", "*.192.0.2.1"})
    EXPECT_FALSE(parse_mta_sts_policy(std::string("version: STSv1\nmode: enforce\nmx: ") + bad + "\nmax_age: 1"))
        << bad;
  auto alabel = parse_mta_sts_policy("version: STSv1\nmode: enforce\nmx: *.xn--aca-6ma.com\nmax_age: 1");
  EXPECT_TRUE(alabel) << alabel.problem;
  EXPECT_FALSE(parse_mta_sts_policy("version: STSv1\rmode: none\nmax_age: 1")) << "a lone CR";
  EXPECT_FALSE(parse_mta_sts_policy(""));
  auto ext = parse_mta_sts_policy("version: STSv1\nx_unknown.field-1: any text here\nmode: none\nmax_age: 1");
  EXPECT_TRUE(ext) << ext.problem;
}

TEST(MtaStsTxt, StrictSyntax) {
  EXPECT_TRUE(parse_mta_sts_txt("v=STSv1; id=20160831085700Z;"));
  EXPECT_TRUE(parse_mta_sts_txt("v=STSv1;id=abc  "));
  EXPECT_FALSE(parse_mta_sts_txt(" v=STSv1; id=abc")) << "v= must come first";
  EXPECT_FALSE(parse_mta_sts_txt("v=STSv1; id=abc; id=def")) << "id twice";
  EXPECT_FALSE(parse_mta_sts_txt("v=STSv1; id=" + std::string(33, 'a'))) << "id longer than 32";
  EXPECT_TRUE(parse_mta_sts_txt("v=STSv1; id=" + std::string(32, 'a')));
  EXPECT_FALSE(parse_mta_sts_txt("v=STSv1; id=a-b")) << "id is letters and digits";
  EXPECT_FALSE(parse_mta_sts_txt("v=STSv1;; id=abc")) << "empty field";
  EXPECT_FALSE(parse_mta_sts_txt("v=stsv1; id=abc")) << "case-sensitive";
  EXPECT_FALSE(parse_mta_sts_txt("v=STSv10; id=abc"));
}

TEST(MtaStsMatch, OneLabelWildcardAndCase) {
  EXPECT_TRUE(mta_sts_mx_matches("MX.Example.COM.", "mx.example.com"));
  EXPECT_TRUE(mta_sts_mx_matches("mx.example.com", "*.EXAMPLE.com"));
  EXPECT_FALSE(mta_sts_mx_matches("a.mx.example.com", "*.example.com"));
  EXPECT_FALSE(mta_sts_mx_matches(".example.com", "*.example.com"));
  EXPECT_FALSE(mta_sts_mx_matches("xexample.com", "*.example.com"));
  EXPECT_FALSE(mta_sts_mx_matches("mx.example.com", std::vector<std::string>{}));
}

// U-labels compare in their A-label form, on either side and under a wildcard.
TEST(MtaStsMatch, IdnaEquivalence) {
  EXPECT_TRUE(mta_sts_mx_matches("mx.xn--bcher-kva.example", "*.b\xc3\xbc" "cher.example"));
  EXPECT_TRUE(mta_sts_mx_matches("mx.B\xc3\x9c""cher.example", "*.xn--bcher-kva.example"));
  EXPECT_FALSE(mta_sts_mx_matches("a.mx.b\xc3\xbc" "cher.example", "*.xn--bcher-kva.example"));
  EXPECT_FALSE(mta_sts_mx_matches("mx.bucher.example", "mx.b\xc3\xbc" "cher.example"));
  EXPECT_FALSE(mta_sts_mx_matches("\xff\xfe.example", "\xff\xfe.example")) << "not UTF-8: matches nothing";
}

// The texts come from the network: no input may crash or hang a parser.
TEST(MtaStsRobustness, RandomInputs) {
  std::mt19937 rng(8461);
  const std::string alphabet = "v=STSv1;id: \t\r\nmodeenforcemax_age0123456789*.x-\xff";
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 80, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    (void)parse_mta_sts_txt(s);
    (void)parse_mta_sts_policy(s);
    (void)split_mta_sts_txt(s);
    (void)mta_sts_mx_matches(s, s);
    (void)is_text_plain_content_type(s);
  }
  SUCCEED();
}

}  // namespace
