// Tests of the decision table (tlsp/decision_table.h, docs/decision-table.md):
// encoding round trips and determinism, lookup precedence checked
// exhaustively against a deliberately naive reference model of SPEC §2,
// and the loader's refusal of every truncated, bit-flipped, foreign or
// structurally damaged file.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "test_support.h"
#include "tlsp/base/address.h"
#include "tlsp/base/atomic_file.h"
#include "tlsp/decision_table.h"

namespace tlsp {
namespace {

namespace fs = std::filesystem;

// ------------------------------------------------------------- builders

SourceRef at(uint32_t file, uint32_t line, uint32_t column = 1) { return {file, line, column}; }

Rule rule(Level level, MinTls min_tls, SourceRef origin, std::optional<SourceRef> level_from = {},
          std::optional<SourceRef> min_tls_from = {}) {
  return {level, min_tls, origin, level_from.value_or(origin), min_tls_from.value_or(origin)};
}

PeerEntry exact(std::string name, Rule r) {
  PeerEntry p;
  p.kind = SelectorKind::exact;
  p.name = std::move(name);
  p.rule = r;
  return p;
}

PeerEntry wildcard(std::string parent, Rule r) {
  PeerEntry p = exact(std::move(parent), r);
  p.kind = SelectorKind::wildcard;
  return p;
}

// "203.0.113.0/24" or "2001:db8::/32"
PeerEntry cidr(const std::string& text, Rule r) {
  PeerEntry p;
  const size_t slash = text.find('/');
  const std::string address = text.substr(0, slash);
  p.prefix_len = static_cast<uint8_t>(std::stoi(text.substr(slash + 1)));
  if (::inet_pton(AF_INET, address.c_str(), p.address.data()) == 1) p.kind = SelectorKind::cidr_v4;
  else if (::inet_pton(AF_INET6, address.c_str(), p.address.data()) == 1) p.kind = SelectorKind::cidr_v6;
  else ADD_FAILURE() << "bad CIDR in test: " << text;
  p.rule = r;
  return p;
}

DomainRules domain(std::string name, SourceRef origin, Rule outbound_default, Rule inbound_default) {
  DomainRules d;
  d.name = std::move(name);
  d.origin = origin;
  d.dir(Direction::outbound).default_peer = outbound_default;
  d.dir(Direction::inbound).default_peer = inbound_default;
  return d;
}

std::array<uint8_t, 32> filled(uint8_t b) {
  std::array<uint8_t, 32> a;
  a.fill(b);
  return a;
}

constexpr SourceRef kBuiltin{};

// A small policy using every selector kind, inherited provenance, and a
// default domain with selectors of its own.
TableContent sample_content() {
  TableContent c;
  c.policy_name = "example-policy";
  c.policy_version = "v42";
  c.sources_sha256 = filled(0xAB);
  c.sources = {{"policies/main.tlsp", filled(0x11)}, {"policies/partners.tlsp", filled(0x22)}};

  c.default_domain = domain("", kBuiltin, rule(Level::opportunistic, MinTls::any, kBuiltin),
                            rule(Level::opportunistic, MinTls::any, kBuiltin));
  c.default_domain.dir(Direction::outbound).peers = {
      exact("global-partner.example", rule(Level::mandatory, MinTls::tls1_2, at(1, 2, 3)))};
  c.default_domain.dir(Direction::inbound).peers = {
      cidr("198.51.100.0/24", rule(Level::mandatory, MinTls::tls1_2, at(1, 4, 3)))};

  DomainRules com = domain("example.com", at(0, 3, 1), rule(Level::mandatory, MinTls::tls1_2, at(0, 4, 3)),
                           rule(Level::opportunistic, MinTls::any, at(0, 20, 3)));
  com.dir(Direction::outbound).peers = {
      exact("partner.example", rule(Level::dane, MinTls::tls1_2, at(0, 7, 5), at(0, 8, 7), at(0, 4, 3))),
      wildcard("bank.example", rule(Level::mandatory, MinTls::tls1_3, at(0, 10, 5))),
      wildcard("eu.bank.example", rule(Level::dane_only, MinTls::tls1_3, at(0, 11, 5))),
      exact("bank.example", rule(Level::mta_sts, MinTls::tls1_2, at(0, 12, 5))),
  };
  com.dir(Direction::inbound).peers = {
      cidr("203.0.113.0/24", rule(Level::mandatory, MinTls::any, at(0, 21, 5))),
      cidr("203.0.113.128/25", rule(Level::mandatory, MinTls::tls1_3, at(0, 22, 5))),
      cidr("2001:db8::/32", rule(Level::mandatory, MinTls::tls1_2, at(0, 23, 5))),
      cidr("2001:db8:1::/48", rule(Level::mandatory, MinTls::tls1_3, at(0, 24, 5))),
      exact("sender.example", rule(Level::mandatory, MinTls::tls1_2, at(0, 25, 5))),
  };
  DomainRules org = domain("example.org", at(0, 30, 1), rule(Level::dane, MinTls::tls1_2, at(0, 31, 3)),
                           rule(Level::mandatory, MinTls::tls1_2, at(0, 32, 3)));
  DomainRules net = domain("mail.example.net", at(1, 1, 1), rule(Level::mta_sts, MinTls::tls1_2, at(1, 6, 3)),
                           rule(Level::opportunistic, MinTls::tls1_2, at(1, 7, 3)));
  net.dir(Direction::outbound).peers = {wildcard("example", rule(Level::mandatory, MinTls::any, at(1, 8, 5)))};
  c.domains = {std::move(org), std::move(com), std::move(net)};
  return c;
}

TableContent canonical(TableContent c) {
  canonicalize(c);
  return c;
}

std::string small_table_for_layout() { return encode_table(sample_content()); }

// ------------------------------------------------- the reference model

// SPEC §2 read as literally as possible: linear scans, no hashing, no
// sorting. The table must agree with it on every query.
std::string lower_strip(std::string s) {
  if (!s.empty() && s.back() == '.') s.pop_back();
  for (char& ch : s)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  return s;
}

bool in_prefix(const uint8_t* address, const PeerEntry& p) {
  for (unsigned bit = 0; bit < p.prefix_len; ++bit) {
    const int shift = 7 - static_cast<int>(bit % 8);
    if (((address[bit / 8] >> shift) & 1) != ((p.address[bit / 8] >> shift) & 1)) return false;
  }
  return true;
}

Decision reference_lookup(const TableContent& c, Direction dir, const std::string& managed_domain,
                          const std::string& peer_text) {
  Decision out;
  const DomainRules* d = &c.default_domain;
  const std::string dn = lower_strip(managed_domain);
  for (const DomainRules& candidate : c.domains)
    if (!dn.empty() && candidate.name == dn) d = &candidate;
  out.domain_listed = d != &c.default_domain;
  const DirectionRules& rules = d->dir(dir);

  std::string peer = lower_strip(peer_text);
  bool literal = false;
  if (peer.size() >= 2 && peer.front() == '[' && peer.back() == ']') {
    peer = peer.substr(1, peer.size() - 2);
    literal = true;
  }
  bool v6_only = false;
  if (peer.rfind("ipv6:", 0) == 0) {
    peer = peer.substr(5);
    literal = v6_only = true;
  }
  // An address is what tlsp/base/address.h reads as one: the lookup's own
  // fast IPv4 parser must agree with it.
  uint8_t address[16] = {};
  std::optional<SelectorKind> family;
  if (const auto a = base::parse_ip_address(peer); a && (a->v6 || !v6_only)) {
    family = a->v6 ? SelectorKind::cidr_v6 : SelectorKind::cidr_v4;
    std::copy(a->bytes.begin(), a->bytes.end(), address);
  }

  const PeerEntry* best = nullptr;
  MatchKind kind = MatchKind::default_peer;
  const auto rank = [](const PeerEntry& p) {
    // Higher wins: exact above any wildcard, longer wildcard, longer prefix.
    if (p.kind == SelectorKind::exact) return 1000;
    if (p.kind == SelectorKind::wildcard) return static_cast<int>(p.name.size());
    return static_cast<int>(p.prefix_len);
  };
  for (const PeerEntry& p : rules.peers) {
    bool matches = false;
    if (family) {
      matches = p.kind == *family && in_prefix(address, p);
    } else if (!literal && !peer.empty() && peer.size() <= 253) {
      if (p.kind == SelectorKind::exact) matches = p.name == peer;
      if (p.kind == SelectorKind::wildcard)
        matches = peer.size() > p.name.size() + 1 && peer.ends_with("." + p.name);
    }
    if (matches && (best == nullptr || rank(p) > rank(*best))) best = &p;
  }
  const Rule* r = &rules.default_peer;
  if (best != nullptr) {
    r = &best->rule;
    kind = best->kind == SelectorKind::exact      ? MatchKind::exact
           : best->kind == SelectorKind::wildcard ? MatchKind::wildcard
                                                  : MatchKind::cidr;
    out.selector = selector_text(*best);
  } else if (!out.domain_listed) {
    kind = MatchKind::default_domain;
  }
  out.match = kind;
  out.level = r->level;
  out.min_tls = r->min_tls;
  out.origin = r->origin;
  out.level_from = r->level_from;
  out.min_tls_from = r->min_tls_from;
  return out;
}

void expect_same(const Decision& got, const Decision& want, const std::string& query) {
  SCOPED_TRACE(query);
  EXPECT_EQ(to_string(got.match), to_string(want.match));
  EXPECT_EQ(got.domain_listed, want.domain_listed);
  EXPECT_EQ(got.selector, want.selector);
  EXPECT_EQ(to_string(got.level), to_string(want.level));
  EXPECT_EQ(to_string(got.min_tls), to_string(want.min_tls));
  EXPECT_EQ(got.origin, want.origin);
  EXPECT_EQ(got.level_from, want.level_from);
  EXPECT_EQ(got.min_tls_from, want.min_tls_from);
}

void expect_agrees_with_reference(const DecisionTable& t, const TableContent& c, Direction dir,
                                  const std::string& dn, const std::string& peer) {
  expect_same(t.lookup(dir, dn, peer), reference_lookup(c, dir, dn, peer),
              std::string(to_string(dir)) + " `" + dn + "` `" + peer + "`");
}

// ------------------------------------------------------------ file system

// Each TempDir here is named tlsp-table-test-XXXXXX; path() as an fs::path.
class TempDir : public tlsp::testing_support::TempDir {
 public:
  TempDir() : tlsp::testing_support::TempDir("tlsp-table-test") {}
  fs::path path() const { return tlsp::testing_support::TempDir::path(); }
};

void write_bytes(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The TableError message of loading `bytes`, or "" if it loads.
std::string load_error(std::string_view bytes) {
  try {
    DecisionTable::from_bytes(bytes);
  } catch (const TableError& e) {
    return e.what();
  }
  return "";
}

// The TableError message of opening `path`, or "" if it opens.
std::string open_error(const std::string& path) {
  try {
    DecisionTable::open(path);
  } catch (const TableError& e) {
    return e.what();
  }
  return "";
}

// Header field offsets (docs/decision-table.md): tests that damage one
// field on purpose need them.
constexpr size_t kVersionOffset = 8;
constexpr size_t kHeaderSizeOffset = 12;
constexpr size_t kIndexSlotCountOffset = 100;
constexpr size_t kSectionsOffset = 112;
constexpr size_t kSectionEntrySize = 24;

template <typename T>
T read_field(const std::string& bytes, size_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof v);
  return v;
}
template <typename T>
void write_field(std::string& bytes, size_t offset, T v) {
  std::memcpy(bytes.data() + offset, &v, sizeof v);
}
uint64_t section_offset(const std::string& bytes, int id) {
  return read_field<uint64_t>(bytes, kSectionsOffset + (id - 1) * kSectionEntrySize + 8);
}
uint64_t section_size(const std::string& bytes, int id) {
  return read_field<uint64_t>(bytes, kSectionsOffset + (id - 1) * kSectionEntrySize + 16);
}

// Format version 2 (docs/decision-table.md): sections 3 (domain index) and
// 4 (domain blocks), and the parts of a domain block the tests look at.
constexpr int kIndexSection = 3;
constexpr int kBlockSection = 4;
constexpr size_t kDomainCountOffset = 92;
constexpr size_t kBlockHeaderSize = 48;
constexpr size_t kPeerRecordSize = 12;

struct BlockInfo {
  uint64_t offset;  // in the file
  uint32_t size;
  std::string name;
  uint32_t kind_count[2][4];
  uint64_t records;  // file offset of the first peer record
};

// The domain blocks in file order: the default domain's, then the listed
// domains'.
std::vector<BlockInfo> blocks_of(const std::string& bytes) {
  std::vector<BlockInfo> out;
  const uint64_t begin = section_offset(bytes, kBlockSection);
  const uint64_t end = begin + section_size(bytes, kBlockSection);
  for (uint64_t at = begin; at < end;) {
    BlockInfo b;
    b.offset = at;
    b.size = read_field<uint32_t>(bytes, at);
    const uint8_t name_length = read_field<uint8_t>(bytes, at + 8);
    b.name = bytes.substr(at + kBlockHeaderSize, name_length);
    for (int dir = 0; dir < 2; ++dir)
      for (int kind = 0; kind < 4; ++kind)
        b.kind_count[dir][kind] = read_field<uint32_t>(bytes, at + 16 + 16 * dir + 4 * kind);
    b.records = at + ((kBlockHeaderSize + name_length + 7) & ~uint64_t{7});
    out.push_back(b);
    if (b.size == 0) break;
    at += b.size;
  }
  return out;
}

// ================================================================ tests

TEST(DecisionTableEncoding, RoundTripsInCanonicalOrder) {
  const TableContent c = canonical(sample_content());
  const DecisionTable t = DecisionTable::from_bytes(encode_table(c));
  EXPECT_EQ(t.decode(), c);
  EXPECT_EQ(t.policy_name(), "example-policy");
  EXPECT_EQ(t.policy_version(), "v42");
  EXPECT_EQ(t.sources_sha256(), filled(0xAB));
  EXPECT_EQ(t.format_version(), 2u);
  EXPECT_EQ(t.domain_count(), 3u);
  EXPECT_EQ(t.peer_count(), 12u);
  EXPECT_EQ(t.source_count(), 2u);
  EXPECT_EQ(t.source_path(1), "policies/partners.tlsp");
  EXPECT_EQ(t.source_path(2), "");
  EXPECT_EQ(t.describe(at(0, 7, 5)), "policies/main.tlsp:7");
  EXPECT_EQ(t.describe(kBuiltin), "built-in default");
}

// The layout lookups rely on for locality: each domain's data is one
// cache-line aligned block, and each index slot names a block directly.
TEST(DecisionTableEncoding, DomainBlocksAreLaidOutForLocality) {
  const std::string bytes = small_table_for_layout();
  for (int id = 1; id <= 4; ++id) EXPECT_EQ(section_offset(bytes, id) % 64, 0u) << "section " << id;
  const std::vector<BlockInfo> blocks = blocks_of(bytes);
  ASSERT_EQ(blocks.size(), 4u);
  EXPECT_EQ(blocks[0].name, "");  // the default domain first
  EXPECT_EQ(blocks[1].name, "example.com");
  EXPECT_EQ(blocks[2].name, "example.org");
  EXPECT_EQ(blocks[3].name, "mail.example.net");
  uint64_t total = 0;
  for (const BlockInfo& b : blocks) {
    EXPECT_EQ(b.size % 64, 0u);
    total += b.size;
  }
  EXPECT_EQ(total, section_size(bytes, kBlockSection));
  // example.com: 2 exact and 2 wildcard outbound; 1 exact, 2 IPv4 and 2
  // IPv6 inbound; records right after the (padded) name.
  const uint32_t com[2][4] = {{2, 2, 0, 0}, {1, 0, 2, 2}};
  for (int dir = 0; dir < 2; ++dir)
    for (int kind = 0; kind < 4; ++kind) EXPECT_EQ(blocks[1].kind_count[dir][kind], com[dir][kind]);
  EXPECT_EQ(blocks[1].records - blocks[1].offset, 64u);

  // Every listed domain's block is named by exactly one slot, in units of
  // 64 bytes from the start of the block section.
  const uint64_t index = section_offset(bytes, kIndexSection);
  const uint64_t slots = section_size(bytes, kIndexSection) / 8;
  std::multiset<uint64_t> named;
  for (uint64_t i = 0; i < slots; ++i) {
    const uint32_t block = read_field<uint32_t>(bytes, index + 8 * i + 4);
    if (block != 0xFFFFFFFFu) named.insert(section_offset(bytes, kBlockSection) + uint64_t{block} * 64);
  }
  EXPECT_EQ(named, (std::multiset<uint64_t>{blocks[1].offset, blocks[2].offset, blocks[3].offset}));
}

// from_bytes() copies into aligned memory whatever the alignment of its
// argument.
TEST(DecisionTableEncoding, LoadsFromUnalignedBytes) {
  const std::string bytes = small_table_for_layout();
  for (size_t shift = 0; shift < 16; ++shift) {
    const std::string buffer = std::string(shift, 'x') + bytes;
    const DecisionTable t = DecisionTable::from_bytes(std::string_view(buffer).substr(shift));
    EXPECT_EQ(t.lookup(Direction::outbound, "example.com", "partner.example").selector, "partner.example");
    EXPECT_EQ(t.decode(), canonical(sample_content()));
  }
}

TEST(DecisionTableEncoding, CanonicalOrderIsWhatDecodeReturns) {
  TableContent c = sample_content();
  canonicalize(c);
  for (size_t i = 1; i < c.domains.size(); ++i) EXPECT_LT(c.domains[i - 1].name, c.domains[i].name);
  // Idempotent, and the decoded form is already canonical.
  EXPECT_EQ(canonical(c), c);
  EXPECT_EQ(canonical(DecisionTable::from_bytes(encode_table(c)).decode()), c);
}

TEST(DecisionTableEncoding, EmptyPolicyRoundTrips) {
  TableContent c;
  const DecisionTable t = DecisionTable::from_bytes(encode_table(c));
  EXPECT_EQ(t.decode(), c);
  EXPECT_EQ(t.domain_count(), 0u);
  const Decision d = t.lookup(Direction::outbound, "example.com", "peer.example");
  EXPECT_EQ(d.match, MatchKind::default_domain);
  EXPECT_FALSE(d.domain_listed);
}

TEST(DecisionTableEncoding, ShuffledInputGivesIdenticalBytes) {
  const TableContent original = sample_content();
  const std::string expected = encode_table(original);
  std::mt19937 rng(20240521);
  for (int round = 0; round < 50; ++round) {
    TableContent c = original;
    std::shuffle(c.domains.begin(), c.domains.end(), rng);
    for (DomainRules* d : {&c.default_domain, &c.domains[0], &c.domains[1], &c.domains[2]})
      for (DirectionRules& dir : d->directions) std::shuffle(dir.peers.begin(), dir.peers.end(), rng);
    EXPECT_EQ(encode_table(c), expected) << "round " << round;
    EXPECT_EQ(canonical(c), canonical(original));
    EXPECT_EQ(table_to_json(c), table_to_json(original));
  }
}

TEST(DecisionTableEncoding, WritesAtomicallyAndOpens) {
  TempDir dir;
  const std::string path = dir.file("policy.tlspdt");
  const TableContent c = canonical(sample_content());
  write_table_file(path, c);
  write_table_file(path, c);  // replacing an existing table
  EXPECT_EQ(read_bytes(path), encode_table(c));
  const DecisionTable t = DecisionTable::open(path);
  EXPECT_EQ(t.decode(), c);
  // Nothing left behind but the table itself.
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1u);
  EXPECT_THROW(write_table_file(dir.file("missing/policy.tlspdt"), c), std::runtime_error);
}

// The writer is tlsp/base/atomic_file.h's: a write that fails half-way
// (the file size limit, which holds for root too) leaves the old table
// whole and no temporary file, and says which table it could not write.
TEST(DecisionTableEncoding, AFailedWriteLeavesTheOldTable) {
  TempDir dir;
  const std::string path = dir.file("policy.tlspdt");
  const TableContent old_content = canonical(sample_content());
  write_table_file(path, old_content);
  TableContent new_content = old_content;
  new_content.domains.pop_back();
  try {
    const testing_support::FileSizeLimit limit(0);
    write_table_file(path, new_content);
    ADD_FAILURE() << "no error";
  } catch (const base::FileError& e) {
    EXPECT_EQ(e.error(), EFBIG);
    EXPECT_EQ(std::string(e.what()), "cannot write `" + path + "`: " + std::strerror(EFBIG));
  }
  EXPECT_EQ(DecisionTable::open(path).decode(), old_content);
  EXPECT_EQ(testing_support::directory_names(dir.path()), std::vector<std::string>{"policy.tlspdt"});
  // A file where the directory should be: the message names the table.
  const std::string under_file = path + "/policy.tlspdt";
  try {
    write_table_file(under_file, new_content);
    ADD_FAILURE() << "no error";
  } catch (const base::FileError& e) {
    EXPECT_EQ(std::string(e.what()), "cannot create a temporary file for `" + under_file + "`: " + std::strerror(ENOTDIR));
  }
}

// selector_text() is the one spelling of a selector (the compiler's and
// the writer's copies agreed on every valid kind; for a kind out of range
// the writer's, which shows the bytes it refuses, won over the compiler's
// empty text).
TEST(DecisionTableEncoding, SelectorTextIsThePolicySpelling) {
  const Rule r = rule(Level::mandatory, MinTls::any, at(0, 1));
  EXPECT_EQ(selector_text(exact("partner.example", r)), "partner.example");
  EXPECT_EQ(selector_text(wildcard("bank.example", r)), "*.bank.example");
  EXPECT_EQ(selector_text(cidr("203.0.113.0/24", r)), "203.0.113.0/24");
  EXPECT_EQ(selector_text(cidr("0.0.0.0/0", r)), "0.0.0.0/0");
  EXPECT_EQ(selector_text(cidr("255.255.255.255/32", r)), "255.255.255.255/32");
  EXPECT_EQ(selector_text(cidr("2001:0DB8:0:0::/32", r)), "2001:db8::/32");
  EXPECT_EQ(selector_text(cidr("::/0", r)), "::/0");
  EXPECT_EQ(selector_text(cidr("::ffff:192.0.2.0/120", r)), "::ffff:192.0.2.0/120");
  PeerEntry odd = cidr("2001:db8::/32", r);
  odd.kind = static_cast<SelectorKind>(7);
  EXPECT_EQ(selector_text(odd), "2001:db8::/32");
  TableContent c = canonical(sample_content());
  c.domains.front().dir(Direction::inbound).peers.push_back(odd);
  try {
    encode_table(c);
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("peer `2001:db8::/32`: invalid selector kind"), std::string::npos) << e.what();
  }
}

