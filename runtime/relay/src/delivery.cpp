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
// One log line per attempt (relay.h).
#include <algorithm>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "delivery.h"
#include "inbound_rule.h"
#include "relay_context.h"
#include "tlsp/dane.h"
#include "tlsp/engine.h"
#include "tlsp/mta_sts.h"

namespace tlsp::relay {
namespace {

// A hostile or broken peer cannot make us hold more than this of one reply.
constexpr size_t kMaxReplyLines = 100;
constexpr size_t kMaxReplyLine = 2048;

struct Reply {
  int code = 0;          // 0: no valid reply (timeout, eof, garbage)
  std::string text;      // every line, joined by " / "
  std::vector<std::string> lines;
  std::string problem;   // why code is 0
};

Reply read_reply(Stream& s, std::chrono::milliseconds timeout) {
  Reply r;
  s.set_timeout(timeout);
  std::string line;
  for (size_t n = 0; n < kMaxReplyLines; ++n) {
    IoStatus st = s.read_line(line, kMaxReplyLine);
    if (st != IoStatus::ok) {
      r.code = 0;
      r.problem = std::string("reply: ") + std::string(to_string(st));
      return r;
    }
    if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0])) ||
        !std::isdigit(static_cast<unsigned char>(line[1])) || !std::isdigit(static_cast<unsigned char>(line[2])) ||
        (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      r.code = 0;
      r.problem = "malformed reply";
      return r;
    }
    int code = std::stoi(line.substr(0, 3));
    if (n > 0 && code != r.code) {
      r.code = 0;
      r.problem = "inconsistent multiline reply";
      return r;
    }
    r.code = code;
    r.lines.push_back(line.size() > 4 ? line.substr(4) : std::string());
    r.text += (r.text.empty() ? "" : " / ") + line;
    if (line.size() == 3 || line[3] == ' ') return r;
  }
  r.code = 0;
  r.problem = "reply too long";
  return r;
}

Reply command(Stream& s, const std::string& cmd, std::chrono::milliseconds timeout) {
  if (s.write_all(cmd + "\r\n") != IoStatus::ok) {
    Reply r;
    r.problem = "write failed";
    return r;
  }
  return read_reply(s, timeout);
}

std::string join(const std::vector<std::string>& v) {
  std::string r;
  for (const std::string& s : v) r += (r.empty() ? "" : ",") + s;
  return r;
}

// The one text of a failed lookup, for both the attempt line's detail and
// the queue line's reason (via last_problem_), so the two cannot disagree.
// It quotes the resolver's detail: the status name alone ("nxdomain")
// covers NODATA too, and the detail says which answer it was.
std::string lookup_problem(std::string_view what, std::string_view name, const std::string& detail) {
  return std::string(what) + " for " + std::string(name) + ": " + detail;
}

// The TLSA records as the engine sees them before any handshake: usable
// records count as mismatches until a handshake proves a match.
TlsaKindSet kinds_before_handshake(const std::vector<TlsaRecord>& records) {
  TlsaKindSet k = 0;
  for (const TlsaRecord& r : records) {
    k |= tlsa_bit(classify_tlsa_record(r).kind_before_match);
  }
  return k;
}

TlsaKindSet best_case(TlsaKindSet k) {
  if (k & kUsableTlsaKinds) k |= tlsa_bit(TlsaKind::dane_ee_match);
  return k;
}

TlsVersionSet versions_below(TlsVersion v) {
  TlsVersionSet s = 0;
  for (int i = static_cast<int>(TlsVersion::tls1_0); i < static_cast<int>(v); ++i)
    s |= version_bit(static_cast<TlsVersion>(i));
  return s;
}

// How one connection handles STARTTLS.
enum class TlsMode {
  authenticate,  // offer >= max(floor, 1.2); DANE records or WebPKI checked
  encrypt,       // offer >= the rule's floor; certificate not checked
  none,          // do not use STARTTLS (the last-resort plaintext retry)
};

