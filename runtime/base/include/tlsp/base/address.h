// tlsp/base/address.h — IP addresses and CIDR networks: the one reading of
// an address literal or a CIDR for every part of tlsp (the compiler's peer
// selectors, the relay's client address and submit networks, the
// simulator's worlds and scenario checks, MTA-STS policy hosts).
//
// Contract:
// - parse_ip_address() accepts exactly what inet_pton(3) accepts: an IPv4
//   dotted quad (four decimal parts, no leading zeros) or an IPv6 literal;
//   nothing around it (no brackets, no zone, no prefix).
// - parse_cidr() reads `ADDRESS` or `ADDRESS/LEN`. LEN is decimal, 0..32
//   (IPv4) or 0..128 (IPv6), without sign or leading zero ("/08" is an
//   error, as a leading zero is in an IPv4 part). A bare address is the
//   host network (/32, /128). An address with host bits set beyond LEN is
//   an error (a policy saying `192.0.2.1/24` most likely meant something
//   else); the result then carries the network it would be, for advice.
// - contains() compares the first prefix_len bits; an IPv4-mapped IPv6
//   address (::ffff:a.b.c.d, as a dual-stack socket reports an IPv4 client)
//   is the IPv4 address for an IPv4 network.
// - address_text()/cidr_text() are inet_ntop(3)'s forms ("192.0.2.1",
//   "2001:db8::1", "192.0.2.0/24").
// - socket_address() is the sockaddr_in/sockaddr_in6 for bind(2) and
//   connect(2) of an address already read here, with the port in network
//   order; the one place that fills one from an address literal.
// Links nothing but libc; no allocation except the returned strings.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tlsp::base {

struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // network order; IPv4 in the first 4

  int bits() const { return v6 ? 128 : 32; }
  bool operator==(const IpAddress&) const = default;
};

std::optional<IpAddress> parse_ip_address(std::string_view text);

// An IPv4-mapped IPv6 address as the IPv4 address; any other unchanged.
IpAddress unmapped(const IpAddress& address);

std::string address_text(const IpAddress& address);

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;  // sizeof(sockaddr_in) or sizeof(sockaddr_in6)

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
};

SocketAddress socket_address(const IpAddress& address, uint16_t port);

struct Cidr {
  IpAddress network;   // host bits zero
  uint8_t prefix_len = 0;

  bool operator==(const Cidr&) const = default;
};

enum class CidrProblem {
  none,
  not_an_address,  // the part before `/` is no IPv4/IPv6 literal
  bad_prefix,      // LEN missing, not a plain decimal, or too long for the family
  host_bits,       // bits set beyond LEN; `network` is the network meant
};

struct CidrParse {
  CidrProblem problem = CidrProblem::none;
  Cidr cidr;          // valid when problem is none or host_bits (then: with the host bits cleared)
  int max_prefix = 0;  // 32 or 128 once the address has parsed (for messages)

  bool ok() const { return problem == CidrProblem::none; }
};

CidrParse parse_cidr(std::string_view text);

bool contains(const Cidr& network, const IpAddress& address);

std::string cidr_text(const Cidr& cidr);

}  // namespace tlsp::base
