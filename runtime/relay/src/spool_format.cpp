// spool.cpp — the relay's crash-safe queue (tlsp/spool.h, docs/spool.md).
//
// Every durable change follows the same rule: write a file under a name
// nobody reads, fsync it, rename it into place, fsync the directory that
// holds the new name. The one exception is removal, which only needs the
// directory fsync'd after the unlink. Linux-specific where it matters:
// renameat2(RENAME_NOREPLACE) for the commit of a batch, so two batches can
// never merge even if their names collided.
#include "tlsp/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include "message_text.h"

namespace tlsp {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMagicKey = "tlsp-spool-envelope";
constexpr std::string_view kDataName = "data";
constexpr std::string_view kEnvSuffix = ".env";
constexpr std::string_view kTmpSuffix = ".env.tmp";
// Bounds on numbers read back from an envelope.
constexpr int kMaxSpoolAttempts = 1000000;
constexpr size_t kMaxBatchNameBytes = 64;

std::string errno_text(int e) { return std::strerror(e); }

[[noreturn]] void fail(const std::string& what, int e) {
  throw SpoolError(what + ": " + errno_text(e));
}

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

using runtime_detail::ticked;

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

// ------------------------------------------------------------ names

bool is_hex_run(std::string_view s) {
  if (s.empty() || s.size() > 16) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

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

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// ------------------------------------------------------------ files

// Reads a whole file of at most `limit` bytes. nullopt with errno-like code
// in `err` when it cannot be opened; throws when it is larger than `limit`
// or a read fails.
std::optional<std::string> read_file(const std::string& path, size_t limit, int& err) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
    return std::nullopt;
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      fail("cannot read `" + path + "`", e);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > limit) {
      ::close(fd);
      throw SpoolError("`" + path + "` is larger than " + std::to_string(limit) + " bytes");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  err = 0;
  return out;
}

struct DirListing {
  std::vector<std::string> names;
  bool ok = true;
};

DirListing list_dir(const std::string& path) {
  DirListing out;
  DIR* d = ::opendir(path.c_str());
  if (!d) {
    out.ok = false;
    return out;
  }
  while (dirent* de = ::readdir(d)) {
    std::string_view n = de->d_name;
    if (n == "." || n == "..") continue;
    out.names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(out.names.begin(), out.names.end());
  return out;
}

bool is_directory(const std::string& path) {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0) return;
  int e = errno;
  if (e == EEXIST && is_directory(path)) return;
  fail("cannot create the spool directory `" + path + "`", e);
}

void unlink_if_present(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail("cannot remove `" + path + "`", errno);
}

std::string one_line(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
  return out;
}

}  // namespace

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
  line(kMagicKey, std::to_string(kSpoolEnvelopeVersion));
  line("id", e.id);
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
      if (raw != std::to_string(kSpoolEnvelopeVersion)) return bad("unsupported envelope version " + ticked(raw));
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

// ------------------------------------------------------------ Spool

Spool::Spool(std::string directory) : directory_(std::move(directory)) {
  if (directory_.empty()) throw SpoolError("the spool directory is not set");
  std::error_code ec;
  fs::create_directories(directory_, ec);
  if (ec || !is_directory(directory_))
    throw SpoolError("cannot create the spool directory `" + directory_ + "`: " + ec.message());
  tmp_ = directory_ + "/tmp";
  queue_ = directory_ + "/queue";
  failed_ = directory_ + "/failed";
  make_dir(tmp_);
  make_dir(queue_);
  make_dir(failed_);
  fsync_dir(directory_);
}

void Spool::step(std::string_view name) const {
  if (step_hook_) step_hook_(name);
}

void Spool::fsync_fd(int fd, const std::string& what) const {
  fsync_calls_.fetch_add(1);
  if (::fsync(fd) != 0) fail("cannot fsync `" + what + "`", errno);
}

void Spool::fsync_dir(const std::string& path) const {
  if (!fsync_dir_if_present(path)) fail("cannot open the directory `" + path + "`", ENOENT);
}

bool Spool::fsync_dir_if_present(const std::string& path) const {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return false;
  if (fd < 0) fail("cannot open the directory `" + path + "`", errno);
  try {
    fsync_fd(fd, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return true;
}

void Spool::write_file_synced(const std::string& path, std::string_view content, bool exclusive) const {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC);
  int fd = ::open(path.c_str(), flags, 0600);
  if (fd < 0) fail("cannot create `" + path + "`", errno);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      fail("cannot write `" + path + "`", e);
    }
    done += static_cast<size_t>(n);
  }
  try {
    fsync_fd(fd, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) fail("cannot write `" + path + "`", errno);
}

