// smtp_server.cpp — the relay's SMTP server side: one session from greeting
// to QUIT (RFC 5321, with STARTTLS RFC 3207, PIPELINING RFC 2920, SIZE
// RFC 1870, 8BITMIME RFC 6152, ENHANCEDSTATUSCODES RFC 2034), the direction
// rule (never an open relay), inbound TLS enforcement (SPEC §5) and the
// hand-over to the spool.
//
// Session states, and how each is entered:
//   greeted     after the 220 greeting, and after STARTTLS (RFC 3207 §4.2:
//               everything learnt before TLS is forgotten)
//   ready       after EHLO/HELO, RSET, or a finished transaction
//   have_mail   after an accepted MAIL
//   have_rcpt   after at least one accepted RCPT
// Every line read has one deadline, never restarted by a byte: the idle
// timeout (the stress idle timeout while the relay is under stress),
// capped by the DATA phase's and the session's total time; reads go in
// slices of at most kBoundCheckInterval so that a session already waiting
// adapts when stress begins, and so that a line is resumed, not lost. Every
// buffer has a named bound (RelayLimits); a limit hit replies with its RFC
// code and is logged, once per session and kind for the repeated ones
// (excess recipients are counted and logged at the end of the
// transaction). Input policy, as Postfix's defaults: a bare <CR> or <LF>
// in a command ends the session with 521 (smtpd_forbid_bare_newline), a
// non-ASCII address is refused (no SMTPUTF8: RFC 6531), and an inbound
// recipient whose local part routes further (`%`, `!`, `@`) is refused
// (allow_untrusted_routing = no).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "inbound_rule.h"
#include "peer_tls.h"
#include "relay_context.h"
#include "smtp_session.h"
#include "tlsp/base/rfc5322_date.h"
#include "tlsp/engine.h"

