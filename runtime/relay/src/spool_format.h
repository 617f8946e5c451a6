// spool_format.h — the spool's on-disk format as the store and the
// recovery use it: the names of batches, entries and files, and what an
// entry may hold. The envelope text itself is tlsp/spool.h's
// serialize_envelope() / parse_envelope(); docs/spool.md describes the
// layout. Not a public header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tlsp/spool.h"

namespace tlsp::spool {

// In a batch directory `queue/<batch>/`: the message, and one envelope per
// entry, `<n>.env`; `<n>.env.tmp` is an update() not yet renamed.
inline constexpr std::string_view kDataName = "data";
inline constexpr std::string_view kEnvSuffix = ".env";
inline constexpr std::string_view kTmpSuffix = ".env.tmp";
inline constexpr size_t kMaxBatchNameBytes = 64;

// A batch is `<hex>-<hex>-<hex>`, an entry index a decimal below
// kMaxSpoolEntriesPerStore, an entry id `<batch>.<index>`.
bool valid_batch_name(std::string_view s);
bool valid_index(std::string_view s);
bool valid_entry_id(std::string_view id);

// Why `e` cannot go into an envelope (a line break, a length, a count out
// of bounds), or nullopt.
std::optional<std::string> entry_problem(const QueueEntry& e);
// A reply or error text as an envelope keeps it (kMaxSpoolTextBytes).
std::string cut_text(std::string_view s);

// An envelope value's escaping (every byte outside `!`..`~`, and `%`, as
// %XX upper case) and its strict inverse; the control protocol
// (tlsp/queue_control.h) writes its values the same way.
std::string escape_value(std::string_view s);
std::optional<std::string> unescape_value(std::string_view s);
// A decimal without sign or leading zeros, as envelopes write numbers.
std::optional<uint64_t> parse_count(std::string_view s);

}  // namespace tlsp::spool
