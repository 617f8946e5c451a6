// tlsp/sim/live.h — live simulation (`tlsp simulate --live`): each scenario's
// world built for real on the loopback, a real `tlsp relay` process run on
// it, and what happened on the wire read back into the scenario's outcome
// shape, to be compared with the expectation and the model (run_scenario).
//
// Contract:
//  * run_live() builds one scenario's world in a fresh directory under
//    LiveConfig::work_dir, on the address block 127.20.<slot>.0/24 that the
//    caller reserves for it (one block per concurrent world): certificates
//    of the scripted kinds (TestPki), a DnsResponder scripting the MX, A,
//    TLSA, `_mta-sts` TXT and `mta-sts.<domain>` answers, an HttpsServer
//    for the MTA-STS policy, a cached policy written into the relay's cache
//    first (MtaStsCache), one SmtpPeer per MX host (outbound) or a next hop
//    and a sending client (inbound); then it starts the relay (RelayProcess)
//    on a fresh spool, submits the scenario's message and waits, on log
//    lines only, for the first delivery run of the message to end (the
//    `queue` line of its queue id). Every world is torn down (processes
//    killed and reaped, threads joined, directory removed) before it
//    returns, also when it throws or is cancelled.
//  * The live outcome comes from what the relay logged (`attempt`, `reject`,
//    `accept`, `tls` lines) and is cross-checked against what the peers
//    received (plaintext or TLS, version, SNI); a disagreement between the
//    two is a `wire` problem, reported as a failed check.
//  * Inbound client addresses are not loopback addresses: the client sends
//    from 127.20.<slot>.200 and the world's decision table is the run's
//    table with every CIDR peer selector mapped so that the loopback address
//    falls in exactly the selectors that hold the scripted address, with the
//    same nesting (longest prefix still wins). map_client_table() checks
//    that the mapped lookup equals the original one.
//  * cancel_live_runs() is async-signal-safe: it marks every run cancelled
//    and SIGKILLs the relays running; runs then unwind and clean up.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tlsp/simulator.h"

namespace tlsp::sim {

// Limits and settings, with their defaults.
inline constexpr std::chrono::milliseconds kLiveScenarioTimeout{60000};  // one world, start to first delivery run
inline constexpr std::chrono::seconds kLiveDnsTimeout{1};                // relay --dns-timeout (scripted silence)
inline constexpr std::chrono::seconds kLiveStsFetchTimeout{1};           // relay --sts-fetch-timeout
inline constexpr std::chrono::seconds kLiveConnectTimeout{5};            // relay --connect-timeout
inline constexpr std::chrono::seconds kLiveCommandTimeout{10};           // relay --command-timeout
inline constexpr std::chrono::milliseconds kLiveStsDelay{3000};          // a scripted fetch timeout's delay
inline constexpr unsigned kLiveMaxSlots = 250;                           // address blocks 127.20.0-249.0/24
inline constexpr int64_t kLiveCachedMaxAge = 86400;                      // max_age of a scripted cached policy

struct LiveConfig {
  std::string tlsp_binary;  // the `tlsp` executable run as the relay
  std::string table_file;   // the compiled decision table (encode_table) the relay loads
  std::string work_dir = "/tmp";
  std::chrono::milliseconds timeout = kLiveScenarioTimeout;
  bool keep_logs = true;  // keep the relay's log lines in LiveResult::log
};

// Time spent per phase of one world, in microseconds (wall clock). From
// outside the relay the delivery run cannot be split further: its DNS
// lookups, TLS handshakes and SMTP dialogues interleave host by host.
struct LivePhases {
  int64_t certs = 0;     // certificate generation (TestPki: keys, signatures, PEM files)
  int64_t dns = 0;       // the DNS responder: start and the scripted records
  int64_t world = 0;     // peers, HTTPS server, MTA-STS cache, table, directories
  int64_t relay = 0;     // relay process start until it listens
  int64_t submit = 0;    // the client's SMTP session with the relay (its TLS included, inbound)
  int64_t delivery = 0;  // the relay's first delivery run: DNS, TLS and SMTP to the peers
  int64_t teardown = 0;  // relay killed and reaped, threads joined, directory removed
  int64_t total = 0;
  LivePhases& operator+=(const LivePhases& o);
};

// The live outcome, field by field as the relay and the peers showed it
// ("-" when nothing showed it).
struct LiveResult {
  bool ran = false;   // the world was built and the message went through the relay
  std::string error;  // why not, or why no outcome could be read
  std::string outcome = "-", channel = "-", applied = "-", tls = "-", reason = "-", via;
  std::vector<std::string> wire;      // what each peer received (for reports)
  std::vector<std::string> problems;  // log vs wire disagreements
  std::vector<std::string> log;       // the relay's log lines of this world
  std::vector<std::string> notes;  // how the world was built where it is not literal (mapped addresses, rebased TLSA)
  LivePhases phases;
};

// run_live: slot picks the address block (0 <= slot < kLiveMaxSlots); at
// most one world per slot at a time.
LiveResult run_live(const LiveConfig& config, const Scenario& scenario, unsigned slot);

// Marks every run cancelled and kills every running relay (SIGKILL).
// Async-signal-safe; meant for a SIGINT handler.
void cancel_live_runs();
bool live_runs_cancelled();

// A three-way comparison row: expected (as written; "" when the scenario
// does not check the field), model and live.
struct LiveCheck {
  std::string field;
  std::string expected, model, live;
  bool ok = true;
};
// Every field of the outcome: expected vs model where the expectation gives
// it, model vs live always; plus one `wire` row per live problem.
std::vector<LiveCheck> check_live(const Scenario& scenario, const ScenarioResult& model, const LiveResult& live);

// The table the relay gets for an inbound scenario (see the contract):
// CIDR selectors of every domain's inbound rules remapped around
// `loopback`. Throws std::runtime_error when the mapping cannot keep the
// lookup's answer (checked against the original table).
TableContent map_client_table(const TableContent& content, const std::string& client, const std::string& loopback,
                              const std::string& managed_domain);

}  // namespace tlsp::sim
