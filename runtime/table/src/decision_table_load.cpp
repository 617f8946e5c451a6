// Loading a decision table: reading the file (or copying bytes) into
// memory the table owns, and validating every byte the lookup or decode
// could ever read, before the table is handed out.
//
// Only validated bytes are ever consulted, so the table never shares pages
// with its file: whoever may write the file (`cp` over a live table, a
// truncation) could otherwise change the bytes after validation, and a
// truncation turns the next lookup into a SIGBUS. The file is read with
// pread into a private buffer; a file whose size or times change while it
// is read is refused as "changed while being read" (a copy in progress),
// never validated from a mix of two states.
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

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdint>
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

// How far ahead of the block checks the loader prefetches.
constexpr uint64_t kPrefetchAhead = 4096;

// Below this a second thread costs more than it saves.
constexpr uint64_t kParallelChecksumBytes = 4u << 20;

// Images of at least this size live in an anonymous mapping of 2 MiB
// pages; smaller ones on the heap.
//
// Fresh memory is dear on the development VM when it is faulted in 4 KiB
// at a time (~0.3 GB/s: 280 ms of an 85 MB table); in 2 MiB pages
// (MADV_HUGEPAGE) it costs a tenth of that, and lookups then pay no TLB
// misses on the image, as with the file mapping this replaced (ext4 backs
// page cache with large folios). The heap below it keeps small images
// (every fuzz input) exact-sized, so a sanitizer's redzone still catches a
// read past the end.
constexpr uint64_t kHugePage = uint64_t{2} << 20;

// The largest table file read at all (a million entries make ~85 MB): a
// path that names a disk image or a log by mistake is refused before any
// memory is committed for it, not read into 24 GB.
constexpr uint64_t kMaxTableFileBytes = uint64_t{4} << 30;

// One pread() call at most this much (Linux returns at most ~2 GiB anyway).
constexpr uint64_t kReadChunk = uint64_t{1} << 30;

uint64_t round_up(uint64_t n, uint64_t to) {
  return (n + to - 1) / to * to;
}

[[noreturn]] void file_error(const std::string& label, const std::string& what) {
  throw TableReadError("decision table " + label + ": " + what);
}

// Memory for an image of `size` bytes, owned by `t`, aligned to a cache
// line (sections and blocks are laid out on 64-byte boundaries). Returns
// where to write it; t.base points at the same bytes.
uint8_t* allocate_image(DecisionTable::Impl& t, uint64_t size, const std::string& label) {
  t.size = size;
  if (size == 0) {
    static const uint64_t kNothing = 0;
    t.base = reinterpret_cast<const uint8_t*>(&kNothing);
    return nullptr;
  }
  if (size > SIZE_MAX / 2) file_error(label, "too large: " + std::to_string(size) + " bytes");
  uint8_t* image;
  if (size < kHugePage) {
    constexpr size_t kWords = tl::kSectionAlignment / sizeof(uint64_t);
    t.owned = std::make_unique_for_overwrite<uint64_t[]>(size / sizeof(uint64_t) + kWords);
    const auto address = reinterpret_cast<uintptr_t>(t.owned.get());
    image = reinterpret_cast<uint8_t*>(t.owned.get()) + (tl::align_up<tl::kSectionAlignment>(address) - address);
  } else {
    // One huge page more than needed, trimmed so that the image starts on
    // a huge page boundary (else its first and last 2 MiB stay small).
    const size_t length = round_up(size, kHugePage);
    void* p = ::mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      file_error(label, "cannot allocate " + std::to_string(size) + " bytes: " + std::strerror(errno));
    auto* start = static_cast<uint8_t*>(p);
    const auto address = reinterpret_cast<uintptr_t>(p);
    const size_t head = round_up(address, kHugePage) - address;
    if (head != 0) ::munmap(start, head);
    ::munmap(start + head + length, kHugePage - head);
    image = start + head;
    // Advice: refused (THP disabled), the image still works in 4 KiB pages.
    ::madvise(image, length, MADV_HUGEPAGE);
#ifdef MADV_POPULATE_WRITE
    // Faulting the huge pages in up front, in one call, rather than one by
    // one inside the reads measured a little faster, and never slower, on
    // memory the VM had not touched lately. Refused (before Linux 5.14),
    // the reads fault them in instead.
    ::madvise(image, length, MADV_POPULATE_WRITE);
#endif
    t.mapping = image;
    t.mapping_size = length;
  }
  t.base = image;
  return image;
}

