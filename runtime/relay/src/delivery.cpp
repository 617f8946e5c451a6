// delivery.cpp — one delivery run for one queue entry: the SMTP client side
// of the relay (SPEC §4). It gathers the facts the enforcement engine
// consults (DNS answers with their DNSSEC status, STARTTLS, the handshake,
// the certificate checks, the MTA-STS policy), asks decide(), and does
// exactly what the outcome says, host by host in MX preference order.
//
// How a host is tried:
//  1. DNS facts (MX, A/AAAA, TLSA when the level consults it, MTA-STS).
//  2. A first decide() on the best case the DNS facts still allow: when
//     even that refuses (a failed lookup, dane-only without TLSA, an MX
//     host outside the MTA-STS policy), no connection is made. It also
//     says whether the handshake must authenticate: then the client offers
//     TLS 1.2 or later and hands the TLSA records to OpenSSL's DANE API or
//     checks the WebPKI chain (SPEC §4, "authentication needs TLS 1.2").
//  3. Connect, EHLO, STARTTLS when offered, the handshake; the observed
//     facts go to decide(). When the outcome asks for a session this
//     connection does not have (an authenticated attempt refused for the
//     version, falling back to opportunistic at a lower version), one more
//     connection observes the peer at the rule's own floor.
//  4. deliver/downgrade: send on the connection the outcome describes;
//     refuse: QUIT and go to the next host; a `last_resort` plaintext
//     outcome sets the host aside and it is retried without STARTTLS only
//     after every other host failed.
// One log line per recipient and attempt, with Postfix's fields
// (docs/logs.md), and one `tls` line per TLS session. The SMTP dialogue
// itself is smtp_client.cpp's, the TLS parameters and handshake facts peer_tls.cpp's,
// the reuse of sessions connection_cache.cpp's; the queue acts on the
// report (delivery_queue.cpp).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "delivery.h"
#include "inbound_rule.h"
#include "peer_tls.h"
#include "relay_context.h"
#include "smtp_client.h"
#include "tlsrpt_session.h"
#include "tlsp/engine.h"
#include "tlsp/mta_sts.h"

namespace tlsp::relay {
namespace {

// The one text of a failed lookup, for both the attempt line's detail and
// the queue line's reason (via last_problem_), so the two cannot disagree.
// It quotes the resolver's detail: the status name alone ("nxdomain")
// covers NODATA too, and the detail says which answer it was.
std::string lookup_problem(std::string_view what, std::string_view name, const std::string& detail) {
  return std::string(what) + " for " + std::string(name) + ": " + detail;
}

using Clock = std::chrono::steady_clock;

// The enhanced status code (RFC 3463) of a peer's reply of class `cls`
// ('2', '4', '5'): the first `cls.d{1,3}.d{1,3}` token, else `cls.0.0`.
std::string dsn_of(std::string_view reply, char cls) {
  auto is_digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  for (size_t i = 0; i + 4 < reply.size(); ++i) {
    if (reply[i] != cls || reply[i + 1] != '.' || (i > 0 && reply[i - 1] != ' ')) continue;
    size_t j = i + 2, n = 0;
    while (j < reply.size() && is_digit(reply[j]) && n < 3) ++j, ++n;
    if (n == 0 || j >= reply.size() || reply[j] != '.') continue;
    size_t k = j + 1, m = 0;
    while (k < reply.size() && is_digit(reply[k]) && m < 3) ++k, ++m;
    if (m == 0 || (k < reply.size() && reply[k] != ' ')) continue;
    return std::string(reply.substr(i, k - i));
  }
  return std::string(1, cls) + ".0.0";
}

// The relay's own codes for what failed before a peer's reply (Postfix's).
constexpr std::string_view kDsnNoConnection = "4.4.1";
constexpr std::string_view kDsnDnsFailure = "4.4.3";
constexpr std::string_view kDsnTlsPolicy = "4.7.5";

// The rule a TLSRPT report mail goes out under, whatever the table says for
// its destination: RFC 8460 §3, reports "MUST NOT" be held to the policy
// (a domain whose TLS is broken must still get its report). STARTTLS when
// offered, plaintext otherwise; the session is not counted.
constexpr std::string_view kReportMailSource = "tlsrpt-report (RFC 8460 §3)";

const PeerTlsSummary kNoTls{};

class EntryDelivery {
 public:
  EntryDelivery(RelayContext& ctx, const QueueEntry& entry, const std::string& data)
      : ctx_(ctx),
        entry_(entry),
        data_(data),
        limits_(ctx.config.limits),
        table_(ctx.table.get()),
        table_generation_(ctx.table.generation()),
        client_(ctx.hostname, ctx.config.limits),
        run_began_(std::chrono::system_clock::now()),
        port_(ctx.config.smtp_port) {}
  EntryDelivery(const EntryDelivery&) = delete;
  EntryDelivery& operator=(const EntryDelivery&) = delete;
  // A run that ended in an exception still logs what it held.
  ~EntryDelivery() {
    try {
      write_held();
    } catch (...) {
    }
  }

