// mta_sts_fetch.cpp — MTA-STS discovery, the HTTPS policy fetch and the
// on-disk policy cache (tlsp/mta_sts_fetch.h).
//
// The fetch uses libcurl through the relay's one HTTPS setup
// (curl_https.h, shared with the TLSRPT report POST): every option that
// could let the network choose where or how we connect is pinned there (the
// addresses come from the relay's own resolver, https only, no redirects,
// no proxy from the environment). A policy host is not trusted to be
// well-behaved, so the body is bounded while it arrives, not after.
//
// The cache is a directory of small text files, one per policy domain. A
// file is replaced as tlsp/base/atomic_file.h replaces files (temporary
// file, fsync, rename, directory fsync), so a reader (or a crash) sees the
// old policy or the new one; a file that does not pass every check
// on read (format, lengths, digest, the body still a valid policy, the
// expiry consistent with its max_age) is ignored, never half-trusted.
#include "tlsp/mta_sts_fetch.h"

#include "curl_https.h"

#include "tlsp/base/address.h"
#include "tlsp/base/atomic_file.h"
#include "tlsp/base/digest.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/base/quote.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace tlsp {
namespace {

using base::ticked;

constexpr std::string_view kPolicyPath = "/.well-known/mta-sts.txt";
constexpr std::string_view kPolicyHostPrefix = "mta-sts.";
constexpr std::string_view kTxtPrefix = "_mta-sts.";
// A cache file is the header (a few short lines) and the body.
constexpr size_t kMaxCacheHeaderBytes = 1024;
constexpr std::string_view kCacheMagic = "tlsp-mta-sts-cache 1";
constexpr std::string_view kCacheSuffix = ".sts";

bool is_ip_literal(const std::string& a, bool& v6) {
  const auto parsed = base::parse_ip_address(a);
  if (parsed) v6 = parsed->v6;
  return parsed.has_value();
}

// ------------------------------------------------------------------ fetch

struct Transfer {
  CURL* curl = nullptr;
  size_t max_body = 0;
  std::string body;
  long status = 0;
  bool too_big = false;
  bool wrong_status = false;
};

// Stops the transfer as soon as the body cannot be a policy we would use:
// past the size limit, or under a status other than 200 (no point reading
// a body that will be thrown away).
size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->status == 0) curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->status);
  if (t->status != 200) {
    t->wrong_status = true;
    return CURL_WRITEFUNC_ERROR;
  }
  if (t->body.size() + n > t->max_body) {
    t->too_big = true;
    return CURL_WRITEFUNC_ERROR;
  }
  t->body.append(data, n);
  return n;
}

StsFetch classify_curl_error(CURLcode rc) {
  switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
      return StsFetch::bad_cert;
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP_RETURNED_ERROR:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return StsFetch::http_error;
    default:
      // Connection refused or reset, time exceeded, a handshake failure
      // (no common version or cipher), nothing received: the host could
      // not be reached properly.
      return StsFetch::timeout;
  }
}

StsFetchResult failed(StsFetch status, std::string detail) {
  StsFetchResult r;
  r.status = status;
  r.detail = std::move(detail);
  return r;
}

}  // namespace

std::string mta_sts_policy_host(std::string_view domain) { return std::string(kPolicyHostPrefix) + std::string(domain); }

std::optional<std::string> normalize_policy_domain(std::string_view domain) {
  NameCheck c = check_host_name(domain);
  if (!c.ok()) return std::nullopt;
  return std::move(c.name);
}