struct Observation {
  bool connected = false;
  std::string address;
  std::string problem;           // connection-level failure (no facts)
  bool starttls = false;         // offered
  bool tls_attempted = false;
  TlsClientResult tls;
  std::optional<Stream> stream;  // ready for MAIL when the outcome sends
  bool eightbitmime = false;
  bool size_ext = false;
};

// One SMTP transaction, for its log line.
struct Transfer {
  std::vector<std::string> offered;  // the recipients it was for
  std::string smtp;                  // the last reply (or why there was none)
};

class EntryDelivery {
 public:
  EntryDelivery(RelayContext& ctx, const QueueEntry& entry, const std::string& data)
      : ctx_(ctx),
        entry_(entry),
        data_(data),
        limits_(ctx.config.limits),
        table_(ctx.table.get()),
        table_generation_(ctx.table.generation()) {}

  DeliveryReport run() {
    if (entry_.direction == Direction::inbound) return run_next_hop();
    return run_outbound();
  }

 private:
  // ------------------------------------------------------------ logging

  using Fields = std::vector<std::pair<std::string, std::string>>;

  // `to`: the recipients this attempt is for. A sending attempt passes the
  // list it offered (transfer() settles pending_ before the line is
  // written, so pending_ would name only those left over).
  Fields base_fields(std::string_view mx, std::string_view address, const std::vector<std::string>& to) const {
    return {{"queue_id", entry_.id},
            {"from", entry_.mail_from},
            {"to", join(to)},
            {"direction", std::string(to_string(entry_.direction))},
            {"peer", entry_.direction == Direction::outbound ? entry_.destination : entry_.sender_peer},
            {"mx", std::string(mx)},
            {"addr", std::string(address)},
            {"rule", std::string(to_string(decision_.level))},
            {"min_tls", std::string(to_string(decision_.min_tls))},
            {"source", table_->describe(decision_.level_from)}};
  }

  // An attempt that sent nothing: it was for every recipient still pending.
  void log_attempt(std::string_view mx, std::string_view address, const Outcome& out, std::string_view action,
                   const std::string& cipher, std::string_view auth, const std::string& detail = {}) {
    write_attempt(pending_, mx, address, out, action, cipher, auth, "", detail);
  }

  // An attempt that ran a transaction: it was for the recipients offered.
  void log_sent(std::string_view mx, std::string_view address, const Outcome& out, std::string_view action,
                const std::string& cipher, std::string_view auth, const Transfer& t, const std::string& detail = {}) {
    write_attempt(t.offered, mx, address, out, action, cipher, auth, t.smtp, detail);
  }

  void write_attempt(const std::vector<std::string>& to, std::string_view mx, std::string_view address,
                     const Outcome& out, std::string_view action, const std::string& cipher, std::string_view auth,
                     const std::string& smtp, const std::string& detail) {
    Fields f = base_fields(mx, address, to);
    f.push_back({"outcome", std::string(to_string(out.kind))});
    f.push_back({"applied", std::string(to_string(out.applied))});
    f.push_back({"channel", std::string(to_string(out.channel))});
    f.push_back({"tls", std::string(to_string(out.tls))});
    f.push_back({"cipher", cipher.empty() ? "-" : cipher});
    f.push_back({"auth", std::string(auth)});
    f.push_back({"reason", std::string(to_string(out.reason))});
    f.push_back({"action", std::string(action)});
    if (!smtp.empty()) f.push_back({"smtp", smtp});
    if (!detail.empty()) f.push_back({"detail", detail});
    ctx_.log->write(LogEvent::attempt, f);
  }