TEST(DecisionTableEncoding, RefusesContentThatBreaksTheContract) {
  const auto refused = [](const std::string& what, auto&& damage) {
    TableContent c = sample_content();
    damage(c);
    EXPECT_THROW(encode_table(c), std::invalid_argument) << what;
  };
  const Rule r = rule(Level::mandatory, MinTls::any, kBuiltin);
  const auto com_out = [](TableContent& c) -> DirectionRules& { return c.domains[1].dir(Direction::outbound); };
  refused("upper case domain", [](TableContent& c) { c.domains[0].name = "Example.org"; });
  refused("trailing dot", [](TableContent& c) { c.domains[0].name = "example.org."; });
  refused("empty domain name", [](TableContent& c) { c.domains[0].name = ""; });
  refused("duplicate domain", [](TableContent& c) { c.domains[0].name = c.domains[1].name; });
  refused("named default domain", [](TableContent& c) { c.default_domain.name = "x.example"; });
  refused("name too long", [](TableContent& c) { c.domains[0].name = std::string(250, 'a') + ".com"; });
  refused("duplicate selector", [&](TableContent& c) { com_out(c).peers.push_back(exact("partner.example", r)); });
  refused("upper case peer", [&](TableContent& c) { com_out(c).peers.push_back(exact("Upper.example", r)); });
  refused("empty wildcard", [&](TableContent& c) { com_out(c).peers.push_back(wildcard("", r)); });
  refused("host bits", [&](TableContent& c) { com_out(c).peers.push_back(cidr("10.0.0.1/8", r)); });
  refused("v4 prefix", [&](TableContent& c) { com_out(c).peers.push_back(cidr("10.0.0.0/33", r)); });
  refused("v6 prefix", [&](TableContent& c) { com_out(c).peers.push_back(cidr("2001:db8::/129", r)); });
  refused("missing file", [&](TableContent& c) { com_out(c).peers.push_back(exact("x.example", rule(Level::dane, MinTls::any, at(9, 1)))); });
  refused("bad level", [&](TableContent& c) { com_out(c).default_peer.level = static_cast<Level>(9); });
  refused("name with address", [&](TableContent& c) {
    PeerEntry p = exact("y.example", r);
    p.prefix_len = 3;
    com_out(c).peers.push_back(p);
  });
}

