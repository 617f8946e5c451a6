// tlsp/policy_model.h — the vocabulary shared by the compiler, the decision
// table and the enforcement engine (SPEC §2).
//
// Contract: every enum here is stored in the decision table by its numeric
// value, so values are never renumbered; a new value is appended and bumps
// the table format version. The parse_* functions accept exactly the
// spelling used in policy files and return std::nullopt for anything else.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tlsp {

enum class Direction : uint8_t { outbound = 0, inbound = 1 };

// Ordered from weakest to strictest; the order matters when two inbound
// rules are combined ("the stricter of the two applies", SPEC §5).
enum class Level : uint8_t {
  opportunistic = 0,
  mandatory = 1,
  dane = 2,
  dane_only = 3,
  mta_sts = 4,
};

// Ordered from weakest to strictest.
enum class MinTls : uint8_t { any = 0, tls1_2 = 1, tls1_3 = 2 };

inline constexpr int kLevelCount = 5;
inline constexpr int kMinTlsCount = 3;

// The spellings, in the enums' order: the only place they are written
// (to_string, parse_*, and the compiler's and scenario checker's help
// texts all read them here).
inline constexpr std::array<std::string_view, kLevelCount> kLevelNames = {"opportunistic", "mandatory", "dane",
                                                                          "dane-only", "mta-sts"};
inline constexpr std::array<std::string_view, kMinTlsCount> kMinTlsNames = {"any", "tls1.2", "tls1.3"};

std::string_view to_string(Direction d);
std::string_view to_string(Level l);
std::string_view to_string(MinTls v);

std::optional<Direction> parse_direction(std::string_view s);
std::optional<Level> parse_level(std::string_view s);
std::optional<MinTls> parse_min_tls(std::string_view s);

// dane, dane-only and mta-sts authenticate the receiving MX host and so only
// make sense when we are the sending side (SPEC §2).
constexpr bool is_outbound_only(Level l) {
  return l == Level::dane || l == Level::dane_only || l == Level::mta_sts;
}

// ------------------------------------------------ the table's answers
// What a decision-table lookup answers (tlsp/decision_table.h) and decide()
// takes: the engine's input vocabulary, so the engine needs no table.

inline constexpr uint32_t kBuiltinFile = 0xFFFFFFFFu;

// A place in the policy sources. file indexes TableContent::sources;
// kBuiltinFile means "built-in default" (no source line).
struct SourceRef {
  uint32_t file = kBuiltinFile;
  uint32_t line = 0;
  uint32_t column = 0;
  bool builtin() const { return file == kBuiltinFile; }
  friend bool operator==(const SourceRef&, const SourceRef&) = default;
};

enum class MatchKind : uint8_t {
  exact,           // an exact peer selector matched
  wildcard,        // the longest matching wildcard selector
  cidr,            // the longest matching CIDR selector
  default_peer,    // the domain's default peer
  default_domain,  // domain unlisted or disabled: the default domain's default peer
};
std::string_view to_string(MatchKind m);

struct Decision {
  Level level = Level::opportunistic;
  MinTls min_tls = MinTls::any;
  MatchKind match = MatchKind::default_domain;
  bool domain_listed = false;  // false: the default domain's rules were used
  SourceRef origin, level_from, min_tls_from;
  std::string selector;        // the matched selector as written
                               // ("*.bank.example", "203.0.113.0/24"); empty for defaults
};

}  // namespace tlsp
