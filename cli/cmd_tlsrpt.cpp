// cmd_tlsrpt.cpp — `tlsp tlsrpt ...`: the RFC 8460 reports. `report`
// builds a day's reports from the relay's TLSRPT store (tlsp/tlsrpt_store.h)
// with tlsp/tlsrpt_report.h's writer; `summarize` reads reports that
// arrived for the managed domains (JSON, .gz or the whole mail) and adds
// them up. (`send`, the daily delivery by hand, joins the verbs here.)
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <algorithm>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "cli_common.h"
#include "commands.h"
#include "relay_settings.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/base/quote.h"
#include "tlsp/relay.h"
#include "tlsp/tlsrpt_report.h"
#include "tlsp/tlsrpt_store.h"

namespace tlsp::cli {

namespace {

using base::display_text;

std::string json_text(const nlohmann::ordered_json& j) {
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// The organisation: the relay's settings (--config FILE), else the
// defaults tlsrpt_identity() gives a configuration with nothing set.
RelayConfig relay_config_at(const std::string& config_path) {
  RelayConfig c;
  if (!config_path.empty()) {
    std::vector<std::string> errors;
    std::optional<RelayConfig> loaded = load_relay_config(config_path, errors);
    if (!loaded) {
      std::string all;
      for (const std::string& e : errors) all += (all.empty() ? "" : "\n") + e;
      throw UsageError(all);
    }
    c = *loaded;
  }
  return c;
}

tlsrpt::Organization organization_of(const RelayConfig& c) {
  const TlsrptIdentity id = tlsrpt_identity(c);
  return {id.organization, id.contact, id.submitter};
}

int tlsrpt_report(const Args& args) {
  po::options_description opts("options");
  std::string day, domain, store_spec, config;
  opts.add_options()("day", po::value(&day)->required()->value_name("YYYY-MM-DD"), "the UTC day")(
      "domain", po::value(&domain)->value_name("DOMAIN"), "only this policy domain's report")(
      "json", "the RFC 8460 JSON (one report with --domain, else an array of them)")(
      "store", po::value(&store_spec)->value_name("SPEC"),
      "the TLSRPT store: redis://HOST:PORT/DB or the SQLite file (default: the relay's tlsrpt-store)")(
      "config", po::value(&config)->value_name("FILE"),
      "the relay's configuration: its tlsrpt-store and the organisation (tlsrpt-organization, tlsrpt-contact, "
      "tlsrpt-submitter)");
  po::variables_map vm;
  if (!parse_options("tlsrpt report", "--day YYYY-MM-DD [--domain D] [--json] [--store SPEC | --config FILE]",
                     "Builds the RFC 8460 reports of one UTC day from the relay's TLSRPT store: one per\n"
                     "policy domain with sessions that day. Without --json, a table of the same.",
                     opts, nullptr, args, vm))
    return kExitOk;
  if (!tlsrpt::parse_utc_day(day)) throw UsageError("--day `" + display_text(day) + "` is not a day (YYYY-MM-DD)");
  if (!domain.empty()) {
    NameCheck n = check_host_name(domain);
    if (!n.ok()) throw UsageError("--domain `" + display_text(domain) + "`: " + n.problem);
    domain = n.name;
  }
  if (store_spec.empty() && config.empty()) config = kDefaultRelayConfigPath;
  const RelayConfig relay = relay_config_at(config);
  if (store_spec.empty()) store_spec = tlsrpt_store_spec(relay);
  const tlsrpt::Organization org = organization_of(relay);

  std::string error;
  std::unique_ptr<tlsrpt::Store> store = tlsrpt::open_store(store_spec, &error);
  if (!store) {
    std::cerr << "tlsp tlsrpt: error: " << display_text(error, 1000) << "\n";
    return kExitUsage;
  }
  std::vector<std::string> domains = domain.empty() ? store->domains(day, &error) : std::vector<std::string>{domain};
  if (!error.empty()) {
    std::cerr << "tlsp tlsrpt: error: " << display_text(error, 1000) << "\n";
    return kExitUsage;
  }
  std::sort(domains.begin(), domains.end());
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (const std::string& d : domains) {
    std::vector<tlsrpt::PolicySummary> policies = store->summaries(day, d, &error);
    if (!error.empty()) {
      std::cerr << "tlsp tlsrpt: error: " << display_text(error, 1000) << "\n";
      return kExitUsage;
    }
    if (policies.empty()) {
      std::cerr << "tlsp tlsrpt: note: no sessions to " << base::ticked(d) << " on " << day << "\n";
      continue;
    }
    const std::string id = tlsrpt::make_report_id(day, d, org.submitter);
    const std::string text = tlsrpt::report_json(org, id, day, policies);
    if (vm.count("json")) {
      all.push_back(nlohmann::ordered_json::parse(text));
      continue;
    }
    std::cout << "report " << id << "\n  " << d << " on " << day << ", from " << display_text(org.name) << " <"
              << display_text(org.contact) << ">\n";
    const nlohmann::json j = nlohmann::json::parse(text);
    for (const auto& p : j["policies"]) {
      std::cout << "  policy " << p["policy"]["policy-type"].get<std::string>() << "  successful "
                << p["summary"]["total-successful-session-count"] << "  failed "
                << p["summary"]["total-failure-session-count"] << "\n";
      if (p.contains("failure-details"))
        for (const auto& f : p["failure-details"])
          std::cout << "    " << f["failed-session-count"] << "  " << f.value("result-type", "")
                    << "  mx " << display_text(f.value("receiving-mx-hostname", "-")) << "  ip "
                    << f.value("receiving-ip", "-") << "  " << display_text(f.value("failure-reason-code", ""))
                    << "\n";
    }
  }
  if (vm.count("json")) std::cout << json_text(domain.empty() || all.empty() ? all : all[0]) << "\n";
  return kExitOk;
}

int tlsrpt_summarize(const Args& args) {
  po::options_description opts("options");
  std::vector<std::string> files;
  opts.add_options()("file", po::value(&files)->required(), "report files (positional)")(
      "json", "one JSON array of rows instead of the table");
  po::positional_options_description pos;
  pos.add("file", -1);
  po::variables_map vm;
  if (!parse_options("tlsrpt summarize", "FILE... [--json]",
                     "Reads TLSRPT reports that arrived for the managed domains (the JSON, a .gz of it, or the\n"
                     "whole mail, found by content) and adds them up by sending organisation, policy (domain,\n"
                     "type) and result type. A file that cannot be read is named on standard error (exit 1).",
                     opts, &pos, args, vm, {{"file", "report file"}}))
    return kExitOk;
  using Key = std::tuple<std::string, std::string, std::string, std::string>;  // org, domain, type, result ("" = policy)
  struct Row {
    uint64_t successful = 0, failed = 0;
    std::set<std::string> reports;
  };
  std::map<Key, Row> rows;
  // A report delivered twice (by mail and by https, or resent) counts
  // once: RFC 8460 §5.3's Report-ID is there to find duplicates.
  std::set<std::pair<std::string, std::string>> seen;
  int code = kExitOk;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::cerr << "tlsp tlsrpt: error: cannot read " << base::ticked(f) << "\n";
      code = kExitErrors;
      continue;
    }
    // One byte past the largest input read, so that a larger one is refused.
    std::string bytes(tlsrpt::kMaxReportMailBytes + 1, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    bytes.resize(static_cast<size_t>(in.gcount()));
    const tlsrpt::ReportReadResult r = tlsrpt::read_report(bytes);
    if (!r.report) {
      std::cerr << "tlsp tlsrpt: error: " << display_text(f) << ": " << display_text(r.error, 1000) << "\n";
      code = kExitErrors;
      continue;
    }
    if (!r.report->report_id.empty() && !seen.insert({r.report->organization_name, r.report->report_id}).second) {
      std::cerr << "tlsp tlsrpt: note: " << display_text(f) << ": report " << base::ticked(r.report->report_id)
                << " of " << base::ticked(r.report->organization_name) << " already counted\n";
      continue;
    }
    for (const tlsrpt::ReceivedPolicy& p : r.report->policies) {
      Row& total = rows[{r.report->organization_name, p.domain, p.type, ""}];
      total.successful += p.successful;
      total.failed += p.failed;
      total.reports.insert(r.report->report_id);
      for (const tlsrpt::ReceivedFailure& x : p.failures) {
        Row& row = rows[{r.report->organization_name, p.domain, p.type, x.detail.result_type}];
        row.failed += x.count;
        row.reports.insert(r.report->report_id);
      }
    }
  }
  if (vm.count("json")) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& [k, row] : rows) {
      nlohmann::ordered_json j;
      j["organization"] = std::get<0>(k);
      j["policy_domain"] = std::get<1>(k);
      j["policy_type"] = std::get<2>(k);
      j["result_type"] = std::get<3>(k).empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(std::get<3>(k));
      if (std::get<3>(k).empty()) j["successful"] = row.successful;
      j["failed"] = row.failed;
      j["reports"] = row.reports.size();
      out.push_back(std::move(j));
    }
    std::cout << json_text(out) << "\n";
    return code;
  }
  uint64_t ok = 0, failed = 0;
  std::cout << "organization / policy / result: successful failed (reports)\n";
  for (const auto& [k, row] : rows) {
    if (std::get<3>(k).empty()) {
      std::cout << display_text(std::get<0>(k)) << "  " << display_text(std::get<1>(k).empty() ? "-" : std::get<1>(k))
                << " " << display_text(std::get<2>(k)) << ": " << row.successful << " " << row.failed << " ("
                << row.reports.size() << ")\n";
      ok += row.successful;
      failed += row.failed;
    } else {
      std::cout << "    " << display_text(std::get<3>(k)) << ": " << row.failed << " failed\n";
    }
  }
  std::cout << "-- " << seen.size() << (seen.size() == 1 ? " report" : " reports") << ": " << ok << " successful, "
            << failed << " failed sessions\n";
  return code;
}

}  // namespace

