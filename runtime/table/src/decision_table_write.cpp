// Turning a TableContent into table bytes (docs/decision-table.md) and
// writing them to disk atomically.
//
// The writer is the only producer of the format, so it refuses content that
// breaks the TableContent contract (std::invalid_argument) instead of
// writing a file the loader would refuse later. Determinism comes from the
// canonical order: everything after sorting (string interning, block
// layout, index insertion, section layout) depends only on it.
//
// The content can hold a million peers, so encode_table() does not copy it
// to sort it: it sorts 16-byte handles (the peer's key and a pointer to it)
// and walks the content through them; and it writes every section straight
// into the final file image.
#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "table_layout.h"
#include "tlsp/base/address.h"
#include "tlsp/base/atomic_file.h"
#include "tlsp/decision_table.h"

namespace tlsp {
namespace tl = table_layout;

namespace {

// ------------------------------------------------------- canonical order

struct SortedPeer {
  uint32_t key;  // tl::peer_key(*entry), computed once per peer
  const PeerEntry* entry;
};

void sort_handles(std::vector<SortedPeer>::iterator begin, std::vector<SortedPeer>::iterator end) {
  std::sort(begin, end, [](const SortedPeer& a, const SortedPeer& b) {
    return tl::peer_precedes(*a.entry, a.key, *b.entry, b.key);
  });
}

void sort_peers(std::vector<PeerEntry>& peers) {
  std::vector<SortedPeer> handles;
  handles.reserve(peers.size());
  for (const PeerEntry& p : peers) handles.push_back({tl::peer_key(p), &p});
  sort_handles(handles.begin(), handles.end());
  std::vector<PeerEntry> sorted;
  sorted.reserve(peers.size());
  for (const SortedPeer& h : handles) sorted.push_back(std::move(peers[static_cast<size_t>(h.entry - peers.data())]));
  peers = std::move(sorted);
}

// The content in record order without moving it: listed domains by name,
// then the default domain; for each, outbound then inbound, each list's
// peers in canonical order. `peers` is every list concatenated, so list j
// is peers[list_begin[j], list_begin[j + 1]).
struct RecordOrder {
  std::vector<const DomainRules*> domains;
  std::vector<SortedPeer> peers;
  std::vector<size_t> list_begin;

  explicit RecordOrder(const TableContent& c) {
    domains.reserve(c.domains.size() + 1);
    for (const DomainRules& d : c.domains) domains.push_back(&d);
    std::sort(domains.begin(), domains.end(),
              [](const DomainRules* a, const DomainRules* b) { return a->name < b->name; });
    domains.push_back(&c.default_domain);
    size_t total = 0;
    for (const DomainRules* d : domains)
      for (const DirectionRules& dir : d->directions) total += dir.peers.size();
    peers.reserve(total);
    list_begin.reserve(2 * domains.size() + 1);
    for (const DomainRules* d : domains)
      for (const DirectionRules& dir : d->directions) {
        list_begin.push_back(peers.size());
        for (const PeerEntry& p : dir.peers) peers.push_back({tl::peer_key(p), &p});
        sort_handles(peers.begin() + static_cast<ptrdiff_t>(list_begin.back()), peers.end());
      }
    list_begin.push_back(peers.size());
  }

  // The sorted peers of domains[domain], direction dir.
  std::pair<const SortedPeer*, const SortedPeer*> list(size_t domain, int dir) const {
    const size_t j = 2 * domain + static_cast<size_t>(dir);
    return {peers.data() + list_begin[j], peers.data() + list_begin[j + 1]};
  }
};

// ------------------------------------------------------ content checking

[[noreturn]] void reject(const std::string& what) {
  throw std::invalid_argument("decision table content: " + what);
}

class ContentChecker {
 public:
  ContentChecker(const TableContent& c, const RecordOrder& order) : content_(c), order_(order) {}

