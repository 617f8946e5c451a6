// dns_responder.cpp — the scripted DNS server of tlsp/sim/dns_responder.h.
//
// ldns parses queries and builds answers; the sockets are ours. One thread
// serves everything through poll(): the UDP socket, the TCP listener, the
// TCP connections (non-blocking, buffered both ways) and an eventfd that
// stop() uses to wake it. A single thread is plenty for tests and keeps
// the answer order of one client's packets the order they were sent.
#include "tlsp/sim/dns_responder.h"

#include "tlsp/base/address.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace tlsp::sim {
namespace {

using Clock = std::chrono::steady_clock;

// The EDNS payload size we announce in answers to EDNS queries.
constexpr uint16_t kServerUdpSize = 1232;
// RFC 1035 §4.2.1: the UDP limit for a client without EDNS.
constexpr uint16_t kPlainUdpSize = 512;
// Datagrams read per poll wake-up before the TCP side gets a turn.
constexpr int kUdpBurst = 64;
// Unsent TCP answer bytes per connection before we stop reading from it.
constexpr size_t kMaxTcpPendingBytes = 256 * 1024;
// Tries to find a port free for both UDP and TCP when asked for port 0.
constexpr int kBindAttempts = 32;
// Dummy RRSIG fields: ECDSAP256SHA256, a far expiry, 64 zero octets.
constexpr const char* kRrsigTimes = "20370101000000 20200101000000 4711";
constexpr const char* kRrsigSignature =
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";

struct PktDeleter {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
struct RrDeleter {
  void operator()(ldns_rr* r) const { ldns_rr_free(r); }
};
using PktPtr = std::unique_ptr<ldns_pkt, PktDeleter>;
using RrPtr = std::unique_ptr<ldns_rr, RrDeleter>;

std::string normalise(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string owner_text(const std::string& name) { return name.empty() ? "." : name + "."; }

std::string type_text(uint16_t type) {
  char* s = ldns_rr_type2str(static_cast<ldns_rr_type>(type));
  std::string out = s ? s : "TYPE" + std::to_string(type);
  free(s);
  return out;
}

// One record from its presentation form, or null.
RrPtr make_rr(const std::string& name, uint32_t ttl, uint16_t type, const std::string& rdata) {
  std::string text = owner_text(name) + " " + std::to_string(ttl) + " IN " + type_text(type) + " " + rdata;
  ldns_rr* rr = nullptr;
  // Relative names in the RDATA are taken as absolute (origin: the root).
  ldns_rdf* root = ldns_dname_new_frm_str(".");
  ldns_status st = ldns_rr_new_frm_str(&rr, text.c_str(), ttl, root, nullptr);
  ldns_rdf_deep_free(root);
  if (st != LDNS_STATUS_OK) {
    if (rr) ldns_rr_free(rr);
    return nullptr;
  }
  // "3 1 1 ABCD" for an unknown mnemonic would parse as another type.
  if (ldns_rr_get_type(rr) != type) {
    ldns_rr_free(rr);
    return nullptr;
  }
  return RrPtr(rr);
}

RrPtr make_rrsig(const std::string& name, uint32_t ttl, uint16_t covered) {
  size_t labels = name.empty() ? 0 : std::count(name.begin(), name.end(), '.') + 1;
  if (name.rfind("*.", 0) == 0) --labels;
  std::string rdata = type_text(covered) + " 13 " + std::to_string(labels) + " " + std::to_string(ttl) + " " +
                      kRrsigTimes + " " + owner_text(name) + " " + kRrsigSignature;
  return make_rr(name, ttl, LDNS_RR_TYPE_RRSIG, rdata);
}

struct NameEntry {
  DnsBehaviour behaviour = DnsBehaviour::answer;
  bool secure = true;
};

struct TcpConnection {
  int fd = -1;
  std::string in;
  std::string out;
  bool read_closed = false;
  Clock::time_point last_activity;
};

}  // namespace

struct DnsResponder::State {
  mutable std::mutex mu;  // guards the data and the log
  std::map<std::pair<std::string, uint16_t>, DnsRrset> rrsets;
  std::map<std::string, NameEntry> names;
  bool default_secure = true;
  size_t query_count = 0;
  std::vector<std::pair<std::string, uint16_t>> log;