std::string Spool::next_batch_name() {
  auto usec = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  char buf[kMaxBatchNameBytes];
  std::snprintf(buf, sizeof buf, "%llx-%x-%llx", static_cast<unsigned long long>(usec),
                static_cast<unsigned>(::getpid()), static_cast<unsigned long long>(counter_.fetch_add(1)));
  return buf;
}

std::string Spool::batch_dir(const std::string& id, std::string* n) const {
  if (!valid_entry_id(id)) throw SpoolError("bad spool entry id " + ticked(id));
  size_t dot = id.rfind('.');
  if (n) *n = id.substr(dot + 1);
  return queue_ + "/" + id.substr(0, dot);
}

std::vector<QueueEntry> Spool::store(std::vector<QueueEntry> entries, std::string_view data) {
  if (entries.empty()) throw SpoolError("nothing to store: no entries");
  if (entries.size() > kMaxSpoolEntriesPerStore)
    throw SpoolError("more than " + std::to_string(kMaxSpoolEntriesPerStore) + " entries in one message");
  for (const auto& e : entries) {
    if (e.recipients.empty()) throw SpoolError("cannot store an entry without recipients");
    if (auto p = entry_problem(e)) throw SpoolError("cannot store the message: " + *p);
  }

  // A fresh name: mkdir fails on a collision (another process with the same
  // pid in the same microsecond, after a restart), and we simply try again.
  constexpr int kNameAttempts = 16;
  std::string batch, work;
  for (int i = 0;; ++i) {
    batch = next_batch_name();
    work = tmp_ + "/" + batch;
    if (::mkdir(work.c_str(), 0700) == 0) break;
    if (errno != EEXIST || i + 1 == kNameAttempts) fail("cannot create `" + work + "`", errno);
  }
  const std::string committed = queue_ + "/" + batch;
  bool renamed = false;
  try {
    uint64_t sum = XXH3_64bits(data.data(), data.size());
    write_file_synced(work + "/" + std::string(kDataName), data, true);
    step("store:data-synced");
    for (size_t i = 0; i < entries.size(); ++i) {
      entries[i].id = batch + "." + std::to_string(i);
      entries[i].last_error = cut_text(entries[i].last_error);
      for (auto& f : entries[i].failed_recipients) f.second = cut_text(f.second);
      write_file_synced(work + "/" + std::to_string(i) + std::string(kEnvSuffix),
                        serialize_envelope(entries[i], data.size(), sum), true);
      step("store:envelope-synced");
    }
    fsync_dir(work);
    step("store:batch-synced");
    // The commit point.
    if (::renameat2(AT_FDCWD, work.c_str(), AT_FDCWD, committed.c_str(), RENAME_NOREPLACE) != 0) {
      int e = errno;
      if (e != EINVAL && e != ENOSYS) fail("cannot commit `" + committed + "`", e);
      // The file system cannot do RENAME_NOREPLACE: a plain rename refuses
      // a non-empty target anyway, and the name was unique in tmp/.
      if (::rename(work.c_str(), committed.c_str()) != 0) fail("cannot commit `" + committed + "`", errno);
    }
    renamed = true;
    step("store:renamed");
    fsync_dir(queue_);
    step("store:committed");
  } catch (const SpoolError&) {
    // Take back what might still be read after a restart: the caller tells
    // the client 451, and the client sends the message again.
    std::error_code ec;
    if (renamed && ::rename(committed.c_str(), work.c_str()) != 0) fs::remove_all(committed, ec);
    fs::remove_all(work, ec);
    throw;
  }
  return entries;
}

