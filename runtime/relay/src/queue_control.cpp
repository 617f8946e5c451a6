// queue_control.cpp — the queue tools' side of tlsp/queue_control.h: the
// control protocol (requests and replies, both ends), what an operation
// means for an entry, the operations on a spool no relay holds, and the
// command's choice between that and asking the relay. The relay's side of
// the socket is control_socket.cpp.
#include "tlsp/queue_control.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <thread>

#include "privileges.h"
#include "spool_format.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/base/quote.h"

namespace tlsp {

using spool::escape_value;
using spool::parse_count;
using spool::unescape_value;

namespace {

constexpr std::string_view kRequestMagic = "tlsp-queue/1";

struct OpName {
  QueueOp op;
  std::string_view name;
  enum class Arg { none, optional_id, id, domain, day_domain, count } arg;
};
constexpr OpName kOps[] = {
    {QueueOp::list, "list", OpName::Arg::none},
    {QueueOp::show, "show", OpName::Arg::id},
    {QueueOp::flush, "flush", OpName::Arg::optional_id},
    {QueueOp::flush_domain, "flush-domain", OpName::Arg::domain},
    {QueueOp::hold, "hold", OpName::Arg::id},
    {QueueOp::release, "release", OpName::Arg::id},
    {QueueOp::remove, "delete", OpName::Arg::id},
    {QueueOp::remove_domain, "delete-domain", OpName::Arg::domain},
    {QueueOp::tlsrpt_send, "tlsrpt-send", OpName::Arg::day_domain},
    {QueueOp::tlsrpt_resend, "tlsrpt-resend", OpName::Arg::day_domain},
    {QueueOp::tlsrpt_mail, "tlsrpt-mail", OpName::Arg::count},
};

// A domain in its normal form, or nothing with the problem.
std::optional<std::string> checked_domain(std::string_view arg, std::string& problem) {
  NameCheck c = check_host_name(arg);
  if (!c) {
    problem = base::ticked(arg) + " is not a domain name: " + c.problem;
    return std::nullopt;
  }
  return c.name;
}

const OpName& op_info(QueueOp op) {
  for (const OpName& o : kOps)
    if (o.op == op) return o;
  return kOps[0];
}

std::optional<std::string> checked_argument(const OpName& o, std::string_view arg, std::string& problem) {
  using Arg = OpName::Arg;
  if (o.arg == Arg::none || (o.arg == Arg::optional_id && arg.empty())) {
    if (!arg.empty()) {
      problem = "`" + std::string(o.name) + "` takes no argument";
      return std::nullopt;
    }
    return std::string();
  }
  if (arg.empty()) {
    problem = "`" + std::string(o.name) + "` needs " +
              (o.arg == Arg::domain       ? "a domain"
               : o.arg == Arg::day_domain ? "a day"
               : o.arg == Arg::count      ? "a byte count"
                                          : "an entry id");
    return std::nullopt;
  }
  if (o.arg == Arg::domain) return checked_domain(arg, problem);
  if (o.arg == Arg::day_domain) {
    const size_t sp = arg.find(' ');
    const std::string_view day = arg.substr(0, sp);
    const std::optional<int64_t> t = tlsrpt::parse_utc_day(day);
    if (!t || tlsrpt::utc_day(*t) != day) {
      problem = base::ticked(day) + " is not a day (YYYY-MM-DD)";
      return std::nullopt;
    }
    if (sp == std::string_view::npos) return std::string(day);
    auto d = checked_domain(arg.substr(sp + 1), problem);
    if (!d) return std::nullopt;
    return std::string(day) + " " + *d;
  }
  if (o.arg == Arg::count) {
    auto n = parse_count(arg);
    if (!n || *n == 0 || *n > kMaxControlPayloadBytes) {
      problem = "the payload size " + base::ticked(arg) + " is not 1 to " + std::to_string(kMaxControlPayloadBytes);
      return std::nullopt;
    }
    return std::string(arg);
  }
  if (!spool::valid_entry_id(arg)) {
    problem = base::ticked(arg) + " is not a queue id (as `tlsp queue list` shows them)";
    return std::nullopt;
  }
  return std::string(arg);
}

// ------------------------------------------------------------ reply lines

std::string format_entry(const QueueEntryStatus& s) {
  const QueueEntry& e = s.entry;
  std::string t = "entry";
  auto kv = [&t](std::string_view k, std::string_view v) {
    t += ' ';
    t += k;
    t += '=';
    t += escape_value(v);
  };
  kv("id", e.id);
  kv("from", e.mail_from);
  for (const std::string& r : e.recipients) kv("to", r);
  kv("direction", to_string(e.direction));
  kv("managed-domain", e.managed_domain);
  kv("destination", e.destination);
  kv("client-address", e.client_address);
  kv("client-helo", e.client_helo);
  kv("size", std::to_string(e.size));
  kv("arrival", std::to_string(e.arrival));
  kv("attempts", std::to_string(e.attempts));
  kv("next-attempt", std::to_string(e.next_attempt));
  kv("held", e.held ? "1" : "0");
  kv("delivering", s.delivering ? "1" : "0");
  kv("last-error", e.last_error);
  // Two values in one: each escaped, then the pair escaped again.
  for (const auto& [a, r] : e.failed_recipients) kv("failed", escape_value(a) + " " + escape_value(r));
  return t;
}

bool parse_entry(std::string_view rest, QueueEntryStatus& out, std::string& problem) {
  QueueEntry& e = out.entry;
  std::map<std::string, std::string, std::less<>> single;
  size_t pos = 0;
  while (pos <= rest.size()) {
    size_t sp = rest.find(' ', pos);
    std::string_view tok = rest.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
    pos = sp == std::string_view::npos ? rest.size() + 1 : sp + 1;
    size_t eq = tok.find('=');
    if (eq == std::string_view::npos) {
      problem = "an entry field is not `key=value`";
      return false;
    }
    std::string_view key = tok.substr(0, eq);
    auto value = unescape_value(tok.substr(eq + 1));
    if (!value) {
      problem = "bad escape in entry field `" + std::string(key) + "`";
      return false;
    }
    if (key == "to") {
      e.recipients.push_back(std::move(*value));
    } else if (key == "failed") {
      size_t s = value->find(' ');
      auto a = s == std::string::npos ? std::nullopt : unescape_value(std::string_view(*value).substr(0, s));
      auto r = s == std::string::npos ? std::nullopt : unescape_value(std::string_view(*value).substr(s + 1));
      if (!a || !r) {
        problem = "bad `failed` entry field";
        return false;
      }
      e.failed_recipients.push_back({std::move(*a), std::move(*r)});
    } else if (!single.emplace(std::string(key), std::move(*value)).second) {
      problem = "entry field `" + std::string(key) + "` given twice";
      return false;
    }
  }
  auto take = [&](std::string_view key, std::string& to) {
    auto it = single.find(key);
    if (it == single.end()) return false;
    to = std::move(it->second);
    single.erase(it);
    return true;
  };
  std::string direction, size, arrival, attempts, next, held, delivering;
  if (!take("id", e.id) || !take("from", e.mail_from) || !take("direction", direction) ||
      !take("managed-domain", e.managed_domain) || !take("destination", e.destination) ||
      !take("client-address", e.client_address) || !take("client-helo", e.client_helo) || !take("size", size) ||
      !take("arrival", arrival) || !take("attempts", attempts) || !take("next-attempt", next) || !take("held", held) ||
      !take("delivering", delivering) || !take("last-error", e.last_error)) {
    problem = "an entry lacks a field";
    return false;
  }
  if (!single.empty()) {
    problem = "unknown entry field `" + single.begin()->first + "`";
    return false;
  }
  auto d = parse_direction(direction);
  auto n_size = parse_count(size), n_arrival = parse_count(arrival), n_attempts = parse_count(attempts),
       n_next = parse_count(next);
  if (!spool::valid_entry_id(e.id) || !d || !n_size || !n_arrival || !n_attempts || !n_next || *n_arrival > INT64_MAX ||
      *n_next > INT64_MAX || *n_attempts > 1000000 || (held != "0" && held != "1") ||
      (delivering != "0" && delivering != "1")) {
    problem = "an entry field has a bad value";
    return false;
  }
  e.direction = *d;
  e.size = *n_size;
  e.arrival = static_cast<int64_t>(*n_arrival);
  e.attempts = static_cast<int>(*n_attempts);
  e.next_attempt = static_cast<int64_t>(*n_next);
  e.held = held == "1";
  out.delivering = delivering == "1";
  return true;
}

// ------------------------------------------------------------ the socket

// Connects to the relay's socket; -1 when nobody listens there (yet).
int connect_control(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(),
              std::min(path.size(), sizeof sa.sun_path - 1));  // checked by control_socket_path
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw SpoolError("socket: " + std::string(std::strerror(errno)));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    int e = errno;
    ::close(fd);
    if (e == ENOENT || e == ECONNREFUSED) return -1;
    throw SpoolError("cannot connect to `" + path + "`: " + std::strerror(e));
  }
  return fd;
}

