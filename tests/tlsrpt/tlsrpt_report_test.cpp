// The RFC 8460 report: the JSON written from summaries (golden text, the
// schema through python3-jsonschema, the cap), and the reader (JSON, gzip,
// mail; the conformance reports; quirks; limits).
#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <regex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "command.h"
#include "test_support.h"
#include "tlsp/tlsrpt_report.h"

namespace tlsp::tlsrpt {
namespace {

using testing_support::run_shell;
using testing_support::TempDir;

const Organization kOrg{"Acme Mail", "mailto:tlsrpt@acme.example", "mx.acme.example"};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string gzip_of(const std::string& data) {
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

PolicySummary sts_policy() {
  PolicySummary s;
  s.policy.type = PolicyType::sts;
  s.policy.domain = "bank.example";
  s.policy.strings = {"version: STSv1", "mode: enforce", "mx: *.mail.bank.example", "max_age: 86400"};
  s.policy.mx_host = {"*.mail.bank.example"};
  s.successful = 5326;
  s.failed = 303;
  FailureDetail a{"certificate-expired", "192.0.2.10", "mx1.mail.bank.example", "", "203.0.113.5", "", ""};
  FailureDetail b{"starttls-not-supported", "2001:db8::10", "mx2.mail.bank.example", "mx2.bank.example",
                  "203.0.113.6", "", "tlsp: starttls-not-supported"};
  FailureDetail c{"validation-failure", "192.0.2.10", "mx1.mail.bank.example", "", "203.0.113.5", "",
                  "tlsp: tls-version-too-low"};
  s.failures = {{a, 100}, {b, 200}, {c, 3}};
  return s;
}

PolicySummary tlsa_policy() {
  PolicySummary s;
  s.policy.type = PolicyType::tlsa;
  s.policy.domain = "dane.example";
  s.policy.strings = {"3 1 1 0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6"};
  s.successful = 12;
  s.failed = 2;
  s.failures = {{{"tlsa-invalid", "192.0.2.10", "mx.dane.example", "", "198.51.100.7", "", "tlsp: tlsa-invalid"}, 2}};
  return s;
}

PolicySummary no_policy() {
  PolicySummary s;
  s.policy.type = PolicyType::no_policy_found;
  s.policy.domain = "plain.example";
  s.successful = 40;
  return s;
}

// Golden text: tests/tlsrpt/golden/NAME.json; TLSP_UPDATE_GOLDEN=1 rewrites it.
void expect_golden(const std::string& name, const std::string& text) {
  const std::filesystem::path p = std::filesystem::path(TLSP_SOURCE_DIR) / "tests/tlsrpt/golden" / (name + ".json");
  if (const char* u = std::getenv("TLSP_UPDATE_GOLDEN"); u && *u && std::string_view(u) != "0") {
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
  }
  EXPECT_EQ(slurp(p), text) << "golden " << p << " (TLSP_UPDATE_GOLDEN=1 to regenerate, then review the diff)";
}

// The shapes a generator must get right, each a report.
std::vector<std::pair<std::string, std::string>> report_shapes() {
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("sts", report_json(kOrg, "id-sts", "2026-12-06", {sts_policy()}));
  out.emplace_back("tlsa", report_json(kOrg, "id-tlsa", "2026-12-06", {tlsa_policy()}));
  out.emplace_back("no-policy-found", report_json(kOrg, "id-none", "2026-12-06", {no_policy()}));
  PolicySummary old_sts = sts_policy();
  old_sts.policy.strings[1] = "mode: testing";
  PolicySummary nothing = no_policy();
  nothing.policy.domain = "bank.example";
  out.emplace_back("mixed", report_json(kOrg, "id-mixed", "2024-02-29", {sts_policy(), nothing, old_sts}));
  PolicySummary many = tlsa_policy();
  many.failures.clear();
  many.failed = 0;
  for (int i = 0; i < 40; ++i) {
    FailureDetail d{i % 2 ? "dnssec-invalid" : "certificate-not-trusted", "192.0.2." + std::to_string(i),
                    "mx" + std::to_string(i % 4) + ".dane.example", "", "198.51.100." + std::to_string(i), "", ""};
    many.failures.push_back({d, static_cast<uint64_t>(1 + i % 7)});
    many.failed += 1 + i % 7;
  }
  out.emplace_back("many-failures", report_json(kOrg, "id-many", "2026-12-06", {many}));
  return out;
}

TEST(TlsrptReport, GoldenText) {
  for (const auto& [name, text] : report_shapes()) expect_golden(name, text);
}

TEST(TlsrptReport, FieldsAndOrderAreDeterministic) {
  PolicySummary p = sts_policy();
  std::reverse(p.failures.begin(), p.failures.end());
  PolicySummary q = no_policy();
  q.policy.domain = "bank.example";
  EXPECT_EQ(report_json(kOrg, "x", "2026-12-06", {p, q}), report_json(kOrg, "x", "2026-12-06", {q, sts_policy()}));
  const std::string text = report_json(kOrg, "x", "2026-12-06", {p});
  const nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j["date-range"]["start-datetime"], "2026-12-06T00:00:00Z");
  EXPECT_EQ(j["date-range"]["end-datetime"], "2026-12-06T23:59:59Z");
  EXPECT_TRUE(j["policies"][0]["policy"]["mx-host"].is_array());
  EXPECT_TRUE(j["policies"][0]["summary"]["total-failure-session-count"].is_number_unsigned());
  // Most sessions first; the RFC's name for the reason, never the example's.
  EXPECT_EQ(j["policies"][0]["failure-details"][0]["failed-session-count"], 200);
  EXPECT_EQ(text.find("failure-error-code"), std::string::npos);
  EXPECT_NE(text.find("\"failure-reason-code\": \"tlsp: tls-version-too-low\""), std::string::npos);
  // Empty optional fields are left out.
  EXPECT_FALSE(j["policies"][0]["failure-details"][1].contains("receiving-mx-helo"));
  const nlohmann::json none = nlohmann::json::parse(report_json(kOrg, "x", "2026-12-06", {no_policy()}));
  EXPECT_FALSE(none["policies"][0]["policy"].contains("policy-string"));
  EXPECT_FALSE(none["policies"][0]["policy"].contains("mx-host"));
  EXPECT_FALSE(none["policies"][0].contains("failure-details"));
  EXPECT_THROW(report_json(kOrg, "x", "2026-02-30", {}), std::invalid_argument);
}

TEST(TlsrptReport, FailureDetailsAreCappedAndStillCounted) {
  PolicySummary p = tlsa_policy();
  p.failures.clear();
  p.failed = 0;
  for (size_t i = 0; i < kMaxFailureDetailsPerPolicy + 5; ++i) {
    FailureDetail d{"validation-failure", "192.0.2.1", "mx.dane.example", "", "198.51.100.1", "",
                    "code-" + std::to_string(i)};
    p.failures.push_back({d, i == 7 ? 1000u : 1u});
    p.failed += i == 7 ? 1000 : 1;
  }
  const nlohmann::json j = nlohmann::json::parse(report_json(kOrg, "x", "2026-12-06", {p}));
  const auto& details = j["policies"][0]["failure-details"];
  EXPECT_EQ(details.size(), kMaxFailureDetailsPerPolicy);
  EXPECT_EQ(details[0]["failure-reason-code"], "code-7");  // the biggest is kept
  EXPECT_EQ(j["policies"][0]["summary"]["total-failure-session-count"], kMaxFailureDetailsPerPolicy + 4 + 1000);
}

TEST(TlsrptReport, ReportIdsAreUniqueMsgIds) {
  const std::regex form("20261206T000000Z_bank\\.example_[0-9a-f]{16}@mx\\.acme\\.example");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = make_report_id("2026-12-06", "bank.example", "mx.acme.example");
    EXPECT_TRUE(std::regex_match(id, form)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_THROW(make_report_id("2026-13-01", "bank.example", "mx.acme.example"), std::invalid_argument);
}

// python3-jsonschema, a validator that is not ours; Debian's python3 first
// (python3-jsonschema installs there), else the one on PATH.
std::string python() { return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3"; }

testing_support::CommandRun validate(const std::string& mode, const std::vector<std::string>& files) {
  std::string cmd = python() + " " + TLSP_SOURCE_DIR "/tests/tlsrpt/validate_reports.py " TLSP_SOURCE_DIR
                               "/docs/tlsrpt-report.schema.json " + mode;
  for (const std::string& f : files) cmd += " '" + f + "'";
  return run_shell(cmd + " 2>&1");
}

TEST(TlsrptReportSchema, EveryGeneratedShapeValidates) {
  TempDir dir("tlsp-tlsrpt-schema");
  std::vector<std::string> files;
  for (const auto& [name, text] : report_shapes()) files.push_back(dir.write(name + ".json", text));
  PolicySummary capped = sts_policy();
  for (size_t i = 0; i < kMaxFailureDetailsPerPolicy + 10; ++i)
    capped.failures.push_back({{"sts-webpki-invalid", "192.0.2.9", "mx9.mail.bank.example", "", "", "",
                                "n" + std::to_string(i)}, 1});
  files.push_back(dir.write("capped.json", report_json(kOrg, "id-cap", "2026-12-06", {capped})));
  // A name a peer sent that is not UTF-8 still makes valid JSON.
  PolicySummary odd = tlsa_policy();
  odd.failures[0].first.receiving_mx_helo = "mx\xff\xfe.example";
  files.push_back(dir.write("not-utf8.json", report_json(kOrg, "id-odd", "2026-12-06", {odd})));
  const auto r = validate("emitted", files);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(std::to_string(files.size()) + " file(s), 0 unexpected"), std::string::npos) << r.out;
}

TEST(TlsrptReportSchema, SchemaIsNotAPushover) {
  // What the generator must never write is refused by the schema.
  TempDir dir("tlsp-tlsrpt-schema");
  std::string text = report_json(kOrg, "x", "2026-12-06", {sts_policy()});
  const auto swap = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    t.replace(t.find(from), from.size(), to);
    return t;
  };
  const std::vector<std::string> bad = {
      dir.write("b1.json", swap("failure-reason-code", "failure-error-code")),
      dir.write("b2.json", swap("\"failed-session-count\": 200", "\"failed-session-count\": \"200\"")),
      dir.write("b3.json", swap("\"policy-type\": \"sts\"", "\"policy-type\": \"dane\"")),
      dir.write("b4.json", swap("T23:59:59Z", "T12:00:00Z")),
  };
  for (const std::string& f : bad) {
    const auto r = validate("emitted", {f});
    EXPECT_EQ(r.code, 1) << f << "\n" << r.out;
  }
}

TEST(TlsrptReportSchema, ConformanceReports) {
  TLSP_CONFORMANCE_DIR(dir, "tlsrpt");
  std::vector<std::string> real;
  for (const auto& e : std::filesystem::directory_iterator(dir / "mail-auth"))
    if (e.path().extension() == ".json") real.push_back(e.path().string());
  std::sort(real.begin(), real.end());
  ASSERT_EQ(real.size(), 3u);
  const auto ok = validate("received", real);
  EXPECT_EQ(ok.code, 0) << ok.out;
  // The RFC's own example as published: its `failure-error-code` and its
  // string `mx-host` are refused.
  const auto no = validate("rejected", {(dir / "rfc8460/rfc8460-section4.4-verbatim.json").string()});
  EXPECT_EQ(no.code, 0) << no.out;
  EXPECT_NE(no.out.find("failure-error-code"), std::string::npos) << no.out;
  EXPECT_NE(no.out.find("mx-host"), std::string::npos) << no.out;
}

// ------------------------------------------------------------------ reader

TEST(TlsrptReader, ReadsWhatItWrites) {
  const std::string text = report_json(kOrg, "id-1", "2026-12-06", {sts_policy(), tlsa_policy()});
  for (const std::string& bytes : {text, gzip_of(text)}) {
    const ReportReadResult r = read_report(bytes);
    ASSERT_TRUE(r.report) << r.error;
    EXPECT_EQ(r.report->organization_name, "Acme Mail");
    EXPECT_EQ(r.report->report_id, "id-1");
    EXPECT_EQ(r.report->start_datetime, "2026-12-06T00:00:00Z");
    ASSERT_EQ(r.report->policies.size(), 2u);
    const ReceivedPolicy& p = r.report->policies[0];
    EXPECT_EQ(p.known_type, PolicyType::sts);
    EXPECT_EQ(p.mx_host, std::vector<std::string>{"*.mail.bank.example"});
    EXPECT_EQ(p.successful, 5326u);
    EXPECT_EQ(p.failed, 303u);
    ASSERT_EQ(p.failures.size(), 3u);
    EXPECT_EQ(p.failures[0].count, 200u);
    EXPECT_EQ(p.failures[0].detail.receiving_mx_helo, "mx2.bank.example");
  }
}

TEST(TlsrptReader, ConformanceReportsRead) {
  TLSP_CONFORMANCE_DIR(dir, "tlsrpt");
  for (const char* name : {"rpt01.json", "rpt02.json", "rpt03.json", "rpt01.eml", "rpt02.eml"}) {
    const ReportReadResult r = read_report(slurp(dir / "mail-auth" / name));
    ASSERT_TRUE(r.report) << name << ": " << r.error;
    EXPECT_FALSE(r.report->policies.empty()) << name;
  }
  const ReportReadResult eml = read_report(slurp(dir / "mail-auth/rpt01.eml"));
  EXPECT_EQ(eml.report->notes.front(), "mail part application/tlsrpt+gzip");
  EXPECT_EQ(eml.report->organization_name, "Company-X");
  EXPECT_EQ(eml.report->policies[0].failed, 303u);
  const ReportReadResult eml2 = read_report(slurp(dir / "mail-auth/rpt02.eml"));
  EXPECT_EQ(eml2.report->organization_name, "Google Inc.");
  const ReportReadResult odd = read_report(slurp(dir / "mail-auth/rpt03.json"));
  EXPECT_EQ(odd.report->policies[1].type, "invalid-policy-type");
  EXPECT_FALSE(odd.report->policies[1].known_type);
  // The RFC example's quirks are read, and noted.
  const ReportReadResult rfc = read_report(slurp(dir / "rfc8460/rfc8460-section4.4-verbatim.json"));
  ASSERT_TRUE(rfc.report) << rfc.error;
  EXPECT_EQ(rfc.report->policies[0].mx_host, std::vector<std::string>{"*.mail.company-y.example"});
  EXPECT_EQ(rfc.report->policies[0].failures[2].detail.failure_reason_code, "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED");
  EXPECT_EQ(rfc.report->notes.size(), 2u);
}

std::string mail_with(const std::string& part_headers, const std::string& part_body) {
  return "From: a@b.example\r\nSubject: Report Domain: acme.example\r\nMIME-Version: 1.0\r\n"
         "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n  boundary=\"BB\"\r\n\r\npreamble\r\n"
         "--BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n--BBnot a delimiter\r\n"
         "--BB\r\n" + part_headers + "\r\n\r\n" + part_body + "\r\n--BB--\r\nepilogue\r\n";
}

std::string base64_of(const std::string& in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], a[v & 63]};
    if (out.size() % 78 == 76) out += "\r\n";
  }
  if (in.size() - i == 1) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += {a[v >> 18], a[(v >> 12) & 63], '=', '='};
  } else if (in.size() - i == 2) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], '='};
  }
  return out;
}

