// The RFC 8460 §4 report: its JSON written from a day's summaries, and
// read back from what arrives (JSON, gzip, a multipart/report mail).
// tlsp/tlsrpt_report.h has the contract and the limits.
#include "tlsp/tlsrpt_report.h"

#include <sys/random.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <tuple>

#include "tlsp/base/digest.h"

namespace tlsp::tlsrpt {

// ================================================================= writing

namespace {

using OrderedJson = nlohmann::ordered_json;

auto policy_key(const Policy& p) { return std::tie(p.type, p.domain, p.strings, p.mx_host); }

auto detail_key(const FailureDetail& d) {
  return std::tie(d.result_type, d.sending_mta_ip, d.receiving_mx_hostname, d.receiving_mx_helo, d.receiving_ip,
                  d.additional_information, d.failure_reason_code);
}

void put_if(OrderedJson& j, const char* key, const std::string& value) {
  if (!value.empty()) j[key] = value;
}

OrderedJson policy_json(const PolicySummary& s) {
  OrderedJson policy;
  policy["policy-type"] = std::string(to_string(s.policy.type));
  // RFC 8460 §4.4: no policy string without a policy, mx-host for sts only.
  if (!s.policy.strings.empty() && s.policy.type != PolicyType::no_policy_found)
    policy["policy-string"] = s.policy.strings;
  put_if(policy, "policy-domain", s.policy.domain);
  if (!s.policy.mx_host.empty() && s.policy.type == PolicyType::sts) policy["mx-host"] = s.policy.mx_host;

  OrderedJson out;
  out["policy"] = std::move(policy);
  out["summary"] = {{"total-successful-session-count", s.successful}, {"total-failure-session-count", s.failed}};

  // The details with the most sessions first; ties in field order, so the
  // text does not depend on the order a store returned them in.
  std::vector<const std::pair<FailureDetail, uint64_t>*> details;
  for (const auto& f : s.failures)
    if (f.second > 0) details.push_back(&f);
  std::sort(details.begin(), details.end(), [](const auto* a, const auto* b) {
    if (a->second != b->second) return a->second > b->second;
    return detail_key(a->first) < detail_key(b->first);
  });
  if (details.size() > kMaxFailureDetailsPerPolicy) details.resize(kMaxFailureDetailsPerPolicy);
  if (!details.empty()) {
    OrderedJson list = OrderedJson::array();
    for (const auto* f : details) {
      const FailureDetail& d = f->first;
      OrderedJson j;
      put_if(j, "result-type", d.result_type);
      put_if(j, "sending-mta-ip", d.sending_mta_ip);
      put_if(j, "receiving-mx-hostname", d.receiving_mx_hostname);
      put_if(j, "receiving-mx-helo", d.receiving_mx_helo);
      put_if(j, "receiving-ip", d.receiving_ip);
      j["failed-session-count"] = f->second;
      put_if(j, "additional-information", d.additional_information);
      put_if(j, "failure-reason-code", d.failure_reason_code);
      list.push_back(std::move(j));
    }
    out["failure-details"] = std::move(list);
  }
  return out;
}

std::string checked_day(std::string_view day) {
  if (!parse_utc_day(day)) throw std::invalid_argument("`" + std::string(day) + "` is not a day (YYYY-MM-DD)");
  return std::string(day);
}

}  // namespace

std::string report_json(const Organization& org, std::string_view report_id, std::string_view day,
                        const std::vector<PolicySummary>& policies) {
  const std::string d = checked_day(day);
  std::vector<const PolicySummary*> sorted;
  for (const PolicySummary& p : policies) sorted.push_back(&p);
  std::sort(sorted.begin(), sorted.end(),
            [](const PolicySummary* a, const PolicySummary* b) { return policy_key(a->policy) < policy_key(b->policy); });

  OrderedJson j;
  j["organization-name"] = org.name;
  j["date-range"] = {{"start-datetime", d + "T00:00:00Z"}, {"end-datetime", d + "T23:59:59Z"}};
  j["contact-info"] = org.contact;
  j["report-id"] = std::string(report_id);
  OrderedJson list = OrderedJson::array();
  for (const PolicySummary* p : sorted) list.push_back(policy_json(*p));
  j["policies"] = std::move(list);
  // Text from a peer (a HELO name) need not be UTF-8; JSON must be.
  return j.dump(2, ' ', false, OrderedJson::error_handler_t::replace) + "\n";
}

std::string make_report_id(std::string_view day, std::string_view domain, std::string_view submitter) {
  std::string d = checked_day(day);
  d.erase(std::remove(d.begin(), d.end(), '-'), d.end());
  uint8_t random[8];
  size_t got = 0;
  while (got < sizeof random) {
    const ssize_t n = ::getrandom(random + got, sizeof random - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
    got += static_cast<size_t>(n);
  }
  return d + "T000000Z_" + std::string(domain) + "_" + base::hex(std::span<const uint8_t>(random, sizeof random)) +
         "@" + std::string(submitter);
}

// ================================================================= reading

namespace {

using Json = nlohmann::json;

// An error of the input, with where it is ("policies[1].summary: ...").
struct ReadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string what_json_is(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_float: return "a fractional number";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "a number";
    default: return "not a value";
  }
}

class JsonReader {
 public:
  explicit JsonReader(ReceivedReport& out) : out_(out) {}

  void note(const std::string& n) {
    if (noted_.insert(n).second) out_.notes.push_back(n);
  }

  std::string text(const Json& obj, const char* key, const std::string& where) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return "";
    if (!it->is_string()) throw ReadError(where + "." + key + ": " + what_json_is(*it) + ", not a string");
    return it->get<std::string>();
  }

  uint64_t count(const Json& obj, const char* key, const std::string& where) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return 0;
    if (it->is_number_unsigned()) return it->get<uint64_t>();
    if (it->is_number_integer()) throw ReadError(where + "." + key + ": a negative count");
    throw ReadError(where + "." + key + ": " + what_json_is(*it) + ", not a count");
  }