// The validated image cannot be changed by a stray write of ours either.
// Only the mapped (large) images: heap pages are shared with other data.
void seal_image(DecisionTable::Impl& t) {
  // A failure leaves the image writable, which it has always been for us.
  if (t.mapping != nullptr) ::mprotect(t.mapping, t.mapping_size, PROT_READ);
}

bool same_state(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
         a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

// Reads the whole regular file `fd` into memory owned by `t`. The file
// must have the same size, identity and times after the read as before
// it, and must end exactly where fstat said: otherwise it was written
// while we read (a `cp` over the live table, a truncation) and the bytes
// may mix two states, so they are refused rather than validated. The
// writer finishing changes the size or the times, so a watcher that
// compares them sees the finished file as a new one.
void read_image(int fd, const std::string& label, DecisionTable::Impl& t) {
  struct stat before;
  if (::fstat(fd, &before) != 0) file_error(label, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(before.st_mode)) file_error(label, "not a regular file");
  const auto size = static_cast<uint64_t>(before.st_size);
  if (size > kMaxTableFileBytes)
    file_error(label, "too large: " + std::to_string(size) + " bytes (the limit is " +
                          std::to_string(kMaxTableFileBytes) + ")");
  // Not a table at all (a log, a certificate): said before the memory for a
  // large file is committed. The validator repeats the check on the image.
  if (size >= tl::kMagic.size()) {
    std::array<char, tl::kMagic.size()> magic{};
    ssize_t n;
    do n = ::pread(fd, magic.data(), magic.size(), 0);
    while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(magic.size()) && magic != tl::kMagic)
      // Read, and refused: a TableError, not a TableReadError.
      throw TableError("decision table " + label + ": not a tlsp decision table (wrong magic number)");
  }
  uint8_t* const image = allocate_image(t, size, label);
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, image + done, std::min(size - done, kReadChunk), static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) file_error(label, std::string("cannot read: ") + std::strerror(errno));
    if (n == 0) break;
    done += static_cast<uint64_t>(n);
  }
  char past_end;
  ssize_t more;
  do more = ::pread(fd, &past_end, 1, static_cast<off_t>(done));
  while (more < 0 && errno == EINTR);
  struct stat after;
  if (::fstat(fd, &after) != 0) file_error(label, std::string("cannot stat: ") + std::strerror(errno));
  const std::string changed = "the file changed while being read (is it being written?): ";
  if (done < size)
    file_error(label, changed + "it shrank from " + std::to_string(size) + " to " + std::to_string(done) + " bytes");
  if (more > 0) file_error(label, changed + "it grew past its " + std::to_string(size) + " bytes");
  if (more < 0) file_error(label, std::string("cannot read: ") + std::strerror(errno));
  if (!same_state(before, after)) file_error(label, changed + "it was modified");
}

// Closes a file descriptor on every path out.
struct FileDescriptor {
  explicit FileDescriptor(int f) : fd(f) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
  int fd;
};

class TableValidator {
 public:
  TableValidator(DecisionTable::Impl& t, std::string label) : t_(t), label_(std::move(label)) {}

