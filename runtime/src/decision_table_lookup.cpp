// The hot path: DecisionTable::lookup() — which rule applies to one
// (direction, managed domain, peer).
//
// Precedence (SPEC §2): exact name > longest wildcard > longest CIDR >
// default peer; an unlisted domain falls back to the default domain. A peer
// is either an address or a name, so CIDRs never compete with names.
//
// Cost model: the queries are normalised into stack buffers; the domain is
// one hash and (usually) one index slot; each name stage is one hash and a
// binary search over 16-byte records comparing 32-bit keys, touching the
// string pool only to confirm a key match; a CIDR stage is one binary
// search per distinct prefix length in the list. Nothing is allocated
// except Decision::selector when a selector matched.
#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "table_layout.h"
#include "table_view.h"
#include "tlsp/decision_table.h"

namespace tlsp {
namespace tl = table_layout;

namespace {

constexpr uint64_t kNoPeer = UINT64_MAX;

// A query name, ASCII lower-cased with one trailing dot removed. `usable`
// is false when it is too long to be a domain name (it then matches no
// name).
struct NormalName {
  char text[tl::kMaxNameLength];
  size_t size = 0;
  bool usable = false;
  std::string_view view() const { return {text, size}; }
};

// ASCII lower case of eight bytes at once; bytes >= 0x80 are left alone.
// (A per-byte loop was a quarter of a lookup's time.)
uint64_t lower_ascii8(uint64_t x) {
  constexpr uint64_t kOnes = 0x0101010101010101u;
  const uint64_t low7 = x & (0x7F * kOnes);
  const uint64_t above_z = low7 + (0x7F - 'Z') * kOnes;  // top bit set where low7 > 'Z'
  const uint64_t from_a = low7 + (0x80 - 'A') * kOnes;   // top bit set where low7 >= 'A'
  const uint64_t upper = (from_a ^ above_z) & ~x & (0x80 * kOnes);
  return x | (upper >> 2);  // 0x80 >> 2 == 0x20, the case bit
}

void normalise(std::string_view in, NormalName& out) {
  if (!in.empty() && in.back() == '.') in.remove_suffix(1);
  if (in.size() > tl::kMaxNameLength) return;
  size_t i = 0;
  for (; i + 8 <= in.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, in.data() + i, 8);
    word = lower_ascii8(word);
    std::memcpy(out.text + i, &word, 8);
  }
  for (; i < in.size(); ++i) {
    const char c = in[i];
    out.text[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  out.size = in.size();
  out.usable = true;
}

enum class PeerForm { name, ipv4, ipv6, unusable };

// Dotted-quad IPv4, accepting exactly what inet_pton(AF_INET) accepts (four
// decimal parts 0-255, no leading zeros, nothing else) without its copy to
// a NUL-terminated buffer and library call, an eighth of a CIDR lookup.
bool parse_ipv4(std::string_view s, uint8_t* out) {
  unsigned parts = 0, value = 0;
  bool in_part = false;
  for (const char c : s) {
    if (c >= '0' && c <= '9') {
      if (in_part && value == 0) return false;  // leading zero
      value = value * 10 + static_cast<unsigned>(c - '0');
      if (value > 255) return false;
      if (!in_part) {
        if (++parts > 4) return false;
        in_part = true;
      }
    } else if (c == '.' && in_part) {
      if (parts == 4) return false;
      out[parts - 1] = static_cast<uint8_t>(value);
      value = 0;
      in_part = false;
    } else {
      return false;
    }
  }
  if (parts < 4 || !in_part) return false;
  out[3] = static_cast<uint8_t>(value);
  return true;
}

// An address in any of the forms a peer arrives in: "192.0.2.1",
// "2001:db8::1", and the SMTP address literals "[192.0.2.1]",
// "[IPv6:2001:db8::1]" (also without brackets). A bracketed or tagged form
// that does not parse is unusable rather than a name: it is not one.
PeerForm classify(const NormalName& peer, uint8_t (&address)[16]) {
  if (!peer.usable || peer.size == 0) return PeerForm::unusable;
  std::string_view s = peer.view();
  bool literal = false;
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') {
    s = s.substr(1, s.size() - 2);
    literal = true;
  }
  const bool tagged_v6 = s.starts_with("ipv6:");
  if (tagged_v6) {
    s.remove_prefix(5);
    literal = true;
  }
  if (!tagged_v6 && parse_ipv4(s, address)) return PeerForm::ipv4;
  char text[INET6_ADDRSTRLEN + 1];
  if (s.find(':') != std::string_view::npos && s.size() < sizeof text) {
    std::memcpy(text, s.data(), s.size());
    text[s.size()] = '\0';
    if (::inet_pton(AF_INET6, text, address) == 1) return PeerForm::ipv6;
  }
  return literal ? PeerForm::unusable : PeerForm::name;
}

// The name selector in [begin, end) (sorted by key, then bytes) whose name
// is `name`, or kNoPeer.
uint64_t find_name(const DecisionTable::Impl& t, uint64_t begin, uint64_t end, std::string_view name) {
  const uint32_t key = tl::name_key(name);
  uint64_t lo = begin, hi = end;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (t.peers[mid].key < key) lo = mid + 1;
    else hi = mid;
  }
  for (; lo < end && t.peers[lo].key == key; ++lo)
    if (t.str(t.peers[lo].selector) == name) return lo;
  return kNoPeer;
}

// The longest CIDR in [begin, end) (sorted by prefix length descending,
// then address) that contains `address`, or kNoPeer.
uint64_t find_cidr(const DecisionTable::Impl& t, uint64_t begin, uint64_t end, const uint8_t* address,
                   size_t size) {
  uint64_t group = begin;
  while (group < end) {
    const uint8_t prefix = t.peers[group].prefix_len;
    uint64_t lo = group + 1, hi = end;
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      if (t.peers[mid].prefix_len == prefix) lo = mid + 1;
      else hi = mid;
    }
    const uint64_t group_end = lo;

    uint8_t masked[16] = {};
    for (size_t i = 0; i < size; ++i) {
      const int bits = static_cast<int>(prefix) - static_cast<int>(i) * 8;
      if (bits >= 8) masked[i] = address[i];
      else if (bits > 0) masked[i] = static_cast<uint8_t>(address[i] & (0xFFu << (8 - bits)));
    }
    const uint32_t key = tl::address_key(masked);
    lo = group;
    hi = group_end;
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      const tl::PeerRecord& p = t.peers[mid];
      const bool before = p.key != key ? p.key < key : std::memcmp(t.strings + p.selector.offset, masked, size) < 0;
      if (before) lo = mid + 1;
      else hi = mid;
    }
    if (lo < group_end && t.peers[lo].key == key &&
        std::memcmp(t.strings + t.peers[lo].selector.offset, masked, size) == 0)
      return lo;
    group = group_end;
  }
  return kNoPeer;
}

