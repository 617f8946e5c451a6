// relay.cpp — `tlsp relay` put together, and its lifecycle (tlsp/relay.h):
// start (the table, the spool and its recovery, the resolver, the
// listening sockets), run (the acceptors, the delivery workers, and the
// scheduler's own duties: SIGHUP reloads, the table file watch, expiry of
// cached connections), the clean shutdown, and the signals of the CLI.
// Each part it starts has its own file: listener.cpp (admission),
// smtp_server.cpp (the SMTP dialogue), delivery_queue.cpp (the queue),
// delivery.cpp (one delivery run), table_reload.cpp, relay_config.cpp,
// metrics_server.cpp (GET /metrics on metrics-listen).
#include "tlsp/relay.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <thread>

#include "control_socket.h"
#include "delivery_queue.h"
#include "listener.h"
#include "metrics_server.h"
#include "privileges.h"
#include "relay_config.h"
#include "relay_context.h"
#include "service_notify.h"
#include "table_reload.h"
#include "tlsrpt_job.h"

namespace tlsp {

using namespace relay;

namespace {
// How long a starting relay waits for the spool's lock: a `tlsp queue`
// command run while no relay runs holds it for the length of one change.
constexpr auto kSpoolLockWait = std::chrono::seconds(5);
}  // namespace

// The parts share the context; the threads that run them hold what they
// use (a session its Listener, a worker the DeliveryQueue), so a thread
// left running at shutdown never outlives its state.
struct Relay::Impl {
  std::shared_ptr<RelayContext> ctx = std::make_shared<RelayContext>();
  std::shared_ptr<Listener> listener = std::make_shared<Listener>(ctx);
  std::shared_ptr<DeliveryQueue> queue = std::make_shared<DeliveryQueue>(ctx);
  std::unique_ptr<TableFile> table_file;
  std::shared_ptr<TlsrptJob> tlsrpt;  // made once the context is complete
  std::vector<int> listeners;
  std::vector<uint16_t> ports;
  int wake[2] = {-1, -1};
  std::atomic<bool> reload_requested{false};
  // Declared last: destroyed (stopped) first, while what it reads lives.
  std::unique_ptr<MetricsServer> metrics_server;

  ~Impl() {
    for (int fd : listeners) ::close(fd);
    for (int fd : wake)
      if (fd >= 0) ::close(fd);
  }