// ------------------------------------------------------------ lookups

TEST(DecisionTableLookup, SampleDecisionsSpelledOut) {
  const DecisionTable t = DecisionTable::from_bytes(encode_table(sample_content()));
  Decision d = t.lookup(Direction::outbound, "example.com", "partner.example");
  EXPECT_EQ(d.match, MatchKind::exact);
  EXPECT_TRUE(d.domain_listed);
  EXPECT_EQ(d.level, Level::dane);
  EXPECT_EQ(d.min_tls, MinTls::tls1_2);
  EXPECT_EQ(d.selector, "partner.example");
  EXPECT_EQ(d.origin, at(0, 7, 5));
  EXPECT_EQ(d.level_from, at(0, 8, 7));
  EXPECT_EQ(d.min_tls_from, at(0, 4, 3));
  EXPECT_EQ(t.describe(d.level_from), "policies/main.tlsp:8");

  d = t.lookup(Direction::outbound, "example.com", "mx1.paris.eu.bank.example");
  EXPECT_EQ(d.match, MatchKind::wildcard);
  EXPECT_EQ(d.selector, "*.eu.bank.example");
  EXPECT_EQ(d.level, Level::dane_only);

  d = t.lookup(Direction::outbound, "example.com", "bank.example");
  EXPECT_EQ(d.match, MatchKind::exact);
  EXPECT_EQ(d.level, Level::mta_sts);

  d = t.lookup(Direction::outbound, "example.com", "eu.bank.example");
  EXPECT_EQ(d.selector, "*.bank.example");

  d = t.lookup(Direction::inbound, "example.com", "203.0.113.200");
  EXPECT_EQ(d.match, MatchKind::cidr);
  EXPECT_EQ(d.selector, "203.0.113.128/25");
  EXPECT_EQ(d.min_tls, MinTls::tls1_3);

  d = t.lookup(Direction::inbound, "example.com", "2001:db8:ffff::1");
  EXPECT_EQ(d.selector, "2001:db8::/32");

  d = t.lookup(Direction::inbound, "example.com", "192.0.2.1");
  EXPECT_EQ(d.match, MatchKind::default_peer);
  EXPECT_TRUE(d.selector.empty());
  EXPECT_EQ(d.origin, at(0, 20, 3));

  d = t.lookup(Direction::outbound, "unlisted.example", "partner.example");
  EXPECT_EQ(d.match, MatchKind::default_domain);
  EXPECT_FALSE(d.domain_listed);
  EXPECT_TRUE(d.origin.builtin());
  EXPECT_EQ(t.describe(d.origin), "built-in default");

  // The default domain's own selectors apply to unlisted domains.
  d = t.lookup(Direction::outbound, "unlisted.example", "global-partner.example");
  EXPECT_EQ(d.match, MatchKind::exact);
  EXPECT_FALSE(d.domain_listed);
  EXPECT_EQ(d.selector, "global-partner.example");
  d = t.lookup(Direction::inbound, "", "198.51.100.7");
  EXPECT_EQ(d.match, MatchKind::cidr);
  EXPECT_FALSE(d.domain_listed);
  // ... but not to listed ones: a listed domain has its own lists.
  EXPECT_EQ(t.lookup(Direction::outbound, "example.org", "global-partner.example").match,
            MatchKind::default_peer);

  // Directions are separate lists.
  EXPECT_EQ(t.lookup(Direction::inbound, "example.com", "partner.example").match, MatchKind::default_peer);
  EXPECT_EQ(t.lookup(Direction::outbound, "example.com", "203.0.113.1").match, MatchKind::default_peer);

  EXPECT_EQ(to_string(MatchKind::default_domain), "default-domain");
  EXPECT_EQ(to_string(MatchKind::default_peer), "default-peer");
}