  // An array of strings; a lone string (the RFC example's `mx-host`) is
  // read as an array of one, and noted.
  std::vector<std::string> strings(const Json& obj, const char* key, const std::string& where) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return {};
    if (it->is_string()) {
      note(std::string("a string `") + key + "` read as an array of one");
      return {it->get<std::string>()};
    }
    if (!it->is_array()) throw ReadError(where + "." + key + ": " + what_json_is(*it) + ", not an array of strings");
    std::vector<std::string> out;
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& s = (*it)[i];
      if (!s.is_string())
        throw ReadError(where + "." + key + "[" + std::to_string(i) + "]: " + what_json_is(s) + ", not a string");
      out.push_back(s.get<std::string>());
    }
    return out;
  }

  const Json* object(const Json& obj, const char* key, const std::string& where) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    if (!it->is_object()) throw ReadError(where + "." + key + ": " + what_json_is(*it) + ", not an object");
    return &*it;
  }

  void read(const Json& root) {
    if (!root.is_object()) throw ReadError("the report is " + what_json_is(root) + ", not an object");
    const std::string top = "report";
    out_.organization_name = text(root, "organization-name", top);
    out_.contact_info = text(root, "contact-info", top);
    out_.report_id = text(root, "report-id", top);
    if (const Json* range = object(root, "date-range", top)) {
      out_.start_datetime = text(*range, "start-datetime", "date-range");
      out_.end_datetime = text(*range, "end-datetime", "date-range");
    }
    auto policies = root.find("policies");
    if (policies == root.end()) throw ReadError("no `policies`: not an RFC 8460 report");
    if (!policies->is_array()) throw ReadError("policies: " + what_json_is(*policies) + ", not an array");
    if (policies->size() > kMaxReportPolicies)
      throw ReadError("more than " + std::to_string(kMaxReportPolicies) + " policies (kMaxReportPolicies)");
    size_t details = 0;
    for (size_t i = 0; i < policies->size(); ++i) {
      const std::string where = "policies[" + std::to_string(i) + "]";
      const Json& p = (*policies)[i];
      if (!p.is_object()) throw ReadError(where + ": " + what_json_is(p) + ", not an object");
      ReceivedPolicy rp;
      const Json* policy = object(p, "policy", where);
      if (!policy) throw ReadError(where + ": no `policy`");
      const std::string pw = where + ".policy";
      rp.type = text(*policy, "policy-type", pw);
      if (rp.type.empty()) throw ReadError(pw + ": no `policy-type`");
      rp.known_type = parse_policy_type(rp.type);
      if (!rp.known_type) note("an unknown policy-type `" + rp.type + "` kept as it is");
      rp.strings = strings(*policy, "policy-string", pw);
      rp.domain = text(*policy, "policy-domain", pw);
      rp.mx_host = strings(*policy, "mx-host", pw);
      if (const Json* summary = object(p, "summary", where)) {
        rp.successful = count(*summary, "total-successful-session-count", where + ".summary");
        rp.failed = count(*summary, "total-failure-session-count", where + ".summary");
      }
      if (auto fd = p.find("failure-details"); fd != p.end() && !fd->is_null()) {
        if (!fd->is_array()) throw ReadError(where + ".failure-details: " + what_json_is(*fd) + ", not an array");
        details += fd->size();
        if (details > kMaxReportFailureDetails)
          throw ReadError("more than " + std::to_string(kMaxReportFailureDetails) +
                          " failure details (kMaxReportFailureDetails)");
        for (size_t k = 0; k < fd->size(); ++k) {
          const std::string w = where + ".failure-details[" + std::to_string(k) + "]";
          const Json& f = (*fd)[k];
          if (!f.is_object()) throw ReadError(w + ": " + what_json_is(f) + ", not an object");
          ReceivedFailure rf;
          FailureDetail& d = rf.detail;
          d.result_type = text(f, "result-type", w);
          d.sending_mta_ip = text(f, "sending-mta-ip", w);
          d.receiving_mx_hostname = text(f, "receiving-mx-hostname", w);
          d.receiving_mx_helo = text(f, "receiving-mx-helo", w);
          d.receiving_ip = text(f, "receiving-ip", w);
          d.additional_information = text(f, "additional-information", w);
          d.failure_reason_code = text(f, "failure-reason-code", w);
          if (d.failure_reason_code.empty() && f.contains("failure-error-code")) {
            d.failure_reason_code = text(f, "failure-error-code", w);
            note("`failure-error-code` read as `failure-reason-code`");
          }
          rf.count = count(f, "failed-session-count", w);
          rp.failures.push_back(std::move(rf));
        }
      }
      out_.policies.push_back(std::move(rp));
    }
  }

 private:
  ReceivedReport& out_;
  std::set<std::string> noted_;
};

