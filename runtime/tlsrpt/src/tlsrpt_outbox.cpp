// tlsrpt_outbox.cpp — the https: deliveries of TLSRPT reports still to make,
// and their retries (tlsp/tlsrpt_send.h).
//
// One small file per (report-id, URI): a header of `key: value` lines and
// the gzipped report after an empty line, its length and SHA-256 in the
// header. Each change rewrites the file atomically, so a crash leaves the
// old state or the new one; a file that does not pass every check on read
// is dropped (a report is worth less than a stuck queue) and said.
#include "tlsp/tlsrpt_send.h"

#include "tlsp/base/atomic_file.h"
#include "tlsp/base/header_fields.h"
#include "tlsp/base/digest.h"
#include "tlsp/base/quote.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tlsp::tlsrpt {
namespace {

constexpr std::string_view kMagic = "tlsp-tlsrpt-outbox 1";
constexpr std::string_view kSuffix = ".tlsrpt";
constexpr size_t kMaxHeaderBytes = 8192;
constexpr size_t kMaxErrorBytes = 1024;

struct Entry {
  std::string report_id;
  TlsrptUri uri;
  int64_t added = 0;
  int attempts = 0;
  int64_t next_attempt = 0;
  std::string last_error;
  std::string body;
};

std::string sha256_hex(std::string_view data) { return base::hex(base::digest(base::Digest::sha256, data)); }

// One line of log text: controls become `?`, cut.
std::string one_line(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, kMaxErrorBytes)) out += (c < 0x20 || c == 0x7F) ? '?' : static_cast<char>(c);
  return out;
}

std::string encode(const Entry& e) {
  std::string t(kMagic);
  t += "\nreport-id: " + e.report_id;
  t += "\nuri: " + e.uri.uri;
  t += "\nadded: " + std::to_string(e.added);
  t += "\nattempts: " + std::to_string(e.attempts);
  t += "\nnext-attempt: " + std::to_string(e.next_attempt);
  t += "\nlast-error: " + one_line(e.last_error);
  t += "\nbody-sha256: " + sha256_hex(e.body);
  t += "\nbody-length: " + std::to_string(e.body.size());
  t += "\n\n";
  t += e.body;
  return t;
}

// Why the file cannot be used, or "" with `e` filled.
std::string decode(std::string_view text, Entry& e) {
  size_t lf = text.find('\n');
  if (lf == std::string_view::npos || text.substr(0, lf) != kMagic) return "not a tlsp TLSRPT outbox file";
  text.remove_prefix(lf + 1);
  std::string_view id, uri, added, attempts, next, error, digest, length;
  const auto take = [&](std::string_view key, std::string_view& value) {
    return base::take_header_field(text, key, value, kMaxHeaderBytes);
  };
  if (!take("report-id", id) || !take("uri", uri) || !take("added", added) ||
      !take("attempts", attempts) || !take("next-attempt", next) || !take("last-error", error) ||
      !take("body-sha256", digest) || !take("body-length", length) || text.empty() || text[0] != '\n')
    return "malformed header";
  text.remove_prefix(1);
  std::string problem;
  auto u = parse_tlsrpt_uri(uri, &problem);
  if (!u || u->scheme != TlsrptScheme::https) return "bad uri: " + problem;
  int64_t n_attempts = 0, n_length = 0;
  if (id.empty() || id.size() > kMaxReportIdBytes || !base::parse_decimal_i64(added, e.added) ||
      !base::parse_decimal_i64(attempts, n_attempts) || n_attempts > 1000000 || !base::parse_decimal_i64(next, e.next_attempt) ||
      !base::parse_decimal_i64(length, n_length))
    return "malformed header";
  if (static_cast<uint64_t>(n_length) != text.size()) return "the report is truncated or extended";
  if (sha256_hex(text) != digest) return "the report does not match its digest";
  e.report_id = std::string(id);
  e.uri = std::move(*u);
  e.attempts = static_cast<int>(n_attempts);
  e.last_error = std::string(error);
  e.body = std::string(text);
  return {};
}


std::vector<std::string> entry_names(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    // Only names file_for() makes: temporary files of a write in progress are not entries.
    if (n.size() == 32 + kSuffix.size() && n.ends_with(kSuffix)) names.push_back(std::move(n));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

void remove_file(const std::string& dir, const std::string& path) {
  if (::unlink(path.c_str()) == 0) {
    try {
      base::sync_directory(dir);
    } catch (const base::FileError&) {
    }
  }
}

}  // namespace