namespace tlsp::relay {
namespace {

using Clock = std::chrono::steady_clock;

enum class State { greeted, ready, have_mail, have_rcpt };

// How often a waiting read looks at the clock and the stress flag: the
// longest a running session takes to notice that stress began.
constexpr std::chrono::milliseconds kBoundCheckInterval{1000};
// After the last reply: how long, and how much, the session reads and
// drops what the client still sends before closing, so the kernel does
// not answer unread input with a reset that can destroy that reply.
constexpr std::chrono::milliseconds kHangupDrain{1000};
constexpr size_t kHangupDrainBytes = 1 << 20;

// Which bound a read ran into.
enum class Bound { idle, stress_idle, data_phase, session };

struct Recipient {
  std::string address;
  std::string domain;
};

bool iequals_prefix(std::string_view line, std::string_view prefix) {
  if (line.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(line[i])) != std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  return true;
}

std::string upper(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return r;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 5321 §4.5.3.1: local part 64, path 256 octets (a domain is a host
// name: at most 253 characters, tlsp/base/domain_name.h).
constexpr size_t kMaxLocalPart = 64;
constexpr size_t kMaxPath = 256;

// RFC 5321 §4.1.2: Domain / address-literal.
bool valid_domain(std::string_view d) {
  if (!d.empty() && d.front() == '[') return d.back() == ']' && d.size() > 2;  // address literal
  return check_host_name(d).ok();
}

struct PathParse {
  bool ok = false;
  std::string address;  // "" = null path
  std::string_view rest;
  std::string problem;
  bool non_ascii = false;  // the problem: an 8-bit address without SMTPUTF8
};

// "<local@domain> params" (after the colon). Source routes are accepted and
// ignored (RFC 5321 §4.1.2, Appendix C).
PathParse parse_path(std::string_view s, bool allow_null) {
  PathParse p;
  s = trim(s);
  if (s.empty() || s.front() != '<') {
    p.problem = "501 5.5.4 Syntax: expected <address>";
    return p;
  }
  size_t close = s.find('>');
  if (close == std::string_view::npos) {
    p.problem = "501 5.5.4 Syntax: missing >";
    return p;
  }
  std::string_view path = s.substr(1, close - 1);
  p.rest = trim(s.substr(close + 1));
  if (path.size() > kMaxPath) {
    p.problem = "501 5.1.3 Path too long";
    return p;
  }
  if (!path.empty() && path.front() == '@') {
    size_t colon = path.find(':');
    if (colon == std::string_view::npos) {
      p.problem = "501 5.1.3 Bad source route";
      return p;
    }
    path = path.substr(colon + 1);
  }
  if (path.empty()) {
    if (!allow_null) {
      p.problem = "501 5.1.3 Null address not allowed here";
      return p;
    }
    p.ok = true;
    return p;
  }
  // RFC 6531 §3.7.4: a non-ASCII address needs SMTPUTF8, which is not
  // offered (the next hop and the log would have to carry it faithfully).
  for (char c : path)
    if (static_cast<unsigned char>(c) >= 0x80) {
      p.problem = "553 5.6.7 Error: non-ASCII address requires SMTPUTF8, which this server does not support";
      p.non_ascii = true;
      p.address = std::string(path);  // for the log line only
      return p;
    }
  for (char c : path)
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f || c == '<' || c == '>') {
      p.problem = "501 5.1.3 Bad character in address";
      return p;
    }
  size_t at = path.rfind('@');
  if (at == std::string_view::npos || at == 0 || at > kMaxLocalPart || !valid_domain(path.substr(at + 1))) {
    p.problem = "501 5.1.3 Bad address syntax";
    return p;
  }
  p.address = std::string(path);
  p.ok = true;
  return p;
}

std::string version_text(TlsVersion v) {
  switch (v) {
    case TlsVersion::tls1_0: return "TLS 1.0";
    case TlsVersion::tls1_1: return "TLS 1.1";
    case TlsVersion::tls1_2: return "TLS 1.2";
    case TlsVersion::tls1_3: return "TLS 1.3";
    case TlsVersion::none: break;
  }
  return "no TLS";
}

std::string min_text(MinTls m) {
  return m == MinTls::tls1_3 ? "TLS 1.3" : m == MinTls::tls1_2 ? "TLS 1.2 or later" : "TLS";
}

class Session {
 public:
  Session(RelayContext& ctx, Stream& stream, const std::atomic<bool>& stopping, SessionSlot& slot)
      : ctx_(ctx), limits_(ctx.config.limits), stream_(stream), stopping_(stopping), slot_(slot) {
    client_ = stream_.peer_address();
    started_ = Clock::now();
    submit_client_ = ctx_.in_submit_networks(client_);
    session_ = ctx_.next_session_id();
  }

  // connect, the dialogue, disconnect: every line between carries the
  // session id.
  void run() {
    log(LogEvent::connect, {});
    try {
      serve();
      flush_recipient_limit();
    } catch (const std::exception& e) {
      log(LogEvent::error, {{"where", "smtp session"}, {"error", e.what()}});
      end_ = SessionEnd::error;
      log_end_ = "error";
    }
    ctx_.metrics.session_end(verdict_, stream_.is_tls() ? tls_version_ : TlsVersion::none, end_);
    log(LogEvent::disconnect,
        {{"end", log_end_},
         {"duration", log_seconds(Clock::now() - started_)},
         {"commands", std::to_string(commands_)},
         {"errors", std::to_string(errors_)},
         {"messages", std::to_string(messages_)},
         {"recipients", std::to_string(accepted_recipients_)},
         {"rejected", std::to_string(rejected_)},
         {"tls", std::string(to_string(stream_.is_tls() ? tls_version_ : TlsVersion::none))}});
  }

 private:
  void serve() {
    if (!reply("220 " + ctx_.hostname + " ESMTP tlsp")) return;
    std::string line;
    while (true) {
      if (stopping_) {
        end_ = SessionEnd::shutdown;
        reply("421 4.3.2 " + ctx_.hostname + " Service shutting down");
        log_end_ = "shutdown";
        return;
      }
      bool bare_lf = false;
      IoStatus st = read_line_within(line, limits_.max_line_length, bare_lf, std::nullopt);
      if (slot_.evicted) {
        limit("evict_stalled_after",
              "421 4.7.0 " + ctx_.hostname + " Error: all connection slots are in use; closing this idle session");
        return;
      }
      if (st == IoStatus::eof || st == IoStatus::error) {
        log_end_ = st == IoStatus::eof ? "eof" : "read-error";
        return;
      }
      if (st == IoStatus::timeout) {
        timed_out();
        return;
      }
      // Postfix's smtpd_forbid_bare_newline: only CR LF ends a command, and
      // a client that ends lines otherwise is told so and disconnected
      // (no second reading of the same bytes by a next hop, no guessing).
      if (bare_lf || line.find('\r') != std::string::npos) {
        limit("bare_line_ending",
              "521 5.5.2 " + ctx_.hostname + " Error: bare " + (bare_lf ? "<LF>" : "<CR>") + " received",
              {{"phase", "command"}});
        return;
      }
      if (++commands_ > limits_.max_commands) {
        limit("max_commands", "421 4.7.0 " + ctx_.hostname + " Error: too many commands");
        return;
      }
      if (st == IoStatus::too_long) {
        if (!error_reply("500 5.5.2 Line too long")) return;
        continue;
      }
      if (!dispatch(line)) return;
    }
  }

  std::chrono::seconds idle_timeout() const { return ctx_.stress ? limits_.stress_idle_timeout : limits_.idle_timeout; }

  // One line within the bounds that apply (file comment). `data_end`: the
  // end of the DATA phase, when reading the message; otherwise this is a
  // wait for a command line, published in the slot (the listener may evict
  // the session that has waited longest).
  IoStatus read_line_within(std::string& line, size_t max_len, bool& bare_lf,
                            std::optional<Clock::time_point> data_end) {
    const auto begin = Clock::now();
    if (!data_end)
      slot_.waiting_since_ns =
          std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::nanoseconds>(begin.time_since_epoch()).count());
    IoStatus st;
    while (true) {
      const bool stress = ctx_.stress;
      auto deadline = begin + (stress ? limits_.stress_idle_timeout : limits_.idle_timeout);
      bound_ = stress ? Bound::stress_idle : Bound::idle;
      if (data_end && *data_end < deadline) {
        deadline = *data_end;
        bound_ = Bound::data_phase;
      }
      if (started_ + limits_.session_timeout < deadline) {
        deadline = started_ + limits_.session_timeout;
        bound_ = Bound::session;
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        st = IoStatus::timeout;
        break;
      }
      stream_.set_timeout(std::min(std::chrono::ceil<std::chrono::milliseconds>(deadline - now), kBoundCheckInterval));
      st = stream_.read_line(line, max_len, bare_lf);
      if (st != IoStatus::timeout || slot_.evicted) break;
    }
    slot_.waiting_since_ns = 0;
    return st;
  }

  bool reply(const std::string& text) {
    stream_.set_timeout(idle_timeout());
    return stream_.write_all(text + "\r\n") == IoStatus::ok;
  }

  void log(LogEvent event, LogFields fields) {
    if (event == LogEvent::reject) ++rejected_;
    fields.insert(fields.begin(), {{"session", session_}, {"client", client_}});
    ctx_.log->write(event, fields);
  }

  void limit(std::string_view name, const std::string& text,
             std::vector<std::pair<std::string, std::string>> extra = {}) {
    std::vector<std::pair<std::string, std::string>> fields = {{"limit", std::string(name)}};
    fields.insert(fields.end(), extra.begin(), extra.end());
    fields.push_back({"reply", text});
    log(LogEvent::limit, std::move(fields));
    end_ = name.ends_with("timeout") ? SessionEnd::timeout : SessionEnd::limit;  // every caller ends the session
    log_end_ = std::string(name);
    reply(text);
  }

  // A read ran out of time: which bound it hit.
  void timed_out() {
    switch (bound_) {
      case Bound::session:
        limit("session_timeout", "421 4.4.2 " + ctx_.hostname + " Error: session time limit exceeded");
        return;
      case Bound::data_phase:
        limit("data_phase_timeout", "421 4.4.2 " + ctx_.hostname + " Error: DATA time limit exceeded");
        return;
      case Bound::stress_idle:
        limit("stress_idle_timeout", "421 4.4.2 " + ctx_.hostname + " Error: timeout exceeded");
        return;
      case Bound::idle:
        limit("idle_timeout", "421 4.4.2 " + ctx_.hostname + " Error: timeout exceeded");
        return;
    }
  }

  // A syntax or sequence error: counted; too many ends the session (fewer
  // under stress).
  bool error_reply(const std::string& text) {
    const bool stress = ctx_.stress;
    if (++errors_ > (stress ? limits_.stress_max_errors : limits_.max_errors)) {
      limit(stress ? "stress_max_errors" : "max_errors", "421 4.7.0 " + ctx_.hostname + " Error: too many errors");
      return false;
    }
    return reply(text);
  }

  // A RCPT beyond max_recipients: refused, and counted rather than logged,
  // so a client sending a thousand costs one log line.
  bool recipient_limit() {
    ++excess_recipients_;
    return reply(kTooManyRecipients);
  }

  void flush_recipient_limit() {
    if (excess_recipients_ == 0) return;
    log(LogEvent::limit, {{"limit", "max_recipients"},
                  {"max", std::to_string(limits_.max_recipients)},
                  {"refused", std::to_string(excess_recipients_)},
                  {"reply", kTooManyRecipients}});
    excess_recipients_ = 0;
  }

  static constexpr const char* kTooManyRecipients = "452 4.5.3 Error: too many recipients";

  void reset_transaction() {
    flush_recipient_limit();
    mail_from_.reset();
    recipients_.clear();
    accepted_under_.clear();
    body_8bit_ = false;
    outbound_ = false;
    if (state_ == State::have_mail || state_ == State::have_rcpt) state_ = State::ready;
  }

  bool dispatch(const std::string& line) {
    std::string_view l(line);
    size_t sp = l.find(' ');
    std::string verb = upper(l.substr(0, sp));
    std::string_view arg = sp == std::string_view::npos ? std::string_view{} : l.substr(sp + 1);
    if (verb == "EHLO" || verb == "HELO") return on_helo(verb == "EHLO", trim(arg));
    if (verb == "MAIL") return on_mail(arg);
    if (verb == "RCPT") return on_rcpt(arg);
    if (verb == "DATA") return arg.empty() ? on_data() : error_reply("501 5.5.4 Syntax: DATA");
    if (verb == "RSET") {
      reset_transaction();
      return reply("250 2.0.0 Ok");
    }
    if (verb == "NOOP") return reply("250 2.0.0 Ok");
    if (verb == "QUIT") {
      end_ = SessionEnd::quit;
      reply("221 2.0.0 Bye");
      log_end_ = "quit";
      return false;
    }
    if (verb == "STARTTLS") return arg.empty() ? on_starttls() : error_reply("501 5.5.4 Syntax: STARTTLS");
    if (verb == "VRFY") return reply("252 2.5.2 Cannot VRFY user");
    if (verb == "HELP") return reply("214 2.0.0 See RFC 5321");
    return error_reply("500 5.5.2 Error: command not recognized");
  }

  bool on_helo(bool ehlo, std::string_view name) {
    if (name.empty()) return error_reply(std::string("501 5.5.4 Syntax: ") + (ehlo ? "EHLO" : "HELO") + " hostname");
    helo_ = std::string(name.substr(0, 255));
    reset_transaction();
    state_ = State::ready;
    esmtp_ = ehlo;
    if (!ehlo) return reply("250 " + ctx_.hostname);
    std::string r = "250-" + ctx_.hostname + "\r\n250-PIPELINING\r\n250-SIZE " +
                    std::to_string(limits_.max_message_size) + "\r\n250-8BITMIME\r\n";
    if (ctx_.server_tls && !stream_.is_tls()) r += "250-STARTTLS\r\n";
    r += "250 ENHANCEDSTATUSCODES";
    return reply(r);
  }

  bool on_starttls() {
    if (!ctx_.server_tls) return error_reply("454 4.7.0 TLS not available");
    if (stream_.is_tls()) return error_reply("503 5.5.1 Error: TLS already active");
    if (state_ == State::greeted) return error_reply("503 5.5.1 Error: send EHLO first");
    if (!reply("220 2.0.0 Ready to start TLS")) return false;
    // RFC 3207 §4.1 / CVE-2011-0411: plaintext pipelined after STARTTLS
    // must not be executed inside the TLS session.
    if (stream_.buffered() > 0) {
      log(LogEvent::limit, {{"limit", "starttls_injection"}, {"discarded", std::to_string(stream_.buffered())}});
      stream_.discard_buffer();
    }
    TlsServerResult r = stream_.start_tls_server(ctx_.server_tls.get());
    if (!r.ok) {
      log(LogEvent::tls, {{"direction", "inbound"}, {"result", "handshake-failed"}, {"error", r.error}});
      end_ = SessionEnd::tls_failure;
      log_end_ = "tls-handshake-failed";
      return false;
    }
    tls_version_ = r.version;
    tls_cipher_ = r.cipher;
    // The relay asks no client certificate: every inbound session is
    // Anonymous in Postfix's words.
    LogFields f = {{"direction", "inbound"},
                   {"result", "ok"},
                   {"trust", "Anonymous"},
                   {"tls", std::string(to_string(r.version))},
                   {"cipher", r.cipher}};
    if (!r.group.empty()) f.push_back({"group", r.group});
    f.push_back({"summary", tls_established_text("Anonymous", "from [" + client_ + "]", r.version, r.cipher, r.group)});
    log(LogEvent::tls, std::move(f));
    // RFC 3207 §4.2: forget everything learnt before TLS.
    helo_.clear();
    reset_transaction();
    state_ = State::greeted;
    return true;
  }

  // The inbound verdict for one managed domain; empty when accepted.
  std::string inbound_refusal(std::string_view domain, const std::string& sender) {
    const std::string sender_domain = domain_of_address(sender);
    auto table = ctx_.table.get();
    InboundRule rule = stricter_inbound_rule(*table, domain, client_, sender_domain);
    PeerFacts facts;
    facts.starttls = stream_.is_tls();
    facts.peer_tls = stream_.is_tls() ? version_bit(tls_version_) : 0;
    Outcome out = decide(Direction::inbound, {rule.decision.level, rule.decision.min_tls}, facts);
    last_verdict_ = out.kind;
    if (out.kind != OutcomeKind::refuse) {
      // For the accept line: the rule and verdict the domain's recipients
      // are accepted under (the last RCPT's, should a reload fall between).
      accepted_under_[std::string(domain)] = {{"rule", std::string(to_string(rule.decision.level))},
                                              {"min_tls", std::string(to_string(rule.decision.min_tls))},
                                              {"source", table->describe(rule.decision.level_from)},
                                              {"applied", std::string(to_string(out.applied))},
                                              {"channel", std::string(to_string(out.channel))},
                                              {"reason", std::string(to_string(out.reason))}};
      return {};
    }
    std::string text;
    if (out.reason == Reason::starttls_required)
      text = "530 5.7.0 Must issue a STARTTLS command first";
    else if (out.reason == Reason::tls_version_too_low)
      text = "530 5.7.0 " + min_text(rule.decision.min_tls) + " required for " + std::string(domain) +
             "; this session uses " + version_text(tls_version_);
    else
      text = "530 5.7.0 TLS policy refuses this session (" + std::string(to_string(out.reason)) + ")";
    log(LogEvent::reject, {{"direction", "inbound"},
                   {"domain", std::string(domain)},
                   {"sender", sender},
                   {"rule", std::string(to_string(rule.decision.level))},
                   {"min_tls", std::string(to_string(rule.decision.min_tls))},
                   {"source", table->describe(rule.decision.level_from)},
                   {"applied", std::string(to_string(out.applied))},
                   {"tls", std::string(to_string(facts.starttls ? tls_version_ : TlsVersion::none))},
                   {"reason", std::string(to_string(out.reason))},
                   {"reply", text}});
    return text;
  }

  // A verdict that took effect (metrics: the session's strictest).
  void note_verdict(OutcomeKind k) {
    if (!verdict_ || k > *verdict_) verdict_ = k;
  }

  bool on_mail(std::string_view arg) {
    if (state_ == State::greeted) return error_reply("503 5.5.1 Error: send HELO/EHLO first");
    if (state_ != State::ready) return error_reply("503 5.5.1 Error: nested MAIL command");
    if (!iequals_prefix(arg, "FROM:")) return error_reply("501 5.5.4 Syntax: MAIL FROM:<address>");
    PathParse p = parse_path(arg.substr(5), /*allow_null=*/true);
    if (!p.ok) return path_error(p, "sender");
    bool eight = false;
    std::string_view params = p.rest;
    while (!params.empty()) {
      size_t sp = params.find(' ');
      std::string_view param = params.substr(0, sp);
      params = sp == std::string_view::npos ? std::string_view{} : trim(params.substr(sp + 1));
      if (param.empty()) continue;
      std::string up = upper(param);
      if (!esmtp_) return error_reply("555 5.5.4 MAIL parameters need EHLO");
      if (up.rfind("SIZE=", 0) == 0) {
        std::string_view n = param.substr(5);
        if (n.empty() || n.size() > 20 || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }))
          return error_reply("501 5.5.4 Bad SIZE parameter");
        if (n.size() > 12 || std::stoull(std::string(n)) > limits_.max_message_size) {
          log(LogEvent::limit, {{"limit", "max_message_size"}, {"declared", std::string(n)}});
          return reply("552 5.3.4 Message size exceeds fixed limit");
        }
      } else if (up == "BODY=8BITMIME") {
        eight = true;
      } else if (up == "BODY=7BIT") {
      } else {
        return error_reply("555 5.5.4 Unsupported MAIL parameter " + std::string(param));
      }
    }
    std::string sender_domain = domain_of_address(p.address);
    outbound_ = submit_client_ && !sender_domain.empty() && ctx_.is_managed(sender_domain);
    if (!outbound_) {
      // SPEC §5: a peer whose rule refuses this session hears it at MAIL,
      // when every domain it could send to refuses it alike.
      std::string first;
      bool all_refuse = !ctx_.config.next_hops.empty();
      for (const NextHop& h : ctx_.config.next_hops) {
        std::string r = inbound_refusal(h.domain, p.address);
        if (r.empty()) {
          all_refuse = false;
          break;
        }
        if (first.empty()) first = r;
      }
      if (all_refuse) {
        note_verdict(OutcomeKind::refuse);
        return reply(first);
      }
    }
    mail_from_ = p.address;
    body_8bit_ = eight;
    state_ = State::have_mail;
    return reply("250 2.1.0 Ok");
  }

