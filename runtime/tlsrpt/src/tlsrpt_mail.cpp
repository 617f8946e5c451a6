// tlsrpt_mail.cpp — the report's gzip body, its RFC 8460 §5.1 file name and
// the §5.3 report mail (tlsp/tlsrpt_send.h). Every header line goes through
// one folding writer, so the CRLF and 998-octet rules hold whatever the
// input; the inputs are checked first, so nothing odd reaches a header.
#include "tlsp/tlsrpt_send.h"

#include "tlsp/base/digest.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/base/quote.h"
#include "tlsp/base/rfc5322_date.h"

#include <openssl/rand.h>
#include <zlib.h>

#include <cstdio>
#include <stdexcept>

namespace tlsp::tlsrpt {
namespace {

constexpr std::string_view kCrlf = "\r\n";
constexpr size_t kFoldBytes = 78;        // RFC 5322 §2.1.1: SHOULD
constexpr size_t kMaxLineBytes = 998;    // RFC 5322 §2.1.1: MUST
constexpr size_t kBase64LineBytes = 76;  // RFC 2045 §6.8
constexpr int kBoundaryAttempts = 1000;

// Appends `name: value`, folded at spaces near kFoldBytes; a word longer
// than a line allows is split hard (only a caller's report id could be).
void header_field(std::string& out, std::string_view name, std::string_view value) {
  std::string line = std::string(name) + ":";
  size_t pos = 0;
  while (pos < value.size()) {
    size_t sp = value.find(' ', pos);
    std::string_view word = value.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
    pos = sp == std::string_view::npos ? value.size() : sp + 1;
    if (word.empty()) continue;
    if (line.size() + 1 + word.size() > kFoldBytes && line.find_first_not_of(' ') != std::string::npos &&
        line.size() > name.size() + 1) {
      out += line;
      out += kCrlf;
      line.clear();
    }
    line += ' ';
    line += word;
    while (line.size() > kMaxLineBytes) {
      out += line.substr(0, kMaxLineBytes);
      out += kCrlf;
      line = " " + line.substr(kMaxLineBytes);
    }
  }
  out += line;
  out += kCrlf;
}

std::string base64_lines(std::string_view data) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out, line;
  auto put = [&](char c) {
    line += c;
    if (line.size() == kBase64LineBytes) {
      out += line;
      out += kCrlf;
      line.clear();
    }
  };
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(data[i])) << 16) | (uint32_t(uint8_t(data[i + 1])) << 8) | uint8_t(data[i + 2]);
    put(kAlphabet[(v >> 18) & 63]);
    put(kAlphabet[(v >> 12) & 63]);
    put(kAlphabet[(v >> 6) & 63]);
    put(kAlphabet[v & 63]);
  }
  if (size_t rest = data.size() - i) {
    uint32_t v = uint32_t(uint8_t(data[i])) << 16;
    if (rest == 2) v |= uint32_t(uint8_t(data[i + 1])) << 8;
    put(kAlphabet[(v >> 18) & 63]);
    put(kAlphabet[(v >> 12) & 63]);
    put(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    put('=');
  }
  if (!line.empty()) {
    out += line;
    out += kCrlf;
  }
  return out;
}

// Printable ASCII without space: what may stand in a header as one word.
bool is_header_word(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (c <= 0x20 || c >= 0x7F) return false;
  return true;
}

std::string checked_address(std::string_view what, std::string_view a) {
  const size_t at = a.rfind('@');
  if (!is_header_word(a) || a.find_first_of("<>()[]\\,;:\"") != std::string_view::npos || at == 0 ||
      at == std::string_view::npos || domain_of_address(a).empty())
    throw std::invalid_argument(std::string(what) + ": " + base::ticked(a) + " is not an address `local@domain`");
  return std::string(a.substr(0, at)) + "@" + domain_of_address(a);
}

std::string checked_domain(std::string_view what, std::string_view d) {
  NameCheck c = check_host_name(d);
  if (!c.ok()) throw std::invalid_argument(std::string(what) + ": " + c.problem);
  return c.name;
}

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
    throw std::runtime_error("cannot get random bytes for a message id");
  return base::hex(raw);
}

}  // namespace

