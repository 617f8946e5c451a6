// The definitions the table writer and the table loader share
// (table_layout.h): one copy of each, so the two can never disagree on a
// hash, an order or a checksum.
#include <algorithm>
#include <cstring>

#include "table_layout.h"

namespace tlsp::table_layout {

bool is_stored_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength || name.back() == '.') return false;
  // Eight bytes at a time (a table load checks a million names): a byte's
  // top bit ends up set iff its low seven bits are in 'A'..'Z' and its own
  // top bit is clear.
  constexpr uint64_t kOnes = 0x0101010101010101u;
  uint64_t upper = 0;
  size_t i = 0;
  for (; i + 8 <= name.size(); i += 8) {
    uint64_t x;
    std::memcpy(&x, name.data() + i, 8);
    const uint64_t low7 = x & (0x7F * kOnes);
    upper |= ((low7 + (0x80 - 'A') * kOnes) ^ (low7 + (0x7F - 'Z') * kOnes)) & ~x;
  }
  for (; i < name.size(); ++i) upper |= (name[i] >= 'A' && name[i] <= 'Z') ? 0x80 : 0;
  return (upper & (0x80 * kOnes)) == 0;
}

bool host_bits_clear(const uint8_t* address, size_t size, unsigned prefix_len) {
  for (size_t i = 0; i < size; ++i) {
    const unsigned first_bit = static_cast<unsigned>(i) * 8;
    if (first_bit >= prefix_len) {
      if (address[i] != 0) return false;
    } else if (prefix_len - first_bit < 8) {
      const auto host_mask = static_cast<uint8_t>(0xFFu >> (prefix_len - first_bit));
      if ((address[i] & host_mask) != 0) return false;
    }
  }
  return true;
}

uint32_t peer_key(const PeerEntry& peer) {
  if (peer.kind == SelectorKind::exact || peer.kind == SelectorKind::wildcard)
    return name_key(peer.name);
  return address_key(peer.address.data());
}

bool peer_precedes(const PeerEntry& a, uint32_t a_key, const PeerEntry& b, uint32_t b_key) {
  if (a.kind != b.kind) return a.kind < b.kind;
  if (a.kind == SelectorKind::exact || a.kind == SelectorKind::wildcard) {
    if (a_key != b_key) return a_key < b_key;
    return a.name < b.name;
  }
  if (a.prefix_len != b.prefix_len) return a.prefix_len > b.prefix_len;
  // The key is the address's first four bytes, so comparing it first
  // agrees with comparing the bytes.
  if (a_key != b_key) return a_key < b_key;
  return std::memcmp(a.address.data(), b.address.data(), address_size(a.kind)) < 0;
}

std::array<uint8_t, 16> table_checksum(std::string_view file) noexcept {
  static const uint8_t kZeros[kChecksumSize] = {};
  // Streaming gives the same hash as one call over the file with the field
  // zeroed, without copying the file.
  XXH3_state_t state;
  XXH3_INITSTATE(&state);
  XXH3_128bits_reset(&state);
  XXH3_128bits_update(&state, file.data(), kChecksumOffset);
  XXH3_128bits_update(&state, kZeros, kChecksumSize);
  XXH3_128bits_update(&state, file.data() + kChecksumOffset + kChecksumSize,
                      file.size() - kChecksumOffset - kChecksumSize);
  const XXH128_hash_t hash = XXH3_128bits_digest(&state);
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);
  std::array<uint8_t, 16> out;
  std::memcpy(out.data(), canonical.digest, out.size());
  return out;
}

}  // namespace tlsp::table_layout