int cmd_tlsrpt(const Args& args) {
  static const char* kUsage =
      "usage: tlsp tlsrpt report --day YYYY-MM-DD [--domain D] [--json] [--store SPEC | --config FILE] |\n"
      "                   send REPORT [--to URI]... [--domain D] [--spool DIR | --config FILE] |\n"
      "                   summarize FILE... [--json]       (each with --help for its options)";
  if (args.empty()) throw UsageError(std::string("tlsp tlsrpt: no operation given\n") + kUsage);
  const std::string verb = args.front();
  const Args rest(args.begin() + 1, args.end());
  if (verb == "--help" || verb == "-h") {
    std::cout << kUsage
              << "\n\nSMTP TLS reports (RFC 8460): the reports the relay's sessions make, sending them, and a\n"
                 "summary of the reports other senders sent about the managed domains.\n"
                 "`tlsp tlsrpt OPERATION --help` describes each.\n";
    return kExitOk;
  }
  for (const Command& v : tlsrpt_verbs())
    if (verb == v.name) return v.run(rest);
  throw UsageError("tlsp tlsrpt: unknown operation `" + display_text(verb) + "`\n" + kUsage);
}

const std::vector<Command>& tlsrpt_verbs() {
  static const std::vector<Command> verbs = {
      {"report", "a day's reports from the relay's TLSRPT store", tlsrpt_report},
      {"send", "send a report to its policy domain's collectors", tlsrpt_send},
      {"summarize", "add up received reports by organisation, policy and result", tlsrpt_summarize},
  };
  return verbs;
}

}  // namespace tlsp::cli