StsFetchResult fetch_mta_sts_policy(std::string_view domain_in, const std::vector<std::string>& addresses,
                                    const StsFetchConfig& config) {
  auto domain = normalize_policy_domain(domain_in);
  if (!domain) return failed(StsFetch::timeout, ticked(domain_in) + " is not a valid policy domain");
  const std::string host = mta_sts_policy_host(*domain);
  if (host.size() > kMaxDomainNameLength) return failed(StsFetch::timeout, ticked(host) + " is too long for a host name");
  if (addresses.empty()) return failed(StsFetch::timeout, "no address to fetch the policy from " + ticked(host));

  for (const std::string& a : addresses) {
    bool v6 = false;
    if (!is_ip_literal(a, v6)) return failed(StsFetch::timeout, ticked(a) + " is not an IP address");
  }
  const std::string url = curl_https::https_url(host, config.https_port, std::string(kPolicyPath));

  curl_https::init_once();
  curl_https::Easy curl(curl_easy_init());
  if (!curl) return failed(StsFetch::timeout, "libcurl could not make a transfer handle");
  std::string pin_error;
  curl_https::List resolve = curl_https::pin_list(host, config.https_port, addresses, &pin_error);
  if (!resolve) return failed(StsFetch::timeout, pin_error);

  Transfer t;
  t.curl = curl.get();
  t.max_body = config.max_body;
  char error[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_https::HttpsSettings settings;
  settings.url = url;
  settings.resolve = resolve.get();
  settings.ca_file = config.ca_file;
  settings.timeout = config.timeout;
  settings.user_agent = "tlsp-mta-sts";
  curl_https::set_pinned_https(c, settings, error);
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(config.max_body));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);

  const CURLcode rc = curl_easy_perform(c);
  const std::string what = "policy fetch from " + ticked(url);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  char* location = nullptr;
  curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location);
  if (t.too_big || rc == CURLE_FILESIZE_EXCEEDED)
    return failed(StsFetch::http_error,
                  what + ": the body is larger than " + std::to_string(config.max_body) + " bytes");
  if (rc != CURLE_OK && !t.wrong_status) {
    std::string why = error[0] ? std::string(error) : std::string(curl_easy_strerror(rc));
    return failed(classify_curl_error(rc), what + " failed: " + ticked(why));
  }
  if (status >= 300 && status < 400)
    return failed(StsFetch::http_error, what + ": redirect (status " + std::to_string(status) + ")" +
                                            (location ? " to " + ticked(location) : std::string()) +
                                            " is not followed");
  if (status != 200) return failed(StsFetch::http_error, what + ": status " + std::to_string(status));
  char* type = nullptr;
  curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
  if (!type) return failed(StsFetch::http_error, what + ": no Content-Type");
  if (!is_text_plain_content_type(type))
    return failed(StsFetch::http_error, what + ": Content-Type " + ticked(type) + " is not `text/plain`");

  auto parsed = parse_mta_sts_policy(t.body);
  if (!parsed) return failed(StsFetch::invalid, what + ": invalid policy: " + parsed.problem);
  StsFetchResult r;
  r.status = StsFetch::ok;
  r.policy = std::move(*parsed.value);
  r.body = std::move(t.body);
  return r;
}

// ------------------------------------------------------------------ cache

