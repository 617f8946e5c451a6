// Spelling of the policy vocabulary (tlsp/policy_model.h).
#include "tlsp/policy_model.h"

#include <array>

namespace tlsp {
namespace {
constexpr std::array<std::string_view, 2> kDirections = {"outbound", "inbound"};

template <typename E, size_t N>
std::optional<E> find(const std::array<std::string_view, N>& names, std::string_view s) {
  for (size_t i = 0; i < N; ++i)
    if (names[i] == s) return static_cast<E>(i);
  return std::nullopt;
}
}  // namespace

std::string_view to_string(Direction d) { return kDirections.at(static_cast<size_t>(d)); }
std::string_view to_string(Level l) { return kLevelNames.at(static_cast<size_t>(l)); }
std::string_view to_string(MinTls v) { return kMinTlsNames.at(static_cast<size_t>(v)); }

std::optional<Direction> parse_direction(std::string_view s) { return find<Direction>(kDirections, s); }
std::optional<Level> parse_level(std::string_view s) { return find<Level>(kLevelNames, s); }
std::optional<MinTls> parse_min_tls(std::string_view s) { return find<MinTls>(kMinTlsNames, s); }

std::string_view to_string(MatchKind m) {
  switch (m) {
    case MatchKind::exact: return "exact";
    case MatchKind::wildcard: return "wildcard";
    case MatchKind::cidr: return "cidr";
    case MatchKind::default_peer: return "default-peer";
    case MatchKind::default_domain: return "default-domain";
  }
  return "?";
}

}  // namespace tlsp
