// cmd_relay.cpp — `tlsp relay`: run the SMTP relay (tlsp/relay.h). Every
// setting is a flag and may also be given in a config file
// (`--config FILE`, `name = value` lines, the flag names without `--`);
// flags win over the file. The settings are one table
// (relay_settings.h), which also gives --help, --print-config, the
// tlsp.conf(5) man page and the completion. README "Running the relay"
// has an example.
#include <iostream>
#include <optional>

#include "cli_common.h"
#include "commands.h"
#include "relay_settings.h"
#include "tlsp/diagnostic_text.h"
#include "tlsp/relay.h"
#include "tlsp/tls.h"

namespace tlsp::cli {

int cmd_relay(const Args& args) {
  po::options_description opts = relay_options();
  po::variables_map vm;
  if (!parse_options("relay", "[--config FILE] [options]",
                     "Runs the SMTP relay: accepts mail, spools it (fsync'd before 250), and delivers it under the\n"
                     "decision table's rules. SIGHUP reloads the table; SIGTERM shuts down cleanly.\n"
                     "Every setting is also a `name = value` line in --config FILE (tlsp.conf(5); installed: " +
                         std::string(kDefaultRelayConfigPath) + ").",
                     opts, nullptr, args, vm))
    return kExitOk;
  auto report = [](const std::vector<std::string>& errors) {
    for (const std::string& e : errors) std::cerr << "tlsp relay: error: " << e << "\n";
    if (errors.size() > 1) std::cerr << "tlsp relay: " << errors.size() << " errors in the configuration\n";
  };
  at_most_one_of(vm, {"check-config", "print-config", "print-config-all"});
  const bool print = vm.count("print-config") || vm.count("print-config-all");
  const std::string path = vm.count("config") ? vm["config"].as<std::string>() : "";
  // --print-config shows the settings as they were read; whether they make
  // a relay that can run is --check-config's question.
  RelayConfigRead read = read_relay_config(opts, vm, path, /*check_problems=*/!print);
  const RelayConfig& c = read.config;
  if (print) {
    std::vector<std::string> errors = read.errors;
    std::string text;
    if (errors.empty()) text = format_relay_config(c, read.given, vm.count("print-config-all") > 0, errors);
    if (!errors.empty()) {
      report(errors);
      return kExitUsage;
    }
    std::cout << text;
    return kExitOk;
  }
  std::vector<std::string> errors = read.errors;
  // --check-config also opens the table and the key pair, and says what is
  // wrong with them in the same run.
  if (vm.count("check-config")) {
    std::optional<DecisionTable> t;
    if (!c.table.empty()) {
      try {
        t.emplace(DecisionTable::open(c.table));
      } catch (const std::exception& e) {
        errors.push_back(read.origin("table") + ": " + e.what());  // after the settings' own mistakes
      }
    }
    if (!c.tls_cert.empty() && !c.tls_key.empty()) {
      try {
        make_server_context(c.tls_cert, c.tls_key);
      } catch (const std::exception& e) {
        errors.push_back(read.origin("tls-cert") + ": " + e.what());
      }
    }
    if (!errors.empty()) {
      report(errors);
      return kExitUsage;
    }
    std::cout << "relay configuration ok: table `" << c.table << "` (" << t->policy_name() << " "
              << t->policy_version() << ", " << t->domain_count() << " domains), " << c.listen.size()
              << " listen address(es), " << c.next_hops.size() << " next hop(s)\n";
    return kExitOk;
  }
  if (!errors.empty()) {
    report(errors);
    return kExitUsage;
  }
  block_relay_signals();
  std::unique_ptr<Relay> relay;
  try {
    relay = std::make_unique<Relay>(c);
  } catch (const std::exception& e) {
    std::cerr << "tlsp relay: error: " << e.what() << "\n";
    return kExitUsage;
  }
  return run_relay_with_signals(*relay) == 0 ? kExitOk : kExitErrors;
}

}  // namespace tlsp::cli