  bool on_rcpt(std::string_view arg) {
    if (state_ != State::have_mail && state_ != State::have_rcpt) return error_reply("503 5.5.1 Error: need MAIL command");
    if (!iequals_prefix(arg, "TO:")) return error_reply("501 5.5.4 Syntax: RCPT TO:<address>");
    std::string_view to = trim(arg.substr(3));
    if (to.size() >= 12 && iequals_prefix(to, "<postmaster>") && !ctx_.config.next_hops.empty()) {
      // RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted;
      // it is the postmaster of the first managed domain with a next hop.
      std::string address = "postmaster@" + ctx_.config.next_hops.front().domain;
      if (recipients_.size() >= limits_.max_recipients) return recipient_limit();
      recipients_.push_back({address, ctx_.config.next_hops.front().domain});
      state_ = State::have_rcpt;
      return reply("250 2.1.5 Ok");
    }
    PathParse p = parse_path(to, /*allow_null=*/false);
    if (!p.ok) return path_error(p, "recipient");
    if (!p.rest.empty()) return error_reply("555 5.5.4 Unsupported RCPT parameter");
    if (recipients_.size() >= limits_.max_recipients) return recipient_limit();
    std::string domain = domain_of_address(p.address);
    // Delivery goes by the recipient's domain name (its MX hosts); an
    // address literal has none, and queueing it would only defer it.
    if (outbound_ && domain.empty()) return reply("553 5.1.2 <" + p.address + ">: address literals are not routed");
    if (!outbound_) {
      // Postfix's allow_untrusted_routing = no: a local part that names a
      // further destination (`v%victim.example`, `v@victim.example`, quoted
      // or not, `victim!v`) would let an outside client route through the
      // next hop, which may honour it. Trusted submitters (outbound) may.
      std::string_view local = std::string_view(p.address).substr(0, p.address.rfind('@'));
      if (local.find_first_of("%!@") != std::string_view::npos) {
        std::string text = "550 5.7.1 <" + p.address + ">: Sender-specified routing is not allowed";
        log(LogEvent::reject, {{"direction", "none"},
                       {"sender", *mail_from_},
                       {"recipient", p.address},
                       {"reason", "sender-specified-routing"},
                       {"reply", text}});
        return reply(text);
      }
      if (domain.empty() || !ctx_.next_hop(domain)) {
        log(LogEvent::reject, {{"direction", "none"}, {"sender", *mail_from_}, {"recipient", p.address},
                       {"reply", "554 5.7.1 relay access denied"}});
        return reply("554 5.7.1 <" + p.address + ">: Relay access denied");
      }
      std::string refusal = inbound_refusal(domain, *mail_from_);
      note_verdict(last_verdict_);
      if (!refusal.empty()) return reply(refusal);
    }
    recipients_.push_back({p.address, domain});
    state_ = State::have_rcpt;
    return reply("250 2.1.5 Ok");
  }

