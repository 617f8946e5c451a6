// control_socket.cpp — the relay's control socket (control_socket.h): the
// listening socket, the peer check, one request per connection with its
// bounds, and what each request does to the running relay: the in-memory
// queue (DeliveryQueue) and the spool change together, the entry claimed
// from the schedule meanwhile so no attempt starts.
#include "control_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "tlsp/tlsrpt_report.h"
#include "tlsp/tlsrpt_send.h"

namespace tlsp::relay {

ControlSocket::ControlSocket(std::shared_ptr<RelayContext> ctx, std::shared_ptr<DeliveryQueue> queue,
                             std::shared_ptr<TlsrptJob> tlsrpt)
    : ctx_(std::move(ctx)),
      queue_(std::move(queue)),
      tlsrpt_(std::move(tlsrpt)),
      path_(control_socket_path(ctx_->spool->directory())) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path_.data(), path_.size());
  ::unlink(path_.c_str());  // a socket left by a relay that died; we hold the lock
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) throw SpoolError("socket: " + std::string(std::strerror(errno)));
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::chmod(path_.c_str(), 0600) != 0 ||
      ::listen(fd_, 16) != 0) {
    int e = errno;
    ::close(fd_);
    fd_ = -1;
    throw SpoolError("cannot listen on `" + path_ + "`: " + std::strerror(e));
  }
}

ControlSocket::~ControlSocket() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
}

void ControlSocket::serve() {
  while (!ctx_->stopping) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0 || ctx_->stopping) continue;
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    try {
      handle(fd);
    } catch (const std::exception& e) {  // one request's failure must not end the relay
      ctx_->log->write(LogEvent::error, {{"where", "control socket"}, {"error", e.what()}});
    }
    ::close(fd);
  }
}

namespace {

// Writes all of `text` within `deadline`; false when the peer went away
// or was too slow.
bool send_all(int fd, std::string_view text, std::chrono::steady_clock::time_point deadline) {
  while (!text.empty()) {
    ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    if (n > 0) {
      text.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLOUT, 0};
    ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
  }
  return true;
}

QueueReply refusal(std::string why) {
  QueueReply r;
  r.ok = false;
  r.error = std::move(why);
  return r;
}

}  // namespace

void ControlSocket::handle(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return;
  const std::string who = "uid " + std::to_string(cred.uid) + " pid " + std::to_string(cred.pid);
  auto log_refusal = [&](const std::string& why) {
    ctx_->log->write(LogEvent::spool, {{"client", who}, {"result", "control-refused"}, {"detail", why}});
  };
  // One line, at most kMaxControlRequestBytes, within kControlRequestTimeout;
  // a tlsrpt-mail request's payload follows it, exactly as many bytes as
  // the line says (at most kMaxControlPayloadBytes), within the same time.
  // Read before anything is answered, also a refusal: closing a socket
  // with unread bytes resets it, and the client would not see the reply.
  const auto deadline = std::chrono::steady_clock::now() + kControlRequestTimeout;
  std::string in;
  std::string problem;
  std::optional<QueueRequest> request;
  size_t line_end = std::string::npos;  // the request line's LF
  size_t want = 0;                      // the whole request's bytes, once the line is read
  std::vector<char> buf(65536);
  while (true) {
    if (line_end == std::string::npos) {
      line_end = in.find('\n');
      if (line_end == std::string::npos && in.size() > kMaxControlRequestBytes) {
        problem = "request longer than " + std::to_string(kMaxControlRequestBytes) + " bytes";
        break;
      }
      if (line_end != std::string::npos) {
        request = parse_queue_request(std::string_view(in).substr(0, line_end + 1), problem);
        if (!request) break;
        want = line_end + 1 + queue_request_payload_bytes(*request);
      }
    }
    if (line_end != std::string::npos && in.size() >= want) {
      if (in.size() > want) {
        request.reset();
        problem = want == line_end + 1 ? "want exactly one request line" : "more bytes than the payload size";
      }
      break;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      log_refusal("no whole request within " + std::to_string(kControlRequestTimeout.count()) + "s");
      return;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000))) <= 0) continue;
    const size_t room = line_end == std::string::npos ? kMaxControlRequestBytes + 1 - std::min(in.size(), kMaxControlRequestBytes)
                                                      : std::max<size_t>(1, want - std::min(want, in.size()));
    ssize_t n = ::recv(fd, buf.data(), std::min(buf.size(), room + 1), 0);
    if (n == 0) {
      if (!request && problem.empty()) problem = "want exactly one request line";
      else if (request && in.size() < want) { request.reset(); problem = "the payload ends early"; }
      break;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return;
    }
    in.append(buf.data(), static_cast<size_t>(n));
  }
  if (cred.uid != 0 && cred.uid != ::geteuid()) {
    log_refusal("not root or the relay's user");
    send_all(fd, format_queue_reply(refusal("permission denied: only root and the relay's user may change its queue")),
             std::chrono::steady_clock::now() + kControlRequestTimeout);
    return;
  }
  QueueReply reply;
  if (!request) {
    log_refusal(problem);
    reply = refusal("bad request: " + problem);
  } else {
    if (request->op == QueueOp::tlsrpt_mail) request->payload = in.substr(line_end + 1);
    reply = apply(*request, who);
  }
  send_all(fd, format_queue_reply(reply), std::chrono::steady_clock::now() + std::chrono::seconds(30));
}