  DeliveryReport run() {
    if (entry_.direction == Direction::inbound) return run_next_hop();
    return run_outbound();
  }

 private:
  // ------------------------------------------------------------ logging

  using Fields = std::vector<std::pair<std::string, std::string>>;

  // The fields every attempt line has, for one recipient.
  Fields base_fields(std::string_view mx, std::string_view address, const std::string& to) const {
    return {{"queue_id", entry_.id},
            {"from", entry_.mail_from},
            {"to", "<" + to + ">"},
            {"direction", std::string(to_string(entry_.direction))},
            {"peer", entry_.direction == Direction::outbound ? entry_.destination : entry_.sender_peer},
            {"mx", std::string(mx)},
            {"addr", std::string(address)},
            {"rule", std::string(to_string(decision_.level))},
            {"min_tls", std::string(to_string(decision_.min_tls))},
            {"source", entry_.tlsrpt_report ? std::string(kReportMailSource) : table_->describe(decision_.level_from)}};
  }

  std::string relay_text(std::string_view host, std::string_view address) const {
    return std::string(host) + "[" + std::string(address) + "]:" + std::to_string(port_);
  }

  // Postfix's delay= (arrival to now) and delays=a/b/c/d/e (docs/logs.md):
  // queue wait before this run, then this run's DNS, connect, TLS and
  // transfer time so far.
  void add_delays(Fields& f) const {
    using namespace std::chrono;
    const auto now = system_clock::now();
    const system_clock::time_point arrival{milliseconds(entry_.arrival_ms ? entry_.arrival_ms : entry_.arrival * 1000)};
    f.push_back({"delay", log_seconds(now - arrival)});
    f.push_back({"delays", log_seconds(run_began_ - arrival) + "/" + log_seconds(dns_time_) + "/" +
                               log_seconds(connect_time_) + "/" + log_seconds(tls_time_) + "/" +
                               log_seconds(transfer_time_)});
  }

  // One line per recipient (as Postfix): `dsn` is what this attempt did
  // for it; `session`: the line names a connection (relay=). `status`, as
  // Postfix's, is on the line that settled the recipient for this run:
  // sent or bounced at once; a deferred line is held until the next
  // attempt for the recipient (it then goes out without a status: the run
  // went on to another host) or the end of the run (with status=deferred).
  void write_line(const std::string& to, std::string_view mx, std::string_view address, bool session,
                  std::string_view status, std::string_view dsn, const Outcome* out, std::string_view action,
                  const PeerTlsSummary& tls, std::string_view auth, std::string_view reason, const std::string& smtp,
                  const std::string& detail) {
    Fields f = base_fields(mx, address, to);
    f.push_back({"relay", session ? relay_text(mx, address) : "none"});
    add_delays(f);
    f.push_back({"dsn", std::string(dsn)});
    if (out) {
      f.push_back({"outcome", std::string(to_string(out->kind))});
      f.push_back({"applied", std::string(to_string(out->applied))});
      f.push_back({"channel", std::string(to_string(out->channel))});
      f.push_back({"tls", std::string(to_string(out->tls))});
      f.push_back({"cipher", tls.cipher.empty() ? "-" : tls.cipher});
    } else {
      f.push_back({"outcome", "refuse"});
      f.push_back({"channel", "none"});
    }
    if (!tls.group.empty()) f.push_back({"group", tls.group});
    if (!tls.trust.empty()) f.push_back({"trust", tls.trust});
    if (out) f.push_back({"auth", std::string(auth)});
    if (!reason.empty()) f.push_back({"reason", std::string(reason)});
    f.push_back({"action", std::string(action)});
    if (!smtp.empty()) f.push_back({"smtp", smtp});
    if (!detail.empty()) f.push_back({"detail", detail});
    if (sts_ && !sts_->detail.empty()) f.push_back({"sts", sts_->detail});
    if (!tls.subject.empty()) f.push_back({"peer_subject", tls.subject});
    if (!tls.issuer.empty()) f.push_back({"peer_issuer", tls.issuer});
    if (!tls.fingerprint.empty()) f.push_back({"peer_fingerprint", tls.fingerprint});
    // The writer puts `status` in its place after `dsn`.
    auto held = std::find_if(held_.begin(), held_.end(), [&](const auto& h) { return h.first == to; });
    if (held != held_.end()) {
      ctx_.log->write(LogEvent::attempt, held->second);
      held_.erase(held);
    }
    if (status == "deferred") {
      held_.emplace_back(to, std::move(f));
      return;
    }
    f.push_back({"status", std::string(status)});
    ctx_.log->write(LogEvent::attempt, f);
  }

