// dsn.cpp — bounces: RFC 3464 delivery status notifications in an RFC 6522
// multipart/report (tlsp/dsn.h). Every line is built through one of two
// writers (header_field, text_line) that fold and cut, so the CRLF and
// 998-octet rules hold whatever the input.
#include "tlsp/base/digest.h"
#include "tlsp/dsn.h"

#include <openssl/rand.h>
#include <xxhash.h>

#include <cstdio>
#include <ctime>
#include <stdexcept>

namespace tlsp {
namespace {

constexpr std::string_view kCrlf = "\r\n";
constexpr size_t kMessageIdRandomBytes = 16;
constexpr int kBoundaryAttempts = 1000;

// One line of output text: control characters (a bare CR or LF, NUL,
// ESC...) become `?` (HTAB a space), 8-bit bytes too unless allowed.
std::string clean(std::string_view s, bool allow_8bit) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c == '\t')
      out += ' ';
    else if (c < 0x20 || c == 0x7F || (c >= 0x80 && !allow_8bit))
      out += '?';
    else
      out += static_cast<char>(c);
  }
  return out;
}

// A reply or error text on one line: lines joined by a space, cut.
std::string one_line_text(std::string_view s) {
  std::string joined;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t nl = s.find('\n', pos);
    std::string_view ln = s.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!ln.empty() && ln.back() == '\r') ln.remove_suffix(1);
    while (!ln.empty() && (ln.front() == ' ' || ln.front() == '\t')) ln.remove_prefix(1);
    while (!ln.empty() && (ln.back() == ' ' || ln.back() == '\t')) ln.remove_suffix(1);
    if (!ln.empty()) {
      if (!joined.empty()) joined += ' ';
      joined += ln;
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  if (joined.size() > kDsnMaxTextBytes) joined = joined.substr(0, kDsnMaxTextBytes) + "...";
  return clean(joined, false);
}

// Appends `first` + `value` folded at spaces near kDsnFoldBytes; a word too
// long for kDsnMaxLineBytes is split hard. Continuation lines start with
// `indent` (a space for header fields: RFC 5322 folding).
void fold_into(std::string& out, std::string_view first, std::string_view value, std::string_view indent) {
  std::string line(first);
  bool line_has_word = false;
  size_t pos = 0;
  auto flush_long = [&] {
    while (line.size() > kDsnMaxLineBytes) {
      out += line.substr(0, kDsnMaxLineBytes);
      out += kCrlf;
      line = std::string(indent) + line.substr(kDsnMaxLineBytes);
    }
  };
  while (pos < value.size()) {
    size_t sp = value.find(' ', pos);
    std::string_view word = value.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
    pos = sp == std::string_view::npos ? value.size() : sp + 1;
    if (word.empty()) continue;
    if (line_has_word && line.size() + 1 + word.size() > kDsnFoldBytes) {
      out += line;
      out += kCrlf;
      line = std::string(indent);
      line += word;
    } else {
      if (line_has_word) line += ' ';
      line += word;
    }
    line_has_word = true;
    flush_long();
  }
  out += line;
  out += kCrlf;
}

void header_field(std::string& out, std::string_view name, std::string_view value) {
  fold_into(out, std::string(name) + ": ", value, " ");
}

