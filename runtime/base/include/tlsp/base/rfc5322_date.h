// tlsp/base/rfc5322_date.h — the date-time of RFC 5322 §3.3 for message
// headers (Date:, Received:, a DSN's Arrival-Date:), in UTC: "Mon, 07 Dec
// 2026 06:10:00 +0000". The one spelling for the relay's Received: line and
// the DSNs it writes.
//
// Contract: English day and month names whatever the locale (no strftime);
// a time gmtime(3) cannot represent, or before year 0, is written as the
// epoch, so the result
// is always a valid date.
#pragma once

#include <cstdint>
#include <string>

namespace tlsp::base {

std::string rfc5322_date(int64_t unix_seconds);

}  // namespace tlsp::base