  // The metrics count attempts, not recipients: one count per attempt,
  // whatever the number of its lines.
  void count_attempt(const Outcome& out, std::string_view action) {
    ctx_.metrics.delivery_attempt(entry_.direction, decision_.level, out.applied, out.kind, out.channel, out.tls,
                                  to_string(out.reason), action);
  }

  // The end of the run: the recipients still held are deferred.
  void write_held() {
    for (auto& [to, f] : held_) {
      f.push_back({"status", "deferred"});
      ctx_.log->write(LogEvent::attempt, f);
    }
    held_.clear();
  }

  // An attempt that sent nothing: it was for every recipient still
  // pending, each deferred with `dsn`.
  void log_attempt(std::string_view mx, std::string_view address, const Outcome& out, std::string_view action,
                   const PeerTlsSummary& tls, std::string_view auth, std::string_view dsn,
                   const std::string& detail = {}) {
    count_attempt(out, action);
    for (const std::string& r : pending_)
      write_line(r, mx, address, address != "-", "deferred", dsn, &out, action, tls, auth, to_string(out.reason), "",
                 detail);
  }

  // An attempt that ran a transaction: a line for each recipient offered,
  // with what the transaction did for it.
  void log_sent(std::string_view mx, std::string_view address, const Outcome& out, std::string_view action,
                const PeerTlsSummary& tls, std::string_view auth, const Transaction& t,
                const std::string& detail = {}) {
    count_attempt(out, action);
    for (const std::string& r : t.offered) {
      std::string_view status = "deferred";
      std::string reply = t.temporary.empty() ? t.smtp : t.temporary;
      std::string dsn = dsn_of(reply, '4');
      if (std::find(t.delivered.begin(), t.delivered.end(), r) != t.delivered.end()) {
        status = "sent";
        reply = t.smtp;
        dsn = dsn_of(reply, '2');
      } else {
        for (const auto& [a, why] : t.failed)
          if (a == r) {
            status = "bounced";
            reply = why;
            dsn = dsn_of(reply, '5');
          }
      }
      write_line(r, mx, address, true, status, dsn, &out, action, tls, auth, to_string(out.reason), reply, detail);
    }
  }

  // A failure below the engine (no connection, a broken SMTP dialogue).
  void log_transport(std::string_view mx, std::string_view address, std::string_view reason, std::string_view dsn,
                     const std::string& detail) {
    ctx_.metrics.delivery_attempt(entry_.direction, decision_.level, std::nullopt, OutcomeKind::refuse, Channel::none,
                                  TlsVersion::none, reason, "next-host");
    for (const std::string& r : pending_)
      write_line(r, mx, address, false, "deferred", dsn, nullptr, "next-host", kNoTls, "", reason, "", detail);
  }

  // A recipient bounced without a connection (null MX, no such domain).
  void log_bounced(const std::string& to, std::string_view dsn, const std::string& reply) {
    write_line(to, "-", "-", false, "bounced", dsn, nullptr, "bounce", kNoTls, "", "", "", reply);
  }