TEST(TlsrptReader, MailParts) {
  const std::string text = report_json(kOrg, "id-m", "2026-12-06", {tlsa_policy()});
  const auto gz = read_report(mail_with("Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64",
                                        base64_of(gzip_of(text))));
  ASSERT_TRUE(gz.report) << gz.error;
  EXPECT_EQ(gz.report->report_id, "id-m");
  const auto js = read_report(mail_with("Content-Type: application/tlsrpt+json", text));
  ASSERT_TRUE(js.report) << js.error;
  // Nested one level deeper (a forwarded report).
  const std::string inner = mail_with("Content-Type: application/tlsrpt+json", text);
  const std::string outer = "Content-Type: multipart/mixed; boundary=OUT\n\n--OUT\n" + inner.substr(inner.find("Content-Type")) + "\n--OUT--\n";
  const auto nested = read_report(outer);
  ASSERT_TRUE(nested.report) << nested.error;
  const auto none = read_report(mail_with("Content-Type: application/pdf", "xx"));
  EXPECT_FALSE(none.report);
  EXPECT_NE(none.error.find("no application/tlsrpt"), std::string::npos);
  const auto badb64 = read_report(mail_with("Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64", "!!!"));
  EXPECT_NE(badb64.error.find("base64"), std::string::npos) << badb64.error;
}

