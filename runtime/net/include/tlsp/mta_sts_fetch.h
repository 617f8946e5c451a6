// tlsp/mta_sts_fetch.h — MTA-STS policy discovery for the relay (RFC 8461
// §3-§5, SPEC §4): the `_mta-sts` TXT lookup, the HTTPS policy fetch
// (libcurl), and the facts the enforcement engine
// gets for one MX host.
//
// Contract:
//  * fetch_mta_sts_policy() GETs
//    https://mta-sts.<domain>/.well-known/mta-sts.txt, connecting only to
//    the given addresses (pinned, never resolved by libcurl), HTTPS only,
//    TLS 1.2 or later, the certificate verified against ca_file (curl's
//    default bundle when empty) with the host name, no redirects, status
//    200 only, Content-Type text/plain, a body of at most max_body bytes
//    (the transfer is aborted as soon as the announced Content-Length or
//    the received bytes exceed it), within `timeout` in all; no proxy from
//    the environment, no cookies, no compression. Status:
//      ok          200, text/plain, the body is a valid policy
//      invalid     the body is not a valid policy (parse_mta_sts_policy)
//      bad_cert    the certificate was not accepted
//      http_error  another status (redirects too), another media type, a
//                  body above max_body, a malformed response
//      timeout     no address, connection refused or reset, time exceeded,
//                  a handshake failure that is not about the certificate
//    Thread-safe; curl_global_init() runs once.
//  * The policy cache (MtaStsCache, its stores, the entry's form) is
//    tlsp/mta_sts_cache.h's.
//  * discover_mta_sts() is RFC 8461 §3-§5 for one recipient domain at time
//    `now` (seconds since the epoch, injected for tests):
//      - an invalid policy domain (leading dot, empty label, not a host
//        name) gives no policy and sends no query; one trailing dot is
//        dropped;
//      - TXT `_mta-sts.<domain>`: records not starting with `v=STSv1` are
//        discarded; exactly one must remain and parse (§3.1), else no TXT;
//      - the TXT id equals the unexpired cached policy's id: the cached
//        policy is current, nothing is fetched (from_cache);
//      - otherwise mta-sts.<domain> is resolved with the relay's resolver
//        (a failed resolution is a failed fetch) and the policy fetched; a
//        successful fetch replaces the cached policy;
//      - whatever failed (TXT missing or failing, fetch failing), the
//        unexpired cached policy is reported in `cached`, and the engine
//        falls back to it (SPEC §4);
//      - a cache that cannot be read (a Redis server down) is one with
//        nothing cached, and a put that fails leaves the fetched policy in
//        force for this delivery; both are said in `detail`, which the
//        caller logs.
//  * sts_facts_for_mx() maps a discovery to the engine's MtaStsFacts for
//    one MX host; mx_match is checked against the policy in force (the
//    current one when the TXT record and the fetch or cache were good, else
//    the cached one).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/dns.h"
#include "tlsp/engine.h"
#include "tlsp/mta_sts.h"
#include "tlsp/mta_sts_cache.h"

namespace tlsp {

// The default for StsFetchConfig::timeout: RFC 8461 §3.3 asks for a
// timeout "on the order of" a minute at most; a queue runner waits less.
inline constexpr std::chrono::milliseconds kDefaultStsFetchTimeout{10000};

struct StsFetchConfig {
  std::string ca_file;  // PEM trust anchors; empty: libcurl's default bundle
  uint16_t https_port = 443;
  std::chrono::milliseconds timeout = kDefaultStsFetchTimeout;  // the whole fetch
  size_t max_body = kMaxStsPolicyBytes;
};

struct StsFetchResult {
  StsFetch status = StsFetch::timeout;
  std::optional<MtaStsPolicy> policy;  // when ok
  std::string body;                    // when ok: the policy text (for the cache)
  std::string detail;                  // why it failed, for logs
};

// The host name the policy is served from: "mta-sts." + domain.
std::string mta_sts_policy_host(std::string_view domain);

// `domain` lower-cased without a trailing dot if it is a valid policy
// domain (a host name: check_host_name() in tlsp/base/domain_name.h), else
// nothing.
std::optional<std::string> normalize_policy_domain(std::string_view domain);

// addresses: IP literals ("192.0.2.1", "2001:db8::1"), tried in order.
StsFetchResult fetch_mta_sts_policy(std::string_view domain, const std::vector<std::string>& addresses,
                                    const StsFetchConfig& config);

struct StsDiscovery {
  bool txt = false;                      // exactly one valid v=STSv1 TXT record
  StsFetch fetch = StsFetch::timeout;    // ok: a current policy (fetched, or from_cache)
  std::optional<MtaStsPolicy> fetched;   // the policy fetched now
  std::optional<MtaStsPolicy> cached;    // the unexpired cached policy found before discovery
  std::string id;                        // the TXT record's id
  bool from_cache = false;               // the TXT id named the cached policy: no fetch
  std::string detail;                    // what happened, for logs
};

StsDiscovery discover_mta_sts(std::string_view domain, const dns::Resolver& resolver, const StsFetchConfig& config,
                              MtaStsCache* cache, int64_t now);

MtaStsFacts sts_facts_for_mx(const StsDiscovery& discovery, std::string_view mx_host);

// The policy a discovery holds the MX hosts to (the engine's
// sts_policy_in_force() applied to it): the one fetched now, or the cached
// one; nothing when neither is in force. sts_facts_for_mx() matches the MX
// host against this one; TLSRPT reports it (RFC 8460 §4.3).
const MtaStsPolicy* sts_policy_used(const StsDiscovery& discovery);

}  // namespace tlsp
