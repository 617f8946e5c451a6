// dns.cpp — the relay's DNS client on libldns (tlsp/dns.h has the contract).
//
// How a lookup runs:
//  1. The name is checked and lower-cased here, before ldns sees it, so a
//     malformed name is a servfail with a detail and never a query.
//  2. One ldns_resolver is made per query attempt (ldns resolvers keep
//     per-server state such as "unreachable" marks and are not
//     thread-safe), with retry 1: the attempt loop and the deadline are
//     ours, so the time bound is exact.
//  3. The query carries RD, AD and an EDNS0 OPT with DO and a 1232-byte UDP
//     size (the DNS flag day 2020 value). A TC answer is asked again over
//     TCP within the same deadline.
//  4. The answer must echo our id and question; its RCODE and AD bit give
//     the status. SERVFAIL is asked once more with CD set: a validating
//     resolver that then answers says the data failed validation (bogus).
//  5. Records count only when their owner is the asked name, or the end of
//     a CNAME chain inside the answer section, and their type the asked
//     type (RRSIGs and anything else in the section are ignored).
#include "tlsp/dns.h"

#include <ldns/ldns.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <stdexcept>
#include <system_error>

#include "tlsp/base/address.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/base/quote.h"

namespace tlsp::dns {
namespace {

using base::ticked;
using Clock = std::chrono::steady_clock;

// EDNS0 UDP payload size we advertise (RFC 6891; DNS flag day 2020).
constexpr uint16_t kEdnsUdpSize = 1232;
// Longest CNAME chain followed inside one answer section.
constexpr int kMaxCnameChain = 8;
// The file read when ResolverConfig::server is empty.
constexpr const char* kResolvConf = "/etc/resolv.conf";
// Where to ask when resolv.conf names no server (what glibc does too).
constexpr const char* kDefaultServer = "127.0.0.1";
constexpr uint16_t kDnsPort = 53;

struct ResolverDeleter {
  void operator()(ldns_resolver* r) const { ldns_resolver_deep_free(r); }
};
struct PktDeleter {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
struct RdfDeleter {
  void operator()(ldns_rdf* r) const { ldns_rdf_deep_free(r); }
};
using ResolverPtr = std::unique_ptr<ldns_resolver, ResolverDeleter>;
using PktPtr = std::unique_ptr<ldns_pkt, PktDeleter>;
using RdfPtr = std::unique_ptr<ldns_rdf, RdfDeleter>;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A name we ask for (check_dns_question_name: a host name, after
// underscore labels such as `_25._tcp.` and `_mta-sts.`). Returns the
// lower-case name without the trailing dot, or an empty string and the
// problem.
std::string normalise_name(std::string_view name, std::string& problem) {
  NameCheck c = check_dns_question_name(name);
  if (!c.ok()) {
    problem = std::move(c.problem);
    return {};
  }
  return std::move(c.name);
}

// "mx1.example." -> "mx1.example"; "." -> "".
std::string dname_text(const ldns_rdf* rdf) {
  char* s = ldns_rdf2str(rdf);
  if (!s) return {};
  std::string out = lower(s);
  free(s);
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

std::string rcode_text(ldns_pkt_rcode rcode) {
  const ldns_lookup_table* entry = ldns_lookup_by_id(ldns_rcodes, static_cast<int>(rcode));
  return entry ? entry->name : "RCODE " + std::to_string(static_cast<int>(rcode));
}

// The outcome of one question (one type), before the per-type parsing.
struct Exchange {
  DnsStatus status = DnsStatus::timeout;
  bool authenticated = false;
  std::vector<const ldns_rr*> records;  // point into `answer`
  std::string detail;
  PktPtr answer;
};

class Query {
 public:
  Query(const std::string& address, uint16_t port, const ResolverConfig& config)
      : address_(address), port_(port), config_(config) {}

  std::string server_text() const {
    return (address_.find(':') != std::string::npos ? "[" + address_ + "]" : address_) + ":" +
           std::to_string(port_);
  }

  Exchange run(std::string_view raw_name, ldns_rr_type type) const {
    Exchange ex;
    std::string problem;
    std::string name = normalise_name(raw_name, problem);
    if (name.empty()) {
      ex.status = DnsStatus::servfail;
      ex.detail = "invalid name " + ticked(raw_name) + ": " + problem;
      return ex;
    }
    ex = ask(name, type, false);
    if (ex.status != DnsStatus::servfail || !ex.answer ||
        ldns_pkt_get_rcode(ex.answer.get()) != LDNS_RCODE_SERVFAIL)
      return ex;
    // SERVFAIL from a validating resolver is either a broken zone or data
    // that failed DNSSEC validation; with CD it answers in the second case.
    Exchange cd = ask(name, type, true);
    if (cd.answer) {
      ldns_pkt_rcode rc = ldns_pkt_get_rcode(cd.answer.get());
      if (rc == LDNS_RCODE_NOERROR || rc == LDNS_RCODE_NXDOMAIN) {
        ex.status = DnsStatus::bogus;
        ex.detail += "; with CD: " + rcode_text(rc) + " (dnssec validation failed)";
        return ex;
      }
      ex.detail += "; with CD: " + rcode_text(rc);
    } else {
      ex.detail += "; with CD: " + cd.detail;
    }
    return ex;
  }

 private:
  // One question within its own time budget: UDP attempts, then TCP on TC.
  Exchange ask(const std::string& name, ldns_rr_type type, bool cd) const {
    Exchange ex;
    const auto deadline = Clock::now() + config_.timeout;
    const std::string what = std::string(cd ? "CD query" : "query") + " for " + ticked(name);
    bool tcp = false;
    int attempts_left = config_.attempts;
    std::string last_problem;
    while (true) {
      auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (remaining.count() <= 0) break;
      // UDP attempts share the budget evenly; TCP gets all that is left.
      auto slice = tcp ? remaining : remaining / std::max(attempts_left, 1);
      if (slice.count() <= 0) slice = remaining;
      std::string problem;
      PktPtr answer = exchange(name, type, cd, tcp, slice, problem);
      if (!answer) {
        last_problem = problem;
        if (!problem.empty() && problem.rfind("no answer", 0) != 0) {
          // Not a timeout: a malformed or mismatched answer, or no socket.
          ex.status = DnsStatus::servfail;
          ex.detail = problem + " (" + what + ")";
          return ex;
        }
        if (tcp || --attempts_left <= 0) break;
        continue;
      }
      if (ldns_pkt_tc(answer.get()) && !tcp) {
        tcp = true;
        continue;
      }
      classify(std::move(answer), name, type, ex);
      if (ex.status != DnsStatus::timeout) return ex;
      break;
    }
    ex.status = DnsStatus::timeout;
    ex.detail = "no answer from " + server_text() + " within " + std::to_string(config_.timeout.count()) +
                " ms (" + what + (tcp ? " over tcp" : "") + ")";
    return ex;
  }

  // Sends one query and waits at most `wait` for the answer. Returns the
  // answer, or null and why (starting "no answer" for a timeout).
  PktPtr exchange(const std::string& name, ldns_rr_type type, bool cd, bool tcp, std::chrono::milliseconds wait,
                  std::string& problem) const {
    ResolverPtr res(ldns_resolver_new());
    RdfPtr ns(ldns_rdf_new_frm_str(address_.find(':') != std::string::npos ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A,
                                   address_.c_str()));
    if (!res || !ns || ldns_resolver_push_nameserver(res.get(), ns.get()) != LDNS_STATUS_OK) {
      problem = "cannot set up a resolver for " + server_text();
      return nullptr;
    }
    ldns_resolver_set_port(res.get(), port_);
    ldns_resolver_set_retry(res.get(), 1);
    ldns_resolver_set_random(res.get(), false);
    ldns_resolver_set_fail(res.get(), false);
    ldns_resolver_set_usevc(res.get(), tcp);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(wait.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((wait.count() % 1000) * 1000);
    ldns_resolver_set_timeout(res.get(), tv);

    ldns_rdf* owner = ldns_dname_new_frm_str((name + ".").c_str());
    if (!owner) {
      problem = "cannot encode the name " + ticked(name);
      return nullptr;
    }
    uint16_t flags = LDNS_RD | LDNS_AD | (cd ? LDNS_CD : 0);
    PktPtr query(ldns_pkt_query_new(owner, type, LDNS_RR_CLASS_IN, flags));  // owns `owner`
    if (!query) {
      problem = "cannot build a query for " + ticked(name);
      return nullptr;
    }
    const uint16_t id = ldns_get_random();
    ldns_pkt_set_id(query.get(), id);
    ldns_pkt_set_edns_udp_size(query.get(), kEdnsUdpSize);
    ldns_pkt_set_edns_do(query.get(), true);

    ldns_pkt* raw = nullptr;
    ldns_status st = ldns_send(&raw, res.get(), query.get());
    PktPtr answer(raw);
    if (!answer) {
      if (st == LDNS_STATUS_OK || st == LDNS_STATUS_NETWORK_ERR || st == LDNS_STATUS_RES_NO_NS ||
          st == LDNS_STATUS_ERR)
        problem = "no answer";
      else if (st == LDNS_STATUS_SOCKET_ERROR)
        problem = "cannot reach " + server_text();
      else
        problem = std::string("malformed answer from ") + server_text() + ": " + ldns_get_errorstr_by_id(st);
      return nullptr;
    }
    // ldns does not match answers to queries: a fresh socket per attempt
    // keeps strays out, and this keeps out anything else.
    if (!ldns_pkt_qr(answer.get()) || ldns_pkt_id(answer.get()) != id) {
      problem = "answer from " + server_text() + " does not match the query id";
      return nullptr;
    }
    const ldns_rr_list* question = ldns_pkt_question(answer.get());
    if (ldns_rr_list_rr_count(question) > 0) {
      const ldns_rr* q = ldns_rr_list_rr(question, 0);
      if (ldns_rr_list_rr_count(question) != 1 || ldns_rr_get_type(q) != type ||
          dname_text(ldns_rr_owner(q)) != name) {
        problem = "answer from " + server_text() + " is for another question";
        return nullptr;
      }
    }
    return answer;
  }

  void classify(PktPtr answer, const std::string& name, ldns_rr_type type, Exchange& ex) const {
    const ldns_pkt_rcode rcode = ldns_pkt_get_rcode(answer.get());
    const bool ad = ldns_pkt_ad(answer.get());
    if (rcode == LDNS_RCODE_NOERROR || rcode == LDNS_RCODE_NXDOMAIN) {
      // Follow the CNAME chain the server put in the answer section.
      const ldns_rr_list* list = ldns_pkt_answer(answer.get());
      const size_t n = ldns_rr_list_rr_count(list);
      std::string owner = name;
      for (int hop = 0; hop <= kMaxCnameChain; ++hop) {
        bool moved = false;
        for (size_t i = 0; i < n && type != LDNS_RR_TYPE_CNAME; ++i) {
          const ldns_rr* rr = ldns_rr_list_rr(list, i);
          if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && ldns_rr_rd_count(rr) == 1 &&
              dname_text(ldns_rr_owner(rr)) == owner) {
            owner = dname_text(ldns_rr_rdf(rr, 0));
            moved = true;
            break;
          }
        }
        if (!moved) break;
      }
      for (size_t i = 0; i < n; ++i) {
        const ldns_rr* rr = ldns_rr_list_rr(list, i);
        if (ldns_rr_get_type(rr) == type && ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN &&
            dname_text(ldns_rr_owner(rr)) == owner)
          ex.records.push_back(rr);
      }
      ex.authenticated = ad;
      if (rcode == LDNS_RCODE_NOERROR && !ex.records.empty()) {
        ex.status = ad ? DnsStatus::secure : DnsStatus::insecure;
      } else {
        ex.records.clear();
        ex.status = DnsStatus::nxdomain;
        ex.detail = (rcode == LDNS_RCODE_NXDOMAIN ? "NXDOMAIN" : "no record of that type (NODATA)") +
                    std::string(" from ") + server_text() + (ad ? " (authenticated)" : "");
      }
    } else {
      ex.status = DnsStatus::servfail;
      ex.detail = rcode_text(rcode) + " from " + server_text();
    }
    ex.answer = std::move(answer);
  }

  const std::string& address_;
  uint16_t port_;
  const ResolverConfig& config_;
};

template <typename T>
Lookup<T> start_lookup(Exchange& ex) {
  Lookup<T> out;
  out.status = ex.status;
  out.authenticated = ex.authenticated;
  out.detail = std::move(ex.detail);
  return out;
}

// Records of the asked type none of which parse (a wrong RDATA
// length) make the answer unusable rather than a success with no records.
template <typename T>
void reject_if_unparsed(Lookup<T>& out, const Exchange& ex, const char* type) {
  if (out.found() && out.records.empty() && !ex.records.empty()) {
    out.status = DnsStatus::servfail;
    out.authenticated = false;
    out.detail = std::string("malformed ") + type + " records in the answer";
  }
}

// The status rank used to pick "the worse failure" of A and AAAA.
int failure_rank(DnsStatus s) {
  switch (s) {
    case DnsStatus::bogus: return 3;
    case DnsStatus::servfail: return 2;
    case DnsStatus::timeout: return 1;
    default: return 0;
  }
}

std::string address_text(const ldns_rr* rr) {
  if (ldns_rr_rd_count(rr) != 1) return {};
  const ldns_rdf* rdf = ldns_rr_rdf(rr, 0);
  const bool a = ldns_rdf_get_type(rdf) == LDNS_RDF_TYPE_A && ldns_rdf_size(rdf) == 4;
  const bool aaaa = ldns_rdf_get_type(rdf) == LDNS_RDF_TYPE_AAAA && ldns_rdf_size(rdf) == 16;
  if (!a && !aaaa) return {};
  base::IpAddress address;
  address.v6 = aaaa;
  std::memcpy(address.bytes.data(), ldns_rdf_data(rdf), ldns_rdf_size(rdf));
  return base::address_text(address);
}

Lookup<std::string> address_lookup(const Query& q, std::string_view host, ldns_rr_type type) {
  Exchange ex = q.run(host, type);
  auto out = start_lookup<std::string>(ex);
  for (const ldns_rr* rr : ex.records) {
    std::string text = address_text(rr);
    if (!text.empty()) out.records.push_back(std::move(text));
  }
  reject_if_unparsed(out, ex, type == LDNS_RR_TYPE_A ? "A" : "AAAA");
  return out;
}

// Splits "host", "host:port", "[v6]:port" or a bare IPv6 address.
bool parse_server(const std::string& text, std::string& address, uint16_t& port, std::string& problem) {
  std::string host = text;
  std::string port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) {
      problem = "missing `]`";
      return false;
    }
    host = text.substr(1, close - 1);
    std::string rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        problem = "expected `:port` after `]`";
        return false;
      }
      port_text = rest.substr(1);
      if (port_text.empty()) {
        problem = "empty port";
        return false;
      }
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    size_t colon = text.find(':');
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (port_text.empty()) {
      problem = "empty port";
      return false;
    }
  }
  if (!base::parse_ip_address(host)) {
    problem = "not an IP address";
    return false;
  }
  port = kDnsPort;
  if (!port_text.empty()) {
    if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(), ::isdigit)) {
      problem = "bad port";
      return false;
    }
    unsigned long p = std::stoul(port_text);
    if (p == 0 || p > 65535) {
      problem = "port out of range";
      return false;
    }
    port = static_cast<uint16_t>(p);
  }
  address = host;
  return true;
}