  std::string address;
  uint16_t port = 0;
  int udp = -1;
  int tcp = -1;
  int wake = -1;
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::vector<TcpConnection> conns;  // the server thread's alone

  ~State() { close_all(); }

  void close_all() {
    for (int* fd : {&udp, &tcp, &wake})
      if (*fd >= 0) {
        ::close(*fd);
        *fd = -1;
      }
    for (auto& c : conns) ::close(c.fd);
    conns.clear();
  }

  bool name_exists(const std::string& name) const {
    if (names.count(name)) return true;
    auto it = rrsets.lower_bound({name, 0});
    return it != rrsets.end() && it->first.first == name;
  }

  bool name_secure(const std::string& name) const {
    auto n = names.find(name);
    if (n != names.end()) return n->second.secure;
    bool secure = true;
    for (auto it = rrsets.lower_bound({name, 0}); it != rrsets.end() && it->first.first == name; ++it)
      secure = secure && it->second.secure;
    return secure;
  }

  // What to send for a question; called with `mu` held.
  struct Plan {
    bool drop = false;
    ldns_pkt_rcode rcode = LDNS_RCODE_NOERROR;
    bool secure = false;
    std::vector<RrPtr> answers;
  };

  Plan resolve(const std::string& qname, uint16_t qtype, bool cd, bool dnssec_ok) const {
    Plan plan;
    bool secure = true;
    std::string cur = qname;
    // Applies one behaviour; true when it decides the whole answer.
    auto apply = [&](DnsBehaviour b) {
      switch (b) {
        case DnsBehaviour::answer: return false;
        case DnsBehaviour::servfail: plan.rcode = LDNS_RCODE_SERVFAIL; return true;
        case DnsBehaviour::refused: plan.rcode = LDNS_RCODE_REFUSED; return true;
        case DnsBehaviour::silence: plan.drop = true; return true;
        case DnsBehaviour::bogus:
          if (!cd) {
            plan.rcode = LDNS_RCODE_SERVFAIL;
            return true;
          }
          secure = false;  // the data, as a resolver not validating sees it
          return false;
      }
      return false;
    };
    auto add = [&](const DnsRrset& set, uint16_t type) {
      for (const auto& rdata : set.rdata)
        if (RrPtr rr = make_rr(cur, set.ttl, type, rdata)) plan.answers.push_back(std::move(rr));
      if (dnssec_ok && set.secure && set.behaviour != DnsBehaviour::bogus)
        if (RrPtr sig = make_rrsig(cur, set.ttl, type)) plan.answers.push_back(std::move(sig));
      secure = secure && set.secure;
    };
    for (int hop = 0; hop <= kMaxCnameChain; ++hop) {
      auto n = names.find(cur);
      if (n != names.end() && apply(n->second.behaviour)) return plan;
      auto rs = rrsets.find({cur, qtype});
      if (rs != rrsets.end()) {
        if (apply(rs->second.behaviour)) return plan;
        if (!rs->second.rdata.empty()) {
          add(rs->second, qtype);
          plan.secure = secure;
          return plan;
        }
      }
      auto cn = rrsets.find({cur, LDNS_RR_TYPE_CNAME});
      if (qtype != LDNS_RR_TYPE_CNAME && cn != rrsets.end() && !cn->second.rdata.empty()) {
        if (apply(cn->second.behaviour)) return plan;
        add(cn->second, LDNS_RR_TYPE_CNAME);
        cur = normalise(cn->second.rdata.front());
        continue;
      }
      if (name_exists(cur)) {
        plan.secure = secure && name_secure(cur);
      } else {
        plan.rcode = LDNS_RCODE_NXDOMAIN;
        plan.secure = secure && default_secure;
      }
      return plan;
    }
    plan.answers.clear();
    plan.rcode = LDNS_RCODE_SERVFAIL;  // a CNAME loop or too long a chain
    return plan;
  }

