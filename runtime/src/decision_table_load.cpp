// Loading a decision table: mapping the file (or copying bytes) and
// validating every byte the lookup or decode could ever read, before the
// table is handed out.
//
// The verdicts come in the order that gives the most useful message: is
// this a table at all (magic), one we can read (version), complete (size),
// undamaged (checksum), and well formed (structure). The last two are
// computed side by side on large tables, but a checksum mismatch is
// reported before any structural fault. The structural checks matter even
// behind a valid checksum: the checksum catches accidents, not a file
// built wrong or on purpose, and no file may crash the relay or make a
// lookup read outside the image.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <exception>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "table_layout.h"
#include "table_view.h"
#include "tlsp/decision_table.h"

namespace tlsp {
namespace tl = table_layout;

namespace {

// Below this a second thread costs more than it saves.
constexpr uint64_t kParallelChecksumBytes = 4u << 20;

class TableValidator {
 public:
  TableValidator(DecisionTable::Impl& t, std::string label) : t_(t), label_(std::move(label)) {}

  void validate() {
    check_identity();
    // The checksum and the structural checks each read the whole image and
    // are bound by memory bandwidth, not by the CPU, so for a large table
    // they run side by side. The structural checks are safe on any bytes;
    // a checksum mismatch is still the error reported when both fail.
    std::array<uint8_t, 16> checksum{};
    const std::string_view image(reinterpret_cast<const char*>(t_.base), t_.size);
    std::exception_ptr structure_error;
    {
      std::jthread checksum_thread;
      if (t_.size >= kParallelChecksumBytes) {
        try {
          checksum_thread = std::jthread([&] { checksum = tl::table_checksum(image); });
        } catch (const std::system_error&) {
          // No thread to be had: compute it on this one below.
        }
      }
      try {
        check_structure();
      } catch (const TableError&) {
        structure_error = std::current_exception();
      }
      if (!checksum_thread.joinable()) checksum = tl::table_checksum(image);
    }
    if (std::memcmp(checksum.data(), t_.header->checksum, checksum.size()) != 0)
      fail("checksum mismatch: the table is damaged");
    if (structure_error) std::rethrow_exception(structure_error);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw TableError("decision table " + label_ + ": " + what);
  }
  [[noreturn]] void corrupt(const std::string& what) const { fail("corrupt table: " + what); }

  // ------------------------------------------------ magic, version, size

  void check_identity() {
    const uint64_t size = t_.size;
    if (size == 0) fail("the file is empty");
    const size_t magic_bytes = size < tl::kMagic.size() ? size : tl::kMagic.size();
    if (std::memcmp(t_.base, tl::kMagic.data(), magic_bytes) != 0)
      fail("not a tlsp decision table (wrong magic number)");
    if (size < offsetof(tl::FileHeader, header_size))
      fail("truncated: " + std::to_string(size) + " bytes is shorter than the header");
    uint32_t version;
    std::memcpy(&version, t_.base + offsetof(tl::FileHeader, format_version), sizeof version);
    if (version != tl::kFormatVersion)
      fail("unsupported table format version " + std::to_string(version) +
           " (this build reads format version " + std::to_string(tl::kFormatVersion) + ")");
    if (size < sizeof(tl::FileHeader))
      fail("truncated: " + std::to_string(size) + " bytes is shorter than the header");
    t_.header = reinterpret_cast<const tl::FileHeader*>(t_.base);
    const tl::FileHeader& h = *t_.header;
    if (h.file_size != size)
      fail("size mismatch: the header says " + std::to_string(h.file_size) +
           " bytes but there are " + std::to_string(size) + " (truncated or appended to)");
  }

  void check_structure() {
    check_header();
    check_sections();
    check_sources();
    check_domains_and_peers();
    check_index();
  }

  // ------------------------------------------------------------- header

  void check_header() {
    const tl::FileHeader& h = *t_.header;
    if (h.header_size != sizeof(tl::FileHeader))
      corrupt("header size " + std::to_string(h.header_size) + ", expected " +
              std::to_string(sizeof(tl::FileHeader)));
    if (h.section_count != tl::kSectionCount)
      corrupt("section count " + std::to_string(h.section_count) + ", expected " +
              std::to_string(tl::kSectionCount));
    if (h.reserved != 0) corrupt("reserved header field is not zero");
    if (h.index_slot_count < 2 || !std::has_single_bit(h.index_slot_count) ||
        h.index_slot_count < 2 * uint64_t{h.domain_count})
      corrupt("domain index has " + std::to_string(h.index_slot_count) + " slots for " +
              std::to_string(h.domain_count) + " domains");
    t_.source_count = h.source_count;
    t_.domain_count = h.domain_count;
    t_.peer_count = h.peer_count;
    t_.slot_mask = h.index_slot_count - 1;
  }

