// cmd_matrix.cpp — the decision matrix: every managed domain x listed peer
// (and default peer) x direction of a policy against the behaviour
// catalogue (tlsp/rollout.h). `tlsp matrix` and `tlsp simulate --matrix`
// are the same command. Text groups each point's behaviours by outcome;
// --csv gives one row per (point, behaviour); --json one document.
#include <map>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "outcome_json.h"
#include "tlsp/rollout.h"

namespace tlsp::cli {
namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

int cmd_matrix(const Args& args) {
  po::options_description opts("options");
  std::vector<std::string> policies;
  std::string table_path;
  opts.add_options()("policy", po::value(&policies)->multitoken()->composing()->value_name("POLICY"), "policy files to compile")(
      "table", po::value(&table_path)->value_name("TABLE"), "a decision table instead of policy files")(
      "matrix", "accepted for `tlsp simulate --matrix`")("csv", "one CSV row per (point, behaviour)")(
      "json", "one JSON document")("behaviours", "list the behaviour catalogue and exit");
  add_compile_options(opts);
  po::variables_map vm;
  if (!parse_options("matrix", "(--policy POLICY... | --table TABLE) [--csv | --json]",
                     "Evaluates every (managed domain, peer, direction) of a policy against the built-in catalogue "
                     "of peer behaviours and prints the decision matrix.",
                     opts, nullptr, args, vm))
    return kExitOk;
  at_most_one_of(vm, {"csv", "json"});
  if (vm.count("behaviours")) {
    for (const auto& b : behaviour_catalogue())
      std::cout << to_string(b.direction) << "  " << b.name << "  " << b.description << "\n";
    return kExitOk;
  }
  if (table_path.empty() == policies.empty()) throw UsageError("give exactly one of --policy and --table");
  int code = kExitOk;
  auto table = table_or_policy(table_path.empty() ? policies : std::vector<std::string>{table_path}, vm, code);
  if (!table) return code;
  std::vector<MatrixRow> rows = decision_matrix(*table);

  if (vm.count("csv")) {
    std::cout << "direction,domain,peer,level,min_tls,source,behaviour,outcome,channel,applied,tls,reason\n";
    for (const auto& r : rows)
      for (const auto& c : r.cells)
        std::cout << to_string(r.point.direction) << "," << csv_field(r.point.domain) << "," << csv_field(r.point.peer)
                  << "," << to_string(r.rule.level) << "," << to_string(r.rule.min_tls) << ","
                  << csv_field(table->describe(r.rule.origin)) << "," << c.behaviour->name << ","
                  << to_string(c.outcome.kind) << "," << to_string(c.outcome.channel) << ","
                  << to_string(c.outcome.applied) << "," << to_string(c.outcome.tls) << ","
                  << to_string(c.outcome.reason) << "\n";
    return kExitOk;
  }
  if (vm.count("json")) {
    nlohmann::ordered_json j;
    j["policy"] = {{"name", table->policy_name()}, {"version", table->policy_version()}};
    j["rows"] = nlohmann::ordered_json::array();
    for (const auto& r : rows) {
      nlohmann::ordered_json row = {{"direction", to_string(r.point.direction)},
                                    {"domain", r.point.domain},
                                    {"peer", r.point.peer},
                                    {"level", to_string(r.rule.level)},
                                    {"min_tls", to_string(r.rule.min_tls)},
                                    {"source", table->describe(r.rule.origin)},
                                    {"outcomes", nlohmann::ordered_json::object()}};
      for (const auto& c : r.cells)
        row["outcomes"][std::string(c.behaviour->name)] = outcome_json(c.outcome);
      j["rows"].push_back(std::move(row));
    }
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }

  std::cout << "decision matrix: " << table->policy_name() << " " << table->policy_version() << ", " << rows.size()
            << " points x " << behaviour_catalogue().size() << " behaviours (`tlsp matrix --behaviours` lists them)\n";
  for (const auto& r : rows) {
    std::cout << "\n"
              << to_string(r.point.direction) << " " << r.point.domain << " <-> " << r.point.peer << "   "
              << to_string(r.rule.level) << ", min " << to_string(r.rule.min_tls) << "  ("
              << table->describe(r.rule.origin) << ")\n";
    // Behaviours grouped by what happens to them, in a fixed order.
    std::map<std::tuple<int, int, int, int>, std::vector<std::string>> groups;
    for (const auto& c : r.cells) {
      const Outcome& o = c.outcome;
      std::string item(c.behaviour->name);
      if (o.reason != Reason::ok) item += " [" + std::string(to_string(o.reason)) + "]";
      groups[{static_cast<int>(o.kind), static_cast<int>(o.channel), static_cast<int>(o.applied),
              static_cast<int>(o.tls)}]
          .push_back(std::move(item));
    }
    for (const auto& [key, items] : groups) {
      auto [kind, channel, applied, tls] = key;
      std::string head = std::string(to_string(static_cast<OutcomeKind>(kind)));
      if (static_cast<OutcomeKind>(kind) != OutcomeKind::refuse) {
        head += " " + std::string(to_string(static_cast<Channel>(channel)));
        if (static_cast<TlsVersion>(tls) != TlsVersion::none) head += " " + std::string(to_string(static_cast<TlsVersion>(tls)));
      }
      head += " as " + std::string(to_string(static_cast<Level>(applied)));
      head.resize(std::max<size_t>(head.size(), 42), ' ');
      std::cout << "  " << head << " ";
      for (size_t i = 0; i < items.size(); ++i) std::cout << (i ? ", " : "") << items[i];
      std::cout << "\n";
    }
  }
  return kExitOk;
}

}  // namespace tlsp::cli
