// main.cpp — the `tlsp` command line: one binary, one subcommand per job.
//
// Exit codes, the same for every subcommand: 0 success, 1 the input has
// errors (policy diagnostics, a refused table), 2 bad usage or an input that
// cannot be read, 70 an internal error (our bug: internal_error.h).
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "tlsp/base/address.h"
#include "tlsp/base/atomic_file.h"
#include "tlsp/base/digest.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/compiler.h"
#include "tlsp/decision_table.h"
#include "tlsp/diagnostic_text.h"

namespace tlsp::cli {

// ----------------------------------------------------------------- check

int cmd_check(const std::vector<std::string>& args) {
  po::options_description opts("options");
  std::vector<std::string> inputs;
  opts.add_options()("policy", po::value(&inputs)->required(), "policy files (positional)");
  add_compile_options(opts);
  po::positional_options_description pos;
  pos.add("policy", -1);
  po::variables_map vm;
  if (!parse_options("check", "POLICY...", "Compiles the policy and reports problems; writes nothing.", opts, &pos,
                     args, vm, {{"policy", "policy file"}}))
    return kExitOk;
  return exit_code_of(run_compiler(vm, inputs));
}

// --------------------------------------------------------------- compile

int cmd_compile(const std::vector<std::string>& args) {
  po::options_description opts("options");
  std::vector<std::string> inputs;
  std::string output, format, dump_name;
  opts.add_options()("policy", po::value(&inputs)->required(), "policy files (positional)")(
      "output,o", po::value(&output)->value_name("FILE"), "the table file to write (`-`: standard output, JSON only)")(
      "format", po::value(&format)->default_value("binary")->value_name("binary|json"), "binary | json")(
      "dump", po::value(&dump_name)->value_name("ast|ir|table"),
      "ast | ir | table: stop after that stage and print the program as it is there (to standard output, or to -o "
      "FILE); writes no table");
  add_compile_options(opts);
  po::positional_options_description pos;
  pos.add("policy", -1);
  po::variables_map vm;
  if (!parse_options("compile", "POLICY... -o TABLE [--format binary|json] | POLICY... --dump ast|ir|table",
                     "Compiles the policy into a decision table (binary, or the same content as JSON).\n"
                     "--dump shows the compiler's work after one stage instead: the syntax tree (ast), the\n"
                     "lowered program of each file (ir), or the table as written and read back (table).",
                     opts, &pos, args, vm, {{"policy", "policy file"}}))
    return kExitOk;
  std::optional<DumpPoint> dump;
  if (vm.count("dump")) {
    dump = parse_dump_point(dump_name);
    if (!dump) throw UsageError("unknown --dump `" + dump_name + "` (ast, ir or table)");
    if (!vm["format"].defaulted()) throw UsageError("--dump and --format cannot be used together");
  } else {
    if (output.empty()) throw UsageError("no table file given: -o TABLE (or --dump ast|ir|table)");
    if (format != "binary" && format != "json") throw UsageError("unknown --format `" + format + "` (binary or json)");
    if (format == "binary" && output == "-")
      throw UsageError("a binary table cannot go to standard output; use -o FILE");
  }
  CompileResult r = run_compiler(vm, inputs, dump);
  if (dump ? !r.dump : !r.table) return exit_code_of(r);  // 1 errors, 2 unreadable input
  try {
    // What is written to a file is written as the table is: atomically
    // (tlsp/base/atomic_file.h), so a reader or a crash never sees half.
    const auto emit = [&](const std::string& text) {
      if (output.empty() || output == "-")
        std::cout << text;
      else
        base::write_file_atomically(output, text, 0644);
    };
    if (dump) {
      emit(*r.dump);
    } else if (format == "binary") {
      write_table_file(output, *r.table);
    } else {
      canonicalize(*r.table);
      emit(table_to_json(*r.table));
    }
  } catch (const std::exception& e) {
    std::cerr << "tlsp: error: " << e.what() << "\n";
    return kExitUsage;
  }
  return kExitOk;
}

// --------------------------------------------------------------- explain

static std::string json_source(const DecisionTable& t, const SourceRef& ref) {
  return ref.builtin() ? "default" : t.describe(ref);
}

int cmd_explain(const std::vector<std::string>& args) {
  po::options_description opts("options");
  std::string table_path, direction, domain, peer;
  std::vector<std::string> policies;
  opts.add_options()("table", po::value(&table_path)->value_name("TABLE"), "the decision table")(
      "policy", po::value(&policies)->multitoken()->value_name("POLICY"), "compile these policy files instead of reading a table")(
      "direction", po::value(&direction)->required()->value_name("outbound|inbound"), "outbound | inbound")(
      "domain", po::value(&domain)->required()->value_name("DOMAIN"), "the managed domain")(
      "peer", po::value(&peer)->required()->value_name("PEER"), "the peer: a domain name or an IP address")(
      "json", "one JSON object instead of text");
  add_compile_options(opts);
  po::variables_map vm;
  if (!parse_options("explain", "(--table TABLE | --policy POLICY...) --direction D --domain D --peer P [--json]",
                     "Says which rule applies between a managed domain and a peer, and why.", opts, nullptr, args,
                     vm))
    return kExitOk;
  auto dir = parse_direction(direction);
  if (!dir) throw UsageError("unknown --direction `" + direction + "` (outbound or inbound)");
  if (table_path.empty() == policies.empty()) throw UsageError("give exactly one of --table and --policy");
  // A name the table could never hold would silently get a default rule:
  // say what is wrong with it instead (tlsp/base/domain_name.h).
  const auto refuse_name = [](const char* option, const std::string& text, const NameCheck& c) {
    std::string what = std::string("--") + option + " `" + display_text(text) + "` is not a valid domain name: " + c.problem;
    if (!c.suggestion.empty()) what += "\nhelp: did you mean `" + c.suggestion + "`?";
    return UsageError(what);
  };
  if (NameCheck c = check_host_name(domain); !c.ok()) throw refuse_name("domain", domain, c);
  if (!base::parse_ip_address(peer))
    if (NameCheck c = check_host_name(peer); !c.ok()) throw refuse_name("peer", peer, c);

  int code = kExitOk;
  std::optional<DecisionTable> table = open_or_compile(table_path, policies, vm, code);
  if (!table) return code;

  Decision d = table->lookup(*dir, domain, peer);
  if (vm.count("json")) {
    nlohmann::ordered_json j;
    j["direction"] = direction;
    j["domain"] = domain;
    j["peer"] = peer;
    j["level"] = to_string(d.level);
    j["min_tls"] = to_string(d.min_tls);
    j["match"] = to_string(d.match);
    j["selector"] = d.selector.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(d.selector);
    j["domain_listed"] = d.domain_listed;
    j["source"] = json_source(*table, d.origin);
    j["level_source"] = json_source(*table, d.level_from);
    j["min_tls_source"] = json_source(*table, d.min_tls_from);
    j["policy"] = {{"name", table->policy_name()}, {"version", table->policy_version()}};
    std::cout << j.dump() << "\n";
    return kExitOk;
  }
  std::string why;
  switch (d.match) {
    case MatchKind::exact: why = "exact peer `" + d.selector + "`"; break;
    case MatchKind::wildcard: why = "wildcard peer `" + d.selector + "` (the longest that matches)"; break;
    case MatchKind::cidr: why = "CIDR peer `" + d.selector + "` (the longest prefix that matches)"; break;
    case MatchKind::default_peer: why = "no peer entry matches: the domain's default peer"; break;
    case MatchKind::default_domain: why = "the domain is not listed (or disabled): the default domain"; break;
  }
  if (!d.domain_listed && d.match != MatchKind::default_domain) why += ", in the default domain";
  std::cout << "policy    " << table->policy_name() << " " << table->policy_version() << "\n"
            << direction << " " << domain << " <-> " << peer << "\n"
            << "level     " << to_string(d.level) << "  (" << table->describe(d.level_from) << ")\n"
            << "min_tls   " << to_string(d.min_tls) << "  (" << table->describe(d.min_tls_from) << ")\n"
            << "match     " << to_string(d.match) << ": " << why << "\n"
            << "rule      " << table->describe(d.origin) << "\n";
  return kExitOk;
}

// --------------------------------------------------------------- inspect

using base::hex;

int cmd_inspect(const std::vector<std::string>& args) {
  po::options_description opts("options");
  std::string table_path;
  opts.add_options()("table", po::value(&table_path)->required(), "the decision table (positional)")(
      "json", "dump the whole content as JSON");
  po::positional_options_description pos;
  pos.add("table", 1);
  po::variables_map vm;
  if (!parse_options("inspect", "TABLE [--json]", "Validates a decision table and says what it holds.", opts, &pos,
                     args, vm, {{"table", "table file"}}))
    return kExitOk;
  try {
    DecisionTable t = DecisionTable::open(table_path);
    if (vm.count("json")) {
      std::cout << table_to_json(t.decode());
      return kExitOk;
    }
    std::cout << "table          " << table_path << " (valid, format " << t.format_version() << ")\n"
              << "policy         " << t.policy_name() << "\n"
              << "version        " << t.policy_version() << "\n"
              << "sources sha256 " << hex(t.sources_sha256()) << "\n"
              << "domains        " << t.domain_count() << "\n"
              << "peer entries   " << t.peer_count() << "\n"
              << "source files   " << t.source_count() << "\n";
  } catch (const TableReadError& e) {
    std::cerr << "tlsp: error: " << e.what() << "\n";
    return kExitUsage;  // not read at all, unlike a refused table below
  } catch (const TableError& e) {
    std::cerr << "tlsp: error: " << e.what() << "\n";
    return kExitErrors;
  }
  return kExitOk;
}

// Every subcommand, in the order `tlsp --help` lists them; tlsp(1) and the
// bash completion are made from this list too.
const std::vector<Command>& commands() {
  static const std::vector<Command> list = {
      {"check", "compile a policy and report problems; write nothing", cmd_check},
      {"compile", "compile a policy into a decision table", cmd_compile},
      {"explain", "say which rule applies between a managed domain and a peer, and why", cmd_explain},
      {"inspect", "validate a decision table and say what it holds", cmd_inspect},
      {"decide", "run the enforcement engine on facts given as JSON Lines", cmd_decide},
      {"diff", "show what changing from one policy to another does to delivery", cmd_diff},
      {"matrix", "the decision matrix: every domain x peer x direction against the behaviour catalogue", cmd_matrix},
      {"simulate", "replay scenario files against a policy and check the expected outcomes", cmd_simulate},
      {"relay", "run the SMTP relay that enforces a decision table", cmd_relay},
      {"queue", "list, show, flush, hold, release or delete the relay's queued mail", cmd_queue, queue_verbs},
      {"mta-sts-cache", "list or purge the relay's cached MTA-STS policies", cmd_mta_sts_cache, mta_sts_cache_verbs},
      {"tlsrpt", "TLS reports (RFC 8460): build the day's reports, send them, summarize received ones", cmd_tlsrpt, tlsrpt_verbs},
      {"completion", "print a shell completion script (bash)",
       [](const Args& args) { return cmd_completion(args, commands()); }},
      {"manpage", nullptr, [](const Args& args) { return cmd_manpage(args, commands()); }},
  };
  return list;
}

static std::string top_help() {
  size_t width = 0;
  for (const Command& c : commands())
    if (c.summary) width = std::max(width, std::string_view(c.name).size());
  std::string out = "usage: tlsp <command> [options]\n\ncommands:\n";
  for (const Command& c : commands())
    if (c.summary) out += "  " + std::string(c.name) + std::string(width + 2 - std::string_view(c.name).size(), ' ') + c.summary + "\n";
  return out +
         "\n"
         "`tlsp help <command>` (or `tlsp <command> --help`) describes each command;\n"
         "`tlsp --version` (-V) prints the version.\n"
         "exit codes: 0 success, 1 errors in the input, 2 bad usage or unreadable input,\n"
         "70 internal error (a bug in tlsp: please report it)\n";
}

}  // namespace tlsp::cli

