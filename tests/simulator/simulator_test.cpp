// simulator_test.cpp — the scenario simulator (tlsp/simulator.h): the
// scenario parser and each of its diagnostics, the defaults of omitted
// facts, literal TLSA records, MTA-STS discovery, the MX walk with its
// last-resort rule, the inbound stricter-of-two rule, and the real
// `tlsp simulate` on policies/scenarios/ (which must all pass) and on a
// deliberately wrong expectation (which must fail with a diff); and hostile
// scenario files, parsed in a child process under a time and memory limit.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "command.h"
#include "test_support.h"
#include "tlsp/compiler.h"
#include "tlsp/simulator.h"

namespace {

namespace fs = std::filesystem;
using namespace tlsp;
using namespace tlsp::sim;

// ------------------------------------------------------------- helpers

sim::ScenarioFile parse(const std::string& text) { return parse_scenarios("test.scenario", text); }

// A file with exactly one diagnostic, which must carry `code`; returns it rendered.
std::string one_error(const std::string& text, const std::string& code) {
  ScenarioFile f = parse(text);
  EXPECT_EQ(f.diagnostics.size(), 1u) << render_diagnostics(f);
  if (f.diagnostics.empty()) return "";
  EXPECT_EQ(f.diagnostics[0].code, code) << render_diagnostics(f);
  EXPECT_TRUE(f.scenarios.empty());
  return render_diagnostics(f);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A well-formed outbound scenario with `body` spliced in before `expect`.
std::string outbound(const std::string& body, const std::string& expect = "expect deliver channel encrypted applied opportunistic;") {
  return "scenario \"s\" {\n"
         "  direction outbound;\n"
         "  from \"alice@acme.example\"; to \"bob@partner.example\";\n" +
         body + "\n  " + expect + "\n}\n";
}

const std::string kOneHost = "  mx \"partner.example\" { host \"mx1.partner.example\" pref 10; }";

std::string write_temp(const std::string& name, const std::string& text) {
  fs::path p = fs::path(tlsp::testing_support::test_temp_dir()) / name;
  std::ofstream(p, std::ios::binary) << text;
  return p.string();
}

DecisionTable table_from(const std::string& policy) {
  CompileOptions o;
  o.inputs = {write_temp("simulator_test_policy.tlsp", policy)};
  o.threads = 1;
  CompileResult r = compile(o);
  EXPECT_TRUE(r.table.has_value()) << render_diagnostics(r);
  return DecisionTable::from_bytes(encode_table(*r.table));
}

const char* kPolicy = R"(
policy "sim-test" version "1";
default domain {
  outbound { default peer { level opportunistic; min_tls any; } }
  inbound  { default peer { level opportunistic; min_tls any; } }
}
domain "acme.example" {
  outbound {
    default peer { level opportunistic; min_tls any; }
    peer "mand.example" { level mandatory; min_tls tls1.2; }
    peer "dane.example" { level dane; min_tls tls1.2; }
  }
  inbound {
    default peer { level opportunistic; min_tls any; }
    peer "198.51.100.7"     { level opportunistic; min_tls tls1.3; }
    peer "partner.example"  { level mandatory; min_tls any; }
  }
}
domain "vault.example" {
  inbound {
    default peer { level mandatory; min_tls tls1.2; }
    peer "192.0.2.0/24"   { level opportunistic; min_tls any; }
    peer "loose.example"  { level opportunistic; min_tls any; }
  }
}
)";

struct RunResult {
  std::string out;
  int exit_code = -1;
};

RunResult run_tlsp(const std::string& args) {
  const auto r = tlsp::testing_support::run_tlsp(args);
  return {r.out, r.code};
}

std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

// --------------------------------------------------------------- parser

TEST(ScenarioParser, ReadsEveryPartOfAScenario) {
  ScenarioFile f = parse(R"(
# a comment
scenario "full" {
  direction outbound;
  from "alice@acme.example"; to "bob@Partner.Example.";
  mx "partner.example" dnssec secure {
    host "mx2.partner.example" pref 20 { no starttls; }
    host "MX1.partner.example" pref 10 addr-dnssec insecure {
      starttls; tls tls1.0 tls1.3; cert wrong-name;
      tlsa dnssec bogus { dane-ee match; pkix-ta; record "3 1 1 00ff"; }
    }
  }
  mta-sts { txt "v=STSv1; " "id=1"; policy "version: STSv1\nmode: none\nmax_age: 5"; cached testing mx "*.partner.example"; }
  expect downgrade channel plaintext applied opportunistic tls none reason sts-mode-none via "mx1.partner.example.";
}
scenario "in" {
  direction inbound; from "x@y.example"; to "bob@acme.example";
  client "2001:db8::1" { handshake fails; }
  expect refuse applied mandatory;
}
)");
  ASSERT_TRUE(f.ok()) << render_diagnostics(f);
  ASSERT_EQ(f.scenarios.size(), 2u);
  const Scenario& s = f.scenarios[0];
  EXPECT_EQ(s.name, "full");
  EXPECT_EQ(s.where.line, 3u);
  EXPECT_EQ(s.direction, Direction::outbound);
  EXPECT_EQ(s.mx_domain, "partner.example");
  EXPECT_EQ(s.mx_dnssec, DnsStatus::secure);
  ASSERT_EQ(s.hosts.size(), 2u);
  EXPECT_EQ(s.hosts[0].name, "mx2.partner.example");
  EXPECT_FALSE(s.hosts[0].starttls);
  const HostScript& h = s.hosts[1];
  EXPECT_EQ(h.name, "mx1.partner.example");
  EXPECT_EQ(h.pref, 10u);
  EXPECT_EQ(h.addr_dnssec, DnsStatus::insecure);
  EXPECT_EQ(h.tls, version_bit(TlsVersion::tls1_0) | version_bit(TlsVersion::tls1_3));
  EXPECT_EQ(h.cert, CertStatus::wrong_name);
  ASSERT_TRUE(h.tlsa.has_value());
  EXPECT_EQ(h.tlsa->dnssec, DnsStatus::bogus);
  ASSERT_EQ(h.tlsa->records.size(), 3u);
  EXPECT_EQ(h.tlsa->records[0].kind, TlsaKind::dane_ee_match);
  EXPECT_EQ(h.tlsa->records[1].kind, TlsaKind::pkix_ta);
  EXPECT_FALSE(h.tlsa->records[2].kind.has_value());
  EXPECT_EQ(h.tlsa->records[2].data, std::string("\x00\xff", 2));
  EXPECT_EQ(s.sts.txt, "v=STSv1; id=1");  // adjacent strings joined
  EXPECT_EQ(s.sts.policy, "version: STSv1\nmode: none\nmax_age: 5");  // escapes resolved
  EXPECT_EQ(s.sts.cached, StsMode::testing);
  EXPECT_EQ(s.sts.cached_mx, std::vector<std::string>{"*.partner.example"});
  EXPECT_EQ(s.expect.outcome, OutcomeKind::downgrade);
  EXPECT_EQ(s.expect.channel, Channel::plaintext);
  EXPECT_EQ(s.expect.applied, Level::opportunistic);
  EXPECT_EQ(s.expect.tls, TlsVersion::none);
  EXPECT_EQ(s.expect.reason, Reason::sts_mode_none);
  EXPECT_EQ(s.expect.via, "mx1.partner.example");

  const Scenario& in = f.scenarios[1];
  EXPECT_EQ(in.direction, Direction::inbound);
  EXPECT_EQ(in.client.name, "2001:db8::1");
  EXPECT_EQ(in.client.tls, 0);
  EXPECT_EQ(in.expect.channel, Channel::none);  // implied by refuse
}

TEST(ScenarioParser, OmittedFactsAreAWellRunServer) {
  ScenarioFile f = parse(outbound("  mx \"partner.example\" dnssec secure { host \"mx1.partner.example\"; }"));
  ASSERT_TRUE(f.ok()) << render_diagnostics(f);
  const HostScript& h = f.scenarios[0].hosts[0];
  EXPECT_TRUE(h.starttls);
  EXPECT_EQ(h.tls, version_bit(TlsVersion::tls1_2) | version_bit(TlsVersion::tls1_3));
  EXPECT_EQ(h.cert, CertStatus::valid);
  EXPECT_EQ(h.pref, 10u);
  // DNSSEC flows down: a secure MX answer, so a secure address and a
  // secure denial of TLSA records.
  PeerFacts facts = outbound_facts(f.scenarios[0], h, nullptr);
  EXPECT_EQ(facts.addr_dnssec, DnsStatus::secure);
  EXPECT_EQ(facts.tlsa_dnssec, DnsStatus::nxdomain);
  EXPECT_FALSE(facts.sts.txt);
  EXPECT_FALSE(facts.sts.cached.has_value());

  // Without `dnssec`, the zone is unsigned.
  ScenarioFile g = parse(outbound(kOneHost));
  ASSERT_TRUE(g.ok());
  PeerFacts unsigned_facts = outbound_facts(g.scenarios[0], g.scenarios[0].hosts[0], nullptr);
  EXPECT_EQ(unsigned_facts.mx_dnssec, DnsStatus::insecure);
  EXPECT_EQ(unsigned_facts.addr_dnssec, DnsStatus::insecure);
  EXPECT_EQ(unsigned_facts.tlsa_dnssec, DnsStatus::insecure);
}

// ---------------------------------------------------------- diagnostics

TEST(ScenarioDiagnostics, SyntaxErrorHasLocationLineAndCaret) {
  std::string out = one_error("scenario \"s\" {\n  mx \"x\" { hots \"a\"; }\n}\n", "S0100");
  EXPECT_EQ(out,
            "test.scenario:2:12: error: expected `host` or `}`, found `hots` [S0100]\n"
            "   2 |   mx \"x\" { hots \"a\"; }\n"
            "     |            ^~~~\n"
            "help: did you mean `host`?\n");
}

TEST(ScenarioDiagnostics, MissingSemicolonPointsAfterThePreviousWord) {
  std::string out = one_error("scenario \"s\" {\n  expect deliver channel encrypted\n}\n", "S0101");
  EXPECT_TRUE(contains(out, "test.scenario:2:35: error: expected `;` after `encrypted`")) << out;
}

TEST(ScenarioDiagnostics, UnterminatedString) {
  std::string out = one_error("scenario \"s {\n}\n", "S0102");
  EXPECT_TRUE(contains(out, "unterminated string")) << out;
}

TEST(ScenarioDiagnostics, NotUtf8) {
  std::string out = one_error("scenario \"s\xff\" {}\n", "S0103");
  EXPECT_TRUE(contains(out, "test.scenario:1:12: error: the file is not valid UTF-8")) << out;
}

TEST(ScenarioDiagnostics, UnknownEscape) { one_error("scenario \"a\\qb\" {}\n", "S0104"); }

TEST(ScenarioDiagnostics, SyntaxErrorsLeaveTheWholeFileOut) {
  ScenarioFile f = parse("scenario \"good\" { direction outbound; }\nscenario \"bad\" { ; }\n");
  EXPECT_TRUE(f.syntax_error);
  EXPECT_TRUE(f.scenarios.empty());
}

TEST(ScenarioDiagnostics, UnknownFactSuggestsTheSpelling) {
  std::string out = one_error(outbound("  mx \"partner.example\" { host \"mx1.partner.example\" { startls; } }"), "S0200");
  EXPECT_TRUE(contains(out, "unknown host fact `startls`")) << out;
  EXPECT_TRUE(contains(out, "help: did you mean `starttls`?")) << out;
}

TEST(ScenarioDiagnostics, UnknownValue) {
  std::string out = one_error(outbound("  mx \"partner.example\" dnssec secur;"), "S0201");
  EXPECT_TRUE(contains(out, "unknown DNSSEC status `secur`")) << out;
  EXPECT_TRUE(contains(out, "did you mean `secure`?")) << out;
}

TEST(ScenarioDiagnostics, GivenTwice) {
  std::string out = one_error(outbound("  mx \"partner.example\" { host \"mx1.partner.example\" { cert valid; cert expired; } }"), "S0202");
  EXPECT_TRUE(contains(out, "`cert` given twice")) << out;
  EXPECT_TRUE(contains(out, "note: first given here")) << out;
}

TEST(ScenarioDiagnostics, MissingExpectation) {
  std::string out = one_error("scenario \"s\" {\n  direction outbound; from \"a@acme.example\"; to \"b@p.example\";\n"
                              "  mx \"p.example\";\n}\n",
                              "S0203");
  EXPECT_TRUE(contains(out, "test.scenario:1:10: error: the scenario `s` has no `expect` [S0203]")) << out;
}

TEST(ScenarioDiagnostics, MissingDirectionAndChannel) {
  ScenarioFile f = parse("scenario \"s\" { from \"a@acme.example\"; to \"b@p.example\"; mx \"p.example\";"
                         " expect deliver applied mandatory; }");
  ASSERT_EQ(f.diagnostics.size(), 2u) << render_diagnostics(f);
  EXPECT_EQ(f.diagnostics[0].message, "the scenario `s` has no `direction`");
  EXPECT_TRUE(contains(f.diagnostics[1].message, "no `channel`"));
}

TEST(ScenarioDiagnostics, NotAllowedInThisDirection) {
  std::string out = one_error(outbound(kOneHost + "\n  client \"192.0.2.1\";"), "S0204");
  EXPECT_TRUE(contains(out, "`client` describes the sender of an inbound scenario")) << out;
}

TEST(ScenarioDiagnostics, UnknownDomain) {
  std::string out = one_error(outbound("  mx \"other.example\";"), "S0205");
  EXPECT_TRUE(contains(out, "unknown domain `other.example`: the recipient's domain is `partner.example`")) << out;
}

TEST(ScenarioDiagnostics, UnknownViaHost) {
  std::string out = one_error(outbound(kOneHost, "expect deliver channel encrypted applied opportunistic via \"mx9.partner.example\";"),
                              "S0205");
  EXPECT_TRUE(contains(out, "unknown MX host `mx9.partner.example`")) << out;
}

TEST(ScenarioDiagnostics, MissingMxBlock) {
  std::string out = one_error(outbound(""), "S0203");
  EXPECT_TRUE(contains(out, "no `mx` block for the recipient's domain `partner.example`")) << out;
}

TEST(ScenarioDiagnostics, InvalidAddress) {
  std::string out = one_error("scenario \"s\" { direction inbound; from \"a@p.example\"; to \"b@acme.example\";"
                              " client \"not-an-ip\"; expect refuse applied mandatory; }",
                              "S0206");
  EXPECT_TRUE(contains(out, "invalid client address `not-an-ip`")) << out;
}

TEST(ScenarioDiagnostics, InvalidTlsaRecord) {
  std::string out = one_error(outbound("  mx \"partner.example\" { host \"mx1.partner.example\" { tlsa { record \"3 1 x 00\"; } } }"),
                              "S0207");
  EXPECT_TRUE(contains(out, "invalid TLSA record `3 1 x 00`: `x` is not a number from 0 to 255")) << out;
}

TEST(ScenarioDiagnostics, MissingSemicolonInsideAFact) {
  ScenarioFile f = parse("scenario \"s\" {\n  direction outbound from \"a@acme.example\"; to \"b@p.example\";\n"
                         "  mx \"p.example\"; expect refuse applied mandatory;\n}\n");
  ASSERT_EQ(f.diagnostics.size(), 2u) << render_diagnostics(f);
  EXPECT_EQ(f.diagnostics[0].code, "S0203");  // and so `from` is missing
  EXPECT_EQ(f.diagnostics[1].code, "S0208");
  std::string out = render_diagnostics(f);
  EXPECT_TRUE(contains(out, "test.scenario:2:22: error: too many words after `direction`")) << out;
  EXPECT_TRUE(contains(out, "is a `;` missing before `from`?")) << out;
}

TEST(ScenarioDiagnostics, ConflictingFacts) {
  std::string out = one_error(outbound("  mx \"partner.example\" { host \"mx1.partner.example\" { tls tls1.2; handshake fails; } }"),
                              "S0209");
  EXPECT_TRUE(contains(out, "both say which TLS versions work")) << out;
  one_error(outbound(kOneHost, "expect refuse channel encrypted applied mandatory;"), "S0209");
}

TEST(ScenarioDiagnostics, DuplicateScenarioName) {
  const std::string s = outbound(kOneHost);
  ScenarioFile f = parse(s + s);
  ASSERT_EQ(f.diagnostics.size(), 1u) << render_diagnostics(f);
  EXPECT_EQ(f.diagnostics[0].code, "S0210");
  EXPECT_EQ(f.scenarios.size(), 1u);
  ASSERT_EQ(f.broken.size(), 1u);
  EXPECT_EQ(f.broken[0].where.line, 7u);
}

TEST(ScenarioDiagnostics, MtaStsFetchResultRequired) {
  std::string out = one_error(outbound(kOneHost + "\n  mta-sts { txt \"v=STSv1; id=1\"; }"), "S0211");
  EXPECT_TRUE(contains(out, "does not say what fetching it gives")) << out;
  // An invalid TXT record announces nothing, so nothing is fetched.
  EXPECT_TRUE(parse(outbound(kOneHost + "\n  mta-sts { txt \"v=STSv2; id=1\"; }")).ok());
}

TEST(ScenarioDiagnostics, OneBrokenScenarioDoesNotHideTheOthers) {
  ScenarioFile f = parse(outbound(kOneHost) + "scenario \"t\" { direction outbound; }\n");
  EXPECT_EQ(f.scenarios.size(), 1u);
  EXPECT_EQ(f.broken.size(), 1u);
  EXPECT_FALSE(f.syntax_error);
}

// ------------------------------------------------------- literal TLSA

TEST(TlsaLiteral, ClassifiedAgainstTheSimulatedChain) {
  auto record = [](uint8_t u, uint8_t s, uint8_t m, std::string data) {
    TlsaRecordScript r;
    r.usage = u;
    r.selector = s;
    r.mtype = m;
    r.data = std::move(data);
    return r;
  };
  const std::string host = "mx1.example";
  const std::string leaf_key = simulated_leaf_public_key(host);
  EXPECT_EQ(classify_tlsa_record(host, record(3, 1, 0, leaf_key)), TlsaKind::dane_ee_match);
  EXPECT_EQ(classify_tlsa_record(host, record(3, 0, 0, simulated_leaf_certificate(host))), TlsaKind::dane_ee_match);
  EXPECT_EQ(classify_tlsa_record("mx2.example", record(3, 1, 0, leaf_key)), TlsaKind::dane_ee_mismatch);
  EXPECT_EQ(classify_tlsa_record(host, record(2, 1, 0, simulated_ca_public_key())), TlsaKind::dane_ta_match);
  EXPECT_EQ(classify_tlsa_record(host, record(2, 1, 0, leaf_key)), TlsaKind::dane_ta_mismatch);
  EXPECT_EQ(classify_tlsa_record(host, record(3, 1, 1, std::string(32, 'x'))), TlsaKind::dane_ee_mismatch);
  EXPECT_EQ(classify_tlsa_record(host, record(3, 1, 1, std::string(31, 'x'))), TlsaKind::bad_length);
  EXPECT_EQ(classify_tlsa_record(host, record(3, 1, 2, std::string(32, 'x'))), TlsaKind::bad_length);
  EXPECT_EQ(classify_tlsa_record(host, record(3, 1, 0, "")), TlsaKind::bad_length);
  EXPECT_EQ(classify_tlsa_record(host, record(3, 2, 1, std::string(32, 'x'))), TlsaKind::bad_selector);
  EXPECT_EQ(classify_tlsa_record(host, record(3, 1, 3, std::string(32, 'x'))), TlsaKind::bad_mtype);
  EXPECT_EQ(classify_tlsa_record(host, record(1, 1, 1, std::string(32, 'x'))), TlsaKind::pkix_ee);
  EXPECT_EQ(classify_tlsa_record(host, record(0, 1, 1, std::string(32, 'x'))), TlsaKind::pkix_ta);
  EXPECT_EQ(classify_tlsa_record(host, record(4, 1, 1, std::string(32, 'x'))), TlsaKind::bad_length);
}

TEST(TlsaLiteral, DigestComputedAsTheDocsSayMatches) {
  // docs/scenarios.md: printf 'leaf-spki:<host>' | sha256sum
  const auto digest = tlsp::testing_support::run_shell("printf 'leaf-spki:mx1.partner.example' | sha256sum");
  ASSERT_EQ(digest.code, 0);
  ASSERT_GE(digest.out.size(), 64u);
  const std::string hex = digest.out.substr(0, 64);
  auto first_record = [](const std::string& data) {
    ScenarioFile f = parse(outbound("  mx \"partner.example\" dnssec secure { host \"mx1.partner.example\" {"
                                    " tlsa { record \"3 1 1 " + data + "\"; } } }"));
    EXPECT_TRUE(f.ok()) << render_diagnostics(f);
    return f.scenarios.at(0).hosts.at(0).tlsa->records.at(0);
  };
  EXPECT_EQ(classify_tlsa_record("mx1.partner.example", first_record(hex)), TlsaKind::dane_ee_match);
  EXPECT_EQ(classify_tlsa_record("mx2.partner.example", first_record(hex)), TlsaKind::dane_ee_mismatch);
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(classify_tlsa_record("mx1.partner.example", first_record(upper)), TlsaKind::dane_ee_match);
}

// ------------------------------------------------------ MTA-STS facts

TEST(MtaStsDiscovery, PolicyTxtAndCacheBecomeFacts) {
  auto facts = [](const std::string& sts, const std::string& host) {
    ScenarioFile f = parse(outbound("  mx \"partner.example\" { host \"" + host + "\"; }\n  mta-sts { " + sts + " }"));
    EXPECT_TRUE(f.ok()) << render_diagnostics(f);
    return outbound_facts(f.scenarios[0], f.scenarios[0].hosts[0], nullptr).sts;
  };
  const std::string policy = "policy \"version: STSv1\\nmode: enforce\\nmx: *.partner.example\\nmax_age: 86400\";";
  MtaStsFacts ok = facts("txt \"v=STSv1; id=1\"; " + policy, "mx1.partner.example");
  EXPECT_TRUE(ok.txt);
  EXPECT_EQ(ok.fetch, StsFetch::ok);
  EXPECT_EQ(ok.mode, StsMode::enforce);
  EXPECT_TRUE(ok.mx_match);
  EXPECT_FALSE(facts("txt \"v=STSv1; id=1\"; " + policy, "a.b.partner.example").mx_match);

  MtaStsFacts invalid = facts("txt \"v=STSv1; id=1\"; policy \"version: STSv1\\nmode: enforce\";", "mx1.partner.example");
  EXPECT_TRUE(invalid.txt);
  EXPECT_EQ(invalid.fetch, StsFetch::invalid);

  EXPECT_FALSE(facts("txt \"id=1; v=STSv1\"; " + policy, "mx1.partner.example").txt);

  // The cached policy's patterns decide when it is the policy in force.
  MtaStsFacts cached = facts("txt \"v=STSv1; id=1\"; fetch timeout; cached enforce mx \"mx9.partner.example\";",
                             "mx1.partner.example");
  EXPECT_EQ(cached.cached, StsMode::enforce);
  EXPECT_FALSE(cached.mx_match);
  // Without patterns, the served policy's, else every host.
  EXPECT_FALSE(facts("no txt; " + policy + " cached enforce;", "mx.other.example").mx_match);
  EXPECT_TRUE(facts("no txt; cached enforce;", "mx.other.example").mx_match);
}

// -------------------------------------------------------------- MX walk

Outcome outcome(OutcomeKind k, bool last_resort = false) {
  Outcome o;
  o.kind = k;
  o.last_resort = last_resort;
  return o;
}

TEST(MxWalk, FirstRealDeliveryWinsOverEarlierLastResorts) {
  using K = OutcomeKind;
  EXPECT_EQ(choose_delivery({outcome(K::deliver)}), 0u);
  EXPECT_EQ(choose_delivery({outcome(K::refuse), outcome(K::deliver)}), 1u);
  EXPECT_EQ(choose_delivery({outcome(K::refuse), outcome(K::downgrade), outcome(K::deliver)}), 1u);
  EXPECT_EQ(choose_delivery({outcome(K::deliver, true), outcome(K::refuse), outcome(K::deliver)}), 2u);
  EXPECT_EQ(choose_delivery({outcome(K::refuse), outcome(K::deliver, true), outcome(K::downgrade, true)}), 1u);
  EXPECT_EQ(choose_delivery({outcome(K::refuse), outcome(K::refuse)}), 0u) << "the first host's refusal";
}

TEST(MxWalk, HostsAreTriedInPreferenceOrder) {
  DecisionTable t = table_from(kPolicy);
  ScenarioFile f = parse(outbound("  mx \"partner.example\" {\n"
                                  "    host \"c.partner.example\" pref 30;\n"
                                  "    host \"a.partner.example\" pref 10 { handshake fails; }\n"
                                  "    host \"b2.partner.example\" pref 20 { tls tls1.0; }\n"
                                  "    host \"b1.partner.example\" pref 20 { no starttls; }\n"
                                  "  }"));
  ASSERT_TRUE(f.ok()) << render_diagnostics(f);
  ScenarioResult r = run_scenario(t, f.scenarios[0]);
  std::vector<std::string> order;
  for (const auto& a : r.attempts) order.push_back(a.name);
  // Equal preferences keep the written order.
  EXPECT_EQ(order, (std::vector<std::string>{"a.partner.example", "b2.partner.example", "b1.partner.example",
                                             "c.partner.example"}));
  // a's plaintext retry is a last resort; b2 delivers (TLS 1.0, minimum any).
  EXPECT_TRUE(r.attempts[0].outcome.last_resort);
  EXPECT_EQ(r.via, "b2.partner.example");
  EXPECT_EQ(r.outcome.tls, TlsVersion::tls1_0);
}

TEST(MxWalk, LastResortOnlyWhenNoOtherHostDelivers) {
  DecisionTable t = table_from(kPolicy);
  auto run = [&](const std::string& mx2) {
    ScenarioFile f = parse(outbound("  mx \"partner.example\" {\n"
                                    "    host \"mx1.partner.example\" pref 10 { handshake fails; }\n"
                                    "    host \"mx2.partner.example\" pref 20 { " + mx2 + " }\n  }"));
    EXPECT_TRUE(f.ok()) << render_diagnostics(f);
    return run_scenario(t, f.scenarios.at(0));
  };
  ScenarioResult encrypted = run("tls tls1.2;");
  EXPECT_EQ(encrypted.via, "mx2.partner.example");
  EXPECT_EQ(encrypted.outcome.channel, Channel::encrypted);
  ScenarioResult both_fail = run("handshake fails;");
  EXPECT_EQ(both_fail.via, "mx1.partner.example");
  EXPECT_EQ(both_fail.outcome.channel, Channel::plaintext);
  EXPECT_EQ(both_fail.outcome.reason, Reason::tls_handshake_failure);
  EXPECT_EQ(both_fail.attempts.size(), 2u) << "every host's outcome is kept";
}

// ----------------------------------------------------- inbound rules

RuleLookup lookup(const DecisionTable& t, const std::string& domain, const std::string& peer) {
  RuleLookup l;
  l.direction = Direction::inbound;
  l.managed_domain = domain;
  l.peer = peer;
  l.decision = t.lookup(Direction::inbound, domain, peer);
  return l;
}

TEST(InboundRule, StricterOfTwoTakesEachPartFromItsLookup) {
  DecisionTable t = table_from(kPolicy);
  // Address: opportunistic, tls1.3. Sender: mandatory, any.
  AppliedRule r = inbound_rule(lookup(t, "acme.example", "198.51.100.7"), lookup(t, "acme.example", "partner.example"));
  EXPECT_EQ(r.rule.level, Level::mandatory);
  EXPECT_EQ(r.rule.min_tls, MinTls::tls1_3);
  EXPECT_EQ(r.level_from, 1u);
  EXPECT_EQ(r.min_tls_from, 0u);
  ASSERT_EQ(r.lookups.size(), 2u);
  EXPECT_EQ(t.describe(r.lookups[r.level_from].decision.level_from), "simulator_test_policy.tlsp:16");
  EXPECT_EQ(t.describe(r.lookups[r.min_tls_from].decision.min_tls_from), "simulator_test_policy.tlsp:15");
}

TEST(InboundRule, AnUnmatchedSenderDomainAddsNothing) {
  DecisionTable t = table_from(kPolicy);
  // vault: default mandatory/tls1.2; 192.0.2.0/24 opportunistic/any.
  AppliedRule r = inbound_rule(lookup(t, "vault.example", "192.0.2.7"), lookup(t, "vault.example", "nobody.example"));
  EXPECT_EQ(r.rule.level, Level::opportunistic) << "the address exception loosens the default";
  EXPECT_EQ(r.rule.min_tls, MinTls::any);
  EXPECT_EQ(r.level_from, 0u);
}

TEST(InboundRule, ASenderDomainCannotLoosenTheAddressRule) {
  DecisionTable t = table_from(kPolicy);
  // Address unlisted: the default peer, mandatory/tls1.2; sender loose.example opportunistic/any.
  AppliedRule r = inbound_rule(lookup(t, "vault.example", "203.0.113.1"), lookup(t, "vault.example", "loose.example"));
  EXPECT_EQ(r.rule.level, Level::mandatory);
  EXPECT_EQ(r.rule.min_tls, MinTls::tls1_2);
}

// Issue 10: the relay and the model combined the two lookups differently:
// the model also counted a CIDR selector matched by the sender's "domain",
// which an address literal in MAIL FROM (`c@[198.51.100.7]`) does. CIDR
// selectors identify the connecting client (SPEC §2); the envelope is only
// the client's claim, and SPEC §5 combines a client IP rule with a
// sender-domain rule, so the literal selects nothing. (The relay's side:
// relay_test's InboundWorld.AnAddressLiteralSenderBorrowsNoAddressRule.)
TEST(InboundRule, AnAddressLiteralSenderBorrowsNoAddressRule) {
  DecisionTable t = table_from(kPolicy);
  RuleLookup by_sender = lookup(t, "acme.example", "[198.51.100.7]");
  ASSERT_EQ(by_sender.decision.match, MatchKind::cidr) << "the literal falls in the 198.51.100.7 selector";
  ASSERT_EQ(by_sender.decision.min_tls, MinTls::tls1_3);
  AppliedRule r = inbound_rule(lookup(t, "acme.example", "203.0.113.1"), by_sender);
  EXPECT_EQ(r.rule.level, Level::opportunistic);
  EXPECT_EQ(r.rule.min_tls, MinTls::any) << "the client's rule (the default peer) alone applies";
  EXPECT_EQ(r.min_tls_from, 0u);
}

TEST(InboundRule, RunScenarioUsesBothLookups) {
  DecisionTable t = table_from(kPolicy);
  ScenarioFile f = parse("scenario \"in\" { direction inbound; from \"c@partner.example\"; to \"b@acme.example\";"
                         " client \"198.51.100.7\" { no starttls; } expect refuse applied mandatory; }");
  ASSERT_TRUE(f.ok()) << render_diagnostics(f);
  ScenarioResult r = run_scenario(t, f.scenarios[0]);
  EXPECT_EQ(r.outcome.kind, OutcomeKind::refuse);
  EXPECT_EQ(r.outcome.reason, Reason::starttls_required);
  EXPECT_TRUE(passed(check_expectation(f.scenarios[0].expect, r)));
}

TEST(Expectation, ChecksOnlyWhatIsWritten) {
  DecisionTable t = table_from(kPolicy);
  ScenarioFile f = parse(outbound(kOneHost, "expect deliver channel encrypted applied mandatory reason ok;"));
  ASSERT_TRUE(f.ok());
  std::vector<FieldCheck> checks = check_expectation(f.scenarios[0].expect, run_scenario(t, f.scenarios[0]));
  ASSERT_EQ(checks.size(), 4u);  // outcome, channel, applied, reason: no tls, no via
  EXPECT_FALSE(passed(checks));
  EXPECT_EQ(checks[2].field, "applied");
  EXPECT_FALSE(checks[2].ok);
  EXPECT_EQ(checks[2].actual, "opportunistic");
}

// ------------------------------------------------------ hostile input
//
// Each file is about as large as a scenario file may be, so a parse that is
// quadratic or runs away (as these once did: 40,000 adjacent strings took
// 50 s) would blow through the limits below, while a linear one takes a few
// seconds. The parse runs in a child process with an alarm and, except
// under ASan (which reserves terabytes of address space), an address-space
// limit, so a regression fails the test instead of taking the machine down.

constexpr unsigned kHostileSeconds = 60;
[[maybe_unused]] constexpr rlim_t kHostileAddressSpace = rlim_t{3} << 30;  // not under ASan
constexpr long kHostilePeakKb = 1536 * 1024;

struct BoundedParse {
  bool finished = false;  // the child exited normally (no alarm, no bad_alloc)
  double seconds = 0;
  long peak_kb = 0;                // the child's peak resident set
  std::vector<std::string> codes;  // the diagnostics' codes, in order
};

BoundedParse parse_bounded(const std::string& text) {
  int fds[2];
  BoundedParse r;
  if (pipe(fds) != 0) return r;
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
#if !TLSP_TEST_UNDER_ASAN
    rlimit as{kHostileAddressSpace, kHostileAddressSpace};
    setrlimit(RLIMIT_AS, &as);
#endif
    alarm(kHostileSeconds);
    ScenarioFile f = parse_scenarios("hostile.scenario", text);
    std::string out;
    for (const auto& d : f.diagnostics) out += d.code + "\n";
    for (size_t done = 0; done < out.size();) {
      ssize_t n = write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0) _exit(3);
      done += static_cast<size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.peak_kb = usage.ru_maxrss;
  r.finished = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  std::istringstream ss(got);
  for (std::string code; std::getline(ss, code);) r.codes.push_back(code);
  return r;
}

// `unit` repeated between `head` and `tail` to just under the size limit.
std::string fill(const std::string& head, const std::string& unit, const std::string& tail,
                 size_t size = kMaxScenarioFileBytes) {
  std::string out = head;
  const size_t n = (size - head.size() - tail.size()) / unit.size();
  out.reserve(size);
  for (size_t i = 0; i < n; ++i) out += unit;
  return out + tail;
}

const std::string kHostileHead =
    "scenario \"s\" {\n  direction outbound;\n  from \"alice@acme.example\"; to \"bob@partner.example\";\n"
    "  mx \"partner.example\" {\n";
const std::string kHostileTail = "\n  }\n  expect deliver channel encrypted applied opportunistic;\n}\n";

void expect_bounded(const BoundedParse& r) {
  EXPECT_TRUE(r.finished) << "killed after " << r.seconds << " s (limit " << kHostileSeconds << " s) or out of memory";
  EXPECT_LT(r.peak_kb, kHostilePeakKb);
}

TEST(HostileScenario, AdjacentStringsJoinInLinearTime) {
  // 350,000 strings in one fact: one argument, an unknown certificate status.
  BoundedParse r =
      parse_bounded(fill(kHostileHead + "    host \"mx1.partner.example\" { cert ", "\"a\"", "; }" + kHostileTail));
  expect_bounded(r);
  EXPECT_EQ(r.codes, std::vector<std::string>{"S0201"});
}

TEST(HostileScenario, AdjacentStringsAsAnAttributeValue) {
  BoundedParse r =
      parse_bounded(fill(kHostileHead + "    host \"mx1.partner.example\" pref ", "\"a\"", "; }" + kHostileTail));
  expect_bounded(r);
  EXPECT_FALSE(r.codes.empty());
}

TEST(HostileScenario, RunOfQuotesInAHostBlock) {
  // An odd number of quotes: half a million empty strings, then an
  // unterminated one, which stops the parse.
  std::string text = fill(kHostileHead + "    host \"mx1.partner.example\" { starttls ", "\"", "; }" + kHostileTail);
  BoundedParse r = parse_bounded(text);
  expect_bounded(r);
  EXPECT_FALSE(r.codes.empty());
}

TEST(HostileScenario, RepeatedBlocksInsideMxStopAfterTheErrorLimit) {
  BoundedParse r = parse_bounded(fill(kHostileHead, "domain \"a.example\" {\n", kHostileTail));
  expect_bounded(r);
  ASSERT_EQ(r.codes.size(), kMaxScenarioDiagnostics + 1);
  EXPECT_EQ(r.codes.front(), "S0100");
  EXPECT_EQ(r.codes.back(), "S0106");
}

TEST(HostileScenario, ManyBadEscapesStopAfterTheErrorLimit) {
  BoundedParse r =
      parse_bounded(fill(kHostileHead + "    host \"mx1.partner.example\" { cert ", "\"\\q\" ", "; }" + kHostileTail));
  expect_bounded(r);
  ASSERT_EQ(r.codes.size(), kMaxScenarioDiagnostics + 1);
  EXPECT_EQ(r.codes.front(), "S0104");
  EXPECT_EQ(r.codes.back(), "S0106");
}

TEST(HostileScenario, AFileOverTheSizeLimitIsNotParsed) {
  // 2 MB of the repeated-block file above.
  BoundedParse r =
      parse_bounded(fill(kHostileHead, "domain \"a.example\" {\n", kHostileTail, 2 * kMaxScenarioFileBytes));
  expect_bounded(r);
  EXPECT_EQ(r.codes, std::vector<std::string>{"S0105"});
  ScenarioFile ok = parse(fill(outbound(kOneHost) + "#", "x", "\n"));  // a comment up to the limit is fine
  EXPECT_TRUE(ok.ok()) << render_diagnostics(ok);
}

TEST(HostileScenario, UnterminatedStringStopsTheParse) {
  std::string text = "scenario \"s\" {\n  from \"alice@acme.example;\n";
  for (int i = 0; i < 500; ++i) text += "  }}} ;; \"x\n";
  ScenarioFile f = parse(text);
  ASSERT_EQ(f.diagnostics.size(), 1u) << render_diagnostics(f);
  EXPECT_EQ(f.diagnostics[0].code, "S0102");
  EXPECT_EQ(f.diagnostics[0].where.line, 2u);
}

TEST(HostileScenario, LongWordsAreCutInMessages) {
  ScenarioFile f = parse(
      outbound("  mx \"partner.example\" { host \"mx1.partner.example\" { cert " + std::string(5000, 'x') + "; } }"));
  ASSERT_EQ(f.diagnostics.size(), 1u);
  EXPECT_LT(f.diagnostics[0].message.size(), 300u) << f.diagnostics[0].message;
  EXPECT_TRUE(contains(f.diagnostics[0].message, "xxx...`")) << f.diagnostics[0].message;
}

// Mangled versions of the shipped scenarios (bytes deleted, duplicated,
// replaced) must give diagnostics at real places, never a crash or a hang.
TEST(HostileScenario, MangledInputNeverCrashes) {
  std::ifstream in(TLSP_SOURCE_DIR "/policies/scenarios/mta-sts.scenario", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(text.empty());
  std::mt19937 rng(20261207);
  const std::string alphabet = std::string("{};\"\"\"\\ \n#/*abz09-.\x80\xff") + '\0';
  for (int i = 0; i < 300; ++i) {
    std::string t = text;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !t.empty(); ++e) {
      const size_t pos = rng() % t.size();
      switch (rng() % 3) {
        case 0:
          t.erase(pos, 1 + rng() % 8);
          break;
        case 1:
          t.insert(pos, t.substr(pos, 1 + rng() % 64));
          break;
        default:
          t[pos] = alphabet[rng() % alphabet.size()];
          break;
      }
    }
    ScenarioFile f = parse(t);
    (void)render_diagnostics(f);
    EXPECT_LE(f.diagnostics.size(), kMaxScenarioDiagnostics + 1);
    for (const auto& d : f.diagnostics) {
      EXPECT_FALSE(d.message.empty());
      EXPECT_GE(d.where.line, 1u);
    }
  }
}

TEST(HostileScenario, EachBrokenScenarioRendersOnlyItsOwnDiagnostics) {
  ScenarioFile two =
      parse("scenario \"a\" { direction up; } scenario \"b\" { direction down; }\n" + outbound(kOneHost));
  ASSERT_EQ(two.broken.size(), 2u);
  std::vector<std::string> text = render_broken_diagnostics(two);
  ASSERT_EQ(text.size(), 2u);
  EXPECT_TRUE(contains(text[0], "`up`") && !contains(text[0], "`down`")) << text[0];
  EXPECT_TRUE(contains(text[1], "`down`") && !contains(text[1], "`up`")) << text[1];

  // 48,000 broken scenarios: each diagnostic is rendered once, not once per
  // scenario (the JUnit report of this file was 1 GB, 23 s, 2 GB of memory).
  std::string many;
  for (int i = 0; many.size() + 40 < kMaxScenarioFileBytes; ++i) many += "scenario \"a" + std::to_string(i) + "\" {}\n";
  ScenarioFile f = parse(many);
  EXPECT_GT(f.broken.size(), 40000u);
  size_t total = 0;
  for (const auto& t : render_broken_diagnostics(f)) total += t.size();
  EXPECT_EQ(total, render_diagnostics(f).size());
}

// --------------------------------------------------- the real binary

TEST(SimulateCommand, ShippedScenariosAllPass) {
  RunResult r = run_tlsp("simulate --threads 1 --policy policies/scenarios/policy.tlsp policies/scenarios/");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  const std::string last = last_line(r.out);
  unsigned passed = 0, failed = 99;
  ASSERT_EQ(std::sscanf(last.c_str(), "%u passed, %u failed", &passed, &failed), 2) << last;
  EXPECT_EQ(last, std::to_string(passed) + " passed, 0 failed");
  EXPECT_GE(passed, 60u);
}

TEST(SimulateCommand, AWrongExpectationFailsWithADiff) {
  const std::string path = write_temp("wrong.scenario", R"(scenario "wrong on purpose" {
  direction outbound;
  from "alice@acme.example"; to "bob@mandatory-tls12.example";
  mx "mandatory-tls12.example" { host "mx1.mandatory-tls12.example" pref 10 { no starttls; } }
  expect deliver channel encrypted applied mandatory reason ok;
}
)");
  RunResult r = run_tlsp("simulate --threads 1 --policy policies/scenarios/policy.tlsp '" + path + "'");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "FAIL wrong on purpose (" + path + ":1)")) << r.out;
  EXPECT_TRUE(contains(r.out, "  ! outcome   deliver ")) << r.out;
  EXPECT_TRUE(contains(r.out, "  ! reason    ok ")) << r.out;
  EXPECT_TRUE(contains(r.out, "starttls-not-supported")) << r.out;
  EXPECT_TRUE(contains(r.out, "rule      mandatory, min_tls tls1.2")) << r.out;
  EXPECT_TRUE(contains(r.out, "mx1.mandatory-tls12.example (pref 10): refuse")) << r.out;
  EXPECT_TRUE(contains(r.out, "policy.tlsp:")) << r.out;
  EXPECT_EQ(last_line(r.out), "0 passed, 1 failed");
}