  // One `tls` line per outbound TLS session (Postfix's "Verified TLS
  // connection established to ..."), or for its failed handshake.
  void log_tls(std::string_view host, const Observation& o, const PeerTlsSummary& tls) {
    if (!o.tls_attempted) return;
    const std::string relay = relay_text(host, o.address);
    Fields f = {{"direction", "outbound"}, {"queue_id", entry_.id}, {"relay", relay}};
    if (!o.tls.ok) {
      f.push_back({"result", "handshake-failed"});
      f.push_back({"error", o.tls.error});
    } else {
      f.push_back({"result", "ok"});
      f.push_back({"trust", tls.trust});
      f.push_back({"tls", std::string(to_string(tls.version))});
      f.push_back({"cipher", tls.cipher});
      if (!tls.group.empty()) f.push_back({"group", tls.group});
      if (!tls.subject.empty()) f.push_back({"peer_subject", tls.subject});
      if (!tls.issuer.empty()) f.push_back({"peer_issuer", tls.issuer});
      if (!tls.fingerprint.empty()) f.push_back({"peer_fingerprint", tls.fingerprint});
      f.push_back({"summary", tls_established_text(tls.trust, "to " + relay, tls.version, tls.cipher, tls.group)});
    }
    ctx_.log->write(LogEvent::tls, f);
  }

  // A connection, timed for delays= and logged when it ran a handshake.
  Observation open(const std::string& host, const std::string& address, uint16_t port, TlsMode mode,
                   const TlsClientParams& params, PeerTlsSummary& tls) {
    Observation o = client_.open(address, port, mode, params);
    connect_time_ += o.connect_time;
    tls_time_ += o.tls_time;
    tls = tls_summary(o, params);
    log_tls(host, o, tls);
    return o;
  }

  // DNS work, timed for delays=.
  template <class Lookup>
  auto dns(Lookup lookup) {
    const auto begin = Clock::now();
    auto r = lookup();
    dns_time_ += Clock::now() - begin;
    return r;
  }

  // ---------------------------------------------------------- SMTP

  // One transaction for every recipient still pending; what it settled
  // goes into the report. Returns it for the log line.
  Transaction transfer(Observation& o, const std::string& mx, bool keep_open = false) {
    const auto begin = Clock::now();
    Transaction t = client_.send(o, {entry_.mail_from, entry_.body_8bit, data_}, pending_, mx, keep_open);
    transfer_time_ += Clock::now() - begin;
    report_.delivered.insert(report_.delivered.end(), t.delivered.begin(), t.delivered.end());
    report_.failed.insert(report_.failed.end(), t.failed.begin(), t.failed.end());
    pending_ = t.pending;
    if (!t.temporary.empty()) last_problem_ = t.temporary;
    kept_open_ = t.kept_open;
    return t;
  }

  // ------------------------------------------------------- outbound

  struct MxTarget {
    std::string host;
    DnsStatus mx_dnssec;
  };

  DeliveryReport run_outbound() {
    pending_ = entry_.recipients;
    decision_ = table_->lookup(Direction::outbound, entry_.managed_domain, entry_.destination);
    if (entry_.tlsrpt_report) {
      decision_.level = Level::opportunistic;
      decision_.min_tls = MinTls::any;
    }
    rule_ = {decision_.level, decision_.min_tls};
    const std::string& domain = entry_.destination;
    if (try_cached()) return finish();

    std::vector<MxTarget> hosts;
    dns::Lookup<dns::MxHost> mx = dns([&] { return ctx_.resolver->mx(domain); });
    ctx_.metrics.dns_lookup(DnsQuery::mx, mx.status);
    bool implicit = false;
    if (mx.found()) {
      for (const dns::MxHost& h : mx.records)
        if (!h.host.empty()) hosts.push_back({h.host, mx.status});
      if (hosts.empty()) {  // RFC 7505 null MX: the domain accepts no mail
        for (const std::string& r : pending_) {
          report_.failed.push_back({r, "556 5.1.10 " + domain + " does not accept mail (null MX)"});
          log_bounced(r, "5.1.10", report_.failed.back().second);
        }
        pending_.clear();
        return finish();
      }
    } else if (mx.status == DnsStatus::nxdomain) {
      // RFC 5321 §5.1: the implicit MX; its "MX answer" is the denial.
      implicit = true;
      hosts.push_back({domain, mx.authenticated ? DnsStatus::secure : DnsStatus::insecure});
    } else {
      PeerFacts f;
      f.mx_dnssec = mx.status;
      Outcome out = decide(Direction::outbound, rule_, f);
      last_problem_ = lookup_problem("MX lookup", domain, mx.detail);
      log_attempt("-", "-", out, "defer", kNoTls, "none", kDsnDnsFailure, last_problem_);
      count_session("", out.reason, nullptr);
      return finish();
    }

    std::vector<std::pair<MxTarget, std::string>> set_aside;  // host, address
    bool any_host_exists = false;
    for (const MxTarget& h : hosts) {
      if (pending_.empty()) break;
      if (try_host(h, set_aside, any_host_exists)) continue;
    }
    // SPEC §4 opportunistic: a host whose handshake broke gets plaintext
    // only when no other host delivered.
    for (auto& [h, address] : set_aside) {
      if (pending_.empty()) break;
      last_resort(h, address);
    }
    if (implicit && !any_host_exists && mx.authenticated && !pending_.empty() && report_.delivered.empty()) {
      // A domain that provably does not exist: no point in retrying.
      for (const std::string& r : pending_) {
        report_.failed.push_back({r, "550 5.1.2 " + domain + ": host or domain name not found"});
        log_bounced(r, "5.1.2", report_.failed.back().second);
      }
      pending_.clear();
    }
    return finish();
  }