  // In record order, so duplicates are neighbours.
  void check() const {
    if (!content_.default_domain.name.empty()) reject("the default domain has a name");
    check_count(content_.sources.size(), "source files");
    check_count(content_.domains.size(), "domains");
    check_count(order_.peers.size(), "peer entries");
    const size_t listed = order_.domains.size() - 1;
    for (size_t i = 0; i <= listed; ++i) {
      const DomainRules& d = *order_.domains[i];
      const std::string where = i == listed ? "the default domain" : "domain `" + d.name + "`";
      if (i < listed) {
        if (!tl::is_stored_name(d.name)) reject(where + ": not a normalised domain name");
        if (i > 0 && order_.domains[i - 1]->name == d.name) reject("duplicate " + where);
      }
      check_ref(d.origin, [&] { return where; });
      for (int dir = 0; dir < 2; ++dir) check_direction(d.directions[dir], order_.list(i, dir), where);
    }
  }

 private:
  static void check_count(size_t n, const char* what) {
    if (n >= tl::kEmptySlot) reject(std::string("too many ") + what);
  }

  // `where` is a callable naming the entry; it runs only to build a
  // message, never for the million entries that are fine.
  template <typename Where>
  void check_ref(const SourceRef& ref, const Where& where) const {
    if (!ref.builtin() && ref.file >= content_.sources.size())
      reject(where() + ": source file " + std::to_string(ref.file) + " does not exist");
  }

  template <typename Where>
  void check_rule(const Rule& r, const Where& where) const {
    if (static_cast<int>(r.level) >= kLevelCount) reject(where() + ": invalid level");
    if (static_cast<int>(r.min_tls) >= kMinTlsCount) reject(where() + ": invalid min_tls");
    check_ref(r.origin, where);
    check_ref(r.level_from, where);
    check_ref(r.min_tls_from, where);
  }

  void check_direction(const DirectionRules& dir, std::pair<const SortedPeer*, const SortedPeer*> sorted,
                       const std::string& where) const {
    check_rule(dir.default_peer, [&] { return where + " default peer"; });
    for (const SortedPeer* h = sorted.first; h != sorted.second; ++h) {
      const PeerEntry& p = *h->entry;
      const auto what = [&] { return where + " peer `" + selector_text(p) + "`"; };
      check_selector(p, what);
      check_rule(p.rule, what);
      if (h != sorted.first && same_selector(*h[-1].entry, p))
        reject(where + ": duplicate peer `" + selector_text(p) + "`");
    }
  }

  static bool same_selector(const PeerEntry& a, const PeerEntry& b) {
    return a.kind == b.kind && a.name == b.name && a.address == b.address && a.prefix_len == b.prefix_len;
  }

  template <typename What>
  static void check_selector(const PeerEntry& p, const What& what) {
    static constexpr std::array<uint8_t, 16> kZero{};
    switch (p.kind) {
      case SelectorKind::exact:
      case SelectorKind::wildcard:
        if (!tl::is_stored_name(p.name)) reject(what() + ": not a normalised domain name");
        // Unused fields must be zero or decode() could not give them back.
        if (p.address != kZero || p.prefix_len != 0) reject(what() + ": a name selector with an address");
        return;
      case SelectorKind::cidr_v4:
      case SelectorKind::cidr_v6: {
        const size_t size = tl::address_size(p.kind);
        if (!p.name.empty()) reject(what() + ": a CIDR selector with a name");
        if (p.prefix_len > tl::max_prefix(p.kind)) reject(what() + ": prefix length too long");
        if (!std::all_of(p.address.begin() + static_cast<ptrdiff_t>(size), p.address.end(),
                         [](uint8_t b) { return b == 0; }))
          reject(what() + ": bytes beyond the IPv4 address are set");
        if (!tl::host_bits_clear(p.address.data(), size, p.prefix_len)) reject(what() + ": host bits are set");
        return;
      }
    }
    reject(what() + ": invalid selector kind");
  }

  const TableContent& content_;
  const RecordOrder& order_;
};

// ------------------------------------------------------------- encoding

// The string pool of the header and the source table (domain and peer
// names live in their domain blocks). Equal strings share one copy;
// insertion order, and so every offset, is the order the encoder asks in.
// Open addressing over the pool's own bytes: there can be many source files.
class StringPool {
 public:
  explicit StringPool(size_t expected_strings)
      : slots_(std::bit_ceil(std::max<size_t>(2 * expected_strings, 16))) {}

