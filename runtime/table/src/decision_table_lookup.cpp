// The hot path: DecisionTable::lookup() — which rule applies to one
// (direction, managed domain, peer).
//
// Precedence (SPEC §2): exact name > longest wildcard > longest CIDR >
// default peer; an unlisted domain falls back to the default domain. A peer
// is either an address or a name, so CIDRs never compete with names.
//
// Cost model: on a large table a lookup is bound by memory latency, not by
// instructions, so it is shaped to wait for as few dependent cache misses as
// possible. The domain name is normalised and hashed and its index slot
// prefetched first; the peer is normalised, classified and hashed while
// that slot is on its way. The slot names the domain's block, which is
// prefetched whole (up to a cap) as soon as its header arrives: the name,
// the peer records, the selector bytes and the provenance a lookup reads
// are all in that block. Name stages compare 32-bit keys in a binary search
// over 12-byte records and read selector bytes only to confirm a key match;
// a CIDR stage is one binary search per distinct prefix length. Nothing is
// allocated except Decision::selector when a selector matched (and then
// only when it is longer than std::string's inline buffer).
#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "table_layout.h"
#include "table_view.h"
#include "tlsp/decision_table.h"

namespace tlsp {
namespace tl = table_layout;

namespace {

// A query name, ASCII lower-cased with one trailing dot removed. `usable`
// is false when it is too long to be a domain name (it then matches no
// name). A name that is already lower case (the usual case) is not copied:
// view() is then the caller's bytes. Besides saving the copy, that spares
// the hash a store-forwarding stall: it reads eight bytes at offsets that
// straddle the copy's eight-byte stores.
struct NormalName {
  NormalName() = default;
  NormalName(const NormalName&) = delete;  // data may point into text
  NormalName& operator=(const NormalName&) = delete;

  const char* data = nullptr;
  size_t size = 0;
  bool usable = false;
  bool has_colon = false;  // so a name need not be searched for one to rule out IPv6
  char text[tl::kMaxNameLength];
  std::string_view view() const { return {data, size}; }
};

constexpr uint64_t kOnes = 0x0101010101010101u;

// The top bit of each byte that is ASCII upper case ('A'..'Z'; bytes >= 0x80
// are not).
uint64_t upper8(uint64_t x) {
  const uint64_t low7 = x & (0x7F * kOnes);
  const uint64_t above_z = low7 + (0x7F - 'Z') * kOnes;  // top bit set where low7 > 'Z'
  const uint64_t from_a = low7 + (0x80 - 'A') * kOnes;   // top bit set where low7 >= 'A'
  return (from_a ^ above_z) & ~x & (0x80 * kOnes);
}

// Non-zero iff one of the eight bytes is ':'.
uint64_t colon8(uint64_t x) {
  const uint64_t v = x ^ (':' * kOnes);
  return (v - kOnes) & ~v & (0x80 * kOnes);
}

void normalise(std::string_view in, NormalName& out) {
  if (!in.empty() && in.back() == '.') in.remove_suffix(1);
  const size_t n = in.size();
  if (n > tl::kMaxNameLength) return;
  // Eight bytes at a time (a per-byte loop was a quarter of a lookup), the
  // last eight overlapping: looking at a byte twice is harmless.
  uint64_t upper = 0, colon = 0;
  const auto word_at = [&](size_t i) {
    uint64_t word;
    std::memcpy(&word, in.data() + i, 8);
    upper |= upper8(word);
    colon |= colon8(word);
  };
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8) word_at(i);
    word_at(n - 8);
  } else {
    for (size_t i = 0; i < n; ++i) {
      upper |= (in[i] >= 'A' && in[i] <= 'Z');
      colon |= in[i] == ':';
    }
  }
  out.data = in.data();
  if (upper != 0) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t word;
      std::memcpy(&word, in.data() + i, 8);
      word |= upper8(word) >> 2;  // 0x80 >> 2 == 0x20, the case bit
      std::memcpy(out.text + i, &word, 8);
    }
    for (; i < n; ++i) {
      const char c = in[i];
      out.text[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    out.data = out.text;
  }
  out.size = n;
  out.usable = true;
  out.has_colon = colon != 0;
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
  const bool has_colon = tagged_v6 ? s.find(':') != std::string_view::npos : peer.has_colon;
  if (has_colon && s.size() < sizeof text) {
    std::memcpy(text, s.data(), s.size());
    text[s.size()] = '\0';
    if (::inet_pton(AF_INET6, text, address) == 1) return PeerForm::ipv6;
  }
  return literal ? PeerForm::unusable : PeerForm::name;
}

// a == b for names: eight bytes at a time, the last eight overlapping, in
// line rather than through a call to memcmp (names are short, and a lookup
// compares two).
bool same_name(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  if (n < 8) {
    uint64_t diff = 0;
    for (size_t i = 0; i < n; ++i) diff |= static_cast<uint8_t>(a[i] ^ b[i]);
    return diff == 0;
  }
  uint64_t diff = 0;
  const auto word = [](const char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  };
  for (size_t i = 0; i + 8 < n; i += 8) diff |= word(a.data() + i) ^ word(b.data() + i);
  diff |= word(a.data() + n - 8) ^ word(b.data() + n - 8);
  return diff == 0;
}