  const StsDiscovery& sts() {
    if (!sts_) {
      StsFetchConfig cfg = ctx_.sts_fetch;
      sts_ = dns([&] {
        return discover_mta_sts(entry_.destination, *ctx_.resolver, cfg, ctx_.sts_cache.get(),
                                static_cast<int64_t>(std::time(nullptr)));
      });
      if (sts_->txt) ctx_.metrics.sts_fetch(sts_->fetch);  // without the TXT record nothing is fetched
    }
    return *sts_;
  }

  // Returns true when the host delivered (or settled) every recipient.
  bool try_host(const MxTarget& h, std::vector<std::pair<MxTarget, std::string>>& set_aside, bool& exists) {
    host_tlsa_.clear();  // before anything is counted for this host
    PeerFacts facts;
    facts.mx_dnssec = h.mx_dnssec;
    dns::Lookup<std::string> addrs = dns([&] { return ctx_.resolver->addresses(h.host); });
    ctx_.metrics.dns_lookup(DnsQuery::address, addrs.status);
    facts.addr_dnssec = addrs.status;
    if (addrs.status != DnsStatus::nxdomain) exists = true;
    if (!addrs.found()) {
      Outcome out = decide(Direction::outbound, rule_, facts);
      last_problem_ = lookup_problem("address lookup", h.host, addrs.detail);
      log_attempt(h.host, "-", out, "next-host", kNoTls, "none", kDsnDnsFailure, last_problem_);
      count_session(h.host, out.reason, nullptr);
      return false;
    }
    const Level level = rule_.level;
    std::vector<TlsaRecord>& tlsa = host_tlsa_;  // cleared when the host's turn began
    if (level == Level::dane || level == Level::dane_only || level == Level::mta_sts) {
      if (addrs.status == DnsStatus::secure) {
        // RFC 7672 §3: the TLSA base name is the MX host, port 25 (a test
        // port elsewhere does not change the published name).
        dns::Lookup<TlsaRecord> t = dns([&] { return ctx_.resolver->tlsa("_25._tcp." + h.host); });
        ctx_.metrics.dns_lookup(DnsQuery::tlsa, t.status);
        facts.tlsa_dnssec = t.status;
        if (t.status == DnsStatus::secure) {
          tlsa = t.records;
          facts.tlsa = kinds_before_handshake(tlsa);
        }
      } else {
        // RFC 7672 §2.2.2: an insecure address makes TLSA count as absent
        // (Postfix does not even look).
        facts.tlsa_dnssec = DnsStatus::insecure;
      }
    }
    if (level == Level::mta_sts) facts.sts = sts_facts_for_mx(sts(), h.host);

    // Step 2: the best case these DNS facts allow.
    PeerFacts best = facts;
    best.starttls = true;
    best.peer_tls = kAllTlsVersions;
    best.cert = CertStatus::valid;
    best.tlsa = best_case(facts.tlsa);
    Outcome pre = decide(Direction::outbound, rule_, best);
    if (pre.kind == OutcomeKind::refuse) {
      Outcome out = decide(Direction::outbound, rule_, facts);
      const Outcome& refused = out.kind == OutcomeKind::refuse ? out : pre;
      log_attempt(h.host, "-", refused, "next-host", kNoTls, "none", kDsnTlsPolicy, "refused before connecting");
      count_session(h.host, refused.reason, nullptr);
      last_problem_ = "TLS policy refused " + h.host + " (" + std::string(to_string(pre.reason)) + ")";
      return false;
    }
    const bool use_dane = pre.channel == Channel::authenticated && (best.tlsa & kUsableTlsaKinds) &&
                          facts.tlsa_dnssec == DnsStatus::secure;
    const bool authenticate = pre.channel == Channel::authenticated;
    const TlsVersion floor = floor_of(rule_.min_tls);

    for (const std::string& address : addrs.records) {
      if (pending_.empty()) return true;
      TlsClientParams params = client_params(h.host, authenticate ? TlsMode::authenticate : TlsMode::encrypt,
                                             use_dane ? tlsa : std::vector<TlsaRecord>{}, authenticate && !use_dane);
      PeerTlsSummary tls;
      Observation o = open(h.host, address, ctx_.config.smtp_port,
                           authenticate ? TlsMode::authenticate : TlsMode::encrypt, params, tls);
      if (!o.connected) {  // no SMTP session (connect, greeting or EHLO failed)
        log_transport(h.host, address, "connection-failed", kDsnNoConnection, o.problem);
        last_problem_ = h.host + "[" + address + "]: " + o.problem;
        continue;  // next address of the same host
      }
      PeerFacts seen = facts;
      apply_observation(seen, o, params, use_dane, authenticate && !use_dane);
      Outcome out = decide(Direction::outbound, rule_, seen);

      // Step 3b: the outcome wants a session at a version this connection
      // did not offer (an authenticated attempt fell back).
      if ((out.channel == Channel::encrypted) && (!o.tls.ok || o.tls.version != out.tls) && authenticate) {
        o.stream.reset();
        TlsClientParams p2 = client_params(h.host, TlsMode::encrypt, {}, false);
        Observation o2 = open(h.host, address, ctx_.config.smtp_port, TlsMode::encrypt, p2, tls);
        if (!o2.connected) {
          log_transport(h.host, address, "connection-failed", kDsnNoConnection, o2.problem);
          last_problem_ = h.host + "[" + address + "]: " + o2.problem;
          continue;
        }
        PeerFacts seen2 = seen;  // keep what the first handshake proved
        seen2.starttls = o2.starttls;
        if (o2.tls.ok) seen2.peer_tls |= version_bit(o2.tls.version);
        else if (o2.tls_attempted && o2.tls.version_refused) seen2.peer_tls |= versions_below(floor);
        out = decide(Direction::outbound, rule_, seen2);
        o = std::move(o2);
      }
      return act(h, address, o, out, use_dane, tls, set_aside);
    }
    return false;
  }

