// spool_format.cpp — the spool's on-disk format (tlsp/spool.h, docs/spool.md):
// the envelope text, written by serialize_envelope() and read back,
// strictly, by parse_envelope(); the names of batches and entries; and the
// bounds on what an entry may hold, checked on write and on read.
#include "spool_format.h"

#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <set>

#include "tlsp/base/quote.h"

namespace tlsp {
namespace spool {
namespace {

constexpr std::string_view kMagicKey = "tlsp-spool-envelope";
// Bounds on numbers read back from an envelope.
constexpr int kMaxSpoolAttempts = 1000000;

// ------------------------------------------------------------ escaping

bool plain_byte(unsigned char c) { return c >= 0x21 && c <= 0x7E && c != '%'; }

std::string escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (plain_byte(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower case is not what escape() writes: strict
}

std::optional<std::string> unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      unsigned char d = static_cast<unsigned char>(hi * 16 + lo);
      if (plain_byte(d)) return std::nullopt;  // escaped needlessly: not our writer
      out += static_cast<char>(d);
      i += 2;
    } else if (plain_byte(c)) {
      out += static_cast<char>(c);
    } else {
      return std::nullopt;
    }
  }
  return out;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::optional<uint64_t> parse_hex64(std::string_view s) {
  if (s.size() != 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return std::nullopt;
    v = v * 16 + static_cast<uint64_t>(d);
  }
  return v;
}

template <typename T>
std::optional<T> parse_decimal(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  if (s.size() > 1 && s[0] == '0') return std::nullopt;
  for (char c : s)
    if (c < '0' || c > '9') return std::nullopt;
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// ------------------------------------------------------------ validation

bool has_line_breaking_byte(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

using base::ticked;

// An address (or ORCPT) that may go into an envelope; the empty string is
// the null sender and is allowed where `allow_empty`.
std::optional<std::string> address_problem(std::string_view what, std::string_view a, bool allow_empty) {
  if (a.empty() && !allow_empty) return std::string(what) + " is empty";
  if (has_line_breaking_byte(a)) return std::string(what) + " " + ticked(a) + " contains CR, LF or NUL";
  if (a.size() > kMaxSpoolAddressBytes)
    return std::string(what) + " " + ticked(a) + " is longer than " + std::to_string(kMaxSpoolAddressBytes) +
           " bytes";
  return std::nullopt;
}

std::optional<std::string> field_problem(std::string_view what, std::string_view v) {
  if (has_line_breaking_byte(v)) return std::string(what) + " " + ticked(v) + " contains CR, LF or NUL";
  if (v.size() > kMaxSpoolFieldBytes)
    return std::string(what) + " " + ticked(v) + " is longer than " + std::to_string(kMaxSpoolFieldBytes) + " bytes";
  return std::nullopt;
}

}  // namespace

std::optional<std::string> entry_problem(const QueueEntry& e) {
  if (auto p = address_problem("sender", e.mail_from, true)) return p;
  if (e.recipients.size() > kMaxSpoolRecipients)
    return "more than " + std::to_string(kMaxSpoolRecipients) + " recipients in one entry";
  if (e.failed_recipients.size() > kMaxSpoolRecipients)
    return "more than " + std::to_string(kMaxSpoolRecipients) + " failed recipients in one entry";
  if (e.orcpts.size() > kMaxSpoolRecipients)
    return "more than " + std::to_string(kMaxSpoolRecipients) + " original recipients in one entry";
  for (const auto& r : e.recipients)
    if (auto p = address_problem("recipient", r, false)) return p;
  for (const auto& [a, reply] : e.failed_recipients)
    if (auto p = address_problem("failed recipient", a, false)) return p;
  for (const auto& o : e.orcpts) {
    if (auto p = address_problem("recipient", o.address, false)) return p;
    if (auto p = address_problem("original recipient", o.orcpt, false)) return p;
  }
  if (auto p = field_problem("managed domain", e.managed_domain)) return p;
  if (auto p = field_problem("destination", e.destination)) return p;
  if (auto p = field_problem("client address", e.client_address)) return p;
  if (auto p = field_problem("client helo", e.client_helo)) return p;
  if (auto p = field_problem("sender peer", e.sender_peer)) return p;
  if (e.arrival < 0 || e.next_attempt < 0) return std::string("negative time in an entry");
  if (e.attempts < 0 || e.attempts > kMaxSpoolAttempts) return std::string("attempt count out of range");
  return std::nullopt;
}

std::string cut_text(std::string_view s) { return std::string(s.substr(0, kMaxSpoolTextBytes)); }

std::string escape_value(std::string_view s) { return escape(s); }
std::optional<std::string> unescape_value(std::string_view s) { return unescape(s); }
std::optional<uint64_t> parse_count(std::string_view s) { return parse_decimal<uint64_t>(s); }

// ------------------------------------------------------------ names

namespace {

bool is_hex_run(std::string_view s) {
  if (s.empty() || s.size() > 16) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

// `<hex>-<hex>-<hex>`
bool valid_batch_name(std::string_view s) {
  if (s.size() > kMaxBatchNameBytes) return false;
  size_t a = s.find('-');
  if (a == std::string_view::npos) return false;
  size_t b = s.find('-', a + 1);
  if (b == std::string_view::npos) return false;
  return is_hex_run(s.substr(0, a)) && is_hex_run(s.substr(a + 1, b - a - 1)) && is_hex_run(s.substr(b + 1));
}

bool valid_index(std::string_view s) {
  auto v = parse_decimal<uint64_t>(s);
  return v && *v < kMaxSpoolEntriesPerStore;
}

bool valid_entry_id(std::string_view id) {
  size_t dot = id.rfind('.');
  return dot != std::string_view::npos && valid_batch_name(id.substr(0, dot)) && valid_index(id.substr(dot + 1));
}

}  // namespace spool

using namespace spool;

// ------------------------------------------------------------ envelopes

std::string QueueEntry::orcpt_of(std::string_view address) const {
  for (const auto& o : orcpts)
    if (o.address == address) return o.orcpt;
  return {};
}

std::string serialize_envelope(const QueueEntry& e, uint64_t data_bytes, uint64_t data_checksum) {
  if (auto p = entry_problem(e)) throw SpoolError("cannot write the envelope: " + *p);
  if (!valid_entry_id(e.id)) throw SpoolError("cannot write the envelope: bad id " + ticked(e.id));
  std::string t;
  auto line = [&t](std::string_view key, std::string_view value) {
    t += key;
    t += ": ";
    t += value;
    t += '\n';
  };
  const int version = e.tlsrpt_report ? kSpoolReportEnvelopeVersion
                      : e.held        ? kSpoolHeldEnvelopeVersion
                                      : kSpoolEnvelopeVersion;
  line(kMagicKey, std::to_string(version));
  line("id", e.id);
  if (e.held) line("held", "1");
  if (e.tlsrpt_report) line("tlsrpt-report", "1");
  line("mail-from", escape(e.mail_from));
  line("direction", to_string(e.direction));
  line("managed-domain", escape(e.managed_domain));
  line("destination", escape(e.destination));
  line("client-address", escape(e.client_address));
  line("client-helo", escape(e.client_helo));
  line("sender-peer", escape(e.sender_peer));
  line("body-8bit", e.body_8bit ? "1" : "0");
  line("arrival", std::to_string(e.arrival));
  line("attempts", std::to_string(e.attempts));
  line("next-attempt", std::to_string(e.next_attempt));
  line("last-error", escape(cut_text(e.last_error)));
  line("data-bytes", std::to_string(data_bytes));
  line("data-xxh3", hex64(data_checksum));
  for (const auto& r : e.recipients) line("recipient", escape(r));
  for (const auto& o : e.orcpts) line("orcpt", escape(o.address) + " " + escape(o.orcpt));
  for (const auto& [a, reply] : e.failed_recipients) line("failed", escape(a) + " " + escape(cut_text(reply)));
  line("checksum", hex64(XXH3_64bits(t.data(), t.size())));
  return t;
}

bool parse_envelope(std::string_view text, ParsedEnvelope& out, std::string& problem) {
  out = ParsedEnvelope{};
  if (text.size() > kMaxSpoolEnvelopeBytes) {
    problem = "envelope larger than " + std::to_string(kMaxSpoolEnvelopeBytes) + " bytes";
    return false;
  }
  if (text.empty() || text.back() != '\n') {
    problem = "envelope is truncated (no final line end)";
    return false;
  }
  // The checksum line is the last one and covers every byte before it.
  size_t last_start = text.rfind('\n', text.size() - 2);
  last_start = last_start == std::string_view::npos ? 0 : last_start + 1;
  std::string_view last = text.substr(last_start, text.size() - 1 - last_start);
  constexpr std::string_view kChecksumKey = "checksum: ";
  if (last.substr(0, kChecksumKey.size()) != kChecksumKey) {
    problem = "envelope has no checksum line (torn write?)";
    return false;
  }
  auto sum = parse_hex64(last.substr(kChecksumKey.size()));
  std::string_view body = text.substr(0, last_start);
  if (!sum || *sum != XXH3_64bits(body.data(), body.size())) {
    problem = "envelope checksum mismatch (corrupted)";
    return false;
  }

  QueueEntry& e = out.entry;
  std::set<std::string, std::less<>> seen;
  size_t pos = 0;
  size_t line_no = 0;
  bool have_version = false;
  int version = 0;
  while (pos < body.size()) {
    size_t nl = body.find('\n', pos);
    std::string_view ln = body.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    size_t colon = ln.find(": ");
    if (colon == std::string_view::npos) {
      problem = "envelope line " + std::to_string(line_no) + " is not `key: value`";
      return false;
    }
    std::string_view key = ln.substr(0, colon), raw = ln.substr(colon + 2);
    auto bad = [&](std::string_view why) {
      problem = "envelope line " + std::to_string(line_no) + " (`" + std::string(key) + "`): " + std::string(why);
      return false;
    };
    if (line_no == 1) {
      if (key != kMagicKey) return bad("not a tlsp spool envelope");
      if (raw == std::to_string(kSpoolEnvelopeVersion))
        version = kSpoolEnvelopeVersion;
      else if (raw == std::to_string(kSpoolHeldEnvelopeVersion))
        version = kSpoolHeldEnvelopeVersion;
      else if (raw == std::to_string(kSpoolReportEnvelopeVersion))
        version = kSpoolReportEnvelopeVersion;
      else
        return bad("unsupported envelope version " + ticked(raw));
      have_version = true;
      continue;
    }
    bool repeated = key == "recipient" || key == "orcpt" || key == "failed";
    if (!repeated && !seen.insert(std::string(key)).second) return bad("key given twice");

    // Two-part values: `a b`, both escaped (so neither holds a space).
    auto split_pair = [&](std::string& a, std::string& b) {
      size_t sp = raw.find(' ');
      if (sp == std::string_view::npos) return false;
      auto x = unescape(raw.substr(0, sp)), y = unescape(raw.substr(sp + 1));
      if (!x || !y) return false;
      a = std::move(*x);
      b = std::move(*y);
      return true;
    };
    if (key == "recipient") {
      auto v = unescape(raw);
      if (!v) return bad("bad escape");
      e.recipients.push_back(std::move(*v));
      continue;
    }
    if (key == "orcpt") {
      SpoolRecipient r;
      if (!split_pair(r.address, r.orcpt)) return bad("want `address orcpt`");
      e.orcpts.push_back(std::move(r));
      continue;
    }
    if (key == "failed") {
      std::pair<std::string, std::string> f;
      if (!split_pair(f.first, f.second)) return bad("want `address reply`");
      if (f.second.size() > kMaxSpoolTextBytes) return bad("reply too long");
      e.failed_recipients.push_back(std::move(f));
      continue;
    }
    if (key == "id") {
      if (!valid_entry_id(raw)) return bad("bad id");
      e.id = std::string(raw);
    } else if (key == "direction") {
      auto d = parse_direction(raw);
      if (!d) return bad("unknown direction");
      e.direction = *d;
    } else if (key == "held") {
      // Version 2 and later, and only ever `1`: an entry not held is version 1.
      if (version < kSpoolHeldEnvelopeVersion) return bad("unknown key");
      if (raw != "1") return bad("want 1");
      e.held = true;
    } else if (key == "tlsrpt-report") {
      // Version 3 only, and only ever `1`.
      if (version != kSpoolReportEnvelopeVersion) return bad("unknown key");
      if (raw != "1") return bad("want 1");
      e.tlsrpt_report = true;
    } else if (key == "body-8bit") {
      if (raw != "0" && raw != "1") return bad("want 0 or 1");
      e.body_8bit = raw == "1";
    } else if (key == "arrival" || key == "next-attempt") {
      auto v = parse_decimal<int64_t>(raw);
      if (!v) return bad("bad number");
      (key == "arrival" ? e.arrival : e.next_attempt) = *v;
    } else if (key == "attempts") {
      auto v = parse_decimal<int>(raw);
      if (!v || *v > kMaxSpoolAttempts) return bad("bad number");
      e.attempts = *v;
    } else if (key == "data-bytes") {
      auto v = parse_decimal<uint64_t>(raw);
      if (!v) return bad("bad number");
      out.data_bytes = *v;
    } else if (key == "data-xxh3") {
      auto v = parse_hex64(raw);
      if (!v) return bad("bad checksum");
      out.data_checksum = *v;
    } else {
      static const std::map<std::string_view, std::string QueueEntry::*> kText = {
          {"mail-from", &QueueEntry::mail_from},
          {"managed-domain", &QueueEntry::managed_domain},
          {"destination", &QueueEntry::destination},
          {"client-address", &QueueEntry::client_address},
          {"client-helo", &QueueEntry::client_helo},
          {"sender-peer", &QueueEntry::sender_peer},
          {"last-error", &QueueEntry::last_error},
      };
      auto it = kText.find(key);
      if (it == kText.end()) return bad("unknown key");
      auto v = unescape(raw);
      if (!v) return bad("bad escape");
      e.*(it->second) = std::move(*v);
    }
  }
  if (!have_version) {
    problem = "envelope is empty";
    return false;
  }
  for (std::string_view k : {"id", "mail-from", "direction", "managed-domain", "destination", "client-address",
                             "client-helo", "sender-peer", "body-8bit", "arrival", "attempts", "next-attempt",
                             "last-error", "data-bytes", "data-xxh3"}) {
    if (!seen.count(k)) {
      problem = "envelope lacks `" + std::string(k) + "`";
      return false;
    }
  }
  if (version == kSpoolHeldEnvelopeVersion && !e.held) {
    problem = "envelope lacks `held`";
    return false;
  }
  if (version == kSpoolReportEnvelopeVersion && !e.tlsrpt_report) {
    problem = "envelope lacks `tlsrpt-report`";
    return false;
  }
  e.size = out.data_bytes;
  if (e.last_error.size() > kMaxSpoolTextBytes) {
    problem = "envelope `last-error` too long";
    return false;
  }
  if (auto p = entry_problem(e)) {
    problem = "envelope: " + *p;
    return false;
  }
  return true;
}

}  // namespace tlsp
