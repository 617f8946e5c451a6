// tlsp/tlsrpt_delivery.h — the network half of sending a TLSRPT report
// (RFC 8460 §3, §5.4): discovering where a policy domain wants it
// (`_smtp._tls.<domain>` TXT through the relay's resolver) and POSTing it
// to an https collector (libcurl, the relay's one HTTPS setup, shared with
// the MTA-STS fetch). Building the report and the mail, and retrying, are
// tlsp/tlsrpt_send.h's.
//
// Contract:
//  * discover_tlsrpt(): an invalid policy domain sends no query; TXT
//    `_smtp._tls.<domain>` (DNSSEC not required: RFC 8460 asks for none,
//    and a forged record can at worst send a report elsewhere, which holds
//    only what the sender saw); select_tlsrpt_record() decides. No record,
//    several, an invalid one, or a failed lookup: no record, and the
//    detail says why (for the log).
//  * post_tlsrpt_report() POSTs `body` (the gzipped report) with
//    Content-Type application/tlsrpt+gzip to an https: URI, connecting
//    only to the addresses given (from the relay's resolver; the host name
//    is still what TLS checks), TLS 1.2 or later, WebPKI verified, no
//    redirects followed (RFC 8460 §5.4 wants a "successful" answer from the
//    URI published; a redirect is not one, and following it would send the
//    report where the domain did not say), within `timeout`, reading at
//    most kMaxTlsrptResponseBytes of the answer (the rest is not read). A
//    2xx status is delivered; anything else is a failure, `permanent`
//    never (the outbox retries every failure until it gives up: a
//    collector's 4xx is as often a passing fault as a final one).
//    TlsrptPostConfig::cancel, when set, aborts a transfer within about a
//    second of becoming true (a relay that stops must not wait out a
//    hanging collector); the result is then a failure saying so.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/dns.h"
#include "tlsp/tlsrpt_record.h"

namespace tlsp {

// A collector's answer is only looked at for its status; the body is read
// up to this many bytes for the log and then the transfer is stopped.
inline constexpr size_t kMaxTlsrptResponseBytes = 16 * 1024;
// RFC 8460 gives no figure; a POST of a report of a few KiB to a hundred
// KiB takes well under a second. Bounded so that a slow collector cannot
// hold a sender.
inline constexpr std::chrono::milliseconds kDefaultTlsrptPostTimeout{30000};

struct TlsrptDiscovery {
  std::optional<TlsrptRecord> record;
  std::string detail;  // what happened, for logs
};

// "_smtp._tls." + domain
std::string tlsrpt_txt_name(std::string_view domain);

TlsrptDiscovery discover_tlsrpt(std::string_view domain, const dns::Resolver& resolver);

struct TlsrptPostConfig {
  std::string ca_file;  // PEM trust anchors; empty: libcurl's default bundle
  std::chrono::milliseconds timeout = kDefaultTlsrptPostTimeout;
  const std::atomic<bool>* cancel = nullptr;  // true: abort (the relay is stopping); null: never
};

struct TlsrptPostResult {
  bool delivered = false;  // a 2xx status
  long status = 0;         // the HTTP status, 0 when there was none
  std::string detail;      // for logs: what happened
};

// `uri` must be an https: URI (parse_tlsrpt_uri()); addresses are IP
// literals, tried in order.
TlsrptPostResult post_tlsrpt_report(const TlsrptUri& uri, std::string_view body,
                                    const std::vector<std::string>& addresses, const TlsrptPostConfig& config);
// The same, the host resolved with the relay's resolver first (a failed
// resolution is a failed delivery).
TlsrptPostResult post_tlsrpt_report(const TlsrptUri& uri, std::string_view body, const dns::Resolver& resolver,
                                    const TlsrptPostConfig& config);

}  // namespace tlsp
