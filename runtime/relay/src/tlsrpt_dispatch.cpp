// tlsrpt_dispatch.cpp — sending TLSRPT reports (tlsp/tlsrpt_dispatch.h):
// one report to its URIs, a day's reports from the store, and the daily
// schedule's arithmetic.
#include "tlsp/tlsrpt_dispatch.h"

#include <algorithm>
#include <ctime>
#include <exception>

#include "tlsp/base/domain_name.h"
#include "tlsp/base/quote.h"
#include "tlsp/tlsrpt_report.h"

namespace tlsp {
namespace {

constexpr int64_t kDay = 86400;

int64_t day_start(int64_t t) { return t - ((t % kDay) + kDay) % kDay; }

int64_t iso_time(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (!end || *end) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

// The queued entry of a report mail: outbound, from the report sender's
// domain to the address's, flagged so that delivery does not hold it to
// the policy nor count its session (RFC 8460 §3).
QueueEntry report_entry(const tlsrpt::ReportMail& mail, const std::string& to, const std::string& hostname,
                        int64_t now) {
  QueueEntry e;
  e.mail_from = mail.mail_from;
  e.recipients = mail.recipients;
  e.direction = Direction::outbound;
  e.managed_domain = domain_of_address(mail.mail_from);
  e.destination = domain_of_address(to);
  e.client_address = "127.0.0.1";
  e.client_helo = hostname;
  e.arrival = now;
  e.next_attempt = now;
  e.tlsrpt_report = true;
  return e;
}

}  // namespace

std::optional<TlsrptOutgoing> tlsrpt_outgoing_from_json(std::string json, std::string_view domain,
                                                        std::string_view submitter, std::string& problem) {
  tlsrpt::ReportReadResult read = tlsrpt::read_report_json(json);
  if (!read.report) {
    problem = "is not an RFC 8460 report: " + read.error;
    return std::nullopt;
  }
  const tlsrpt::ReceivedReport& r = *read.report;
  if (r.report_id.empty()) {
    problem = "is not an RFC 8460 report: it has no `report-id`";
    return std::nullopt;
  }
  TlsrptOutgoing out;
  out.report_id = r.report_id;
  out.begin = iso_time(r.start_datetime);
  out.end = iso_time(r.end_datetime);
  if (out.begin) out.day = tlsrpt::utc_day(out.begin);
  std::string d(domain);
  if (d.empty())
    for (const tlsrpt::ReceivedPolicy& p : r.policies)
      if (!p.domain.empty()) {
        d = p.domain;
        break;
      }
  NameCheck n = check_host_name(d);
  if (!n.ok()) {
    problem = "no valid policy domain: " + n.problem;
    return std::nullopt;
  }
  out.policy_domain = n.name;
  out.submitter = std::string(submitter);
  out.json = std::move(json);
  return out;
}

std::vector<TlsrptSendEvent> send_tlsrpt_report(const TlsrptOutgoing& report, const std::vector<TlsrptUri>& uris,
                                                const TlsrptSender& sender, int64_t now) {
  std::vector<TlsrptSendEvent> events;
  std::optional<std::string> gz;  // made once, for the first https: URI
  for (const TlsrptUri& u : uris) {
    TlsrptSendEvent ev;
    ev.day = report.day;
    ev.domain = report.policy_domain;
    ev.report_id = report.report_id;
    ev.uri = u.uri;
    if (u.scheme == TlsrptScheme::https) {
      if (!gz) gz = tlsrpt::gzip_report(report.json);
      TlsrptPostResult posted;
      if (sender.stopping && sender.stopping->load())
        posted.detail = "not tried now: the relay is stopping";
      else if (!sender.resolver)
        posted.detail = "no resolver";
      else
        posted = post_tlsrpt_report(u, *gz, *sender.resolver, sender.post);
      if (posted.delivered) {
        ev.result = "report-sent";
        ev.detail = posted.detail;
      } else if (!sender.outbox) {
        ev.result = "report-failed";
        ev.error = posted.detail + " (no outbox: not retried)";
        ev.failed = true;
      } else {
        std::string error;
        if (sender.outbox->add(report.report_id, u, *gz, now, &error)) {
          ev.result = "report-deferred";
          ev.detail = posted.detail + "; in the outbox for retries";
        } else {
          ev.result = "report-failed";
          ev.error = posted.detail + "; not retried: " + error;
          ev.failed = true;
        }
      }
      events.push_back(std::move(ev));
      continue;
    }
    // mailto: the report mail, queued in the spool.
    try {
      if (!sender.spool) throw std::runtime_error("no spool to queue the report mail in");
      tlsrpt::ReportMailInput in;
      in.from = sender.from;
      in.to = u.address;
      in.policy_domain = report.policy_domain;
      in.submitter = report.submitter;
      in.report_id = report.report_id;
      in.begin = report.begin;
      in.end = report.end;
      in.now = now;
      in.report_json = report.json;
      tlsrpt::ReportMail mail = tlsrpt::make_tlsrpt_mail(in);
      std::vector<QueueEntry> stored =
          sender.spool->store({report_entry(mail, u.address, sender.hostname, now)}, mail.data);
      ev.result = "report-queued";
      ev.queue_id_report = stored.front().id;
      ev.detail = sender.enqueue ? "queued" : "queued; sent when the relay starts";
      if (sender.enqueue) sender.enqueue(std::move(stored));
    } catch (const std::exception& e) {
      ev.result = "report-failed";
      ev.error = std::string("not queued: ") + e.what();
      ev.failed = true;
    }
    events.push_back(std::move(ev));
  }
  return events;
}

std::vector<TlsrptSendEvent> send_tlsrpt_day(tlsrpt::Store& store, const TlsrptDayRequest& request,
                                             const TlsrptIdentity& identity, const TlsrptSender& sender, int64_t now,
                                             const std::function<void(const TlsrptSendEvent&)>& each) {
  std::vector<TlsrptSendEvent> events;
  auto emit = [&](TlsrptSendEvent ev) {
    if (ev.day.empty()) ev.day = request.day;
    if (each) each(ev);
    events.push_back(std::move(ev));
  };
  auto store_failed = [&](std::string domain, std::string error) {
    TlsrptSendEvent ev;
    ev.result = "store-failed";
    ev.domain = std::move(domain);
    ev.error = std::move(error);
    ev.failed = true;
    emit(std::move(ev));
  };
  const std::optional<int64_t> begin = tlsrpt::parse_utc_day(request.day);
  if (!begin) {
    store_failed("", "`" + request.day + "` is not a day (YYYY-MM-DD)");
    return events;
  }
  std::string error;
  std::vector<std::string> domains;
  if (request.domain.empty()) {
    domains = store.domains(request.day, &error);
    if (!error.empty()) {
      store_failed("", error);
      return events;
    }
    std::sort(domains.begin(), domains.end());
  } else {
    domains.push_back(request.domain);
  }
  const tlsrpt::Organization org{identity.organization, identity.contact, identity.submitter};
  for (const std::string& d : domains) {
    if (sender.stopping && sender.stopping->load()) {
      // Not claimed yet: the next start sends them (a start after the
      // send time catches up on the previous day).
      TlsrptSendEvent ev;
      ev.result = "stopped";
      ev.domain = d;
      ev.detail = "the relay is stopping: this domain and the ones after it are sent at the next start";
      emit(std::move(ev));
      break;
    }
    error.clear();
    std::vector<tlsrpt::PolicySummary> policies = store.summaries(request.day, d, &error);
    if (!error.empty()) {
      store_failed(d, error);
      continue;
    }
    TlsrptSendEvent ev;
    ev.domain = d;
    if (policies.empty()) {
      ev.result = "nothing-to-report";
      ev.detail = "no sessions to the domain that day";
      emit(std::move(ev));
      continue;
    }
    tlsrpt::ReportClaim claim = store.claim_report(request.day, d, tlsrpt::make_report_id(request.day, d, identity.submitter), &error);
    if (!error.empty()) {
      store_failed(d, error);
      continue;
    }
    ev.report_id = claim.report_id;
    if (!claim.claimed && !request.force) {
      ev.result = "report-claimed-elsewhere";
      ev.detail = "the report was claimed before (by another relay sharing the store, or an earlier run): not sent";
      emit(std::move(ev));
      continue;
    }
    ev.result = claim.claimed ? "report-claimed" : "report-resent";
    if (!claim.claimed) ev.detail = "claimed before; sent again (--force) with the kept id";
    emit(ev);
    TlsrptDiscovery found;
    if (sender.resolver)
      found = discover_tlsrpt(d, *sender.resolver);
    else
      found.detail = "no resolver";
    if (!found.record) {
      ev.result = "no-record";
      ev.detail = found.detail;
      emit(std::move(ev));
      continue;
    }
    TlsrptOutgoing out;
    out.json = tlsrpt::report_json(org, claim.report_id, request.day, policies);
    out.report_id = claim.report_id;
    out.policy_domain = d;
    out.submitter = identity.submitter;
    out.begin = *begin;
    out.end = *begin + kDay - 1;
    out.day = request.day;
    for (TlsrptSendEvent& e : send_tlsrpt_report(out, found.record->rua, sender, now)) emit(std::move(e));
  }
  return events;
}

std::optional<std::string> tlsrpt_day_due(int64_t now, int send_minute, std::string_view last_sent_day) {
  const int64_t today = day_start(now);
  if (now < today + int64_t{send_minute} * 60) return std::nullopt;
  std::string yesterday = tlsrpt::utc_day(today - kDay);
  if (yesterday == last_sent_day) return std::nullopt;
  return yesterday;
}

int64_t next_tlsrpt_send_time(int64_t now, int send_minute) {
  const int64_t at = day_start(now) + int64_t{send_minute} * 60;
  return at > now ? at : at + kDay;
}

std::string tlsrpt_keep_from(int64_t now) { return tlsrpt::utc_day(day_start(now) - int64_t{tlsrpt::kKeepDays} * kDay); }

}  // namespace tlsp
