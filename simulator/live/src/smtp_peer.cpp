// smtp_peer.cpp — scripted SMTP peers for live tests (tlsp/sim/smtp_peer.h):
// SmtpPeer, a thread-per-connection SMTP server, and submit_message(), a
// sending client. Both talk through tlsp::Stream and the relay's own TLS
// code (tlsp/tls.h), so a test exercises the same handshakes the relay
// does.
//
// The server is deliberately simple and strict: one reply per command,
// written as soon as the command is read (which is all PIPELINING asks of
// a server), commands in the order RFC 5321 §4.1.4 allows, and a scripted
// answer wherever a test wants a failure.
#include "tlsp/sim/smtp_peer.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <functional>
#include <iterator>
#include <stdexcept>

#include "tlsp/stream.h"

namespace tlsp::sim {
namespace {

using Clock = std::chrono::steady_clock;

// The bytes of a ClientHello read before a broken_tls peer hangs up (the
// TLS record header is five).
constexpr size_t kBrokenTlsReadBytes = 5;
// The listen backlog: tests open a handful of connections at once, the
// benchmark a few dozen.
constexpr int kListenBacklog = 128;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// The reply code at the start of a scripted reply (0 when there is none).
int code_of(const std::string& reply) {
  if (reply.size() < 3) return 0;
  int code = 0;
  for (size_t i = 0; i < 3; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(reply[i]))) return 0;
    code = code * 10 + (reply[i] - '0');
  }
  return code;
}

bool positive(int code) {
  return code >= 200 && code < 300;
}

// `<addr>` from "FROM:<addr> params" / "TO:<addr> params" (case-insensitive
// keyword, optional space after the colon, RFC 5321 §4.1.2 paths). Returns
// false when the argument is not of that shape.
bool parse_path(const std::string& arg, const std::string& keyword, std::string& address) {
  if (arg.size() < keyword.size() || upper(arg.substr(0, keyword.size())) != keyword) return false;
  size_t i = keyword.size();
  while (i < arg.size() && arg[i] == ' ') ++i;
  if (i >= arg.size() || arg[i] != '<') return false;
  size_t close = arg.find('>', i);
  if (close == std::string::npos) return false;
  address = arg.substr(i + 1, close - i - 1);
  return true;
}

// RFC 5321 §4.5.2: a leading dot is doubled on the wire; lines end CR LF.
std::string dot_stuff(const std::string& data) {
  std::string out;
  out.reserve(data.size() + data.size() / 32 + 8);
  size_t pos = 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    size_t end = nl == std::string::npos ? data.size() : nl;
    size_t text_end = end > pos && data[end - 1] == '\r' ? end - 1 : end;
    if (text_end > pos && data[pos] == '.') out += '.';
    out.append(data, pos, text_end - pos);
    out += "\r\n";
    pos = nl == std::string::npos ? data.size() : nl + 1;
  }
  out += ".\r\n";
  return out;
}

TlsVersion lowest_version(TlsVersionSet set) {
  for (TlsVersion v : {TlsVersion::tls1_0, TlsVersion::tls1_1, TlsVersion::tls1_2, TlsVersion::tls1_3})
    if (set & version_bit(v)) return v;
  return TlsVersion::none;
}

}  // namespace

// ================================================================= server

struct SmtpPeer::Connection {
  std::thread thread;
  int fd = -1;  // -1 once the session is closing its socket (guarded by mutex_)
  bool done = false;
};

namespace {

// One SMTP session on the server side.
class ServerSession {
 public:
  ServerSession(const SmtpPeerConfig& config, SSL_CTX* tls_ctx, Stream& stream, PeerSession& record,
                std::function<void(PeerMessage)> deliver)
      : config_(config), tls_ctx_(tls_ctx), s_(stream), rec_(record), deliver_(std::move(deliver)) {}

  void run() {
    rec_.client_address = s_.peer_address();
    if (!config_.greeting.empty()) {
      // RFC 5321 §3.1: a 554 (or 421) greeting, then only QUIT makes sense;
      // the peer simply hangs up after it.
      if (!reply(config_.greeting) || !positive(code_of(config_.greeting))) return;
    } else if (!reply("220 " + config_.hostname + " ESMTP tlsp test peer")) {
      return;
    }
    std::string line;
    while (true) {
      IoStatus st = s_.read_line(line, config_.max_line_length);
      if (st == IoStatus::too_long) {
        if (!reply("500 5.5.2 line too long")) return;
        continue;
      }
      if (st != IoStatus::ok) return;
      const size_t space = line.find(' ');
      const std::string verb = upper(line.substr(0, space));
      const std::string arg = space == std::string::npos ? "" : line.substr(space + 1);
      if (rec_.commands.size() < kPeerMaxRecordedCommands) rec_.commands.push_back(verb);
      if (!dispatch(verb, arg)) return;
    }
  }