  // A MAIL or RCPT address that does not parse; a non-ASCII one is also
  // logged (it may be an attempt to smuggle bytes to the next hop).
  bool path_error(const PathParse& p, const char* role) {
    if (p.non_ascii)
      log(LogEvent::reject, {{"reason", "non-ascii-address"}, {"role", role}, {"address", p.address}, {"reply", p.problem}});
    return error_reply(p.problem);
  }

  bool on_data() {
    if (state_ == State::have_mail) return error_reply("554 5.5.1 Error: no valid recipients");
    if (state_ != State::have_rcpt) return error_reply("503 5.5.1 Error: need RCPT command");
    if (!reply("354 End data with <CR><LF>.<CR><LF>")) return false;
    std::string data = received_header();
    bool too_big = false, line_too_long = false, eight = false, bare_lf_seen = false, prev_bare = false;
    std::string line;
    const auto data_end = Clock::now() + limits_.data_phase_timeout;
    size_t received = 0;  // octets of the message as sent (line endings counted as two)
    while (true) {
      bool bare_lf = false;
      IoStatus st = read_line_within(line, limits_.max_data_line_length, bare_lf, data_end);
      if (st == IoStatus::timeout) {
        timed_out();
        return false;
      }
      if (st == IoStatus::eof || st == IoStatus::error) {
        log_end_ = st == IoStatus::eof ? "eof" : "read-error";
        // Nothing acknowledged, so nothing is lost; but the sender saw a
        // 354 and the log says what became of it.
        log(LogEvent::abort, {{"phase", "data"},
                      {"sender", *mail_from_},
                      {"recipients", std::to_string(recipients_.size())},
                      {"received", std::to_string(received)},
                      {"reason", st == IoStatus::eof ? "connection closed" : "read error"}});
        return false;
      }
      received += line.size() + 2;
      if (st == IoStatus::too_long) {
        line_too_long = true;
        prev_bare = bare_lf;
        continue;
      }
      // Only CR LF . CR LF ends the data. A "." next to a bare LF is not
      // the end here, and a message with bare LFs is refused: a next hop
      // that reads them differently must not find a second message
      // smuggled inside this one (SMTP smuggling, CVE-2023-51764).
      // A bare CR inside a line is refused for the same reason: some
      // servers end lines there.
      if (bare_lf || line.find('\r') != std::string::npos) bare_lf_seen = true;
      if (line == "." && !bare_lf && !prev_bare) break;
      prev_bare = bare_lf;
      std::string_view body(line);
      if (!body.empty() && body.front() == '.') body.remove_prefix(1);  // RFC 5321 §4.5.2
      if (too_big || line_too_long) continue;
      if (data.size() + body.size() + 2 > limits_.max_message_size) {
        too_big = true;
        continue;
      }
      for (char c : body)
        if (static_cast<unsigned char>(c) >= 0x80) eight = true;
      data.append(body);
      data.append("\r\n");
    }
    if (too_big) {
      log(LogEvent::limit, {{"limit", "max_message_size"}});
      reset_transaction();
      return reply("552 5.3.4 Message size exceeds fixed limit");
    }
    if (bare_lf_seen) {
      log(LogEvent::limit, {{"limit", "bare_line_ending"}});
      reset_transaction();
      return reply("554 5.5.2 Error: bare <CR> or <LF> received; lines must end with <CR><LF>");
    }
    if (line_too_long) {
      log(LogEvent::limit, {{"limit", "max_data_line_length"}});
      reset_transaction();
      return reply("554 5.6.0 Message line too long");
    }
    return store(std::move(data), eight || body_8bit_);
  }

