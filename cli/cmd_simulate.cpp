// cmd_simulate.cpp — `tlsp simulate`: replays scenario files (docs/scenarios.md)
// against a decision table through the enforcement engine and checks each
// scenario's expected outcome.
//
// Output: one `PASS name (file:line)` / `FAIL name (file:line)` line per
// scenario, in file order; under each failure, its expected and actual
// fields side by side, the rule used (level, minimum, where each came from)
// and every MX host's outcome; last, exactly `N passed, M failed`. A
// scenario with errors (diagnostics on stderr) is a failure, and so is a
// file that does not parse (it counts once: its scenarios are unknown).
// --json prints one JSON document instead; --junit FILE also writes JUnit
// XML for CI. Exit: 0 all passed, 1 any failure or a policy with errors,
// 2 bad usage or an unreadable input.
//
// --live also replays every scenario through a real `tlsp relay` against
// scripted loopback peers (tlsp/sim/live.h), worlds in parallel (--jobs),
// and a scenario passes only when expected, model and live agree; a failure
// shows the three side by side. Scenarios marked `live skip "...";` are
// counted apart. A progress line goes to stderr; Ctrl-C tears every world
// down (exit 130). --timings adds the time per phase of the live worlds.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>
#include <fstream>
#include <nlohmann/json.hpp>
#include <iomanip>
#include <sstream>

#include "cli_common.h"
#include "commands.h"
#include "outcome_json.h"
#include "tlsp/sim/live.h"
#include "tlsp/simulator.h"

namespace tlsp::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

// One line of the report: a scenario that ran, one left out for errors, or
// a file that did not parse.
struct Entry {
  const sim::ScenarioFile* file = nullptr;
  const sim::Scenario* scenario = nullptr;  // ran
  std::string name;
  uint32_t line = 0;
  enum Kind { ran, broken, unparsable, skipped } kind = ran;
  sim::ScenarioResult result;
  std::vector<sim::FieldCheck> checks;
  bool live = false;  // replayed live: live_result and live_checks hold
  sim::LiveResult live_result;
  std::vector<sim::LiveCheck> live_checks;
  bool ok = false;
  std::string details;  // ran: the failure's explanation, as printed; broken: its diagnostics
};

