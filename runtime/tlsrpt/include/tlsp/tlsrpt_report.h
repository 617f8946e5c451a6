// tlsp/tlsrpt_report.h — the RFC 8460 §4 report, written and read.
//
// Writing: report_json() turns what a store counted for one policy domain
// on one UTC day (PolicySummary, tlsrpt.h) and the reporting organisation
// into the report's JSON text, with exactly the RFC's field names
// (`failure-reason-code`, never the §4.4 example's `failure-error-code`;
// `mx-host` an array; counts as numbers) and nothing empty: a field with
// no value is left out. The text is a function of its inputs alone
// (policies and failure details sorted, fixed field order, two-space
// indent), so tests compare it with golden text; the one varying part of
// a report, its id, is the caller's (make_report_id()).
//
// Reading: read_report() takes the bytes of a report that arrived for a
// managed domain — its JSON, the JSON gzipped, or the whole mail
// (RFC 6522 multipart/report with an application/tlsrpt+gzip or
// application/tlsrpt+json part) — and is tolerant of what real reporters
// send: `failure-error-code` for `failure-reason-code`, a string
// `mx-host`, optional fields missing, unknown fields and unknown policy
// types kept as text. It is linear in its input and bounded in memory;
// every limit below is named, and hitting one is an error saying which.
// The input is never trusted: an error names what is wrong, and nothing
// that fails to read is half returned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/tlsrpt.h"

namespace tlsp::tlsrpt {

// ------------------------------------------------------------------ writing

// Who a report is from: RFC 8460 §4.3 organization-name and contact-info,
// and §5.3's TLS-Report-Submitter domain (also the right side of the
// report ids made here). The relay's tlsrpt-organization, tlsrpt-contact
// and tlsrpt-submitter settings.
struct Organization {
  std::string name;       // organization-name, e.g. "Acme Mail"
  std::string contact;    // contact-info, e.g. "mailto:tlsrpt@acme.example"
  std::string submitter;  // a domain, e.g. "mx.acme.example"
};

// At most this many failure-details per policy in a report: the details
// with the most failed sessions (ties in the sort order of their fields).
// The sessions of the details left out still count in the policy's
// total-failure-session-count. 1000 distinct (result type, sending IP,
// MX host, receiving IP, reason) for one domain in one day is far beyond
// an honest day's failures, and keeps a report well below the 10 MB a
// receiver commonly accepts (RFC 8460 §5.2).
inline constexpr size_t kMaxFailureDetailsPerPolicy = 1000;

// The RFC 8460 §4 JSON of the report on `day` ("YYYY-MM-DD", UTC) for the
// policies given (one policy domain's, as Store::summaries() returns
// them), with `report_id` as its id. date-range is the whole UTC day:
// start-datetime "DAYT00:00:00Z", end-datetime "DAYT23:59:59Z" (RFC 8460
// §4.1, RFC 3339 date-time, as the RFC's own example). Throws
// std::invalid_argument for a malformed day.
std::string report_json(const Organization& org, std::string_view report_id, std::string_view day,
                        const std::vector<PolicySummary>& policies);

// A report id unique across a fleet: "<day>T000000Z_<domain>_<16 hex>@<submitter>",
// e.g. "20261206T000000Z_example.com_5f1c0a9e3b7d2468@mx.acme.example".
// The RFC 8460 §5.3 Subject carries it as a Report-ID msg-id, so it uses
// only msg-id characters (hence the basic ISO form without `:`); the hex
// part is 64 random bits (getrandom(2)), so two relays sharing a store
// never make the same id. Throws std::invalid_argument for a malformed day.
std::string make_report_id(std::string_view day, std::string_view domain, std::string_view submitter);

// ------------------------------------------------------------------ reading

// A failure detail as a report gave it, with its failed-session-count.
struct ReceivedFailure {
  FailureDetail detail;
  uint64_t count = 0;
};

// One entry of `policies`. The policy type is kept as the text the report
// gave (an unknown type is shown, not dropped); `known_type` is set when it
// is one of RFC 8460's three.
struct ReceivedPolicy {
  std::string type;
  std::optional<PolicyType> known_type;
  std::vector<std::string> strings;
  std::string domain;
  std::vector<std::string> mx_host;
  uint64_t successful = 0;
  uint64_t failed = 0;
  std::vector<ReceivedFailure> failures;
};

struct ReceivedReport {
  std::string organization_name;
  std::string contact_info;
  std::string report_id;
  std::string start_datetime, end_datetime;
  std::vector<ReceivedPolicy> policies;
  // Where the report was found and the quirks tolerated on the way, e.g.
  // "gzip", "mail part application/tlsrpt+gzip",
  // "`failure-error-code` read as `failure-reason-code`".
  std::vector<std::string> notes;
};

// What the input is, found from its bytes (not from a file name): gzip by
// its magic (1f 8b), JSON when the first byte that is not white space is
// `{`, else a mail message.
enum class ReportFormat : uint8_t { json, gzip, mail };
ReportFormat sniff_report_format(std::string_view bytes);

// The reader's limits.
// A report's JSON, as read or as inflated from gzip: at most 16 MiB (a
// receiver commonly refuses more than 10 MB; RFC 8460 §5.2). Inflating
// stops at this many bytes, so a gzip bomb costs 16 MiB, never more.
inline constexpr size_t kMaxReportJsonBytes = 16u << 20;
// A whole report mail: at most 32 MiB (its report part, base64, is 4/3 of
// the gzip, which is much smaller than the JSON).
inline constexpr size_t kMaxReportMailBytes = 32u << 20;
// MIME: multiparts nested at most 8 deep (a report is 1 deep), at most
// 1000 parts in all, at most 1000 header lines per part.
inline constexpr int kMaxMimeDepth = 8;
inline constexpr size_t kMaxMimeParts = 1000;
inline constexpr size_t kMaxMimeHeaderLines = 1000;
// JSON: nesting at most 32 deep (a report is 5 deep), at most 10,000
// policies and 100,000 failure details per report.
inline constexpr int kMaxReportJsonDepth = 32;
inline constexpr size_t kMaxReportPolicies = 10000;
inline constexpr size_t kMaxReportFailureDetails = 100000;

struct ReportReadResult {
  std::optional<ReceivedReport> report;
  std::string error;  // when !report: one line, e.g. "policies[2].summary: ..."
};

// Reads a report in any of the three forms (sniff_report_format()).
ReportReadResult read_report(std::string_view bytes);
// Each form on its own: the JSON text; a gzip of it; a mail holding it.
ReportReadResult read_report_json(std::string_view json);
ReportReadResult read_report_gzip(std::string_view gzip);
ReportReadResult read_report_mail(std::string_view message);

}  // namespace tlsp::tlsrpt
