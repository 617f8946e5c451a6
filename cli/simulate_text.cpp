// simulate_text.cpp — the text report of `tlsp simulate` (simulate.h): one
// `PASS name (file:line)` / `FAIL ...` / `SKIP ...` line per entry, under each
// failure its explanation (model: expected and actual, the rule and every
// host; live: expected, model and live), last the counts; and the --timings
// table of the live worlds.
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "simulate.h"

namespace tlsp::cli {
namespace {

std::string describe_match(const Decision& d) {
  switch (d.match) {
    case MatchKind::exact: return "exact peer `" + d.selector + "`";
    case MatchKind::wildcard: return "wildcard peer `" + d.selector + "`";
    case MatchKind::cidr: return "CIDR peer `" + d.selector + "`";
    case MatchKind::default_peer: return d.domain_listed ? "the domain's default peer" : "default peer";
    case MatchKind::default_domain: return "the default domain";
  }
  return "?";
}

std::string version_list(TlsVersionSet set) {
  if (set == 0) return "handshake fails";
  std::string out;
  for (int v = static_cast<int>(TlsVersion::tls1_0); v <= static_cast<int>(TlsVersion::tls1_3); ++v)
    if (set & version_bit(static_cast<TlsVersion>(v))) out += (out.empty() ? "" : " ") + std::string(to_string(static_cast<TlsVersion>(v)));
  return out;
}

std::string tlsa_list(TlsaKindSet set) {
  std::string out;
  for (int k = 0; k < kTlsaKindCount; ++k)
    if (set & tlsa_bit(static_cast<TlsaKind>(k))) out += (out.empty() ? "" : " ") + std::string(to_string(static_cast<TlsaKind>(k)));
  return out;
}

std::string describe_outcome(const Outcome& o) {
  std::string s = std::string(to_string(o.kind)) + ", channel " + std::string(to_string(o.channel)) + ", applied " +
                  std::string(to_string(o.applied));
  if (o.tls != TlsVersion::none) s += ", tls " + std::string(to_string(o.tls));
  s += ", reason " + std::string(to_string(o.reason));
  if (o.last_resort) s += " (last resort)";
  return s;
}

}  // namespace

std::string rule_source(const DecisionTable& t, const SourceRef& ref) {
  return ref.builtin() ? "built-in default" : t.describe(ref);
}

std::string describe_facts(const PeerFacts& f, Direction d) {
  std::string s = f.starttls ? "starttls, tls " + version_list(f.peer_tls) : std::string("no starttls");
  if (d == Direction::inbound) return s;
  s += ", cert " + std::string(to_string(f.cert));
  s += ", mx " + std::string(to_string(f.mx_dnssec)) + ", addr " + std::string(to_string(f.addr_dnssec));
  s += ", tlsa " + std::string(to_string(f.tlsa_dnssec));
  if (f.tlsa) s += " {" + tlsa_list(f.tlsa) + "}";
  s += ", mta-sts ";
  if (f.sts.txt) {
    s += "txt, fetch " + std::string(to_string(f.sts.fetch));
    if (f.sts.fetch == StsFetch::ok) s += ", mode " + std::string(to_string(f.sts.mode));
  } else {
    s += "no txt";
  }
  if (f.sts.cached) s += ", cached " + std::string(to_string(*f.sts.cached));
  // Whether the host is listed means something only when a policy is in force.
  if (sts_policy_in_force(f.sts) != StsPolicySource::none)
    s += f.sts.mx_match ? ", host listed" : ", host not listed";
  return s;
}

std::string explain_failure(const DecisionTable& t, const sim::Scenario& s, const ScenarioEntry& e) {
  std::ostringstream out;
  size_t width = 8;
  for (const auto& c : e.checks) width = std::max(width, c.expected.size() + 2);
  auto row = [&](const std::string& mark, const std::string& field, const std::string& expected,
                 const std::string& actual) {
    out << "  " << mark << " " << field << std::string(10 - std::min<size_t>(field.size(), 9), ' ') << expected
        << std::string(width - std::min(width - 1, expected.size()), ' ') << actual << "\n";
  };
  row(" ", "field", "expected", "actual");
  for (const auto& c : e.checks) row(c.ok ? " " : "!", c.field, c.expected, c.actual);

  const sim::AppliedRule& rule = e.result.rule;
  out << "    rule      " << to_string(rule.rule.level) << ", min_tls " << to_string(rule.rule.min_tls) << "\n";
  for (size_t i = 0; i < rule.lookups.size(); ++i) {
    const sim::RuleLookup& l = rule.lookups[i];
    const Decision& d = l.decision;
    out << "              " << to_string(l.direction) << " " << l.managed_domain << " <-> " << l.peer << ": "
        << describe_match(d) << " (" << rule_source(t, d.origin) << "): level " << to_string(d.level) << " ("
        << rule_source(t, d.level_from) << "), min_tls " << to_string(d.min_tls) << " ("
        << rule_source(t, d.min_tls_from) << ")";
    if (rule.lookups.size() > 1) {
      std::vector<std::string> used;
      if (rule.level_from == i) used.push_back("level");
      if (rule.min_tls_from == i) used.push_back("min_tls");
      out << (used.empty() ? "" : used.size() == 2 ? "  <- level, min_tls" : "  <- " + used[0]);
      if (i == 1 && !sender_rule_counts(d.match))
        out << "  (no sender-domain rule matched: not used)";
    }
    out << "\n";
  }
  const char* label = s.direction == Direction::outbound ? "    hosts     " : "    client    ";
  for (size_t i = 0; i < e.result.attempts.size(); ++i) {
    const sim::HostAttempt& a = e.result.attempts[i];
    out << (i == 0 ? label : "              ") << a.name;
    if (s.direction == Direction::outbound) out << " (pref " << a.pref << ")";
    out << ": " << describe_outcome(a.outcome) << (i == e.result.chosen ? "  <- result" : "") << "\n"
        << "                facts: " << describe_facts(a.facts, s.direction) << "\n";
    for (const auto& n : a.notes) out << "                note: " << n << "\n";
  }
  for (const auto& n : e.result.notes) out << "    note      " << n << "\n";
  return out.str();
}

std::string explain_live(const ScenarioEntry& e) {
  std::ostringstream out;
  size_t w1 = 10, w2 = 10;
  for (const auto& c : e.live_checks) {
    w1 = std::max(w1, c.expected.size() + 2);
    w2 = std::max(w2, c.model.size() + 2);
  }
  auto pad = [](const std::string& t, size_t w) { return t + std::string(w > t.size() ? w - t.size() : 1, ' '); };
  out << "    " << pad("field", 10) << pad("expected", w1) << pad("model", w2) << "live\n";
  for (const auto& c : e.live_checks)
    out << "  " << (c.ok ? " " : "!") << " " << pad(c.field, 10) << pad(c.expected.empty() ? "-" : c.expected, w1)
        << pad(c.model.empty() ? "-" : c.model, w2) << c.live << "\n";
  for (const auto& n : e.live_result.notes) out << "    live      " << n << "\n";
  for (const auto& n : e.live_result.wire) out << "    wire      " << n << "\n";
  return out.str();
}

std::string live_timings_text(const std::vector<ScenarioEntry>& entries, double wall_seconds, unsigned jobs) {
  sim::LivePhases sum;
  size_t n = 0;
  for (const auto& e : entries)
    if (e.live) {
      sum += e.live_result.phases;
      n++;
    }
  std::ostringstream out;
  out << "live timings: " << n << " scenarios in " << std::fixed << std::setprecision(1) << wall_seconds << " s with "
      << jobs << " jobs: " << std::setprecision(1) << (wall_seconds > 0 ? n / wall_seconds : 0.0)
      << " scenarios/s; per world " << std::setprecision(0) << (n ? sum.total / 1000.0 / n : 0.0) << " ms\n";
  auto row = [&](const char* name, int64_t us) {
    out << "  " << std::left << std::setw(10) << name << std::right << std::setw(9) << std::setprecision(0) << us / 1000.0
        << " ms  " << std::setw(5) << std::setprecision(1) << (sum.total ? 100.0 * us / sum.total : 0.0) << " %\n";
  };
  row("certs", sum.certs);
  row("dns", sum.dns);
  row("world", sum.world);
  row("relay", sum.relay);
  row("submit", sum.submit);
  row("delivery", sum.delivery);
  row("teardown", sum.teardown);
  const int64_t other = sum.total - (sum.certs + sum.dns + sum.world + sum.relay + sum.submit + sum.delivery + sum.teardown);
  row("other", other);
  return out.str();
}

void print_text_report(const std::vector<ScenarioEntry>& entries, const ScenarioTally& tally, bool live) {
  for (const auto& e : entries) {
    const std::string at = e.file->source.display_path + ":" + std::to_string(e.line);
    switch (e.kind) {
      case ScenarioEntry::ran: std::cout << (e.ok ? "PASS " : "FAIL ") << e.name << " (" << at << ")\n" << e.details; break;
      case ScenarioEntry::skipped:
        std::cout << "SKIP " << e.name << " (" << at << "): not run live: " << e.scenario->live_skip << "\n";
        break;
      case ScenarioEntry::broken: std::cout << "FAIL " << e.name << " (" << at << "): the scenario has errors\n"; break;
      case ScenarioEntry::unparsable: std::cout << "FAIL " << e.name << ": the file has syntax errors\n"; break;
    }
  }
  if (live) std::cout << tally.skipped << " skipped (marked `live skip`)\n";
  std::cout << tally.passed << " passed, " << tally.failed << " failed\n";
}

}  // namespace tlsp::cli