TEST(DecisionTableLookup, CaseAndTrailingDotAreIgnoredForBoth) {
  const DecisionTable t = DecisionTable::from_bytes(encode_table(sample_content()));
  for (const char* dn : {"example.com", "EXAMPLE.COM", "Example.Com.", "example.com."}) {
    for (const char* peer : {"partner.example", "PARTNER.example.", "Partner.Example"}) {
      const Decision d = t.lookup(Direction::outbound, dn, peer);
      EXPECT_EQ(d.match, MatchKind::exact) << dn << " " << peer;
      EXPECT_TRUE(d.domain_listed) << dn;
    }
  }
  // Only one trailing dot is ignored.
  EXPECT_FALSE(t.lookup(Direction::outbound, "example.com..", "partner.example").domain_listed);
  EXPECT_EQ(t.lookup(Direction::outbound, "example.com", "partner.example..").match, MatchKind::default_peer);
  EXPECT_EQ(t.lookup(Direction::outbound, "example.com", ".").match, MatchKind::default_peer);
  EXPECT_EQ(t.lookup(Direction::outbound, "example.com", "").match, MatchKind::default_peer);
  EXPECT_FALSE(t.lookup(Direction::outbound, ".", "x").domain_listed);
  EXPECT_FALSE(t.lookup(Direction::outbound, std::string(400, 'a'), std::string(400, 'b')).domain_listed);
}

TEST(DecisionTableLookup, AddressFormsAndFamilies) {
  TableContent c = sample_content();
  DirectionRules& in = c.domains[1].dir(Direction::inbound);
  const Decision want_v6 = [&] {
    const DecisionTable t = DecisionTable::from_bytes(encode_table(c));
    return t.lookup(Direction::inbound, "example.com", "2001:db8:1::1");
  }();
  EXPECT_EQ(want_v6.selector, "2001:db8:1::/48");
  in.peers.push_back(cidr("::/0", rule(Level::opportunistic, MinTls::tls1_2, at(0, 40))));
  const DecisionTable t = DecisionTable::from_bytes(encode_table(c));
  const auto selector = [&](const std::string& peer) { return t.lookup(Direction::inbound, "example.com", peer).selector; };
  EXPECT_EQ(selector("[203.0.113.5]"), "203.0.113.0/24");
  EXPECT_EQ(selector("[IPv6:2001:db8:1::1]"), "2001:db8:1::/48");
  EXPECT_EQ(selector("IPv6:2001:DB8:1::1"), "2001:db8:1::/48");
  EXPECT_EQ(selector("2001:DB8:1::1"), "2001:db8:1::/48");
  EXPECT_EQ(selector("[2001:db8:1::1]"), "2001:db8:1::/48");
  // An IPv4 address never matches an IPv6 selector, even ::/0, and an
  // IPv4-mapped IPv6 address is IPv6.
  EXPECT_EQ(selector("192.0.2.1"), "");
  EXPECT_EQ(selector("::ffff:203.0.113.5"), "::/0");
  // Broken literals are not names and get the default peer.
  EXPECT_EQ(selector("[IPv6:203.0.113.5]"), "");
  EXPECT_EQ(selector("[not-an-address]"), "");
  EXPECT_EQ(selector("203.0.113"), "");
  EXPECT_EQ(selector("[sender.example]"), "");
  EXPECT_EQ(selector("sender.example"), "sender.example");
}

// Lower-casing works on eight bytes at a time: every byte value, at every
// position of a word, must come out as plain ASCII lower-casing says.
TEST(DecisionTableLookup, EveryByteValueIsCaseFoldedAsAscii) {
  TableContent c;
  DomainRules d = domain("example.com", kBuiltin, rule(Level::opportunistic, MinTls::any, kBuiltin),
                         rule(Level::opportunistic, MinTls::any, kBuiltin));
  std::vector<std::string> queries;
  for (int b = 1; b < 256; ++b) {
    if (b == '.' || b == 'q' || b == 'Q') continue;  // '.' splits labels; q is the filler
    std::string query;
    for (int i = 0; i < 11; ++i) query += static_cast<char>(i == b % 11 ? b : 'Q');
    queries.push_back(query + ".Example");
    d.dir(Direction::outbound).peers.push_back(exact(lower_strip(queries.back()), rule(Level::mandatory, MinTls::any, kBuiltin)));
  }
  c.domains = {d};
  const DecisionTable t = DecisionTable::from_bytes(encode_table(c));
  for (const std::string& q : queries) {
    const Decision got = t.lookup(Direction::outbound, "EXAMPLE.com", q);
    EXPECT_EQ(got.match, MatchKind::exact) << q;
    EXPECT_EQ(got.selector, lower_strip(q));
  }
}

// IPv4 is parsed by the lookup's own fast parser (benchmarked on the hot
// path); it must accept exactly what base::parse_ip_address (inet_pton)
// accepts, the reference model's reading (anything else is a name), and
// selectors are spelled without inet_ntop; they must read exactly as
// inet_ntop writes them.
TEST(DecisionTableLookup, AddressParsingAndSpellingMatchLibc) {
  TableContent c;
  c.sources = {{"p.tlsp", {}}};
  DomainRules d = domain("example.com", at(0, 1), rule(Level::opportunistic, MinTls::any, at(0, 2)),
                         rule(Level::opportunistic, MinTls::any, at(0, 3)));
  const std::vector<std::string> v6 = {
      "::",           "::1",          "1::",          "::ffff:1.2.3.4",   "::1.2.3.4",        "::ffff:0:1.2.3.4",
      "1:0:0:1:0:0:0:1", "1:0:0:0:1:0:0:1", "0:0:1::",  "fe80::1:0:0:1",    "1:2:3:4:5:6:7:8",  "0:1:0:1:0:1:0:1",
      "1:0:1:0:1:0:1:0", "::2:3",       "::ffff",       "2001:db8::ff00:42:8329", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"};
  std::vector<std::string> queries;
  for (const std::string& a : v6) {
    d.dir(Direction::inbound).peers.push_back(cidr(a + "/128", rule(Level::mandatory, MinTls::any, at(0, 4))));
    queries.push_back(a);
  }
  std::mt19937 rng(99);
  std::set<std::string> seen(v6.begin(), v6.end());
  for (int i = 0; i < 300; ++i) {
    uint8_t bytes[16];
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng() % 4 == 0 ? rng() : 0);
    char text[INET6_ADDRSTRLEN];
    ::inet_ntop(AF_INET6, bytes, text, sizeof text);
    if (!seen.insert(text).second) continue;
    d.dir(Direction::inbound).peers.push_back(cidr(std::string(text) + "/128", rule(Level::mandatory, MinTls::any, at(0, 5))));
    queries.push_back(text);
  }
  for (const char* a : {"0.0.0.0/0", "1.2.3.4/32", "10.0.0.0/8", "255.255.255.255/32", "100.64.0.0/10"})
    d.dir(Direction::inbound).peers.push_back(cidr(a, rule(Level::mandatory, MinTls::any, at(0, 6))));
  c.domains = {d};
  const DecisionTable t = DecisionTable::from_bytes(encode_table(c));
  for (const std::string& q : queries) {
    expect_agrees_with_reference(t, c, Direction::inbound, "example.com", q);
    uint8_t bytes[16];
    char text[INET6_ADDRSTRLEN];
    ASSERT_EQ(::inet_pton(AF_INET6, q.c_str(), bytes), 1);
    ::inet_ntop(AF_INET6, bytes, text, sizeof text);
    EXPECT_EQ(t.lookup(Direction::inbound, "example.com", q).selector, std::string(text) + "/128");
  }
  for (const char* q : {"1.2.3.4", "01.2.3.4", "1.2.3.04", "1.2.3.0", "0.0.0.0", "1.2.3.4.5", "256.1.1.1", "1..2.3",
                        "1.2.3.", ".1.2.3", "1.2.3", "1.2.3.4a", "1.2.3.4/32", "255.255.255.255", "1.2.3.255",
                        "1.2.3.256", "00.1.2.3", "4294967295", "0x1.2.3.4", " 1.2.3.4", "1.2.3.4 ", "10.1", "100.64.1.1",
                        "[1.2.3.4]", "[01.2.3.4]", "1.2.3.4.", "1.2.3.4..", "0.0.0.00", "1.2.3.-1", "1.2.3.0256",
                        "1.2.3.+4", "255.255.255.256", "1.2..3.4", "...", "1.2.3.4:25", "[1.2.3.]", "ipv6:1.2.3.4"})
    expect_agrees_with_reference(t, c, Direction::inbound, "example.com", q);
}

