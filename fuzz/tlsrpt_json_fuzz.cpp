// tlsrpt_json_fuzz.cpp — libFuzzer target for received TLSRPT reports
// (RFC 8460) as JSON and as gzip (tlsp/tlsrpt_report.h): any input gives a
// report or an error, within the reader's limits; never a crash or an
// exception. A report read is written back as JSON, which must not throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tlsp/tlsrpt_report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const tlsp::tlsrpt::ReportReadResult r = tlsp::tlsrpt::read_report_json(in);
  (void)tlsp::tlsrpt::read_report_gzip(in);
  if (r.report) {
    std::vector<tlsp::tlsrpt::PolicySummary> back;
    for (const auto& p : r.report->policies) {
      tlsp::tlsrpt::PolicySummary s;
      s.policy.type = p.known_type.value_or(tlsp::tlsrpt::PolicyType::no_policy_found);
      s.policy.strings = p.strings;
      s.policy.domain = p.domain;
      s.policy.mx_host = p.mx_host;
      s.successful = p.successful;
      s.failed = p.failed;
      for (const auto& f : p.failures) s.failures.emplace_back(f.detail, f.count);
      back.push_back(std::move(s));
    }
    (void)tlsp::tlsrpt::report_json({r.report->organization_name, r.report->contact_info, "fuzz.example"},
                                    r.report->report_id, "2026-12-06", back);
  }
  return 0;
}