// A paragraph of the human-readable part, wrapped; `indent` for its
// continuation lines.
void text_para(std::string& out, std::string_view first, std::string_view value, std::string_view indent = "") {
  fold_into(out, first, value, indent);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// `250`, `550-`, `451 `: the reply code at the start of `s`, or 0.
int basic_code(std::string_view s) {
  if (s.size() < 3 || s[0] < '2' || s[0] > '5' || !is_digit(s[1]) || !is_digit(s[2])) return 0;
  if (s.size() > 3 && s[3] != ' ' && s[3] != '-' && s[3] != '\r' && s[3] != '\n') return 0;
  return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

// RFC 3463: class "." subject "." detail; subject and detail 1-3 digits.
std::string enhanced_code_at(std::string_view s) {
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return {};
  size_t i = 2;
  auto digits = [&] {
    size_t start = i;
    while (i < s.size() && is_digit(s[i]) && i - start < 4) ++i;
    return i - start;
  };
  size_t a = digits();
  if (a < 1 || a > 3 || i >= s.size() || s[i] != '.') return {};
  ++i;
  size_t b = digits();
  if (b < 1 || b > 3) return {};
  if (i < s.size() && s[i] != ' ' && s[i] != '\r' && s[i] != '\n' && s[i] != '\t') return {};
  return std::string(s.substr(0, i));
}

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
    throw std::runtime_error("cannot get random bytes for a message id");
  return base::hex(raw);
}

bool valid_message_id(std::string_view id) {
  if (id.empty() || id.size() > 250 || id.find('@') == std::string_view::npos) return false;
  for (unsigned char c : id)
    if (c <= 0x20 || c >= 0x7F || c == '<' || c == '>') return false;
  return true;
}

struct HeaderCopy {
  std::string text;  // CRLF lines
  bool cut = false;
  bool eight_bit = false;
};

// The original header section, field by field (a field with its folded
// continuation lines), stopping before the first field past `limit`.
HeaderCopy copy_headers(std::string_view msg, size_t limit, bool allow_8bit) {
  HeaderCopy out;
  std::string field;
  auto finish_field = [&]() -> bool {
    if (field.empty()) return true;
    if (out.text.size() + field.size() > limit) {
      out.cut = true;
      return false;
    }
    out.text += field;
    field.clear();
    return true;
  };
  size_t pos = 0;
  while (pos < msg.size()) {
    size_t nl = msg.find('\n', pos);
    std::string_view ln = msg.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? msg.size() : nl + 1;
    if (!ln.empty() && ln.back() == '\r') ln.remove_suffix(1);
    if (ln.empty()) break;  // the end of the header section
    bool continuation = ln.front() == ' ' || ln.front() == '\t';
    if (!continuation && !finish_field()) return out;
    for (unsigned char c : ln)
      if (c >= 0x80) out.eight_bit = true;
    // Keep HTAB as it is in headers (folding whitespace); clean the rest.
    std::string cleaned;
    for (unsigned char c : ln) {
      if (c == '\t')
        cleaned += '\t';
      else if (c < 0x20 || c == 0x7F || (c >= 0x80 && !allow_8bit))
        cleaned += '?';
      else
        cleaned += static_cast<char>(c);
    }
    // A line over the limit was invalid already; split it into folded lines.
    std::string_view rest = cleaned;
    bool first = true;
    while (!rest.empty() || first) {
      size_t room = first ? kDsnMaxLineBytes : kDsnMaxLineBytes - 1;
      if (!first) field += ' ';
      field += rest.substr(0, room);
      field += kCrlf;
      rest.remove_prefix(std::min(room, rest.size()));
      first = false;
    }
  }
  finish_field();
  if (!allow_8bit) out.eight_bit = false;
  return out;
}

std::string address_text(std::string_view a) { return clean(a.substr(0, kDsnMaxTextBytes), false); }

}  // namespace

std::string status_code_of(std::string_view reply, bool permanent) {
  std::string_view first = reply.substr(0, reply.find_first_of("\r\n"));
  int code = basic_code(first);
  std::string_view rest = first;
  if (code != 0) {
    rest.remove_prefix(std::min<size_t>(4, rest.size()));
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  }
  std::string enhanced = enhanced_code_at(rest);
  // A success class says nothing about a failure; a class that disagrees
  // with the reply code is a confused server: neither is trusted.
  if (!enhanced.empty() && enhanced[0] != '2' && (code == 0 || enhanced[0] - '0' == code / 100)) return enhanced;
  return permanent ? "5.0.0" : "4.4.7";
}