TEST(TlsrptReader, Limits) {
  // A gzip bomb: 64 MiB of zeros, some 64 KiB compressed; refused after 16 MiB.
  const std::string bomb = gzip_of(std::string(64u << 20, '0'));
  const auto b = read_report(bomb);
  EXPECT_FALSE(b.report);
  EXPECT_NE(b.error.find("kMaxReportJsonBytes"), std::string::npos) << b.error;
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  const auto d = read_report_json("{\"policies\": " + deep + "}");
  EXPECT_NE(d.error.find("kMaxReportJsonDepth"), std::string::npos) << d.error;
  std::string nest;
  for (int i = 0; i < kMaxMimeDepth + 2; ++i) nest += "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\n\n--b" + std::to_string(i) + "\n";
  const auto m = read_report(nest);
  EXPECT_NE(m.error.find("kMaxMimeDepth"), std::string::npos) << m.error;
  const auto t = read_report(gzip_of("{\"policies\": []}").substr(0, 10));
  EXPECT_NE(t.error.find("truncated"), std::string::npos) << t.error;
}

TEST(TlsrptReader, BadShapesAreErrorsWithAPlace) {
  const auto e1 = read_report_json("{\"policies\": [{\"policy\": {\"policy-type\": \"sts\"}, \"summary\": "
                                   "{\"total-failure-session-count\": -1}}]}");
  EXPECT_EQ(e1.error, "policies[0].summary.total-failure-session-count: a negative count");
  const auto e2 = read_report_json("{\"organization-name\": 5, \"policies\": []}");
  EXPECT_EQ(e2.error, "report.organization-name: a number, not a string");
  EXPECT_NE(read_report_json("{\"policies\": [").error.find("not valid JSON"), std::string::npos);
  EXPECT_EQ(read_report_json("{}").error, "no `policies`: not an RFC 8460 report");
  const auto ok = read_report_json("{\"policies\": [{\"policy\": {\"policy-type\": \"tlsa\"}, \"extra\": 1}], \"x\": {}}");
  EXPECT_TRUE(ok.report) << ok.error;  // unknown fields are ignored
}

}  // namespace
}  // namespace tlsp::tlsrpt