 private:
  bool reply(const std::string& text) { return s_.write_all(text + "\r\n") == IoStatus::ok; }

  void reset_transaction() {
    in_transaction_ = false;
    mail_from_.clear();
    rcpts_.clear();
  }

  bool tls_required_now() { return config_.require_tls && !s_.is_tls(); }

  // Returns false when the session is over.
  bool dispatch(const std::string& verb, const std::string& arg) {
    if (verb == "EHLO" || verb == "HELO") {
      if (arg.empty()) return reply("501 5.5.4 " + verb + " needs a domain");
      reset_transaction();
      greeted_ = true;
      rec_.ehlo = arg;
      if (verb == "HELO") return reply("250 " + config_.hostname);
      std::string r = "250-" + config_.hostname + " greets " + arg + "\r\n250-PIPELINING\r\n250-SIZE " +
                      std::to_string(config_.max_message_bytes) + "\r\n250-8BITMIME\r\n";
      if (config_.offer_starttls && !s_.is_tls()) r += "250-STARTTLS\r\n";
      r += "250 ENHANCEDSTATUSCODES";
      return reply(r);
    }
    if (verb == "STARTTLS") return starttls(arg);
    if (verb == "NOOP") return reply("250 2.0.0 ok");
    if (verb == "RSET") {
      reset_transaction();
      return reply("250 2.0.0 ok");
    }
    if (verb == "QUIT") {
      reply("221 2.0.0 " + config_.hostname + " closing connection");
      return false;
    }
    if (verb == "VRFY") return reply("252 2.1.5 cannot verify, but will accept");
    if (verb == "MAIL") return mail(arg);
    if (verb == "RCPT") return rcpt(arg);
    if (verb == "DATA") return data();
    return reply("500 5.5.1 command not recognized");
  }

  bool starttls(const std::string& arg) {
    if (!arg.empty()) return reply("501 5.5.4 STARTTLS takes no argument");
    if (!config_.offer_starttls || s_.is_tls()) return reply("503 5.5.1 STARTTLS not available now");
    if (!greeted_) return reply("503 5.5.1 EHLO first");
    if (!reply("220 2.0.0 ready to start TLS")) return false;
    rec_.starttls = true;
    if (config_.broken_tls) {
      std::string hello;
      s_.read_some(hello, kBrokenTlsReadBytes);
      rec_.tls_error = "broken_tls: closed after the ClientHello";
      return false;
    }
    // RFC 3207 §4.1: commands pipelined after STARTTLS were sent in the
    // clear and must not be acted on.
    s_.discard_buffer();
    TlsServerResult r = s_.start_tls_server(tls_ctx_);
    if (!r.ok) {
      rec_.tls_error = r.error;
      return false;
    }
    rec_.tls = r.version;
    rec_.cipher = r.cipher;
    rec_.sni = r.sni;
    // RFC 3207 §4.2: back to the state after the greeting.
    reset_transaction();
    greeted_ = false;
    rec_.ehlo.clear();
    return true;
  }

  bool mail(const std::string& arg) {
    if (tls_required_now()) return reply("530 5.7.0 must issue a STARTTLS command first");
    if (!greeted_) return reply("503 5.5.1 EHLO or HELO first");
    if (in_transaction_) return reply("503 5.5.1 nested MAIL command");
    std::string from;
    if (!parse_path(arg, "FROM:", from)) return reply("501 5.5.4 syntax: MAIL FROM:<address>");
    if (!config_.mail_reply.empty()) {
      if (!reply(config_.mail_reply)) return false;
      if (!positive(code_of(config_.mail_reply))) return true;
    } else if (!reply("250 2.1.0 sender ok")) {
      return false;
    }
    in_transaction_ = true;
    mail_from_ = from;
    return true;
  }

