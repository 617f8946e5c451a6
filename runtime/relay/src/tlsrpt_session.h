// tlsrpt_session.h — what the relay counts for TLSRPT (RFC 8460) about one
// outbound SMTP session, and the counting itself (tlsp/tlsrpt_store.h).
// Not a public header; delivery.cpp is its one caller.
//
// Contract:
//  * tlsrpt_policy() is the one rule for the policy a session is counted
//    under (RFC 8460 §4.3): `tlsa` with the DNSSEC-secure TLSA records
//    (presentation form) when the level consults DANE and they exist
//    (DANE wins over MTA-STS, RFC 8461 §2); else `sts` when the level is
//    mta-sts and the domain publishes it: the policy in force as its lines
//    (mta_sts_policy_lines) and its mx patterns, or no strings when none
//    could be had (the session then fails as sts-policy-fetch-error or
//    -invalid); else `no-policy-found`. A policy of mode `none` is no
//    policy (RFC 8461 §5).
//  * tlsrpt_session_record() makes the record of one session: success
//    unless the outcome's reason has an RFC 8460 result type
//    (tlsrpt::result_type_of, its one owner); the failure detail names the
//    MX host, the addresses when a connection was made, and tlsp's reason
//    as failure-reason-code. The session id is
//    `<relay hostname>/<queue id>/<attempt>/<mx host>`: one per MX host per
//    delivery run, so recording again after a crash (the run repeats with
//    the same attempt number) counts nothing twice (the stores are
//    idempotent per id).
//  * count_tlsrpt_session() records it; a store that fails is logged
//    (`tlsrpt result=record-failed`) and delivery goes on.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/dane.h"
#include "tlsp/engine.h"
#include "tlsp/mta_sts_fetch.h"
#include "tlsp/tlsrpt.h"

namespace tlsp::relay {

struct RelayContext;

tlsrpt::Policy tlsrpt_policy(std::string_view domain, Level level, const std::vector<TlsaRecord>& secure_tlsa,
                             const StsDiscovery* sts);

struct TlsrptSession {
  std::string relay_hostname;
  std::string queue_id;
  int attempt = 0;              // the run's number: the entry's attempts so far + 1
  std::string mx_host;          // "" when the MX lookup itself failed
  std::string sending_ip;       // "" when no connection was made
  std::string receiving_ip;
  int64_t time = 0;             // unix seconds
};

tlsrpt::SessionRecord tlsrpt_session_record(const TlsrptSession& s, tlsrpt::Policy policy, Reason reason);

void count_tlsrpt_session(RelayContext& ctx, const tlsrpt::SessionRecord& record, std::string_view queue_id);

}  // namespace tlsp::relay