std::vector<std::string> scenario_paths(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    std::error_code ec;
    fs::file_status st = fs::status(in, ec);
    if (ec || !fs::exists(st)) throw UsageError("cannot read `" + in + "`: no such file or directory");
    if (!fs::is_directory(st)) {
      out.push_back(in);
      continue;
    }
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(in, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      if (it->is_regular_file() && it->path().extension() == ".scenario") found.push_back(it->path().string());
    if (ec) throw UsageError("cannot read the directory `" + in + "`: " + ec.message());
    if (found.empty()) throw UsageError("no *.scenario files under `" + in + "`");
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

// At most one byte more than a scenario file may have: parse_scenarios()
// owns the size limit and reports it (S0105); reading the rest of a huge
// file would only cost memory.
std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read `" + path + "`");
  std::string text(sim::kMaxScenarioFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) throw UsageError("cannot read `" + path + "`");
  text.resize(static_cast<size_t>(in.gcount()));
  text.shrink_to_fit();
  return text;
}

std::string where(const DecisionTable& t, const SourceRef& ref) { return ref.builtin() ? "built-in default" : t.describe(ref); }

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

std::string describe_outcome(const Outcome& o) {
  std::string s = std::string(to_string(o.kind)) + ", channel " + std::string(to_string(o.channel)) + ", applied " +
                  std::string(to_string(o.applied));
  if (o.tls != TlsVersion::none) s += ", tls " + std::string(to_string(o.tls));
  s += ", reason " + std::string(to_string(o.reason));
  if (o.last_resort) s += " (last resort)";
  return s;
}

// The explanation under a FAIL line.
std::string explain_failure(const DecisionTable& t, const sim::Scenario& s, const Entry& e) {
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
        << describe_match(d) << " (" << where(t, d.origin) << "): level " << to_string(d.level) << " ("
        << where(t, d.level_from) << "), min_tls " << to_string(d.min_tls) << " (" << where(t, d.min_tls_from) << ")";
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

// ------------------------------------------------------------- machine output

ordered_json live_json(const Entry& e);  // live mode, below

ordered_json entry_json(const DecisionTable& t, const Entry& e) {
  ordered_json j;
  j["name"] = e.name;
  j["file"] = e.file->source.display_path;
  j["line"] = e.line;
  j["status"] = e.kind == Entry::ran ? (e.ok ? "pass" : "fail") : e.kind == Entry::skipped ? "skip" : "error";
  if (e.kind == Entry::skipped) j["skip_reason"] = e.scenario->live_skip;
  if (e.kind != Entry::ran) return j;
  j["checks"] = ordered_json::array();
  for (const auto& c : e.checks)
    j["checks"].push_back({{"field", c.field}, {"expected", c.expected}, {"actual", c.actual}, {"ok", c.ok}});
  ordered_json result = outcome_json(e.result.outcome);
  if (!e.result.via.empty()) result["via"] = e.result.via;
  j["result"] = result;
  const sim::AppliedRule& rule = e.result.rule;
  ordered_json r;
  r["level"] = to_string(rule.rule.level);
  r["min_tls"] = to_string(rule.rule.min_tls);
  r["lookups"] = ordered_json::array();
  for (size_t i = 0; i < rule.lookups.size(); ++i) {
    const auto& l = rule.lookups[i];
    r["lookups"].push_back({{"direction", to_string(l.direction)},
                            {"domain", l.managed_domain},
                            {"peer", l.peer},
                            {"match", to_string(l.decision.match)},
                            {"selector", l.decision.selector.empty() ? ordered_json(nullptr) : ordered_json(l.decision.selector)},
                            {"level", to_string(l.decision.level)},
                            {"min_tls", to_string(l.decision.min_tls)},
                            {"source", where(t, l.decision.origin)},
                            {"level_source", where(t, l.decision.level_from)},
                            {"min_tls_source", where(t, l.decision.min_tls_from)},
                            {"gives_level", rule.level_from == i},
                            {"gives_min_tls", rule.min_tls_from == i}});
  }
  j["rule"] = r;
  j["attempts"] = ordered_json::array();
  for (size_t i = 0; i < e.result.attempts.size(); ++i) {
    const auto& a = e.result.attempts[i];
    ordered_json h;
    h["name"] = a.name;
    if (e.scenario->direction == Direction::outbound) h["pref"] = a.pref;
    h["outcome"] = outcome_json(a.outcome);
    h["chosen"] = i == e.result.chosen;
    h["facts"] = describe_facts(a.facts, e.scenario->direction);
    h["notes"] = a.notes;
    j["attempts"].push_back(h);
  }
  j["notes"] = e.result.notes;
  if (e.live) {
    j["live"] = live_json(e);
    if (!e.ok) j["live"]["relay_log"] = e.live_result.log;  // only where it is worth reading
  }
  return j;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default:
        // XML 1.0 has no place for other control characters.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') out += '?';
        else out += c;
    }
  }
  return out;
}

void write_junit(const std::string& path, const std::vector<sim::ScenarioFile>& files, const std::vector<Entry>& entries,
                 size_t failed) {
  std::ostringstream x;
  x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<testsuites name=\"tlsp simulate\" tests=\"" << entries.size() << "\" failures=\"" << failed << "\">\n";
  for (const auto& f : files) {
    std::vector<const Entry*> mine;
    for (const auto& e : entries)
      if (e.file == &f) mine.push_back(&e);
    size_t fails = std::count_if(mine.begin(), mine.end(), [](const Entry* e) { return !e->ok && e->kind != Entry::skipped; });
    size_t skips = std::count_if(mine.begin(), mine.end(), [](const Entry* e) { return e->kind == Entry::skipped; });
    const std::string file = xml_escape(f.source.display_path);
    x << "  <testsuite name=\"" << file << "\" tests=\"" << mine.size() << "\" failures=\"" << fails << "\"";
    if (skips) x << " skipped=\"" << skips << "\"";
    x << ">\n";
    for (const Entry* e : mine) {
      x << "    <testcase classname=\"" << file << "\" name=\"" << xml_escape(e->name) << "\" file=\"" << file
        << "\" line=\"" << e->line << "\"";
      if (e->ok) {
        x << "/>\n";
        continue;
      }
      if (e->kind == Entry::skipped) {
        x << ">\n      <skipped message=\"" << xml_escape("not run live: " + e->scenario->live_skip) << "\"/>\n"
          << "    </testcase>\n";
        continue;
      }
      std::string message = e->kind == Entry::ran ? "the outcome differs from the expectation"
                                                  : "the scenario file has errors";
      if (e->live) message = "expected, model and live outcomes differ";
      std::string body = e->kind == Entry::unparsable ? sim::render_diagnostics(*e->file) : e->details;
      x << ">\n      <failure message=\"" << xml_escape(message) << "\">" << xml_escape(body) << "</failure>\n"
        << "    </testcase>\n";
    }
    x << "  </testsuite>\n";
  }
  x << "</testsuites>\n";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << x.str();
  out.close();
  if (!out) throw UsageError("cannot write `" + path + "`");
}