  bool rcpt(const std::string& arg) {
    if (tls_required_now()) return reply("530 5.7.0 must issue a STARTTLS command first");
    if (!in_transaction_) return reply("503 5.5.1 MAIL first");
    std::string to;
    if (!parse_path(arg, "TO:", to)) return reply("501 5.5.4 syntax: RCPT TO:<address>");
    if (rcpts_.size() >= config_.max_recipients) return reply("452 4.5.3 too many recipients");
    std::string scripted = config_.rcpt_reply;
    if (auto it = config_.rcpt_replies.find(lower(to)); it != config_.rcpt_replies.end()) scripted = it->second;
    if (scripted == kPeerCloseScript) return false;
    if (!scripted.empty()) {
      if (!reply(scripted)) return false;
      if (positive(code_of(scripted))) rcpts_.push_back(to);
      return true;
    }
    rcpts_.push_back(to);
    return reply("250 2.1.5 recipient ok");
  }

  bool data() {
    if (tls_required_now()) return reply("530 5.7.0 must issue a STARTTLS command first");
    if (!in_transaction_) return reply("503 5.5.1 MAIL first");
    if (rcpts_.empty()) return reply("554 5.5.1 no valid recipients");
    if (!config_.data_reply.empty()) {
      if (!reply(config_.data_reply)) return false;
      if (code_of(config_.data_reply) != 354) {
        reset_transaction();
        return true;
      }
    } else if (!reply("354 end data with <CR><LF>.<CR><LF>")) {
      return false;
    }

    std::string body, line;
    bool too_long = false, too_big = false;
    while (true) {
      IoStatus st = s_.read_line(line, config_.max_line_length);
      if (st == IoStatus::too_long) {
        too_long = true;
        continue;
      }
      if (st != IoStatus::ok) return false;
      if (line == ".") break;
      if (!line.empty() && line[0] == '.') line.erase(0, 1);
      if (body.size() + line.size() + 2 > config_.max_message_bytes) too_big = true;
      if (!too_big) {
        body += line;
        body += "\r\n";
      }
    }
    PeerMessage m{mail_from_, rcpts_, std::move(body), rec_.tls, rec_.sni, rec_.client_address, rec_.ehlo};
    reset_transaction();
    if (too_long) return reply("500 5.5.2 line too long");
    if (too_big) return reply("552 5.3.4 message exceeds the size limit");
    const std::string& end = config_.data_end_reply;
    if (!end.empty() && !positive(code_of(end))) return reply(end);
    // Recorded before the reply goes out: a client that has seen 250 can
    // count on the message being there.
    ++rec_.messages;
    deliver_(std::move(m));
    return reply(end.empty() ? "250 2.0.0 ok: queued" : end);
  }

  const SmtpPeerConfig& config_;
  SSL_CTX* tls_ctx_;
  Stream& s_;
  PeerSession& rec_;
  std::function<void(PeerMessage)> deliver_;
  bool greeted_ = false;
  bool in_transaction_ = false;
  std::string mail_from_;
  std::vector<std::string> rcpts_;
};

}  // namespace

SmtpPeer::SmtpPeer(SmtpPeerConfig config) : config_(std::move(config)) {
  if (config_.offer_starttls && !config_.broken_tls) {
    if (config_.cert_file.empty() || config_.key_file.empty())
      throw std::runtime_error("smtp peer `" + config_.hostname + "` offers STARTTLS but has no certificate");
    tls_ctx_ = make_server_context(config_.cert_file, config_.key_file, config_.tls_versions);
  }
  std::string error;
  listen_fd_ = listen_tcp(config_.address, config_.port, kListenBacklog, error);
  if (listen_fd_ < 0) throw std::runtime_error("smtp peer: " + error);
  port_ = bound_port(listen_fd_);
  if (pipe2(wake_pipe_, O_CLOEXEC) != 0) {
    close(listen_fd_);
    throw std::runtime_error("smtp peer: cannot make a pipe");
  }
  acceptor_ = std::thread([this] { accept_loop(); });
}

SmtpPeer::~SmtpPeer() {
  stop();
}

void SmtpPeer::accept_loop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    int rc = poll(fds, 2, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || (fds[1].revents & POLLIN) != 0) return;
    reap_finished();
    if ((fds[0].revents & POLLIN) == 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard lock(mutex_);
    if (stopping_) {
      close(fd);
      return;
    }
    auto conn = std::make_unique<Connection>();
    Connection* c = conn.get();
    c->fd = fd;
    c->thread = std::thread([this, fd, c] { serve(fd, c); });
    connections_.push_back(std::move(conn));
  }
}

void SmtpPeer::serve(int fd, Connection* self) {
  PeerSession session;
  {
    Stream s(fd);
    s.set_timeout(config_.timeout);
    ServerSession run(config_, tls_ctx_.get(), s, session, [this](PeerMessage m) { record(std::move(m)); });
    run.run();
    std::lock_guard lock(mutex_);
    self->fd = -1;  // stop() must not shut down a descriptor about to be reused
  }
  record(std::move(session));
  std::lock_guard lock(mutex_);
  self->done = true;
}

