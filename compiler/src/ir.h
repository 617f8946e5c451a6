// ir.h — one file's policy after its file-local checks: selectors parsed
// and normalised, settings turned into values, disabled peers dropped.
// Nothing is inherited yet: that needs the default domain, which may live
// in another file (resolve.cpp).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "tlsp/compiler.h"
#include "tlsp/decision_table.h"

namespace tlsp::ir {

// One setting as written (or not written) in a peer block, as its enum:
// the byte it is in a table is the table writer's business.
template <typename Value>
struct Setting {
  bool set = false;
  Value value{};
  SourceRef from;  // file is the provisional file id until the loader's remap
};

struct Settings {
  Setting<Level> level;
  Setting<MinTls> min_tls;
  bool invalid = false;  // a setting had an error: no warnings about this block
};

struct Peer {
  PeerEntry entry;  // selector (kind/name/address/prefix); rule filled in resolve
  Settings settings;
  SourceRef origin;
  SourceLocation where;  // the selector, for warnings
};

struct DirectionList {
  bool present = false;
  bool has_default = false;
  Settings default_settings;
  SourceRef default_origin;
  std::vector<Peer> peers;  // enabled peers only
};

struct NamedAt {
  std::string name;  // normalised
  SourceLocation where;
};

struct Domain {
  bool is_default = false;
  bool disabled = false;
  SourceLocation where;
  SourceRef origin;
  std::vector<NamedAt> names;  // valid names only
  DirectionList lists[2];       // indexed by Direction
  uint32_t listed_peers = 0;    // peers written (enabled or not), for warnings
  SourceLocation first_peer;
};

struct Header {
  std::string name;
  std::string label;
  SourceLocation where;
};

struct File {
  std::vector<Header> headers;
  std::vector<Domain> domains;
};

}  // namespace tlsp::ir