QueueReply ask_relay(int fd, const QueueRequest& request, const std::string& path) {
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  const auto deadline = std::chrono::steady_clock::now() + kControlReplyTimeout;
  auto wait = [&](short events) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw SpoolError("the relay did not answer on `" + path + "` in time");
    pollfd p{fd, events, 0};
    ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
  };
  std::string out = format_queue_request(request);
  size_t sent = 0;
  while (sent < out.size()) {
    ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      wait(POLLOUT);
    } else {
      throw SpoolError("cannot send the request to `" + path + "`: " + std::strerror(errno));
    }
  }
  std::string in;
  char buf[65536];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      if (in.size() + static_cast<size_t>(n) > kMaxControlReplyBytes)
        throw SpoolError("the relay's reply is longer than " + std::to_string(kMaxControlReplyBytes) + " bytes");
      in.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      wait(POLLIN);
    } else {
      throw SpoolError("cannot read the relay's reply on `" + path + "`: " + std::strerror(errno));
    }
  }
  if (in.empty()) throw SpoolError("the relay closed `" + path + "` without a reply (did it stop?)");
  QueueReply reply;
  std::string problem;
  if (!parse_queue_reply(in, reply, problem)) throw SpoolError("the relay's reply breaks the protocol: " + problem);
  return reply;
}