  void validate() {
    check_identity();
    // The checksum and the structural checks each read the whole image, so
    // for a large table they run side by side (measured: hashing each
    // stretch right after checking it, on one thread, was slower). The
    // structural checks are safe on any bytes; a checksum mismatch is still
    // the error reported when both fail.
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
    check_index_slots();
    check_blocks();
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
  // of 64, with zero padding and nothing else in between: one layout per
  // content, and no bytes the checks would not cover.
  void check_sections() {
    const tl::FileHeader& h = *t_.header;
    constexpr uint64_t kAnySize = UINT64_MAX;
    const uint64_t expected_size[tl::kSectionCount] = {
        kAnySize,  // strings
        uint64_t{h.source_count} * sizeof(tl::SourceFileRecord),
        uint64_t{h.index_slot_count} * sizeof(tl::IndexSlot),
        kAnySize,  // domain blocks: checked block by block
    };
    uint64_t cursor = sizeof(tl::FileHeader);
    for (uint32_t i = 0; i < tl::kSectionCount; ++i) {
      const tl::SectionEntry& s = h.sections[i];
      const std::string name = "section " + std::to_string(i + 1);
      if (s.id != i + 1) corrupt(name + " has id " + std::to_string(s.id));
      if (s.reserved != 0) corrupt(name + ": reserved field is not zero");
      const uint64_t start = tl::align_up<tl::kSectionAlignment>(cursor);
      if (start > t_.size) corrupt(name + ": padding runs past the end of the file");
      for (uint64_t p = cursor; p < start; ++p)
        if (t_.base[p] != 0) corrupt(name + ": padding before it is not zero");
      if (s.offset != start)
        corrupt(name + " at offset " + std::to_string(s.offset) + ", expected " + std::to_string(start));
      if (s.size > t_.size - s.offset) corrupt(name + " runs past the end of the file");
      if (expected_size[i] != kAnySize && s.size != expected_size[i])
        corrupt(name + " has " + std::to_string(s.size) + " bytes, the counts give " +
                std::to_string(expected_size[i]));
      cursor = s.offset + s.size;
    }
    const uint64_t end = tl::align_up<tl::kSectionAlignment>(cursor);
    if (end != t_.size) corrupt("the file does not end where the last section does");
    for (uint64_t p = cursor; p < end; ++p)
      if (t_.base[p] != 0) corrupt("padding after the last section is not zero");

    const auto at = [&](tl::SectionId id) { return t_.base + h.sections[static_cast<int>(id) - 1].offset; };
    strings_size_ = h.sections[0].size;
    blocks_size_ = h.sections[static_cast<int>(tl::SectionId::domain_blocks) - 1].size;
    t_.strings = reinterpret_cast<const char*>(at(tl::SectionId::strings));
    t_.sources = reinterpret_cast<const tl::SourceFileRecord*>(at(tl::SectionId::sources));
    t_.slots = reinterpret_cast<const tl::IndexSlot*>(at(tl::SectionId::domain_index));
    t_.blocks = at(tl::SectionId::domain_blocks);

    check_str(h.policy_name, [] { return std::string("policy name"); });
    check_str(h.policy_version, [] { return std::string("policy version"); });
  }

  // ------------------------------------------------------------ records
  //
  // `place` is a callable returning where the record is ("domain 3
  // outbound peer 17"): messages are built only on failure, because the
  // checks below run once per record of tables with a million records.

  // The checks below run once per record of tables with a million records:
  // each is an inline test with the message built out of line, only on
  // failure.
  template <typename Place>
  [[gnu::noinline, gnu::cold]] void bad_str(const Place& place) const {
    corrupt(place() + ": string reference outside the string pool");
  }
  template <typename Place>
  void check_str(tl::StrRef r, const Place& place) const {
    if (r.offset > strings_size_ || r.length > strings_size_ - r.offset) bad_str(place);
  }

  template <typename Place>
  [[gnu::noinline, gnu::cold]] void bad_source_ref(const tl::SourceRecord& r, const Place& place) const {
    corrupt(place() + ": source file " + std::to_string(r.file) + " does not exist");
  }
  // kBuiltinFile + 1 wraps to 0, so one comparison covers both cases.
  bool bad_file(uint32_t file) const { return file + 1u > t_.source_count; }
  template <typename Place>
  void check_source_ref(const tl::SourceRecord& r, const Place& place) const {
    if (bad_file(r.file)) bad_source_ref(r, place);
  }

  template <typename Place>
  void check_provenance(const tl::RuleProvenance& p, const Place& place) const {
    if (bad_file(p.origin.file) || bad_file(p.level_from.file) || bad_file(p.min_tls_from.file)) {
      check_source_ref(p.origin, place);
      check_source_ref(p.level_from, place);
      check_source_ref(p.min_tls_from, place);
    }
  }

  template <typename Place>
  [[gnu::noinline, gnu::cold]] void bad_rule(uint8_t level, uint8_t min_tls, const Place& place) const {
    if (level >= kLevelCount) corrupt(place() + ": level " + std::to_string(level) + " out of range");
    corrupt(place() + ": min_tls " + std::to_string(min_tls) + " out of range");
  }
  template <typename Place>
  void check_rule(uint8_t level, uint8_t min_tls, const Place& place) const {
    if ((level >= kLevelCount) | (min_tls >= kMinTlsCount)) bad_rule(level, min_tls, place);
  }

  template <typename Place>
  void check_zero(const uint8_t* begin, const uint8_t* end, const Place& place) const {
    uint64_t any = 0;
    for (; end - begin >= 8; begin += 8) {
      uint64_t word;
      std::memcpy(&word, begin, 8);
      any |= word;
    }
    for (; begin < end; ++begin) any |= *begin;
    if (any != 0) corrupt(place() + ": padding is not zero");
  }

  void check_sources() {
    for (uint32_t i = 0; i < t_.source_count; ++i)
      check_str(t_.sources[i].path, [&] { return "source file " + std::to_string(i); });
  }

  // Empty slots are clean and exactly domain_count slots are in use (so at
  // least half are empty and every probe ends). check_blocks() then finds
  // each listed domain from its home slot.
  void check_index_slots() const {
    const uint64_t slot_count = t_.slot_mask + 1;
    uint64_t used = 0;
    for (uint64_t s = 0; s < slot_count; ++s) {
      const tl::IndexSlot& slot = t_.slots[s];
      if (slot.block == tl::kEmptySlot) {
        if (slot.fingerprint != 0) corrupt("domain index: empty slot with a fingerprint");
      } else {
        ++used;
      }
    }
    if (used != t_.domain_count)
      corrupt("domain index: " + std::to_string(used) + " slots in use for " + std::to_string(t_.domain_count) +
              " domains");
  }

  std::string block_place(uint64_t b) const {
    return b == 0 ? "default domain" : "domain " + std::to_string(b - 1);
  }

  // The blocks tile the block section: the default domain's, then one per
  // listed domain in strictly increasing name order. Within each, every
  // part sits exactly where the layout puts it (table_layout.h), so a
  // valid block has no byte the checks do not cover.
  void check_blocks() const {
    uint64_t pos = 0;
    uint64_t peers = 0;
    std::string_view previous_name;
    uint64_t prefetched = 0;
    for (uint64_t b = 0; b <= t_.domain_count; ++b) {
      const auto place = [&] { return block_place(b); };
      // Each block is read as three short streams (records, selector
      // bytes, provenance), too short for the hardware prefetcher to
      // follow: fetch ahead of the walk.
      for (const uint64_t until = std::min(pos + kPrefetchAhead, blocks_size_); prefetched < until;
           prefetched += tl::kBlockAlignment)
        __builtin_prefetch(t_.blocks + prefetched);
      if (blocks_size_ - pos < tl::kBlockHeaderSize) corrupt(place() + ": block runs past the block section");
      const uint8_t* const base = t_.blocks + pos;
      const tl::BlockHeader& h = *reinterpret_cast<const tl::BlockHeader*>(base);
      if (h.size % tl::kBlockAlignment != 0 || h.size > blocks_size_ - pos)
        corrupt(place() + ": block size " + std::to_string(h.size) + " does not fit");
      if (h.reserved != 0 || h.reserved2 != 0) corrupt(place() + ": reserved field is not zero");
      const BlockView block(base);
      const std::string_view name(reinterpret_cast<const char*>(base + tl::kBlockHeaderSize), h.name_length);
      const uint64_t records = tl::records_offset(h.name_length);
      uint64_t name_hash = 0;
      // From here on every read is checked against h.size, which lies inside
      // the section.
      if (records > h.size) corrupt(place() + ": block too small for its name");
      check_zero(base + tl::kBlockHeaderSize + h.name_length, base + records, place);
      if (b == 0) {
        if (!name.empty()) corrupt("the default domain has a name");
      } else {
        if (!tl::is_stored_name(name)) corrupt(place() + ": not a normalised domain name");
        // Sorted and unique, so decode() is canonical and names are unique.
        if (b > 1 && !(previous_name < name)) corrupt(place() + ": domains out of order");
        previous_name = name;
        // Probed once the block is checked: the slot is a cache miss, and
        // this gives it time to arrive.
        name_hash = tl::name_hash(name);
        __builtin_prefetch(&t_.slots[name_hash & t_.slot_mask]);
      }

      uint64_t n = 0;
      for (int dir = 0; dir < 2; ++dir) {
        check_rule(h.level[dir], h.min_tls[dir], [&] { return direction_place(b, dir) + " default peer"; });
        for (int kind = 0; kind < 4; ++kind) n += h.kind_count[dir][kind];
      }
      if (n > (h.size - records) / sizeof(tl::PeerRecord)) corrupt(place() + ": peer records run past the block");
      uint64_t cursor = records + n * sizeof(tl::PeerRecord);  // selector bytes, in record order
      const tl::PeerRecord* const record = block.records();
      uint64_t i = 0;
      for (int dir = 0; dir < 2; ++dir)
        for (int kind = 0; kind < 4; ++kind) {
          const uint64_t group_end = i + h.kind_count[dir][kind];
          for (const uint64_t group_begin = i; i < group_end; ++i)
            cursor = check_peer(block, record, i, group_begin, static_cast<SelectorKind>(kind), cursor,
                                [&] { return direction_place(b, dir) + " peer " + std::to_string(i); });
        }
      const uint64_t provenance = tl::provenance_offset(cursor);
      if (h.provenance != provenance || tl::block_size(provenance, n) != h.size)
        corrupt(place() + ": block size or provenance offset does not match its contents");
      check_zero(base + cursor, base + provenance, place);
      const tl::BlockProvenance& bp = block.provenance();
      check_source_ref(bp.origin, place);
      for (int dir = 0; dir < 2; ++dir)
        check_provenance(bp.default_peer[dir], [&] { return direction_place(b, dir) + " default peer"; });
      for (uint64_t j = 0; j < n; ++j)
        check_provenance(block.peer_provenance(j), [&] { return place() + " peer " + std::to_string(j); });
      check_zero(base + provenance + sizeof(tl::BlockProvenance) + n * sizeof(tl::PeerProvenance), base + h.size,
                 place);
      if (b > 0) check_indexed(name_hash, pos, place);
      if (n > uint64_t{t_.peer_count} - peers) corrupt(place() + ": more peers than the header counts");
      peers += n;
      pos += h.size;
    }
    if (pos != blocks_size_) corrupt("unused bytes after the last domain block");
    if (peers != t_.peer_count) corrupt("the header counts more peers than the blocks hold");
  }

  std::string direction_place(uint64_t b, int dir) const {
    return block_place(b) + " " + std::string(to_string(static_cast<Direction>(dir)));
  }

  // The listed domain whose block is at `pos` is reachable from its home
  // slot without crossing an empty slot, with the right fingerprint. Since
  // exactly domain_count slots are in use and each domain finds its own,
  // every used slot names a listed domain's block, exactly once.
  template <typename Place>
  void check_indexed(uint64_t hash, uint64_t pos, const Place& place) const {
    const uint64_t block = pos / tl::kBlockAlignment;
    // At most one lap: check_index_slots() proved an empty slot exists,
    // but a loop that ends whatever the bytes costs nothing here.
    for (uint64_t s = hash & t_.slot_mask, probes = 0; probes <= t_.slot_mask; s = (s + 1) & t_.slot_mask, ++probes) {
      const tl::IndexSlot& slot = t_.slots[s];
      if (slot.block == tl::kEmptySlot) corrupt(place() + ": not reachable in the domain index from its home slot");
      if (slot.block == block) {
        if (slot.fingerprint != static_cast<uint32_t>(hash >> 32))
          corrupt("domain index: fingerprint does not match the domain name");
        return;
      }
    }
    corrupt(place() + ": not reachable in the domain index from its home slot");
  }

  // Record i of the block, in a group of `kind` starting at group_begin,
  // whose selector bytes must start at `cursor`. Returns where they end.
  template <typename Place>
  uint64_t check_peer(const BlockView& block, const tl::PeerRecord* records, uint64_t i, uint64_t group_begin,
                      SelectorKind kind, uint64_t cursor, const Place& place) const {
    const tl::PeerRecord& p = records[i];
    check_rule(p.level, p.min_tls, place);
    if (p.selector != cursor) corrupt(place() + ": selector bytes not where the layout puts them");
    if (p.length > block.size() - cursor) corrupt(place() + ": selector runs past the block");
    const std::string_view bytes = block.selector(p);
    const bool is_name = kind == SelectorKind::exact || kind == SelectorKind::wildcard;
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
    if (i > group_begin && !precedes(block, records[i - 1], p, is_name)) corrupt(place() + ": peers out of order");
    return cursor + p.length;
  }

  // Strictly increasing in the canonical order (table_layout.h): the
  // lookup's binary searches need it, and strictness rules out duplicates.
  static bool precedes(const BlockView& block, const tl::PeerRecord& a, const tl::PeerRecord& b, bool is_name) {
    if (!is_name && a.prefix_len != b.prefix_len) return a.prefix_len > b.prefix_len;
    if (a.key != b.key) return a.key < b.key;
    return block.selector(a) < block.selector(b);
  }

  DecisionTable::Impl& t_;
  std::string label_;
  uint64_t strings_size_ = 0;
  uint64_t blocks_size_ = 0;
};

}  // namespace

DecisionTable::DecisionTable(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DecisionTable::DecisionTable(DecisionTable&&) noexcept = default;
DecisionTable& DecisionTable::operator=(DecisionTable&&) noexcept = default;
DecisionTable::~DecisionTable() = default;

DecisionTable DecisionTable::open(const std::string& path) {
  const std::string label = "`" + path + "`";
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer before
  // read_image() could refuse it; it changes nothing for a regular file.
  const FileDescriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (file.fd < 0) file_error(label, std::string("cannot open: ") + std::strerror(errno));
  auto impl = std::make_unique<Impl>();
  read_image(file.fd, label, *impl);
  TableValidator(*impl, label).validate();
  seal_image(*impl);
  return DecisionTable(std::move(impl));
}

DecisionTable DecisionTable::from_bytes(std::string_view bytes) {
  auto impl = std::make_unique<Impl>();
  // Copied, aligned like a file image: a string_view's data promises no alignment.
  const std::string label = "(in memory)";
  if (uint8_t* image = allocate_image(*impl, bytes.size(), label)) std::memcpy(image, bytes.data(), bytes.size());
  TableValidator(*impl, label).validate();
  seal_image(*impl);
  return DecisionTable(std::move(impl));
}

}  // namespace tlsp