// The first nameserver of resolv.conf as text, read by ldns.
std::string system_nameserver() {
  ldns_resolver* raw = nullptr;
  if (ldns_resolver_new_frm_file(&raw, kResolvConf) != LDNS_STATUS_OK || !raw) return kDefaultServer;
  ResolverPtr res(raw);
  if (ldns_resolver_nameserver_count(res.get()) == 0) return kDefaultServer;
  char* s = ldns_rdf2str(ldns_resolver_nameservers(res.get())[0]);
  if (!s) return kDefaultServer;
  std::string out = s;
  free(s);
  return out.find(':') != std::string::npos ? "[" + out + "]" : out;
}

}  // namespace

Resolver::Resolver(ResolverConfig config) : config_(std::move(config)) {
  std::string server = config_.server.empty() ? system_nameserver() : config_.server;
  std::string problem;
  if (!parse_server(server, address_, port_, problem))
    throw std::invalid_argument("invalid dns server " + ticked(server) + ": " + problem);
  if (config_.timeout.count() <= 0)
    throw std::invalid_argument("dns timeout must be positive, not " + std::to_string(config_.timeout.count()) + " ms");
  if (config_.attempts < 1)
    throw std::invalid_argument("dns attempts must be at least 1, not " + std::to_string(config_.attempts));
}

