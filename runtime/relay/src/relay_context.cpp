// relay_context.cpp — the questions every part of the relay asks of the
// shared context (relay_context.h): is this client a submitter, is this
// domain managed, where is its next hop.
#include "relay_context.h"

#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>

namespace tlsp::relay {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

// ------------------------------------------------------------ context

std::string RelayContext::make_session_prefix() {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%llx-%x-", static_cast<unsigned long long>(ms), static_cast<unsigned>(::getpid()));
  return buf;
}

bool RelayContext::in_submit_networks(std::string_view address) const {
  const auto a = base::parse_ip_address(address);
  if (!a) return false;
  for (const Cidr& n : submit_networks)
    if (base::contains(n, *a)) return true;
  return false;
}

const NextHop* RelayContext::next_hop(std::string_view domain) const {
  for (const NextHop& h : config.next_hops)
    if (h.domain == domain) return &h;
  return nullptr;
}

bool RelayContext::is_managed(std::string_view domain) const {
  if (next_hop(domain)) return true;
  auto t = table.get();
  return t && t->lookup(Direction::outbound, domain, "").domain_listed;
}

}  // namespace tlsp::relay
