// tlsp/mta_sts.h — MTA-STS (RFC 8461) text formats: the `_mta-sts` TXT
// record, the policy file served at
// https://mta-sts.<domain>/.well-known/mta-sts.txt, and MX host matching.
// Shared by the simulator (which scripts TXT records and policy bodies) and
// the relay (which fetches them).
//
// Contract: pure functions, no I/O, no allocation beyond their results;
// every input (however long or malformed) gives a result, never an
// exception or a crash: these texts come from the network.
//  * parse_mta_sts_txt() follows the ABNF of RFC 8461 §3.1 strictly:
//    `v=STSv1` first, then fields separated by `;` (with optional spaces
//    around it), exactly one `id=` of 1..32 letters and digits; other
//    fields must be well formed and are ignored. Trailing spaces are
//    tolerated. An invalid record means "no MTA-STS" (RFC 8461 §3.1).
//  * parse_mta_sts_policy() follows the ABNF of RFC 8461 §3.2 strictly:
//    `key: value` lines ended by LF or CRLF; `version: STSv1`, `mode` and
//    `max_age` (at most 31557600) are required, each at most once; one or
//    more `mx` unless the mode is `none`; other well-formed keys are
//    ignored. Keys are case-sensitive. A body above kMaxStsPolicyBytes is
//    invalid.
//  * mta_sts_mx_matches() is RFC 8461 §4.1: case-insensitive, a trailing
//    dot on the host ignored, `*.` covering exactly one leftmost label.
//    IDNA (U-labels) is out of scope: names are compared as ASCII.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tlsp/engine.h"

namespace tlsp {

// RFC 8461 §3.2: max_age is at most 31557600 seconds (about a year).
inline constexpr uint32_t kMaxStsMaxAge = 31557600;
// RFC 8461 §3.3: senders may limit the policy body; 64 KiB is the RFC's
// example and SPEC §4's limit.
inline constexpr size_t kMaxStsPolicyBytes = 64 * 1024;

struct MtaStsTxt {
  std::string id;
};

struct MtaStsPolicy {
  StsMode mode = StsMode::none;
  uint32_t max_age = 0;
  std::vector<std::string> mx;  // patterns as written: `mail.example.com`, `*.example.net`
};

// A parse result: the value, or a one-line reason (lower case, user text in
// backticks) saying why the text is not valid.
template <typename T>
struct MtaStsParse {
  std::optional<T> value;
  std::string problem;
  explicit operator bool() const { return value.has_value(); }
};

MtaStsParse<MtaStsTxt> parse_mta_sts_txt(std::string_view record);
MtaStsParse<MtaStsPolicy> parse_mta_sts_policy(std::string_view body);

// A policy's text, a line each in the RFC 8461 §3.2 order without line
// ends: `version: STSv1`, `mode: M`, one `mx: P` per pattern as written,
// `max_age: N`. What a TLSRPT report gives as the policy's policy-string
// (RFC 8460 §4.3); parse_mta_sts_policy() of the lines joined with CRLF
// gives the same policy back.
std::vector<std::string> mta_sts_policy_lines(const MtaStsPolicy& policy);

// The TXT record's fields as key/value pairs, without validating them:
// empty fields and spaces around `;` and at either end are skipped. For
// logs and diagnostics; decisions use parse_mta_sts_txt().
std::vector<std::pair<std::string, std::string>> split_mta_sts_txt(std::string_view record);

bool mta_sts_mx_matches(std::string_view mx_host, std::string_view pattern);
bool mta_sts_mx_matches(std::string_view mx_host, const std::vector<std::string>& patterns);

// RFC 8461 §3.3: the policy response's media type must be text/plain
// (parameters such as charset allowed), case-insensitive.
bool is_text_plain_content_type(std::string_view content_type);

}  // namespace tlsp