namespace {

std::string sha256_hex(std::string_view data) { return base::hex(base::digest(base::Digest::sha256, data)); }

std::string errno_text() { return std::strerror(errno); }

// Reads at most `limit` bytes; false if the file is missing or larger.
enum class ReadStatus { ok, missing, too_large, error };
ReadStatus read_bounded(const std::string& path, size_t limit, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno == ENOENT ? ReadStatus::missing : ReadStatus::error;
  out.clear();
  char buf[8192];
  ReadStatus st = ReadStatus::ok;
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      st = ReadStatus::error;
      break;
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > limit) {
      st = ReadStatus::too_large;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return st;
}

bool parse_i64(std::string_view s, int64_t& v) {
  if (s.empty() || s.size() > 18) return false;
  v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  return true;
}

// The header is `key: value` lines in a fixed order, then an empty line.
bool take_field(std::string_view& text, std::string_view key, std::string_view& value) {
  size_t lf = text.find('\n');
  if (lf == std::string_view::npos) return false;
  std::string_view line = text.substr(0, lf);
  if (line.substr(0, key.size()) != key || line.substr(key.size(), 2) != ": ") return false;
  value = line.substr(key.size() + 2);
  text.remove_prefix(lf + 1);
  return true;
}

// Why the file cannot be used, or "" with `entry` filled.
std::string decode_cache_file(std::string_view text, std::string_view domain, CachedStsPolicy& entry) {
  size_t lf = text.find('\n');
  if (lf == std::string_view::npos || text.substr(0, lf) != kCacheMagic) return "not a tlsp policy cache file";
  text.remove_prefix(lf + 1);
  std::string_view v_domain, v_id, v_fetched, v_expires, v_digest, v_length;
  if (!take_field(text, "domain", v_domain) || !take_field(text, "id", v_id) ||
      !take_field(text, "fetched_at", v_fetched) || !take_field(text, "expires_at", v_expires) ||
      !take_field(text, "body_sha256", v_digest) || !take_field(text, "body_length", v_length))
    return "malformed header";
  if (text.empty() || text.front() != '\n') return "malformed header";
  text.remove_prefix(1);
  if (v_domain != domain) return "it names the domain " + ticked(v_domain);
  if (!parse_mta_sts_txt("v=STSv1; id=" + std::string(v_id))) return "invalid id " + ticked(v_id);
  int64_t length = 0;
  if (!parse_i64(v_fetched, entry.fetched_at) || !parse_i64(v_expires, entry.expires_at) ||
      !parse_i64(v_length, length))
    return "malformed number in the header";
  if (static_cast<uint64_t>(length) != text.size()) return "the body is truncated or extended";
  if (sha256_hex(text) != v_digest) return "the body does not match its digest";
  auto parsed = parse_mta_sts_policy(text);
  if (!parsed) return "the stored policy is invalid: " + parsed.problem;
  if (entry.expires_at != entry.fetched_at + static_cast<int64_t>(parsed.value->max_age))
    return "expires_at does not agree with the policy's max_age";
  entry.id = std::string(v_id);
  entry.policy = std::move(*parsed.value);
  entry.body = std::string(text);
  return {};
}

}  // namespace

MtaStsCache::MtaStsCache(std::string directory) : dir_(std::move(directory)) {
  if (dir_.empty()) throw std::runtime_error("empty policy cache directory");
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create the policy cache directory `" + dir_ + "`: " + errno_text());
  struct stat st{};
  if (::stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw std::runtime_error("the policy cache `" + dir_ + "` is not a directory");
}

std::string MtaStsCache::path_for(std::string_view domain) const {
  // A normalised domain is [a-z0-9.-] without a leading dot or "..": a safe
  // file name that never collides with the temporary files.
  auto d = normalize_policy_domain(domain);
  if (!d) return {};
  return dir_ + "/" + *d + std::string(kCacheSuffix);
}

// The domain's file read and checked (`domain` in normal form): the entry,
// expired or not, or why there is none (`corrupt`: a file was there).
StsCacheLookup MtaStsCache::load(const std::string& domain) const {
  StsCacheLookup r;
  const std::string path = path_for(domain);
  std::string text;
  ReadStatus st;
  {
    std::lock_guard lock(mutex_);
    st = read_bounded(path, kMaxCacheHeaderBytes + kMaxStsPolicyBytes, text);
  }
  switch (st) {
    case ReadStatus::missing: r.detail = "no cached policy for " + ticked(domain); return r;
    case ReadStatus::too_large:
      r.corrupt = true;
      r.detail = "ignored the corrupt cached policy `" + path + "`: too large";
      return r;
    case ReadStatus::error:
      r.corrupt = true;
      r.detail = "cannot read the cached policy `" + path + "`: " + errno_text();
      return r;
    case ReadStatus::ok: break;
  }
  CachedStsPolicy entry;
  std::string problem = decode_cache_file(text, domain, entry);
  if (!problem.empty()) {
    r.corrupt = true;
    r.detail = "ignored the corrupt cached policy `" + path + "`: " + problem;
    return r;
  }
  r.entry = std::move(entry);
  return r;
}

StsCacheLookup MtaStsCache::get(std::string_view domain_in, int64_t now) const {
  auto domain = normalize_policy_domain(domain_in);
  if (!domain) {
    StsCacheLookup r;
    r.detail = ticked(domain_in) + " is not a valid policy domain";
    return r;
  }
  StsCacheLookup loaded = load(*domain);
  if (!loaded.entry || loaded.entry->expires_at > now) return loaded;
  StsCacheLookup expired;
  expired.detail = "the cached policy for " + ticked(*domain) + " expired at " + std::to_string(loaded.entry->expires_at);
  return expired;
}

std::vector<StsCacheListing> MtaStsCache::list() const {
  std::vector<StsCacheListing> out;
  DIR* d = ::opendir(dir_.c_str());
  if (!d) throw std::runtime_error("cannot list the policy cache `" + dir_ + "`: " + errno_text());
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    // Only the names path_for() makes: temporary files and strangers are
    // not entries.
    if (!name.ends_with(kCacheSuffix)) continue;
    std::string stem = name.substr(0, name.size() - kCacheSuffix.size());
    auto domain = normalize_policy_domain(stem);
    if (!domain || *domain != stem) continue;
    StsCacheLookup l = load(stem);
    StsCacheListing item;
    item.domain = stem;
    item.path = path_for(stem);
    item.entry = std::move(l.entry);
    if (!item.entry) item.problem = l.detail;
    out.push_back(std::move(item));
  }
  return out;
}