  // A failure below the engine (no connection, a broken SMTP dialogue).
  void log_transport(std::string_view mx, std::string_view address, std::string_view reason,
                     const std::string& detail) {
    Fields f = base_fields(mx, address, pending_);
    f.push_back({"outcome", "refuse"});
    f.push_back({"channel", "none"});
    f.push_back({"reason", std::string(reason)});
    f.push_back({"action", "next-host"});
    f.push_back({"detail", detail});
    ctx_.log->write(LogEvent::attempt, f);
  }

  // ---------------------------------------------------------- SMTP

  // Connects to one address and runs greeting + EHLO (+ STARTTLS per mode).
  Observation observe(const std::string& address, uint16_t port, TlsMode mode,
                      const TlsClientParams& params) {
    Observation o;
    o.address = address;
    std::string error;
    int fd = connect_tcp(address, port, limits_.connect_timeout, error);
    if (fd < 0) {
      o.problem = "connect: " + error;
      return o;
    }
    Stream s(fd);
    const auto cmd_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(limits_.command_timeout);
    Reply greet = read_reply(s, cmd_timeout);
    if (greet.code != 220) {
      o.problem = "greeting: " + (greet.code ? greet.text : greet.problem);
      command(s, "QUIT", cmd_timeout);
      return o;
    }
    o.connected = true;
    Reply ehlo = ehlo_or_helo(s, o);
    if (ehlo.code != 250) {
      o.problem = "ehlo: " + (ehlo.code ? ehlo.text : ehlo.problem);
      o.connected = false;
      return o;
    }
    if (mode != TlsMode::none && o.starttls) {
      o.tls_attempted = true;
      Reply st = command(s, "STARTTLS", cmd_timeout);
      if (st.code != 220) {
        o.tls.ok = false;
        o.tls.error = "STARTTLS refused: " + (st.code ? st.text : st.problem);
        return o;  // counts as a failed handshake
      }
      o.tls = s.start_tls_client(params);
      if (!o.tls.ok) return o;
      // RFC 3207 §4.2: EHLO again; the TLS session's extensions count
      // (STARTTLS itself is no longer listed, but it was offered).
      Reply again = ehlo_or_helo(s, o);
      o.starttls = true;
      if (again.code != 250) {
        o.problem = "ehlo after STARTTLS: " + (again.code ? again.text : again.problem);
        o.connected = false;
        return o;
      }
    }
    o.stream.emplace(std::move(s));
    return o;
  }

  Reply ehlo_or_helo(Stream& s, Observation& o) {
    const auto t = std::chrono::duration_cast<std::chrono::milliseconds>(limits_.command_timeout);
    Reply r = command(s, "EHLO " + ctx_.hostname, t);
    if (r.code == 250) {
      o.starttls = o.eightbitmime = o.size_ext = false;
      for (size_t i = 1; i < r.lines.size(); ++i) {
        std::string kw = lower(r.lines[i].substr(0, r.lines[i].find(' ')));
        if (kw == "starttls") o.starttls = true;
        if (kw == "8bitmime") o.eightbitmime = true;
        if (kw == "size") o.size_ext = true;
      }
      return r;
    }
    if (r.code >= 500 && r.code < 600) {
      o.starttls = false;
      return command(s, "HELO " + ctx_.hostname, t);
    }
    return r;
  }

