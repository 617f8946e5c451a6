// address.cpp — IP address and CIDR parsing on top of inet_pton(3)
// (tlsp/base/address.h has the contract).
#include "tlsp/base/address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace tlsp::base {
namespace {

// inet_pton needs a NUL-terminated string; no literal is longer than this
// (INET6_ADDRSTRLEN counts the NUL), so a longer text is no address.
constexpr size_t kMaxLiteral = INET6_ADDRSTRLEN;

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

uint8_t prefix_mask(int prefix_len, int byte) {
  const int keep = std::clamp(prefix_len - 8 * byte, 0, 8);
  return keep == 0 ? 0 : static_cast<uint8_t>(0xFF << (8 - keep));
}

}  // namespace

std::optional<IpAddress> parse_ip_address(std::string_view text) {
  if (text.size() >= kMaxLiteral || text.find('\0') != std::string_view::npos) return std::nullopt;
  char buf[kMaxLiteral];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress a;
  if (::inet_pton(AF_INET, buf, a.bytes.data()) == 1) return a;
  a.v6 = true;
  if (::inet_pton(AF_INET6, buf, a.bytes.data()) == 1) return a;
  return std::nullopt;
}

IpAddress unmapped(const IpAddress& address) {
  if (!address.v6 || std::memcmp(address.bytes.data(), kMappedPrefix, sizeof kMappedPrefix) != 0) return address;
  IpAddress v4;
  std::memcpy(v4.bytes.data(), address.bytes.data() + 12, 4);
  return v4;
}

std::string address_text(const IpAddress& address) {
  char text[INET6_ADDRSTRLEN] = "";
  ::inet_ntop(address.v6 ? AF_INET6 : AF_INET, address.bytes.data(), text, sizeof text);
  return text;
}

SocketAddress socket_address(const IpAddress& address, uint16_t port) {
  SocketAddress out;
  if (address.v6) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    std::memcpy(&v6->sin6_addr, address.bytes.data(), 16);
    out.length = sizeof *v6;
  } else {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    std::memcpy(&v4->sin_addr, address.bytes.data(), 4);
    out.length = sizeof *v4;
  }
  return out;
}

CidrParse parse_cidr(std::string_view text) {
  CidrParse out;
  std::string_view addr = text;
  std::optional<std::string_view> len;
  if (const size_t slash = text.find('/'); slash != std::string_view::npos) {
    addr = text.substr(0, slash);
    len = text.substr(slash + 1);
  }
  const auto a = parse_ip_address(addr);
  if (!a) {
    out.problem = CidrProblem::not_an_address;
    return out;
  }
  out.max_prefix = a->bits();
  int prefix = out.max_prefix;
  if (len) {
    const bool plain = !len->empty() && len->size() <= 3 && (len->size() == 1 || (*len)[0] != '0') &&
                       std::all_of(len->begin(), len->end(), [](char c) { return c >= '0' && c <= '9'; });
    prefix = 0;
    if (plain)
      for (char c : *len) prefix = prefix * 10 + (c - '0');
    if (!plain || prefix > out.max_prefix) {
      out.problem = CidrProblem::bad_prefix;
      return out;
    }
  }
  out.cidr.network.v6 = a->v6;
  out.cidr.prefix_len = static_cast<uint8_t>(prefix);
  for (int i = 0; i < a->bits() / 8; ++i) out.cidr.network.bytes[i] = a->bytes[i] & prefix_mask(prefix, i);
  if (out.cidr.network != *a) out.problem = CidrProblem::host_bits;
  return out;
}

bool contains(const Cidr& network, const IpAddress& address) {
  const IpAddress a = network.network.v6 ? address : unmapped(address);
  if (a.v6 != network.network.v6) return false;
  for (int i = 0; i < a.bits() / 8; ++i) {
    const uint8_t mask = prefix_mask(network.prefix_len, i);
    if (mask == 0) break;
    if ((a.bytes[i] & mask) != (network.network.bytes[i] & mask)) return false;
  }
  return true;
}

std::string cidr_text(const Cidr& cidr) {
  return address_text(cidr.network) + "/" + std::to_string(cidr.prefix_len);
}

}  // namespace tlsp::base