  // The answer to one query message, or "" for no answer (a malformed
  // message, a response, silence). Over UDP it is cut to the client's size.
  std::string answer(const uint8_t* data, size_t size, bool over_udp) {
    ldns_pkt* raw = nullptr;
    if (ldns_wire2pkt(&raw, data, size) != LDNS_STATUS_OK || !raw) return {};
    PktPtr query(raw);
    if (ldns_pkt_qr(query.get())) return {};  // never answer an answer

    PktPtr reply(ldns_pkt_new());
    if (!reply) return {};
    ldns_pkt_set_id(reply.get(), ldns_pkt_id(query.get()));
    ldns_pkt_set_qr(reply.get(), true);
    ldns_pkt_set_opcode(reply.get(), ldns_pkt_get_opcode(query.get()));
    ldns_pkt_set_rd(reply.get(), ldns_pkt_rd(query.get()));
    ldns_pkt_set_cd(reply.get(), ldns_pkt_cd(query.get()));
    ldns_pkt_set_ra(reply.get(), true);
    const bool edns = ldns_pkt_edns(query.get());
    if (edns) {
      ldns_pkt_set_edns_udp_size(reply.get(), kServerUdpSize);
      ldns_pkt_set_edns_do(reply.get(), ldns_pkt_edns_do(query.get()));
    }

    const ldns_rr_list* question = ldns_pkt_question(query.get());
    if (ldns_pkt_get_opcode(query.get()) != LDNS_PACKET_QUERY) {
      ldns_pkt_set_rcode(reply.get(), LDNS_RCODE_NOTIMPL);
      return wire(reply.get());
    }
    if (ldns_rr_list_rr_count(question) != 1) {
      ldns_pkt_set_rcode(reply.get(), LDNS_RCODE_FORMERR);
      return wire(reply.get());
    }
    const ldns_rr* q = ldns_rr_list_rr(question, 0);
    ldns_pkt_push_rr(reply.get(), LDNS_SECTION_QUESTION, ldns_rr_clone(q));
    char* owner = ldns_rdf2str(ldns_rr_owner(q));
    const std::string qname = normalise(owner ? owner : "");
    free(owner);
    const uint16_t qtype = static_cast<uint16_t>(ldns_rr_get_type(q));
    const bool cd = ldns_pkt_cd(query.get());
    const bool dnssec_ok = edns && ldns_pkt_edns_do(query.get());
    const bool wants_ad = dnssec_ok || ldns_pkt_ad(query.get());

    Plan plan;
    {
      std::lock_guard lock(mu);
      ++query_count;
      if (log.size() < kMaxLoggedQueries) log.emplace_back(qname, qtype);
      if (ldns_rr_get_class(q) != LDNS_RR_CLASS_IN)
        plan.rcode = LDNS_RCODE_REFUSED;
      else
        plan = resolve(qname, qtype, cd, dnssec_ok);
    }
    if (plan.drop) return {};
    ldns_pkt_set_rcode(reply.get(), static_cast<uint8_t>(plan.rcode));
    const bool authoritative = plan.rcode == LDNS_RCODE_NOERROR || plan.rcode == LDNS_RCODE_NXDOMAIN;
    ldns_pkt_set_aa(reply.get(), authoritative);
    ldns_pkt_set_ad(reply.get(), authoritative && plan.secure && wants_ad);
    for (auto& rr : plan.answers) ldns_pkt_push_rr(reply.get(), LDNS_SECTION_ANSWER, rr.release());

    std::string out = wire(reply.get());
    size_t limit = edns ? std::max<size_t>(kPlainUdpSize, ldns_pkt_edns_udp_size(query.get())) : kPlainUdpSize;
    if (over_udp && out.size() > limit) {
      // RFC 2181 §9: too big for the client's buffer; say so with TC and
      // no records, so it asks again over TCP.
      ldns_rr_list* answers = ldns_pkt_answer(reply.get());
      ldns_rr_list_deep_free(answers);
      ldns_pkt_set_answer(reply.get(), ldns_rr_list_new());
      ldns_pkt_set_ancount(reply.get(), 0);
      ldns_pkt_set_tc(reply.get(), true);
      out = wire(reply.get());
    }
    return out;
  }

  static std::string wire(const ldns_pkt* pkt) {
    uint8_t* buf = nullptr;
    size_t size = 0;
    if (ldns_pkt2wire(&buf, pkt, &size) != LDNS_STATUS_OK || !buf) return {};
    std::string out(reinterpret_cast<char*>(buf), size);
    free(buf);
    return out;
  }

