// table_view.h — DecisionTable::Impl: the bytes of one table (mapped or
// owned) and typed pointers into its sections.
//
// An Impl is only handed out after decision_table_load.cpp has validated
// the whole image, so the lookup and decode code may index every section
// with the counts and references the file holds without checking them
// again: every StrRef is inside the pool, every peer range inside the peer
// array, every index slot is empty or names a listed domain.
#pragma once

#include <sys/mman.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "table_layout.h"
#include "tlsp/decision_table.h"

namespace tlsp {

struct DecisionTable::Impl {
  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    if (mapping != nullptr) ::munmap(mapping, mapping_size);
  }

  // The image: either a read-only private mapping or owned 8-byte-aligned
  // memory (from_bytes), never both.
  void* mapping = nullptr;
  size_t mapping_size = 0;
  std::unique_ptr<uint64_t[]> owned;
  const uint8_t* base = nullptr;
  uint64_t size = 0;

  // Sections, set by the validator as it goes.
  const table_layout::FileHeader* header = nullptr;
  const char* strings = nullptr;
  const table_layout::SourceFileRecord* sources = nullptr;
  const table_layout::DomainRecord* domains = nullptr;  // domain_count + 1
  const table_layout::IndexSlot* slots = nullptr;
  const table_layout::PeerRecord* peers = nullptr;
  const table_layout::PeerProvenance* provenance = nullptr;
  uint32_t source_count = 0;
  uint32_t domain_count = 0;
  uint32_t peer_count = 0;
  uint64_t slot_mask = 0;

  std::string_view str(table_layout::StrRef r) const { return {strings + r.offset, r.length}; }
  const table_layout::DomainRecord& default_domain() const { return domains[domain_count]; }

  // The listed domain with exactly this (normalised) name, or nullptr.
  const table_layout::DomainRecord* find_domain(std::string_view name) const {
    const uint64_t h = table_layout::name_hash(name);
    const auto fingerprint = static_cast<uint32_t>(h >> 32);
    // Ends: the validator made sure at least one slot is empty.
    for (uint64_t i = h & slot_mask;; i = (i + 1) & slot_mask) {
      const table_layout::IndexSlot& slot = slots[i];
      if (slot.domain == table_layout::kEmptySlot) return nullptr;
      if (slot.fingerprint == fingerprint) {
        const table_layout::DomainRecord& d = domains[slot.domain];
        if (str(d.name) == name) return &d;
      }
    }
  }
};

}  // namespace tlsp