  // MAIL, RCPT for each pending recipient, DATA. Updates the report.
  // Returns what the log line needs.
  Transfer transfer(Observation& o, const std::string& mx, bool keep_open = false) {
    Transfer out;
    out.offered = pending_;
    Stream& s = *o.stream;
    kept_open_ = false;
    const auto t = std::chrono::duration_cast<std::chrono::milliseconds>(limits_.command_timeout);
    std::string mail = "MAIL FROM:<" + entry_.mail_from + ">";
    if (o.size_ext) mail += " SIZE=" + std::to_string(data_.size());
    if (entry_.body_8bit && o.eightbitmime) mail += " BODY=8BITMIME";
    Reply r = command(s, mail, t);
    if (r.code / 100 != 2) {
      settle_all(r, mx);
      command(s, "QUIT", t);
      out.smtp = r.code ? r.text : r.problem;
      return out;
    }
    std::vector<std::string> accepted;
    std::vector<std::string> still;
    for (size_t i = 0; i < pending_.size(); ++i) {
      const std::string& rcpt = pending_[i];
      Reply rr = command(s, "RCPT TO:<" + rcpt + ">", t);
      if (rr.code / 100 == 2) {
        accepted.push_back(rcpt);
      } else if (rr.code / 100 == 5) {
        report_.failed.push_back({rcpt, rr.text + " (from " + mx + ")"});
      } else {
        still.push_back(rcpt);
        last_problem_ = rcpt + ": " + (rr.code ? rr.text : rr.problem) + " (from " + mx + ")";
      }
      if (rr.code == 0) {
        // The session broke: the recipients not yet tried stay pending
        // too, or the entry would leave the queue without them.
        still.insert(still.end(), pending_.begin() + static_cast<std::ptrdiff_t>(i) + 1, pending_.end());
        break;
      }
    }
    if (accepted.empty()) {
      pending_ = still;
      command(s, "QUIT", t);
      out.smtp = "no recipient accepted";
      return out;
    }
    Reply d = command(s, "DATA", t);
    if (d.code != 354) {
      pending_ = still;
      pending_.insert(pending_.end(), accepted.begin(), accepted.end());
      settle_list(accepted, d, mx);
      command(s, "QUIT", t);
      out.smtp = d.code ? d.text : d.problem;
      return out;
    }
    std::string wire;
    wire.reserve(data_.size() + data_.size() / 64 + 8);
    size_t pos = 0;
    while (pos < data_.size()) {
      size_t eol = data_.find('\n', pos);
      size_t end = eol == std::string::npos ? data_.size() : eol + 1;
      if (data_[pos] == '.') wire.push_back('.');  // RFC 5321 §4.5.2
      wire.append(data_, pos, end - pos);
      pos = end;
    }
    if (!wire.empty() && wire.back() != '\n') wire += "\r\n";
    wire += ".\r\n";
    Reply fin;
    if (s.write_all(wire) != IoStatus::ok) {
      fin.problem = "write failed during DATA";
    } else {
      fin = read_reply(s, std::chrono::duration_cast<std::chrono::milliseconds>(limits_.data_timeout));
    }
    pending_ = still;
    if (fin.code / 100 == 2) {
      report_.delivered.insert(report_.delivered.end(), accepted.begin(), accepted.end());
      if (keep_open && still.empty())
        kept_open_ = true;  // the caller caches the session
      else
        command(s, "QUIT", t);
    } else {
      pending_.insert(pending_.end(), accepted.begin(), accepted.end());
      settle_list(accepted, fin, mx);
    }
    out.smtp = fin.code ? fin.text : fin.problem;
    return out;
  }

  // A reply that covers every pending recipient.
  void settle_all(const Reply& r, const std::string& mx) { settle_list(pending_, r, mx); }

  void settle_list(std::vector<std::string> list, const Reply& r, const std::string& mx) {
    std::string text = (r.code ? r.text : r.problem) + " (from " + mx + ")";
    if (r.code / 100 == 5) {
      for (const std::string& a : list) {
        report_.failed.push_back({a, text});
        std::erase(pending_, a);
      }
    } else {
      last_problem_ = text;
    }
  }

  // ------------------------------------------------------- outbound

  struct MxTarget {
    std::string host;
    DnsStatus mx_dnssec;
  };