  TlsClientParams client_params(const std::string& host, TlsMode mode, std::vector<TlsaRecord> tlsa, bool webpki) {
    return relay::client_params(host, mode, rule_.min_tls, std::move(tlsa), webpki ? ctx_.config.ca_file : std::string(),
                                std::chrono::duration_cast<std::chrono::milliseconds>(limits_.command_timeout));
  }

  bool act(const MxTarget& h, const std::string& address, Observation& o, const Outcome& out, bool dane,
           const PeerTlsSummary& tls, std::vector<std::pair<MxTarget, std::string>>& set_aside) {
    const std::string auth = auth_of(out, o, dane);
    std::string detail = o.tls_attempted && !o.tls.ok ? "handshake: " + o.tls.error : "";
    if (o.tls.ok && !o.tls.dane_detail.empty() && dane) detail = "dane: " + o.tls.dane_detail;
    count_session(h.host, out.reason, &o);
    // The MX walk's step for this host is the engine's (walk_step).
    switch (walk_step(out)) {
      case WalkStep::next_host:
        log_attempt(h.host, address, out, "next-host", tls, "none", kDsnTlsPolicy, detail);
        last_problem_ =
            "TLS policy refused " + h.host + "[" + address + "] (" + std::string(to_string(out.reason)) + ")";
        return false;
      case WalkStep::set_aside:
        log_attempt(h.host, address, out, "set-aside", tls, "none", kDsnTlsPolicy, detail);
        set_aside.push_back({h, address});
        last_problem_ = h.host + "[" + address + "]: TLS handshake failed";
        return false;
      case WalkStep::take:
        break;
    }
    // The outcome must describe this very connection; anything else is
    // refused rather than sent on a session the engine did not approve.
    const bool is_tls = o.stream && o.stream->is_tls();
    const bool matches = out.channel == Channel::plaintext ? !is_tls && !o.starttls
                                                           : is_tls && o.tls.ok && o.tls.version == out.tls;
    if (!o.stream || !matches) {
      Outcome r = out;
      r.kind = OutcomeKind::refuse;
      log_attempt(h.host, address, r, "next-host", tls, "none", kDsnTlsPolicy, "session does not match the decision");
      last_problem_ = h.host + "[" + address + "]: session does not match the decision";
      return false;
    }
    Transaction sent = transfer(o, h.host, caching());
    log_sent(h.host, address, out, "sent", tls, auth, sent, detail);
    if (kept_open_) keep(o, h.host, address, out, tls, auth, 0);
    return pending_.empty();
  }

