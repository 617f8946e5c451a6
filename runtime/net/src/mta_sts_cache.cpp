// mta_sts_cache.cpp — the MTA-STS policy cache (tlsp/mta_sts_cache.h): the
// entry's serialised form, the RFC 8461 rules of MtaStsCache, and the
// directory store. The Redis store is mta_sts_redis_cache.cpp's.
//
// Every store holds the same bytes and every read goes through
// decode_sts_cache_entry(), so an entry that does not pass every check
// (format, lengths, digest, the body still a valid policy, the expiry
// consistent with its max_age) is ignored, never half-trusted, wherever it
// was kept. In the directory a file is replaced as tlsp/base/atomic_file.h
// replaces files (temporary file, fsync, rename, directory fsync), so a
// reader (or a crash) sees the old policy or the new one.
#include "tlsp/mta_sts_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "tlsp/base/atomic_file.h"
#include "tlsp/base/digest.h"
#include "tlsp/base/header_fields.h"
#include "tlsp/base/quote.h"
#include "tlsp/mta_sts_fetch.h"

namespace tlsp {
namespace {

using base::ticked;

constexpr std::string_view kCacheMagic = "tlsp-mta-sts-cache 1";
constexpr std::string_view kCacheSuffix = ".sts";

std::string sha256_hex(std::string_view data) { return base::hex(base::digest(base::Digest::sha256, data)); }

std::string errno_text() { return std::strerror(errno); }

// Reads at most `limit` bytes of a file.
StsCacheRead read_bounded(const std::string& path, size_t limit) {
  base::BoundedRead b = base::read_file_bounded(path, limit);
  StsCacheRead r;
  switch (b.status) {
    case base::BoundedRead::Status::ok: r.status = StsCacheRead::Status::ok; break;
    case base::BoundedRead::Status::missing: r.status = StsCacheRead::Status::missing; break;
    case base::BoundedRead::Status::too_large: r.status = StsCacheRead::Status::too_large; break;
    case base::BoundedRead::Status::unreadable: r.status = StsCacheRead::Status::unreadable; break;
  }
  if (b.error) r.detail = std::strerror(b.error);
  r.text = std::move(b.text);
  return r;
}

}  // namespace

// ------------------------------------------------------------ the entry

std::string encode_sts_cache_entry(std::string_view domain, std::string_view id, std::string_view body,
                                   int64_t fetched_at, int64_t expires_at) {
  std::string text(kCacheMagic);
  text += "\ndomain: " + std::string(domain);
  text += "\nid: " + std::string(id);
  text += "\nfetched_at: " + std::to_string(fetched_at);
  text += "\nexpires_at: " + std::to_string(expires_at);
  text += "\nbody_sha256: " + sha256_hex(body);
  text += "\nbody_length: " + std::to_string(body.size());
  text += "\n\n";
  text += body;
  return text;
}

std::string decode_sts_cache_entry(std::string_view text, std::string_view domain, CachedStsPolicy& entry) {
  if (text.size() > kMaxStsCacheEntryBytes) return "too large";
  size_t lf = text.find('\n');
  if (lf == std::string_view::npos || text.substr(0, lf) != kCacheMagic) return "not a tlsp policy cache file";
  text.remove_prefix(lf + 1);
  std::string_view v_domain, v_id, v_fetched, v_expires, v_digest, v_length;
  if (!base::take_header_field(text, "domain", v_domain) || !base::take_header_field(text, "id", v_id) ||
      !base::take_header_field(text, "fetched_at", v_fetched) || !base::take_header_field(text, "expires_at", v_expires) ||
      !base::take_header_field(text, "body_sha256", v_digest) || !base::take_header_field(text, "body_length", v_length))
    return "malformed header";
  if (text.empty() || text.front() != '\n') return "malformed header";
  text.remove_prefix(1);
  if (v_domain != domain) return "it names the domain " + ticked(v_domain);
  if (!parse_mta_sts_txt("v=STSv1; id=" + std::string(v_id))) return "invalid id " + ticked(v_id);
  int64_t length = 0;
  if (!base::parse_decimal_i64(v_fetched, entry.fetched_at) || !base::parse_decimal_i64(v_expires, entry.expires_at) ||
      !base::parse_decimal_i64(v_length, length))
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

// ---------------------------------------------------------- the rules

MtaStsCache::MtaStsCache(std::string location)
    : store_(is_redis_sts_cache_location(location) ? open_redis_sts_cache_store(location)
                                                   : std::make_unique<DirectoryStsCacheStore>(std::move(location))) {}

MtaStsCache::MtaStsCache(std::unique_ptr<StsCacheStore> store) : store_(std::move(store)) {
  if (!store_) throw std::invalid_argument("no policy cache store");
}

std::string MtaStsCache::path_for(std::string_view domain) const {
  auto d = normalize_policy_domain(domain);
  if (!d) return {};
  return store_->where(*d);
}

// The domain's entry read and checked (`domain` in normal form): the entry,
// expired or not, or why there is none (`corrupt`: something was there).
StsCacheLookup MtaStsCache::load(const std::string& domain) const {
  StsCacheLookup r;
  StsCacheRead read = store_->read(domain);
  const std::string where = store_->where(domain);
  switch (read.status) {
    case StsCacheRead::Status::missing: r.detail = "no cached policy for " + ticked(domain); return r;
    case StsCacheRead::Status::too_large:
      r.corrupt = true;
      r.detail = "ignored the corrupt cached policy `" + where + "`: too large";
      return r;
    case StsCacheRead::Status::unreadable:
      r.corrupt = true;
      r.detail = "cannot read the cached policy `" + where + "`: " + read.detail;
      return r;
    case StsCacheRead::Status::unavailable:
      r.unavailable = true;
      r.detail = "the policy cache " + store_->location() + " is unavailable (" + read.detail +
                 "): nothing cached is used";
      return r;
    case StsCacheRead::Status::ok: break;
  }
  CachedStsPolicy entry;
  std::string problem = decode_sts_cache_entry(read.text, domain, entry);
  if (!problem.empty()) {
    r.corrupt = true;
    r.detail = "ignored the corrupt cached policy `" + where + "`: " + problem;
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
  for (const std::string& domain : store_->domains()) {
    StsCacheLookup l = load(domain);
    if (l.unavailable) throw std::runtime_error(l.detail);
    // Gone between the listing and the read (expired, purged): not an entry.
    if (!l.entry && !l.corrupt) continue;
    StsCacheListing item;
    item.domain = domain;
    item.path = store_->where(domain);
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
  const int64_t max_age = static_cast<int64_t>(parsed.value->max_age);
  std::string problem =
      store_->write(*domain, encode_sts_cache_entry(*domain, id, body, now, now + max_age), max_age);
  if (!problem.empty()) return fail(std::move(problem));
  return true;
}

bool MtaStsCache::erase(std::string_view domain) {
  auto d = normalize_policy_domain(domain);
  if (!d) return false;
  return store_->remove(*d);
}

// ------------------------------------------------------ the directory

DirectoryStsCacheStore::DirectoryStsCacheStore(std::string directory) : dir_(std::move(directory)) {
  if (dir_.empty()) throw std::runtime_error("empty policy cache directory");
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create the policy cache directory `" + dir_ + "`: " + errno_text());
  struct stat st{};
  if (::stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw std::runtime_error("the policy cache `" + dir_ + "` is not a directory");
}

std::string DirectoryStsCacheStore::where(const std::string& domain) const {
  // A normalised domain is [a-z0-9.-] without a leading dot or "..": a safe
  // file name that never collides with the temporary files.
  return dir_ + "/" + domain + std::string(kCacheSuffix);
}

StsCacheRead DirectoryStsCacheStore::read(const std::string& domain) const {
  std::lock_guard lock(mutex_);
  return read_bounded(where(domain), kMaxStsCacheEntryBytes);
}

std::string DirectoryStsCacheStore::write(const std::string& domain, const std::string& text, int64_t) {
  // An expired entry is kept like any other: get() ignores it, `tlsp
  // mta-sts-cache list` shows it, the next fetch replaces it.
  std::lock_guard lock(mutex_);
  try {
    // 0600: the cache is the relay's own (its directory is 0700 too).
    base::write_file_atomically(where(domain), text, 0600);
  } catch (const base::FileError& e) {
    return e.what();
  }
  return {};
}

bool DirectoryStsCacheStore::remove(const std::string& domain) {
  std::lock_guard lock(mutex_);
  if (::unlink(where(domain).c_str()) != 0) return false;
  // The entry is gone either way; the directory sync only makes the
  // removal durable sooner, and a stale entry after a crash is still
  // checked on read.
  try {
    base::sync_directory(dir_);
  } catch (const base::FileError&) {
  }
  return true;
}

std::vector<std::string> DirectoryStsCacheStore::domains() const {
  DIR* d = ::opendir(dir_.c_str());
  if (!d) throw std::runtime_error("cannot list the policy cache `" + dir_ + "`: " + errno_text());
  std::vector<std::string> out;
  while (dirent* e = ::readdir(d)) {
    // Only the names where() makes: temporary files and strangers are not
    // entries.
    std::string_view name = e->d_name;
    if (!name.ends_with(kCacheSuffix)) continue;
    std::string stem(name.substr(0, name.size() - kCacheSuffix.size()));
    auto domain = normalize_policy_domain(stem);
    if (!domain || *domain != stem) continue;
    out.push_back(std::move(stem));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace tlsp