QueueReply ControlSocket::apply(const QueueRequest& request, const std::string& who) {
  const int64_t now = std::time(nullptr);
  const std::string& id = request.argument;
  const std::string by = "tlsp queue " + std::string(queue_op_name(request.op)) + " (" + who + ")";
  auto logged = [&](const std::string& entry_id, const char* result) {
    ctx_->log->write(LogEvent::queue, {{"queue_id", entry_id}, {"result", result}, {"reason", by}});
  };
  QueueReply r;
  switch (request.op) {
    case QueueOp::list:
      r.entries = queue_->snapshot();
      return r;
    case QueueOp::show: {
      auto e = queue_->find(id);
      if (!e) return refusal("no queued entry `" + id + "`");
      try {
        show_message_headers(ctx_->spool->read_data(id), r);
      } catch (const SpoolError& err) {
        return refusal(err.what());
      }
      r.entries.push_back(std::move(*e));
      return r;
    }
    case QueueOp::flush:
    case QueueOp::flush_domain: {
      if (request.op == QueueOp::flush && !id.empty() && !queue_->find(id))
        return refusal("no queued entry `" + id + "`");
      auto match = [&](const QueueEntry& e) {
        if (request.op == QueueOp::flush_domain) return queue_entry_in_domain(e, id);
        return id.empty() || e.id == id;
      };
      r.changed = queue_->make_due(match, now, r.notes);
      if (r.changed)
        ctx_->log->write(LogEvent::queue,
                         {{"result", "flushed"}, {"pending", std::to_string(r.changed)}, {"reason", by}});
      return r;
    }
    case QueueOp::hold:
    case QueueOp::release: {
      std::string why;
      std::optional<QueueEntry> e = queue_->claim(id, why);
      if (!e) return refusal(why);
      QueueEntry changed = *e;
      if (!change_hold(changed, request.op == QueueOp::hold, now, why)) {
        queue_->unclaim(id, std::move(e));
        r.notes.push_back(why);
        return r;
      }
      try {
        ctx_->spool->update(changed);
      } catch (const SpoolError& err) {
        queue_->unclaim(id, std::move(e));
        return refusal(err.what());
      }
      queue_->unclaim(id, std::move(changed));
      logged(id, request.op == QueueOp::hold ? "held" : "released");
      r.changed = 1;
      return r;
    }
    case QueueOp::remove:
    case QueueOp::remove_domain: {
      std::vector<std::string> ids;
      if (request.op == QueueOp::remove) {
        ids.push_back(id);
      } else {
        for (const QueueEntryStatus& s : queue_->snapshot())
          if (queue_entry_in_domain(s.entry, id)) ids.push_back(s.entry.id);
      }
      for (const std::string& target : ids) {
        if (ctx_->stopping) {  // the shutdown must not wait for a long delete
          r.notes.push_back("the relay is stopping: " + std::to_string(ids.size() - r.changed) +
                            " entries not deleted");
          break;
        }
        std::string why;
        std::optional<QueueEntry> e = queue_->claim(target, why);
        if (!e) {
          if (request.op == QueueOp::remove) return refusal(why);
          r.notes.push_back(why);
          continue;
        }
        try {
          ctx_->spool->remove(target);  // no bounce: the operator's decision (postsuper -d)
        } catch (const SpoolError& err) {
          queue_->unclaim(target, std::move(e));
          QueueReply f = refusal(err.what());
          f.changed = r.changed;
          return f;
        }
        queue_->unclaim(target, std::nullopt);
        logged(target, "deleted");
        ++r.changed;
      }
      return r;
    }
    case QueueOp::tlsrpt_send:
    case QueueOp::tlsrpt_resend: {
      if (!tlsrpt_) return refusal("the relay's TLSRPT sending is not running");
      TlsrptDayRequest day;
      const size_t sp = id.find(' ');
      day.day = id.substr(0, sp);
      if (sp != std::string::npos) day.domain = id.substr(sp + 1);
      day.force = request.op == QueueOp::tlsrpt_resend;
      r.tlsrpt = tlsrpt_->send_day(day, "tlsp tlsrpt send, " + who);
      return r;
    }
    case QueueOp::tlsrpt_mail: {
      if (!tlsrpt_) return refusal("the relay's TLSRPT sending is not running");
      TlsrptMailPayload p;
      std::string problem;
      if (!parse_tlsrpt_mail_payload(request.payload, p, problem)) return refusal("bad tlsrpt-mail payload: " + problem);
      std::optional<std::string> json = tlsrpt::gunzip_report(p.gzip, tlsrpt::kMaxReportJsonBytes);
      if (!json) return refusal("bad tlsrpt-mail payload: the report is not a whole gzip stream of at most " +
                                std::to_string(tlsrpt::kMaxReportJsonBytes) + " bytes");
      std::optional<TlsrptOutgoing> out = tlsrpt_outgoing_from_json(std::move(*json), p.domain, p.submitter, problem);
      if (!out) return refusal(problem);
      r.tlsrpt = tlsrpt_->send_report(*out, p.to, "tlsp tlsrpt send, " + who);
      return r;
    }
  }
  return refusal("unknown operation");
}

}  // namespace tlsp::relay