// `key=value ...` in the fixed order format_queue_reply() writes.
bool parse_tlsrpt_event(std::string_view rest, TlsrptSendEvent& e) {
  std::string failed;
  std::string* fields[] = {&e.result, &e.day,    &e.domain, &e.report_id, &e.uri,
                           &e.queue_id_report, &e.detail, &e.error, &failed};
  constexpr std::string_view keys[] = {"result", "day", "domain", "report-id", "uri",
                                       "queue-id", "detail", "error", "failed"};
  size_t pos = 0;
  for (size_t i = 0; i < std::size(keys); ++i) {
    const size_t sp = rest.find(' ', pos);
    std::string_view tok = rest.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
    if (!tok.starts_with(keys[i]) || tok.substr(keys[i].size(), 1) != "=") return false;
    auto v = unescape_value(tok.substr(keys[i].size() + 1));
    if (!v) return false;
    *fields[i] = std::move(*v);
    if (i + 1 < std::size(keys) && sp == std::string_view::npos) return false;
    if (i + 1 == std::size(keys) && sp != std::string_view::npos) return false;
    pos = sp + 1;
  }
  if (e.result.empty() || (failed != "0" && failed != "1")) return false;
  e.failed = failed == "1";
  return true;
}

QueueReply refused(std::string why) {
  QueueReply r;
  r.ok = false;
  r.error = std::move(why);
  return r;
}

}  // namespace