  tl::StrRef intern(std::string_view s) {
    if (s.empty()) return {0, 0};
    const uint64_t h = tl::name_hash(s);
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& slot = slots_[i];
      if (slot.length == 0) {  // empty: stored strings are never empty
        if (bytes_.size() + s.size() > UINT32_MAX) reject("the string pool exceeds 4 GiB");
        const tl::StrRef ref{static_cast<uint32_t>(bytes_.size()), static_cast<uint32_t>(s.size())};
        bytes_.append(s);
        slot = {h, ref.offset, ref.length};
        if (++used_ * 2 > slots_.size()) grow();
        return ref;
      }
      if (slot.hash == h && slot.length == s.size() &&
          std::memcmp(bytes_.data() + slot.offset, s.data(), s.size()) == 0)
        return {slot.offset, slot.length};
    }
  }
  const std::string& bytes() const { return bytes_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = 0;
    uint32_t length = 0;
  };

  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    const size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.length == 0) continue;
      size_t i = s.hash & mask;
      while (slots_[i].length != 0) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }

  std::string bytes_;
  std::vector<Slot> slots_;
  size_t used_ = 0;
};

tl::SourceRecord source_record(const SourceRef& r) { return {r.file, r.line, r.column}; }
tl::RuleProvenance rule_provenance(const Rule& r) {
  return {source_record(r.origin), source_record(r.level_from), source_record(r.min_tls_from)};
}

bool is_name(SelectorKind kind) { return kind == SelectorKind::exact || kind == SelectorKind::wildcard; }

// The selector bytes a peer record points at: the name, or the address.
std::string_view selector_bytes(const PeerEntry& p) {
  if (is_name(p.kind)) return p.name;
  return {reinterpret_cast<const char*>(p.address.data()), tl::address_size(p.kind)};
}

template <typename T>
void put(char* at, const T& record) {
  static_assert(tl::kPlainRecord<T>);
  std::memcpy(at, &record, sizeof record);
}

// Lays the file out in one pass over the canonical order (block sizes, so
// every offset is known), then writes every section straight into the
// zero-filled file: no section is built apart and copied, which keeps the
// peak memory of a large compile at about one file.
class TableEncoder {
 public:
  TableEncoder(const TableContent& content, const RecordOrder& order)
      : content_(content), order_(order), pool_(content.sources.size() + 2) {}

  std::string encode() {
    tl::FileHeader header{};
    std::memcpy(header.magic, tl::kMagic.data(), sizeof header.magic);
    header.format_version = tl::kFormatVersion;
    header.header_size = sizeof(tl::FileHeader);
    header.policy_name = pool_.intern(content_.policy_name);
    header.policy_version = pool_.intern(content_.policy_version);
    std::memcpy(header.sources_sha256, content_.sources_sha256.data(), 32);
    std::vector<tl::SourceFileRecord> sources;
    sources.reserve(content_.sources.size());
    for (const SourceFile& f : content_.sources) {
      tl::SourceFileRecord rec{};
      rec.path = pool_.intern(f.path);
      std::memcpy(rec.sha256, f.sha256.data(), 32);
      sources.push_back(rec);
    }

    const size_t listed = order_.domains.size() - 1;
    const uint64_t slot_count = std::bit_ceil(std::max<uint64_t>(2 * uint64_t{listed}, 2));
    const uint64_t blocks_size = lay_out_blocks();

    header.source_count = static_cast<uint32_t>(sources.size());
    header.domain_count = static_cast<uint32_t>(listed);
    header.peer_count = static_cast<uint32_t>(order_.peers.size());
    header.index_slot_count = static_cast<uint32_t>(slot_count);
    header.section_count = tl::kSectionCount;
    const uint64_t sizes[tl::kSectionCount] = {pool_.bytes().size(), sources.size() * sizeof(tl::SourceFileRecord),
                                               slot_count * sizeof(tl::IndexSlot), blocks_size};
    uint64_t offset = sizeof(tl::FileHeader);
    for (uint32_t i = 0; i < tl::kSectionCount; ++i) {
      offset = tl::align_up<tl::kSectionAlignment>(offset);
      header.sections[i] = {i + 1, 0, offset, sizes[i]};
      offset += sizes[i];
    }
    header.file_size = tl::align_up<tl::kSectionAlignment>(offset);

    std::string file(header.file_size, '\0');
    char* const base = file.data();
    const auto at = [&](tl::SectionId id) { return base + header.sections[static_cast<int>(id) - 1].offset; };
    put(base, header);
    std::memcpy(at(tl::SectionId::strings), pool_.bytes().data(), pool_.bytes().size());
    if (!sources.empty())
      std::memcpy(at(tl::SectionId::sources), sources.data(), sources.size() * sizeof(tl::SourceFileRecord));
    write_index(reinterpret_cast<tl::IndexSlot*>(at(tl::SectionId::domain_index)), slot_count);
    char* const blocks = at(tl::SectionId::domain_blocks);
    for (size_t b = 0; b < layout_.size(); ++b) write_block(blocks + layout_[b].offset, b);

    const auto checksum = tl::table_checksum(file);
    std::memcpy(base + tl::kChecksumOffset, checksum.data(), checksum.size());
    return file;
  }

