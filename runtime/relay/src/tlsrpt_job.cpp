// tlsrpt_job.cpp — the relay's TLSRPT sending thread (tlsrpt_job.h): the
// daily run, the outbox, and what the control socket asks for by hand.
#include "tlsrpt_job.h"

#include <algorithm>
#include <ctime>

#include "relay_config.h"

namespace tlsp::relay {

TlsrptJob::TlsrptJob(std::shared_ptr<RelayContext> ctx) : ctx_(std::move(ctx)) {
  try {
    outbox_ = std::make_unique<tlsrpt::Outbox>(ctx_->spool->directory() + "/tlsrpt-outbox");
  } catch (const std::exception& e) {
    // Without it a failed POST is final; the rest still works.
    ctx_->log->write(LogEvent::tlsrpt, {{"result", "outbox-failed"}, {"error", e.what()}});
  }
}

TlsrptSender TlsrptJob::sender() {
  TlsrptSender s;
  s.from = tlsrpt_identity(ctx_->config).from;
  s.hostname = ctx_->hostname;
  s.resolver = ctx_->resolver.get();
  s.post.ca_file = ctx_->config.ca_file;
  s.post.cancel = &ctx_->stopping;
  s.outbox = outbox_.get();
  s.spool = ctx_->spool.get();
  s.enqueue = ctx_->enqueue;
  s.stopping = &ctx_->stopping;
  return s;
}

void TlsrptJob::log(const TlsrptSendEvent& e, const std::string& who) {
  LogFields f = {{"result", e.result}};
  auto add = [&f](const char* k, const std::string& v) {
    if (!v.empty()) f.push_back({k, v});
  };
  add("day", e.day);
  add("domain", e.domain);
  add("report_id", e.report_id);
  add("uri", e.uri);
  add("queue_id_report", e.queue_id_report);
  add("detail", who.empty() || e.detail.empty() ? e.detail : e.detail + " (" + who + ")");
  add("error", e.error);
  ctx_->log->write(LogEvent::tlsrpt, f);
}

std::vector<TlsrptSendEvent> TlsrptJob::send_day(const TlsrptDayRequest& request, const std::string& who) {
  std::lock_guard<std::mutex> g(send_mu_);
  TlsrptSendEvent start;
  start.result = "day-started";
  start.day = request.day;
  start.domain = request.domain;
  start.detail = who.empty() ? "daily" : std::string(request.force ? "again, by hand" : "by hand");
  log(start, who);
  return send_tlsrpt_day(*ctx_->tlsrpt_store, request, tlsrpt_identity(ctx_->config), sender(), std::time(nullptr),
                         [&](const TlsrptSendEvent& e) { log(e, ""); });
}

std::vector<TlsrptSendEvent> TlsrptJob::send_report(const TlsrptOutgoing& report, const std::vector<TlsrptUri>& uris,
                                                    const std::string& who) {
  std::lock_guard<std::mutex> g(send_mu_);
  std::vector<TlsrptSendEvent> events = send_tlsrpt_report(report, uris, sender(), std::time(nullptr));
  for (const TlsrptSendEvent& e : events) log(e, who);
  return events;
}

void TlsrptJob::run_outbox(int64_t now) {
  if (!outbox_) return;
  std::lock_guard<std::mutex> g(send_mu_);
  TlsrptPostConfig post;
  post.ca_file = ctx_->config.ca_file;
  post.cancel = &ctx_->stopping;
  for (const tlsrpt::OutboxEvent& e : tlsrpt::tlsrpt_outbox_run(*outbox_, now, *ctx_->resolver, post)) {
    LogFields f = {{"result", "post-" + std::string(tlsrpt::to_string(e.kind))}};
    if (!e.report_id.empty()) f.push_back({"report_id", e.report_id});
    if (!e.uri.empty()) f.push_back({"uri", e.uri});
    f.push_back({"attempts", std::to_string(e.attempts)});
    if (e.kind == tlsrpt::OutboxEvent::Kind::deferred)
      f.push_back({"next_attempt_in", std::to_string(std::max<int64_t>(0, e.next_attempt - now)) + "s"});
    if (!e.detail.empty()) f.push_back({"detail", e.detail});
    ctx_->log->write(LogEvent::tlsrpt, f);
  }
}

void TlsrptJob::prune(int64_t now) {
  const std::string keep_from = tlsrpt_keep_from(now);
  std::string error;
  if (ctx_->tlsrpt_store->prune(keep_from, &error))
    ctx_->log->write(LogEvent::tlsrpt, {{"result", "pruned"}, {"day", keep_from}, {"detail", "the days before it are forgotten"}});
  else
    ctx_->log->write(LogEvent::tlsrpt, {{"result", "prune-failed"}, {"day", keep_from}, {"error", error}});
}

void TlsrptJob::run() {
  // Empty: no daily run (validated at start otherwise).
  const bool daily = !ctx_->config.tlsrpt_send_time.empty();
  const int send_minute = daily ? parse_time_of_day(ctx_->config.tlsrpt_send_time).value_or(0) : 0;
  std::string last_sent;    // the last day this relay sent (claims keep it once across restarts)
  int64_t next_outbox = 0;  // at start
  int64_t day_retry_at = 0;
  while (!ctx_->stopping) {
    const int64_t now = std::time(nullptr);
    if (daily && now >= day_retry_at) {
      if (std::optional<std::string> day = tlsrpt_day_due(now, send_minute, last_sent)) {
        std::vector<TlsrptSendEvent> events = send_day({*day, "", false}, "");
        const bool store_down = std::any_of(events.begin(), events.end(), [](const TlsrptSendEvent& e) {
          return e.result == "store-failed" && e.domain.empty();
        });
        const bool interrupted = std::any_of(events.begin(), events.end(),
                                             [](const TlsrptSendEvent& e) { return e.result == "stopped"; });
        if (store_down) {
          day_retry_at = now + kTlsrptStoreRetry.count();
        } else if (!interrupted) {
          last_sent = *day;
          prune(now);
        }
      }
    }
    if (ctx_->stopping) break;
    if (now >= next_outbox) {
      run_outbox(now);
      next_outbox = now + kTlsrptOutboxInterval.count();
    }
    int64_t wake_at = next_outbox;
    if (daily) wake_at = std::min(wake_at, std::max(day_retry_at, next_tlsrpt_send_time(now, send_minute)));
    std::unique_lock<std::mutex> lock(wake_mu_);
    wake_cv_.wait_until(lock, std::chrono::system_clock::from_time_t(static_cast<time_t>(wake_at)),
                        [&] { return ctx_->stopping.load(); });
  }
}

void TlsrptJob::wake() {
  std::lock_guard<std::mutex> g(wake_mu_);
  wake_cv_.notify_all();
}

}  // namespace tlsp::relay