// ------------------------------------------------------------ requests

std::string_view queue_op_name(QueueOp op) {
  return op_info(op).name;
}

std::optional<QueueRequest> make_queue_request(QueueOp op, std::string_view argument, std::string& problem) {
  auto arg = checked_argument(op_info(op), argument, problem);
  if (!arg) return std::nullopt;
  return QueueRequest{op, std::move(*arg), {}};
}

std::string format_queue_request(const QueueRequest& r) {
  std::string t = std::string(kRequestMagic) + " " + std::string(queue_op_name(r.op));
  if (!r.argument.empty()) t += " " + r.argument;
  return t + "\n" + r.payload;
}

size_t queue_request_payload_bytes(const QueueRequest& r) {
  if (r.op != QueueOp::tlsrpt_mail) return 0;
  auto n = parse_count(r.argument);
  return n ? static_cast<size_t>(*n) : 0;
}

// ------------------------------------------------------------ tlsrpt-mail

std::string format_tlsrpt_mail_payload(const TlsrptMailPayload& p) {
  std::string t = "domain " + p.domain + "\nsubmitter " + p.submitter + "\n";
  for (const TlsrptUri& u : p.to) t += "to " + u.uri + "\n";
  return t + "report\n" + p.gzip;
}

QueueRequest make_tlsrpt_mail_request(const TlsrptMailPayload& p) {
  QueueRequest r;
  r.op = QueueOp::tlsrpt_mail;
  r.payload = format_tlsrpt_mail_payload(p);
  r.argument = std::to_string(r.payload.size());
  return r;
}

bool parse_tlsrpt_mail_payload(std::string_view text, TlsrptMailPayload& out, std::string& problem) {
  out = TlsrptMailPayload{};
  if (text.size() > kMaxControlPayloadBytes) {
    problem = "the payload is longer than " + std::to_string(kMaxControlPayloadBytes) + " bytes";
    return false;
  }
  // Lines are short (a URI at most kMaxTlsrptUriBytes); the search for a
  // line end never looks further than that, so reading stays linear.
  constexpr size_t kMaxLine = kMaxTlsrptUriBytes + 16;
  size_t pos = 0;
  auto next_line = [&](std::string_view& line) {
    const size_t nl = text.substr(pos, kMaxLine + 1).find('\n');
    if (nl == std::string_view::npos) return false;
    line = text.substr(pos, nl);
    pos += nl + 1;
    for (char c : line)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7E) return false;
    return true;
  };
  auto field = [&](std::string_view key, std::string& value) {
    std::string_view line;
    if (!next_line(line) || !line.starts_with(key) || line.substr(key.size(), 1) != " ") {
      problem = "want a `" + std::string(key) + "` line";
      return false;
    }
    auto d = checked_domain(line.substr(key.size() + 1), problem);
    if (!d || *d != line.substr(key.size() + 1)) {
      if (d) problem = "`" + std::string(key) + "` is not in its normal form";
      return false;
    }
    value = *d;
    return true;
  };
  if (!field("domain", out.domain) || !field("submitter", out.submitter)) return false;
  while (true) {
    std::string_view line;
    if (!next_line(line)) {
      problem = "want a `to URI` or `report` line";
      return false;
    }
    if (line == "report") break;
    if (!line.starts_with("to ")) {
      problem = "want a `to URI` or `report` line";
      return false;
    }
    std::string why;
    std::optional<TlsrptUri> u = parse_tlsrpt_uri(line.substr(3), &why);
    if (!u || u->scheme != TlsrptScheme::mailto) {
      problem = "`to` is not a mailto: URI" + (why.empty() ? std::string() : ": " + why);
      return false;
    }
    if (out.to.size() == kMaxTlsrptUris) {
      problem = "more than " + std::to_string(kMaxTlsrptUris) + " URIs";
      return false;
    }
    out.to.push_back(std::move(*u));
  }
  if (out.to.empty()) {
    problem = "no `to` URI";
    return false;
  }
  if (pos == text.size()) {
    problem = "no report after `report`";
    return false;
  }
  out.gzip = std::string(text.substr(pos));
  return true;
}

