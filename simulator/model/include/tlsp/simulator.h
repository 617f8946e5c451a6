// tlsp/simulator.h — the scenario simulator: scripted DNS answers and peer
// behaviour, replayed against a decision table through the enforcement
// engine, and checked against the outcome the scenario expects
// (docs/scenarios.md is the language reference).
//
// Contract:
//  * parse_scenarios() never throws for any input text. Every problem is a
//    diagnostic (S01xx syntax, S02xx contents) with the offending text's
//    location; a scenario with an error is left out of `scenarios` and
//    listed in `broken`; a syntax error leaves the whole file out. Time and
//    memory are linear in the text, which is bounded (kMaxScenarioFileBytes,
//    kMaxScenarioDiagnostics below).
//  * A Scenario that parse_scenarios() returns is complete: every fact has
//    its value (omitted facts already defaulted as documented below) and
//    the expectation is present.
//  * run_scenario() never decides an outcome itself: it looks the rule up in
//    the table, turns the scripted world into PeerFacts and calls decide()
//    (tlsp/engine.h) once per MX host (once for an inbound client); the only
//    logic of its own is none: even the MX walk, choose_delivery(), is the
//    engine's.
//  * Deterministic: no clock, no randomness, no I/O. MX hosts of equal
//    preference are tried in the order written.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/base/domain_name.h"
#include "tlsp/compiler.h"
#include "tlsp/decision_table.h"
#include "tlsp/engine.h"

