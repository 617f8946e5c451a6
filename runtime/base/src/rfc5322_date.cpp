// rfc5322_date.cpp — RFC 5322 dates (tlsp/base/rfc5322_date.h).
#include "tlsp/base/rfc5322_date.h"

#include <cstdio>
#include <ctime>

namespace tlsp::base {

std::string rfc5322_date(int64_t unix_seconds) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (static_cast<int64_t>(t) != unix_seconds || !gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0) {
    t = 0;
    gmtime_r(&t, &tm);
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

}  // namespace tlsp::base
