// tlsp/tlsrpt_record.h — the SMTP TLS Reporting (RFC 8460 §3) TXT record
// published at `_smtp._tls.<policy domain>`: where a domain wants its
// TLSRPT reports sent. Pure functions, no I/O (net formats, like
// tlsp/mta_sts.h); the lookup is tlsp/tlsrpt_delivery.h's.
//
// Contract:
//  * parse_tlsrpt_txt() follows the ABNF of RFC 8460 §3 strictly:
//    `v=TLSRPTv1` first, then fields separated by `;` (optional spaces
//    around it, a final `;` allowed, trailing spaces tolerated); exactly one
//    `rua=` field holding one or more URIs separated by `,` (optional
//    spaces around it); other fields must be well-formed extensions
//    (`name=value`, RFC 8460's tlsrpt-ext-name / tlsrpt-ext-value) and are
//    ignored. A URI may hold only RFC 3986 characters other than `,`, `;`
//    and `!` (RFC 8460: commas and exclamation points MUST be encoded).
//    Schemes other than `mailto:` and `https:` are ignored (kept in
//    `ignored`); a `mailto:` must name exactly one address `local@domain`
//    (percent-decoded, a host name domain, no header fields honoured), an
//    `https:` a host name (no user info, no IP literal: the collector is
//    reached by name through the relay's resolver and checked by WebPKI),
//    an optional port, no fragment. A malformed URI of a supported scheme
//    makes the whole record invalid: a record we only half understand is
//    not one we act on. At least one usable URI must remain.
//  * select_tlsrpt_record() is RFC 8460 §3's rule for a TXT RRset (each
//    record's strings already concatenated without spaces, as
//    tlsp/dns.h's txt() returns them): records that do not begin with
//    `v=TLSRPTv1` (followed by `;`, a space or the end) are discarded; if
//    the number left is not exactly one, the domain does not implement
//    TLSRPT; the one left must parse.
//  * Limits: a record longer than kMaxTlsrptRecordBytes, a `rua` with more
//    than kMaxTlsrptUris URIs, an address or a URI longer than
//    kMaxTlsrptUriBytes is invalid. Parsing is linear in the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tlsp {

// A TXT RRset is at most 64 KiB on the wire; a TLSRPT record of a few
// URIs is well under 1 KiB. 4 KiB leaves room for long https paths.
inline constexpr size_t kMaxTlsrptRecordBytes = 4096;
// DMARC senders commonly cap destinations; a report goes to each URI, so
// the count bounds what one record can make us send.
inline constexpr size_t kMaxTlsrptUris = 8;
inline constexpr size_t kMaxTlsrptUriBytes = 1024;

enum class TlsrptScheme : uint8_t { mailto, https };

struct TlsrptUri {
  TlsrptScheme scheme = TlsrptScheme::https;
  std::string uri;      // as published
  std::string address;  // mailto: the decoded address `local@domain` (domain in normal form)
  std::string host;     // https: the host name in normal form
  uint16_t port = 443;  // https: the port (443 unless given)
  std::string path;     // https: path and query, "/" when empty
  friend bool operator==(const TlsrptUri&, const TlsrptUri&) = default;
};

struct TlsrptRecord {
  std::vector<TlsrptUri> rua;        // in record order, mailto and https only
  std::vector<std::string> ignored;  // URIs of other schemes, as published
};

// A parse result: the value, or a one-line reason (lower case, user text in
// backticks) saying why the text is not a usable record.
struct TlsrptParse {
  std::optional<TlsrptRecord> value;
  std::string problem;
  explicit operator bool() const { return value.has_value(); }
};

TlsrptParse parse_tlsrpt_txt(std::string_view record);
TlsrptParse select_tlsrpt_record(const std::vector<std::string>& txt_records);

// One URI on its own (the rules above); `--to URI` on the command line goes
// through it too. Nothing, with `problem` set, for a malformed URI or an
// unsupported scheme.
std::optional<TlsrptUri> parse_tlsrpt_uri(std::string_view uri, std::string* problem);

}  // namespace tlsp
