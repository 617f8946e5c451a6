// mta_sts_redis_cache.cpp — the MTA-STS policy cache's Redis store
// (tlsp/mta_sts_cache.h): one string key per policy domain on the server a
// `redis://HOST:PORT/DB` setting names, through tlsp's one Redis client
// (tlsp/redis_client.h). It keeps and gives back an entry's bytes; the
// rules are MtaStsCache's, the entry's checks decode_sts_cache_entry()'s.
//
// The relay asks the cache on the way to every MTA-STS delivery, from
// several delivery workers through one connection: a server that does not
// answer must cost a timeout now and then, not one per delivery in a row.
// After a connection failure the relay's lookups and stores are answered
// "unavailable" at once for `retry_after`, then the next call connects
// again. Listing and removing (`tlsp mta-sts-cache`) always ask, and any
// answer ends the rest.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>

#include "tlsp/base/quote.h"
#include "tlsp/mta_sts_cache.h"
#include "tlsp/mta_sts_fetch.h"
#include "tlsp/redis_client.h"

namespace tlsp {
namespace {

using Clock = std::chrono::steady_clock;
using redis::Reply;
using redis::Result;

// Keys one SCAN step asks for: a hint to Redis, not a limit on the cache.
constexpr std::string_view kScanCount = "1000";

class RedisStsCacheStore final : public StsCacheStore {
 public:
  RedisStsCacheStore(redis::RedisUrl url, const RedisStsCacheOptions& o)
      : client_(std::move(url), redis::ClientOptions{o.timeout, o.timeout}),
        location_(client_.describe()),
        retry_after_(o.retry_after) {}

  const std::string& location() const override { return location_; }

  std::string where(const std::string& domain) const override {
    return std::string(kStsCacheRedisPrefix) + domain;
  }

  StsCacheRead read(const std::string& domain) const override {
    StsCacheRead r;
    if (resting(r.detail)) {
      r.status = StsCacheRead::Status::unavailable;
      return r;
    }
    const std::string key = where(domain);
    // GETRANGE bounds the reply: at most one byte more than an entry may
    // have, which is enough to call it too large.
    Result got = call({"GETRANGE", key, "0", std::to_string(kMaxStsCacheEntryBytes)});
    if (!got.ok()) return failed(got);
    if (got.reply.type != Reply::Type::string) return unexpected(got.reply);
    if (got.reply.str.size() > kMaxStsCacheEntryBytes) {
      r.status = StsCacheRead::Status::too_large;
      return r;
    }
    if (got.reply.str.empty()) {
      // A missing key and an empty value give the same GETRANGE reply.
      Result exists = call({"EXISTS", key});
      if (!exists.ok()) return failed(exists);
      if (exists.reply.type != Reply::Type::integer) return unexpected(exists.reply);
      r.status = exists.reply.integer ? StsCacheRead::Status::ok : StsCacheRead::Status::missing;
      return r;
    }
    r.status = StsCacheRead::Status::ok;
    r.text = std::move(got.reply.str);
    return r;
  }

  std::string write(const std::string& domain, const std::string& text, int64_t ttl) override {
    std::string resting_detail;
    if (resting(resting_detail)) return "the policy cache " + location_ + " is unavailable (" + resting_detail + ")";
    const std::string key = where(domain);
    // An entry that has expired already is not kept: Redis would drop it
    // at once, and get() would ignore it.
    Result r = ttl > 0 ? call({"SET", key, text, "EX", std::to_string(ttl)}) : call({"DEL", key});
    if (!r.ok()) return "cannot store " + base::ticked(key) + ": " + r.error;
    return {};
  }

  bool remove(const std::string& domain) override {
    Result r = call({"DEL", where(domain)});
    if (!r.ok()) throw std::runtime_error(r.error);
    if (r.reply.type != Reply::Type::integer) throw std::runtime_error(unexpected(r.reply).detail);
    return r.reply.integer > 0;
  }

  std::vector<std::string> domains() const override {
    std::vector<std::string> out;
    const std::string pattern = std::string(kStsCacheRedisPrefix) + "*";
    std::string cursor = "0";
    do {
      Result r = call({"SCAN", cursor, "MATCH", pattern, "COUNT", std::string(kScanCount)});
      if (!r.ok()) throw std::runtime_error(r.error);
      const Reply& a = r.reply;
      if (a.type != Reply::Type::array || a.elements.size() != 2 || a.elements[0].type != Reply::Type::string ||
          a.elements[1].type != Reply::Type::array)
        throw std::runtime_error(location_ + ": unexpected reply to SCAN");
      cursor = a.elements[0].str;
      for (const Reply& k : a.elements[1].elements) {
        if (k.type != Reply::Type::string) continue;
        // Only the keys where() makes: a stranger under the prefix (not a
        // domain in normal form) is not an entry.
        std::string_view stem = std::string_view(k.str).substr(kStsCacheRedisPrefix.size());
        auto domain = normalize_policy_domain(stem);
        if (domain && *domain == stem) out.push_back(*domain);
      }
    } while (cursor != "0");
    // SCAN may return a key more than once.
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

 private:
  // True (with why) while the relay's calls rest after a connection failure.
  bool resting(std::string& detail) const {
    const int64_t until = rest_until_ms_.load(std::memory_order_relaxed);
    if (until == 0 || now_ms() >= until) return false;
    detail = "it did not answer less than " + std::to_string(retry_after_.count()) + " ms ago";
    return true;
  }

  Result call(const std::vector<std::string>& argv) const {
    Result r = client_.command(argv);
    if (r.status != Result::Status::connection_error)
      rest_until_ms_.store(0, std::memory_order_relaxed);  // it answers: no rest
    else if (retry_after_.count() > 0)
      rest_until_ms_.store(now_ms() + retry_after_.count(), std::memory_order_relaxed);
    return r;
  }

  static int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
  }

  StsCacheRead failed(const Result& r) const {
    StsCacheRead out;
    // A server that answers with an error (WRONGTYPE: the key holds
    // something else) has an entry we cannot read; one that does not
    // answer has nothing we know of.
    out.status = r.status == Result::Status::server_error ? StsCacheRead::Status::unreadable
                                                          : StsCacheRead::Status::unavailable;
    out.detail = r.error;
    return out;
  }

  StsCacheRead unexpected(const Reply&) const {
    StsCacheRead out;
    out.status = StsCacheRead::Status::unreadable;
    out.detail = location_ + ": unexpected reply";
    return out;
  }

  mutable redis::RedisClient client_;
  std::string location_;
  std::chrono::milliseconds retry_after_;
  mutable std::atomic<int64_t> rest_until_ms_{0};
};

}  // namespace

bool is_redis_sts_cache_location(std::string_view location) { return redis::looks_like_redis_url(location); }

std::unique_ptr<StsCacheStore> open_redis_sts_cache_store(std::string_view url, const RedisStsCacheOptions& options) {
  redis::RedisUrlParse parsed = redis::parse_redis_url(url);
  if (!parsed.url) throw std::invalid_argument("mta-sts-cache: " + parsed.problem);
  return std::make_unique<RedisStsCacheStore>(std::move(*parsed.url), options);
}

}  // namespace tlsp