std::string make_bounce(const BounceInput& in) {
  if (in.original_sender.empty()) throw std::invalid_argument("a bounce needs a sender to go to (null sender)");
  if (in.reporting_host.empty()) throw std::invalid_argument("a bounce needs the reporting host name");
  if (in.recipients.empty()) throw std::invalid_argument("a bounce needs at least one failed recipient");

  const std::string host = address_text(in.reporting_host);
  const std::string sender = address_text(in.original_sender);
  const std::string date = rfc5322_date(in.now);
  const std::string msgid =
      valid_message_id(in.message_id) ? in.message_id : random_hex(kMessageIdRandomBytes) + "@" + host;

  // ---- part 1: for people
  std::string human;
  text_para(human, "", "This is the mail system at host " + host + ".");
  human += kCrlf;
  bool any_expired = false;
  for (const auto& r : in.recipients) any_expired |= !r.permanent;
  text_para(human, "",
            std::string("I'm sorry to have to inform you that your message could not be delivered to one or more "
                        "recipients. ") +
                (any_expired ? "Where delivery was refused temporarily until the queue lifetime ran out, that "
                               "is said below. "
                             : "") +
                "The delivery report and the headers of your message are attached.");
  human += kCrlf;
  for (const auto& r : in.recipients) {
    text_para(human, "", "<" + address_text(r.address) + ">: " +
                             (r.permanent ? "delivery failed permanently"
                                          : "delivery kept being refused until the message expired") +
                             (r.remote_mta.empty() ? "" : " (last host tried: " + address_text(r.remote_mta) + ")"));
    if (!r.reply.empty()) text_para(human, "    last error: ", one_line_text(r.reply), "        ");
    if (!r.policy_rule.empty()) text_para(human, "    policy rule: ", one_line_text(r.policy_rule), "        ");
    if (!r.reason_code.empty()) text_para(human, "    reason: ", one_line_text(r.reason_code), "        ");
    human += kCrlf;
  }

  // ---- part 2: for programs (RFC 3464 §2.2, §2.3)
  std::string report;
  header_field(report, "Reporting-MTA", "dns; " + host);
  if (!in.envelope_id.empty()) header_field(report, "Original-Envelope-Id", one_line_text(in.envelope_id));
  if (in.arrival > 0) header_field(report, "Arrival-Date", rfc5322_date(in.arrival));
  for (const auto& r : in.recipients) {
    report += kCrlf;
    std::string orcpt = one_line_text(r.orcpt);
    if (orcpt.find(';') != std::string::npos && orcpt.find(' ') == std::string::npos)
      header_field(report, "Original-Recipient", orcpt);
    header_field(report, "Final-Recipient", "rfc822; " + address_text(r.address));
    header_field(report, "Action", "failed");
    header_field(report, "Status", status_code_of(r.reply, r.permanent));
    if (!r.remote_mta.empty()) header_field(report, "Remote-MTA", "dns; " + address_text(r.remote_mta));
    std::string diag = one_line_text(r.reply);
    if (!diag.empty()) header_field(report, "Diagnostic-Code", (basic_code(diag) ? "smtp; " : "X-tlsp; ") + diag);
    if (r.last_attempt > 0) header_field(report, "Last-Attempt-Date", rfc5322_date(r.last_attempt));
    if (!r.policy_rule.empty()) header_field(report, "X-Tlsp-Policy-Rule", one_line_text(r.policy_rule));
    if (!r.reason_code.empty()) header_field(report, "X-Tlsp-Reason", one_line_text(r.reason_code));
  }

  // ---- part 3: the original headers
  HeaderCopy headers = copy_headers(in.original_message, in.header_limit, in.allow_8bit);
  if (headers.cut) {
    text_para(human, "",
              "The attached header section was cut at " + std::to_string(in.header_limit) +
                  " bytes; the message's remaining header fields are not shown.");
    human += kCrlf;
  }

  // ---- the boundary: deterministic, and found nowhere in the content
  uint64_t h = XXH3_64bits(in.original_message.data(), in.original_message.size()) ^
               XXH3_64bits(msgid.data(), msgid.size());
  std::string boundary;
  for (int i = 0;; ++i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "=_tlsp_%016llx_%d", static_cast<unsigned long long>(h), i);
    boundary = buf;
    if (human.find(boundary) == std::string::npos && report.find(boundary) == std::string::npos &&
        headers.text.find(boundary) == std::string::npos)
      break;
    if (i + 1 == kBoundaryAttempts) throw std::runtime_error("cannot find a mime boundary for the bounce");
  }

  std::string m;
  header_field(m, "From", "Mail Delivery System <MAILER-DAEMON@" + host + ">");
  header_field(m, "To", "<" + sender + ">");
  header_field(m, "Subject", "Undelivered Mail Returned to Sender");
  header_field(m, "Date", date);
  header_field(m, "Message-ID", "<" + msgid + ">");
  header_field(m, "Auto-Submitted", "auto-replied");
  header_field(m, "MIME-Version", "1.0");
  header_field(m, "Content-Type", "multipart/report; report-type=delivery-status; boundary=\"" + boundary + "\"");
  header_field(m, "Content-Transfer-Encoding", headers.eight_bit ? "8bit" : "7bit");
  m += kCrlf;
  m += "This is a MIME-encapsulated message.";
  m += kCrlf;
  m += kCrlf;
  auto part = [&](std::string_view description, std::string_view type, std::string_view body, bool eight_bit) {
    m += "--" + boundary;
    m += kCrlf;
    header_field(m, "Content-Description", description);
    header_field(m, "Content-Type", type);
    if (eight_bit) header_field(m, "Content-Transfer-Encoding", "8bit");
    m += kCrlf;
    m += body;
    // The CRLF before the next delimiter belongs to the delimiter (RFC 2046
    // §5.1.1): an empty body still needs one.
    if (body.empty()) m += kCrlf;
  };
  part("Notification", "text/plain; charset=us-ascii", human, false);
  part("Delivery report", "message/delivery-status", report, false);
  part("Undelivered Message Headers", "text/rfc822-headers", headers.text, headers.eight_bit);
  m += "--" + boundary + "--";
  m += kCrlf;
  return m;
}

}  // namespace tlsp