bool MtaStsCache::put(std::string_view domain_in, std::string_view id, std::string_view body, int64_t now,
                      std::string* error) {
  auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  auto domain = normalize_policy_domain(domain_in);
  if (!domain) return fail(ticked(domain_in) + " is not a valid policy domain");
  if (!parse_mta_sts_txt("v=STSv1; id=" + std::string(id))) return fail("invalid policy id " + ticked(id));
  auto parsed = parse_mta_sts_policy(body);
  if (!parsed) return fail("not caching an invalid policy: " + parsed.problem);
  if (now < 0) return fail("negative time");

  std::string text(kCacheMagic);
  text += "\ndomain: " + *domain;
  text += "\nid: " + std::string(id);
  text += "\nfetched_at: " + std::to_string(now);
  text += "\nexpires_at: " + std::to_string(now + static_cast<int64_t>(parsed.value->max_age));
  text += "\nbody_sha256: " + sha256_hex(body);
  text += "\nbody_length: " + std::to_string(body.size());
  text += "\n\n";
  text += body;

  const std::string path = path_for(*domain);
  std::lock_guard lock(mutex_);
  try {
    // 0600: the cache is the relay's own (its directory is 0700 too).
    base::write_file_atomically(path, text, 0600);
  } catch (const base::FileError& e) {
    return fail(e.what());
  }
  return true;
}

bool MtaStsCache::erase(std::string_view domain) {
  const std::string path = path_for(domain);
  if (path.empty()) return false;
  std::lock_guard lock(mutex_);
  if (::unlink(path.c_str()) != 0) return false;
  // The entry is gone either way; the directory sync only makes the
  // removal durable sooner, and a stale entry after a crash is still
  // checked on read.
  try {
    base::sync_directory(dir_);
  } catch (const base::FileError&) {
  }
  return true;
}

// -------------------------------------------------------------- discovery

namespace {

// RFC 8461 §3.1: records that do not begin with `v=STSv1;` are discarded.
// The ABNF allows spaces before the `;`, so the version token must merely
// end there (`v=STSv12` is another version, not ours).
bool starts_with_sts_version(std::string_view record) {
  constexpr std::string_view kVersion = "v=STSv1";
  if (record.substr(0, kVersion.size()) != kVersion) return false;
  if (record.size() == kVersion.size()) return true;
  char next = record[kVersion.size()];
  return next == ';' || next == ' ' || next == '\t';
}

}  // namespace