  // The sections follow the header in id order, each at the next multiple
  // of 8, with zero padding and nothing else in between: one layout per
  // content, and no bytes the checks would not cover.
  void check_sections() {
    const tl::FileHeader& h = *t_.header;
    const uint64_t expected_size[tl::kSectionCount] = {
        0,  // strings: any size
        uint64_t{h.source_count} * sizeof(tl::SourceFileRecord),
        (uint64_t{h.domain_count} + 1) * sizeof(tl::DomainRecord),
        uint64_t{h.index_slot_count} * sizeof(tl::IndexSlot),
        uint64_t{h.peer_count} * sizeof(tl::PeerRecord),
        uint64_t{h.peer_count} * sizeof(tl::PeerProvenance),
    };
    uint64_t cursor = sizeof(tl::FileHeader);
    for (uint32_t i = 0; i < tl::kSectionCount; ++i) {
      const tl::SectionEntry& s = h.sections[i];
      const std::string name = "section " + std::to_string(i + 1);
      if (s.id != i + 1) corrupt(name + " has id " + std::to_string(s.id));
      if (s.reserved != 0) corrupt(name + ": reserved field is not zero");
      if (s.offset != cursor)
        corrupt(name + " at offset " + std::to_string(s.offset) + ", expected " + std::to_string(cursor));
      if (s.size > t_.size - s.offset) corrupt(name + " runs past the end of the file");
      if (i > 0 && s.size != expected_size[i])
        corrupt(name + " has " + std::to_string(s.size) + " bytes, the counts give " +
                std::to_string(expected_size[i]));
      const uint64_t end = s.offset + s.size;
      cursor = tl::align_up(end);
      if (cursor > t_.size) corrupt(name + ": padding runs past the end of the file");
      for (uint64_t p = end; p < cursor; ++p)
        if (t_.base[p] != 0) corrupt(name + ": padding is not zero");
    }
    if (cursor != t_.size) corrupt("unused bytes after the last section");

    const auto at = [&](tl::SectionId id) { return t_.base + h.sections[static_cast<int>(id) - 1].offset; };
    strings_size_ = h.sections[0].size;
    t_.strings = reinterpret_cast<const char*>(at(tl::SectionId::strings));
    t_.sources = reinterpret_cast<const tl::SourceFileRecord*>(at(tl::SectionId::sources));
    t_.domains = reinterpret_cast<const tl::DomainRecord*>(at(tl::SectionId::domains));
    t_.slots = reinterpret_cast<const tl::IndexSlot*>(at(tl::SectionId::domain_index));
    t_.peers = reinterpret_cast<const tl::PeerRecord*>(at(tl::SectionId::peers));
    t_.provenance = reinterpret_cast<const tl::PeerProvenance*>(at(tl::SectionId::provenance));

    check_str(h.policy_name, [] { return std::string("policy name"); });
    check_str(h.policy_version, [] { return std::string("policy version"); });
  }

  // ------------------------------------------------------------ records
  //
  // `place` is a callable returning where the record is ("domain 3
  // outbound peer 17"): messages are built only on failure, because the
  // checks below run once per record of tables with a million records.

  template <typename Place>
  void check_str(tl::StrRef r, const Place& place) const {
    if (r.offset > strings_size_ || r.length > strings_size_ - r.offset)
      corrupt(place() + ": string reference outside the string pool");
  }

  template <typename Place>
  void check_source_ref(const tl::SourceRecord& r, const Place& place) const {
    if (r.file != kBuiltinFile && r.file >= t_.source_count)
      corrupt(place() + ": source file " + std::to_string(r.file) + " does not exist");
  }

  template <typename Place>
  void check_rule(uint8_t level, uint8_t min_tls, const Place& place) const {
    if (level >= kLevelCount) corrupt(place() + ": level " + std::to_string(level) + " out of range");
    if (min_tls >= kMinTlsCount) corrupt(place() + ": min_tls " + std::to_string(min_tls) + " out of range");
  }

  void check_sources() {
    for (uint32_t i = 0; i < t_.source_count; ++i)
      check_str(t_.sources[i].path, [&] { return "source file " + std::to_string(i); });
  }

  std::string domain_place(uint64_t i) const {
    return i == t_.domain_count ? "default domain" : "domain " + std::to_string(i);
  }
  std::string direction_place(uint64_t i, int dir) const {
    return domain_place(i) + " " + std::string(to_string(static_cast<Direction>(dir)));
  }

