// cmd_diff.cpp — `tlsp diff OLD NEW`: what a policy change does to real
// traffic. Every (domain, peer, direction) of either policy is evaluated
// under both against the behaviour catalogue (tlsp/rollout.h); each outcome
// that changes is listed, grouped by policy point, then counted by
// transition. Exit 0 when nothing changes and 3 when something does, so CI
// can gate a rollout.
#include <map>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "outcome_json.h"
#include "tlsp/rollout.h"

namespace tlsp::cli {
namespace {

constexpr int kExitChanged = 3;

std::string rule_text(const DecisionTable& t, const Decision& d) {
  return std::string(to_string(d.level)) + " " + std::string(to_string(d.min_tls)) + " (" + t.describe(d.origin) + ")";
}

}  // namespace

int cmd_diff(const Args& args) {
  po::options_description opts("options");
  std::string old_path, new_path;
  opts.add_options()("old", po::value(&old_path)->required(), "the current policy: a table or a policy file (positional)")(
      "new", po::value(&new_path)->required(), "the proposed policy: a table or a policy file (positional)")(
      "json", "one JSON document instead of text");
  add_compile_options(opts);
  po::positional_options_description pos;
  pos.add("old", 1).add("new", 1);
  po::variables_map vm;
  if (!parse_options("diff", "OLD NEW [--json]",
                     "Shows what changing from OLD to NEW does to delivery: every (domain, peer, direction, peer "
                     "behaviour) whose outcome changes.\nOLD and NEW are decision tables or policy files. Exit 0: "
                     "no change; 3: changes; 1/2: errors.",
                     opts, &pos, args, vm, {{"old", "OLD policy"}, {"new", "NEW policy"}}))
    return kExitOk;
  int code = kExitOk;
  auto old_table = table_or_policy({old_path}, vm, code);
  if (!old_table) return code;
  auto new_table = table_or_policy({new_path}, vm, code);
  if (!new_table) return code;

  PolicyDiff diff = diff_policies(*old_table, *new_table);
  std::map<std::pair<std::string, std::string>, size_t> transitions;
  for (const auto& c : diff.changes)
    ++transitions[{std::string(to_string(c.old_outcome.kind)), std::string(to_string(c.new_outcome.kind))}];
  size_t changed_points = 0;
  for (size_t i = 0; i < diff.changes.size(); ++i)
    if (i == 0 || diff.changes[i].point.domain != diff.changes[i - 1].point.domain ||
        diff.changes[i].point.peer != diff.changes[i - 1].point.peer ||
        diff.changes[i].point.direction != diff.changes[i - 1].point.direction)
      ++changed_points;

  if (vm.count("json")) {
    nlohmann::ordered_json j;
    j["old"] = {{"policy", old_table->policy_name()}, {"version", old_table->policy_version()}};
    j["new"] = {{"policy", new_table->policy_name()}, {"version", new_table->policy_version()}};
    j["changes"] = nlohmann::ordered_json::array();
    for (const auto& c : diff.changes)
      j["changes"].push_back({{"direction", to_string(c.point.direction)},
                              {"domain", c.point.domain},
                              {"peer", c.point.peer},
                              {"behaviour", c.behaviour->name},
                              {"old_rule", rule_text(*old_table, c.old_rule)},
                              {"new_rule", rule_text(*new_table, c.new_rule)},
                              {"old", outcome_json(c.old_outcome)},
                              {"new", outcome_json(c.new_outcome)}});
    j["summary"] = {{"changed", diff.changes.size()},
                    {"changed_points", changed_points},
                    {"points", diff.points},
                    {"evaluated", diff.evaluated}};
    std::cout << j.dump(2) << "\n";
    return diff.changes.empty() ? kExitOk : kExitChanged;
  }

  std::cout << "policy " << old_table->policy_name() << " " << old_table->policy_version() << " -> "
            << new_table->policy_name() << " " << new_table->policy_version() << "\n";
  const DiffEntry* previous = nullptr;
  for (const auto& c : diff.changes) {
    if (!previous || previous->point.domain != c.point.domain || previous->point.peer != c.point.peer ||
        previous->point.direction != c.point.direction) {
      std::cout << "\n" << to_string(c.point.direction) << " " << c.point.domain << " <-> " << c.point.peer << "\n"
                << "  rule: " << rule_text(*old_table, c.old_rule) << "  ->  " << rule_text(*new_table, c.new_rule)
                << "\n";
    }
    std::string name(c.behaviour->name);
    name.resize(std::max<size_t>(name.size(), 34), ' ');
    std::cout << "  " << name << describe(c.old_outcome) << "  ->  " << describe(c.new_outcome) << "\n";
    previous = &c;
  }
  if (!transitions.empty()) {
    std::cout << "\n";
    for (const auto& [t, n] : transitions) std::cout << "  " << n << " " << t.first << " -> " << t.second << "\n";
  }
  std::cout << (diff.changes.empty() ? "\nno change: " : "\n") << diff.changes.size() << " outcome"
            << (diff.changes.size() == 1 ? "" : "s") << " change at " << changed_points << " of " << diff.points
            << " policy points (" << diff.evaluated << " point x behaviour pairs evaluated)\n";
  return diff.changes.empty() ? kExitOk : kExitChanged;
}

}  // namespace tlsp::cli
