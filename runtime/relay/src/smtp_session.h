// smtp_session.h — the relay's SMTP server side as its listener and
// SmtpServer (tlsp/smtp_server.h) drive it: one accepted connection served
// to the end (smtp_server.cpp). Not a public header.
#pragma once

#include <atomic>
#include <cstdint>

#include "relay_context.h"
#include "tlsp/stream.h"

namespace tlsp::relay {

// What the listener and one session share. The session publishes when it
// started waiting for a command line (0: it is not waiting for one); the
// listener, to free a slot for a new client, sets `evicted` and shuts the
// socket's read side, which wakes the session's blocking read: the session
// thread itself then replies 421 and logs it.
struct SessionSlot {
  int fd = -1;
  std::atomic<int64_t> waiting_since_ns{0};  // steady_clock, since its epoch
  std::atomic<bool> evicted{false};
};

// Serves one accepted connection to the end (QUIT, a limit, a timeout,
// eviction or the shutdown flag). Never throws.
void serve_smtp_session(RelayContext& ctx, Stream& stream, const std::atomic<bool>& stopping, SessionSlot& slot);

}  // namespace tlsp::relay