  // ------------------------------------------------------- TLSRPT

  // One count per MX host and run (tlsrpt_session.h), for the session the
  // host's outcome was decided on; a connection that never reached SMTP
  // (refused, no greeting) is no TLS session and is not counted, nor is a
  // reused one (counted when it was made), nor a report mail (RFC 8460 §3).
  void count_session(std::string_view mx, Reason reason, const Observation* o) {
    if (entry_.tlsrpt_report || entry_.direction != Direction::outbound) return;
    const std::string host = lower(mx);
    if (std::find(counted_.begin(), counted_.end(), host) != counted_.end()) return;
    counted_.push_back(host);
    TlsrptSession s;
    s.relay_hostname = ctx_.hostname;
    s.queue_id = entry_.id;
    s.attempt = entry_.attempts + 1;
    s.mx_host = host;
    if (o) {
      s.receiving_ip = o->address;
      if (o->stream) s.sending_ip = o->stream->local_address();
    }
    s.time = static_cast<int64_t>(std::time(nullptr));
    const StsDiscovery* sts = rule_.level == Level::mta_sts && sts_ ? &*sts_ : nullptr;
    tlsrpt::Policy policy = tlsrpt_policy(entry_.destination, rule_.level, host_tlsa_, sts);
    count_tlsrpt_session(ctx_, tlsrpt_session_record(s, std::move(policy), reason), entry_.id);
  }

  // ------------------------------------------------ connection reuse

  bool caching() const { return ctx_.config.limits.connection_cache_time.count() > 0; }

  std::string cache_key() const {
    return std::string(to_string(entry_.direction)) + "|" + entry_.managed_domain + "|" + entry_.destination + "|" +
           std::string(to_string(rule_.level)) + "|" + std::string(to_string(rule_.min_tls)) + "|" +
           std::to_string(table_generation_);
  }

  void keep(Observation& o, const std::string& host, const std::string& address, const Outcome& out,
            const PeerTlsSummary& tls, const std::string& auth, size_t uses) {
    if (uses + 1 >= ctx_.config.limits.connection_reuse_limit) {
      command(*o.stream, "QUIT", std::chrono::seconds(5));
      return;
    }
    CachedConnection c;
    c.stream = std::make_unique<Stream>(std::move(*o.stream));
    o.stream.reset();
    c.host = host;
    c.address = address;
    c.tls = tls;
    c.auth = auth;
    c.outcome = out;
    c.eightbitmime = o.eightbitmime;
    c.size_ext = o.size_ext;
    c.uses = uses + 1;
    ctx_.connections.put(cache_key(), std::move(c));
  }

  // A session cached by an earlier delivery to this destination under this
  // rule: RSET proves it alive, then the message goes out on it. Returns
  // true when it delivered every recipient.
  bool try_cached() {
    if (!caching()) return false;
    for (int tries = 0; tries < 2; ++tries) {
      std::optional<CachedConnection> c = ctx_.connections.take(cache_key());
      if (!c) return false;
      Reply r = command(*c->stream, "RSET", std::chrono::seconds(10));
      if (r.code != 250) continue;  // gone stale: try another, then the normal walk
      Observation o;
      o.connected = true;
      o.address = c->address;
      o.eightbitmime = c->eightbitmime;
      o.size_ext = c->size_ext;
      o.stream.emplace(std::move(*c->stream));
      Transaction sent = transfer(o, c->host, true);
      log_sent(c->host, c->address, c->outcome, "sent", c->tls, c->auth, sent, "reused connection");
      if (kept_open_) keep(o, c->host, c->address, c->outcome, c->tls, c->auth, c->uses);
      return pending_.empty();
    }
    return false;
  }

  void last_resort(const MxTarget& h, const std::string& address) {
    TlsClientParams none;
    PeerTlsSummary tls;
    Observation o = open(h.host, address, ctx_.config.smtp_port, TlsMode::none, none, tls);
    if (!o.connected || !o.stream) {
      log_transport(h.host, address, "connection-failed", kDsnNoConnection, o.problem);
      return;
    }
    Outcome out{OutcomeKind::downgrade, Channel::plaintext, Level::opportunistic, TlsVersion::none,
                Reason::tls_handshake_failure, true};
    if (rule_.level == Level::opportunistic) out.kind = OutcomeKind::deliver;
    Transaction sent = transfer(o, h.host);
    log_sent(h.host, address, out, "sent-last-resort", kNoTls, "none", sent);
  }

