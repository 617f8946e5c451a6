// store_codec.h — the canonical form of a Policy and of a FailureDetail in
// a store: the key a store counts them under (SQLite rows, Redis hash
// fields), and decoded back for summaries(). Internal to the stores.
//
// The form is a list of netstrings (`LEN:BYTES,`), every field in a fixed
// order and every list with its count first, so that two values have the
// same form exactly when they are equal (policy strings keep their order).
// decode_*() read what encode_*() wrote and refuse anything else (a store
// written by something else): linear, bounded by the input.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "tlsp/tlsrpt.h"

namespace tlsp::tlsrpt::codec {

std::string encode_policy(const Policy& p);
std::optional<Policy> decode_policy(std::string_view text);
std::string encode_detail(const FailureDetail& d);
std::optional<FailureDetail> decode_detail(std::string_view text);
// A netstring: what a store joins several canonical forms with.
std::string netstring(std::string_view s);
// The next netstring of `text`, consumed; nothing when malformed.
std::optional<std::string_view> next_netstring(std::string_view& text);

}  // namespace tlsp::tlsrpt::codec