std::string Resolver::server_text() const { return Query(address_, port_, config_).server_text(); }

Lookup<MxHost> Resolver::mx(std::string_view domain) const {
  Exchange ex = Query(address_, port_, config_).run(domain, LDNS_RR_TYPE_MX);
  auto out = start_lookup<MxHost>(ex);
  for (const ldns_rr* rr : ex.records) {
    if (ldns_rr_rd_count(rr) != 2) continue;
    MxHost mx;
    mx.preference = ldns_rdf2native_int16(ldns_rr_rdf(rr, 0));
    mx.host = dname_text(ldns_rr_rdf(rr, 1));
    out.records.push_back(std::move(mx));
  }
  std::stable_sort(out.records.begin(), out.records.end(),
                   [](const MxHost& a, const MxHost& b) { return a.preference < b.preference; });
  reject_if_unparsed(out, ex, "MX");
  return out;
}

Lookup<std::string> Resolver::addresses(std::string_view host) const {
  const Query q(address_, port_, config_);
  // A and AAAA in parallel, so the pair stays within one timeout.
  Lookup<std::string> v4, v6;
  try {
    auto aaaa = std::async(std::launch::async, [&] { return address_lookup(q, host, LDNS_RR_TYPE_AAAA); });
    v4 = address_lookup(q, host, LDNS_RR_TYPE_A);
    v6 = aaaa.get();
  } catch (const std::system_error&) {
    // No thread to spare: one after the other.
    v4 = address_lookup(q, host, LDNS_RR_TYPE_A);
    v6 = address_lookup(q, host, LDNS_RR_TYPE_AAAA);
  }
  Lookup<std::string> out;
  auto join_detail = [&] {
    std::string d;
    if (!v4.detail.empty()) d += "A: " + v4.detail;
    if (!v6.detail.empty()) d += std::string(d.empty() ? "" : "; ") + "AAAA: " + v6.detail;
    return d;
  };
  if (v4.found() || v6.found()) {
    bool all_ad = (!v4.found() || v4.status == DnsStatus::secure) && (!v6.found() || v6.status == DnsStatus::secure);
    out.status = all_ad ? DnsStatus::secure : DnsStatus::insecure;
    out.authenticated = all_ad;
    out.records = std::move(v4.records);
    out.records.insert(out.records.end(), v6.records.begin(), v6.records.end());
    out.detail = join_detail();
    return out;
  }
  if (v4.status == DnsStatus::nxdomain && v6.status == DnsStatus::nxdomain) {
    out.status = DnsStatus::nxdomain;
    out.authenticated = v4.authenticated && v6.authenticated;
  } else {
    out.status = failure_rank(v4.status) >= failure_rank(v6.status) ? v4.status : v6.status;
  }
  out.detail = join_detail();
  return out;
}

