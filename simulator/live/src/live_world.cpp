// live_world.cpp — run_live(): one scenario's world built for real on the
// loopback, a real relay process run on it, and the outcome read back from
// the relay's log and the peers (tlsp/sim/live.h has the contract).
//
// The world, per address block 127.20.<slot>.0/24:
//   .1    the relay (listens; the submitting client binds here too, and it
//         is the only submit network, so inbound clients are never taken
//         for submitters)
//   .2    the DNS responder (the relay's resolver)
//   .3    the MTA-STS HTTPS server (mta-sts.<domain> resolves here)
//   .4    the next hop of the managed domain (inbound)
//   .10+  one SMTP peer per MX host, in the order written, all on one port
//         (the relay's --smtp-port)
//   .200  the inbound client (see map_client_table in live_check.cpp)
//
// Waiting is on relay log lines and peer records with deadlines, never on
// sleeps. The relay is told to retry only after an hour, so the first
// delivery run is the only one the world sees.
#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>

#include "tlsp/base/digest.h"
#include "tlsp/dane.h"
#include "tlsp/decision_table.h"
#include "tlsp/mta_sts.h"
#include "tlsp/mta_sts_fetch.h"
#include "tlsp/sim/dns_responder.h"
#include "tlsp/sim/https_server.h"
#include "tlsp/sim/live.h"
#include "tlsp/sim/relay_process.h"
#include "tlsp/sim/smtp_peer.h"
#include "tlsp/sim/test_pki.h"
#include "tlsp/stream.h"

