// tlsrpt_record_test.cpp — the RFC 8460 §3 TXT record (tlsp/tlsrpt_record.h):
// a table of records with what each must give, the several-records rule,
// the URI rules and the limits.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tlsp/tlsrpt_record.h"

namespace {

using namespace tlsp;

struct Case {
  const char* record;
  bool valid;
  size_t uris = 0;  // when valid
};

TEST(TlsrptRecord, TableOfRecords) {
  const Case cases[] = {
      {"v=TLSRPTv1; rua=mailto:reports@example.com", true, 1},
      {"v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt", true, 1},
      {"v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com/x", true, 2},
      {"v=TLSRPTv1; rua=mailto:a@example.com , https://r.example.com/x ;", true, 2},
      {"v=TLSRPTv1; rua=mailto:a@example.com;", true, 1},
      {"v=TLSRPTv1 ; rua=mailto:a@example.com  ", true, 1},
      {"v=TLSRPTv1; ext=value; rua=mailto:a@example.com", true, 1},        // extensions ignored
      {"v=TLSRPTv1; rua=mailto:a@example.com; ext.x_y-z=1", true, 1},
      {"v=TLSRPTv1; rua=ftp://x.example.com/r,mailto:a@example.com", true, 1},  // other scheme ignored
      {"v=TLSRPTv1; rua=mailto:a%40b@example.com", false},                   // decodes to two `@`: local part `a@b`
      {"v=TLSRPTv1; rua=mailto:r%2Bx@example.com", true, 1},
      {"v=TLSRPTv1; rua=https://r.example.com:8443/p?q=1", true, 1},
      {"", false},
      {"v=TLSRPTv1", false},                                  // no rua
      {"v=TLSRPTv1;", false},
      {"v=TLSRPTv2; rua=mailto:a@example.com", false},
      {"rua=mailto:a@example.com; v=TLSRPTv1", false},        // v= not first
      {" v=TLSRPTv1; rua=mailto:a@example.com", false},
      {"v=tlsrptv1; rua=mailto:a@example.com", false},        // case-sensitive
      {"v=TLSRPTv1 rua=mailto:a@example.com", false},         // no `;`
      {"v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", false},
      {"v=TLSRPTv1; rua=", false},
      {"v=TLSRPTv1; rua=mailto:a@example.com,", false},
      {"v=TLSRPTv1; rua=ftp://x.example.com/r", false},       // nothing usable
      {"v=TLSRPTv1; rua=http://r.example.com/x", false},      // http: is not https:
      {"v=TLSRPTv1; rua=mailto:a@example.com; ext=", false},
      {"v=TLSRPTv1; rua=mailto:a@example.com; ext=a=b", false},
      {"v=TLSRPTv1; rua=mailto:a@example.com; =x", false},
      {"v=TLSRPTv1; rua=mailto:a@example.com; e\x01=x", false},
      {"v=TLSRPTv1; rua=mailto:reports", false},               // no domain
      {"v=TLSRPTv1; rua=mailto:@example.com", false},
      {"v=TLSRPTv1; rua=mailto:a@-bad-.example", false},
      {"v=TLSRPTv1; rua=mailto:a@example.com!10m", false},     // `!` must be encoded
      {"v=TLSRPTv1; rua=mailto:a@example.com%2Cb@example.com", false},  // one address per URI
      {"v=TLSRPTv1; rua=mailto:a%zz@example.com", false},
      {"v=TLSRPTv1; rua=https://user@r.example.com/x", false},
      {"v=TLSRPTv1; rua=https://192.0.2.1/x", false},
      {"v=TLSRPTv1; rua=https://[2001:db8::1]/x", false},
      {"v=TLSRPTv1; rua=https://r.example.com:0/x", false},
      {"v=TLSRPTv1; rua=https://r.example.com:65536/x", false},
      {"v=TLSRPTv1; rua=https://r.example.com/x#frag", false},
      {"v=TLSRPTv1; rua=https://localhost/x", false},          // not fully qualified
      {"v=TLSRPTv1; rua=https:///x", false},
      {"v=TLSRPTv1; rua=https://r.example.com/a%2", false},
      {"v=TLSRPTv1; rua=https://r.example.com/\xc3\xa9", false},
  };
  for (const Case& c : cases) {
    TlsrptParse p = parse_tlsrpt_txt(c.record);
    EXPECT_EQ(bool(p), c.valid) << "`" << c.record << "`: " << p.problem;
    if (p && c.valid) {
      EXPECT_EQ(p.value->rua.size(), c.uris) << c.record;
    }
    if (!p) {
      EXPECT_FALSE(p.problem.empty()) << c.record;
    }
  }
}

TEST(TlsrptRecord, UrisAreTakenApart) {
  TlsrptParse p = parse_tlsrpt_txt(
      "v=TLSRPTv1; rua=mailto:TLS%2BReports@Example.COM?subject=x,https://R.example.com:8443/v1/r?k=1,"
      "https://c.example.net,https://d.example.org?x=1, ftp://f.example/");
  ASSERT_TRUE(p) << p.problem;
  ASSERT_EQ(p.value->rua.size(), 4u);
  EXPECT_EQ(p.value->rua[0].scheme, TlsrptScheme::mailto);
  EXPECT_EQ(p.value->rua[0].address, "TLS+Reports@example.com");  // the domain in normal form, the local part as is
  EXPECT_EQ(p.value->rua[1].scheme, TlsrptScheme::https);
  EXPECT_EQ(p.value->rua[1].host, "r.example.com");
  EXPECT_EQ(p.value->rua[1].port, 8443);
  EXPECT_EQ(p.value->rua[1].path, "/v1/r?k=1");
  EXPECT_EQ(p.value->rua[2].port, 443);
  EXPECT_EQ(p.value->rua[2].path, "/");
  EXPECT_EQ(p.value->rua[3].path, "/?x=1");
  ASSERT_EQ(p.value->ignored.size(), 1u);
  EXPECT_EQ(p.value->ignored[0], "ftp://f.example/");
}

TEST(TlsrptRecord, ExactlyOneRecordMustBeginWithTheVersion) {
  const std::string good = "v=TLSRPTv1; rua=mailto:a@example.com";
  EXPECT_TRUE(select_tlsrpt_record({good}));
  // Records of other kinds at the same name are discarded first.
  EXPECT_TRUE(select_tlsrpt_record({"v=spf1 -all", good, "google-site-verification=abc"}));
  EXPECT_TRUE(select_tlsrpt_record({"v=TLSRPTv12; rua=mailto:b@example.com", good}));
  // Two TLSRPT records, even both valid or one invalid: the domain does not implement TLSRPT.
  TlsrptParse two = select_tlsrpt_record({good, "v=TLSRPTv1; rua=mailto:b@example.com"});
  EXPECT_FALSE(two);
  EXPECT_NE(two.problem.find("2 records"), std::string::npos) << two.problem;
  EXPECT_FALSE(select_tlsrpt_record({good, "v=TLSRPTv1; garbage"}));
  EXPECT_FALSE(select_tlsrpt_record({}));
  EXPECT_FALSE(select_tlsrpt_record({"v=spf1 -all"}));
  // The one left must parse.
  EXPECT_FALSE(select_tlsrpt_record({"v=TLSRPTv1; rua=mailto:nobody"}));
}

TEST(TlsrptRecord, LimitsAreNamedAndHeld) {
  std::string many = "v=TLSRPTv1; rua=";
  for (size_t i = 0; i < kMaxTlsrptUris; ++i) many += (i ? "," : "") + std::string("mailto:r") + std::to_string(i) + "@example.com";
  EXPECT_TRUE(parse_tlsrpt_txt(many)) << parse_tlsrpt_txt(many).problem;
  TlsrptParse too_many = parse_tlsrpt_txt(many + ",mailto:x@example.com");
  EXPECT_FALSE(too_many);
  EXPECT_NE(too_many.problem.find("more than"), std::string::npos);

  std::string long_uri = "v=TLSRPTv1; rua=https://r.example.com/" + std::string(kMaxTlsrptUriBytes, 'a');
  EXPECT_FALSE(parse_tlsrpt_txt(long_uri));
  std::string long_record = "v=TLSRPTv1; rua=mailto:a@example.com; pad=" + std::string(kMaxTlsrptRecordBytes, 'x');
  TlsrptParse lr = parse_tlsrpt_txt(long_record);
  EXPECT_FALSE(lr);
  EXPECT_NE(lr.problem.find("longer than"), std::string::npos);
}

TEST(TlsrptRecord, CommandLineUris) {
  std::string problem;
  auto u = parse_tlsrpt_uri("mailto:r@example.com", &problem);
  ASSERT_TRUE(u) << problem;
  EXPECT_EQ(u->address, "r@example.com");
  EXPECT_FALSE(parse_tlsrpt_uri("ftp://x.example.com/", &problem));
  EXPECT_NE(problem.find("neither"), std::string::npos);
  EXPECT_FALSE(parse_tlsrpt_uri("", &problem));
}

}  // namespace
