// `tlsp tlsrpt`: summarize over real report files (the conformance
// reports, and ones tlsp wrote), its errors; report's usage. The report
// command's store path is tested end to end once a store is merged.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "test_support.h"

namespace {

using tlsp::testing_support::run_tlsp;
using tlsp::testing_support::TempDir;

TEST(TlsrptCli, SummarizeConformanceReports) {
  TLSP_CONFORMANCE_DIR(dir, "tlsrpt");
  const std::string m = (dir / "mail-auth").string();
  std::string err;
  const auto r = run_tlsp("tlsrpt summarize " + m + "/rpt01.eml " + m + "/rpt02.json " + m + "/rpt03.json " +
                              (dir / "rfc8460/rfc8460-section4.4-verbatim.json").string(),
                          err);
  EXPECT_EQ(r.code, 0) << r.out << err;
  // rpt01.eml and the RFC example are the same report (one report-id).
  EXPECT_NE(err.find("already counted"), std::string::npos) << err;
  EXPECT_NE(r.out.find("Company-X  company-y.example sts: 5326 303 (1)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("    starttls-not-supported: 200 failed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Google Inc.  example.com sts: 23 1 (1)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("-- 3 reports: 5351 successful, 304 failed sessions"), std::string::npos) << r.out;
  const auto j = run_tlsp("tlsrpt summarize --json " + m + "/rpt02.eml", err);
  ASSERT_EQ(j.code, 0) << err;
  const auto rows = nlohmann::json::parse(j.out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["successful"], 23);
  EXPECT_EQ(rows[1]["result_type"], "certificate-host-mismatch");
}

TEST(TlsrptCli, SummarizeErrors) {
  TempDir dir("tlsp-tlsrpt-cli");
  std::string err;
  const auto r = run_tlsp("tlsrpt summarize " + dir.write("bad.json", "{\"policies\": 3}") + " " + dir.file("missing"), err);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(err.find("bad.json: policies: a number, not an array"), std::string::npos) << err;
  EXPECT_NE(err.find("cannot read"), std::string::npos) << err;
  EXPECT_EQ(run_tlsp("tlsrpt summarize", err).code, 2);
  EXPECT_NE(err.find("no report file given"), std::string::npos) << err;
}

TEST(TlsrptCli, ReportUsage) {
  std::string err;
  EXPECT_EQ(run_tlsp("tlsrpt report --day 2026-02-30 --store x", err).code, 2);
  EXPECT_NE(err.find("is not a day"), std::string::npos) << err;
  // Without --store the relay's configuration names it (tlsrpt_store_spec()).
  EXPECT_EQ(run_tlsp("tlsrpt report --day 2026-02-03 --config /nonexistent/relay.conf", err).code, 2);
  EXPECT_NE(err.find("/nonexistent/relay.conf"), std::string::npos) << err;
  EXPECT_EQ(run_tlsp("tlsrpt frobnicate", err).code, 2);
  EXPECT_NE(err.find("unknown operation"), std::string::npos) << err;
}

}  // namespace
