// tlsp/tlsrpt.h — the TLSRPT (RFC 8460) data model: what the relay records
// about each outbound session, what a store adds up per policy domain and
// UTC day, and what a report is built from. Shared by the store
// (tlsrpt_store.h: SQLite, Redis), the report writer and reader
// (tlsrpt_report.h) and the sender (tlsrpt_send.h).
//
// Contract:
// - One SessionRecord per outbound SMTP session (one connection to one MX
//   host, however many messages it carried); a retry is a new session.
//   `session_id` is unique per session and is what makes recording
//   idempotent: a store counts a given id once, whatever happens (a
//   retried write, a relay restarted after kill -9).
// - A policy is identified by all of its RFC 8460 §4.3 fields (type,
//   strings, domain, mx-host patterns): the same domain may report two
//   policies in one day (an MTA-STS policy replaced by a new id).
// - A failure detail is identified by all of its fields; the store counts
//   sessions per (policy, detail).
// - Names and days are normalised before they reach a store: domains are
//   lower-case A-labels without a trailing dot, days are "YYYY-MM-DD" UTC.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/engine.h"

namespace tlsp::tlsrpt {

// RFC 8460 §4.3 policy-type.
enum class PolicyType : uint8_t { sts, tlsa, no_policy_found };
std::string_view to_string(PolicyType t);  // "sts", "tlsa", "no-policy-found"
std::optional<PolicyType> parse_policy_type(std::string_view s);

// RFC 8460 §4.3 "policy" object, minus the counts.
struct Policy {
  PolicyType type = PolicyType::no_policy_found;
  // sts: the policy file's lines ("version: STSv1", "mode: enforce", ...);
  // tlsa: each TLSA record in presentation form ("3 1 1 abcd..."); none
  // for no-policy-found.
  std::vector<std::string> strings;
  std::string domain;                   // the policy domain (the recipient domain)
  std::vector<std::string> mx_host;     // sts: the policy's mx patterns; else empty
  friend bool operator==(const Policy&, const Policy&) = default;
};

// RFC 8460 §4.3 "failure-details" entry, minus failed-session-count.
// Empty strings are fields left out of the report.
struct FailureDetail {
  std::string result_type;              // RFC 8460 §4.3 result-type, e.g. "starttls-not-supported"
  std::string sending_mta_ip;
  std::string receiving_mx_hostname;
  std::string receiving_mx_helo;
  std::string receiving_ip;
  std::string additional_information;   // a URI, per RFC 8460
  std::string failure_reason_code;      // free text, e.g. "tlsp: tls-version-too-low"
  friend bool operator==(const FailureDetail&, const FailureDetail&) = default;
};

struct SessionRecord {
  std::string session_id;               // unique per session (see the contract)
  int64_t time = 0;                     // when the session ended, unix seconds; its UTC day is the report day
  Policy policy;
  bool success = false;
  FailureDetail failure;                // when !success
};

// What a store holds for one policy on one day.
struct PolicySummary {
  Policy policy;
  uint64_t successful = 0;
  uint64_t failed = 0;
  std::vector<std::pair<FailureDetail, uint64_t>> failures;  // failed-session-count per detail
};

// The RFC 8460 result type a session outcome reports as: a reason that is
// an RFC 8460 result type is that type; tlsp's own failure reasons report as
// "validation-failure" (docs/engine.md). Nothing for `ok` and for the
// reasons that only say no policy applies (tlsa-not-found, tlsa-insecure,
// sts-no-policy, sts-mode-none: the session then counts under
// no-policy-found and succeeds when TLS was negotiated), and for the
// inbound-only reasons, which no outbound session has.
std::optional<std::string_view> result_type_of(Reason r);

// "YYYY-MM-DD" of a unix time in UTC; and back to the day's first second
// (nothing for a malformed day).
std::string utc_day(int64_t unix_seconds);
std::optional<int64_t> parse_utc_day(std::string_view day);

}  // namespace tlsp::tlsrpt