std::optional<QueueRequest> parse_queue_request(std::string_view line, std::string& problem) {
  if (line.size() > kMaxControlRequestBytes) {
    problem = "request longer than " + std::to_string(kMaxControlRequestBytes) + " bytes";
    return std::nullopt;
  }
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  for (char c : line)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7E) {
      problem = "request holds a control or non-ASCII byte";
      return std::nullopt;
    }
  if (!line.starts_with(kRequestMagic) || line.substr(kRequestMagic.size(), 1) != " ") {
    problem = "not a tlsp-queue/1 request";
    return std::nullopt;
  }
  line.remove_prefix(kRequestMagic.size() + 1);
  size_t sp = line.find(' ');
  std::string_view name = line.substr(0, sp);
  std::string_view arg = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  if (sp != std::string_view::npos && arg.empty()) {
    problem = "empty argument";
    return std::nullopt;
  }
  for (const OpName& o : kOps) {
    if (o.name != name) continue;
    auto checked = checked_argument(o, arg, problem);
    if (!checked) return std::nullopt;
    // The normal form only: what format_queue_request() writes.
    if (*checked != arg) {
      problem = "the argument is not in its normal form";
      return std::nullopt;
    }
    return QueueRequest{o.op, std::move(*checked), {}};
  }
  problem = "unknown operation";
  return std::nullopt;
}

// ------------------------------------------------------------ replies

std::string format_queue_reply(const QueueReply& r) {
  std::string t = r.ok ? "ok\n" : "error " + escape_value(r.error) + "\n";
  t += "changed " + std::to_string(r.changed) + "\n";
  for (const QueueEntryStatus& e : r.entries) t += format_entry(e) + "\n";
  for (const std::string& h : r.headers) t += "header " + escape_value(h) + "\n";
  if (r.headers_cut) t += "headers-cut\n";
  if (r.body_bytes) t += "body-bytes " + std::to_string(r.body_bytes) + "\n";
  for (const std::string& n : r.notes) t += "note " + escape_value(n) + "\n";
  for (const TlsrptSendEvent& e : r.tlsrpt)
    t += "tlsrpt result=" + escape_value(e.result) + " day=" + escape_value(e.day) + " domain=" +
         escape_value(e.domain) + " report-id=" + escape_value(e.report_id) + " uri=" + escape_value(e.uri) +
         " queue-id=" + escape_value(e.queue_id_report) + " detail=" + escape_value(e.detail) +
         " error=" + escape_value(e.error) + " failed=" + (e.failed ? "1" : "0") + "\n";
  return t + "end\n";
}