struct PeerMatch {
  uint64_t index = kNoPeer;
  MatchKind kind = MatchKind::default_peer;
};

PeerMatch match_peer(const DecisionTable::Impl& t, const tl::DirectionRecord& r, std::string_view peer_in) {
  // The four groups of this direction, in SelectorKind order.
  uint64_t bounds[5] = {r.peer_begin};
  for (int k = 0; k < 4; ++k) bounds[k + 1] = bounds[k] + r.kind_count[k];
  const auto group = [&](SelectorKind k) {
    return std::pair{bounds[static_cast<int>(k)], bounds[static_cast<int>(k) + 1]};
  };
  if (bounds[4] == bounds[0]) return {};

  NormalName peer;
  normalise(peer_in, peer);
  uint8_t address[16];
  switch (classify(peer, address)) {
    case PeerForm::unusable: return {};
    case PeerForm::ipv4: {
      const auto [b, e] = group(SelectorKind::cidr_v4);
      return {find_cidr(t, b, e, address, 4), MatchKind::cidr};
    }
    case PeerForm::ipv6: {
      const auto [b, e] = group(SelectorKind::cidr_v6);
      return {find_cidr(t, b, e, address, 16), MatchKind::cidr};
    }
    case PeerForm::name: break;
  }
  const std::string_view name = peer.view();
  if (const auto [b, e] = group(SelectorKind::exact); b != e) {
    if (const uint64_t i = find_name(t, b, e, name); i != kNoPeer) return {i, MatchKind::exact};
  }
  // Parents from the nearest (longest) to the TLD: the first hit is the
  // longest wildcard. The name itself is not tried: `*.x` is strictly below x.
  if (const auto [b, e] = group(SelectorKind::wildcard); b != e) {
    for (size_t dot = 0; dot + 1 < name.size(); ++dot) {
      if (name[dot] != '.') continue;
      if (const uint64_t i = find_name(t, b, e, name.substr(dot + 1)); i != kNoPeer) return {i, MatchKind::wildcard};
    }
  }
  return {};
}

SourceRef to_ref(const tl::SourceRecord& r) { return {r.file, r.line, r.column}; }