  // ------------------------------------------------------- inbound

  // Inbound mail goes to the managed domain's next hop. The rule of SPEC §5
  // was enforced when the peer sent it; this leg uses STARTTLS when the hop
  // offers it (no certificate check: it is the operator's own host).
  DeliveryReport run_next_hop() {
    pending_ = entry_.recipients;
    // The rule the sending peer was accepted under (logged; enforced then).
    decision_ = stricter_inbound_rule(*table_, entry_.managed_domain, entry_.client_address, entry_.sender_peer).decision;
    rule_ = {decision_.level, decision_.min_tls};
    std::string host = entry_.destination;
    uint16_t port = 25;
    size_t colon = host.rfind(':');
    if (colon != std::string::npos) {
      port = static_cast<uint16_t>(std::stoi(host.substr(colon + 1)));
      host = host.substr(0, colon);
    }
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    port_ = port;
    TlsClientParams p;
    p.sni = host;
    p.min_version = TlsVersion::tls1_2;
    p.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(limits_.command_timeout);
    PeerTlsSummary tls;
    Observation o = open(host, host, port, TlsMode::encrypt, p, tls);
    if (o.tls_attempted && !o.tls.ok) {
      log_transport(host, host, "tls-handshake-failure", kDsnTlsPolicy,
                    "next hop: " + o.tls.error + "; retrying without STARTTLS");
      o = open(host, host, port, TlsMode::none, p, tls);
    }
    if (!o.connected || !o.stream) {
      log_transport(host, host, "connection-failed", kDsnNoConnection, o.problem);
      last_problem_ = "next hop " + entry_.destination + ": " + o.problem;
      return finish();
    }
    Outcome out;
    out.kind = OutcomeKind::deliver;
    out.applied = rule_.level;
    out.channel = o.stream->is_tls() ? Channel::encrypted : Channel::plaintext;
    out.tls = o.stream->is_tls() ? o.tls.version : TlsVersion::none;
    out.reason = Reason::ok;
    Transaction sent = transfer(o, host);
    log_sent(host, host, out, "sent", tls, "none", sent, "next hop");
    return finish();
  }

  DeliveryReport finish() {
    write_held();
    for (const std::string& r : pending_) report_.deferred.push_back({r, last_problem_});
    report_.summary = last_problem_;
    return std::move(report_);
  }

  RelayContext& ctx_;
  const QueueEntry& entry_;
  const std::string& data_;
  const RelayLimits& limits_;
  std::shared_ptr<const DecisionTable> table_;
  uint64_t table_generation_ = 0;
  SmtpClient client_;
  bool kept_open_ = false;
  Decision decision_;
  RuleInput rule_;
  std::vector<std::string> pending_;
  std::optional<StsDiscovery> sts_;
  std::vector<TlsaRecord> host_tlsa_;  // the MX host being tried: its DNSSEC-secure TLSA records
  std::vector<std::string> counted_;   // MX hosts whose session this run counted for TLSRPT
  std::string last_problem_;
  DeliveryReport report_;
  // For the log: when this run began, the port of its connections, and
  // the time it spent in each phase so far (delays=).
  std::chrono::system_clock::time_point run_began_;
  uint16_t port_ = 25;
  Clock::duration dns_time_{}, connect_time_{}, tls_time_{}, transfer_time_{};
  std::vector<std::pair<std::string, Fields>> held_;  // recipient, its last deferred line (write_line)
};

}  // namespace

DeliveryReport deliver_entry(RelayContext& ctx, const QueueEntry& entry, const std::string& data) {
  const auto began = std::chrono::steady_clock::now();
  DeliveryReport r;
  try {
    r = EntryDelivery(ctx, entry, data).run();
  } catch (const std::exception& e) {
    ctx.log->write(LogEvent::error, {{"where", "delivery"}, {"queue_id", entry.id}, {"error", e.what()}});
    for (const std::string& a : entry.recipients) r.deferred.push_back({a, std::string("internal error: ") + e.what()});
    r.summary = e.what();
  }
  ctx.metrics.delivery_run(entry.direction, std::chrono::steady_clock::now() - began, !r.delivered.empty(),
                           entry.arrival);
  return r;
}

}  // namespace tlsp::relay