// Every subset of a chain of selectors, every query: exact > longest
// wildcard > default, and the default domain's lists likewise.
TEST(DecisionTableLookup, NamePrecedenceExhaustive) {
  const std::vector<PeerEntry> chain = {
      exact("a.b.c.bank.example", rule(Level::dane_only, MinTls::tls1_3, at(0, 1))),
      wildcard("b.c.bank.example", rule(Level::dane, MinTls::tls1_3, at(0, 2))),
      wildcard("c.bank.example", rule(Level::mandatory, MinTls::tls1_3, at(0, 3))),
      wildcard("bank.example", rule(Level::mandatory, MinTls::tls1_2, at(0, 4))),
      wildcard("example", rule(Level::mta_sts, MinTls::tls1_2, at(0, 5))),
      exact("c.bank.example", rule(Level::dane, MinTls::any, at(0, 6))),
  };
  const std::vector<std::string> queries = {
      "a.b.c.bank.example", "x.b.c.bank.example", "b.c.bank.example", "c.bank.example",
      "bank.example",       "example",            "z.a.b.c.bank.example", "other.test",
      "A.B.C.BANK.EXAMPLE.", "xbank.example", "bank.example.org", "a.b.c.bank.examplex"};
  TableContent c;
  c.sources = {{"p.tlsp", {}}};
  c.default_domain = domain("", kBuiltin, rule(Level::opportunistic, MinTls::any, kBuiltin),
                            rule(Level::opportunistic, MinTls::any, kBuiltin));
  const uint32_t subsets = 1u << chain.size();
  for (uint32_t mask = 0; mask < subsets; ++mask) {
    DomainRules d = domain("d" + std::to_string(mask) + ".example", at(0, 100),
                           rule(Level::opportunistic, MinTls::tls1_2, at(0, 101)),
                           rule(Level::opportunistic, MinTls::any, at(0, 102)));
    for (size_t i = 0; i < chain.size(); ++i)
      if (mask & (1u << i)) d.dir(Direction::outbound).peers.push_back(chain[i]);
    c.domains.push_back(std::move(d));
  }
  c.default_domain.dir(Direction::outbound).peers = {chain[1], chain[3]};
  const DecisionTable t = DecisionTable::from_bytes(encode_table(c));
  size_t by_kind[5] = {};
  for (uint32_t mask = 0; mask < subsets; ++mask)
    for (const std::string& q : queries) {
      const std::string dn = "d" + std::to_string(mask) + ".example";
      expect_agrees_with_reference(t, c, Direction::outbound, dn, q);
      ++by_kind[static_cast<int>(t.lookup(Direction::outbound, dn, q).match)];
    }
  for (const std::string& q : queries) expect_agrees_with_reference(t, c, Direction::outbound, "unlisted.example", q);
  // The model is only trusted because it says what we expect on the
  // corners: spell some out.
  const auto sel = [&](uint32_t mask, const std::string& q) {
    return t.lookup(Direction::outbound, "d" + std::to_string(mask) + ".example", q).selector;
  };
  EXPECT_EQ(sel(0b111111, "a.b.c.bank.example"), "a.b.c.bank.example");
  EXPECT_EQ(sel(0b111110, "a.b.c.bank.example"), "*.b.c.bank.example");
  EXPECT_EQ(sel(0b111100, "a.b.c.bank.example"), "*.c.bank.example");
  EXPECT_EQ(sel(0b010000, "a.b.c.bank.example"), "*.example");
  EXPECT_EQ(sel(0b111111, "c.bank.example"), "c.bank.example");
  EXPECT_EQ(sel(0b011111, "c.bank.example"), "*.bank.example");
  EXPECT_EQ(sel(0b000100, "b.c.bank.example"), "*.c.bank.example");
  EXPECT_EQ(sel(0b000010, "b.c.bank.example"), "");  // strictly below only
  EXPECT_EQ(sel(0b001000, "xbank.example"), "");     // a label boundary, not a suffix
  EXPECT_EQ(t.lookup(Direction::outbound, "nowhere.example", "a.b.c.bank.example").selector, "*.b.c.bank.example");
  EXPECT_GT(by_kind[static_cast<int>(MatchKind::exact)], 0u);
  EXPECT_GT(by_kind[static_cast<int>(MatchKind::wildcard)], 0u);
  EXPECT_GT(by_kind[static_cast<int>(MatchKind::default_peer)], 0u);
}

// Every subset of nested prefixes, every query: the longest prefix wins.
void check_cidr_precedence(const std::vector<std::string>& selectors, const std::vector<std::string>& queries,
                           const std::vector<std::pair<std::string, std::string>>& spelled) {
  TableContent c;
  c.sources = {{"p.tlsp", {}}};
  const uint32_t subsets = 1u << selectors.size();
  for (uint32_t mask = 0; mask < subsets; ++mask) {
    DomainRules d = domain("d" + std::to_string(mask) + ".example", at(0, 100),
                           rule(Level::opportunistic, MinTls::tls1_2, at(0, 101)),
                           rule(Level::opportunistic, MinTls::any, at(0, 102)));
    for (size_t i = 0; i < selectors.size(); ++i)
      if (mask & (1u << i))
        d.dir(Direction::inbound).peers.push_back(
            cidr(selectors[i], rule(Level::mandatory, static_cast<MinTls>(i % 3), at(0, static_cast<uint32_t>(i + 1)))));
    c.domains.push_back(std::move(d));
  }
  const DecisionTable t = DecisionTable::from_bytes(encode_table(c));
  for (uint32_t mask = 0; mask < subsets; ++mask)
    for (const std::string& q : queries)
      expect_agrees_with_reference(t, c, Direction::inbound, "d" + std::to_string(mask) + ".example", q);
  const std::string all = "d" + std::to_string(subsets - 1) + ".example";
  for (const auto& [query, selector] : spelled)
    EXPECT_EQ(t.lookup(Direction::inbound, all, query).selector, selector) << query;
}