bool parse_queue_reply(std::string_view text, QueueReply& out, std::string& problem) {
  out = QueueReply{};
  if (text.size() > kMaxControlReplyBytes) {
    problem = "reply too long";
    return false;
  }
  size_t pos = 0, line_no = 0;
  bool ended = false, have_changed = false, have_body = false;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      problem = "the reply's last line has no line end";
      return false;
    }
    std::string_view ln = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    auto bad = [&](std::string_view why) {
      problem = "reply line " + std::to_string(line_no) + ": " + std::string(why);
      return false;
    };
    if (ended) return bad("text after `end`");
    if (ln.size() > kMaxControlReplyLineBytes) return bad("line too long");
    size_t sp = ln.find(' ');
    std::string_view key = ln.substr(0, sp);
    std::string_view value = sp == std::string_view::npos ? std::string_view() : ln.substr(sp + 1);
    bool has_value = sp != std::string_view::npos;
    auto text_value = [&](std::string& to) {
      auto v = unescape_value(value);
      if (!has_value || !v) return false;
      to = std::move(*v);
      return true;
    };
    if (line_no == 1) {
      if (key == "ok" && !has_value) continue;
      if (key == "error" && text_value(out.error)) {
        out.ok = false;
        continue;
      }
      return bad("want `ok` or `error TEXT` first");
    }
    if (key == "end" && !has_value) {
      ended = true;
    } else if (key == "changed") {
      auto n = parse_count(value);
      if (have_changed || !n) return bad("bad or repeated `changed`");
      out.changed = static_cast<size_t>(*n);
      have_changed = true;
    } else if (key == "entry") {
      QueueEntryStatus e;
      std::string why;
      if (!has_value || !parse_entry(value, e, why)) return bad(why.empty() ? "empty entry" : why);
      out.entries.push_back(std::move(e));
    } else if (key == "header") {
      std::string h;
      if (!text_value(h)) return bad("bad header");
      out.headers.push_back(std::move(h));
    } else if (key == "headers-cut" && !has_value) {
      out.headers_cut = true;
    } else if (key == "body-bytes") {
      auto n = parse_count(value);
      if (have_body || !n) return bad("bad or repeated `body-bytes`");
      out.body_bytes = *n;
      have_body = true;
    } else if (key == "note") {
      std::string n;
      if (!text_value(n)) return bad("bad note");
      out.notes.push_back(std::move(n));
    } else if (key == "tlsrpt") {
      TlsrptSendEvent e;
      if (!has_value || !parse_tlsrpt_event(value, e)) return bad("bad `tlsrpt` line");
      out.tlsrpt.push_back(std::move(e));
    } else {
      return bad("unknown line");
    }
  }
  if (!ended) {
    problem = "the reply ends before `end`";
    return false;
  }
  return true;
}

// ------------------------------------------------------------ meaning

bool queue_entry_in_domain(const QueueEntry& entry, std::string_view domain) {
  return std::any_of(entry.recipients.begin(), entry.recipients.end(),
                     [&](const std::string& r) { return domain_of_address(r) == domain; });
}

void show_message_headers(std::string_view data, QueueReply& reply) {
  // The header section ends at the first empty line (RFC 5322 §2.1).
  size_t end = data.find("\r\n\r\n");
  size_t header_bytes = end == std::string_view::npos ? data.size() : end + 2;
  size_t body_start = end == std::string_view::npos ? data.size() : end + 4;
  std::string_view h = data.substr(0, std::min(header_bytes, kMaxShownHeaderBytes));
  reply.headers_cut = header_bytes > kMaxShownHeaderBytes;
  size_t pos = 0;
  while (pos < h.size()) {
    size_t nl = h.find("\r\n", pos);
    if (nl == std::string_view::npos) {
      reply.headers.emplace_back(h.substr(pos));  // cut mid-line at the limit
      break;
    }
    reply.headers.emplace_back(h.substr(pos, nl - pos));
    pos = nl + 2;
  }
  reply.body_bytes = data.size() - body_start;
}

bool change_hold(QueueEntry& entry, bool hold, int64_t now, std::string& why) {
  if (entry.held == hold) {
    why = "entry `" + entry.id + "` is " + (hold ? "already held" : "not held");
    return false;
  }
  entry.held = hold;
  if (!hold) entry.next_attempt = now;  // released: due now
  return true;
}

// ------------------------------------------------------------ offline

