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

}  // namespace tlsp