std::string gzip_report(std::string_view json) {
  z_stream z{};
  // windowBits 15 + 16: a gzip (RFC 1952) wrapper rather than zlib's.
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("zlib: deflateInit2 failed");
  std::string out(deflateBound(&z, static_cast<uLong>(json.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(json.data()));
  z.avail_in = static_cast<uInt>(json.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("zlib: deflate did not finish");
  return out;
}

std::optional<std::string> gunzip_report(std::string_view gz, size_t limit) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return std::nullopt;
  std::string out;
  char buf[16384];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    const size_t n = sizeof buf - z.avail_out;
    if (out.size() + n > limit) {
      rc = Z_MEM_ERROR;
      break;
    }
    out.append(buf, n);
    if (rc == Z_OK && n == 0 && z.avail_in == 0) {
      rc = Z_BUF_ERROR;  // truncated
      break;
    }
  }
  const bool whole = rc == Z_STREAM_END && z.avail_in == 0;
  inflateEnd(&z);
  if (!whole) return std::nullopt;
  return out;
}

std::string tlsrpt_report_filename(std::string_view submitter, std::string_view policy_domain, int64_t begin,
                                   int64_t end, std::string_view unique) {
  std::string name = std::string(submitter) + "!" + std::string(policy_domain) + "!" + std::to_string(begin) + "!" +
                     std::to_string(end);
  std::string u;
  for (char c : unique)
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) u += c;
  if (!u.empty()) name += "!" + u;
  return name + ".json.gz";
}

ReportMail make_tlsrpt_mail(const ReportMailInput& in) {
  const std::string from = checked_address("the report sender", in.from);
  const std::string to = checked_address("the report recipient", in.to);
  const std::string domain = checked_domain("the policy domain", in.policy_domain);
  const std::string submitter = checked_domain("the submitter", in.submitter);
  if (!is_header_word(in.report_id) || in.report_id.find_first_of("<>") != std::string::npos ||
      in.report_id.size() > kMaxReportIdBytes)
    throw std::invalid_argument("the report id " + base::ticked(in.report_id) +
                                " is not printable ASCII without spaces and angle brackets, at most " +
                                std::to_string(kMaxReportIdBytes) + " bytes");
  const std::string msgid = is_header_word(in.message_id) && in.message_id.find('@') != std::string::npos &&
                                    in.message_id.find_first_of("<>") == std::string::npos
                                ? in.message_id
                                : random_hex(16) + "@" + submitter;
  const std::string filename = tlsrpt_report_filename(submitter, domain, in.begin, in.end, in.report_id);
  const std::string body = base64_lines(gzip_report(in.report_json));

  std::string human;
  human += "This is an aggregate TLS report (RFC 8460) from " + submitter + "\r\n";
  human += "for the policy domain " + domain + ", from " + base::rfc5322_date(in.begin) + "\r\n";
  human += "to " + base::rfc5322_date(in.end) + ". The report is attached, gzipped.\r\n";
  human += "Report-ID: <" + in.report_id + ">\r\n";

  // The boundary: from the content's digest, and found nowhere in it.
  const std::string seed = base::hex(base::digest(base::Digest::sha256, body + msgid)).substr(0, 16);
  std::string boundary;
  for (int i = 0;; ++i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "=_tlsp_tlsrpt_%s_%d", seed.c_str(), i);
    boundary = buf;
    if (human.find(boundary) == std::string::npos && body.find(boundary) == std::string::npos) break;
    if (i + 1 == kBoundaryAttempts) throw std::runtime_error("cannot find a mime boundary for the report");
  }

  std::string m;
  header_field(m, "From", "<" + from + ">");
  header_field(m, "To", "<" + to + ">");
  header_field(m, "Date", base::rfc5322_date(in.now));
  header_field(m, "Message-ID", "<" + msgid + ">");
  header_field(m, "Subject", "Report Domain: " + domain + " Submitter: " + submitter + " Report-ID: <" +
                                 in.report_id + ">");
  header_field(m, "TLS-Report-Domain", domain);
  header_field(m, "TLS-Report-Submitter", submitter);
  header_field(m, "Auto-Submitted", "auto-generated");
  header_field(m, "MIME-Version", "1.0");
  header_field(m, "Content-Type", "multipart/report; report-type=\"tlsrpt\"; boundary=\"" + boundary + "\"");
  m += kCrlf;
  m += "This is a multipart message in MIME format.\r\n\r\n";
  m += "--" + boundary + "\r\n";
  header_field(m, "Content-Type", "text/plain; charset=\"us-ascii\"");
  header_field(m, "Content-Transfer-Encoding", "7bit");
  m += kCrlf;
  m += human;
  m += "--" + boundary + "\r\n";
  header_field(m, "Content-Type", "application/tlsrpt+gzip");
  header_field(m, "Content-Transfer-Encoding", "base64");
  header_field(m, "Content-Disposition", "attachment; filename=\"" + filename + "\"");
  m += kCrlf;
  m += body;
  m += "--" + boundary + "--\r\n";

  ReportMail mail;
  mail.mail_from = from;
  mail.recipients = {to};
  mail.data = std::move(m);
  return mail;
}

}  // namespace tlsp::tlsrpt
