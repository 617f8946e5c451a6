// tlsrpt_job.h — the relay's TLSRPT sending (docs/tlsrpt.md, "Sending"),
// on a thread of its own so that a discovery or a POST never holds the
// scheduler loop, a reload or the shutdown:
//  * the daily run: at `tlsrpt-send-time` each UTC day, the previous day's
//    reports (send_tlsrpt_day(), tlsp/tlsrpt_dispatch.h: claims keep it once
//    per fleet); a relay started after that time sends the previous day at
//    once; then the store forgets the days before tlsrpt::kKeepDays. A store
//    that does not answer is tried again after kTlsrptStoreRetry.
//  * the outbox of https deliveries (`<spool>/tlsrpt-outbox`): run at start
//    and every kTlsrptOutboxInterval.
//  * by hand, through the control socket: a day sent now (`tlsp tlsrpt send
//    --day`), a report's mailto: URIs queued (`tlsp tlsrpt send REPORT`).
// Every step is a `tlsrpt` log line. One send or outbox run at a time (a
// mutex): the control socket's request waits for the daily run's end.
// Stopping: ctx.stopping aborts a running POST within about a second
// (TlsrptPostConfig::cancel) and leaves the rest for the next start; the
// wait is then bounded by a DNS lookup's timeout. Not a public header.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "relay_context.h"
#include "tlsp/tlsrpt_dispatch.h"

namespace tlsp::relay {

inline constexpr std::chrono::seconds kTlsrptOutboxInterval{60};
inline constexpr std::chrono::seconds kTlsrptStoreRetry{300};

class TlsrptJob {
 public:
  explicit TlsrptJob(std::shared_ptr<RelayContext> ctx);
  TlsrptJob(const TlsrptJob&) = delete;

  // The thread's body: until ctx.stopping (and wake()).
  void run();
  // Wakes run() to see ctx.stopping.
  void wake();

  // By hand (the control socket), each step logged; `who` names the caller.
  std::vector<TlsrptSendEvent> send_day(const TlsrptDayRequest& request, const std::string& who);
  std::vector<TlsrptSendEvent> send_report(const TlsrptOutgoing& report, const std::vector<TlsrptUri>& uris,
                                           const std::string& who);

 private:
  TlsrptSender sender();
  void log(const TlsrptSendEvent& e, const std::string& who);
  void run_outbox(int64_t now);
  void prune(int64_t now);

  std::shared_ptr<RelayContext> ctx_;
  std::unique_ptr<tlsrpt::Outbox> outbox_;
  std::mutex send_mu_;
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
};

}  // namespace tlsp::relay
