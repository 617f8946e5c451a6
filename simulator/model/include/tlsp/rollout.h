// tlsp/rollout.h — what a policy does to real traffic, before rollout.
//
// A built-in catalogue of named peer behaviours (a modern peer, no
// STARTTLS, TLS 1.0 only, an expired certificate, DANE-EE mismatch, MTA-STS
// enforce with a bad certificate, ...), each the facts of one delivery
// attempt. The decision matrix evaluates every behaviour against every
// (managed domain, listed peer, direction) of a policy; the diff compares
// two policies behaviour by behaviour and lists what changes. Both decide
// through the enforcement engine (tlsp/engine.h) and nothing else.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tlsp/decision_table.h"
#include "tlsp/engine.h"

namespace tlsp {

struct PeerBehaviour {
  std::string_view name;         // stable, kebab-case: `dane-ee-mismatch`
  std::string_view description;  // one line for people
  Direction direction;
  PeerFacts facts;
};

// Outbound behaviours first, then inbound; names are unique.
const std::vector<PeerBehaviour>& behaviour_catalogue();

// One (domain, direction, peer) of a policy, with the query that reaches
// exactly that entry through DecisionTable::lookup.
struct PolicyPoint {
  Direction direction = Direction::outbound;
  std::string domain;        // a listed domain, or "(default domain)"
  std::string peer;          // the selector, or "(default peer)"
  std::string query_domain;  // what to look up
  std::string query_peer;
};

// Every listed domain x (each listed peer + the default peer) x direction,
// plus the default domain's own list, in a stable order.
std::vector<PolicyPoint> policy_points(const TableContent& content);

struct MatrixCell {
  const PeerBehaviour* behaviour;
  Outcome outcome;
};

struct MatrixRow {
  PolicyPoint point;
  Decision rule;
  std::vector<MatrixCell> cells;  // one per behaviour of the row's direction
};

std::vector<MatrixRow> decision_matrix(const DecisionTable& table);

struct DiffEntry {
  PolicyPoint point;
  const PeerBehaviour* behaviour;
  Decision old_rule, new_rule;
  Outcome old_outcome, new_outcome;
};

struct PolicyDiff {
  std::vector<DiffEntry> changes;
  size_t evaluated = 0;  // (point, behaviour) pairs compared
  size_t points = 0;
};

// Points are the union of both policies' points; each is looked up in both
// tables, so a peer one policy lists and the other does not is compared
// against whatever rule the other applies to it.
PolicyDiff diff_policies(const DecisionTable& old_table, const DecisionTable& new_table);

// "deliver authenticated tls1.3 (dane)" and the like, for reports.
std::string describe(const Outcome& o);

}  // namespace tlsp
