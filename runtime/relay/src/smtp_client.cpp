// smtp_client.cpp — the relay's SMTP client session (smtp_client.h):
// reading replies, opening a connection up to the point where MAIL may be
// sent, and one mail transaction.
#include "smtp_client.h"

#include <algorithm>
#include <cctype>

#include "relay_context.h"

namespace tlsp::relay {
namespace {

// A hostile or broken peer cannot make us hold more than this of one reply.
constexpr size_t kMaxReplyLines = 100;
constexpr size_t kMaxReplyLine = 2048;

// A reply that covers every recipient of `list`: a 5xx fails them (they
// leave `pending`), anything else is a temporary failure for all.
void settle(Transaction& t, std::vector<std::string> list, const Reply& r, const std::string& mx) {
  std::string text = (r.code ? r.text : r.problem) + " (from " + mx + ")";
  if (r.code / 100 == 5) {
    for (const std::string& a : list) {
      t.failed.push_back({a, text});
      std::erase(t.pending, a);
    }
  } else {
    t.temporary = text;
  }
}

}  // namespace

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

Observation SmtpClient::open(const std::string& address, uint16_t port, TlsMode mode,
                             const TlsClientParams& params) const {
  const auto begin = std::chrono::steady_clock::now();
  Observation o = open_session(address, port, mode, params, begin);
  const auto total = std::chrono::steady_clock::now() - begin;
  if (o.tls_attempted)
    o.tls_time = total - o.connect_time;
  else
    o.connect_time = total;
  return o;
}

Observation SmtpClient::open_session(const std::string& address, uint16_t port, TlsMode mode,
                                     const TlsClientParams& params,
                                     std::chrono::steady_clock::time_point begin) const {
  Observation o;
  o.address = address;
  std::string error;
  int fd = connect_tcp(address, port, limits_.connect_timeout, error);
  if (fd < 0) {
    o.problem = "connect: " + error;
    return o;
  }
  Stream s(fd);
  const auto cmd_timeout = command_timeout();
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
    o.connect_time = std::chrono::steady_clock::now() - begin;
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

Reply SmtpClient::ehlo_or_helo(Stream& s, Observation& o) const {
  const auto t = command_timeout();
  Reply r = command(s, "EHLO " + helo_name_, t);
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
    return command(s, "HELO " + helo_name_, t);
  }
  return r;
}

Transaction SmtpClient::send(Observation& o, const OutgoingMessage& message,
                             const std::vector<std::string>& recipients, const std::string& mx,
                             bool keep_open) const {
  Transaction out;
  out.offered = recipients;
  out.pending = recipients;
  Stream& s = *o.stream;
  const auto t = command_timeout();
  std::string mail = "MAIL FROM:<" + std::string(message.mail_from) + ">";
  if (o.size_ext) mail += " SIZE=" + std::to_string(message.data.size());
  if (message.body_8bit && o.eightbitmime) mail += " BODY=8BITMIME";
  Reply r = command(s, mail, t);
  if (r.code / 100 != 2) {
    settle(out, out.pending, r, mx);
    command(s, "QUIT", t);
    out.smtp = r.code ? r.text : r.problem;
    return out;
  }
  std::vector<std::string> accepted;
  std::vector<std::string> still;
  for (size_t i = 0; i < recipients.size(); ++i) {
    const std::string& rcpt = recipients[i];
    Reply rr = command(s, "RCPT TO:<" + rcpt + ">", t);
    if (rr.code / 100 == 2) {
      accepted.push_back(rcpt);
    } else if (rr.code / 100 == 5) {
      out.failed.push_back({rcpt, rr.text + " (from " + mx + ")"});
    } else {
      still.push_back(rcpt);
      out.temporary = rcpt + ": " + (rr.code ? rr.text : rr.problem) + " (from " + mx + ")";
    }
    if (rr.code == 0) {
      // The session broke: the recipients not yet tried stay pending
      // too, or the entry would leave the queue without them.
      still.insert(still.end(), recipients.begin() + static_cast<std::ptrdiff_t>(i) + 1, recipients.end());
      break;
    }
  }
  if (accepted.empty()) {
    out.pending = still;
    command(s, "QUIT", t);
    out.smtp = "no recipient accepted";
    return out;
  }
  Reply d = command(s, "DATA", t);
  if (d.code != 354) {
    out.pending = still;
    out.pending.insert(out.pending.end(), accepted.begin(), accepted.end());
    settle(out, accepted, d, mx);
    command(s, "QUIT", t);
    out.smtp = d.code ? d.text : d.problem;
    return out;
  }
  const std::string_view data = message.data;
  std::string wire;
  wire.reserve(data.size() + data.size() / 64 + 8);
  size_t pos = 0;
  while (pos < data.size()) {
    size_t eol = data.find('\n', pos);
    size_t end = eol == std::string_view::npos ? data.size() : eol + 1;
    if (data[pos] == '.') wire.push_back('.');  // RFC 5321 §4.5.2
    wire.append(data, pos, end - pos);
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
  out.pending = still;
  if (fin.code / 100 == 2) {
    out.delivered = accepted;
    if (keep_open && still.empty())
      out.kept_open = true;  // the caller caches the session
    else
      command(s, "QUIT", t);
  } else {
    out.pending.insert(out.pending.end(), accepted.begin(), accepted.end());
    settle(out, accepted, fin, mx);
  }
  out.smtp = fin.code ? fin.text : fin.problem;
  return out;
}

}  // namespace tlsp::relay
