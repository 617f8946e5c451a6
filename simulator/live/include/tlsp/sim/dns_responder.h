// tlsp/sim/dns_responder.h — a scripted DNS server for tests and live
// simulation: it answers like a validating resolver (Unbound) in front of
// zones the test describes, so the relay's real DNS client (tlsp/dns.h)
// can be driven through every DNSSEC status on the loopback.
//
// Contract:
//  * start() listens on UDP and TCP on the same address and port (port 0:
//    a free one, the same for both) and serves from one background thread;
//    stop() or the destructor ends it and closes every socket. start()
//    throws std::runtime_error when it cannot listen.
//  * The data: rrsets keyed by (name, type), set with set(); a name's
//    behaviour for every type, set with set_name(). Names are compared in
//    lower case without the trailing dot. All setters are thread-safe and
//    take effect for the next query.
//  * Answers, for a query of (name, type):
//      - the name's behaviour (set_name), if not `answer`, applies first;
//        then the rrset's own behaviour;
//      - answer with records: NOERROR, AA, the records (and a CNAME chain
//        at the name is followed, each link put in the answer section);
//        AD when every rrset used is secure;
//      - a name that exists (it has some rrset, or was named by set_name)
//        but no rrset of the type: NODATA (NOERROR, no records), AD per the
//        name's `secure`;
//      - an unknown name: NXDOMAIN, AD per set_default_secure();
//      - servfail: SERVFAIL; refused: REFUSED; silence: no reply at all;
//      - bogus: SERVFAIL, unless the query has CD: then the data (records,
//        NODATA or NXDOMAIN) without AD, as a validating resolver does.
//    AD is only ever set when the query had DO or AD (RFC 6840 §5.7). With
//    DO, secure records come with a (dummy) RRSIG as real ones would.
//  * A UDP answer larger than the client's EDNS payload size (512 without
//    EDNS) is replaced by an empty answer with TC, so the client retries
//    over TCP. Malformed packets and responses are dropped without reply;
//    TCP messages above kMaxTcpQueryBytes close the connection; at most
//    kMaxTcpConnections are open at once (more are closed at accept), and
//    an idle one is closed after kTcpIdleTimeout.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tlsp::sim {

enum class DnsBehaviour : uint8_t { answer, servfail, bogus, silence, refused };

// DNS RR type codes for DnsRrset::type (RFC 1035, RFC 3596, RFC 6698).
namespace dns_type {
inline constexpr uint16_t A = 1;
inline constexpr uint16_t CNAME = 5;
inline constexpr uint16_t MX = 15;
inline constexpr uint16_t TXT = 16;
inline constexpr uint16_t AAAA = 28;
inline constexpr uint16_t TLSA = 52;
}  // namespace dns_type

struct DnsRrset {
  std::string name;  // "mx1.example" (trailing dot optional, any case)
  uint16_t type = dns_type::A;
  // RDATA in presentation form, one per record: "10 mx1.example.",
  // "127.0.0.2", "3 1 1 ABCD...", "\"v=STSv1; id=1\"". Names in RDATA are
  // absolute with or without the trailing dot.
  std::vector<std::string> rdata;
  bool secure = true;
  DnsBehaviour behaviour = DnsBehaviour::answer;
  uint32_t ttl = 300;
};

// Limits, with their defaults.
inline constexpr size_t kMaxTcpConnections = 32;
inline constexpr size_t kMaxTcpQueryBytes = 4096;     // a query, not an answer
inline constexpr std::chrono::milliseconds kTcpIdleTimeout{5000};
inline constexpr size_t kMaxLoggedQueries = 10000;    // queries() keeps the first ones
inline constexpr int kMaxCnameChain = 8;              // links followed per answer

class DnsResponder {
 public:
  DnsResponder();
  ~DnsResponder();
  DnsResponder(const DnsResponder&) = delete;
  DnsResponder& operator=(const DnsResponder&) = delete;

  // Listens on `address` (an IPv4 or IPv6 literal) and `port` (0: a free
  // one). Throws std::runtime_error when it cannot, or when already running.
  void start(const std::string& address = "127.0.0.1", uint16_t port = 0);
  void stop();  // idempotent
  uint16_t port() const;
  std::string server() const;  // "127.0.0.1:5353", "[::1]:5353"

  // Replaces the rrset (name, type). Throws std::invalid_argument when a
  // name or an RDATA does not parse (naming it), leaving the data as it was.
  void set(DnsRrset rrset);
  // Removes the rrset (name, type), if any.
  void erase(const std::string& name, uint16_t type);
  // Every type of a name: servfail, silence, refused or bogus all of them;
  // `answer` marks the name as existing (NODATA for types it lacks) with the
  // given `secure` for its denials, and lifts a previous behaviour.
  void set_name(std::string name, DnsBehaviour behaviour, bool secure = true);
  // Whether NXDOMAIN answers for unknown names carry AD (default true).
  void set_default_secure(bool secure);
  // Forgets all data and the query log (not the default).
  void clear();

  // Queries received (well-formed ones, over UDP and TCP), and the first
  // kMaxLoggedQueries of them as (lower-case name, type).
  size_t query_count() const;
  std::vector<std::pair<std::string, uint16_t>> queries() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace tlsp::sim
