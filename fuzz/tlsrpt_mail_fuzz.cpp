// tlsrpt_mail_fuzz.cpp — libFuzzer target for received TLSRPT report mails
// (RFC 6522 multipart/report, RFC 8460 §5.3; tlsp/tlsrpt_report.h): MIME
// headers, boundaries, nesting, base64 and quoted-printable, the report
// inside. Any input gives a report or an error; never a crash or an
// exception, and nothing beyond the reader's limits.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tlsp/tlsrpt_report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)tlsp::tlsrpt::read_report_mail(in);
  (void)tlsp::tlsrpt::read_report(in);
  return 0;
}