TEST(SimulateCommand, JsonAndJunit) {
  const std::string junit = (fs::path(tlsp::testing_support::test_temp_dir()) / "simulate-junit.xml").string();
  RunResult r = run_tlsp("simulate --threads 1 --json --junit '" + junit +
                         "' --policy policies/scenarios/policy.tlsp policies/scenarios/inbound.scenario 2>/dev/null");
  EXPECT_EQ(r.exit_code, 0);
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_GT(j["passed"].get<int>(), 10);
  EXPECT_EQ(j["scenarios"][0]["status"], "pass");
  EXPECT_EQ(j["scenarios"][0]["rule"]["lookups"].size(), 2u);
  std::ifstream in(junit);
  std::stringstream xml;
  xml << in.rdbuf();
  EXPECT_TRUE(contains(xml.str(), "<testsuites name=\"tlsp simulate\"")) << xml.str();
  EXPECT_TRUE(contains(xml.str(), "<testcase classname=\"policies/scenarios/inbound.scenario\"")) << xml.str();
}

TEST(SimulateCommand, ScenarioErrorsFailAndUnreadableInputIsUsage) {
  const std::string broken = write_temp("broken.scenario", "scenario \"b\" { direction sideways; }\n");
  RunResult r = run_tlsp("simulate --policy policies/scenarios/policy.tlsp '" + broken + "'");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, broken + ":1:26: error: unknown direction `sideways` [S0201]")) << r.out;
  EXPECT_EQ(last_line(r.out), "0 passed, 1 failed");

  // A huge file is a scenario error (read only up to the limit), not a usage error.
  const std::string huge = write_temp("huge.scenario", std::string(3 * kMaxScenarioFileBytes, '#'));
  r = run_tlsp("simulate --policy policies/scenarios/policy.tlsp '" + huge + "'");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, huge + ":1:1: error: the file is larger than 1 MiB")) << r.out;

  EXPECT_EQ(run_tlsp("simulate --policy policies/scenarios/policy.tlsp no/such/dir").exit_code, 2);
  EXPECT_EQ(run_tlsp("simulate policies/scenarios/").exit_code, 2) << "neither --policy nor --table";
}

}  // namespace