 private:
  struct BlockLayout {
    uint64_t offset;      // in the block section
    uint32_t provenance;  // in the block
    uint32_t size;
  };

  // Block b is the default domain for b == 0, else listed domain b - 1
  // (order_.domains holds the listed domains, then the default).
  size_t domain_of_block(size_t b) const { return b == 0 ? order_.domains.size() - 1 : b - 1; }

  uint64_t lay_out_blocks() {
    layout_.reserve(order_.domains.size());
    uint64_t offset = 0;
    for (size_t b = 0; b < order_.domains.size(); ++b) {
      const size_t d = domain_of_block(b);
      uint64_t end = tl::records_offset(order_.domains[d]->name.size());
      uint64_t n = 0;
      for (int dir = 0; dir < 2; ++dir) {
        const auto [first, last] = order_.list(d, dir);
        n += static_cast<uint64_t>(last - first);
        for (const SortedPeer* h = first; h != last; ++h)
          end += sizeof(tl::PeerRecord) + selector_bytes(*h->entry).size();
      }
      const uint64_t provenance = tl::provenance_offset(end);
      const uint64_t size = tl::block_size(provenance, n);
      if (size > UINT32_MAX)
        reject((b == 0 ? std::string("the default domain") : "domain `" + order_.domains[d]->name + "`") +
               " has too many peers for one block");
      layout_.push_back({offset, static_cast<uint32_t>(provenance), static_cast<uint32_t>(size)});
      offset += size;
    }
    // Index slots address blocks in units of kBlockAlignment.
    if (offset / tl::kBlockAlignment >= tl::kEmptySlot) reject("the domain blocks exceed 256 GiB");
    return offset;
  }