// A classified peer, prepared before the table is touched.
struct PeerQuery {
  NormalName name;
  PeerForm form = PeerForm::unusable;
  uint8_t address[16];
  uint32_t exact_key = 0;  // name_key(name) when form == name
};

void prepare_peer(std::string_view peer, PeerQuery& q) {
  normalise(peer, q.name);
  q.form = classify(q.name, q.address);
  if (q.form == PeerForm::name) q.exact_key = tl::name_key(q.name.view());
}

// The name selector in [begin, end) (sorted by key, then bytes) whose name
// is `name` and key `key`, or nullptr.
const tl::PeerRecord* find_name(const BlockView& block, const tl::PeerRecord* begin, const tl::PeerRecord* end,
                                std::string_view name, uint32_t key) {
  const tl::PeerRecord* lo = begin;
  size_t n = static_cast<size_t>(end - begin);
  // Branch-free lower bound on the key (as fast as the branchy form on the
  // benchmark's lists of eight, and independent of how predictable the
  // queries are).
  while (n > 1) {
    const size_t half = n / 2;
    lo = lo[half - 1].key < key ? lo + half : lo;
    n -= half;
  }
  if (n == 1 && lo->key < key) ++lo;
  for (; lo < end && lo->key == key; ++lo)
    if (same_name(block.selector(*lo), name)) return lo;
  return nullptr;
}

// The longest CIDR in [begin, end) (sorted by prefix length descending,
// then address) that contains `address`, or nullptr.
const tl::PeerRecord* find_cidr(const BlockView& block, const tl::PeerRecord* begin, const tl::PeerRecord* end,
                                const uint8_t* address, size_t size) {
  const tl::PeerRecord* group = begin;
  while (group < end) {
    const uint8_t prefix = group->prefix_len;
    const tl::PeerRecord* lo = group + 1;
    const tl::PeerRecord* hi = end;
    while (lo < hi) {
      const tl::PeerRecord* mid = lo + (hi - lo) / 2;
      if (mid->prefix_len == prefix) lo = mid + 1;
      else hi = mid;
    }
    const tl::PeerRecord* const group_end = lo;

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
      const tl::PeerRecord* mid = lo + (hi - lo) / 2;
      const bool before =
          mid->key != key ? mid->key < key : std::memcmp(block.base() + mid->selector, masked, size) < 0;
      if (before) lo = mid + 1;
      else hi = mid;
    }
    if (lo < group_end && lo->key == key && std::memcmp(block.base() + lo->selector, masked, size) == 0) return lo;
    group = group_end;
  }
  return nullptr;
}

struct PeerMatch {
  const tl::PeerRecord* record = nullptr;
  SelectorKind kind = SelectorKind::exact;
};

PeerMatch match_peer(const BlockView& block, int dir, const PeerQuery& q) {
  const tl::BlockHeader& h = block.header();
  const uint32_t* count = h.kind_count[dir];
  // The four groups of this direction, in SelectorKind order.
  const tl::PeerRecord* bounds[5];
  bounds[0] = block.records() + (dir == 0 ? 0 : block.record_count(0));
  for (int k = 0; k < 4; ++k) bounds[k + 1] = bounds[k] + count[k];
  if (bounds[4] == bounds[0]) return {};
  const auto in_group = [&](SelectorKind k) {
    return std::pair{bounds[static_cast<int>(k)], bounds[static_cast<int>(k) + 1]};
  };

  switch (q.form) {
    case PeerForm::unusable: return {};
    case PeerForm::ipv4: {
      const auto [b, e] = in_group(SelectorKind::cidr_v4);
      return {find_cidr(block, b, e, q.address, 4), SelectorKind::cidr_v4};
    }
    case PeerForm::ipv6: {
      const auto [b, e] = in_group(SelectorKind::cidr_v6);
      return {find_cidr(block, b, e, q.address, 16), SelectorKind::cidr_v6};
    }
    case PeerForm::name: break;
  }
  const std::string_view name = q.name.view();
  if (const auto [b, e] = in_group(SelectorKind::exact); b != e) {
    if (const tl::PeerRecord* r = find_name(block, b, e, name, q.exact_key)) return {r, SelectorKind::exact};
  }
  // Parents from the nearest (longest) to the TLD: the first hit is the
  // longest wildcard. The name itself is not tried: `*.x` is strictly below x.
  if (const auto [b, e] = in_group(SelectorKind::wildcard); b != e) {
    for (size_t dot = 0; dot + 1 < name.size(); ++dot) {
      if (name[dot] != '.') continue;
      const std::string_view parent = name.substr(dot + 1);
      if (const tl::PeerRecord* r = find_name(block, b, e, parent, tl::name_key(parent)))
        return {r, SelectorKind::wildcard};
    }
  }
  return {};
}

// How much of a block the lookup prefetches once it has the block's header:
// the whole of a typical block (a few hundred bytes), not the whole of a
// domain with thousands of peers, whose binary searches touch only a few
// lines. (Measured: prefetching the lines together cut a cold lookup by a
// fifth; naming the block's length in the index slot, to prefetch before
// the header arrives, gained nothing more.)
constexpr uint32_t kPrefetchBytes = 1024;