struct TooDeep {};

ReportReadResult failed(std::string error) { return {std::nullopt, std::move(error)}; }

std::string mib(size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

// Inflates a gzip stream into at most `limit` bytes; the reason when it
// cannot.
std::optional<std::string> gunzip(std::string_view in, size_t limit, std::string& error) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
    error = "zlib cannot start";
    return std::nullopt;
  }
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  char buf[65536];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      if (rc == Z_BUF_ERROR || (rc == Z_OK && zs.avail_in == 0))
        error = "the gzip stream is truncated";
      else
        error = std::string("not a valid gzip stream") + (zs.msg ? std::string(": ") + zs.msg : "");
      inflateEnd(&zs);
      return std::nullopt;
    }
    const size_t n = sizeof buf - zs.avail_out;
    if (out.size() + n > limit) {
      error = "the gzip stream inflates to more than " + mib(limit) +
              " (kMaxReportJsonBytes): refused, a report is never that large";
      inflateEnd(&zs);
      return std::nullopt;
    }
    out.append(buf, n);
    if (rc == Z_OK && n == 0 && zs.avail_in == 0) {
      error = "the gzip stream is truncated";
      inflateEnd(&zs);
      return std::nullopt;
    }
  }
  const size_t rest = zs.avail_in;
  inflateEnd(&zs);
  if (rest != 0) {
    error = std::to_string(rest) + " bytes after the end of the gzip stream";
    return std::nullopt;
  }
  return out;
}

}  // namespace

ReportFormat sniff_report_format(std::string_view bytes) {
  if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f && static_cast<unsigned char>(bytes[1]) == 0x8b)
    return ReportFormat::gzip;
  for (char c : bytes) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    return c == '{' ? ReportFormat::json : ReportFormat::mail;
  }
  return ReportFormat::mail;
}

ReportReadResult read_report_json(std::string_view json) {
  if (json.size() > kMaxReportJsonBytes)
    return failed("the report is larger than " + mib(kMaxReportJsonBytes) + " (kMaxReportJsonBytes)");
  Json root;
  try {
    // The parser is iterative; the depth is bounded here so that nothing
    // deeper than a report can be is built at all.
    root = Json::parse(
        json.begin(), json.end(),
        [](int depth, Json::parse_event_t, Json&) {
          if (depth > kMaxReportJsonDepth) throw TooDeep{};
          return true;
        },
        true, false);
  } catch (const TooDeep&) {
    return failed("JSON nested more than " + std::to_string(kMaxReportJsonDepth) + " deep (kMaxReportJsonDepth)");
  } catch (const Json::exception& e) {
    // nlohmann's message names the byte offset ("at line 3, column 5").
    std::string m = e.what();
    if (const size_t colon = m.find("] "); colon != std::string::npos) m = m.substr(colon + 2);
    return failed("not valid JSON: " + m);
  }
  ReceivedReport report;
  try {
    JsonReader(report).read(root);
  } catch (const ReadError& e) {
    return failed(e.what());
  }
  return {std::move(report), ""};
}

