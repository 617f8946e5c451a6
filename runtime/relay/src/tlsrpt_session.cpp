// tlsrpt_session.cpp — the TLSRPT record of one outbound session
// (tlsrpt_session.h).
#include "tlsrpt_session.h"

#include "relay_context.h"
#include "tlsp/mta_sts.h"

namespace tlsp::relay {

tlsrpt::Policy tlsrpt_policy(std::string_view domain, Level level, const std::vector<TlsaRecord>& secure_tlsa,
                             const StsDiscovery* sts) {
  tlsrpt::Policy p;
  p.domain = lower(domain);
  if (!p.domain.empty() && p.domain.back() == '.') p.domain.pop_back();
  const bool consults_dane = level == Level::dane || level == Level::dane_only || level == Level::mta_sts;
  if (consults_dane && !secure_tlsa.empty()) {
    p.type = tlsrpt::PolicyType::tlsa;
    for (const TlsaRecord& r : secure_tlsa) p.strings.push_back(format_tlsa_record(r));
    return p;
  }
  if (level == Level::mta_sts && sts && sts->txt) {
    const MtaStsPolicy* in_force = sts_policy_used(*sts);
    if (in_force && in_force->mode == StsMode::none) return p;  // no policy (RFC 8461 §5)
    p.type = tlsrpt::PolicyType::sts;
    if (in_force) {
      p.strings = mta_sts_policy_lines(*in_force);
      p.mx_host = in_force->mx;
    }
  }
  return p;
}

tlsrpt::SessionRecord tlsrpt_session_record(const TlsrptSession& s, tlsrpt::Policy policy, Reason reason) {
  tlsrpt::SessionRecord r;
  r.session_id = s.relay_hostname + "/" + s.queue_id + "/" + std::to_string(s.attempt) + "/" +
                 (s.mx_host.empty() ? std::string("-") : lower(s.mx_host));
  r.time = s.time;
  r.policy = std::move(policy);
  const std::optional<std::string_view> type = tlsrpt::result_type_of(reason);
  r.success = !type;
  if (type) {
    r.failure.result_type = std::string(*type);
    r.failure.sending_mta_ip = s.sending_ip;
    r.failure.receiving_mx_hostname = lower(s.mx_host);
    r.failure.receiving_ip = s.receiving_ip;
    r.failure.failure_reason_code = "tlsp: " + std::string(to_string(reason));
  }
  return r;
}

void count_tlsrpt_session(RelayContext& ctx, const tlsrpt::SessionRecord& record, std::string_view queue_id) {
  if (!ctx.tlsrpt_store) return;
  std::string error;
  if (ctx.tlsrpt_store->record(record, &error)) return;
  ctx.log->write(LogEvent::tlsrpt, {{"result", "record-failed"},
                                    {"queue_id", std::string(queue_id)},
                                    {"session_id", record.session_id},
                                    {"domain", record.policy.domain},
                                    {"error", error}});
}

}  // namespace tlsp::relay
