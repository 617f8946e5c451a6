// table_layout.h — the on-disk structures of a decision table file (format
// version 2) and the few definitions the writer and the loader must agree
// on: the name hash, the canonical peer order, the domain block layout, the
// checksum and what counts as a stored name. docs/decision-table.md is the
// prose form of this file; change the two together, and bump
// kFormatVersion for any change an older reader would misread.
//
// Every structure is read straight out of the mapped file, so each one is
// little-endian, has only naturally aligned fields, has no implicit padding
// (checked below with has_unique_object_representations, which also makes
// the writer's memcpy of a zero-initialised record deterministic) and sits
// at an offset that is a multiple of its alignment.
//
// Version 2 is laid out for lookup locality: everything one lookup reads
// for one managed domain (its default peers, name, peer records, selector
// bytes and provenance) is one contiguous, cache-line aligned "domain
// block", and the hash index slot points straight at it.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "tlsp/decision_table.h"

// The whole of xxHash inline: names are short, and a call into the shared
// library costs as much as hashing them (it is most of a lookup's hashing
// and a tenth of a large table's load).
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace tlsp::table_layout {

static_assert(std::endian::native == std::endian::little,
              "the decision table is read in place and is little-endian");

// PNG-style: the high-bit byte catches 7-bit transports, CR LF catches
// newline conversion in either direction, and 0x1A stops a DOS `type`.
inline constexpr std::array<char, 8> kMagic = {'\x89', 'T', 'L', 'S', 'P', '\r', '\n', '\x1a'};
inline constexpr uint32_t kFormatVersion = 2;
// Sections and domain blocks start on a cache line: a block's first line
// then holds its header and (usually) its whole name.
inline constexpr uint64_t kSectionAlignment = 64;
inline constexpr uint64_t kBlockAlignment = 64;
// The longest domain name in text form (RFC 1035 255 octets on the wire).
// Longer stored names are refused; longer queries cannot match a name.
inline constexpr size_t kMaxNameLength = 253;
// An empty slot of the domain hash index.
inline constexpr uint32_t kEmptySlot = 0xFFFFFFFFu;

// A byte range of the string pool (policy name and version, source paths).
// Strings are not NUL-terminated.
struct StrRef {
  uint32_t offset;
  uint32_t length;
};

struct SourceRecord {
  uint32_t file;  // index into the source table, or kBuiltinFile
  uint32_t line;
  uint32_t column;
};

enum class SectionId : uint32_t {
  strings = 1,
  sources = 2,
  domain_index = 3,
  domain_blocks = 4,
};
inline constexpr uint32_t kSectionCount = 4;

struct SectionEntry {
  uint32_t id;  // SectionId; entry i holds section i + 1
  uint32_t reserved;
  uint64_t offset;  // from the start of the file; multiple of kSectionAlignment
  uint64_t size;    // bytes used, without the padding to the next section
};

struct FileHeader {
  char magic[8];
  uint32_t format_version;
  uint32_t header_size;  // sizeof(FileHeader)
  uint64_t file_size;
  uint8_t checksum[16];  // XXH3-128 of the file with these 16 bytes zero
  StrRef policy_name;
  StrRef policy_version;
  uint8_t sources_sha256[32];
  uint32_t source_count;
  uint32_t domain_count;  // listed domains; the block section holds one more
  uint32_t peer_count;    // peer records in all blocks
  uint32_t index_slot_count;  // power of two >= 2 * domain_count, >= 2
  uint32_t section_count;     // kSectionCount
  uint32_t reserved;
  SectionEntry sections[kSectionCount];
};
inline constexpr size_t kChecksumOffset = 24;
inline constexpr size_t kChecksumSize = 16;

struct SourceFileRecord {
  StrRef path;
  uint8_t sha256[32];
};

// A listed domain's place in the hash index. `block` is the domain block's
// offset in the block section divided by kBlockAlignment, so the lookup
// goes from the slot straight to the block.
struct IndexSlot {
  uint32_t fingerprint;  // name_hash(name) >> 32; 0 in an empty slot
  uint32_t block;        // or kEmptySlot
};

// ------------------------------------------------------------ domain block
//
// One block per domain, the default domain's first, then the listed
// domains sorted by name; each starts at a multiple of kBlockAlignment in
// the block section and they tile it. Inside a block, at offsets from its
// start:
//
//   0                  BlockHeader (48 bytes)
//   48                 name bytes (name_length), zero padding to a multiple of 8
//   records_offset()   PeerRecord[n]: outbound then inbound, each direction
//                      grouped by SelectorKind in enum order (kind_count)
//   records + 12 n     selector bytes, one run per record, in record order
//   provenance         (multiple of 4, after zero padding) BlockProvenance,
//                      then PeerProvenance[n] in record order
//   ...                zero padding up to `size` (a multiple of 64)
//
// The lookup reads the header, the name, the records and selector bytes of
// one direction, and one provenance entry: all inside this block, which it
// prefetches whole as soon as the index slot names it.
struct BlockHeader {
  uint32_t size;        // bytes of the block, padding included
  uint32_t provenance;  // offset of BlockProvenance in the block
  uint8_t name_length;  // 0 for the default domain
  uint8_t reserved;
  uint8_t level[2];     // default peer, by Direction
  uint8_t min_tls[2];   // default peer, by Direction
  uint16_t reserved2;
  uint32_t kind_count[2][4];  // [Direction][SelectorKind]
};

// The hot part of a peer selector; its kind is its group's. Lookups compare
// `key` (an integer) and read the selector bytes only when the keys are
// equal.
struct PeerRecord {
  uint32_t key;       // names: name_key(); CIDR: address_key()
  uint32_t selector;  // offset of the selector bytes in the block
  uint8_t length;     // of the selector bytes: the name, or 4 / 16 address bytes
  uint8_t level;      // Level
  uint8_t min_tls;    // MinTls
  uint8_t prefix_len;  // CIDR only; 0 for names
};

struct RuleProvenance {
  SourceRecord origin;
  SourceRecord level_from;
  SourceRecord min_tls_from;
};
using PeerProvenance = RuleProvenance;

struct BlockProvenance {
  SourceRecord origin;             // the `domain` block
  RuleProvenance default_peer[2];  // by Direction
};

inline constexpr uint64_t kBlockHeaderSize = 48;

template <typename T>
inline constexpr bool kPlainRecord =
    std::is_trivially_copyable_v<T> && std::is_standard_layout_v<T> &&
    std::has_unique_object_representations_v<T>;
static_assert(kPlainRecord<FileHeader> && sizeof(FileHeader) == 208);
static_assert(offsetof(FileHeader, checksum) == kChecksumOffset);
static_assert(offsetof(FileHeader, policy_name) == 40);
static_assert(offsetof(FileHeader, sources_sha256) == 56);
static_assert(offsetof(FileHeader, source_count) == 88);
static_assert(offsetof(FileHeader, sections) == 112);
static_assert(kPlainRecord<SectionEntry> && sizeof(SectionEntry) == 24);
static_assert(kPlainRecord<SourceFileRecord> && sizeof(SourceFileRecord) == 40);
static_assert(kPlainRecord<IndexSlot> && sizeof(IndexSlot) == 8);
static_assert(kPlainRecord<BlockHeader> && sizeof(BlockHeader) == kBlockHeaderSize);
static_assert(offsetof(BlockHeader, kind_count) == 16);
static_assert(kPlainRecord<PeerRecord> && sizeof(PeerRecord) == 12 && alignof(PeerRecord) == 4);
static_assert(kPlainRecord<RuleProvenance> && sizeof(RuleProvenance) == 36 && alignof(RuleProvenance) == 4);
static_assert(kPlainRecord<BlockProvenance> && sizeof(BlockProvenance) == 84);

template <uint64_t A>
constexpr uint64_t align_up(uint64_t n) {
  static_assert(std::has_single_bit(A));
  return (n + A - 1) & ~(A - 1);
}

// Where a block's peer records start, for a name of this length.
constexpr uint64_t records_offset(uint64_t name_length) { return align_up<8>(kBlockHeaderSize + name_length); }
// Where a block's provenance starts, given where its selector bytes end.
constexpr uint64_t provenance_offset(uint64_t selectors_end) { return align_up<4>(selectors_end); }
// The size of a block whose provenance starts at `provenance` and which
// has n peer records.
constexpr uint64_t block_size(uint64_t provenance, uint64_t n) {
  return align_up<kBlockAlignment>(provenance + sizeof(BlockProvenance) + n * sizeof(PeerProvenance));
}

// XXH3_64bits(name, seed 0): the index uses the low bits for the home slot
// and the high 32 as the fingerprint; peer names are keyed by the high 32.
inline uint64_t name_hash(std::string_view name) { return XXH3_64bits(name.data(), name.size()); }
inline uint32_t name_key(std::string_view name) {
  return static_cast<uint32_t>(name_hash(name) >> 32);
}
// The first four address bytes read big-endian, so integer order on the key
// agrees with byte order on the address.
inline uint32_t address_key(const uint8_t* address) {
  return (uint32_t{address[0]} << 24) | (uint32_t{address[1]} << 16) |
         (uint32_t{address[2]} << 8) | uint32_t{address[3]};
}
inline size_t address_size(SelectorKind kind) { return kind == SelectorKind::cidr_v4 ? 4 : 16; }
inline unsigned max_prefix(SelectorKind kind) { return kind == SelectorKind::cidr_v4 ? 32 : 128; }

// A stored (normalised) domain or peer name: 1..253 bytes, no ASCII upper
// case, no trailing dot. The lookup lower-cases and strips the dot from
// its query, so a stored name outside this form could never match.
bool is_stored_name(std::string_view name);

// True when the address has no bits set beyond prefix_len.
bool host_bits_clear(const uint8_t* address, size_t size, unsigned prefix_len);

// The sort key a peer record stores: name_key(name) for names,
// address_key(address) for CIDRs.
uint32_t peer_key(const PeerEntry& peer);

// The canonical order of peers inside one direction: by kind; names by
// (name_key, bytes); CIDRs by prefix length descending, then address. The
// lookup's binary searches rely on exactly this order. a_key and b_key are
// peer_key() of each, passed in so a sort hashes each name once.
bool peer_precedes(const PeerEntry& a, uint32_t a_key, const PeerEntry& b, uint32_t b_key);

// XXH3-128 of `file` with the checksum field read as zeros, in XXH3's
// canonical (big-endian) byte form. `file` must hold at least the header.
std::array<uint8_t, 16> table_checksum(std::string_view file) noexcept;

}  // namespace tlsp::table_layout
