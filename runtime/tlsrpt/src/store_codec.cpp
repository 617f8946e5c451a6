// store_codec.cpp — see store_codec.h.
#include "store_codec.h"

namespace tlsp::tlsrpt::codec {
namespace {

// More would be a store written by something else: an MTA-STS policy has a
// few lines, a TLSA RRset a few records.
constexpr size_t kMaxListLength = 10000;

void put_list(std::string& out, const std::vector<std::string>& list) {
  out += netstring(std::to_string(list.size()));
  for (const std::string& s : list) out += netstring(s);
}

std::optional<size_t> count(std::string_view& text) {
  std::optional<std::string_view> n = next_netstring(text);
  if (!n || n->empty() || n->size() > 5) return std::nullopt;
  size_t v = 0;
  for (char c : *n) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  if (v > kMaxListLength) return std::nullopt;
  return v;
}

bool get_list(std::string_view& text, std::vector<std::string>& list) {
  std::optional<size_t> n = count(text);
  if (!n) return false;
  for (size_t i = 0; i < *n; ++i) {
    std::optional<std::string_view> s = next_netstring(text);
    if (!s) return false;
    list.emplace_back(*s);
  }
  return true;
}

}  // namespace

std::string netstring(std::string_view s) { return std::to_string(s.size()) + ":" + std::string(s) + ","; }

std::optional<std::string_view> next_netstring(std::string_view& text) {
  size_t len = 0;
  size_t i = 0;
  while (i < text.size() && i < 10 && text[i] >= '0' && text[i] <= '9') len = len * 10 + static_cast<size_t>(text[i++] - '0');
  if (i == 0 || i >= text.size() || text[i] != ':' || (i > 1 && text[0] == '0')) return std::nullopt;
  ++i;
  if (text.size() - i < len + 1 || text[i + len] != ',') return std::nullopt;
  std::string_view s = text.substr(i, len);
  text.remove_prefix(i + len + 1);
  return s;
}

std::string encode_policy(const Policy& p) {
  std::string out = netstring(to_string(p.type)) + netstring(p.domain);
  put_list(out, p.strings);
  put_list(out, p.mx_host);
  return out;
}

std::optional<Policy> decode_policy(std::string_view text) {
  Policy p;
  std::optional<std::string_view> type = next_netstring(text);
  std::optional<PolicyType> t = type ? parse_policy_type(*type) : std::nullopt;
  if (!t) return std::nullopt;
  p.type = *t;
  std::optional<std::string_view> domain = next_netstring(text);
  if (!domain) return std::nullopt;
  p.domain = std::string(*domain);
  if (!get_list(text, p.strings) || !get_list(text, p.mx_host) || !text.empty()) return std::nullopt;
  return p;
}

std::string encode_detail(const FailureDetail& d) {
  std::string out;
  for (const std::string* f : {&d.result_type, &d.sending_mta_ip, &d.receiving_mx_hostname, &d.receiving_mx_helo,
                               &d.receiving_ip, &d.additional_information, &d.failure_reason_code})
    out += netstring(*f);
  return out;
}

std::optional<FailureDetail> decode_detail(std::string_view text) {
  FailureDetail d;
  for (std::string* f : {&d.result_type, &d.sending_mta_ip, &d.receiving_mx_hostname, &d.receiving_mx_helo,
                         &d.receiving_ip, &d.additional_information, &d.failure_reason_code}) {
    std::optional<std::string_view> s = next_netstring(text);
    if (!s) return std::nullopt;
    *f = std::string(*s);
  }
  if (!text.empty()) return std::nullopt;
  return d;
}

}  // namespace tlsp::tlsrpt::codec