// The listed domain with exactly this (normalised) name and hash, or an
// empty view.
BlockView find_domain(const DecisionTable::Impl& t, std::string_view name, uint64_t hash) {
  const auto fingerprint = static_cast<uint32_t>(hash >> 32);
  // The validator made sure at least one slot is empty, so the probe ends
  // there; it is also bounded by one lap of the index, so that it ends
  // whatever the bytes say (defence in depth: the image is the table's own
  // memory, but a loop of the hot path must not rest on that alone).
  for (uint64_t i = hash & t.slot_mask, probes = 0; probes <= t.slot_mask; i = (i + 1) & t.slot_mask, ++probes) {
    const tl::IndexSlot& slot = t.slots[i];
    if (slot.block == tl::kEmptySlot) return {};
    if (slot.fingerprint == fingerprint) {
      const BlockView block(t.block_at(slot));
      const uint32_t end = block.size() < kPrefetchBytes ? block.size() : kPrefetchBytes;
      for (uint32_t off = tl::kBlockAlignment; off < end; off += tl::kBlockAlignment)
        __builtin_prefetch(block.base() + off);
      if (same_name(block.name(), name)) return block;
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

// memcpy for a short run of unknown length, in words. GCC expands a
// variable-length memcpy into `rep movsq`, whose start-up cost was half a
// wildcard lookup on the development VM.
void copy_short(char* out, const char* in, size_t n) {
  if (n >= 8) {
    uint64_t w;
    for (size_t i = 0; i + 8 < n; i += 8) {
      std::memcpy(&w, in + i, 8);
      std::memcpy(out + i, &w, 8);
    }
    std::memcpy(&w, in + n - 8, 8);  // the last eight, overlapping
    std::memcpy(out + n - 8, &w, 8);
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = in[i];
  }
}

// The selector as written, composed on the stack and copied into `out`
// once (a short one stays in the string's inline buffer).
void put_selector(const BlockView& block, const tl::PeerRecord& p, SelectorKind kind, std::string& out) {
  const std::string_view bytes = block.selector(p);
  const auto* address = reinterpret_cast<const uint8_t*>(bytes.data());
  char text[2 + tl::kMaxNameLength];
  char* end = text;
  switch (kind) {
    case SelectorKind::exact:
      out.assign(bytes.data(), bytes.size());
      return;
    case SelectorKind::wildcard:
      text[0] = '*';
      text[1] = '.';
      copy_short(text + 2, bytes.data(), bytes.size());
      out.assign(text, 2 + bytes.size());
      return;
    case SelectorKind::cidr_v4: end = put_ipv4(text, address); break;
    case SelectorKind::cidr_v6: end = put_ipv6(text, address); break;
  }
  *end++ = '/';
  end = put_decimal(end, p.prefix_len);
  out.assign(text, static_cast<size_t>(end - text));
}

MatchKind match_kind(SelectorKind kind) {
  switch (kind) {
    case SelectorKind::exact: return MatchKind::exact;
    case SelectorKind::wildcard: return MatchKind::wildcard;
    default: return MatchKind::cidr;
  }
}

}  // namespace


Decision DecisionTable::lookup(Direction direction, std::string_view managed_domain,
                               std::string_view peer) const {
  const Impl& t = *impl_;
  const int dir = direction == Direction::inbound ? 1 : 0;

  // The domain's index slot first, so that its cache miss overlaps the
  // work on the peer, which needs no table memory.
  NormalName domain_name;
  normalise(managed_domain, domain_name);
  const bool named = domain_name.usable && domain_name.size > 0;
  uint64_t hash = 0;
  if (named) {
    hash = tl::name_hash(domain_name.view());
    __builtin_prefetch(t.home_slot(hash));
  }
  PeerQuery query;
  prepare_peer(peer, query);

  BlockView block;
  if (named) block = find_domain(t, domain_name.view(), hash);
  Decision out;
  out.domain_listed = block.base() != nullptr;
  if (!out.domain_listed) block = t.default_domain();

  const PeerMatch m = match_peer(block, dir, query);
  const tl::RuleProvenance* provenance;
  if (m.record != nullptr) {
    out.level = static_cast<Level>(m.record->level);
    out.min_tls = static_cast<MinTls>(m.record->min_tls);
    out.match = match_kind(m.kind);
    provenance = &block.peer_provenance(static_cast<uint64_t>(m.record - block.records()));
    put_selector(block, *m.record, m.kind, out.selector);
  } else {
    const tl::BlockHeader& h = block.header();
    out.level = static_cast<Level>(h.level[dir]);
    out.min_tls = static_cast<MinTls>(h.min_tls[dir]);
    out.match = out.domain_listed ? MatchKind::default_peer : MatchKind::default_domain;
    provenance = &block.provenance().default_peer[dir];
  }
  out.origin = to_ref(provenance->origin);
  out.level_from = to_ref(provenance->level_from);
  out.min_tls_from = to_ref(provenance->min_tls_from);
  return out;
}

}  // namespace tlsp