TEST(DecisionTableLookup, Ipv4LongestPrefixExhaustive) {
  check_cidr_precedence(
      {"0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "10.1.2.128/25", "10.1.2.0/31"},
      {"10.1.2.3", "10.1.2.200", "10.1.2.1", "10.1.3.1", "10.2.0.0", "11.0.0.1", "10.1.2.4", "255.255.255.255",
       "0.0.0.0", "[10.1.2.3]", "::ffff:10.1.2.3"},
      {{"10.1.2.3", "10.1.2.3/32"}, {"10.1.2.1", "10.1.2.0/31"}, {"10.1.2.200", "10.1.2.128/25"},
       {"10.1.3.1", "10.1.0.0/16"}, {"11.0.0.1", "0.0.0.0/0"}, {"::ffff:10.1.2.3", ""}});
}

TEST(DecisionTableLookup, Ipv6LongestPrefixExhaustive) {
  check_cidr_precedence(
      {"::/0", "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::1/128", "2001:db8:1:2::/64", "2001:db8:1:2::/63"},
      {"2001:db8:1::1", "2001:db8:1::2", "2001:db8:1:2::5", "2001:db8:1:3::5", "2001:db8:2::1", "2001:db9::1",
       "::1", "[IPv6:2001:db8:1::1]", "10.0.0.1"},
      {{"2001:db8:1::1", "2001:db8:1::1/128"}, {"2001:db8:1:2::5", "2001:db8:1:2::/64"},
       {"2001:db8:1:3::5", "2001:db8:1:2::/63"}, {"2001:db9::1", "::/0"}, {"10.0.0.1", ""}});
}

// A larger random policy with heavily overlapping selectors, checked
// against the model on random queries: catches what the hand-made
// subsets do not think of (index collisions, big lists, mixed kinds).
TEST(DecisionTableLookup, RandomPoliciesAgreeWithTheModel) {
  std::mt19937 rng(7);
  const std::vector<std::string> labels = {"a", "b", "mx", "bank", "eu", "x1", "mail"};
  const auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  const auto random_name = [&] {
    std::string n = pick(2) ? "example" : "test";
    for (size_t depth = pick(4); depth-- > 0;) n = labels[pick(labels.size())] + "." + n;
    return n;
  };
  const auto random_v4 = [&] { return "10." + std::to_string(pick(3)) + "." + std::to_string(pick(3)) + "." + std::to_string(pick(256)); };
  const auto random_v6 = [&] { return "2001:db8:" + std::to_string(pick(3)) + "::" + std::to_string(pick(3)); };
  const auto random_rule = [&] {
    return rule(static_cast<Level>(pick(kLevelCount)), static_cast<MinTls>(pick(kMinTlsCount)),
                at(0, static_cast<uint32_t>(pick(1000)), 1), at(0, static_cast<uint32_t>(pick(1000)), 2),
                pick(5) ? at(0, 3, 3) : kBuiltin);
  };
  const auto masked = [](PeerEntry p) {
    const size_t size = p.kind == SelectorKind::cidr_v4 ? 4 : 16;
    for (size_t i = 0; i < size; ++i) {
      const int bits = static_cast<int>(p.prefix_len) - static_cast<int>(i) * 8;
      if (bits <= 0) p.address[i] = 0;
      else if (bits < 8) p.address[i] &= static_cast<uint8_t>(0xFF << (8 - bits));
    }
    return p;
  };
  const auto random_peers = [&] {
    std::vector<PeerEntry> peers;
    std::set<std::string> seen;
    for (size_t n = pick(40); n-- > 0;) {
      PeerEntry p;
      switch (pick(4)) {
        case 0: p = exact(random_name(), random_rule()); break;
        case 1: p = wildcard(random_name(), random_rule()); break;
        case 2: p = masked(cidr(random_v4() + "/" + std::to_string(pick(33)), random_rule())); break;
        default: p = masked(cidr(random_v6() + "/" + std::to_string(pick(129)), random_rule())); break;
      }
      if (seen.insert(selector_text(p)).second) peers.push_back(p);
    }
    return peers;
  };
  for (int round = 0; round < 5; ++round) {
    TableContent c;
    c.sources = {{"random.tlsp", filled(static_cast<uint8_t>(round))}};
    const auto fill = [&](DomainRules& d) {
      for (DirectionRules& dir : d.directions) {
        dir.default_peer = random_rule();
        dir.peers = random_peers();
      }
    };
    fill(c.default_domain);
    std::set<std::string> names;
    for (int i = 0; i < 300; ++i) names.insert(random_name() + std::to_string(i % 50));
    for (const std::string& n : names) {
      DomainRules d;
      d.name = n;
      d.origin = at(0, 1, 1);
      fill(d);
      c.domains.push_back(std::move(d));
    }
    const DecisionTable t = DecisionTable::from_bytes(encode_table(c));
    EXPECT_EQ(t.decode(), canonical(c));
    for (int q = 0; q < 3000; ++q) {
      const std::string dn = pick(4) ? c.domains[pick(c.domains.size())].name : random_name();
      std::string peer = pick(3) == 0 ? random_v4() : pick(2) ? random_v6() : random_name();
      if (pick(5) == 0) peer = lower_strip(peer) + ".";
      if (pick(5) == 0) std::transform(peer.begin(), peer.end(), peer.begin(), ::toupper);
      expect_agrees_with_reference(t, c, static_cast<Direction>(pick(2)), dn, peer);
    }
  }
}

// ------------------------------------------------------------ damage

std::string small_table() { return encode_table(sample_content()); }

// Runs everything a caller could do with a loaded table; under the
// sanitizers this is where a missed check would show.
void exercise(const DecisionTable& t) {
  static const char* const kDomains[] = {"example.com", "example.org", "mail.example.net", "unlisted.example", ""};
  static const char* const kPeers[] = {"partner.example", "a.eu.bank.example", "bank.example", "x.example",
                                       "203.0.113.200",   "2001:db8:1::1",     "198.51.100.1", "[::1]",
                                       "global-partner.example"};
  for (const char* dn : kDomains)
    for (const char* peer : kPeers)
      for (Direction dir : {Direction::outbound, Direction::inbound}) {
        const Decision d = t.lookup(dir, dn, peer);
        (void)t.describe(d.origin);
        (void)t.describe(d.level_from);
      }
  const TableContent c = t.decode();
  (void)table_to_json(c);
  (void)t.policy_name();
  for (uint32_t i = 0; i <= t.source_count(); ++i) (void)t.source_path(i);
  // A table the loader accepts holds valid content: it encodes again (the
  // writer's checks agree with the loader's) and decodes to the same.
  EXPECT_EQ(DecisionTable::from_bytes(encode_table(c)).decode(), c);
}

TEST(DecisionTableDamage, EveryTruncationIsRefused) {
  const std::string bytes = small_table();
  ASSERT_NO_THROW(DecisionTable::from_bytes(bytes));
  for (size_t len = 0; len < bytes.size(); ++len)
    EXPECT_THROW(DecisionTable::from_bytes(bytes.substr(0, len)), TableError) << "length " << len;
  // Appended bytes are refused too.
  EXPECT_THROW(DecisionTable::from_bytes(bytes + std::string(8, '\0')), TableError);
  EXPECT_NE(load_error(bytes.substr(0, bytes.size() - 1)).find("size mismatch"), std::string::npos);
  EXPECT_NE(load_error(bytes.substr(0, 100)).find("truncated"), std::string::npos);
  EXPECT_NE(load_error(bytes.substr(0, 5)).find("truncated"), std::string::npos);
}

TEST(DecisionTableDamage, EverySingleBitFlipIsRefused) {
  const std::string bytes = small_table();
  for (size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    std::string damaged = bytes;
    damaged[bit / 8] = static_cast<char>(damaged[bit / 8] ^ (1 << (bit % 8)));
    EXPECT_THROW(DecisionTable::from_bytes(damaged), TableError) << "bit " << bit;
  }
  std::string damaged = bytes;
  damaged[bytes.size() / 2] ^= 0x10;
  EXPECT_NE(load_error(damaged).find("checksum mismatch: the table is damaged"), std::string::npos);
}

// With the checksum recomputed, each change reaches the structural checks:
// the loader must refuse it with a TableError or accept a table that is
// safe and coherent to use. Never a crash (the sanitizer build checks
// "never reads out of bounds").
TEST(DecisionTableDamage, ResealedDamageLoadsSafelyOrIsRefused) {
  const std::string bytes = small_table();
  size_t loaded = 0, refused = 0;
  const auto attempt = [&](const std::string& damaged, size_t pos) {
    try {
      const DecisionTable t = DecisionTable::from_bytes(reseal_table_for_testing(damaged));
      ++loaded;
      SCOPED_TRACE("byte " + std::to_string(pos));
      exercise(t);
    } catch (const TableError&) {
      ++refused;
    }
  };
  for (size_t pos = 0; pos < bytes.size(); ++pos) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = bytes;
      damaged[pos] = static_cast<char>(damaged[pos] ^ (1 << bit));
      attempt(damaged, pos);
    }
    for (char value : {'\0', '\xff', '\x01', '\x80'}) {
      if (bytes[pos] == value) continue;
      std::string damaged = bytes;
      damaged[pos] = value;
      attempt(damaged, pos);
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(loaded, 0u);  // e.g. a changed level or line number is valid
}

// Large tables are checksummed on a second thread while the structure is
// checked: both verdicts must still come out, checksum first.
TEST(DecisionTableDamage, LargeTablesReportBothKindsOfDamage) {
  TableContent c;
  c.sources = {{"big.tlsp", {}}};
  for (int i = 0; i < 250; ++i) {
    DomainRules d = domain("d" + std::to_string(i) + ".example", at(0, 1), rule(Level::mandatory, MinTls::any, at(0, 2)),
                           rule(Level::mandatory, MinTls::any, at(0, 3)));
    for (int j = 0; j < 400; ++j)
      d.dir(Direction::outbound).peers.push_back(
          exact("peer" + std::to_string(j) + ".example", rule(Level::dane, MinTls::tls1_2, at(0, static_cast<uint32_t>(j)))));
    c.domains.push_back(std::move(d));
  }
  const std::string bytes = encode_table(c);
  ASSERT_GT(bytes.size(), 4u << 20);
  const DecisionTable t = DecisionTable::from_bytes(bytes);
  EXPECT_EQ(t.peer_count(), 100000u);
  EXPECT_EQ(t.lookup(Direction::outbound, "d249.example", "peer399.example").origin, at(0, 399));

  std::string flipped = bytes;
  flipped[bytes.size() / 3] ^= 4;
  EXPECT_NE(load_error(flipped).find("checksum mismatch"), std::string::npos);
  // Structurally damaged and with a wrong checksum: the checksum is named.
  std::string both = bytes;
  write_field<uint32_t>(both, kIndexSlotCountOffset, 3);
  EXPECT_NE(load_error(both).find("checksum mismatch"), std::string::npos);
  EXPECT_NE(load_error(reseal_table_for_testing(both)).find("domain index has 3 slots"), std::string::npos);
}

TEST(DecisionTableDamage, StructuralDamageIsNamed) {
  const std::string bytes = small_table();
  const auto error_after = [&](auto&& damage) {
    std::string b = bytes;
    damage(b);
    return load_error(reseal_table_for_testing(b));
  };
  EXPECT_NE(error_after([](std::string& b) { write_field<uint32_t>(b, kHeaderSizeOffset, 255); }).find("header size"),
            std::string::npos);
  EXPECT_NE(error_after([](std::string& b) { write_field<uint32_t>(b, kIndexSlotCountOffset, 3); })
                .find("domain index has 3 slots"),
            std::string::npos);
  // Swap example.com's two IPv4 CIDR records (its inbound /25 and /24) and
  // their address bytes, leaving each record's selector offset in place so
  // that only the order is wrong: the order check must notice.
  const std::string swapped = error_after([](std::string& b) {
    const BlockInfo com = blocks_of(b)[1];
    ASSERT_EQ(com.name, "example.com");
    const uint64_t first = com.records + (4 + 1) * kPeerRecordSize;  // after 4 outbound, 1 inbound exact
    const uint64_t second = first + kPeerRecordSize;
    // Selector offsets count from the start of the block.
    const uint32_t first_bytes = read_field<uint32_t>(b, first + 4), second_bytes = read_field<uint32_t>(b, second + 4);
    ASSERT_EQ(second_bytes, first_bytes + 4);  // selector bytes in record order
    const std::string a = b.substr(first, kPeerRecordSize), c = b.substr(second, kPeerRecordSize);
    const std::string a_address = b.substr(com.offset + first_bytes, 4);
    const std::string c_address = b.substr(com.offset + second_bytes, 4);
    b.replace(first, kPeerRecordSize, c);
    b.replace(second, kPeerRecordSize, a);
    write_field<uint32_t>(b, first + 4, first_bytes);
    write_field<uint32_t>(b, second + 4, second_bytes);
    b.replace(com.offset + first_bytes, 4, c_address);
    b.replace(com.offset + second_bytes, 4, a_address);
  });
  EXPECT_NE(swapped.find("out of order"), std::string::npos) << swapped;
  EXPECT_NE(swapped.find("corrupt table"), std::string::npos) << swapped;

  // Two index slots with their blocks exchanged: each domain's slot now
  // names the other's block (a wrong fingerprint, or a domain its probe
  // does not find, depending on where the slots are).
  const std::string exchanged = error_after([](std::string& b) {
    const uint64_t index = section_offset(b, kIndexSection);
    std::vector<uint64_t> used;
    for (uint64_t i = 0; i < section_size(b, kIndexSection) / 8; ++i)
      if (read_field<uint32_t>(b, index + 8 * i + 4) != 0xFFFFFFFFu) used.push_back(index + 8 * i + 4);
    ASSERT_GE(used.size(), 2u);
    const uint32_t x = read_field<uint32_t>(b, used[0]), y = read_field<uint32_t>(b, used[1]);
    write_field<uint32_t>(b, used[0], y);
    write_field<uint32_t>(b, used[1], x);
  });
  EXPECT_NE(exchanged.find("domain index"), std::string::npos) << exchanged;

  // A block that claims to be longer than it is.
  const std::string resized = error_after([](std::string& b) {
    const BlockInfo com = blocks_of(b)[1];
    write_field<uint32_t>(b, com.offset, com.size + 64);
  });
  EXPECT_NE(resized.find("corrupt table: domain 0"), std::string::npos) << resized;

  // One more listed domain than there are blocks.
  const std::string counted = error_after([](std::string& b) {
    write_field<uint32_t>(b, kDomainCountOffset, read_field<uint32_t>(b, kDomainCountOffset) + 1);
  });
  EXPECT_NE(counted.find("corrupt table"), std::string::npos) << counted;
}

TEST(DecisionTableDamage, ForeignFilesAreNamedAsSuch) {
  std::string bytes = small_table();
  std::string wrong = bytes;
  wrong[1] = 'X';
  EXPECT_NE(load_error(wrong).find("not a tlsp decision table"), std::string::npos);
  // Text-mode newline conversion breaks the magic number.
  std::string text_mode = bytes;
  text_mode.replace(5, 2, "\n");
  EXPECT_NE(load_error(text_mode).find("not a tlsp decision table"), std::string::npos);
  EXPECT_NE(load_error("{\"policy\": 1}").find("not a tlsp decision table"), std::string::npos);

  std::string future = bytes;
  write_field<uint32_t>(future, kVersionOffset, 3);
  const std::string version_error = load_error(reseal_table_for_testing(future));
  EXPECT_NE(version_error.find("unsupported table format version 3 (this build reads format version 2)"),
            std::string::npos)
      << version_error;
  // The version is checked before the checksum, so a table from a newer
  // build is reported as such rather than as damaged.
  EXPECT_NE(load_error(future).find("format version 3"), std::string::npos);
  // A version 1 table (the layout before domain blocks) is refused as such.
  std::string old_format = bytes;
  write_field<uint32_t>(old_format, kVersionOffset, 1);
  EXPECT_NE(load_error(old_format).find("unsupported table format version 1"), std::string::npos);
  EXPECT_NE(load_error("").find("empty"), std::string::npos);
  EXPECT_EQ(read_field<uint32_t>(bytes, kVersionOffset), 2u);
}

// A file that cannot be read is a TableReadError (the CLI's exit 2); one
// that is read and refused only a TableError (exit 1).
TEST(DecisionTableDamage, UnreadableIsTellableFromRefused) {
  TempDir dir;
  EXPECT_THROW(DecisionTable::open(dir.file("missing.tlspdt")), TableReadError);
  EXPECT_THROW(DecisionTable::open(dir.path().string()), TableReadError);  // a directory: not a regular file
  const std::string text = dir.file("policy.tlsp");
  write_bytes(text, "domain example.com {\n}\n");
  const std::string empty = dir.file("empty.tlspdt");
  write_bytes(empty, "");
  for (const std::string& refused : {text, empty}) {
    try {
      DecisionTable::open(refused);
      ADD_FAILURE() << refused << " opened";
    } catch (const TableReadError& e) {
      ADD_FAILURE() << refused << " was read and refused, not unreadable: " << e.what();
    } catch (const TableError&) {
    }
  }
}

TEST(DecisionTableDamage, OpenNamesThePath) {
  TempDir dir;
  const std::string missing = dir.file("missing.tlspdt");
  std::string e = open_error(missing);
  EXPECT_NE(e.find("`" + missing + "`"), std::string::npos) << e;
  EXPECT_NE(e.find("No such file or directory"), std::string::npos) << e;

  const std::string empty = dir.file("empty.tlspdt");
  write_bytes(empty, "");
  e = open_error(empty);
  EXPECT_NE(e.find(empty), std::string::npos) << e;
  EXPECT_NE(e.find("the file is empty"), std::string::npos) << e;

  const std::string text = dir.file("policy.tlsp");
  write_bytes(text, "domain example.com {\n}\n");
  EXPECT_NE(open_error(text).find("not a tlsp decision table"), std::string::npos);

  const std::string bytes = small_table();
  const std::string truncated = dir.file("truncated.tlspdt");
  for (size_t len : {size_t{1}, size_t{8}, size_t{255}, size_t{256}, bytes.size() - 8}) {
    write_bytes(truncated, bytes.substr(0, len));
    e = open_error(truncated);
    EXPECT_NE(e.find(truncated), std::string::npos) << len << ": " << e;
  }
  const std::string damaged = dir.file("damaged.tlspdt");
  std::string flipped = bytes;
  flipped[bytes.size() - 3] ^= 1;
  write_bytes(damaged, flipped);
  EXPECT_EQ(open_error(damaged), "decision table `" + damaged + "`: checksum mismatch: the table is damaged");
  EXPECT_NE(open_error(dir.path().string()).find("not a regular file"), std::string::npos);
}

// ------------------------------------------------- the file after open()
//
// An open table answers from the bytes it validated, whatever happens to
// its file afterwards: `cp` over it (the same inode, truncated, then
// written), a truncation, part of another table written over it. Each
// check runs in a child process with a deadline (a death test), so that
// what this guards against, a SIGBUS or a lookup that never ends, fails
// the test rather than killing or hanging the test binary.

template <typename Check>
void expect_survives(Check check) {
  EXPECT_EXIT(
      {
        ::alarm(10);
        check();
        std::_Exit(::testing::Test::HasFailure() ? 1 : 0);
      },
      ::testing::ExitedWithCode(0), "");
}

// Writes `bytes` at `offset` of an existing file without truncating it.
void write_at(const std::string& path, std::string_view bytes, off_t offset) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), offset), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

