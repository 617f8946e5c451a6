// tlsp/dns.h — the relay's DNS client (ldns): MX, A/AAAA, TLSA and TXT
// lookups against one configured resolver, with the DNSSEC status of each
// answer taken from the AD bit (SPEC §4; RFC 7672 §2.1).
//
// Contract:
//  * Every query asks with RD, DO (EDNS0, 1232-byte UDP size) and AD set; a
//    truncated UDP answer is retried over TCP. Nothing is cached here.
//  * The resolver must validate DNSSEC (a local Unbound, as Postfix needs):
//    the AD bit of its answer is trusted as is. Production use therefore
//    needs a validating resolver on the loopback or a trusted link.
//  * status, for one lookup:
//      secure    NOERROR with records and AD set
//      insecure  NOERROR with records, AD clear
//      nxdomain  NXDOMAIN or NODATA (no record of that type); `authenticated`
//                says whether the denial carried AD
//      bogus     SERVFAIL, and the same query with CD set gets an answer
//                (NOERROR or NXDOMAIN): the data exists but failed validation
//      servfail  SERVFAIL (also with CD), REFUSED, FORMERR, any other RCODE,
//                a malformed answer or one that does not echo the query's
//                id and question
//      timeout   no answer within the configured time
//  * Records count when their owner is the asked name, or the end of a
//    CNAME chain (up to 8 links) inside the answer section, and their type
//    the asked type; RRSIGs and everything else are ignored.
//  * Names are lower-cased and returned without the trailing dot. A name
//    that is not a valid DNS name gives servfail with a detail, never a
//    query. Lookups are thread-safe (no shared mutable state; one ldns
//    resolver per query) and bounded in time by ResolverConfig::timeout:
//    the UDP attempts share it and a TCP retry gets what is left; a CD
//    re-query after SERVFAIL gets its own, so a lookup takes at most twice
//    the timeout. addresses() asks A and AAAA in parallel.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/dane.h"
#include "tlsp/engine.h"

namespace tlsp::dns {

struct ResolverConfig {
  // "127.0.0.1:5353", "[::1]:53" or "127.0.0.1" (port 53). Empty: the first
  // nameserver in /etc/resolv.conf.
  std::string server;
  // For one lookup, all attempts together (a CD re-query gets its own).
  // Must be positive.
  std::chrono::milliseconds timeout{5000};
  // UDP sends before giving up (each waits timeout/attempts); at least 1.
  int attempts = 2;
};

struct MxHost {
  uint16_t preference = 0;
  std::string host;  // lower case, no trailing dot; "" for a null MX (RFC 7505)
};

template <typename T>
struct Lookup {
  DnsStatus status = DnsStatus::timeout;
  bool authenticated = false;  // AD bit of the answer (also for denials)
  std::vector<T> records;      // empty unless secure/insecure
  std::string detail;          // for logs: "SERVFAIL from 127.0.0.1:5353", ...
  bool found() const { return status == DnsStatus::secure || status == DnsStatus::insecure; }
};

class Resolver {
 public:
  // Throws std::invalid_argument naming a malformed server (or a timeout
  // or attempts out of range).
  explicit Resolver(ResolverConfig config);
  const ResolverConfig& config() const { return config_; }
  std::string server_text() const;  // "127.0.0.1:5353"

  // MX records sorted by preference (ties keep answer order).
  Lookup<MxHost> mx(std::string_view domain) const;
  // A then AAAA, as text ("192.0.2.1", "2001:db8::1"). Records: the union.
  // Status: when either returned records, secure if every answer that
  // returned records had AD, else insecure; when neither did, nxdomain if
  // both were denials, else the worse failure (bogus, then servfail, then
  // timeout).
  Lookup<std::string> addresses(std::string_view host) const;
  // _25._tcp.<host> style names are the caller's to build.
  Lookup<TlsaRecord> tlsa(std::string_view name) const;
  // Each TXT record's character-strings concatenated (RFC 7208 §3.3 style).
  Lookup<std::string> txt(std::string_view name) const;

 private:
  ResolverConfig config_;
  std::string address_;
  uint16_t port_ = 53;
};

}  // namespace tlsp::dns
