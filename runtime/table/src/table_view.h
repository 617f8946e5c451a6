// table_view.h — DecisionTable::Impl: the bytes of one table, in memory
// it owns, and typed access to its sections and domain blocks.
//
// An Impl is only handed out after decision_table_load.cpp has validated
// the whole image, so the lookup and decode code may follow every count and
// offset the file holds without checking them again: every non-empty index
// slot names the start of a listed domain's block, every block's records,
// selector bytes and provenance lie inside the block, every StrRef inside
// the pool. That holds because the bytes are the table's own: never a
// mapping of a file that someone else could rewrite after validation.
#pragma once

#include <sys/mman.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "table_layout.h"
#include "tlsp/decision_table.h"

namespace tlsp {

// A validated domain block (table_layout.h), read in place.
class BlockView {
 public:
  BlockView() = default;
  explicit BlockView(const uint8_t* base) : base_(base) {}

  const uint8_t* base() const { return base_; }
  const table_layout::BlockHeader& header() const {
    return *reinterpret_cast<const table_layout::BlockHeader*>(base_);
  }
  uint32_t size() const { return header().size; }
  std::string_view name() const {
    return {reinterpret_cast<const char*>(base_ + table_layout::kBlockHeaderSize), header().name_length};
  }
  // All records of the block: outbound, then inbound.
  const table_layout::PeerRecord* records() const {
    return reinterpret_cast<const table_layout::PeerRecord*>(base_ +
                                                             table_layout::records_offset(header().name_length));
  }
  uint32_t record_count(int dir) const {
    const uint32_t* k = header().kind_count[dir];
    return k[0] + k[1] + k[2] + k[3];
  }
  std::string_view selector(const table_layout::PeerRecord& r) const {
    return {reinterpret_cast<const char*>(base_ + r.selector), r.length};
  }
  const table_layout::BlockProvenance& provenance() const {
    return *reinterpret_cast<const table_layout::BlockProvenance*>(base_ + header().provenance);
  }
  // The provenance of record i of the block (counting from the first outbound record).
  const table_layout::PeerProvenance& peer_provenance(uint64_t i) const {
    return reinterpret_cast<const table_layout::PeerProvenance*>(base_ + header().provenance +
                                                                 sizeof(table_layout::BlockProvenance))[i];
  }
  BlockView next() const { return BlockView(base_ + size()); }

 private:
  const uint8_t* base_ = nullptr;
};

struct DecisionTable::Impl {
  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    if (mapping != nullptr) ::munmap(mapping, mapping_size);
  }

  // The image, aligned to a cache line, in memory the table owns: an
  // anonymous mapping (large images, read-only once validated) or the heap
  // (small ones), never both, and never a mapping of the file.
  void* mapping = nullptr;
  size_t mapping_size = 0;
  std::unique_ptr<uint64_t[]> owned;
  const uint8_t* base = nullptr;
  uint64_t size = 0;

  // Sections, set by the validator as it goes.
  const table_layout::FileHeader* header = nullptr;
  const char* strings = nullptr;
  const table_layout::SourceFileRecord* sources = nullptr;
  const table_layout::IndexSlot* slots = nullptr;
  const uint8_t* blocks = nullptr;  // the default domain's block, then the listed domains'
  uint32_t source_count = 0;
  uint32_t domain_count = 0;
  uint32_t peer_count = 0;
  uint64_t slot_mask = 0;

  std::string_view str(table_layout::StrRef r) const { return {strings + r.offset, r.length}; }
  BlockView default_domain() const { return BlockView(blocks); }
  const table_layout::IndexSlot* home_slot(uint64_t hash) const { return &slots[hash & slot_mask]; }
  const uint8_t* block_at(const table_layout::IndexSlot& slot) const {
    return blocks + uint64_t{slot.block} * table_layout::kBlockAlignment;
  }
};

}  // namespace tlsp
