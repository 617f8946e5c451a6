// smtp_server.h — the relay's inbound SMTP server on its own: sessions on
// connections the caller accepted, under a configuration and a decision
// table, with accepted mail fsync'd into the spool and handed to a
// callback instead of a delivery queue. The relay's listener serves its
// clients through the very same sessions (relay.h); fuzz targets and tests
// drive them over a socket pair.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "tlsp/decision_table.h"
#include "tlsp/relay.h"
#include "tlsp/spool.h"

namespace tlsp {

class SmtpServer {
 public:
  // Uses of `config`: hostname (default: the system's, as the relay's), spool_dir, log_file,
  // submit_networks, next_hops, tls_cert/tls_key, limits. Throws
  // std::invalid_argument for a configuration relay_config_problems()
  // refuses (listen and table are not needed), std::runtime_error when the
  // spool, the log or the key pair cannot be opened.
  SmtpServer(RelayConfig config, std::shared_ptr<const DecisionTable> table,
             std::function<void(std::vector<QueueEntry>)> on_spooled = {});
  ~SmtpServer();
  SmtpServer(const SmtpServer&) = delete;
  SmtpServer& operator=(const SmtpServer&) = delete;

  // Serves one connected socket to the end of its session (QUIT, a limit,
  // a timeout, the peer leaving) and closes it. Never throws; sessions on
  // different sockets may run in parallel threads.
  void serve(int fd) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tlsp
