// tlsp/dsn.h — the bounce the relay sends to a sender whose message could
// not be delivered: an RFC 3464 delivery status notification inside an
// RFC 6522 multipart/report (SPEC §3, §6).
//
// Contract of make_bounce():
//  * Headers: From `MAILER-DAEMON@<reporting host>`, To the original
//    sender, Subject "Undelivered Mail Returned to Sender", Date (RFC 5322,
//    from `now`, UTC), Message-ID (given, or random), Auto-Submitted:
//    auto-replied (RFC 3834), MIME-Version, Content-Type multipart/report;
//    report-type=delivery-status.
//  * Part 1, text/plain: why, per recipient: the last error, the policy rule
//    and reason code when given.
//  * Part 2, message/delivery-status: per-message fields (Reporting-MTA:
//    dns; host, Original-Envelope-Id when given, Arrival-Date), then per
//    recipient (Original-Recipient when given, Final-Recipient: rfc822;
//    addr, Action: failed, Status: status_code_of(), Remote-MTA when known,
//    Diagnostic-Code: `smtp; <reply>` for an SMTP reply or `X-tlsp; <text>`
//    otherwise, Last-Attempt-Date when known, X-Tlsp-Policy-Rule and
//    X-Tlsp-Reason when given).
//  * Part 3, text/rfc822-headers: the original header section, cut before
//    the first header field that would pass `header_limit` bytes (the
//    human part says so when it cuts).
//  * Every line ends in CRLF and is at most kDsnMaxLineBytes octets (long
//    values are folded, RFC 5322 §2.2.3); the boundary occurs nowhere in
//    the content. Without `allow_8bit` the result is 7-bit: other bytes in
//    the copied headers and texts become `?`. Control characters in any
//    given text never reach the output as such.
//  * Deterministic for a given input with a given message_id.
// Throws std::invalid_argument for an empty original sender (the null
// sender is never bounced: RFC 5321 §6.1; that is the caller's rule, the
// builder only refuses to address nobody) or an empty reporting host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/base/rfc5322_date.h"

namespace tlsp {

inline constexpr size_t kDsnMaxLineBytes = 998;            // RFC 5322 §2.1.1, without CRLF
inline constexpr size_t kDsnFoldBytes = 78;               // where long field values are folded (RFC 5322 §2.1.1)
inline constexpr size_t kDsnDefaultHeaderLimit = 32 * 1024;  // part 3: original header bytes kept
inline constexpr size_t kDsnMaxTextBytes = 4096;          // a reply or error quoted per recipient

struct BounceRecipient {
  std::string address;          // Final-Recipient
  std::string orcpt;            // RFC 3461 ORCPT as given (`rfc822;user@example`), or ""
  std::string reply;            // last reply (`550 5.1.1 no such user`, lines may be CRLF-joined) or error text
  bool permanent = true;        // false: given up after temporary refusals (queue lifetime)
  std::string remote_mta;       // host that gave the reply, "" when unknown
  std::string policy_rule;      // the policy rule that applied (`policies/a.tlsp:12`), or ""
  std::string reason_code;      // SPEC §3 reason code (`dane-required`), or ""
  int64_t last_attempt = 0;     // unix seconds, 0 = unknown
};

struct BounceInput {
  std::string reporting_host;   // our host name (Reporting-MTA, From, Message-ID)
  std::string original_sender;  // the envelope sender bounced to (never "")
  std::string envelope_id;      // RFC 3461 ENVID, or ""
  int64_t arrival = 0;          // unix seconds
  int64_t now = 0;              // unix seconds: the Date
  std::string message_id;       // without <>; "" = `<random hex>@<reporting host>`
  std::vector<BounceRecipient> recipients;
  std::string_view original_message;  // the data as stored (CRLF or LF lines)
  size_t header_limit = kDsnDefaultHeaderLimit;
  bool allow_8bit = false;      // keep 8-bit bytes of the original headers (the caller sends with 8BITMIME)
};

std::string make_bounce(const BounceInput& input);

// The RFC 3463 status for a failed recipient: the enhanced code of the
// reply (`550 5.1.1 ...` -> `5.1.1`) when it has one whose class agrees with
// the reply code; otherwise `5.0.0` when permanent, `4.4.7` (delivery time
// expired) when not.
std::string status_code_of(std::string_view reply, bool permanent);

// RFC 5322 date-time in UTC: `Tue, 07 Nov 2023 12:34:56 +0000`
// (tlsp/base/rfc5322_date.h owns it; the relay's Received: line uses it too).
using base::rfc5322_date;

}  // namespace tlsp
