// scenario_ast.h — the simulator's own syntax tree of one scenario file:
// what the parse module (scenario_parse.cpp, the only ANTLR user) hands to
// the checker (scenario_check.cpp), which turns it into tlsp::sim::Scenario.
//
// It keeps the file's shape and nothing else: every word as written (string
// escapes already resolved), with its location, so the checker can say
// exactly which word is wrong. Small files, so plain nested vectors.
#pragma once

#include <string>
#include <vector>

#include "tlsp/compiler.h"

namespace tlsp::sim::ast {

struct Word {
  enum Kind : uint8_t { ident, number, string } kind = ident;
  std::string text;  // strings: quotes removed, escapes resolved, adjacent strings joined
  SourceLocation where;
};

// `key value`: `pref 10`, `dnssec secure`, `reason ok`.
struct Attribute {
  Word key;
  Word value;
};

// `[no] key args... ;`
struct Statement {
  SourceLocation where;  // the first word (`no` or the key)
  bool negated = false;
  Word key;
  std::vector<Word> args;
};

struct Tlsa {
  SourceLocation where;
  std::vector<Attribute> attrs;
  std::vector<Statement> records;
};

// An MX host (`host "name" attrs { facts }`) or an inbound client
// (`client "address" { facts }`).
struct Host {
  SourceLocation where;
  Word name;
  std::vector<Attribute> attrs;
  std::vector<Statement> facts;
  std::vector<Tlsa> tlsa;  // more than one is an error, reported by the checker
};

struct Mx {
  SourceLocation where;
  Word domain;
  std::vector<Attribute> attrs;
  std::vector<Host> hosts;
};

struct MtaSts {
  SourceLocation where;
  std::vector<Statement> facts;
};

struct Expect {
  SourceLocation where;
  Word outcome;
  std::vector<Attribute> fields;
};

struct Scenario {
  SourceLocation where;  // the `scenario` keyword
  Word name;
  std::vector<Statement> settings;  // direction, from, to
  std::vector<Mx> mx;
  std::vector<Host> clients;
  std::vector<MtaSts> sts;
  std::vector<Expect> expects;
};

struct File {
  std::vector<Scenario> scenarios;
};

}  // namespace tlsp::sim::ast
