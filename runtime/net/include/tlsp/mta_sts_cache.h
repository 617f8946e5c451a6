// tlsp/mta_sts_cache.h — the MTA-STS policy cache (RFC 8461 §5.1, SPEC §4):
// the RFC's rules in one class, MtaStsCache, over a store that only keeps
// and gives back bytes (StsCacheStore): a directory of files (one relay),
// or Redis (a fleet of relays sharing what each fetched, as
// postfix-mta-sts-resolver does).
//
// Contract:
//  * An entry is one policy domain's cached policy in one serialised form,
//    the same in every store: a magic line, `key: value` header lines
//    (domain, id, fetched_at, expires_at = fetched_at + max_age,
//    body_sha256, body_length), an empty line, the policy body.
//    encode_sts_cache_entry() writes it; decode_sts_cache_entry() checks
//    every part (the magic, the header's order, the domain, the id's
//    syntax, the numbers, the body's length and digest, the body still a
//    valid policy, expires_at agreeing with its max_age) in one pass over
//    at most kMaxStsCacheEntryBytes, and gives the entry or why it cannot
//    be used. Nothing else reads an entry.
//  * MtaStsCache owns the rules, whatever the store:
//      - get() returns only an unexpired entry (expires_at > now) that
//        decodes; anything else is ignored, never trusted, and said in the
//        detail;
//      - put() stores only a valid policy with a valid id for a valid
//        policy domain, so an invalid fetch never replaces a cached policy;
//      - domains are lower-cased, a trailing dot dropped; a name that is
//        not a valid policy domain is never stored or looked up.
//    Nothing is kept in memory: every get() reads the store, so an erase
//    (`tlsp mta-sts-cache purge`) reaches every relay using the store at
//    once. Thread-safe when the store is (both are).
//  * MtaStsCache(location) chooses the store: a value that starts with
//    `redis://` (redis::looks_like_redis_url) is a Redis server, read
//    strictly by redis::parse_redis_url (tlsp/redis_client.h); anything
//    else is a directory.
//  * DirectoryStsCacheStore: one file `<domain>.sts` per domain, mode 0600,
//    in a directory it creates (mode 0700, not its parents), replaced
//    atomically (tlsp/base/atomic_file.h: readers, other processes too, and
//    a crash see the old file or the new one).
//  * The Redis store (open_redis_sts_cache_store): one string key
//    `tlsp:mta-sts:<domain>` per domain holding the entry, set with a Redis
//    expiry at the entry's expires_at (a TTL of max_age from the put), so
//    Redis drops what the rules would ignore; an entry that has already
//    expired (max_age 0) is deleted instead of stored. A value is read with
//    GETRANGE, never more than kMaxStsCacheEntryBytes + 1 bytes. Connecting
//    and each command wait at most kStsCacheRedisTimeout. A Redis that is
//    down or does not answer makes a lookup "nothing cached" (`unavailable`,
//    said in the detail: discovery fetches) and a put fail with the reason
//    (discovery says it in its detail); after such a failure the lookups
//    and puts of the next kStsCacheRedisRetryAfter are answered
//    "unavailable" at once, so a dead server costs one timeout per
//    interval, not one per delivery. Listing uses SCAN, never KEYS; listing
//    and erasing always ask the server (any answer ends the rest) and throw
//    when it does not answer.
//    Thread-safe (one connection under the client's mutex).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/mta_sts.h"