// sample_content() with example.com's outbound default peer raised from
// mandatory to dane-only: the same layout, one byte different.
TableContent raised_content() {
  TableContent c = canonical(sample_content());
  for (DomainRules& d : c.domains)
    if (d.name == "example.com") d.dir(Direction::outbound).default_peer.level = Level::dane_only;
  return c;
}

TEST(DecisionTableFile, AnOpenTableIgnoresItsFileBeingRewrittenInPlace) {
  TempDir dir;
  const std::string path = dir.file("table.tlspdt");
  const TableContent original = canonical(sample_content());
  const std::string next = encode_table(raised_content());
  ASSERT_EQ(next.size(), encode_table(original).size());
  write_table_file(path, original);
  const DecisionTable t = DecisionTable::open(path);
  const auto answers_as_opened = [&] {
    EXPECT_EQ(t.lookup(Direction::outbound, "example.com", "unlisted.example").level, Level::mandatory);
    EXPECT_EQ(t.decode(), original);
  };
  answers_as_opened();

  write_bytes(path, next);  // what `cp next table` does: O_TRUNC, then write
  expect_survives(answers_as_opened);
  EXPECT_EQ(DecisionTable::open(path).lookup(Direction::outbound, "example.com", "x.example").level,
            Level::dane_only);  // the file did change

  ASSERT_EQ(::truncate(path.c_str(), 0), 0);
  expect_survives(answers_as_opened);
  EXPECT_NE(open_error(path).find("the file is empty"), std::string::npos);
}