std::string_view to_string(OutboxEvent::Kind k) {
  switch (k) {
    case OutboxEvent::Kind::delivered: return "delivered";
    case OutboxEvent::Kind::deferred: return "deferred";
    case OutboxEvent::Kind::given_up: return "given-up";
    case OutboxEvent::Kind::corrupt: return "corrupt";
  }
  return "?";
}

Outbox::Outbox(std::string directory) : dir_(std::move(directory)) {
  if (dir_.empty()) throw std::runtime_error("empty TLSRPT outbox directory");
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create the TLSRPT outbox `" + dir_ + "`: " + std::strerror(errno));
  struct stat st{};
  if (::stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw std::runtime_error("the TLSRPT outbox `" + dir_ + "` is not a directory");
}

bool Outbox::add(std::string_view report_id, const TlsrptUri& uri, std::string_view gz_body, int64_t now,
                 std::string* error) {
  auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  if (uri.scheme != TlsrptScheme::https) return fail(base::ticked(uri.uri) + " is not an https: URI");
  if (report_id.empty() || report_id.size() > kMaxReportIdBytes ||
      std::any_of(report_id.begin(), report_id.end(), [](char c) { return c <= 0x20 || c >= 0x7F; }))
    return fail("the report id " + base::ticked(report_id) + " cannot be stored");
  if (gz_body.size() > kMaxOutboxReportBytes) return fail("the report is larger than the outbox takes");
  const std::string path =
      dir_ + "/" + sha256_hex(std::string(report_id) + "\n" + uri.uri).substr(0, 32) + std::string(kSuffix);
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0) return true;  // already waiting: its schedule stands
  Entry e;
  e.report_id = std::string(report_id);
  e.uri = uri;
  e.added = now;
  e.next_attempt = now;
  e.body = std::string(gz_body);
  try {
    base::write_file_atomically(path, encode(e), 0600);
  } catch (const base::FileError& ex) {
    return fail(ex.what());
  }
  return true;
}

size_t Outbox::size() const { return entry_names(dir_).size(); }

std::vector<OutboxEvent> Outbox::run(int64_t now, const ReportPoster& post) {
  std::vector<OutboxEvent> events;
  for (const std::string& name : entry_names(dir_)) {
    const std::string path = dir_ + "/" + name;
    using Read = base::BoundedRead::Status;
    const base::BoundedRead read = base::read_file_bounded(path, kMaxHeaderBytes + kMaxOutboxReportBytes);
    if (read.status == Read::missing) continue;
    Entry e;
    std::string problem = read.status == Read::too_large    ? "too large"
                          : read.status == Read::unreadable ? std::string("unreadable: ") + std::strerror(read.error)
                                                            : decode(read.text, e);
    if (!problem.empty()) {
      OutboxEvent ev;
      ev.kind = OutboxEvent::Kind::corrupt;
      ev.detail = "dropped the outbox file `" + path + "`: " + problem;
      remove_file(dir_, path);
      events.push_back(std::move(ev));
      continue;
    }
    if (e.next_attempt > now) continue;
    TlsrptPostResult r = post(e.uri, e.body);
    ++e.attempts;
    OutboxEvent ev;
    ev.report_id = e.report_id;
    ev.uri = e.uri.uri;
    ev.attempts = e.attempts;
    ev.detail = r.detail;
    if (r.delivered) {
      ev.kind = OutboxEvent::Kind::delivered;
      remove_file(dir_, path);
    } else if (now >= e.added + kOutboxGiveUpAfter.count()) {
      ev.kind = OutboxEvent::Kind::given_up;
      remove_file(dir_, path);
    } else {
      // Exponential backoff, capped; the last try falls at the give-up time.
      int64_t delay = kOutboxFirstRetry.count();
      for (int i = 1; i < e.attempts && delay < kOutboxMaxRetry.count(); ++i) delay *= 2;
      delay = std::min<int64_t>(delay, kOutboxMaxRetry.count());
      e.next_attempt = std::min<int64_t>(now + delay, e.added + kOutboxGiveUpAfter.count());
      e.last_error = r.detail;
      ev.kind = OutboxEvent::Kind::deferred;
      ev.next_attempt = e.next_attempt;
      try {
        base::write_file_atomically(path, encode(e), 0600);
      } catch (const base::FileError& ex) {
        ev.detail += "; the new schedule was not written: " + std::string(ex.what());
      }
    }
    events.push_back(std::move(ev));
  }
  return events;
}

std::vector<OutboxEvent> tlsrpt_outbox_run(Outbox& outbox, int64_t now, const dns::Resolver& resolver,
                                           const TlsrptPostConfig& config) {
  return outbox.run(now, [&](const TlsrptUri& uri, std::string_view body) {
    return post_tlsrpt_report(uri, body, resolver, config);
  });
}

}  // namespace tlsp::tlsrpt