QueueReply apply_queue_request(Spool& spool, const QueueRequest& request, int64_t now) {
  QueueReply r;
  const std::string& id = request.argument;
  auto entry = [&]() -> std::optional<QueueEntry> {
    if (request.op == QueueOp::list || request.op == QueueOp::flush_domain || request.op == QueueOp::remove_domain ||
        id.empty())
      return std::nullopt;
    return spool.read_entry(id);
  };
  try {
    switch (request.op) {
      case QueueOp::list:
        r.entries = [&] {
          std::vector<QueueEntryStatus> v;
          for (QueueEntry& e : spool.scan(&r.notes)) v.push_back({std::move(e), false});
          return v;
        }();
        return r;
      case QueueOp::show: {
        auto e = entry();
        if (!e) return refused("no queued entry `" + id + "`");
        show_message_headers(spool.read_data(id), r);
        r.entries.push_back({std::move(*e), false});
        return r;
      }
      case QueueOp::flush:
      case QueueOp::flush_domain: {
        if (request.op == QueueOp::flush && !id.empty() && !entry()) return refused("no queued entry `" + id + "`");
        r.notes.push_back(
            "no relay runs on this spool: nothing to do now; the relay tries every entry that is not "
            "held as soon as it starts");
        return r;
      }
      case QueueOp::hold:
      case QueueOp::release: {
        auto e = entry();
        if (!e) return refused("no queued entry `" + id + "`");
        std::string why;
        if (!change_hold(*e, request.op == QueueOp::hold, now, why)) {
          r.notes.push_back(why);
          return r;
        }
        spool.update(*e);
        r.changed = 1;
        return r;
      }
      case QueueOp::remove: {
        if (!entry()) return refused("no queued entry `" + id + "`");
        spool.remove(id);
        r.changed = 1;
        return r;
      }
      case QueueOp::remove_domain: {
        std::vector<std::string> problems;
        for (const QueueEntry& e : spool.scan(&problems)) {
          if (!queue_entry_in_domain(e, request.argument)) continue;
          spool.remove(e.id);
          ++r.changed;
        }
        for (std::string& p : problems) r.notes.push_back(p + " (left alone)");
        return r;
      }
      case QueueOp::tlsrpt_send:
      case QueueOp::tlsrpt_resend:
      case QueueOp::tlsrpt_mail:
        // The store, the resolver and the report are `tlsp tlsrpt send`'s
        // (ask_relay_or_lock()); there is nothing to do on the spool alone.
        return refused("`" + std::string(queue_op_name(request.op)) + "` needs a running relay");
    }
  } catch (const SpoolError& e) {
    QueueReply f = refused(e.what());
    f.changed = r.changed;
    return f;
  }
  return refused("unknown operation");
}

std::string control_socket_path(const std::string& spool_dir) {
  std::string path = spool_dir + "/" + std::string(kControlSocketName);
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    throw SpoolError("the control socket path `" + path + "` is longer than " +
                     std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes: use a shorter spool path");
  return path;
}

QueueReply run_queue_request(const std::string& spool_dir, const QueueRequest& request) {
  std::optional<SpoolLock> lock;
  if (std::optional<QueueReply> reply = ask_relay_or_lock(spool_dir, request, lock)) return std::move(*reply);
  Spool spool(spool_dir);
  return apply_queue_request(spool, request, std::time(nullptr));
}

void act_as_spool_owner(const std::string& spool_dir) {
  try {
    relay::act_as_owner_of(spool_dir);
  } catch (const std::runtime_error& e) {
    throw SpoolError(e.what());
  }
}

std::optional<QueueReply> ask_relay_or_lock(const std::string& spool_dir, const QueueRequest& request,
                                            std::optional<SpoolLock>& lock) {
  act_as_spool_owner(spool_dir);
  const auto deadline = std::chrono::steady_clock::now() + kControlConnectWait;
  while (true) {
    lock = SpoolLock::try_acquire(spool_dir);
    if (lock) return std::nullopt;
    const std::string path = control_socket_path(spool_dir);
    // Locked: a relay runs (or is starting: its socket comes up once it has
    // recovered the spool), or another command holds it for a moment.
    int fd = connect_control(path);
    if (fd >= 0) return ask_relay(fd, request, path);
    if (std::chrono::steady_clock::now() >= deadline)
      throw SpoolError("the spool `" + spool_dir + "` is locked (a relay runs?) but nobody answers on `" + path + "`");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace tlsp