void Spool::remove_batch_if_finished(const std::string& batch_path) const {
  DirListing l = list_dir(batch_path);
  if (!l.ok) return;  // gone already (another entry's remove finished it)
  for (const auto& n : l.names)
    if (ends_with(n, kEnvSuffix)) return;
  for (const auto& n : l.names) unlink_if_present(batch_path + "/" + n);
  if (::rmdir(batch_path.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY)
    fail("cannot remove `" + batch_path + "`", errno);
  fsync_dir(queue_);
}

void Spool::remove(const std::string& id) {
  std::string n;
  std::string dir = batch_dir(id, &n);
  std::string env = dir + "/" + n + std::string(kEnvSuffix);
  if (::unlink(env.c_str()) != 0) {
    if (errno == ENOENT) return;
    fail("cannot remove `" + env + "`", errno);
  }
  // The batch may be gone already: another entry's remove() saw this
  // envelope gone, removed the batch and synced queue/, which covers ours.
  fsync_dir_if_present(dir);
  step("remove:envelope-removed");
  remove_batch_if_finished(dir);
  step("remove:done");
}

void Spool::update(const QueueEntry& entry) {
  std::string n;
  std::string dir = batch_dir(entry.id, &n);
  std::string env = dir + "/" + n + std::string(kEnvSuffix);
  int err = 0;
  auto text = read_file(env, kMaxSpoolEnvelopeBytes, err);
  if (!text) {
    if (err == ENOENT) throw SpoolError("spool entry `" + entry.id + "` is not queued");
    fail("cannot read `" + env + "`", err);
  }
  ParsedEnvelope parsed;
  std::string problem;
  if (!parse_envelope(*text, parsed, problem)) throw SpoolError("`" + env + "`: " + problem);
  QueueEntry merged = std::move(parsed.entry);
  merged.recipients = entry.recipients;
  merged.attempts = entry.attempts;
  merged.next_attempt = entry.next_attempt;
  merged.last_error = entry.last_error;
  merged.failed_recipients = entry.failed_recipients;
  merged.orcpts = entry.orcpts;
  std::string out = serialize_envelope(merged, parsed.data_bytes, parsed.data_checksum);
  std::string tmp = dir + "/" + n + std::string(kTmpSuffix);
  write_file_synced(tmp, out, false);
  step("update:temp-synced");
  if (::rename(tmp.c_str(), env.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot replace `" + env + "`", e);
  }
  step("update:renamed");
  fsync_dir(dir);
  step("update:committed");
}

void Spool::move_to_failed(const std::string& id, std::string_view reason) {
  std::string n;
  std::string dir = batch_dir(id, &n);
  std::string env = dir + "/" + n + std::string(kEnvSuffix);
  if (::access(env.c_str(), F_OK) != 0) throw SpoolError("spool entry `" + id + "` is not queued");

  // The data first: a hard link shares it with the batch without a copy.
  // A leftover from an earlier, interrupted move is replaced.
  std::string data = dir + "/" + std::string(kDataName);
  std::string kept = failed_ + "/" + id + ".dat";
  std::string note;
  unlink_if_present(kept);
  if (::link(data.c_str(), kept.c_str()) != 0) {
    int e = errno;
    if (e == ENOENT) {
      note = " (the data file is missing)";
    } else {
      // No hard links here (some file systems): copy instead.
      int rerr = 0;
      auto content = read_file(data, SIZE_MAX, rerr);
      if (!content) fail("cannot keep the data of `" + id + "`", e);
      write_file_synced(kept, *content, true);
    }
  }
  step("failed:data-linked");
  std::string reason_path = failed_ + "/" + id + ".reason";
  write_file_synced(reason_path + ".tmp", one_line(reason) + note + "\n", false);
  if (::rename((reason_path + ".tmp").c_str(), reason_path.c_str()) != 0)
    fail("cannot write `" + reason_path + "`", errno);
  fsync_dir(failed_);
  step("failed:reason-written");
  // The entry leaves the queue with this rename.
  if (::rename(env.c_str(), (failed_ + "/" + id + ".env").c_str()) != 0)
    fail("cannot move `" + env + "` to the failed area", errno);
  step("failed:envelope-moved");
  fsync_dir(failed_);
  fsync_dir_if_present(dir);  // as in remove()
  step("failed:committed");
  remove_batch_if_finished(dir);
}

std::string Spool::read_data(const std::string& id) const {
  std::string n;
  std::string dir = batch_dir(id, &n);
  std::string env = dir + "/" + n + std::string(kEnvSuffix);
  int err = 0;
  auto text = read_file(env, kMaxSpoolEnvelopeBytes, err);
  if (!text) {
    if (err == ENOENT) throw SpoolError("spool entry `" + id + "` is not queued");
    fail("cannot read `" + env + "`", err);
  }
  ParsedEnvelope parsed;
  std::string problem;
  if (!parse_envelope(*text, parsed, problem)) throw SpoolError("`" + env + "`: " + problem);
  std::string path = dir + "/" + std::string(kDataName);
  // One byte more than expected is enough to see a file that grew.
  size_t limit = parsed.data_bytes >= SIZE_MAX ? SIZE_MAX : static_cast<size_t>(parsed.data_bytes) + 1;
  auto data = read_file(path, limit, err);
  if (!data) fail("cannot read `" + path + "`", err);
  if (data->size() != parsed.data_bytes || XXH3_64bits(data->data(), data->size()) != parsed.data_checksum)
    throw SpoolError("`" + path + "` does not match its envelope (size or checksum)");
  return std::move(*data);
}

std::vector<QueueEntry> Spool::recover(std::vector<std::string>* problems) {
  auto report = [problems](std::string line) {
    if (problems) problems->push_back(std::move(line));
  };
  // Unfinished store()s: never acknowledged, so never promised.
  DirListing t = list_dir(tmp_);
  if (!t.ok) fail("cannot list `" + tmp_ + "`", errno);
  for (const auto& n : t.names) {
    std::error_code ec;
    fs::remove_all(tmp_ + "/" + n, ec);
    if (ec) throw SpoolError("cannot remove `" + tmp_ + "/" + n + "`: " + ec.message());
  }

  std::vector<QueueEntry> out;
  DirListing q = list_dir(queue_);
  if (!q.ok) fail("cannot list `" + queue_ + "`", errno);
  for (const auto& batch : q.names) {
    std::string path = queue_ + "/" + batch;
    if (!valid_batch_name(batch) || !is_directory(path)) {
      report("spool: stray " + ticked(path) + " left alone (not a batch directory)");
      continue;
    }
    DirListing b = list_dir(path);
    if (!b.ok) fail("cannot list `" + path + "`", errno);
    std::vector<std::string> envs;
    bool changed = false;
    for (const auto& n : b.names) {
      if (ends_with(n, kTmpSuffix)) {
        unlink_if_present(path + "/" + n);  // an update() that did not finish: the old envelope stands
        changed = true;
      } else if (ends_with(n, kEnvSuffix) && valid_index(n.substr(0, n.size() - kEnvSuffix.size()))) {
        envs.push_back(n.substr(0, n.size() - kEnvSuffix.size()));
      } else if (n != kDataName) {
        report("spool: stray " + ticked(path + "/" + n) + " left alone");
      }
    }
    if (changed) fsync_dir(path);
    if (envs.empty()) {
      remove_batch_if_finished(path);  // every entry had left: a remove() that did not finish
      continue;
    }
    struct stat st{};
    bool have_data = ::stat((path + "/" + std::string(kDataName)).c_str(), &st) == 0 && S_ISREG(st.st_mode);
    for (const auto& n : envs) {
      std::string id = batch + "." + n;
      std::string env = path + "/" + n + std::string(kEnvSuffix);
      std::string problem;
      ParsedEnvelope parsed;
      int err = 0;
      std::optional<std::string> text;
      try {
        text = read_file(env, kMaxSpoolEnvelopeBytes, err);
        if (!text) problem = "cannot read the envelope: " + errno_text(err);
      } catch (const SpoolError& e) {
        problem = e.what();
      }
      if (problem.empty() && !parse_envelope(*text, parsed, problem)) {
      } else if (problem.empty() && parsed.entry.id != id) {
        problem = "envelope names another entry " + ticked(parsed.entry.id);
      } else if (problem.empty() && !have_data) {
        problem = "the data file is missing";
      } else if (problem.empty() && static_cast<uint64_t>(st.st_size) != parsed.data_bytes) {
        problem = "the data file has " + std::to_string(st.st_size) + " bytes, the envelope says " +
                  std::to_string(parsed.data_bytes);
      }
      if (!problem.empty()) {
        move_to_failed(id, problem);
        report("spool: entry `" + id + "` moved to failed/: " + problem);
        continue;
      }
      out.push_back(std::move(parsed.entry));
    }
  }
  std::sort(out.begin(), out.end(), [](const QueueEntry& a, const QueueEntry& b) {
    return a.arrival != b.arrival ? a.arrival < b.arrival : a.id < b.id;
  });
  return out;
}

size_t Spool::queued_count() const {
  size_t count = 0;
  DirListing q = list_dir(queue_);
  for (const auto& batch : q.names) {
    if (!valid_batch_name(batch)) continue;
    DirListing b = list_dir(queue_ + "/" + batch);
    for (const auto& n : b.names)
      if (ends_with(n, kEnvSuffix)) ++count;
  }
  return count;
}

}  // namespace tlsp