  DeliveryReport run_outbound() {
    pending_ = entry_.recipients;
    decision_ = table_->lookup(Direction::outbound, entry_.managed_domain, entry_.destination);
    rule_ = {decision_.level, decision_.min_tls};
    const std::string& domain = entry_.destination;
    if (try_cached()) return finish();

    std::vector<MxTarget> hosts;
    dns::Lookup<dns::MxHost> mx = ctx_.resolver->mx(domain);
    bool implicit = false;
    if (mx.found()) {
      for (const dns::MxHost& h : mx.records)
        if (!h.host.empty()) hosts.push_back({h.host, mx.status});
      if (hosts.empty()) {  // RFC 7505 null MX: the domain accepts no mail
        for (const std::string& r : pending_)
          report_.failed.push_back({r, "556 5.1.10 " + domain + " does not accept mail (null MX)"});
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
      log_attempt("-", "-", out, "defer", "", "none", last_problem_);
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
      for (const std::string& r : pending_)
        report_.failed.push_back({r, "550 5.1.2 " + domain + ": host or domain name not found"});
      pending_.clear();
    }
    return finish();
  }

  std::string auth_of(const Outcome& out, const Observation& o, bool dane) const {
    if (out.channel != Channel::authenticated) return "none";
    if (dane) return (o.tls.tlsa_kinds & tlsa_bit(TlsaKind::dane_ee_match)) ? "dane-ee" : "dane-ta";
    return "mta-sts";
  }

  const StsDiscovery& sts() {
    if (!sts_) {
      StsFetchConfig cfg = ctx_.sts_fetch;
      sts_ = discover_mta_sts(entry_.destination, *ctx_.resolver, cfg, ctx_.sts_cache.get(),
                              static_cast<int64_t>(std::time(nullptr)));
    }
    return *sts_;
  }

  // Returns true when the host delivered (or settled) every recipient.
  bool try_host(const MxTarget& h, std::vector<std::pair<MxTarget, std::string>>& set_aside, bool& exists) {
    PeerFacts facts;
    facts.mx_dnssec = h.mx_dnssec;
    dns::Lookup<std::string> addrs = ctx_.resolver->addresses(h.host);
    facts.addr_dnssec = addrs.status;
    if (addrs.status != DnsStatus::nxdomain) exists = true;
    if (!addrs.found()) {
      Outcome out = decide(Direction::outbound, rule_, facts);
      last_problem_ = lookup_problem("address lookup", h.host, addrs.detail);
      log_attempt(h.host, "-", out, "next-host", "", "none", last_problem_);
      return false;
    }
    const Level level = rule_.level;
    std::vector<TlsaRecord> tlsa;
    if (level == Level::dane || level == Level::dane_only || level == Level::mta_sts) {
      if (addrs.status == DnsStatus::secure) {
        // RFC 7672 §3: the TLSA base name is the MX host, port 25 (a test
        // port elsewhere does not change the published name).
        dns::Lookup<TlsaRecord> t = ctx_.resolver->tlsa("_25._tcp." + h.host);
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
      log_attempt(h.host, "-", out.kind == OutcomeKind::refuse ? out : pre, "next-host", "", "none",
                  "refused before connecting");
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
      Observation o = observe(address, ctx_.config.smtp_port,
                              authenticate ? TlsMode::authenticate : TlsMode::encrypt, params);
      if (!o.connected) {  // no SMTP session (connect, greeting or EHLO failed)
        log_transport(h.host, address, "connection-failed", o.problem);
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
        Observation o2 = observe(address, ctx_.config.smtp_port, TlsMode::encrypt, p2);
        if (!o2.connected) {
          log_transport(h.host, address, "connection-failed", o2.problem);
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
      return act(h, address, o, out, use_dane, set_aside);
    }
    return false;
  }

  TlsClientParams client_params(const std::string& host, TlsMode mode, std::vector<TlsaRecord> tlsa, bool webpki) {
    TlsClientParams p;
    p.sni = host;
    const TlsVersion floor = floor_of(rule_.min_tls);
    p.min_version = mode == TlsMode::authenticate ? std::max(floor, TlsVersion::tls1_2) : floor;
    // OpenSSL 3 needs security level 0 for TLS 1.0/1.1; only ever for a
    // session that does not authenticate (SPEC §2, §4).
    p.legacy_security_level = mode == TlsMode::encrypt && p.min_version < TlsVersion::tls1_2;
    p.tlsa = std::move(tlsa);
    if (webpki) p.ca_file = ctx_.config.ca_file;
    p.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(limits_.command_timeout);
    return p;
  }

  void apply_observation(PeerFacts& f, const Observation& o, const TlsClientParams& params, bool dane, bool webpki) {
    f.starttls = o.starttls;
    if (!o.tls_attempted) return;
    if (o.tls.ok) {
      f.peer_tls = version_bit(o.tls.version);
      if (dane) {
        f.tlsa = o.tls.tlsa_kinds;
        f.cert = o.tls.dane_cert;
      } else if (webpki) {
        f.cert = o.tls.webpki;
      }
    } else if (o.tls.version_refused) {
      f.peer_tls = versions_below(params.min_version);
    } else {
      f.peer_tls = 0;
    }
  }

  bool act(const MxTarget& h, const std::string& address, Observation& o, const Outcome& out, bool dane,
           std::vector<std::pair<MxTarget, std::string>>& set_aside) {
    const std::string auth = auth_of(out, o, dane);
    const std::string cipher = o.tls.ok ? o.tls.cipher : "";
    std::string detail = o.tls_attempted && !o.tls.ok ? "handshake: " + o.tls.error : "";
    if (o.tls.ok && !o.tls.dane_detail.empty() && dane) detail = "dane: " + o.tls.dane_detail;
    if (out.kind == OutcomeKind::refuse) {
      log_attempt(h.host, address, out, "next-host", cipher, "none", detail);
      last_problem_ = "TLS policy refused " + h.host + "[" + address + "] (" + std::string(to_string(out.reason)) + ")";
      return false;
    }
    if (out.last_resort) {
      log_attempt(h.host, address, out, "set-aside", cipher, "none", detail);
      set_aside.push_back({h, address});
      last_problem_ = h.host + "[" + address + "]: TLS handshake failed";
      return false;
    }
    // The outcome must describe this very connection; anything else is
    // refused rather than sent on a session the engine did not approve.
    const bool is_tls = o.stream && o.stream->is_tls();
    const bool matches = out.channel == Channel::plaintext ? !is_tls && !o.starttls
                                                           : is_tls && o.tls.ok && o.tls.version == out.tls;
    if (!o.stream || !matches) {
      Outcome r = out;
      r.kind = OutcomeKind::refuse;
      log_attempt(h.host, address, r, "next-host", cipher, "none", "session does not match the decision");
      last_problem_ = h.host + "[" + address + "]: session does not match the decision";
      return false;
    }
    Transfer sent = transfer(o, h.host, caching());
    log_sent(h.host, address, out, "sent", cipher, auth, sent, detail);
    if (kept_open_) keep(o, h.host, address, out, cipher, auth, 0);
    return pending_.empty();
  }

  // ------------------------------------------------ connection reuse

  bool caching() const { return ctx_.config.limits.connection_cache_time.count() > 0; }

  std::string cache_key() const {
    return std::string(to_string(entry_.direction)) + "|" + entry_.managed_domain + "|" + entry_.destination + "|" +
           std::string(to_string(rule_.level)) + "|" + std::string(to_string(rule_.min_tls)) + "|" +
           std::to_string(table_generation_);
  }

  void keep(Observation& o, const std::string& host, const std::string& address, const Outcome& out,
            const std::string& cipher, const std::string& auth, size_t uses) {
    if (uses + 1 >= ctx_.config.limits.connection_reuse_limit) {
      command(*o.stream, "QUIT", std::chrono::seconds(5));
      return;
    }
    CachedConnection c;
    c.stream = std::make_unique<Stream>(std::move(*o.stream));
    o.stream.reset();
    c.host = host;
    c.address = address;
    c.cipher = cipher;
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
      Transfer sent = transfer(o, c->host, true);
      log_sent(c->host, c->address, c->outcome, "sent", c->cipher, c->auth, sent, "reused connection");
      if (kept_open_) keep(o, c->host, c->address, c->outcome, c->cipher, c->auth, c->uses);
      return pending_.empty();
    }
    return false;
  }

  void last_resort(const MxTarget& h, const std::string& address) {
    TlsClientParams none;
    Observation o = observe(address, ctx_.config.smtp_port, TlsMode::none, none);
    if (!o.connected || !o.stream) {
      log_transport(h.host, address, "connection-failed", o.problem);
      return;
    }
    Outcome out{OutcomeKind::downgrade, Channel::plaintext, Level::opportunistic, TlsVersion::none,
                Reason::tls_handshake_failure, true};
    if (rule_.level == Level::opportunistic) out.kind = OutcomeKind::deliver;
    Transfer sent = transfer(o, h.host);
    log_sent(h.host, address, out, "sent-last-resort", "", "none", sent);
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
    TlsClientParams p;
    p.sni = host;
    p.min_version = TlsVersion::tls1_2;
    p.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(limits_.command_timeout);
    Observation o = observe(host, port, TlsMode::encrypt, p);
    if (o.tls_attempted && !o.tls.ok) {
      log_transport(host, host, "tls-handshake-failure", "next hop: " + o.tls.error + "; retrying without STARTTLS");
      o = observe(host, port, TlsMode::none, p);
    }
    if (!o.connected || !o.stream) {
      log_transport(host, host, "connection-failed", o.problem);
      last_problem_ = "next hop " + entry_.destination + ": " + o.problem;
      return finish();
    }
    Outcome out;
    out.kind = OutcomeKind::deliver;
    out.applied = rule_.level;
    out.channel = o.stream->is_tls() ? Channel::encrypted : Channel::plaintext;
    out.tls = o.stream->is_tls() ? o.tls.version : TlsVersion::none;
    out.reason = Reason::ok;
    Transfer sent = transfer(o, host);
    log_sent(host, host, out, "sent", o.stream && o.stream->is_tls() ? o.tls.cipher : "", "none", sent, "next hop");
    return finish();
  }

  DeliveryReport finish() {
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
  bool kept_open_ = false;
  Decision decision_;
  RuleInput rule_;
  std::vector<std::string> pending_;
  std::optional<StsDiscovery> sts_;
  std::string last_problem_;
  DeliveryReport report_;
};

}  // namespace

std::optional<CachedConnection> ConnectionCache::take(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = idle_.find(key);
  if (it == idle_.end()) return std::nullopt;
  CachedConnection c = std::move(it->second);
  idle_.erase(it);
  return c;
}

void ConnectionCache::put(const std::string& key, CachedConnection c) {
  c.idle_since = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  idle_.emplace(key, std::move(c));
}

void ConnectionCache::expire(std::chrono::seconds idle) {
  std::vector<CachedConnection> closing;
  {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = idle_.begin(); it != idle_.end();) {
      if (idle.count() == 0 || now - it->second.idle_since > idle) {
        closing.push_back(std::move(it->second));
        it = idle_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (CachedConnection& c : closing) command(*c.stream, "QUIT", std::chrono::seconds(2));
}

DeliveryReport deliver_entry(RelayContext& ctx, const QueueEntry& entry, const std::string& data) {
  try {
    return EntryDelivery(ctx, entry, data).run();
  } catch (const std::exception& e) {
    ctx.log->write(LogEvent::error, {{"where", "delivery"}, {"queue_id", entry.id}, {"error", e.what()}});
    DeliveryReport r;
    for (const std::string& a : entry.recipients) r.deferred.push_back({a, std::string("internal error: ") + e.what()});
    r.summary = e.what();
    return r;
  }
}

}  // namespace tlsp::relay
