// ast.h — the project's own syntax tree of one policy file.
//
// The parse module builds it from ANTLR's parse tree and frees that tree at
// once; everything after parsing works on this. It is flat on purpose: one
// vector per kind of node and [begin, count) ranges between them, so a file
// with 10,000 peers costs a handful of allocations, not tens of thousands.
// Text is a view into the file's source text (quotes already stripped),
// which outlives the AST.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tlsp/compiler.h"
#include "tlsp/policy_model.h"

namespace tlsp::ast {

struct Text {
  std::string_view text;
  SourceLocation where;
};

struct Range {
  uint32_t begin = 0;
  uint32_t count = 0;
};

struct Setting {
  Text key;    // level, min_tls, ...
  Text value;  // opportunistic, tls1.2, ...
};

struct Peer {
  SourceLocation where;  // the `peer` / `default` keyword
  bool is_default = false;
  bool disabled = false;
  Range selectors;  // into File::strings
  Range settings;   // into File::settings
};

struct DirectionBlock {
  Direction direction = Direction::outbound;
  SourceLocation where;
  Range peers;  // into File::peers
};

struct Domain {
  SourceLocation where;  // the `domain` / `default` keyword
  bool is_default = false;
  bool disabled = false;
  Range names;       // into File::strings
  Range directions;  // into File::directions
};

struct Include {
  Text pattern;
  SourceLocation where;
};

struct Header {
  Text name;
  Text label;
  SourceLocation where;
};

struct File {
  uint32_t file = 0;
  std::vector<Header> headers;
  std::vector<Include> includes;
  std::vector<Domain> domains;
  std::vector<DirectionBlock> directions;
  std::vector<Peer> peers;
  std::vector<Text> strings;
  std::vector<Setting> settings;
};

}  // namespace tlsp::ast