void SmtpPeer::reap_finished() {
  std::vector<std::unique_ptr<Connection>> finished;
  {
    std::lock_guard lock(mutex_);
    auto split = std::stable_partition(connections_.begin(), connections_.end(),
                                       [](const std::unique_ptr<Connection>& c) { return !c->done; });
    std::move(split, connections_.end(), std::back_inserter(finished));
    connections_.erase(split, connections_.end());
  }
  for (auto& c : finished) c->thread.join();
}

void SmtpPeer::record(PeerSession session) {
  std::lock_guard lock(mutex_);
  sessions_.push_back(std::move(session));
  changed_.notify_all();
}

void SmtpPeer::record(PeerMessage message) {
  std::lock_guard lock(mutex_);
  messages_.push_back(std::move(message));
  changed_.notify_all();
}

bool SmtpPeer::wait_for_messages(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return messages_.size() >= n; });
}

bool SmtpPeer::wait_for_sessions(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return sessions_.size() >= n; });
}

std::vector<PeerMessage> SmtpPeer::messages() const {
  std::lock_guard lock(mutex_);
  return messages_;
}

std::vector<PeerSession> SmtpPeer::sessions() const {
  std::lock_guard lock(mutex_);
  return sessions_;
}

void SmtpPeer::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (acceptor_.joinable()) {
    const char byte = 0;
    [[maybe_unused]] ssize_t n = write(wake_pipe_[1], &byte, 1);
    acceptor_.join();
  }
  std::vector<std::unique_ptr<Connection>> all;
  {
    std::lock_guard lock(mutex_);
    // A session waiting for its client wakes with eof.
    for (auto& c : connections_)
      if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
    all.swap(connections_);
  }
  for (auto& c : all) c->thread.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  for (int& fd : wake_pipe_)
    if (fd >= 0) close(fd), fd = -1;
  listen_fd_ = -1;
}

// ================================================================= client

std::string_view to_string(SubmitStage s) {
  switch (s) {
    case SubmitStage::none:
      return "none";
    case SubmitStage::connect:
      return "connect";
    case SubmitStage::greeting:
      return "greeting";
    case SubmitStage::ehlo:
      return "ehlo";
    case SubmitStage::starttls:
      return "starttls";
    case SubmitStage::mail:
      return "mail";
    case SubmitStage::rcpt:
      return "rcpt";
    case SubmitStage::data:
      return "data";
  }
  return "none";
}

namespace {

class SubmitClient {
 public:
  SubmitClient(const SubmitOptions& o, std::vector<SubmitResult>& results) : o_(o), results_(results) {}

  void run(const std::vector<SubmitMessage>& messages) {
    std::string error;
    int fd = connect_tcp(o_.address, o_.port, o_.timeout, error, o_.source_address);
    if (fd < 0) return fail_rest(0, SubmitStage::connect, error);
    stream_ = std::make_unique<Stream>(fd);
    stream_->set_timeout(o_.timeout);

    if (!command("", SubmitStage::greeting, 0)) return;
    if (code_ != 220) return fail_rest(0, SubmitStage::greeting, "");
    if (!ehlo()) return;
    if (o_.starttls) {
      if (!offers_starttls_) return fail_rest(0, SubmitStage::starttls, "the server does not offer STARTTLS");
      if (!command("STARTTLS", SubmitStage::starttls, 0)) return;
      if (code_ != 220) return fail_rest(0, SubmitStage::starttls, "");
      TlsClientParams p;
      p.sni = o_.sni;
      p.offer_versions = o_.tls_versions;
      p.min_version = lowest_version(o_.tls_versions);
      p.legacy_security_level = p.min_version != TlsVersion::none && p.min_version < TlsVersion::tls1_2;
      p.timeout = o_.timeout;
      TlsClientResult r = stream_->start_tls_client(p);
      if (!r.ok) {
        for (auto& res : results_) res.version_refused = r.version_refused;
        return fail_rest(0, SubmitStage::starttls, r.error);
      }
      tls_ = r.version;
      for (auto& res : results_) res.tls = tls_;
      if (!ehlo()) return;
    }
    for (size_t i = 0; i < messages.size(); ++i)
      if (!send(i, messages[i])) return;
    command("QUIT", SubmitStage::none, messages.size());
  }