ReportReadResult read_report_gzip(std::string_view gzip) {
  if (gzip.size() > kMaxReportJsonBytes)
    return failed("the gzip file is larger than " + mib(kMaxReportJsonBytes) + " (kMaxReportJsonBytes)");
  std::string error;
  std::optional<std::string> json = gunzip(gzip, kMaxReportJsonBytes, error);
  if (!json) return failed(error);
  ReportReadResult r = read_report_json(*json);
  if (r.report) r.report->notes.insert(r.report->notes.begin(), "gzip");
  return r;
}

// ------------------------------------------------------------------ mail

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

// One line of `text` from `pos` (without its LF or CRLF); `pos` moves past it.
std::string_view next_line(std::string_view text, size_t& pos) {
  const size_t start = pos;
  size_t end = text.find('\n', pos);
  if (end == std::string_view::npos) {
    pos = text.size();
    end = text.size();
  } else {
    pos = end + 1;
  }
  std::string_view line = text.substr(start, end - start);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

struct MimeEntity {
  std::string content_type;  // "type/subtype", lower case; "text/plain" when not given (RFC 2045 §5.2)
  std::string boundary;
  std::string transfer_encoding;  // lower case; "" for none
  std::string_view body;
};

// The parameters of a Content-Type value (`; name=value` or
// `; name="quoted \" value"`); names lower case.
std::vector<std::pair<std::string, std::string>> content_type_parameters(std::string_view v) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t i = v.find(';');
  while (i != std::string_view::npos && i < v.size()) {
    ++i;
    while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) ++i;
    const size_t eq = v.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string name = lower(trim(v.substr(i, eq - i)));
    size_t j = eq + 1;
    while (j < v.size() && (v[j] == ' ' || v[j] == '\t')) ++j;
    std::string value;
    if (j < v.size() && v[j] == '"') {
      ++j;
      while (j < v.size() && v[j] != '"') {
        if (v[j] == '\\' && j + 1 < v.size()) ++j;
        value += v[j++];
      }
      i = v.find(';', j);
    } else {
      const size_t end = v.find(';', j);
      value = std::string(trim(v.substr(j, end == std::string_view::npos ? std::string_view::npos : end - j)));
      i = end;
    }
    out.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

MimeEntity parse_entity(std::string_view text) {
  MimeEntity e;
  e.content_type = "text/plain";
  size_t pos = 0;
  size_t lines = 0;
  std::string field;  // the header field being unfolded
  auto take = [&](const std::string& f) {
    const size_t colon = f.find(':');
    if (colon == std::string::npos) return;
    const std::string name = lower(trim(std::string_view(f).substr(0, colon)));
    const std::string_view value = trim(std::string_view(f).substr(colon + 1));
    if (name == "content-type") {
      const size_t semi = value.find(';');
      e.content_type = lower(trim(value.substr(0, semi)));
      for (auto& [n, v] : content_type_parameters(value))
        if (n == "boundary") e.boundary = v;
    } else if (name == "content-transfer-encoding") {
      e.transfer_encoding = lower(value);
    }
  };
  while (pos < text.size()) {
    const std::string_view line = next_line(text, pos);
    if (line.empty()) break;  // the end of the header section
    if (++lines > kMaxMimeHeaderLines)
      throw ReadError("a header section of more than " + std::to_string(kMaxMimeHeaderLines) +
                      " lines (kMaxMimeHeaderLines)");
    if ((line.front() == ' ' || line.front() == '\t') && !field.empty()) {
      field += line;
      continue;
    }
    take(field);
    field = std::string(line);
  }
  take(field);
  e.body = text.substr(pos);
  return e;
}

std::string decode_base64(std::string_view in) {
  static const auto table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
    return t;
  }();
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  bool padded = false;
  for (char ch : in) {
    if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') continue;
    if (ch == '=') {
      padded = true;
      continue;
    }
    const int v = table[static_cast<unsigned char>(ch)];
    if (v < 0 || padded) throw ReadError("the report part is not valid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string decode_quoted_printable(std::string_view in) {
  auto hexval = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '=') {
      out += in[i];
      continue;
    }
    if (i + 1 < in.size() && in[i + 1] == '\n') {  // soft line break
      i += 1;
    } else if (i + 2 < in.size() && in[i + 1] == '\r' && in[i + 2] == '\n') {
      i += 2;
    } else if (i + 2 < in.size() && hexval(in[i + 1]) >= 0 && hexval(in[i + 2]) >= 0) {
      out += static_cast<char>(hexval(in[i + 1]) * 16 + hexval(in[i + 2]));
      i += 2;
    } else {
      throw ReadError("the report part is not valid quoted-printable");
    }
  }
  return out;
}