namespace tlsp::sim {

// ------------------------------------------------------------- scenarios

// One TLSA record: a symbolic kind (`dane-ee match;`) or a literal record
// (`record "3 1 1 <hex>";`), classified against the host's simulated
// certificate chain when the scenario runs.
struct TlsaRecordScript {
  SourceLocation where;
  std::optional<TlsaKind> kind;  // symbolic
  uint8_t usage = 0, selector = 0, mtype = 0;  // literal
  std::string data;                             // literal: the bytes the hex stands for
  std::string text;                             // literal: as written, for reports
};

struct TlsaScript {
  std::optional<DnsStatus> dnssec;  // omitted: the host address answer's status
  std::vector<TlsaRecordScript> records;
};

// An MX host (outbound) or the connecting client (inbound). The defaults
// are a well-run modern server: STARTTLS, TLS 1.2 and 1.3, a valid
// certificate, no TLSA records.
struct HostScript {
  std::string name;  // host name, or the client's address
  SourceLocation where;
  uint32_t pref = 10;
  std::optional<DnsStatus> addr_dnssec;  // omitted: the MX answer's status
  bool starttls = true;
  TlsVersionSet tls = version_bit(TlsVersion::tls1_2) | version_bit(TlsVersion::tls1_3);  // 0: handshake fails
  CertStatus cert = CertStatus::valid;
  std::optional<TlsaScript> tlsa;  // omitted: no records (secure denial or unsigned, as the address answer)
};

struct MtaStsScript {
  std::optional<std::string> txt;     // the `_mta-sts` TXT record; omitted: none
  std::optional<std::string> policy;  // the body served with status 200
  std::optional<StsFetch> fetch;      // or how the fetch fails
  std::optional<StsMode> cached;      // an unexpired cached policy
  // The cached policy's mx patterns; omitted: those of the served policy
  // when a valid one is given, else the cached policy lists every MX host.
  std::optional<std::vector<std::string>> cached_mx;
};

struct Expectation {
  SourceLocation where;
  OutcomeKind outcome = OutcomeKind::refuse;
  std::optional<Channel> channel;  // required for deliver/downgrade; refuse: none
  Level applied = Level::opportunistic;
  std::optional<TlsVersion> tls;
  std::optional<Reason> reason;
  std::optional<std::string> via;  // outbound: the MX host whose outcome is the result
};

struct Scenario {
  std::string name;
  SourceLocation where;  // the `scenario` keyword
  Direction direction = Direction::outbound;
  std::string from, to;  // envelope addresses as written
  // outbound
  std::string mx_domain;  // normalised; equals the recipient's domain
  DnsStatus mx_dnssec = DnsStatus::insecure;
  std::vector<HostScript> hosts;  // as written; empty: the domain is its own (implicit) MX
  MtaStsScript sts;
  // inbound
  HostScript client;
  Expectation expect;
  // `live skip "reason";`: not replayed by `tlsp simulate --live` (the
  // reason is reported); empty: replayed.
  std::string live_skip;
};

struct BrokenScenario {
  std::string name;
  SourceLocation where;
};

struct ScenarioFile {
  LoadedSource source;                   // diagnostics' SourceLocation::file is 0: this file
  std::vector<Scenario> scenarios;       // the scenarios without errors, in file order
  std::vector<BrokenScenario> broken;    // scenarios left out because of errors
  std::vector<Diagnostic> diagnostics;   // sorted by position
  bool syntax_error = false;             // nothing of the file could be used
  bool ok() const { return diagnostics.empty(); }
};

// Limits on one scenario file, against hostile or runaway input (each a
// diagnostic when hit, docs/scenarios.md "Limits"). The largest shipped
// file is 22 KB; a file of this size parses in well under a second.
inline constexpr size_t kMaxScenarioFileBytes = size_t{1} << 20;  // S0105 beyond: the file is not parsed
// Errors kept per file, as the policy compiler's 100: beyond, the parse
// stops, the rest are counted but not kept, and one last diagnostic (S0106)
// says so; more would only repeat the first ones.
inline constexpr size_t kMaxScenarioDiagnostics = 100;

ScenarioFile parse_scenarios(std::string display_path, std::string text);

// `file:line:col: error: ...` with the source line and a caret, for all of
// the file's diagnostics.
std::string render_diagnostics(const ScenarioFile& file);

// The same for each broken scenario alone, in the order of `file.broken`:
// the diagnostics from its `scenario` keyword up to the next scenario's.
// Each diagnostic is rendered once (a report that gave every broken
// scenario all of the file's grew as scenarios x diagnostics).
std::vector<std::string> render_broken_diagnostics(const ScenarioFile& file);

// The domain of an envelope address: tlsp::domain_of_address()
// (tlsp/base/domain_name.h), one rule for the simulator and the relay.
using tlsp::domain_of_address;

// ---------------------------------------------------------------- running

// One table lookup and what it answered.
struct RuleLookup {
  Direction direction = Direction::outbound;
  std::string managed_domain;
  std::string peer;
  Decision decision;
};

// The rule the engine was given. Outbound: one lookup (sender's domain,
// recipient's domain). Inbound: two (recipient's domain with the client
// address, and with the sender's domain), combined by inbound_rule().
struct AppliedRule {
  RuleInput rule;
  std::vector<RuleLookup> lookups;
  size_t level_from = 0;    // index into lookups
  size_t min_tls_from = 0;  // index into lookups
};

// SPEC §5, inbound: the two lookups (lookups[0] by the client's address,
// lookups[1] by the sender's domain) combined by the engine's
// combine_inbound_rules(), which says why a forged MAIL FROM can never
// loosen anything.
AppliedRule inbound_rule(const RuleLookup& by_address, const RuleLookup& by_sender);

struct HostAttempt {
  std::string name;
  uint32_t pref = 0;
  PeerFacts facts;
  Outcome outcome;
  std::vector<std::string> notes;  // how literal TLSA records were classified, ...
};

struct ScenarioResult {
  AppliedRule rule;
  std::vector<HostAttempt> attempts;  // outbound: MX order; inbound: the one client
  size_t chosen = 0;                  // index into attempts: whose outcome is the result
  Outcome outcome;
  std::string via;                    // outbound: attempts[chosen].name
  std::vector<std::string> notes;     // MTA-STS discovery, implicit MX, ...
};

// The MX walk is the engine's (choose_delivery, tlsp/engine.h): the model
// picks the outcome that stands with the same rule the relay walks by.
using tlsp::choose_delivery;

ScenarioResult run_scenario(const DecisionTable& table, const Scenario& scenario);

// A scenario's expectation against its result, field by field.
struct FieldCheck {
  std::string field;     // outcome, channel, applied, tls, reason, via
  std::string expected;  // as written in the scenario
  std::string actual;
  bool ok = true;
};
std::vector<FieldCheck> check_expectation(const Expectation& expect, const ScenarioResult& result);
bool passed(const std::vector<FieldCheck>& checks);

// ------------------------------------------------------ building blocks

// The simulated certificate chain of an MX host, for literal TLSA records:
// deterministic byte strings standing for DER data, so a scenario author
// can compute a matching digest with sha256sum (docs/scenarios.md).
std::string simulated_leaf_certificate(std::string_view host);  // "leaf-cert:<host>"
std::string simulated_leaf_public_key(std::string_view host);   // "leaf-spki:<host>"
std::string simulated_ca_certificate();                         // "ca-cert:tlsp-sim-ca"
std::string simulated_ca_public_key();                          // "ca-spki:tlsp-sim-ca"

// What a literal TLSA record is for the engine (RFC 7672 §3.1, RFC 6698):
// usage 0/1 -> pkix-ta/pkix-ee; usage 2/3 -> compared with the CA / leaf,
// selector 0 (certificate) or 1 (public key), matching type 0 (full),
// 1 (SHA-256) or 2 (SHA2-512): a match or a mismatch for its usage; an
// unknown selector or matching type -> bad-selector / bad-mtype; a digest
// of the wrong length, or empty data, -> bad-length; an unknown usage is
// unusable like malformed data -> bad-length. Which records are usable is
// runtime/net's rule (tlsp::classify_tlsa_record in tlsp/dane.h, with
// TlsaData::stand_in: full data is not parsed as DER); only the match is
// the model's.
TlsaKind classify_tlsa_record(std::string_view host, const TlsaRecordScript& record);

// The PeerFacts the engine sees for one MX host of an outbound scenario.
PeerFacts outbound_facts(const Scenario& scenario, const HostScript& host, std::vector<std::string>* notes);

}  // namespace tlsp::sim