  std::string received_header() {
    std::string tls;
    if (stream_.is_tls())
      tls = "\r\n\t(using " + std::string(to_string(tls_version_)) + " with cipher " + tls_cipher_ + ")";
    return "Received: from " + helo_ + " ([" + client_ + "])\r\n\tby " + ctx_.hostname + " (tlsp) with " +
           (stream_.is_tls() ? "ESMTPS" : esmtp_ ? "ESMTP" : "SMTP") + tls + ";\r\n\t" +
           base::rfc5322_date(std::time(nullptr)) + "\r\n";
  }

  bool store(std::string data, bool eight) {
    // One queue entry per destination: a recipient domain outbound, a next
    // hop inbound.
    std::map<std::string, QueueEntry> groups;
    std::string sender_domain = domain_of_address(*mail_from_);
    const int64_t now = std::time(nullptr);
    const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
    for (const Recipient& r : recipients_) {
      QueueEntry& e = groups[(outbound_ ? "o:" : "i:") + r.domain];
      if (e.recipients.empty()) {
        e.mail_from = *mail_from_;
        e.direction = outbound_ ? Direction::outbound : Direction::inbound;
        e.managed_domain = outbound_ ? sender_domain : r.domain;
        if (outbound_) {
          e.destination = r.domain;
        } else {
          const NextHop* hop = ctx_.next_hop(r.domain);
          e.destination = hop->host + ":" + std::to_string(hop->port);
        }
        e.client_address = client_;
        e.client_helo = helo_;
        e.sender_peer = sender_domain;
        e.body_8bit = eight;
        e.arrival = now;
        e.arrival_ms = now_ms;
        e.next_attempt = now;
      }
      e.recipients.push_back(r.address);
    }
    std::vector<QueueEntry> entries;
    for (auto& [key, e] : groups) entries.push_back(std::move(e));
    std::vector<QueueEntry> stored;
    try {
      stored = ctx_.spool->store(std::move(entries), data);
    } catch (const std::exception& e) {
      log(LogEvent::spool, {{"result", "error"}, {"error", e.what()}});
      reset_transaction();
      return reply("451 4.3.0 Error: queue file write error");
    }
    std::string ids;
    for (const QueueEntry& e : stored) {
      ids += (ids.empty() ? "" : ",") + e.id;
      std::string rcpts;
      for (const std::string& r : e.recipients) rcpts += (rcpts.empty() ? "" : ",") + r;
      LogFields fields = {{"queue_id", e.id},
                          {"from", e.mail_from},
                          {"to", rcpts},
                          {"direction", std::string(to_string(e.direction))},
                          {"size", std::to_string(data.size())},
                          {"tls", std::string(to_string(stream_.is_tls() ? tls_version_ : TlsVersion::none))}};
      if (auto v = accepted_under_.find(e.managed_domain); e.direction == Direction::inbound && v != accepted_under_.end())
        fields.insert(fields.end(), v->second.begin(), v->second.end());
      log(LogEvent::accept, std::move(fields));
    }
    ++messages_;
    accepted_recipients_ += recipients_.size();
    reset_transaction();
    if (!reply("250 2.0.0 Ok: queued as " + ids)) {
      // The client may not have heard the 250; the message is queued all
      // the same (RFC 5321 §4.1.4 allows the duplicate, never the loss).
    }
    if (ctx_.enqueue) ctx_.enqueue(std::move(stored));
    return true;
  }