TEST(DecisionTableFile, ADamagedRewriteIsRefusedAndTheOpenTableKeepsAnswering) {
  TempDir dir;
  const std::string path = dir.file("table.tlspdt");
  const TableContent original = canonical(sample_content());
  write_table_file(path, original);
  const DecisionTable t = DecisionTable::open(path);
  const auto answers_as_opened = [&] {
    EXPECT_EQ(t.lookup(Direction::outbound, "example.com", "unlisted.example").level, Level::mandatory);
    EXPECT_EQ(t.decode(), original);
  };

  std::string damaged = encode_table(raised_content());
  damaged[24] ^= 1;  // the checksum, which no lookup reads
  write_bytes(path, damaged);
  EXPECT_NE(open_error(path).find("checksum mismatch"), std::string::npos) << open_error(path);
  expect_survives(answers_as_opened);

  write_bytes(path, damaged.substr(0, damaged.size() / 2));  // a copy cut short
  EXPECT_NE(open_error(path).find("size mismatch"), std::string::npos) << open_error(path);
  expect_survives(answers_as_opened);
}

TEST(DecisionTableFile, PartOfAnotherTableWrittenOverItCannotMakeALookupSpin) {
  TempDir dir;
  const std::string path = dir.file("table.tlspdt");
  const TableContent original = canonical(sample_content());
  const std::string live = encode_table(original);
  // Another table whose string pool (a long version label) covers the
  // place where `live` keeps its domain index: written over the start of
  // the file, it leaves no empty slot there.
  TableContent other = original;
  other.policy_version = std::string(8000, 'x');
  const std::string foreign = encode_table(other);
  const uint64_t index_end = section_offset(live, kIndexSection) + section_size(live, kIndexSection);
  ASSERT_LT(index_end, live.size());
  for (uint64_t slot = section_offset(live, kIndexSection); slot < index_end; slot += 8)
    ASSERT_EQ(foreign.substr(slot, 8), "xxxxxxxx");

  write_bytes(path, live);
  const DecisionTable t = DecisionTable::open(path);
  write_at(path, std::string_view(foreign).substr(0, index_end), 0);
  expect_survives([&] {
    for (const char* domain : {"example.com", "example.org", "unlisted.example"})
      for (const char* peer : {"partner.example", "x.bank.example", "203.0.113.7", "unlisted.example"})
        for (Direction d : {Direction::outbound, Direction::inbound})
          expect_agrees_with_reference(t, original, d, domain, peer);
  });
  EXPECT_NE(open_error(path), "");  // and the file itself is refused
}

// Refused at once, rather than open() waiting for a writer to appear.
TEST(DecisionTableFile, AFifoIsRefusedWithoutWaitingForAWriter) {
  TempDir dir;
  const std::string path = dir.file("table.tlspdt");
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  expect_survives([&] { EXPECT_NE(open_error(path).find("not a regular file"), std::string::npos); });
}

// A regular file whose size says one thing while reading gives another is
// refused as changing, not validated from a mix of two states. A /proc
// file is the reproducible case: its size is 0 and reading it gives text.
TEST(DecisionTableFile, AFileThatChangesWhileBeingReadIsRefused) {
  const std::string e = open_error("/proc/self/status");
  EXPECT_NE(e.find("changed while being read"), std::string::npos) << e;
}

// A path that names a huge file by mistake (a disk image, a log) is
// refused before memory is committed for it: sparse files, so the test
// itself writes nothing of their size.
TEST(DecisionTableFile, AHugeFileIsRefusedBeforeItIsRead) {
  TempDir dir;
  const std::string foreign = dir.file("disk.img"), huge = dir.file("huge.tlspdt");
  write_bytes(foreign, "not a table at all");
  ASSERT_EQ(::truncate(foreign.c_str(), off_t{3} << 30), 0);
  write_bytes(huge, encode_table(sample_content()));
  ASSERT_EQ(::truncate(huge.c_str(), off_t{5} << 30), 0);
  expect_survives([&] {
    EXPECT_NE(open_error(foreign).find("wrong magic number"), std::string::npos) << open_error(foreign);
    EXPECT_NE(open_error(huge).find("too large"), std::string::npos) << open_error(huge);
  });
}

// ------------------------------------------------------------ JSON

TEST(DecisionTableJson, DescribesTheWholeContent) {
  const std::string text = table_to_json(sample_content());
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j["policy"]["name"], "example-policy");
  EXPECT_EQ(j["policy"]["version"], "v42");
  std::string ab;
  for (int i = 0; i < 32; ++i) ab += "ab";
  EXPECT_EQ(j["sources_sha256"], ab);
  EXPECT_EQ(j["sources"][1]["path"], "policies/partners.tlsp");
  EXPECT_EQ(j["sources"][1]["sha256"], std::string(64, '2'));
  ASSERT_EQ(j["domains"].size(), 3u);
  EXPECT_EQ(j["domains"][0]["name"], "example.com");
  EXPECT_EQ(j["domains"][1]["name"], "example.org");
  EXPECT_EQ(j["domains"][0]["origin"], "policies/main.tlsp:3:1");
  EXPECT_FALSE(j["default_domain"].contains("name"));
  EXPECT_EQ(j["default_domain"]["origin"], "built-in");
  EXPECT_EQ(j["default_domain"]["outbound"]["default_peer"]["level"], "opportunistic");
  EXPECT_EQ(j["default_domain"]["outbound"]["default_peer"]["origin"], "built-in");

  const auto& out = j["domains"][0]["outbound"];
  EXPECT_EQ(out["default_peer"]["min_tls"], "tls1.2");
  // Review order: exact names, then wildcards, each alphabetical.
  std::vector<std::string> selectors;
  for (const auto& p : out["peers"]) selectors.push_back(p["selector"]);
  EXPECT_EQ(selectors, (std::vector<std::string>{"bank.example", "partner.example", "*.bank.example", "*.eu.bank.example"}));
  const auto& partner = out["peers"][1];
  EXPECT_EQ(partner["level"], "dane");
  EXPECT_EQ(partner["origin"], "policies/main.tlsp:7:5");
  EXPECT_EQ(partner["level_from"], "policies/main.tlsp:8:7");
  EXPECT_EQ(partner["min_tls_from"], "policies/main.tlsp:4:3");
  EXPECT_EQ(out["peers"][3]["level"], "dane-only");

  selectors.clear();
  for (const auto& p : j["domains"][0]["inbound"]["peers"]) selectors.push_back(p["selector"]);
  EXPECT_EQ(selectors, (std::vector<std::string>{"sender.example", "203.0.113.0/24", "203.0.113.128/25",
                                                 "2001:db8::/32", "2001:db8:1::/48"}));
  // Deterministic, and the same for the decoded table.
  EXPECT_EQ(table_to_json(sample_content()), text);
  EXPECT_EQ(table_to_json(DecisionTable::from_bytes(encode_table(sample_content())).decode()), text);
}

}  // namespace
}  // namespace tlsp
