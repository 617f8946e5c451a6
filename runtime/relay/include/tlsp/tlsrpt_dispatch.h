// tlsp/tlsrpt_dispatch.h — the one owner of sending TLSRPT reports
// (RFC 8460 §5): "send this report to these URIs" and "send the reports of
// this UTC day", for the relay's daily job, its control socket and `tlsp
// tlsrpt send` alike; and the daily schedule, as pure functions.
//
// Contract:
//  * send_tlsrpt_report(): for each URI in order — https: POSTed now
//    (post_tlsrpt_report() through the sender's resolver); a failed POST
//    goes into the sender's outbox (retried with backoff, tlsp/tlsrpt_send.h),
//    or is a failure when there is none. mailto: the RFC 8460 §5.3 mail
//    (make_tlsrpt_mail()) stored in the sender's spool as an outbound
//    QueueEntry with tlsrpt_report set (destination: the address's domain)
//    and handed to the sender's queue when it has one (a relay), else left
//    for the relay's start. Once the sender's `stopping` is set, https: is
//    not tried: it goes straight into the outbox.
//  * send_tlsrpt_day(): for each policy domain of the day (or the one
//    asked for), in name order: the store's summaries; a fresh report id
//    claimed with Store::claim_report() — only the claimer goes on (with
//    `force`, a day already claimed is sent again with the kept id); the
//    `_smtp._tls` record discovered (none: nothing sent, said); the report
//    built by report_json() from the sender's identity; then
//    send_tlsrpt_report() to the record's rua URIs.
//  * Results are values (TlsrptSendEvent), one per step, in order: the relay
//    writes each as a `tlsrpt` log line (the fields are the line's), the
//    command prints them. Nothing here logs or prints; nothing throws for an
//    environment failure (the store, DNS, a collector, the disk): it is an
//    event with `failed` set.
//  * The schedule: at `tlsrpt-send-time` (minutes after 00:00 UTC) each UTC
//    day, the previous UTC day is sent; a relay that starts after that time
//    sends the previous day at once (the claims keep it once per fleet).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/dns.h"
#include "tlsp/relay.h"
#include "tlsp/spool.h"
#include "tlsp/tlsrpt_delivery.h"
#include "tlsp/tlsrpt_send.h"
#include "tlsp/tlsrpt_store.h"

namespace tlsp {

// One step of sending. `result` is one of (docs/tlsrpt.md, docs/logs.md):
//   report-claimed            this sender claimed (day, domain): it sends the report
//   report-claimed-elsewhere  another sender (or an earlier run) claimed it: nothing sent
//   report-resent             --force: claimed before, sent again with the kept id
//   no-record                 the domain publishes no usable _smtp._tls record: nothing sent
//   nothing-to-report         no sessions to the domain that day
//   report-sent               https: POSTed, 2xx
//   report-deferred           https: the POST failed (or the relay is stopping): in the outbox
//   report-queued             mailto: the report mail is queued (queue_id_report)
//   report-failed             this URI got nothing and will not (no outbox, no spool, the disk)
//   store-failed              the store did not answer (the day or domain is not sent)
//   stopped                   the relay is stopping: the domains not claimed yet are left
struct TlsrptSendEvent {
  std::string result;
  std::string day, domain, report_id, uri, queue_id_report, detail, error;
  bool failed = false;
};

// A report to send and what the sending needs to know of it.
struct TlsrptOutgoing {
  std::string json;           // the RFC 8460 §4 report
  std::string report_id;
  std::string policy_domain;  // TLS-Report-Domain
  std::string submitter;      // TLS-Report-Submitter
  int64_t begin = 0, end = 0; // its date-range, unix seconds (0: not given)
  std::string day;            // for the events: the UTC day of `begin`, "" when not given
};

// What a report's JSON says of itself: report-id, date-range, the policy
// domain (`domain` when given, else the first policies[].policy.policy-domain,
// checked as a host name). Nothing, with `problem` set, when it is not an
// RFC 8460 report object with a report-id.
std::optional<TlsrptOutgoing> tlsrpt_outgoing_from_json(std::string json, std::string_view domain,
                                                        std::string_view submitter, std::string& problem);

// Who sends, and where the deliveries that wait go.
struct TlsrptSender {
  std::string from;                        // tlsrpt-from: the report mails' sender
  std::string hostname;                    // the relay's name (the queued entry's client HELO)
  const dns::Resolver* resolver = nullptr; // discovery and the POST's addresses
  TlsrptPostConfig post;                   // ca-file, timeout, cancel
  tlsrpt::Outbox* outbox = nullptr;        // failed POSTs; null: a failure is final
  Spool* spool = nullptr;                  // mailto:; null: a mailto: URI fails
  // The relay's queue, given the stored entries; empty: the relay takes
  // them from the spool when it starts.
  std::function<void(std::vector<QueueEntry>)> enqueue;
  const std::atomic<bool>* stopping = nullptr;  // set: no more POSTs (and post.cancel aborts one)
};

std::vector<TlsrptSendEvent> send_tlsrpt_report(const TlsrptOutgoing& report, const std::vector<TlsrptUri>& uris,
                                                const TlsrptSender& sender, int64_t now);

struct TlsrptDayRequest {
  std::string day;     // "YYYY-MM-DD", a valid UTC day
  std::string domain;  // "": every policy domain of the day
  bool force = false;  // send again a report already claimed, with its kept id
};

// `each` sees every event as it happens (the relay logs as it goes); all
// are returned too.
std::vector<TlsrptSendEvent> send_tlsrpt_day(tlsrpt::Store& store, const TlsrptDayRequest& request,
                                             const TlsrptIdentity& identity, const TlsrptSender& sender, int64_t now,
                                             const std::function<void(const TlsrptSendEvent&)>& each = {});

// ---- the daily schedule (pure) --------------------------------------------

// The day the daily job should send at `now` (unix seconds), given the
// send time (minutes after 00:00 UTC) and the last day it sent (or ""):
// the previous UTC day once `now` is at or past today's send time and that
// day was not sent yet; nothing otherwise.
std::optional<std::string> tlsrpt_day_due(int64_t now, int send_minute, std::string_view last_sent_day);
// The next send time strictly after `now`: today's when it is still to
// come, else tomorrow's.
int64_t next_tlsrpt_send_time(int64_t now, int send_minute);
// The first day the relay keeps (Store::prune()'s `before`) on the UTC day
// of `now`: tlsrpt::kKeepDays days back.
std::string tlsrpt_keep_from(int64_t now);

}  // namespace tlsp