namespace tlsp {

// The header of an entry is a few short lines; the body at most a policy.
inline constexpr size_t kMaxStsCacheHeaderBytes = 1024;
inline constexpr size_t kMaxStsCacheEntryBytes = kMaxStsCacheHeaderBytes + kMaxStsPolicyBytes;

// The Redis store's limit for connecting and for each command (each step
// of a call: connect, SELECT, the command's write and its reply): a cache
// that does not answer within it is treated as empty (a lookup) or failed
// (a put).
inline constexpr std::chrono::milliseconds kStsCacheRedisTimeout{500};
// After a connection failure, how long the Redis store answers lookups and
// puts "unavailable" without asking.
inline constexpr std::chrono::milliseconds kStsCacheRedisRetryAfter{5000};

// The prefix of every Redis key of the cache: tlsp:mta-sts:<domain>.
inline constexpr std::string_view kStsCacheRedisPrefix = "tlsp:mta-sts:";

struct CachedStsPolicy {
  std::string id;
  int64_t fetched_at = 0;
  int64_t expires_at = 0;  // fetched_at + max_age
  MtaStsPolicy policy;
  std::string body;
};

// The serialised entry for a valid policy body (put() checks it first).
std::string encode_sts_cache_entry(std::string_view domain, std::string_view id, std::string_view body,
                                   int64_t fetched_at, int64_t expires_at);

// Why `text` is not a usable entry for `domain` (in normal form), or ""
// with `entry` filled. Linear in the text; any input gives one or the
// other.
std::string decode_sts_cache_entry(std::string_view text, std::string_view domain, CachedStsPolicy& entry);

// What a store gave back for one domain.
struct StsCacheRead {
  enum class Status {
    ok,           // `text` is the stored entry (at most kMaxStsCacheEntryBytes)
    missing,      // no entry
    too_large,    // an entry above kMaxStsCacheEntryBytes (not read)
    unreadable,   // the entry is there but cannot be read (`detail`)
    unavailable,  // the store cannot be reached (`detail`)
  };
  Status status = Status::missing;
  std::string text;
  std::string detail;
};

// Where entries are kept. A store keeps and gives back bytes; it judges
// nothing (MtaStsCache does). `domain` is always in normal form.
class StsCacheStore {
 public:
  virtual ~StsCacheStore() = default;
  // What the store is, for messages: the directory, or the redis:// URL.
  virtual const std::string& location() const = 0;
  // Where the domain's entry is kept: a file's path, a Redis key.
  virtual std::string where(const std::string& domain) const = 0;
  virtual StsCacheRead read(const std::string& domain) const = 0;
  // Replaces the domain's entry with `text`, which is not needed after
  // `ttl` seconds (the policy's max_age; 0: already expired, which a store
  // may drop instead of keeping). Returns "" or why nothing was stored.
  virtual std::string write(const std::string& domain, const std::string& text, int64_t ttl) = 0;
  // Removes the domain's entry; true if there was one. Throws
  // std::runtime_error when the store cannot be reached.
  virtual bool remove(const std::string& domain) = 0;
  // The domains that have an entry, sorted. Throws std::runtime_error when
  // the store cannot be listed.
  virtual std::vector<std::string> domains() const = 0;
};

class DirectoryStsCacheStore final : public StsCacheStore {
 public:
  // Creates the directory (not its parents) if missing. Throws
  // std::runtime_error naming it when it cannot be used.
  explicit DirectoryStsCacheStore(std::string directory);
  const std::string& location() const override { return dir_; }
  std::string where(const std::string& domain) const override;
  StsCacheRead read(const std::string& domain) const override;
  std::string write(const std::string& domain, const std::string& text, int64_t ttl) override;
  bool remove(const std::string& domain) override;
  std::vector<std::string> domains() const override;

 private:
  std::string dir_;
  mutable std::mutex mutex_;
};

struct RedisStsCacheOptions {
  std::chrono::milliseconds timeout = kStsCacheRedisTimeout;
  std::chrono::milliseconds retry_after = kStsCacheRedisRetryAfter;  // 0: ask every time
};

// The Redis store of a redis://HOST:PORT/DB location; it connects at its
// first use, not here. Throws std::invalid_argument (the parser's problem)
// for a malformed URL.
std::unique_ptr<StsCacheStore> open_redis_sts_cache_store(std::string_view url, const RedisStsCacheOptions& options = {});

// True for a cache location that names Redis (redis::looks_like_redis_url).
bool is_redis_sts_cache_location(std::string_view location);

struct StsCacheLookup {
  std::optional<CachedStsPolicy> entry;  // unexpired and intact only
  std::string detail;                    // why there is none (missing, expired, corrupt, unavailable)
  bool corrupt = false;                  // an entry was there but ignored (or unreadable)
  bool unavailable = false;              // the store could not be reached: nothing is known
};

// One entry of the cache as `tlsp mta-sts-cache list` shows it.
struct StsCacheListing {
  std::string domain;                    // normal form
  std::string path;                      // where it is kept: the file, the Redis key
  std::optional<CachedStsPolicy> entry;  // intact (perhaps expired: compare expires_at)
  std::string problem;                   // !entry: why it is ignored
};

class MtaStsCache {
 public:
  // A directory, or redis://HOST:PORT/DB (the relay's `mta-sts-cache`).
  // Throws std::runtime_error when a directory cannot be used, and
  // std::invalid_argument for a malformed redis:// URL; a Redis server
  // that is down is not an error here (see the contract).
  explicit MtaStsCache(std::string location);
  explicit MtaStsCache(std::unique_ptr<StsCacheStore> store);
  const std::string& location() const { return store_->location(); }
  // The same as location(), for a directory cache.
  const std::string& directory() const { return store_->location(); }
  StsCacheStore& store() { return *store_; }

  StsCacheLookup get(std::string_view domain, int64_t now) const;
  // Stores a policy fetched at `now`; the body must be a valid policy.
  // Returns false with `error` set when nothing was stored.
  bool put(std::string_view domain, std::string_view id, std::string_view body, int64_t now,
           std::string* error = nullptr);
  // Removes the domain's entry; true if there was one. Throws
  // std::runtime_error when the store cannot be reached.
  bool erase(std::string_view domain);
  // Every entry, by domain, intact, expired or corrupt (a corrupt one is
  // what get() ignores). Throws std::runtime_error when the store cannot
  // be listed.
  std::vector<StsCacheListing> list() const;

  // Where the domain's entry is kept (empty for an invalid domain).
  std::string path_for(std::string_view domain) const;

 private:
  StsCacheLookup load(const std::string& domain) const;

  std::unique_ptr<StsCacheStore> store_;
};

}  // namespace tlsp
