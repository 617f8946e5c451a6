// tlsrpt_record_fuzz.cpp — libFuzzer target for the TLSRPT `_smtp._tls` TXT
// record (RFC 8460 §3, tlsp/tlsrpt_record.h): the input as one record, as
// one URI, and cut at LF into an RRset for the several-records rule. Any
// input gives a record or a problem; a record that parses has at least one
// usable URI, and each URI parses again alone to the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/tlsrpt_record.h"

namespace {

void check(const tlsp::TlsrptParse& p) {
  if (!p) return;
  if (p.value->rua.empty() || p.value->rua.size() > tlsp::kMaxTlsrptUris) std::abort();
  for (const auto& u : p.value->rua) {
    std::string problem;
    auto again = tlsp::parse_tlsrpt_uri(u.uri, &problem);
    if (!again || !(*again == u)) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  check(tlsp::parse_tlsrpt_txt(in));
  std::string problem;
  (void)tlsp::parse_tlsrpt_uri(in, &problem);
  std::vector<std::string> rrset;
  size_t pos = 0;
  while (pos <= in.size() && rrset.size() < 16) {
    size_t nl = in.find('\n', pos);
    rrset.emplace_back(in.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  check(tlsp::select_tlsrpt_record(rrset));
  return 0;
}
