// smtp_server_sessions.cpp — SmtpServer (tlsp/smtp_server.h): the relay's
// SMTP sessions without its listener, queue or delivery.
#include "tlsp/smtp_server.h"

#include <atomic>
#include <stdexcept>

#include "relay_config.h"
#include "relay_context.h"
#include "smtp_session.h"

namespace tlsp {

struct SmtpServer::Impl {
  relay::RelayContext ctx;
  std::atomic<bool> stopping{false};
};

SmtpServer::SmtpServer(RelayConfig config, std::shared_ptr<const DecisionTable> table,
                       std::function<void(std::vector<QueueEntry>)> on_spooled)
    : impl_(std::make_unique<Impl>()) {
  // Neither listen addresses nor a table file are used here.
  validate_relay_config(config, {"listen", "table"});
  if (!table) throw std::invalid_argument("SmtpServer: no decision table");
  relay::RelayContext& c = impl_->ctx;
  c.config = std::move(config);
  c.hostname = relay::relay_hostname(c.config);
  c.log = relay::open_relay_log(c.config);
  for (const std::string& n : c.config.submit_networks) c.submit_networks.push_back(base::parse_cidr(n).cidr);
  c.table.set(std::move(table));
  c.spool = std::make_unique<Spool>(c.config.spool_dir);
  if (!c.config.tls_cert.empty()) c.server_tls = make_server_context(c.config.tls_cert, c.config.tls_key);
  c.enqueue = on_spooled ? std::move(on_spooled) : [](std::vector<QueueEntry>) {};
}

SmtpServer::~SmtpServer() = default;

void SmtpServer::serve(int fd) noexcept {
  Stream stream(fd);
  relay::SessionSlot slot;
  slot.fd = fd;
  relay::serve_smtp_session(impl_->ctx, stream, impl_->stopping, slot);
}

}  // namespace tlsp
