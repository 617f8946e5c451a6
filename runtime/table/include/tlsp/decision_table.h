// tlsp/decision_table.h — the compiled decision table: its content, its
// on-disk form (docs/decision-table.md) and the runtime lookup.
//
// Contract:
//  * TableContent is what the compiler produces: every rule fully resolved
//    (inheritance, disabled entries and defaults already applied), names
//    normalised (lower case, no trailing dot, IDNA A-labels), CIDRs with no
//    host bits. encode_table() turns it into bytes; the same content always
//    gives the same bytes, whatever the order of its vectors.
//  * DecisionTable::open() reads a table file into memory the table owns
//    and validates all of it (magic, format version, checksum, every offset
//    and count) before it answers anything; a damaged, truncated or foreign
//    file, or one that changes while it is read, throws TableError with a
//    message naming what is wrong. No input file may crash the loader or
//    make a later lookup read out of bounds. The file is never mapped, so
//    what happens to it after open() (rewritten in place, truncated) has
//    no effect on the table.
//  * lookup() never fails: an unknown domain gets the default domain, an
//    unknown or unparsable peer the default peer. It allocates nothing
//    (except Decision::selector, filled only when a selector matched) and
//    touches only the validated image.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/policy_model.h"

namespace tlsp {

// ---------------------------------------------------------------- content

// A fully resolved rule and where each part of it came from.
struct Rule {
  Level level = Level::opportunistic;
  MinTls min_tls = MinTls::any;
  SourceRef origin;        // the peer / default peer entry that is the rule
  SourceRef level_from;    // the `level` setting used (maybe inherited)
  SourceRef min_tls_from;  // the `min_tls` setting used (maybe inherited)
  friend bool operator==(const Rule&, const Rule&) = default;
};

enum class SelectorKind : uint8_t {
  exact = 0,     // name: the peer domain
  wildcard = 1,  // name: the parent; matches any name strictly below it
  cidr_v4 = 2,   // address[0..3], prefix_len 0..32
  cidr_v6 = 3,   // address[0..15], prefix_len 0..128
};

struct PeerEntry {
  SelectorKind kind = SelectorKind::exact;
  std::string name;                    // exact / wildcard only
  std::array<uint8_t, 16> address{};   // CIDR only; host bits are zero
  uint8_t prefix_len = 0;              // CIDR only
  Rule rule;
  friend bool operator==(const PeerEntry&, const PeerEntry&) = default;
};

// The selector as a policy writes it and the table shows it, the one
// spelling for the compiler's diagnostics and dumps, the writer's
// refusals, the JSON form and the simulator: `partner.example`,
// `*.bank.example`, `203.0.113.0/24`, `2001:db8::/32` (inet_ntop's form,
// tlsp/base/address.h). A kind out of range (content encode_table()
// refuses) is spelled as an IPv6 CIDR of its bytes, so the refusal shows
// what it refused.
std::string selector_text(const PeerEntry& entry);

struct DirectionRules {
  Rule default_peer;
  std::vector<PeerEntry> peers;  // enabled peers only; selectors unique
  friend bool operator==(const DirectionRules&, const DirectionRules&) = default;
};

struct DomainRules {
  std::string name;  // empty for the default domain
  SourceRef origin;  // the `domain` / `default domain` block (builtin if supplied)
  DirectionRules directions[2];  // indexed by Direction
  const DirectionRules& dir(Direction d) const { return directions[static_cast<int>(d)]; }
  DirectionRules& dir(Direction d) { return directions[static_cast<int>(d)]; }
  friend bool operator==(const DomainRules&, const DomainRules&) = default;
};

struct SourceFile {
  std::string path;  // as shown in diagnostics
  std::array<uint8_t, 32> sha256{};
  friend bool operator==(const SourceFile&, const SourceFile&) = default;
};

struct TableContent {
  std::string policy_name;
  std::string policy_version;
  std::array<uint8_t, 32> sources_sha256{};  // over all sources, in order
  std::vector<SourceFile> sources;
  DomainRules default_domain;
  std::vector<DomainRules> domains;  // enabled managed domains; names unique
  friend bool operator==(const TableContent&, const TableContent&) = default;
};

// Sorts domains and peers into the table's canonical order (the order
// decode() returns), so two contents can be compared with ==.
void canonicalize(TableContent& content);

// ------------------------------------------------------------ on-disk form

// Throws std::invalid_argument (naming the offending entry) for content that
// breaks the contract above: a name not normalised or longer than 253
// bytes, a duplicate domain or selector, a CIDR with host bits or too long a
// prefix, a SourceRef to a missing file, an enum out of range.
std::string encode_table(const TableContent& content);

// Writes atomically (tlsp/base/atomic_file.h): a temporary file in the same
// directory, fsync, rename, fsync of the directory; a reader sees the old
// table or the new one. Throws base::FileError (a std::runtime_error: "cannot
// STEP `PATH`: reason") on failure, the old table left as it was.
void write_table_file(const std::string& path, const TableContent& content);

// The same content as JSON (for review and diffs); deterministic.
std::string table_to_json(const TableContent& content);

class TableError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The file could not be read at all (missing, unreadable, not a regular
// file, too large, changed while read), as opposed to a table that was read
// and refused: the CLI exits 2 for this one and 1 for a refused table.
class TableReadError : public TableError {
 public:
  using TableError::TableError;
};

// Test hook: recomputes the checksum of a table image (which may be
// deliberately damaged elsewhere) so that tests reach the loader's
// structural checks. Images shorter than the header are returned unchanged.
std::string reseal_table_for_testing(std::string bytes);

// ----------------------------------------------------------------- lookup

// MatchKind and Decision, what lookup() answers, are the engine's vocabulary
// (tlsp/policy_model.h).

class DecisionTable {
 public:
  // Reads a table file into owned memory and validates it. Throws TableError.
  static DecisionTable open(const std::string& path);
  // Validates a table held in memory (copied). Throws TableError.
  static DecisionTable from_bytes(std::string_view bytes);

  DecisionTable(DecisionTable&&) noexcept;
  DecisionTable& operator=(DecisionTable&&) noexcept;
  ~DecisionTable();

  // managed_domain and peer: case-insensitive, trailing dot ignored. A peer
  // that parses as an IPv4 or IPv6 address is matched against CIDR
  // selectors, anything else against name selectors.
  Decision lookup(Direction direction, std::string_view managed_domain,
                  std::string_view peer) const;

  std::string_view policy_name() const;
  std::string_view policy_version() const;
  std::array<uint8_t, 32> sources_sha256() const;
  uint32_t format_version() const;
  size_t domain_count() const;  // listed domains (the default not counted)
  size_t peer_count() const;    // peer entries, all domains and directions
  size_t source_count() const;
  std::string_view source_path(uint32_t file) const;  // "" if out of range
  // "file:line" or "built-in default"
  std::string describe(const SourceRef& ref) const;

  // The whole content back (canonical order), for round trips and dumps.
  TableContent decode() const;

  struct Impl;

 private:
  explicit DecisionTable(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tlsp