namespace tlsp::sim {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using relay::LogEvent;
using relay::LogLine;
using Want = relay::LogFields;

// Address block offsets (see the file comment).
constexpr int kRelayHost = 1, kDnsHost = 2, kHttpsHost = 3, kNextHopHost = 4, kFirstMxHost = 10, kClientHost = 200;
constexpr size_t kMaxMxHosts = kClientHost - kFirstMxHost;
// How long a peer may take to record a session the relay already logged.
constexpr std::chrono::milliseconds kPeerSettle{5000};
constexpr const char* kMessageData = "Subject: tlsp live simulation\r\nMessage-ID: <live@tlsp.test>\r\n\r\nhello\r\n";

// Cancellation (cancel_live_runs): a flag and the pid of each slot's relay.
std::atomic<bool> g_cancelled{false};
std::atomic<pid_t> g_relay_pid[kLiveMaxSlots];

int64_t micros_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count();
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

DnsStatus inherited(DnsStatus parent) {
  return parent == DnsStatus::secure ? DnsStatus::secure : DnsStatus::insecure;
}

// One scripted answer: records with the AD bit or not, or a failure. An
// nxdomain status leaves the name out (an empty rrset is NODATA).
void script_answer(DnsResponder& dns, const std::string& name, uint16_t type, std::vector<std::string> rdata,
                   DnsStatus status) {
  DnsRrset r{name, type, std::move(rdata), status == DnsStatus::secure};
  switch (status) {
    case DnsStatus::nxdomain:
      return;
    case DnsStatus::secure:
    case DnsStatus::insecure:
      if (r.rdata.empty()) return dns.set_name(name, DnsBehaviour::answer, r.secure);
      break;
    case DnsStatus::bogus:
      r.behaviour = DnsBehaviour::bogus;
      break;
    case DnsStatus::servfail:
      r.behaviour = DnsBehaviour::servfail;
      break;
    case DnsStatus::timeout:
      r.behaviour = DnsBehaviour::silence;
      break;
  }
  if (r.rdata.empty() && r.behaviour != DnsBehaviour::answer) return dns.set_name(name, r.behaviour, false);
  dns.set(std::move(r));
}

using base::hex;

// A TXT record's presentation form: the text quoted, `"` and `\` escaped.
std::string txt_rdata(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string policy_body(StsMode mode, const std::vector<std::string>& patterns) {
  std::string b = "version: STSv1\nmode: " + std::string(to_string(mode)) + "\n";
  for (const auto& p : patterns) b += "mx: " + p + "\n";
  return b + "max_age: " + std::to_string(kLiveCachedMaxAge) + "\n";
}

// The hosts of the MX answer as the scenario has them (an empty MX block:
// the domain is its own MX).
std::vector<HostScript> mx_hosts(const Scenario& s) {
  if (!s.hosts.empty()) return s.hosts;
  HostScript h;
  h.name = s.mx_domain;
  h.pref = 0;
  return {h};
}

// A world's pieces, torn down in reverse order of their declaration by the
// destructor (relay first, then peers and servers, then files).
struct World {
  std::string dir;
  std::string base;  // "127.20.<slot>."
  unsigned slot = 0;
  std::unique_ptr<TestPki> pki;
  DnsResponder dns;
  std::unique_ptr<HttpsServer> https;
  std::vector<std::unique_ptr<SmtpPeer>> peers;  // MX hosts, in the order written
  std::vector<std::string> peer_names;
  std::unique_ptr<SmtpPeer> next_hop;
  std::unique_ptr<RelayProcess> relay;
  uint16_t relay_port = 0;
  uint16_t smtp_port = 0;

  ~World() {
    if (relay) {
      g_relay_pid[slot].store(0);
      relay.reset();
    }
    for (auto& p : peers) p->stop();
    peers.clear();
    next_hop.reset();
    https.reset();
    dns.stop();
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }

  std::string addr(int host) const { return base + std::to_string(host); }
};

class LiveRun {
 public:
  LiveRun(const LiveConfig& config, const Scenario& s, unsigned slot)
      : c_(config), s_(s), world_(std::make_unique<World>()), w_(*world_) {
    w_.slot = slot;
    w_.base = "127.20." + std::to_string(slot) + ".";
  }

  LiveResult run() {
    const auto start = Clock::now();
    try {
      if (w_.slot >= kLiveMaxSlots) throw std::runtime_error("no address block for slot " + std::to_string(w_.slot));
      if (g_cancelled) throw std::runtime_error("cancelled");
      make_dir();
      if (s_.direction == Direction::outbound)
        run_outbound();
      else
        run_inbound();
    } catch (const std::exception& e) {
      r_.error = e.what();
    }
    if (c_.keep_logs && w_.relay) r_.log = w_.relay->lines();
    const auto down = Clock::now();
    world_.reset();  // w_ is not used after this
    r_.phases.teardown = micros_since(down);
    r_.phases.total = micros_since(start);
    return std::move(r_);
  }

 private:
  // ------------------------------------------------------------ pieces

  void make_dir() {
    const auto t = Clock::now();
    std::string tmpl = (fs::path(c_.work_dir) / "tlsp-live-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("cannot make a directory under `" + c_.work_dir + "`");
    w_.dir = tmpl;
    r_.phases.world += micros_since(t);
  }

  void start_pki() {
    const auto t = Clock::now();
    w_.pki = std::make_unique<TestPki>(w_.dir + "/pki");
    relay_cert_ = w_.pki->issue({"relay.live.test"});
    r_.phases.certs += micros_since(t);
  }

  TestCert issue(const std::string& name, CertKind kind) {
    const auto t = Clock::now();
    TestCert c = w_.pki->issue({name}, kind);
    r_.phases.certs += micros_since(t);
    return c;
  }

  static CertKind cert_kind(CertStatus s) {
    switch (s) {
      case CertStatus::valid:
        return CertKind::valid;
      case CertStatus::expired:
        return CertKind::expired;
      case CertStatus::wrong_name:
        return CertKind::wrong_name;
      case CertStatus::self_signed:
        return CertKind::self_signed;
      case CertStatus::untrusted:
        return CertKind::untrusted;
    }
    return CertKind::valid;
  }

  // A certificate whose key and issuer are not the host's: what a
  // mismatching DANE record is made of.
  TestCert& other_for(const TestCert& host) {
    if (!other_trusted_) other_trusted_ = issue("other.live.test", CertKind::valid);
    if (!other_untrusted_) other_untrusted_ = issue("other.live.test", CertKind::untrusted);
    return other_trusted_->issuer_pem != host.issuer_pem ? *other_trusted_ : *other_untrusted_;
  }

  // The TLSA RDATA for one scripted record against the host's real chain.
  std::string tlsa_rdata(const HostScript& h, const TestCert& cert, const TlsaRecordScript& rec) {
    TlsaRecord r;
    if (rec.kind) {
      switch (*rec.kind) {
        case TlsaKind::dane_ee_match:
          r = TestPki::tlsa_for(cert, 3, 1, 1);
          break;
        case TlsaKind::dane_ee_mismatch:
          r = TestPki::tlsa_for(other_for(cert), 3, 1, 1);
          break;
        case TlsaKind::dane_ta_match:
          r = TestPki::tlsa_for(cert, 2, 1, 1);
          break;
        case TlsaKind::dane_ta_mismatch:
          r = TestPki::tlsa_for(other_for(cert), 2, 1, 1);
          break;
        case TlsaKind::pkix_ee:
          r = TestPki::tlsa_for(cert, 3, 1, 1), r.usage = 1;
          break;
        case TlsaKind::pkix_ta:
          r = TestPki::tlsa_for(cert, 2, 1, 1), r.usage = 0;
          break;
        case TlsaKind::bad_selector:
          r = TestPki::tlsa_for(cert, 3, 1, 1), r.selector = 2;
          break;
        case TlsaKind::bad_mtype:
          r = TestPki::tlsa_for(cert, 3, 1, 1), r.mtype = 3;
          break;
        case TlsaKind::bad_length:
          r = TestPki::tlsa_for(cert, 3, 1, 1);
          r.data.resize(r.data.size() / 2);
          break;
      }
      return format_tlsa_record(r);
    }
    // A literal record was written against the model's stand-in chain
    // (docs/scenarios.md). What it is there, it must be here: a match is
    // rebased onto the real chain and a mismatch onto another one (same
    // usage, selector and matching type); anything else is used as written.
    const TlsaKind k = classify_tlsa_record(h.name, rec);
    const bool match = k == TlsaKind::dane_ee_match || k == TlsaKind::dane_ta_match;
    const bool mismatch = k == TlsaKind::dane_ee_mismatch || k == TlsaKind::dane_ta_mismatch;
    if (match || mismatch) {
      r = TestPki::tlsa_for(match ? cert : other_for(cert), rec.usage, rec.selector, rec.mtype);
      r_.notes.push_back("tlsa record `" + rec.text + "` (" + std::string(to_string(k)) + ") rebased onto the " +
                         (match ? "host's" : "other") + " chain of " + lower(h.name));
      return format_tlsa_record(r);
    }
    std::string data = hex(rec.data);
    return std::to_string(rec.usage) + " " + std::to_string(rec.selector) + " " + std::to_string(rec.mtype) + " " +
           (data.empty() ? "00" : data);
  }

  void start_dns() {
    const auto t = Clock::now();
    w_.dns.start(w_.addr(kDnsHost), 0);
    r_.phases.dns += micros_since(t);
  }

  // Every MX peer on one port (the relay's --smtp-port): the first takes a
  // free one, the others the same on their addresses. Another process may
  // hold that port on one of them (a concurrent live run uses the same
  // blocks); then all start again on a new port, a few times.
  void start_peers(std::vector<SmtpPeerConfig> configs) {
    constexpr int kPortAttempts = 5;
    const auto t = Clock::now();
    for (int attempt = 1;; ++attempt) {
      w_.peers.clear();
      w_.smtp_port = 0;
      try {
        for (SmtpPeerConfig& pc : configs) {
          pc.port = w_.smtp_port;
          w_.peers.push_back(std::make_unique<SmtpPeer>(pc));
          if (w_.smtp_port == 0) w_.smtp_port = w_.peers.back()->port();
        }
        break;
      } catch (const std::runtime_error&) {
        if (attempt == kPortAttempts) throw;
      }
    }
    r_.phases.world += micros_since(t);
  }

  // The MX hosts' peers, and their DNS.
  void build_outbound_world() {
    const std::vector<HostScript> hosts = mx_hosts(s_);
    if (hosts.size() > kMaxMxHosts) throw std::runtime_error("too many MX hosts for one address block");
    const std::string domain = lower(s_.mx_domain);
    std::vector<std::string> mx_rdata;
    std::vector<std::vector<std::string>> tlsa_rdata_by_host;
    std::vector<SmtpPeerConfig> peer_configs;
    for (size_t i = 0; i < hosts.size(); ++i) {
      const HostScript& h = hosts[i];
      const std::string name = lower(h.name);
      TestCert cert = issue(name, cert_kind(h.cert));
      const auto t = Clock::now();
      SmtpPeerConfig pc;
      pc.address = w_.addr(kFirstMxHost + static_cast<int>(i));
      pc.port = w_.smtp_port;
      pc.hostname = name;
      pc.offer_starttls = h.starttls;
      pc.broken_tls = h.tls == 0;
      pc.tls_versions = h.tls == 0 ? kAllTlsVersions : h.tls;
      pc.cert_file = cert.cert_file;
      pc.key_file = cert.key_file;
      peer_configs.push_back(pc);
      w_.peer_names.push_back(name);
      r_.phases.world += micros_since(t);
      // The TLSA records now: a mismatch may need another certificate,
      // whose making counts as certificate time, not DNS time.
      std::vector<std::string> rdata;
      if (h.tlsa)
        for (const auto& rec : h.tlsa->records) rdata.push_back(tlsa_rdata(h, cert, rec));
      tlsa_rdata_by_host.push_back(std::move(rdata));
      if (!s_.hosts.empty()) mx_rdata.push_back(std::to_string(h.pref) + " " + name + ".");
    }

    start_peers(peer_configs);
    const auto t = Clock::now();
    if (!s_.hosts.empty()) {
      script_answer(w_.dns, domain, dns_type::MX, mx_rdata, s_.mx_dnssec);
    } else if (s_.mx_dnssec == DnsStatus::secure || s_.mx_dnssec == DnsStatus::insecure) {
      // No MX records: the name exists (its A record below), the MX type
      // does not; the denial is signed or not as the MX status says.
      w_.dns.set_name(domain, DnsBehaviour::answer, s_.mx_dnssec == DnsStatus::secure);
    } else {
      script_answer(w_.dns, domain, dns_type::MX, {}, s_.mx_dnssec);
    }
    for (size_t i = 0; i < hosts.size(); ++i) {
      const HostScript& h = hosts[i];
      const std::string name = lower(h.name);
      const DnsStatus addr = h.addr_dnssec.value_or(inherited(s_.mx_dnssec));
      script_answer(w_.dns, name, dns_type::A, {w_.addr(kFirstMxHost + static_cast<int>(i))}, addr);
      if (!h.tlsa) continue;
      const DnsStatus st = h.tlsa->dnssec.value_or(inherited(addr));
      script_answer(w_.dns, "_25._tcp." + name, dns_type::TLSA, tlsa_rdata_by_host[i], st);
    }
    r_.phases.dns += micros_since(t);
    build_mta_sts(domain, hosts);
  }

  // `_mta-sts` TXT, mta-sts.<domain>, the HTTPS server and the cache.
  void build_mta_sts(const std::string& domain, const std::vector<HostScript>& hosts) {
    const MtaStsScript& sts = s_.sts;
    if (sts.txt) {
      const auto t = Clock::now();
      w_.dns.set({"_mta-sts." + domain, dns_type::TXT, {txt_rdata(*sts.txt)}, false});
      w_.dns.set({"mta-sts." + domain, dns_type::A, {w_.addr(kHttpsHost)}, false});
      r_.phases.dns += micros_since(t);
      const bool bad_cert = sts.fetch == StsFetch::bad_cert;
      TestCert cert = issue("mta-sts." + domain, bad_cert ? CertKind::untrusted : CertKind::valid);
      const auto t2 = Clock::now();
      HttpsResponse resp;
      if (sts.policy) {
        resp.body = *sts.policy;
      } else if (sts.fetch) {
        resp.body = policy_body(StsMode::enforce, {"*." + domain});
        switch (*sts.fetch) {
          case StsFetch::ok:
          case StsFetch::bad_cert:
            break;
          case StsFetch::http_error:
            resp.status = 404;
            resp.body = "not found\n";
            break;
          case StsFetch::timeout:
            resp.delay = kLiveStsDelay;
            break;
          case StsFetch::invalid:
            resp.body = "this is not an MTA-STS policy\n";
            break;
        }
      } else {
        resp.delay = kLiveStsDelay;  // the model's default for a missing result is a timeout
      }
      w_.https = std::make_unique<HttpsServer>();
      w_.https->start(cert.cert_file, cert.key_file, w_.addr(kHttpsHost), 0);
      w_.https->set_response("mta-sts." + domain, "/.well-known/mta-sts.txt", resp);
      r_.phases.world += micros_since(t2);
    }
    if (sts.cached) {
      const auto t = Clock::now();
      std::vector<std::string> patterns;
      if (sts.cached_mx) {
        patterns = *sts.cached_mx;
      } else {
        if (sts.policy) {
          auto served = parse_mta_sts_policy(*sts.policy);
          if (served) patterns = served.value->mx;
        }
        if (patterns.empty())
          for (const auto& h : hosts) patterns.push_back(lower(h.name));
      }
      MtaStsCache cache(w_.dir + "/mta-sts");
      std::string error;
      // An id the TXT record never names, so the relay fetches when told to.
      if (!cache.put(domain, "livecached", policy_body(*sts.cached, patterns), std::time(nullptr), &error))
        throw std::runtime_error("cannot write the cached policy: " + error);
      r_.phases.world += micros_since(t);
    }
  }

  void start_relay(const std::string& table, const std::string& next_hop_domain) {
    const auto t = Clock::now();
    const std::string hop = w_.addr(kNextHopHost) + ":" + std::to_string(w_.next_hop ? w_.next_hop->port() : 25);
    std::vector<std::string> args = {"relay",
                                     "--listen",
                                     w_.addr(kRelayHost) + ":0",
                                     "--hostname",
                                     "relay.live.test",
                                     "--table",
                                     readable_by_service_user(table, w_.dir),
                                     "--spool",
                                     w_.dir + "/spool",
                                     "--mta-sts-cache",
                                     w_.dir + "/mta-sts",
                                     "--resolver",
                                     w_.dns.server(),
                                     "--smtp-port",
                                     std::to_string(w_.smtp_port ? w_.smtp_port : 25),
                                     "--ca-file",
                                     w_.pki->ca_file(),
                                     "--tls-cert",
                                     relay_cert_.cert_file,
                                     "--tls-key",
                                     relay_cert_.key_file,
                                     "--submit-network",
                                     w_.addr(kRelayHost) + "/32",
                                     "--next-hop",
                                     next_hop_domain + "=" + hop,
                                     "--retry-schedule",
                                     "1h",
                                     "--connect-timeout",
                                     std::to_string(kLiveConnectTimeout.count()) + "s",
                                     "--command-timeout",
                                     std::to_string(kLiveCommandTimeout.count()) + "s",
                                     "--dns-timeout",
                                     std::to_string(kLiveDnsTimeout.count()) + "s",
                                     "--sts-fetch-timeout",
                                     std::to_string(kLiveStsFetchTimeout.count()) + "s",
                                     "--delivery-workers",
                                     "1",
                                     "--shutdown-grace",
                                     "1s",
                                     "--table-check-interval",
                                     "1h"};
    if (w_.https) args.insert(args.end(), {"--mta-sts-port", std::to_string(w_.https->port())});
    for (std::string& a : service_user_args(w_.dir)) args.push_back(std::move(a));
    if (g_cancelled) throw std::runtime_error("cancelled");
    w_.relay = std::make_unique<RelayProcess>(c_.tlsp_binary, args);
    g_relay_pid[w_.slot].store(w_.relay->pid());
    if (g_cancelled) throw std::runtime_error("cancelled");
    w_.relay_port = w_.relay->wait_ready(c_.timeout);
    r_.phases.relay += micros_since(t);
    if (w_.relay_port == 0) throw std::runtime_error("the relay did not start: " + last_lines());
  }

  std::string last_lines() const {
    std::string s;
    if (!w_.relay) return s;
    auto lines = w_.relay->lines();
    for (size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); ++i) s += "\n  " + lines[i];
    return s;
  }

  SubmitResult submit(const std::string& source, bool starttls, TlsVersionSet versions) {
    const auto t = Clock::now();
    SubmitOptions o;
    o.address = w_.addr(kRelayHost);
    o.port = w_.relay_port;
    o.source_address = source;
    o.ehlo_name = "client.live.test";
    o.starttls = starttls;
    o.tls_versions = versions;
    o.sni = "relay.live.test";
    o.message.mail_from = s_.from;
    o.message.rcpts = {s_.to};
    o.message.data = kMessageData;
    o.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(c_.timeout);
    SubmitResult r = submit_message(o);
    r_.phases.submit += micros_since(t);
    return r;
  }

  static std::string queue_id_of(const SubmitResult& r) {
    const std::string key = "queued as ";
    size_t p = r.reply.find(key);
    if (p == std::string::npos) return {};
    std::string id = r.reply.substr(p + key.size());
    size_t end = id.find_first_of(" \r\n,");
    return id.substr(0, end);
  }

  bool wait_event(LogEvent event, const Want& want, LogLine* out, size_t from = 0, size_t* index = nullptr) {
    bool ok = w_.relay->wait_for(
        [&](const LogLine& l) {
          if (!l.matches(event, want)) return false;
          if (out) *out = l;
          return true;
        },
        c_.timeout, from, nullptr, index);
    if (!ok && g_cancelled) throw std::runtime_error("cancelled");
    return ok;
  }

  // ------------------------------------------------------------ outbound

  void run_outbound() {
    start_pki();
    start_dns();
    build_outbound_world();
    start_relay(c_.table_file, domain_of_address(s_.from));
    SubmitResult sub = submit(w_.addr(kRelayHost), false, kAllTlsVersions);
    if (!sub.accepted)
      throw std::runtime_error("the relay refused the message at " + std::string(to_string(sub.failed_stage)) + ": " +
                               sub.reply + sub.error);
    const std::string id = queue_id_of(sub);
    if (id.empty()) throw std::runtime_error("no queue id in the reply `" + sub.reply + "`");
    const auto t = Clock::now();
    LogLine done;
    if (!wait_event(LogEvent::queue, {{"queue_id", id}}, &done))
      throw std::runtime_error("the first delivery run did not end within the deadline" + last_lines());
    r_.phases.delivery += micros_since(t);
    r_.ran = true;
    read_outbound(id);
  }

  void read_outbound(const std::string& id) {
    std::vector<LogLine> attempts;
    for (const std::string& l : w_.relay->lines()) {
      std::optional<LogLine> f = relay::parse_log_line(l);
      if (f && f->matches(LogEvent::attempt, {{"queue_id", id}})) attempts.push_back(std::move(*f));
    }
    if (attempts.empty()) {
      r_.error = "the relay logged no delivery attempt";
      return;
    }
    // The MX walk as the relay did it: the attempt that sent, else the first.
    size_t chosen = 0;
    for (size_t i = 0; i < attempts.size(); ++i)
      if (attempts[i].get("action") == "sent" || attempts[i].get("action") == "sent-last-resort") {
        chosen = i;
        break;
      }
    const LogLine& a = attempts[chosen];
    auto field = [&](const char* k) { return a.get(k).empty() ? std::string("-") : a.get(k); };
    r_.outcome = field("outcome");
    r_.channel = field("channel");
    r_.applied = field("applied");
    r_.tls = field("tls");
    r_.reason = field("reason");
    r_.via = lower(field("mx"));
    if (r_.via == "-") {
      // The MX lookup failed: no host was named; every host was refused
      // alike, and the most preferred one stands for them.
      std::vector<HostScript> hosts = mx_hosts(s_);
      std::stable_sort(hosts.begin(), hosts.end(), [](const auto& x, const auto& y) { return x.pref < y.pref; });
      r_.via = lower(hosts.front().name);
      r_.notes.push_back("the MX lookup failed: the relay named no host (`mx=-`)");
    }
    for (const LogLine& f : attempts) {
      auto get = [&](const char* k) {
        const std::string* v = f.find(k);
        return v ? *v : std::string("-");
      };
      r_.notes.push_back("attempt " + get("mx") + " [" + get("addr") + "]: " + get("outcome") + " " + get("channel") +
                         " " + get("applied") + " " + get("tls") + " " + get("reason") + ", " + get("action") +
                         (f.find("detail") ? " (" + get("detail") + ")" : ""));
    }
    check_wire_outbound(a);
    check_not_contacted(attempts);
  }

  // A host the relay refused without connecting (addr `-`) must have seen
  // no session at all.
  void check_not_contacted(const std::vector<LogLine>& attempts) {
    for (const LogLine& f : attempts) {
      const std::string* addr = f.find("addr");
      const std::string* mx = f.find("mx");
      if (!addr || *addr != "-" || !mx) continue;
      for (size_t i = 0; i < w_.peers.size(); ++i)
        if (w_.peer_names[i] == lower(*mx) && !w_.peers[i]->sessions().empty())
          r_.problems.push_back("the relay logged no connection to " + w_.peer_names[i] + ", which had a session");
    }
  }

  void check_wire_outbound(const LogLine& chosen) {
    auto get = [&](const char* k) { return chosen.get(k); };
    const std::string action = get("action");
    const bool sent = action == "sent" || action == "sent-last-resort";
    for (size_t i = 0; i < w_.peers.size(); ++i) {
      SmtpPeer& p = *w_.peers[i];
      const bool target = sent && get("addr") == p.address();
      if (target) p.wait_for_messages(1, kPeerSettle);
      auto msgs = p.messages();
      auto sessions = p.sessions();
      std::string line = w_.peer_names[i] + " [" + p.address() + "]: " + std::to_string(sessions.size()) +
                         " session(s) ended, " + std::to_string(msgs.size()) + " message(s)";
      for (const auto& m : msgs)
        line += "; received " +
                std::string(m.tls == TlsVersion::none ? "in plaintext" : "over " + std::string(to_string(m.tls))) +
                (m.sni.empty() ? "" : ", sni " + m.sni);
      r_.wire.push_back(line);
      if (!target) {
        if (!msgs.empty())
          r_.problems.push_back(w_.peer_names[i] + " received the message, but the relay's result is " +
                                (sent ? "another host" : "no delivery"));
        continue;
      }
      if (msgs.size() != 1) {
        r_.problems.push_back("the relay logged a delivery to " + w_.peer_names[i] + ", which received " +
                              std::to_string(msgs.size()) + " message(s)");
        continue;
      }
      const std::string seen = std::string(to_string(msgs[0].tls));
      if (seen != get("tls"))
        r_.problems.push_back("the relay logged tls " + get("tls") + ", " + w_.peer_names[i] + " received over " +
                              seen);
      if (msgs[0].tls != TlsVersion::none && lower(msgs[0].sni) != lower(get("mx")))
        r_.problems.push_back("SNI `" + msgs[0].sni + "` is not the MX host `" + get("mx") + "`");
      if (msgs[0].data.find("hello") == std::string::npos)
        r_.problems.push_back("the message body did not arrive intact");
    }
  }

  // ------------------------------------------------------------- inbound

  void run_inbound() {
    start_pki();
    start_dns();
    const std::string managed = domain_of_address(s_.to);
    const auto t = Clock::now();
    // The client's rule needs the client's address: map the table so the
    // loopback source address gets exactly the scripted address's rules.
    TableContent content = DecisionTable::open(c_.table_file).decode();
    const std::string client = w_.addr(kClientHost);
    TableContent mapped = map_client_table(content, s_.client.name, client, managed);
    const std::string table = w_.dir + "/table.tlspdt";
    write_table_file(table, mapped);
    r_.notes.push_back("client " + s_.client.name + " sends from " + client + "; CIDR selectors mapped to match alike");
    SmtpPeerConfig hop;
    hop.address = w_.addr(kNextHopHost);
    hop.hostname = "next-hop.live.test";
    hop.offer_starttls = false;
    w_.next_hop = std::make_unique<SmtpPeer>(hop);
    r_.phases.world += micros_since(t);
    start_relay(table, managed);

    const HostScript& c = s_.client;
    SubmitResult sub = c.starttls && c.tls == 0 ? broken_handshake(client) : submit(client, c.starttls, c.tls);
    r_.ran = true;
    r_.wire.push_back("client " + client + ": " +
                      (sub.accepted ? "accepted" : "refused at " + std::string(to_string(sub.failed_stage))) +
                      (sub.code ? ", reply " + sub.reply : "") + (sub.error.empty() ? "" : ", " + sub.error) +
                      (sub.tls == TlsVersion::none ? "" : ", over " + std::string(to_string(sub.tls))));
    LogLine f;
    if (sub.accepted) {
      // The accept line names the rule and the engine's verdict for it.
      const std::string id = queue_id_of(sub);
      if (!wait_event(LogEvent::accept, {{"queue_id", id}}, &f)) throw std::runtime_error("no accept line for " + id);
      r_.outcome = "deliver";
      r_.tls = f.get("tls");
      r_.channel = or_dash(f.get("channel"));
      r_.applied = or_dash(f.get("applied"));
      r_.reason = or_dash(f.get("reason"));
      r_.notes.push_back(verdict_note(f));
      if (sub.tls != TlsVersion::none && std::string(to_string(sub.tls)) != r_.tls)
        r_.problems.push_back("the relay logged " + r_.tls + ", the client negotiated " +
                              std::string(to_string(sub.tls)));
      const auto t2 = Clock::now();
      if (!wait_event(LogEvent::queue, {{"queue_id", id}}, nullptr))
        throw std::runtime_error("the next hop delivery did not end");
      r_.phases.delivery += micros_since(t2);
      if (!w_.next_hop->wait_for_messages(1, kPeerSettle)) r_.problems.push_back("the next hop received nothing");
      r_.wire.push_back("next hop: " + std::to_string(w_.next_hop->messages().size()) + " message(s)");
    } else if (sub.code == 530 || (sub.code >= 500 && sub.failed_stage != SubmitStage::starttls)) {
      if (!wait_event(LogEvent::reject, {{"direction", "inbound"}}, &f))
        throw std::runtime_error("refused with `" + sub.reply + "` but no reject line");
      r_.outcome = "refuse";
      r_.channel = "none";
      r_.tls = "none";  // nothing was delivered (the session's own version is in the log line)
      r_.applied = or_dash(f.get("applied"));
      r_.reason = or_dash(f.get("reason"));
      if (!w_.next_hop->messages().empty()) r_.problems.push_back("a refused message reached the next hop");
      r_.notes.push_back(verdict_note(f));
    } else if (sub.failed_stage == SubmitStage::starttls) {
      if (!wait_event(LogEvent::tls, {{"result", "handshake-failed"}}, &f))
        throw std::runtime_error("the client's handshake failed (" + sub.error +
                                 ") but the relay logged no failed handshake");
      r_.outcome = "refuse";
      r_.channel = "none";
      r_.tls = "none";
      r_.reason = "tls-handshake-failure";
      if (!w_.next_hop->messages().empty()) r_.problems.push_back("a refused message reached the next hop");
      r_.applied = probe_level();  // may itself deliver a message to the next hop
    } else {
      r_.error = "the client's submission failed without a refusal: " + sub.reply + sub.error;
    }
  }

  // `handshake fails` for a client: STARTTLS, then bytes that are no
  // ClientHello, then the connection closed (a broken TLS stack). The
  // scripted submit client always completes a handshake, hence this one.
  SubmitResult broken_handshake(const std::string& source) {
    constexpr size_t kMaxReplyLine = 1000;
    const auto t = Clock::now();
    SubmitResult r;
    r.failed_stage = SubmitStage::connect;
    std::string error;
    const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(c_.timeout);
    int fd = connect_tcp(w_.addr(kRelayHost), w_.relay_port, timeout, error, source);
    if (fd < 0) {
      r.error = error;
      return r;
    }
    Stream st(fd);
    st.set_timeout(timeout);
    auto reply = [&](SubmitStage stage) {
      r.failed_stage = stage;
      std::string line;
      do {
        if (st.read_line(line, kMaxReplyLine) != IoStatus::ok) return false;
        r.reply += (r.reply.empty() ? "" : "\n") + line;
      } while (line.size() > 3 && line[3] == '-');
      r.code = line.size() >= 3 ? std::atoi(line.substr(0, 3).c_str()) : 0;
      return true;
    };
    if (!reply(SubmitStage::greeting) || st.write_all("EHLO client.live.test\r\n") != IoStatus::ok ||
        !reply(SubmitStage::ehlo) || st.write_all("STARTTLS\r\n") != IoStatus::ok || !reply(SubmitStage::starttls)) {
      r.error = "the session ended before STARTTLS";
    } else if (r.code == 220) {
      st.write_all("this is not a TLS ClientHello\r\n");
      r.error = "the client's handshake failed (scripted)";
    }
    r_.phases.submit += micros_since(t);
    return r;
  }

  static std::string or_dash(const std::string& v) { return v.empty() ? "-" : v; }

  // The rule and verdict an accept or reject line names.
  static std::string verdict_note(const LogLine& f) {
    return std::string(relay::log_event_name(f.event)) + ": rule " + or_dash(f.get("rule")) + " min_tls " +
           or_dash(f.get("min_tls")) + " (" + or_dash(f.get("source")) + "), applied " + or_dash(f.get("applied")) +
           ", session tls " + or_dash(f.get("tls")) + ", reason " + or_dash(f.get("reason"));
  }

  // The level the relay enforces for this client and sender, observed
  // after a failed handshake: that session ended before MAIL and RCPT, so
  // the relay never chose a rule for it. A second, plaintext session from
  // the same client and sender asks: its accept or reject line names the
  // level applied (the only scenarios that still send a second message).
  std::string probe_level() {
    const size_t mark = w_.relay->line_count();
    SubmitResult p = submit(w_.addr(kClientHost), false, kAllTlsVersions);
    LogLine f;
    const bool logged = p.accepted ? wait_event(LogEvent::accept, {{"queue_id", queue_id_of(p)}}, &f, mark)
                                   : wait_event(LogEvent::reject, {{"direction", "inbound"}}, &f, mark);
    if (!logged) return "-";
    r_.notes.push_back("probe: a plaintext session from the same client and sender is " +
                       std::string(p.accepted ? "accepted" : "refused") + "; " + verdict_note(f));
    return or_dash(f.get("applied"));
  }

  const LiveConfig& c_;
  const Scenario& s_;
  std::unique_ptr<World> world_;
  World& w_;
  LiveResult r_;
  TestCert relay_cert_;
  std::optional<TestCert> other_trusted_, other_untrusted_;
};

}  // namespace

LivePhases& LivePhases::operator+=(const LivePhases& o) {
  certs += o.certs;
  dns += o.dns;
  world += o.world;
  relay += o.relay;
  submit += o.submit;
  delivery += o.delivery;
  teardown += o.teardown;
  total += o.total;
  return *this;
}

LiveResult run_live(const LiveConfig& config, const Scenario& scenario, unsigned slot) {
  return LiveRun(config, scenario, slot).run();
}

void cancel_live_runs() {
  g_cancelled.store(true);
  for (auto& p : g_relay_pid) {
    pid_t pid = p.load();
    if (pid > 0) ::kill(pid, SIGKILL);
  }
}

bool live_runs_cancelled() {
  return g_cancelled.load();
}

}  // namespace tlsp::sim