  void write_block(char* out, size_t b) const {
    const size_t d = domain_of_block(b);
    const DomainRules& domain = *order_.domains[d];
    const BlockLayout& layout = layout_[b];
    tl::BlockHeader h{};
    h.size = layout.size;
    h.provenance = layout.provenance;
    h.name_length = static_cast<uint8_t>(domain.name.size());
    tl::BlockProvenance provenance{};
    provenance.origin = source_record(domain.origin);
    uint64_t record = tl::records_offset(domain.name.size());
    uint64_t selector = record;
    for (int dir = 0; dir < 2; ++dir) {
      const Rule& def = domain.directions[dir].default_peer;
      h.level[dir] = static_cast<uint8_t>(def.level);
      h.min_tls[dir] = static_cast<uint8_t>(def.min_tls);
      provenance.default_peer[dir] = rule_provenance(def);
      const auto [first, last] = order_.list(d, dir);
      selector += static_cast<uint64_t>(last - first) * sizeof(tl::PeerRecord);
      for (const SortedPeer* p = first; p != last; ++p) ++h.kind_count[dir][static_cast<int>(p->entry->kind)];
    }
    put(out, h);
    std::memcpy(out + tl::kBlockHeaderSize, domain.name.data(), domain.name.size());
    put(out + layout.provenance, provenance);
    char* peer_provenance = out + layout.provenance + sizeof(tl::BlockProvenance);
    for (int dir = 0; dir < 2; ++dir) {
      const auto [first, last] = order_.list(d, dir);
      for (const SortedPeer* p = first; p != last; ++p) {
        const PeerEntry& e = *p->entry;
        const std::string_view bytes = selector_bytes(e);
        tl::PeerRecord r{};
        r.key = p->key;
        r.selector = static_cast<uint32_t>(selector);
        r.length = static_cast<uint8_t>(bytes.size());
        r.level = static_cast<uint8_t>(e.rule.level);
        r.min_tls = static_cast<uint8_t>(e.rule.min_tls);
        r.prefix_len = is_name(e.kind) ? 0 : e.prefix_len;
        put(out + record, r);
        std::memcpy(out + selector, bytes.data(), bytes.size());
        put(peer_provenance, rule_provenance(e.rule));
        record += sizeof r;
        selector += bytes.size();
        peer_provenance += sizeof(tl::PeerProvenance);
      }
    }
  }

  // Linear probing, filled in block order; at least half the slots stay
  // empty so every probe sequence ends.
  void write_index(tl::IndexSlot* slots, uint64_t slot_count) const {
    for (uint64_t s = 0; s < slot_count; ++s) slots[s] = {0, tl::kEmptySlot};
    const uint64_t mask = slot_count - 1;
    for (size_t b = 1; b < layout_.size(); ++b) {
      const uint64_t h = tl::name_hash(order_.domains[domain_of_block(b)]->name);
      uint64_t s = h & mask;
      while (slots[s].block != tl::kEmptySlot) s = (s + 1) & mask;
      slots[s] = {static_cast<uint32_t>(h >> 32), static_cast<uint32_t>(layout_[b].offset / tl::kBlockAlignment)};
    }
  }

  const TableContent& content_;
  const RecordOrder& order_;
  StringPool pool_;
  std::vector<BlockLayout> layout_;
};

}  // namespace

std::string selector_text(const PeerEntry& p) {
  switch (p.kind) {
    case SelectorKind::exact: return p.name;
    case SelectorKind::wildcard: return "*." + p.name;
    case SelectorKind::cidr_v4:
    case SelectorKind::cidr_v6: break;
  }
  base::Cidr cidr;
  cidr.network.v6 = p.kind != SelectorKind::cidr_v4;
  cidr.network.bytes = p.address;
  cidr.prefix_len = p.prefix_len;
  return base::cidr_text(cidr);
}

void canonicalize(TableContent& content) {
  std::sort(content.domains.begin(), content.domains.end(),
            [](const DomainRules& a, const DomainRules& b) { return a.name < b.name; });
  for (DirectionRules& dir : content.default_domain.directions) sort_peers(dir.peers);
  for (DomainRules& d : content.domains)
    for (DirectionRules& dir : d.directions) sort_peers(dir.peers);
}

std::string encode_table(const TableContent& content) {
  const RecordOrder order(content);
  ContentChecker(content, order).check();
  return TableEncoder(content, order).encode();
}

std::string reseal_table_for_testing(std::string bytes) {
  if (bytes.size() < sizeof(tl::FileHeader)) return bytes;
  const auto checksum = tl::table_checksum(bytes);
  std::memcpy(bytes.data() + tl::kChecksumOffset, checksum.data(), checksum.size());
  return bytes;
}

void write_table_file(const std::string& path, const TableContent& content) {
  // 0644: the table is read by other users (the relay) and holds nothing
  // secret. The temporary file, fsync, rename and directory fsync are
  // tlsp/base/atomic_file.h's; its FileError names the step and the path.
  base::write_file_atomically(path, encode_table(content), 0644);
}

}  // namespace tlsp
