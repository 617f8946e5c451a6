// tlsp/tlsrpt_send.h — getting a TLSRPT report (RFC 8460 §4 JSON, built by
// tlsp/tlsrpt_report.h) to the policy domain's collectors: the gzip body,
// the RFC 8460 §5.1 file name, the §5.3 report mail (for the relay's own
// spool: mailto: goes through the queue, which retries already), and the
// outbox of https: deliveries, retried with backoff (§5.5). Discovery and
// the POST itself are tlsp/tlsrpt_delivery.h's (runtime/net).
//
// Contract:
//  * gzip_report() is RFC 1952 gzip (zlib, level 9); gunzip_report() its
//    inverse for at most `limit` output bytes (nothing for a malformed
//    stream, trailing garbage or more than `limit`).
//  * tlsrpt_report_filename() is §5.1:
//    `<submitter>!<policy-domain>!<begin-unix>!<end-unix>[!<unique>].json.gz`,
//    `unique` reduced to its letters and digits (left out when none).
//  * make_tlsrpt_mail() builds the §5.3 message: headers From (the
//    configured sender), To, Date (RFC 5322, UTC, from `now`), Message-ID
//    (given, or random `@submitter`), Subject `Report Domain: <d>
//    Submitter: <s> Report-ID: <<id>>`, TLS-Report-Domain,
//    TLS-Report-Submitter, Auto-Submitted: auto-generated (RFC 3834),
//    MIME-Version, Content-Type multipart/report; report-type="tlsrpt"
//    (RFC 6522); a text/plain part for people; the report as an
//    application/tlsrpt+gzip part, base64, Content-Disposition attachment
//    with the §5.1 file name. Every line ends in CRLF and is at most 998
//    octets (long header values are folded, RFC 5322 §2.2.3); the message
//    is 7-bit. The boundary occurs nowhere in the content. Deterministic
//    for a given input with a given message_id. The envelope: the
//    configured sender as MAIL FROM (never the null sender: a report is
//    not a bounce, and its own bounce should reach the operator), the
//    mailto address as the one recipient. Throws std::invalid_argument
//    naming the field for an address or name that cannot be written
//    (CR, LF, not `local@domain`, not a host name).
//  * The mail is queued by the relay with QueueEntry::tlsrpt_report set
//    (tlsp/spool.h): RFC 8460 §3, "reports MUST NOT be held to the
//    policy", and its session is not recorded for the next report.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/tlsrpt_delivery.h"
#include "tlsp/tlsrpt_report.h"

namespace tlsp::tlsrpt {

// A report's JSON is bounded by the reader's kMaxReportJsonBytes (16 MiB,
// tlsp/tlsrpt_report.h): one limit for a report, sent or read.

// A report id goes into the Subject, the file name and the text part; a
// longer one (ours are far shorter) could not keep their lines short.
inline constexpr size_t kMaxReportIdBytes = 256;

std::string gzip_report(std::string_view json);
std::optional<std::string> gunzip_report(std::string_view gz, size_t limit = kMaxReportJsonBytes);

std::string tlsrpt_report_filename(std::string_view submitter, std::string_view policy_domain, int64_t begin,
                                   int64_t end, std::string_view unique = {});

struct ReportMailInput {
  std::string from;           // the envelope sender and From: (`tlsrpt-from`)
  std::string to;             // the mailto: address
  std::string policy_domain;  // TLS-Report-Domain
  std::string submitter;      // TLS-Report-Submitter: the report's organisation's domain
  std::string report_id;      // the report's report-id
  int64_t begin = 0;          // the report's date-range, unix seconds
  int64_t end = 0;
  int64_t now = 0;            // the Date
  std::string message_id;     // without <>; "" = random
  std::string report_json;    // the RFC 8460 §4 report
};

struct ReportMail {
  std::string mail_from;                // the envelope sender
  std::vector<std::string> recipients;  // the one mailto address
  std::string data;                     // the message, CRLF lines
};

ReportMail make_tlsrpt_mail(const ReportMailInput& input);

// ------------------------------------------------------------------ outbox
//
// The https: deliveries still to make, one file per (report-id, URI) in a
// directory of their own (the relay's `<spool>/tlsrpt-outbox`), written
// atomically (tlsp/base/atomic_file.h), so a restart goes on where it
// stopped. run() tries every entry that is due: a 2xx removes it; a
// failure is retried after kOutboxFirstRetry, doubling up to
// kOutboxMaxRetry, until kOutboxGiveUpAfter has passed since the entry was
// added (RFC 8460 §5.5: "up to 24 hours", "with exponential backoff"),
// then the entry is dropped. Every outcome is returned for the log. A
// file that does not pass its checks (format, digest) is dropped and
// said. Entries are made and run by one process at a time (the relay, or
// `tlsp tlsrpt send` when no relay runs).

inline constexpr std::chrono::seconds kOutboxFirstRetry{300};
inline constexpr std::chrono::seconds kOutboxMaxRetry{4 * 3600};
inline constexpr std::chrono::seconds kOutboxGiveUpAfter{24 * 3600};
// A gzipped report far larger than any real one; bounds an entry on read.
inline constexpr size_t kMaxOutboxReportBytes = size_t{16} << 20;

struct OutboxEvent {
  enum class Kind : uint8_t { delivered, deferred, given_up, corrupt } kind = Kind::deferred;
  std::string report_id;
  std::string uri;
  int attempts = 0;
  int64_t next_attempt = 0;  // deferred: when it is tried again
  std::string detail;        // the POST's detail, or why the file was dropped
};
std::string_view to_string(OutboxEvent::Kind k);  // "delivered", "deferred", "given-up", "corrupt"

// The POST, injectable so that the retry policy is tested with a real
// server and time given, not waited for. Default: post_tlsrpt_report()
// through the resolver.
using ReportPoster = std::function<TlsrptPostResult(const TlsrptUri& uri, std::string_view body)>;

class Outbox {
 public:
  // Creates the directory (not its parents, mode 0700) when missing.
  // Throws std::runtime_error naming it when it cannot be used.
  explicit Outbox(std::string directory);
  const std::string& directory() const { return dir_; }

  // Adds a delivery, due at once; an entry for the same (report-id, URI)
  // is left as it is (adding again is harmless). False, `error` set, when
  // nothing was written (the URI is not https:, the disk).
  bool add(std::string_view report_id, const TlsrptUri& uri, std::string_view gz_body, int64_t now,
           std::string* error = nullptr);
  // Tries every due entry once (in name order) and returns what happened.
  std::vector<OutboxEvent> run(int64_t now, const ReportPoster& post);
  // Entries waiting (for status and tests).
  size_t size() const;

 private:
  std::string dir_;
};

// The relay's periodic call: Outbox::run() with the POST through the
// relay's resolver and trust settings.
std::vector<OutboxEvent> tlsrpt_outbox_run(Outbox& outbox, int64_t now, const dns::Resolver& resolver,
                                           const TlsrptPostConfig& config);

}  // namespace tlsp::tlsrpt