  void serve_udp() {
    for (int i = 0; i < kUdpBurst; ++i) {
      uint8_t buf[LDNS_MAX_PACKETLEN];
      sockaddr_storage from{};
      socklen_t from_len = sizeof from;
      ssize_t n = ::recvfrom(udp, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < 0) return;  // EAGAIN: drained
      std::string out = answer(buf, static_cast<size_t>(n), true);
      if (!out.empty())
        (void)::sendto(udp, out.data(), out.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&from), from_len);
    }
  }

  void accept_tcp() {
    while (true) {
      int fd = ::accept4(tcp, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      if (conns.size() >= kMaxTcpConnections) {
        ::close(fd);  // over the limit: refuse by closing at once
        continue;
      }
      conns.push_back(TcpConnection{fd, {}, {}, false, Clock::now()});
    }
  }

  // Reads and answers what a connection sent; false to close it.
  bool read_tcp(TcpConnection& c) {
    char buf[4096];
    while (c.out.size() < kMaxTcpPendingBytes) {
      ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n == 0) {
        c.read_closed = true;
        break;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        return false;
      }
      c.in.append(buf, static_cast<size_t>(n));
      c.last_activity = Clock::now();
      while (c.in.size() >= 2) {
        size_t len = (static_cast<uint8_t>(c.in[0]) << 8) | static_cast<uint8_t>(c.in[1]);
        if (len == 0 || len > kMaxTcpQueryBytes) return false;
        if (c.in.size() < 2 + len) break;
        std::string out = answer(reinterpret_cast<const uint8_t*>(c.in.data() + 2), len, false);
        c.in.erase(0, 2 + len);
        if (!out.empty()) {
          c.out.push_back(static_cast<char>(out.size() >> 8));
          c.out.push_back(static_cast<char>(out.size() & 0xFF));
          c.out += out;
        }
      }
      if (c.in.size() > 2 + kMaxTcpQueryBytes) return false;
    }
    return write_tcp(c);
  }

  bool write_tcp(TcpConnection& c) {
    while (!c.out.empty()) {
      ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        return false;
      }
      c.out.erase(0, static_cast<size_t>(n));
      c.last_activity = Clock::now();
    }
    return !(c.read_closed && c.out.empty());
  }

  void run() {
    std::vector<pollfd> fds;
    while (!stopping.load()) {
      fds.clear();
      fds.push_back({wake, POLLIN, 0});
      fds.push_back({udp, POLLIN, 0});
      fds.push_back({tcp, POLLIN, 0});
      auto now = Clock::now();
      auto next_idle = now + kTcpIdleTimeout;
      for (auto& c : conns) {
        short events = 0;
        if (!c.read_closed && c.out.size() < kMaxTcpPendingBytes) events |= POLLIN;
        if (!c.out.empty()) events |= POLLOUT;
        fds.push_back({c.fd, events, 0});
        next_idle = std::min(next_idle, c.last_activity + kTcpIdleTimeout);
      }
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_idle - now).count() + 1;
      int rc = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(wait, 0)));
      if (rc < 0 && errno != EINTR) break;
      if (stopping.load() || (fds[0].revents & POLLIN)) break;
      // Connections first: their indices match `fds` until accept adds more.
      std::vector<TcpConnection> kept;
      now = Clock::now();
      for (size_t i = 0; i < conns.size(); ++i) {
        TcpConnection& c = conns[i];
        const short re = fds[3 + i].revents;
        bool keep = true;
        if (re & (POLLERR | POLLNVAL)) keep = false;
        else if (re & (POLLIN | POLLHUP)) keep = read_tcp(c);
        else if (re & POLLOUT) keep = write_tcp(c);
        if (keep && now - c.last_activity >= kTcpIdleTimeout) keep = false;
        if (keep)
          kept.push_back(std::move(c));
        else
          ::close(c.fd);
      }
      conns = std::move(kept);
      if (fds[1].revents & POLLIN) serve_udp();
      if (fds[2].revents & POLLIN) accept_tcp();
    }
  }
};

namespace {

// A socket of `type` bound to address:port; -1 and errno on failure.
int bind_socket(int type, const base::SocketAddress& addr) {
  int fd = ::socket(addr.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  if (type == SOCK_STREAM) (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, addr.get(), addr.length) != 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

uint16_t bound_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.ss_family == AF_INET ? reinterpret_cast<sockaddr_in&>(addr).sin_port
                                         : reinterpret_cast<sockaddr_in6&>(addr).sin6_port);
}

}  // namespace