  RelayContext& ctx_;
  const RelayLimits& limits_;
  Stream& stream_;
  const std::atomic<bool>& stopping_;
  SessionSlot& slot_;
  std::string client_;
  std::string session_;
  // For the disconnect line: how the session ended (finer than end_, the
  // metrics' label: the limit's name, eof or read-error), what it did.
  std::string log_end_ = "closed";
  size_t messages_ = 0, accepted_recipients_ = 0, rejected_ = 0;
  bool submit_client_ = false;
  Clock::time_point started_;
  Bound bound_ = Bound::idle;     // the bound of the last read, for timed_out()
  size_t excess_recipients_ = 0;  // RCPTs refused with 452 in this transaction
  State state_ = State::greeted;
  bool esmtp_ = false;
  std::string helo_;
  size_t commands_ = 0, errors_ = 0;
  TlsVersion tls_version_ = TlsVersion::none;
  std::string tls_cipher_;
  std::optional<std::string> mail_from_;
  std::vector<Recipient> recipients_;
  std::map<std::string, LogFields> accepted_under_;  // inbound: managed domain -> rule and verdict
  bool body_8bit_ = false;
  bool outbound_ = false;
  // For the metrics, at the session's end: how it ended, and the strictest
  // inbound verdict that took effect (a RCPT accepted or refused under it,
  // a MAIL refused for every managed domain); none without one.
  SessionEnd end_ = SessionEnd::disconnect;
  std::optional<OutcomeKind> verdict_;
  OutcomeKind last_verdict_ = OutcomeKind::refuse;  // inbound_refusal()'s latest
};

}  // namespace

void serve_smtp_session(RelayContext& ctx, Stream& stream, const std::atomic<bool>& stopping, SessionSlot& slot) {
  try {
    Session(ctx, stream, stopping, slot).run();
  } catch (const std::exception& e) {
    ctx.log->write(LogEvent::error, {{"where", "smtp session"}, {"error", e.what()}});
    ctx.metrics.session_end(std::nullopt, TlsVersion::none, SessionEnd::error);
  }
  // Whoever ended the session, the last reply must arrive: a client that
  // pipelined more than was read would otherwise get a reset instead.
  stream.close_gracefully(kHangupDrain, kHangupDrainBytes);
}

}  // namespace tlsp::relay