Lookup<TlsaRecord> Resolver::tlsa(std::string_view name) const {
  Exchange ex = Query(address_, port_, config_).run(name, LDNS_RR_TYPE_TLSA);
  auto out = start_lookup<TlsaRecord>(ex);
  for (const ldns_rr* rr : ex.records) {
    // ldns splits TLSA RDATA into three one-octet fields and the data (the
    // data field is absent when empty).
    const size_t n = ldns_rr_rd_count(rr);
    if (n < 3 || n > 4) continue;
    bool ok = true;
    for (size_t i = 0; i < 3; ++i) ok = ok && ldns_rdf_size(ldns_rr_rdf(rr, i)) == 1;
    if (!ok) continue;
    TlsaRecord rec;
    rec.usage = *ldns_rdf_data(ldns_rr_rdf(rr, 0));
    rec.selector = *ldns_rdf_data(ldns_rr_rdf(rr, 1));
    rec.mtype = *ldns_rdf_data(ldns_rr_rdf(rr, 2));
    if (n == 4) {
      const ldns_rdf* d = ldns_rr_rdf(rr, 3);
      rec.data.assign(ldns_rdf_data(d), ldns_rdf_data(d) + ldns_rdf_size(d));
    }
    out.records.push_back(std::move(rec));
  }
  reject_if_unparsed(out, ex, "TLSA");
  return out;
}

Lookup<std::string> Resolver::txt(std::string_view name) const {
  Exchange ex = Query(address_, port_, config_).run(name, LDNS_RR_TYPE_TXT);
  auto out = start_lookup<std::string>(ex);
  for (const ldns_rr* rr : ex.records) {
    std::string text;
    for (size_t i = 0; i < ldns_rr_rd_count(rr); ++i) {
      // A character-string: one length octet, then that many octets.
      const ldns_rdf* rdf = ldns_rr_rdf(rr, i);
      const uint8_t* data = ldns_rdf_data(rdf);
      const size_t size = ldns_rdf_size(rdf);
      if (size == 0) continue;
      const size_t len = std::min<size_t>(data[0], size - 1);
      text.append(reinterpret_cast<const char*>(data + 1), len);
    }
    out.records.push_back(std::move(text));
  }
  return out;
}

}  // namespace tlsp::dns