// Selector spelling, built in place: inet_ntop() goes through printf and
// cost more than the whole rest of a CIDR lookup. The output is exactly
// inet_ntop's (the tests compare the two).
char* put_decimal(char* out, unsigned v) {
  if (v >= 100) *out++ = static_cast<char>('0' + v / 100);
  if (v >= 10) *out++ = static_cast<char>('0' + v / 10 % 10);
  *out++ = static_cast<char>('0' + v % 10);
  return out;
}

char* put_ipv4(char* out, const uint8_t* a) {
  for (int i = 0; i < 4; ++i) {
    if (i > 0) *out++ = '.';
    out = put_decimal(out, a[i]);
  }
  return out;
}

// RFC 5952 as glibc does it: lower-case hex without leading zeros, the
// first longest run of two or more zero groups as "::", and the last 32
// bits in dotted form for IPv4-mapped (::ffff:a.b.c.d) and -compatible
// (::a.b.c.d) addresses.
char* put_ipv6(char* out, const uint8_t* a) {
  static constexpr char kHex[] = "0123456789abcdef";
  unsigned words[8];
  for (int i = 0; i < 8; ++i) words[i] = (unsigned{a[2 * i]} << 8) | a[2 * i + 1];
  int best_base = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (words[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && words[j] == 0) ++j;
    if (j - i > best_len) best_base = i, best_len = j - i;
    i = j;
  }
  if (best_len < 2) best_base = -1;
  for (int i = 0; i < 8; ++i) {
    if (best_base >= 0 && i >= best_base && i < best_base + best_len) {
      if (i == best_base) *out++ = ':';
      continue;
    }
    if (i != 0) *out++ = ':';
    if (i == 6 && best_base == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xffff)))
      return put_ipv4(out, a + 12);
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      const unsigned digit = (words[i] >> shift) & 15;
      if (digit != 0 || started || shift == 0) {
        *out++ = kHex[digit];
        started = true;
      }
    }
  }
  if (best_base >= 0 && best_base + best_len == 8) *out++ = ':';
  return out;
}

void put_selector(const DecisionTable::Impl& t, const tl::PeerRecord& p, std::string& out) {
  const std::string_view bytes = t.str(p.selector);
  const auto* address = reinterpret_cast<const uint8_t*>(bytes.data());
  char text[64];
  char* end = text;
  switch (static_cast<SelectorKind>(p.kind)) {
    case SelectorKind::exact:
      out.assign(bytes);
      return;
    case SelectorKind::wildcard:
      out.reserve(bytes.size() + 2);
      out.assign("*.").append(bytes);
      return;
    case SelectorKind::cidr_v4: end = put_ipv4(text, address); break;
    case SelectorKind::cidr_v6: end = put_ipv6(text, address); break;
  }
  *end++ = '/';
  end = put_decimal(end, p.prefix_len);
  out.assign(text, end);
}

}  // namespace

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

Decision DecisionTable::lookup(Direction direction, std::string_view managed_domain,
                               std::string_view peer) const {
  const Impl& t = *impl_;
  const int dir = direction == Direction::inbound ? 1 : 0;

  NormalName domain_name;
  normalise(managed_domain, domain_name);
  const tl::DomainRecord* domain = nullptr;
  if (domain_name.usable && domain_name.size > 0) domain = t.find_domain(domain_name.view());

  Decision out;
  out.domain_listed = domain != nullptr;
  if (domain == nullptr) domain = &t.default_domain();
  const tl::DirectionRecord& rules = domain->directions[dir];

  const PeerMatch m = match_peer(t, rules, peer);
  if (m.index != kNoPeer) {
    const tl::PeerRecord& p = t.peers[m.index];
    const tl::PeerProvenance& prov = t.provenance[m.index];
    out.level = static_cast<Level>(p.level);
    out.min_tls = static_cast<MinTls>(p.min_tls);
    out.match = m.kind;
    out.origin = to_ref(prov.origin);
    out.level_from = to_ref(prov.level_from);
    out.min_tls_from = to_ref(prov.min_tls_from);
    put_selector(t, p, out.selector);
  } else {
    out.level = static_cast<Level>(rules.level);
    out.min_tls = static_cast<MinTls>(rules.min_tls);
    out.match = out.domain_listed ? MatchKind::default_peer : MatchKind::default_domain;
    out.origin = to_ref(rules.origin);
    out.level_from = to_ref(rules.level_from);
    out.min_tls_from = to_ref(rules.min_tls_from);
  }
  return out;
}

}  // namespace tlsp
