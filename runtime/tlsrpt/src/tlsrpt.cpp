// The TLSRPT data model's names and days (tlsp/tlsrpt.h).
#include "tlsp/tlsrpt.h"

#include <charconv>
#include <cstdio>

namespace tlsp::tlsrpt {

std::string_view to_string(PolicyType t) {
  switch (t) {
    case PolicyType::sts: return "sts";
    case PolicyType::tlsa: return "tlsa";
    case PolicyType::no_policy_found: return "no-policy-found";
  }
  return "no-policy-found";
}

std::optional<PolicyType> parse_policy_type(std::string_view s) {
  for (PolicyType t : {PolicyType::sts, PolicyType::tlsa, PolicyType::no_policy_found})
    if (to_string(t) == s) return t;
  return std::nullopt;
}

std::optional<std::string_view> result_type_of(Reason r) {
  switch (r) {
    case Reason::ok:
    case Reason::tlsa_not_found:
    case Reason::tlsa_insecure:
    case Reason::sts_no_policy:
    case Reason::sts_mode_none:
    case Reason::plaintext_allowed:
    case Reason::starttls_required:
      return std::nullopt;
    case Reason::starttls_not_supported:
    case Reason::certificate_host_mismatch:
    case Reason::certificate_expired:
    case Reason::certificate_not_trusted:
    case Reason::validation_failure:
    case Reason::tlsa_invalid:
    case Reason::dnssec_invalid:
    case Reason::dane_required:
    case Reason::sts_policy_fetch_error:
    case Reason::sts_policy_invalid:
    case Reason::sts_webpki_invalid:
      return to_string(r);
    case Reason::mx_lookup_failed:
    case Reason::tlsa_lookup_failed:
    case Reason::tls_handshake_failure:
    case Reason::tls_version_too_low:
      return "validation-failure";
  }
  return "validation-failure";
}

// Days from the civil date (proleptic Gregorian), so that no time zone or
// locale is involved (timegm is not in POSIX).
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::string utc_day(int64_t unix_seconds) {
  int64_t z = unix_seconds >= 0 ? unix_seconds / 86400 : (unix_seconds - 86399) / 86400;
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  if (y < 0 || y > 9999) return "1970-01-01";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(y), m, d);
  return buf;
}

std::optional<int64_t> parse_utc_day(std::string_view day) {
  if (day.size() != 10 || day[4] != '-' || day[7] != '-') return std::nullopt;
  auto num = [&](size_t at, size_t len) -> std::optional<unsigned> {
    unsigned v = 0;
    for (size_t i = at; i < at + len; ++i) {
      if (day[i] < '0' || day[i] > '9') return std::nullopt;
      v = v * 10 + static_cast<unsigned>(day[i] - '0');
    }
    return v;
  };
  auto y = num(0, 4), m = num(5, 2), d = num(8, 2);
  if (!y || !m || !d || *m < 1 || *m > 12 || *d < 1) return std::nullopt;
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
  if (*d > kDays[*m - 1] + (*m == 2 && leap ? 1 : 0)) return std::nullopt;
  return days_from_civil(*y, *m, *d) * 86400;
}

}  // namespace tlsp::tlsrpt