int main(int argc, char** argv) {
  using namespace tlsp;
  using namespace tlsp::cli;
  std::ios::sync_with_stdio(false);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << top_help();
    return kExitUsage;
  }
  std::string cmd = args.front();
  args.erase(args.begin());
  try {
    if (cmd == "help" && !args.empty()) {
      // `tlsp help CMD` is `tlsp CMD --help`; more words are a usage error there.
      cmd = args.front();
      args.erase(args.begin());
      if (!args.empty()) throw UsageError("`tlsp help` takes one command name");
      args = {"--help"};
    } else if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::cout << top_help();
      return kExitOk;
    }
    if (cmd == "--version" || cmd == "-V") {
      std::cout << "tlsp " TLSP_VERSION "\n";  // the CMake project version (CMakeLists.txt)
      return kExitOk;
    }
    for (const Command& c : commands())
      if (cmd == c.name) return c.run(args);
    std::cerr << "tlsp: error: unknown command `" << cmd << "`\n" << top_help();
    return kExitUsage;
  } catch (const CommandUsageError& e) {
    std::cerr << e.what() << "\n";  // already names the command and its usage
    return kExitUsage;
  } catch (const UsageError& e) {
    std::cerr << "tlsp: error: " << e.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "tlsp: error: " << e.what() << "\n";
    return kExitUsage;
  }
}