StsDiscovery discover_mta_sts(std::string_view domain_in, const dns::Resolver& resolver,
                              const StsFetchConfig& config, MtaStsCache* cache, int64_t now) {
  StsDiscovery d;
  auto domain = normalize_policy_domain(domain_in);
  if (!domain) {
    d.detail = ticked(domain_in) + " is not a valid policy domain: no MTA-STS";
    return d;
  }
  std::string notes;
  auto note = [&](const std::string& s) {
    if (s.empty()) return;
    if (!notes.empty()) notes += "; ";
    notes += s;
  };

  std::optional<CachedStsPolicy> cached;
  if (cache) {
    StsCacheLookup lookup = cache->get(*domain, now);
    if (lookup.entry) {
      cached = std::move(lookup.entry);
      d.cached = cached->policy;
    } else if (lookup.corrupt) {
      note(lookup.detail);
    }
  }

  const std::string txt_name = std::string(kTxtPrefix) + *domain;
  dns::Lookup<std::string> txt = resolver.txt(txt_name);
  if (!txt.found()) {
    note("TXT " + ticked(txt_name) + ": " + std::string(to_string(txt.status)) +
         (txt.detail.empty() ? std::string() : " (" + txt.detail + ")"));
    d.detail = notes;
    return d;
  }
  std::vector<std::string_view> candidates;
  for (const auto& r : txt.records)
    if (starts_with_sts_version(r)) candidates.push_back(r);
  if (candidates.size() != 1) {
    note("TXT " + ticked(txt_name) + ": " + std::to_string(candidates.size()) +
         " records start with `v=STSv1` (exactly one is needed)");
    d.detail = notes;
    return d;
  }
  auto record = parse_mta_sts_txt(candidates.front());
  if (!record) {
    note("TXT " + ticked(txt_name) + ": " + record.problem);
    d.detail = notes;
    return d;
  }
  d.txt = true;
  d.id = record.value->id;

  if (cached && cached->id == d.id) {
    d.from_cache = true;
    d.fetch = StsFetch::ok;
    note("policy id " + ticked(d.id) + " is cached until " + std::to_string(cached->expires_at));
    d.detail = notes;
    return d;
  }

  const std::string host = mta_sts_policy_host(*domain);
  dns::Lookup<std::string> addrs = resolver.addresses(host);
  if (!addrs.found()) {
    d.fetch = StsFetch::timeout;
    note("no address for " + ticked(host) + ": " + std::string(to_string(addrs.status)) +
         (addrs.detail.empty() ? std::string() : " (" + addrs.detail + ")"));
    d.detail = notes;
    return d;
  }
  StsFetchResult fetched = fetch_mta_sts_policy(*domain, addrs.records, config);
  d.fetch = fetched.status;
  if (fetched.status != StsFetch::ok) {
    note(fetched.detail);
    d.detail = notes;
    return d;
  }
  d.fetched = fetched.policy;
  note("fetched policy id " + ticked(d.id));
  if (cache) {
    std::string error;
    if (!cache->put(*domain, d.id, fetched.body, now, &error)) note("not cached: " + error);
  }
  d.detail = notes;
  return d;
}

MtaStsFacts sts_facts_for_mx(const StsDiscovery& d, std::string_view mx_host) {
  MtaStsFacts f;
  f.txt = d.txt;
  f.fetch = d.fetch;
  if (d.cached) f.cached = d.cached->mode;
  // The policy in force (the engine's choice): the current one, which is
  // the cached one when the TXT id names it, else the cache.
  const MtaStsPolicy* in_force = nullptr;
  switch (sts_policy_in_force(f)) {
    case StsPolicySource::fresh:
      in_force = d.fetched ? &*d.fetched : d.cached ? &*d.cached : nullptr;
      if (in_force) f.mode = in_force->mode;
      break;
    case StsPolicySource::cached: in_force = &*d.cached; break;
    case StsPolicySource::none: break;
  }
  f.mx_match = in_force && mta_sts_mx_matches(mx_host, in_force->mx);
  return f;
}

}  // namespace tlsp