DnsResponder::DnsResponder() : state_(std::make_unique<State>()) {}

DnsResponder::~DnsResponder() { stop(); }

void DnsResponder::start(const std::string& address, uint16_t port) {
  State& s = *state_;
  if (s.thread.joinable()) throw std::runtime_error("dns responder already running on " + server());
  const auto ip = base::parse_ip_address(address);
  if (!ip) throw std::runtime_error("dns responder: `" + address + "` is not an IP address");
  std::string problem;
  for (int attempt = 0; attempt < (port == 0 ? kBindAttempts : 1); ++attempt) {
    s.udp = bind_socket(SOCK_DGRAM, base::socket_address(*ip, port));
    if (s.udp < 0) {
      problem = std::string("udp: ") + std::strerror(errno);
      break;
    }
    const uint16_t chosen = bound_port(s.udp);
    s.tcp = bind_socket(SOCK_STREAM, base::socket_address(*ip, chosen));
    if (s.tcp >= 0 && ::listen(s.tcp, static_cast<int>(kMaxTcpConnections)) == 0) {
      s.port = chosen;
      problem.clear();
      break;
    }
    // The UDP port's TCP twin is taken: try another pair.
    problem = std::string("tcp: ") + std::strerror(errno);
    s.close_all();
  }
  if (s.udp < 0 || s.tcp < 0) {
    s.close_all();
    throw std::runtime_error("dns responder cannot listen on `" + address + ":" + std::to_string(port) +
                             "`: " + problem);
  }
  s.wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s.wake < 0) {
    s.close_all();
    throw std::runtime_error(std::string("dns responder: eventfd: ") + std::strerror(errno));
  }
  s.address = address;
  s.stopping = false;
  try {
    s.thread = std::thread([&s] { s.run(); });
  } catch (...) {
    s.close_all();
    throw std::runtime_error("dns responder: cannot start its thread");
  }
}

void DnsResponder::stop() {
  State& s = *state_;
  if (!s.thread.joinable()) return;
  s.stopping = true;
  uint64_t one = 1;
  (void)::write(s.wake, &one, sizeof one);
  s.thread.join();
  s.close_all();
}

uint16_t DnsResponder::port() const { return state_->port; }

std::string DnsResponder::server() const {
  const std::string& a = state_->address;
  return (a.find(':') != std::string::npos ? "[" + a + "]" : a) + ":" + std::to_string(state_->port);
}

void DnsResponder::set(DnsRrset rrset) {
  rrset.name = normalise(rrset.name);
  ldns_rdf* owner = ldns_dname_new_frm_str(owner_text(rrset.name).c_str());
  if (!owner) throw std::invalid_argument("dns responder: bad name `" + rrset.name + "`");
  ldns_rdf_deep_free(owner);
  for (const auto& rdata : rrset.rdata)
    if (!make_rr(rrset.name, rrset.ttl, rrset.type, rdata))
      throw std::invalid_argument("dns responder: bad " + type_text(rrset.type) + " rdata `" + rdata + "` for `" +
                                  rrset.name + "`");
  std::lock_guard lock(state_->mu);
  auto key = std::make_pair(rrset.name, rrset.type);
  state_->rrsets[key] = std::move(rrset);
}

void DnsResponder::erase(const std::string& name, uint16_t type) {
  std::lock_guard lock(state_->mu);
  state_->rrsets.erase({normalise(name), type});
}

void DnsResponder::set_name(std::string name, DnsBehaviour behaviour, bool secure) {
  std::lock_guard lock(state_->mu);
  state_->names[normalise(name)] = NameEntry{behaviour, secure};
}

void DnsResponder::set_default_secure(bool secure) {
  std::lock_guard lock(state_->mu);
  state_->default_secure = secure;
}

void DnsResponder::clear() {
  std::lock_guard lock(state_->mu);
  state_->rrsets.clear();
  state_->names.clear();
  state_->query_count = 0;
  state_->log.clear();
}

size_t DnsResponder::query_count() const {
  std::lock_guard lock(state_->mu);
  return state_->query_count;
}

std::vector<std::pair<std::string, uint16_t>> DnsResponder::queries() const {
  std::lock_guard lock(state_->mu);
  return state_->log;
}

}  // namespace tlsp::sim