 private:
  // Sends `line` (none for the greeting) and reads the reply into code_ and
  // reply_. False (with every result from `index` on failed at `stage`)
  // when the connection failed.
  bool command(const std::string& line, SubmitStage stage, size_t index) {
    if (!line.empty() && stream_->write_all(line + "\r\n") != IoStatus::ok)
      return fail_rest(index, stage, "cannot send " + line.substr(0, line.find(' '))), false;
    return read_reply(stage, index);
  }

  bool read_reply(SubmitStage stage, size_t index) {
    code_ = 0;
    reply_.clear();
    lines_.clear();
    std::string line;
    for (size_t n = 0; n < kPeerMaxReplyLines; ++n) {
      IoStatus st = stream_->read_line(line, kPeerMaxLineLength);
      if (st != IoStatus::ok) {
        fail_rest(index, stage, "reading the reply: " + std::string(to_string(st)));
        return false;
      }
      int code = code_of(line);
      if (code == 0 || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
        fail_rest(index, stage, "malformed reply `" + line + "`");
        return false;
      }
      code_ = code;
      lines_.push_back(line.size() > 4 ? line.substr(4) : "");
      reply_ += (reply_.empty() ? "" : "\n") + line;
      if (line.size() == 3 || line[3] == ' ') return true;
    }
    fail_rest(index, stage, "a reply of more than " + std::to_string(kPeerMaxReplyLines) + " lines");
    return false;
  }

  bool ehlo() {
    if (!command("EHLO " + o_.ehlo_name, SubmitStage::ehlo, 0)) return false;
    if (code_ != 250) return fail_rest(0, SubmitStage::ehlo, ""), false;
    offers_starttls_ = false;
    for (const std::string& l : lines_)
      if (upper(l) == "STARTTLS") offers_starttls_ = true;
    return true;
  }

  // One transaction; false when the connection is gone.
  bool send(size_t i, const SubmitMessage& m) {
    SubmitResult& r = results_[i];
    last_refusal_ = {0, ""};
    auto refused = [&](SubmitStage stage) {
      r.failed_stage = stage;
      r.code = code_;
      r.reply = reply_;
      return command("RSET", stage, i + 1);
    };
    if (!command("MAIL FROM:<" + m.mail_from + ">", SubmitStage::mail, i)) return false;
    if (!positive(code_)) return refused(SubmitStage::mail);
    bool any = false;
    for (const std::string& rcpt : m.rcpts) {
      if (!command("RCPT TO:<" + rcpt + ">", SubmitStage::rcpt, i)) return false;
      r.rcpt_codes.push_back(code_);
      any = any || positive(code_);
      last_refusal_ = positive(code_) ? last_refusal_ : std::make_pair(code_, reply_);
    }
    if (!any) {
      code_ = last_refusal_.first;
      reply_ = last_refusal_.second;
      return refused(SubmitStage::rcpt);
    }
    if (!command("DATA", SubmitStage::data, i)) return false;
    if (code_ != 354) return refused(SubmitStage::data);
    if (stream_->write_all(dot_stuff(m.data)) != IoStatus::ok) {
      fail_rest(i, SubmitStage::data, "cannot send the message");
      return false;
    }
    if (!read_reply(SubmitStage::data, i)) return false;
    r.code = code_;
    r.reply = reply_;
    r.accepted = positive(code_);
    if (!r.accepted) r.failed_stage = SubmitStage::data;
    return true;
  }

  // Fails every result from `index` on (results before it are final).
  void fail_rest(size_t index, SubmitStage stage, const std::string& error) {
    for (size_t i = index; i < results_.size(); ++i) {
      SubmitResult& r = results_[i];
      if (stage == SubmitStage::none) continue;  // QUIT: the messages are done
      r.accepted = false;
      r.failed_stage = stage;
      r.code = code_;
      r.reply = reply_;
      r.error = error;
    }
  }

  const SubmitOptions& o_;
  std::vector<SubmitResult>& results_;
  std::unique_ptr<Stream> stream_;
  int code_ = 0;
  std::string reply_;
  std::vector<std::string> lines_;
  std::pair<int, std::string> last_refusal_{0, ""};
  bool offers_starttls_ = false;
  TlsVersion tls_ = TlsVersion::none;
};

}  // namespace

std::vector<SubmitResult> submit_messages(const SubmitOptions& options, const std::vector<SubmitMessage>& messages) {
  std::vector<SubmitResult> results(messages.size());
  SubmitClient client(options, results);
  client.run(messages);
  return results;
}

SubmitResult submit_message(const SubmitOptions& options) {
  return submit_messages(options, {options.message}).front();
}

}  // namespace tlsp::sim