  void check_domains_and_peers() {
    uint64_t cursor = 0;  // peers are laid out domain by domain, direction by direction
    // Hashed here, while the names are in cache, for check_index().
    domain_hashes_.resize(t_.domain_count);
    for (uint64_t i = 0; i <= t_.domain_count; ++i) {
      const tl::DomainRecord& d = t_.domains[i];
      const auto place = [&] { return domain_place(i); };
      check_str(d.name, place);
      const std::string_view name = t_.str(d.name);
      if (i == t_.domain_count) {
        if (!name.empty()) corrupt("the default domain has a name");
      } else {
        if (!tl::is_stored_name(name)) corrupt(place() + ": not a normalised domain name");
        // Sorted and unique, so decode() is canonical and names are unique.
        if (i > 0 && !(t_.str(t_.domains[i - 1].name) < name)) corrupt(place() + ": domains out of order");
        domain_hashes_[i] = tl::name_hash(name);
      }
      check_source_ref(d.origin, place);
      if (d.reserved != 0) corrupt(place() + ": reserved field is not zero");
      for (int dir = 0; dir < 2; ++dir) cursor = check_direction(d.directions[dir], cursor, i, dir);
    }
    if (cursor != t_.peer_count) corrupt("peer entries not owned by any domain");
  }

  uint64_t check_direction(const tl::DirectionRecord& r, uint64_t cursor, uint64_t domain, int dir) const {
    const auto place = [&] { return direction_place(domain, dir); };
    check_rule(r.level, r.min_tls, [&] { return place() + " default peer"; });
    if (r.reserved[0] != 0 || r.reserved[1] != 0 || r.reserved2 != 0)
      corrupt(place() + ": reserved field is not zero");
    check_source_ref(r.origin, place);
    check_source_ref(r.level_from, place);
    check_source_ref(r.min_tls_from, place);
    // Ranges must tile the peer array in record order: no gaps, no overlap.
    if (r.peer_begin != cursor) corrupt(place() + ": peer range does not start where the previous ended");
    for (int kind = 0; kind < 4; ++kind) {
      const uint64_t count = r.kind_count[kind];
      if (count > t_.peer_count - cursor) corrupt(place() + ": peer range runs past the peer array");
      check_peer_group(static_cast<SelectorKind>(kind), cursor, cursor + count, domain, dir);
      cursor += count;
    }
    return cursor;
  }

  void check_peer_group(SelectorKind kind, uint64_t begin, uint64_t end, uint64_t domain, int dir) const {
    const bool is_name = kind == SelectorKind::exact || kind == SelectorKind::wildcard;
    for (uint64_t i = begin; i < end; ++i) {
      const tl::PeerRecord& p = t_.peers[i];
      const tl::PeerProvenance& prov = t_.provenance[i];
      const auto place = [&] { return direction_place(domain, dir) + " peer " + std::to_string(i); };
      if (p.kind != static_cast<uint8_t>(kind)) corrupt(place() + ": kind does not match its group");
      check_rule(p.level, p.min_tls, place);
      check_str(p.selector, place);
      check_source_ref(prov.origin, place);
      check_source_ref(prov.level_from, place);
      check_source_ref(prov.min_tls_from, place);
      const std::string_view bytes = t_.str(p.selector);
      if (is_name) {
        if (p.prefix_len != 0) corrupt(place() + ": a name selector with a prefix length");
        if (!tl::is_stored_name(bytes)) corrupt(place() + ": not a normalised domain name");
        // The lookup finds names by this key; a wrong one would hide the entry.
        if (p.key != tl::name_key(bytes)) corrupt(place() + ": name hash does not match the name");
      } else {
        const auto* address = reinterpret_cast<const uint8_t*>(bytes.data());
        if (bytes.size() != tl::address_size(kind)) corrupt(place() + ": address has the wrong length");
        if (p.prefix_len > tl::max_prefix(kind))
          corrupt(place() + ": prefix length " + std::to_string(p.prefix_len) + " too long");
        if (p.key != tl::address_key(address)) corrupt(place() + ": address key does not match the address");
        // For IPv4 the key is the whole address: test it as one integer.
        const bool host_bits = kind == SelectorKind::cidr_v4
                                   ? p.prefix_len < 32 && (p.key & (0xFFFFFFFFu >> p.prefix_len)) != 0
                                   : !tl::host_bits_clear(address, bytes.size(), p.prefix_len);
        if (host_bits) corrupt(place() + ": host bits are set");
      }
      if (i > begin && !precedes(t_.peers[i - 1], p, is_name)) corrupt(place() + ": peers out of order");
    }
  }