// ---------------------------------------------------------------- live mode

// The explanation under a live FAIL line: expected, model and live side by
// side, then what the live world showed.
std::string explain_live(const Entry& e) {
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

ordered_json live_json(const Entry& e) {
  const sim::LiveResult& l = e.live_result;
  ordered_json j;
  j["ran"] = l.ran;
  if (!l.error.empty()) j["error"] = l.error;
  j["outcome"] = l.outcome;
  j["channel"] = l.channel;
  j["applied"] = l.applied;
  j["tls"] = l.tls;
  j["reason"] = l.reason;
  if (!l.via.empty()) j["via"] = l.via;
  j["checks"] = ordered_json::array();
  for (const auto& c : e.live_checks)
    j["checks"].push_back({{"field", c.field}, {"expected", c.expected}, {"model", c.model}, {"live", c.live}, {"ok", c.ok}});
  j["wire"] = l.wire;
  j["notes"] = l.notes;
  j["phases_us"] = {{"certs", l.phases.certs}, {"dns", l.phases.dns}, {"world", l.phases.world},
                    {"relay", l.phases.relay}, {"submit", l.phases.submit}, {"delivery", l.phases.delivery},
                    {"teardown", l.phases.teardown}, {"total", l.phases.total}};
  return j;
}

// Ctrl-C during a live run: every world is torn down, then exit 130.
void on_live_interrupt(int) { sim::cancel_live_runs(); }

struct LiveRunOptions {
  sim::LiveConfig config;
  unsigned jobs = 0;
};

// Runs every `ran` entry live, `jobs` worlds at a time (one address block
// each), with a progress line on stderr: refreshed in place on a terminal,
// else one line per tenth done and at least every kProgressQuietInterval.
void run_live_entries(std::vector<Entry*>& todo, const LiveRunOptions& o) {
  constexpr auto kProgressTtyInterval = std::chrono::milliseconds(250);
  constexpr auto kProgressQuietInterval = std::chrono::seconds(15);
  const unsigned jobs = std::min<unsigned>(std::max<size_t>(1, todo.size()), std::min(o.jobs, sim::kLiveMaxSlots));
  std::atomic<size_t> next{0}, done{0}, failures{0};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::thread> workers;
  for (unsigned slot = 0; slot < jobs; ++slot)
    workers.emplace_back([&, slot] {
      for (size_t i; (i = next++) < todo.size();) {
        if (sim::live_runs_cancelled()) break;
        Entry& e = *todo[i];
        e.live = true;
        e.live_result = sim::run_live(o.config, *e.scenario, slot);
        e.live_checks = sim::check_live(*e.scenario, e.result, e.live_result);
        bool ok = e.ok;
        for (const auto& c : e.live_checks) ok = ok && c.ok;
        e.ok = ok;
        if (!ok) failures++;
        done++;
        std::lock_guard lock(mu);
        cv.notify_all();
      }
    });
  const bool tty = isatty(STDERR_FILENO);
  auto last = std::chrono::steady_clock::now();
  size_t last_tenth = 0;  // not a terminal: a line at each tenth done, or every kProgressQuietInterval
  std::string shown;
  auto progress = [&](bool final) {
    std::string line = "live: " + std::to_string(done.load()) + "/" + std::to_string(todo.size()) + " done, " +
                       std::to_string(failures.load()) + " failed";
    if (!tty && line == shown) return;
    shown = line;
    if (tty) std::cerr << "\r" << line << (final ? "\n" : "") << std::flush;
    else std::cerr << line << "\n";
  };
  {
    std::unique_lock lock(mu);
    while (done.load() < todo.size() && !sim::live_runs_cancelled()) {
      cv.wait_for(lock, tty ? kProgressTtyInterval : kProgressQuietInterval);
      auto now = std::chrono::steady_clock::now();
      const size_t tenth = done.load() * 10 / todo.size();
      if (tty || now - last >= kProgressQuietInterval || tenth != last_tenth) {
        last_tenth = tenth;
        progress(false);
        last = now;
      }
    }
  }
  for (auto& t : workers) t.join();
  progress(true);
}

std::string timings_text(const std::vector<Entry>& entries, double wall_seconds, unsigned jobs) {
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

}  // namespace

// --live: every scenario that ran in the model is replayed on the wire; its
// entry then passes only when expected, model and live agree.
static int run_live_mode(const po::variables_map& vm, const DecisionTable& table, const std::string& table_path,
                  std::vector<Entry>& entries) {
  LiveRunOptions o;
  o.jobs = vm["jobs"].as<unsigned>();
  if (o.jobs == 0) o.jobs = std::max(1u, std::thread::hardware_concurrency());
  o.config.work_dir = vm["work-dir"].as<std::string>();
  if (vm.count("relay-binary")) {
    o.config.tlsp_binary = vm["relay-binary"].as<std::string>();
  } else {
    std::error_code ec;
    o.config.tlsp_binary = fs::read_symlink("/proc/self/exe", ec).string();
    if (ec) throw UsageError("cannot find this program's path for the relay: give --relay-binary");
  }
  if (access(o.config.tlsp_binary.c_str(), X_OK) != 0)
    throw UsageError("cannot run `" + o.config.tlsp_binary + "` as the relay");
  // The relay loads a table file: the one given, or the compiled policy
  // written into a run directory removed at the end.
  std::string run_dir;
  if (!table_path.empty()) {
    o.config.table_file = fs::absolute(table_path).string();
  } else {
    std::string tmpl = (fs::path(o.config.work_dir) / "tlsp-live-run-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw UsageError("cannot make a directory under `" + o.config.work_dir + "`");
    run_dir = tmpl;
    o.config.table_file = run_dir + "/policy.tlspdt";
    write_table_file(o.config.table_file, table.decode());
  }
  std::vector<Entry*> todo;
  for (auto& e : entries)
    if (e.kind == Entry::ran) todo.push_back(&e);

  struct sigaction sa {}, old_int {}, old_term {};
  sa.sa_handler = on_live_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  const auto start = std::chrono::steady_clock::now();
  run_live_entries(todo, o);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (!run_dir.empty()) {
    std::error_code ec;
    fs::remove_all(run_dir, ec);
  }
  if (sim::live_runs_cancelled()) {
    std::cerr << "tlsp: interrupted; every live world was torn down\n";
    return 130;
  }
  for (Entry* e : todo)
    if (!e->ok) e->details = explain_live(*e);
  if (vm.count("timings"))
    std::cerr << timings_text(entries, wall, std::min<unsigned>(o.jobs, std::max<size_t>(1, todo.size())));
  return kExitOk;
}

int cmd_simulate(const Args& args) {
  // `simulate --matrix` is the decision matrix over the behaviour catalogue.
  if (std::find(args.begin(), args.end(), "--matrix") != args.end()) return cmd_matrix(args);
  po::options_description opts("options");
  std::vector<std::string> policies, inputs;
  std::string table_path, junit;
  opts.add_options()("policy", po::value(&policies)->composing(),
                     "a policy file to compile (repeat for several roots)")(
      "table", po::value(&table_path), "a compiled decision table, instead of --policy")(
      "scenarios", po::value(&inputs)->required(), "scenario files or directories (positional)")(
      "junit", po::value(&junit), "also write the results as JUnit XML to this file")(
      "json", "print one JSON document instead of text")(
      "live", "also replay every scenario through a real `tlsp relay` against scripted loopback peers")(
      "jobs,j", po::value<unsigned>()->default_value(0), "--live: worlds run at once (0: one per core)")(
      "relay-binary", po::value<std::string>(), "--live: the tlsp executable to run as the relay (default: this one)")(
      "work-dir", po::value<std::string>()->default_value("/tmp"), "--live: where the worlds' temporary directories go")(
      "timings", "--live: print the time spent per phase of the worlds to stderr");
  add_compile_options(opts);
  po::positional_options_description pos;
  pos.add("scenarios", -1);
  po::variables_map vm;
  if (!parse_options(
          "simulate",
          "(--policy POLICY [--policy ...] | --table TABLE) SCENARIO_FILE_OR_DIR... [--json] [--junit FILE] [--live "
          "[--jobs N] [--timings]]",
          "Replays the scenarios against the policy through the enforcement engine and checks each expected "
          "outcome. Directories are searched recursively for *.scenario files (docs/scenarios.md).\n"
          "With --live: each scenario also runs on the wire, through a real `tlsp relay` against scripted peers on "
          "127.20.0.0/16, and passes only when expected, model and live outcomes agree.\n"
          "With --matrix (and no scenarios): the decision matrix, as `tlsp matrix` (see its --help).",
          opts, &pos, args, vm, {{"scenarios", "scenario file or directory"}}))
    return kExitOk;
  if (table_path.empty() == policies.empty()) throw UsageError("give exactly one of --table and --policy");
  const bool json = vm.count("json") > 0;
  const bool live = vm.count("live") > 0;

  // Inputs first: an unreadable scenario is a usage problem, found before
  // any compile work.
  std::vector<std::string> paths = scenario_paths(inputs);
  std::vector<std::string> texts;
  for (const auto& p : paths) texts.push_back(read_file(p));

  int code = kExitOk;
  std::optional<DecisionTable> table = open_or_compile(table_path, policies, vm, code);
  if (!table) return code;

  std::vector<sim::ScenarioFile> files;
  files.reserve(paths.size());  // entries point into it
  for (size_t i = 0; i < paths.size(); ++i) {
    files.push_back(sim::parse_scenarios(paths[i], std::move(texts[i])));
    std::cerr << sim::render_diagnostics(files.back());
  }

  std::vector<Entry> entries;
  for (const auto& f : files) {
    if (f.syntax_error) {
      Entry e;
      e.file = &f;
      e.kind = Entry::unparsable;
      e.name = f.source.display_path;
      e.line = f.diagnostics.empty() ? 1 : f.diagnostics.front().where.line;
      entries.push_back(std::move(e));
      continue;
    }
    std::vector<Entry> mine;
    for (const auto& s : f.scenarios) {
      Entry e;
      e.file = &f;
      e.scenario = &s;
      e.name = s.name;
      e.line = s.where.line;
      if (live && !s.live_skip.empty()) {
        e.kind = Entry::skipped;
        mine.push_back(std::move(e));
        continue;
      }
      e.result = sim::run_scenario(*table, s);
      e.checks = sim::check_expectation(s.expect, e.result);
      e.ok = sim::passed(e.checks);
      if (!e.ok) e.details = explain_failure(*table, s, e);
      mine.push_back(std::move(e));
    }
    std::vector<std::string> broken_text = sim::render_broken_diagnostics(f);
    for (size_t i = 0; i < f.broken.size(); ++i) {
      Entry e;
      e.file = &f;
      e.kind = Entry::broken;
      e.name = f.broken[i].name;
      e.line = f.broken[i].where.line;
      e.details = std::move(broken_text[i]);  // for --junit; the text output has them on stderr
      mine.push_back(std::move(e));
    }
    std::stable_sort(mine.begin(), mine.end(), [](const Entry& a, const Entry& b) { return a.line < b.line; });
    for (auto& e : mine) entries.push_back(std::move(e));
  }
  if (live) {
    int rc = run_live_mode(vm, *table, table_path, entries);
    if (rc != kExitOk) return rc;
  }
  const size_t passed = std::count_if(entries.begin(), entries.end(), [](const Entry& e) { return e.ok; });
  const size_t skipped = std::count_if(entries.begin(), entries.end(), [](const Entry& e) { return e.kind == Entry::skipped; });
  const size_t failed = entries.size() - passed - skipped;

  if (json) {
    ordered_json doc;
    doc["policy"] = {{"name", table->policy_name()}, {"version", table->policy_version()}};
    doc["scenarios"] = ordered_json::array();
    for (const auto& e : entries) doc["scenarios"].push_back(entry_json(*table, e));
    doc["diagnostics"] = ordered_json::array();
    for (const auto& f : files)
      for (const auto& d : f.diagnostics)
        doc["diagnostics"].push_back({{"file", f.source.display_path},
                                      {"line", d.where.line},
                                      {"column", d.where.column},
                                      {"code", d.code},
                                      {"message", d.message}});
    doc["passed"] = passed;
    doc["failed"] = failed;
    if (live) doc["skipped"] = skipped;
    std::cout << doc.dump(2) << "\n";
  } else {
    for (const auto& e : entries) {
      const std::string at = e.file->source.display_path + ":" + std::to_string(e.line);
      switch (e.kind) {
        case Entry::ran: std::cout << (e.ok ? "PASS " : "FAIL ") << e.name << " (" << at << ")\n" << e.details; break;
        case Entry::skipped:
          std::cout << "SKIP " << e.name << " (" << at << "): not run live: " << e.scenario->live_skip << "\n";
          break;
        case Entry::broken: std::cout << "FAIL " << e.name << " (" << at << "): the scenario has errors\n"; break;
        case Entry::unparsable: std::cout << "FAIL " << e.name << ": the file has syntax errors\n"; break;
      }
    }
    if (live) std::cout << skipped << " skipped (marked `live skip`)\n";
    std::cout << passed << " passed, " << failed << " failed\n";
  }
  if (!junit.empty()) write_junit(junit, files, entries, failed);
  return failed == 0 ? kExitOk : kExitErrors;
}

}  // namespace tlsp::cli