  void log(LogEvent event, const LogFields& fields) { ctx->log->write(event, fields); }
};

Relay::Relay(RelayConfig config) : impl_(std::make_shared<Impl>()) {
  validate_relay_config(config);
  Impl& I = *impl_;
  RelayContext& c = *I.ctx;
  c.config = std::move(config);
  // What may need root comes first: the TLS key (often root-only) and the
  // listening sockets (port 25); then the switch to `user`, before anything
  // the service user must own is opened (privileges.h).
  if (!c.config.tls_cert.empty()) c.server_tls = make_server_context(c.config.tls_cert, c.config.tls_key);
  for (const std::string& l : c.config.listen) {
    HostPort hp = *parse_host_port(l);
    std::string error;
    int fd = listen_tcp(hp.host, hp.port, 128, error);
    if (fd < 0) throw std::runtime_error("cannot listen on `" + l + "`: " + error);
    I.listeners.push_back(fd);
    I.ports.push_back(bound_port(fd));
  }
  drop_privileges(c.config.user);
  c.log = open_relay_log(c.config);
  c.metrics.set_log(c.log.get());
  c.hostname = relay_hostname(c.config);
  for (const std::string& n : c.config.submit_networks) c.submit_networks.push_back(base::parse_cidr(n).cidr);
  I.table_file = std::make_unique<TableFile>(c.config.table, c.table, *c.log, &c.metrics);
  I.table_file->load("start");
  c.spool = std::make_unique<Spool>(c.config.spool_dir);
  // One relay per spool (docs/spool.md, "Operating the queue"); a `tlsp queue` command
  // may hold the lock for a moment while no relay runs.
  c.spool_lock = SpoolLock::acquire(c.config.spool_dir, kSpoolLockWait);
  if (!c.spool_lock)
    throw std::runtime_error("the spool `" + c.config.spool_dir + "` is in use by another relay (its lock `" +
                             SpoolLock::path_in(c.config.spool_dir) + "` is held)");
  dns::ResolverConfig rc;
  rc.server = c.config.resolver;
  rc.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(c.config.limits.dns_timeout);
  c.resolver = std::make_unique<dns::Resolver>(rc);
  c.sts_cache = std::make_unique<MtaStsCache>(mta_sts_cache_dir(c.config));
  // The TLSRPT store: a SQLite file that cannot be opened is a setup error
  // (refused here, as the spool is); Redis connects when first used, so a
  // relay starts while it is down (its records are then logged as lost).
  {
    std::string error;
    c.tlsrpt_store = tlsrpt::open_store(tlsrpt_store_spec(c.config), &error);
    if (!c.tlsrpt_store) throw std::runtime_error("cannot open the TLSRPT store: " + error);
  }
  c.sts_fetch.ca_file = c.config.ca_file;
  c.sts_fetch.https_port = c.config.mta_sts_port;
  c.sts_fetch.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(c.config.limits.sts_fetch_timeout);
  c.retry = *RetrySchedule::parse(c.config.retry_schedule);
  std::weak_ptr<DeliveryQueue> weak = I.queue;
  c.enqueue = [weak](std::vector<QueueEntry> e) {
    if (auto s = weak.lock()) s->enqueue(std::move(e));
  };
  if (::pipe2(I.wake, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
  if (!c.config.metrics_listen.empty())
    I.metrics_server = std::make_unique<MetricsServer>(
        c.config.metrics_listen, [ctx = I.ctx, queue = I.queue] { return ctx->metrics.render(queue->gauges()); });
  std::vector<std::string> problems;
  std::vector<QueueEntry> recovered = c.spool->recover(&problems);
  for (const std::string& p : problems) I.log(LogEvent::spool, {{"result", "recovery-problem"}, {"detail", p}});
  LogFields start = {{"listen", [&] {
                     std::string s;
                     for (size_t i = 0; i < c.config.listen.size(); ++i)
                       s += (i ? "," : "") + c.config.listen[i].substr(0, c.config.listen[i].rfind(':')) + ":" +
                            std::to_string(I.ports[i]);
                     return s;
                   }()},
                  {"hostname", c.hostname},
                  {"starttls", c.server_tls ? "yes" : "no"},
                  {"resolver", c.resolver->server_text()},
                  {"recovered", std::to_string(recovered.size())},
                  {"tlsrpt_store", c.tlsrpt_store->describe()}};
  if (I.metrics_server) start.push_back({"metrics", I.metrics_server->address()});
  I.log(LogEvent::start, start);
  I.tlsrpt = std::make_shared<TlsrptJob>(I.ctx);
  for (QueueEntry& e : recovered) e.next_attempt = std::min<int64_t>(e.next_attempt, std::time(nullptr));
  I.queue->enqueue(std::move(recovered));
}

Relay::~Relay() { stop(); }

std::vector<uint16_t> Relay::listening_ports() const { return impl_->ports; }

void Relay::stop() {
  impl_->ctx->stopping = true;
  if (impl_->wake[1] >= 0) {
    char b = 's';
    [[maybe_unused]] ssize_t n = ::write(impl_->wake[1], &b, 1);
  }
  impl_->queue->wake_workers();
}

void Relay::reload() {
  impl_->reload_requested = true;
  if (impl_->wake[1] >= 0) {
    char b = 'r';
    [[maybe_unused]] ssize_t n = ::write(impl_->wake[1], &b, 1);
  }
}

void Relay::run() {
  std::shared_ptr<Impl> I = impl_;
  std::vector<std::thread> acceptors, workers;
  RelayContext& ctx = *I->ctx;
  for (int fd : I->listeners)
    acceptors.emplace_back([listener = I->listener, fd, wake = I->wake[0]] { listener->accept_loop(fd, wake); });
  for (size_t i = 0; i < ctx.config.delivery_workers; ++i)
    workers.emplace_back([queue = I->queue] { queue->worker(); });
  if (I->metrics_server) I->metrics_server->start();
  // The queue tools' socket, made here rather than at construction so that
  // it belongs to the user the relay runs as.
  std::thread control;
  try {
    auto socket = std::make_shared<ControlSocket>(I->ctx, I->queue, I->tlsrpt);
    control = std::thread([socket] { socket->serve(); });
  } catch (const std::exception& e) {
    I->log(LogEvent::spool, {{"result", "control-error"}, {"error", e.what()}});
  }
  // TLSRPT: the daily reports and the outbox, on their own thread (a POST
  // or a discovery never holds this loop).
  std::thread tlsrpt([job = I->tlsrpt] { job->run(); });
  notify_ready();

  // The scheduler's own duties: reloads and the table file watch.
  auto next_check = std::chrono::steady_clock::now();
  while (!ctx.stopping) {
    pollfd p{I->wake[0], POLLIN, 0};
    int timeout = static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(next_check - std::chrono::steady_clock::now()).count()));
    ::poll(&p, 1, std::min(timeout, 1000));
    char buf[64];
    while (::read(I->wake[0], buf, sizeof buf) > 0) {
    }
    if (ctx.stopping) break;
    if (I->reload_requested.exchange(false)) {
      // SIGHUP: the log files first (logrotate renamed them), so the
      // table's line is in the new file.
      notify_reloading();
      ctx.log->reopen();
      I->table_file->load("SIGHUP");
      notify_ready();
    }
    ctx.connections.expire(ctx.config.limits.connection_cache_time);
    if (std::chrono::steady_clock::now() >= next_check) {
      I->table_file->check_for_change();
      next_check = std::chrono::steady_clock::now() + ctx.config.table_check_interval;
    }
  }

  // Clean shutdown: stop accepting, let sessions and deliveries finish
  // within the grace period, then close what is left (queued mail stays in
  // the spool and is resumed at the next start).
  notify_stopping();
  I->log(LogEvent::stop, {{"result", "stopping"}});
  for (std::thread& t : acceptors) t.join();
  // A running POST is aborted (TlsrptPostConfig::cancel), so these end
  // within about a second, or a DNS lookup's timeout.
  I->tlsrpt->wake();
  tlsrpt.join();
  if (control.joinable()) control.join();
  for (int fd : I->listeners) ::close(fd);
  I->listeners.clear();
  const auto deadline = std::chrono::steady_clock::now() + ctx.config.limits.shutdown_grace;
  I->listener->end_sessions(deadline);
  const size_t unfinished = I->queue->wait_idle(deadline);
  ctx.connections.expire(std::chrono::seconds(0));
  for (std::thread& t : workers) {
    if (unfinished == 0)
      t.join();
    else
      t.detach();  // holds the queue and the context; its entry stays queued on disk
  }
  if (I->metrics_server) I->metrics_server->stop();
  I->log(LogEvent::stop, {{"result", "stopped"},
                  {"in_flight_requeued", std::to_string(unfinished)},
                  {"queued", std::to_string(ctx.spool->queued_count())}});
}

namespace {
sigset_t relay_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}
}  // namespace

void block_relay_signals() {
  sigset_t set = relay_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A peer that closes early must not kill the relay.
  ::signal(SIGPIPE, SIG_IGN);
}

int run_relay_with_signals(Relay& relay) {
  block_relay_signals();
  sigset_t set = relay_signals();
  std::atomic<bool> done{false};
  std::thread signals([&] {
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (done) return;
      if (sig == SIGHUP) {
        relay.reload();
      } else {
        relay.stop();
        return;
      }
    }
  });
  int rc = 0;
  try {
    relay.run();
  } catch (...) {
    rc = 1;
  }
  done = true;
  ::kill(::getpid(), SIGTERM);  // wakes the signal thread if still waiting
  signals.join();
  return rc;
}

}  // namespace tlsp