  // Strictly increasing in the canonical order (table_layout.h): the
  // lookup's binary searches need it, and strictness rules out duplicates.
  bool precedes(const tl::PeerRecord& a, const tl::PeerRecord& b, bool is_name) const {
    if (!is_name && a.prefix_len != b.prefix_len) return a.prefix_len > b.prefix_len;
    if (a.key != b.key) return a.key < b.key;
    return t_.str(a.selector) < t_.str(b.selector);
  }

  // Every listed domain is in exactly one slot, with the right fingerprint,
  // and reachable by linear probing from its home slot (no empty slot in
  // between): then find_domain() finds exactly the listed domains.
  void check_index() const {
    const uint64_t slot_count = t_.slot_mask + 1;
    const std::vector<uint64_t>& hashes = domain_hashes_;
    std::vector<uint8_t> seen(t_.domain_count, 0);
    uint64_t used = 0, empty_slot = 0;
    for (uint64_t s = 0; s < slot_count; ++s) {
      const tl::IndexSlot& slot = t_.slots[s];
      if (slot.domain == tl::kEmptySlot) {
        if (slot.fingerprint != 0) corrupt("domain index: empty slot with a fingerprint");
        empty_slot = s;
        continue;
      }
      if (slot.domain >= t_.domain_count) corrupt("domain index: slot names a domain that does not exist");
      if (seen[slot.domain]++) corrupt("domain index: a domain is in two slots");
      if (slot.fingerprint != static_cast<uint32_t>(hashes[slot.domain] >> 32))
        corrupt("domain index: fingerprint does not match the domain name");
      ++used;
    }
    if (used != t_.domain_count) corrupt("domain index: not every domain is indexed");
    // Walk once round the table from an empty slot (there is one: at least
    // half are empty), tracking the run of occupied slots: a domain is
    // reachable iff its distance from home is shorter than that run.
    uint64_t run = 0;
    for (uint64_t step = 1; step <= slot_count; ++step) {
      const uint64_t s = (empty_slot + step) & t_.slot_mask;
      const tl::IndexSlot& slot = t_.slots[s];
      if (slot.domain == tl::kEmptySlot) {
        run = 0;
        continue;
      }
      ++run;
      const uint64_t home = hashes[slot.domain] & t_.slot_mask;
      if (((s - home) & t_.slot_mask) >= run) corrupt("domain index: a domain is not reachable from its home slot");
    }
  }

  DecisionTable::Impl& t_;
  std::string label_;
  uint64_t strings_size_ = 0;
  std::vector<uint64_t> domain_hashes_;  // name_hash of each listed domain
};

}  // namespace

DecisionTable::DecisionTable(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DecisionTable::DecisionTable(DecisionTable&&) noexcept = default;
DecisionTable& DecisionTable::operator=(DecisionTable&&) noexcept = default;
DecisionTable::~DecisionTable() = default;

DecisionTable DecisionTable::open(const std::string& path) {
  const std::string label = "`" + path + "`";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw TableError("decision table " + label + ": cannot open: " + std::strerror(errno));
  auto impl = std::make_unique<Impl>();
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw TableError("decision table " + label + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw TableError("decision table " + label + ": not a regular file");
  }
  impl->size = static_cast<uint64_t>(st.st_size);
  if (impl->size > 0) {
    // Tables are replaced by rename (write_table_file), never rewritten in
    // place, so the mapped file cannot shrink under us.
    void* p = ::mmap(nullptr, impl->size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw TableError("decision table " + label + ": cannot map: " + std::strerror(err));
    }
    impl->mapping = p;
    impl->mapping_size = impl->size;
    impl->base = static_cast<const uint8_t*>(p);
  } else {
    static const uint64_t kNothing = 0;
    impl->base = reinterpret_cast<const uint8_t*>(&kNothing);
  }
  ::close(fd);
  TableValidator(*impl, label).validate();
  return DecisionTable(std::move(impl));
}

DecisionTable DecisionTable::from_bytes(std::string_view bytes) {
  auto impl = std::make_unique<Impl>();
  // uint64_t elements: the records need 8-byte alignment, which a
  // string_view's data does not promise.
  impl->owned = std::make_unique_for_overwrite<uint64_t[]>(bytes.size() / 8 + 1);
  if (!bytes.empty()) std::memcpy(impl->owned.get(), bytes.data(), bytes.size());
  impl->base = reinterpret_cast<const uint8_t*>(impl->owned.get());
  impl->size = bytes.size();
  TableValidator(*impl, "(in memory)").validate();
  return DecisionTable(std::move(impl));
}

}  // namespace tlsp
