// control_socket.h — the relay's side of the queue tools' control socket
// (tlsp/queue_control.h): `<spool>/control`, AF_UNIX stream, mode 0600,
// answering root and the relay's own uid only (SO_PEERCRED), one
// connection at a time, each one request within kControlRequestTimeout.
// Every change goes through the spool's functions and the in-memory queue
// (DeliveryQueue), and is logged as a `queue` line; the tlsrpt-* requests
// go to the relay's TLSRPT sending (tlsrpt_job.h), logged as `tlsrpt`
// lines. A tlsrpt-send request holds the socket while its discoveries and
// POSTs run (each bounded by its timeout); queue commands wait meanwhile.
// Not a public header.
#pragma once

#include <memory>
#include <string>

#include "delivery_queue.h"
#include "relay_context.h"
#include "tlsrpt_job.h"

namespace tlsp::relay {

class ControlSocket {
 public:
  // Binds and listens (replacing a stale socket file: the caller holds the
  // spool's lock, so no other relay uses it). Throws SpoolError.
  // `tlsrpt` carries out the tlsrpt-* requests (null: they are refused).
  ControlSocket(std::shared_ptr<RelayContext> ctx, std::shared_ptr<DeliveryQueue> queue,
                std::shared_ptr<TlsrptJob> tlsrpt = nullptr);
  ControlSocket(const ControlSocket&) = delete;
  ~ControlSocket();  // closes and unlinks the socket

  // Serves connections until ctx.stopping (looks at least once a second).
  void serve();
  // One request on a connected socket (also for tests of the relay's side).
  void handle(int fd);
  // What a request does to the running relay.
  QueueReply apply(const QueueRequest& request, const std::string& who);

 private:
  std::shared_ptr<RelayContext> ctx_;
  std::shared_ptr<DeliveryQueue> queue_;
  std::shared_ptr<TlsrptJob> tlsrpt_;
  std::string path_;
  int fd_ = -1;
};

}  // namespace tlsp::relay