class MailReader {
 public:
  // The first report part of `text` (an entity at `depth`), read; nothing
  // when it holds none.
  std::optional<ReportReadResult> find(std::string_view text, int depth) {
    if (++parts_ > kMaxMimeParts)
      throw ReadError("more than " + std::to_string(kMaxMimeParts) + " MIME parts (kMaxMimeParts)");
    const MimeEntity e = parse_entity(text);
    if (e.content_type.rfind("multipart/", 0) == 0) {
      if (depth >= kMaxMimeDepth)
        throw ReadError("multiparts nested more than " + std::to_string(kMaxMimeDepth) + " deep (kMaxMimeDepth)");
      if (e.boundary.empty()) throw ReadError(e.content_type + " without a boundary");
      for (std::string_view part : split(e.body, e.boundary))
        if (auto r = find(part, depth + 1)) return r;
      return std::nullopt;
    }
    // application/tlsrpt+gzip and application/tlsrpt+json (RFC 8460 §6),
    // and the bare application/tlsrpt some reporters send.
    if (e.content_type.rfind("application/tlsrpt", 0) != 0) return std::nullopt;
    std::string decoded;
    if (e.transfer_encoding == "base64")
      decoded = decode_base64(e.body);
    else if (e.transfer_encoding == "quoted-printable")
      decoded = decode_quoted_printable(e.body);
    else if (e.transfer_encoding.empty() || e.transfer_encoding == "7bit" || e.transfer_encoding == "8bit" ||
             e.transfer_encoding == "binary")
      decoded = std::string(e.body);
    else
      throw ReadError("the report part has an unknown Content-Transfer-Encoding `" + e.transfer_encoding + "`");
    ReportReadResult r =
        sniff_report_format(decoded) == ReportFormat::gzip ? read_report_gzip(decoded) : read_report_json(decoded);
    if (!r.report) r.error = e.content_type + " part: " + r.error;
    else r.report->notes.insert(r.report->notes.begin(), "mail part " + e.content_type);
    return r;
  }

 private:
  // The parts of a multipart body between its delimiter lines
  // ("--boundary", RFC 2046 §5.1.1): the preamble and the epilogue are
  // not parts; the line break before a delimiter belongs to it.
  static std::vector<std::string_view> split(std::string_view body, const std::string& boundary) {
    std::vector<std::string_view> parts;
    const std::string dash = "--" + boundary;
    size_t pos = 0;
    size_t part_start = std::string_view::npos;
    while (pos < body.size()) {
      const size_t line_start = pos;
      const std::string_view line = next_line(body, pos);
      if (line.size() < dash.size() || line.compare(0, dash.size(), dash) != 0) continue;
      std::string_view rest = line.substr(dash.size());
      const bool close = rest.size() >= 2 && rest.compare(0, 2, "--") == 0;
      if (close) rest.remove_prefix(2);
      if (!trim(rest).empty()) continue;  // a line that only starts like a delimiter
      if (part_start != std::string_view::npos) {
        size_t end = line_start;
        if (end > part_start && body[end - 1] == '\n') --end;
        if (end > part_start && body[end - 1] == '\r') --end;
        parts.push_back(body.substr(part_start, end - part_start));
      }
      if (close) return parts;
      part_start = pos;
    }
    // No closing delimiter: the last part runs to the end (tolerated).
    if (part_start != std::string_view::npos) parts.push_back(body.substr(part_start));
    return parts;
  }

  size_t parts_ = 0;
};

}  // namespace

ReportReadResult read_report_mail(std::string_view message) {
  if (message.size() > kMaxReportMailBytes)
    return failed("the message is larger than " + mib(kMaxReportMailBytes) + " (kMaxReportMailBytes)");
  try {
    MailReader reader;
    if (auto r = reader.find(message, 0)) return *r;
  } catch (const ReadError& e) {
    return failed(e.what());
  }
  return failed("no application/tlsrpt+gzip or application/tlsrpt+json part in the message");
}

ReportReadResult read_report(std::string_view bytes) {
  switch (sniff_report_format(bytes)) {
    case ReportFormat::json: return read_report_json(bytes);
    case ReportFormat::gzip: return read_report_gzip(bytes);
    case ReportFormat::mail: return read_report_mail(bytes);
  }
  return read_report_mail(bytes);
}

}  // namespace tlsp::tlsrpt
