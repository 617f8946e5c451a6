// mta_sts_cache_test.cpp — the MTA-STS policy cache (tlsp/mta_sts_cache.h):
// the same cases against both stores (typed tests), a directory and a real
// redis-server started by the test on a free loopback port (a temporary
// directory, no persistence, killed at the end of the test); then what is
// particular to each store: the directory's files and atomic writes; the
// Redis key, its expiry, a value that is not ours, a Redis that is down or
// does not answer (a lookup is "nothing cached" within the timeout, a put
// fails with the reason), and reconnection once it is back. Discovery
// (tlsp/mta_sts_fetch.h) through two caches on one store: what one fetched
// the other uses without fetching.
//
// Time for the cache's rules is injected (`now`), never waited for; Redis's
// own expiry runs on its clock (the TTL is max_age from the put), so an
// entry a test calls expired is still there for Redis, as it is on disk.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <iostream>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "redis_server.h"
#include "test_support.h"
#include "tlsp/dns.h"
#include "tlsp/mta_sts_cache.h"
#include "tlsp/mta_sts_fetch.h"
#include "tlsp/redis_client.h"
#include "tlsp/sim/dns_responder.h"
#include "tlsp/sim/https_server.h"
#include "tlsp/sim/test_pki.h"

namespace {

using namespace std::chrono_literals;
using namespace tlsp;
using namespace tlsp::sim;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using tlsp::testing_support::TempDir;

constexpr char kDomain[] = "example.test";
constexpr int64_t kNow = 1700000000;
const std::string kEnforce = "version: STSv1\nmode: enforce\nmx: mail.example.test\nmx: *.backup.example.test\nmax_age: 86400\n";
const std::string kTesting = "version: STSv1\nmode: testing\nmx: mail.example.test\nmax_age: 3600\n";

// ------------------------------------------------------------ the stores

// A directory cache: a fresh directory of its own.
struct DirectoryStore {
  explicit DirectoryStore(const TempDir& tmp) : location(tmp.path() + "/cache") {}
  std::string location;
};

// A Redis cache: a redis-server of its own (tests/support/redis_server.h),
// database 2 (not the default: the URL's number is used).
struct RedisStore {
  explicit RedisStore(const TempDir&) : location(server.url(2)) {}
  tlsp::testing_support::RedisServer server;
  std::string location;
};

template <class Store>
class StsCacheStoreTest : public ::testing::Test {
 protected:
  StsCacheStoreTest() : tmp("tlsp-sts-cache-test"), store(tmp), cache(store.location) {}
  // The stored bytes of the domain's entry, as the store gives them back.
  std::string raw(const std::string& domain) {
    StsCacheRead r = cache.store().read(domain);
    EXPECT_EQ(r.status, StsCacheRead::Status::ok) << r.detail;
    return r.text;
  }
  TempDir tmp;
  Store store;
  MtaStsCache cache;
};

using Stores = ::testing::Types<DirectoryStore, RedisStore>;
struct StoreNames {
  template <class T>
  static std::string GetName(int) {
    return std::is_same_v<T, DirectoryStore> ? "Directory" : "Redis";
  }
};
TYPED_TEST_SUITE(StsCacheStoreTest, Stores, StoreNames);

TYPED_TEST(StsCacheStoreTest, PutGetAndExpiry) {
  MtaStsCache& cache = this->cache;
  std::string error;
  ASSERT_TRUE(cache.put("Example.TEST.", "id1", kTesting, kNow, &error)) << error;
  StsCacheLookup r = cache.get(kDomain, kNow);
  ASSERT_TRUE(r.entry) << r.detail;
  EXPECT_EQ(r.entry->id, "id1");
  EXPECT_EQ(r.entry->fetched_at, kNow);
  EXPECT_EQ(r.entry->expires_at, kNow + 3600);
  EXPECT_EQ(r.entry->policy.mode, StsMode::testing);
  EXPECT_EQ(r.entry->body, kTesting);
  EXPECT_TRUE(cache.get(kDomain, kNow + 3599).entry);
  r = cache.get(kDomain, kNow + 3600);
  EXPECT_FALSE(r.entry);
  EXPECT_NE(r.detail.find("expired"), std::string::npos) << r.detail;
  // The same serialised form in every store.
  EXPECT_EQ(this->raw(kDomain), encode_sts_cache_entry(kDomain, "id1", kTesting, kNow, kNow + 3600));
  EXPECT_TRUE(cache.erase(kDomain));
  EXPECT_FALSE(cache.erase(kDomain));
  StsCacheLookup missing = cache.get(kDomain, kNow);
  EXPECT_FALSE(missing.entry);
  EXPECT_FALSE(missing.corrupt);
  EXPECT_FALSE(missing.unavailable);
  EXPECT_NE(missing.detail.find("no cached policy"), std::string::npos) << missing.detail;
}

TYPED_TEST(StsCacheStoreTest, ReplacesAndRefusesInvalidInput) {
  MtaStsCache& cache = this->cache;
  ASSERT_TRUE(cache.put(kDomain, "id1", kEnforce, kNow));
  ASSERT_TRUE(cache.put(kDomain, "id2", kTesting, kNow + 10));
  auto r = cache.get(kDomain, kNow + 10);
  ASSERT_TRUE(r.entry);
  EXPECT_EQ(r.entry->id, "id2");
  std::string error;
  EXPECT_FALSE(cache.put(kDomain, "id3", "garbage", kNow, &error));
  EXPECT_NE(error.find("invalid"), std::string::npos) << error;
  EXPECT_FALSE(cache.put(kDomain, "bad id!", kEnforce, kNow));
  EXPECT_FALSE(cache.put(kDomain, std::string(33, 'a'), kEnforce, kNow));
  EXPECT_FALSE(cache.put(kDomain, "id4", kEnforce, -1));
  for (std::string bad : {"../etc", ".example.test", "a..b", "a/b", "", ".", "a*b.test", "tlsp:mta-sts:x"}) {
    EXPECT_FALSE(cache.put(bad, "id", kEnforce, kNow)) << bad;
    EXPECT_EQ(cache.path_for(bad), "") << bad;
    EXPECT_FALSE(cache.get(bad, kNow).entry) << bad;
    EXPECT_FALSE(cache.erase(bad)) << bad;
  }
  EXPECT_EQ(cache.get(kDomain, kNow + 10).entry->id, "id2");
  EXPECT_EQ(cache.list().size(), 1u);
}

// Whatever is stored goes through the entry's decoder: bytes that do not
// pass every check are ignored, said to be corrupt, and never trusted.
TYPED_TEST(StsCacheStoreTest, CorruptEntriesAreIgnored) {
  MtaStsCache& cache = this->cache;
  ASSERT_TRUE(cache.put(kDomain, "id1", kEnforce, kNow));
  const std::string good = this->raw(kDomain);
  auto expect_corrupt = [&](const std::string& text, const char* what) {
    ASSERT_EQ(cache.store().write(kDomain, text, 86400), "") << what;
    StsCacheLookup r = cache.get(kDomain, kNow);
    EXPECT_FALSE(r.entry) << what;
    EXPECT_TRUE(r.corrupt) << what;
    EXPECT_FALSE(r.unavailable) << what;
    EXPECT_NE(r.detail.find("corrupt"), std::string::npos) << what << ": " << r.detail;
    EXPECT_NE(r.detail.find(cache.path_for(kDomain)), std::string::npos) << what << ": " << r.detail;
    // Listed, with the same reason.
    std::vector<StsCacheListing> l = cache.list();
    ASSERT_EQ(l.size(), 1u) << what;
    EXPECT_FALSE(l[0].entry) << what;
    EXPECT_EQ(l[0].problem, r.detail) << what;
  };
  std::string flipped = good;
  flipped[flipped.size() - 3] = 'X';  // inside the body: the digest catches it
  expect_corrupt(flipped, "flipped body byte");
  expect_corrupt(good.substr(0, good.size() - 5), "truncated");
  expect_corrupt(good + "mx: evil.example\n", "extended");
  expect_corrupt("", "empty");
  expect_corrupt("garbage\n", "garbage");
  expect_corrupt(std::string(kMaxStsCacheEntryBytes + 1, 'x'), "one byte too large");
  expect_corrupt(std::string(200000, 'x'), "huge");
  std::string later = good;
  later.replace(later.find("expires_at: "), 12 + std::to_string(kNow + 86400).size(),
                "expires_at: " + std::to_string(kNow + 99999999));
  expect_corrupt(later, "expiry beyond max_age");
  // Another domain's entry under this domain's name.
  expect_corrupt(encode_sts_cache_entry("other.test", "id1", kEnforce, kNow, kNow + 86400), "other domain");
  // A body that is no longer a valid policy, with a matching digest.
  expect_corrupt(encode_sts_cache_entry(kDomain, "id1", "version: STSv1\n", kNow, kNow), "invalid policy");
  ASSERT_EQ(cache.store().write(kDomain, good, 86400), "");
  EXPECT_TRUE(cache.get(kDomain, kNow).entry);
}

TYPED_TEST(StsCacheStoreTest, ListShowsEveryEntryByDomain) {
  MtaStsCache& cache = this->cache;
  EXPECT_TRUE(cache.list().empty());
  ASSERT_TRUE(cache.put("b.test", "idb", kEnforce, kNow));
  ASSERT_TRUE(cache.put("a.test", "ida", kTesting, kNow));
  ASSERT_TRUE(cache.put("old.test", "ido", kTesting, kNow - 100000));  // expired at kNow
  ASSERT_EQ(cache.store().write("c.test", "garbage\n", 3600), "");
  std::vector<StsCacheListing> l = cache.list();
  ASSERT_EQ(l.size(), 4u);
  EXPECT_EQ(l[0].domain, "a.test");
  EXPECT_EQ(l[1].domain, "b.test");
  EXPECT_EQ(l[2].domain, "c.test");
  EXPECT_EQ(l[3].domain, "old.test");
  ASSERT_TRUE(l[0].entry);
  EXPECT_EQ(l[0].entry->id, "ida");
  EXPECT_EQ(l[0].path, cache.path_for("a.test"));
  ASSERT_TRUE(l[1].entry);
  EXPECT_EQ(l[1].entry->policy.mode, StsMode::enforce);
  EXPECT_FALSE(l[2].entry);
  EXPECT_NE(l[2].problem.find("not a tlsp policy cache file"), std::string::npos) << l[2].problem;
  ASSERT_TRUE(l[3].entry);  // intact, though expired: get() ignores it
  EXPECT_LE(l[3].entry->expires_at, kNow);
  EXPECT_FALSE(cache.get("old.test", kNow).entry);
  for (const StsCacheListing& e : l) EXPECT_TRUE(cache.erase(e.domain)) << e.domain;
  EXPECT_TRUE(cache.list().empty());
}

// Two caches on one store (two relays, or a relay and `tlsp mta-sts-cache`)
// see each other's puts and erases at once: nothing is kept in memory.
TYPED_TEST(StsCacheStoreTest, TwoCachesOnOneStoreShareEverything) {
  MtaStsCache& first = this->cache;
  MtaStsCache second(this->store.location);
  ASSERT_TRUE(first.put(kDomain, "id1", kEnforce, kNow));
  StsCacheLookup r = second.get(kDomain, kNow + 1);
  ASSERT_TRUE(r.entry) << r.detail;
  EXPECT_EQ(r.entry->id, "id1");
  ASSERT_TRUE(second.put(kDomain, "id2", kTesting, kNow + 2));
  EXPECT_EQ(first.get(kDomain, kNow + 2).entry->id, "id2");
  EXPECT_TRUE(second.erase(kDomain));
  EXPECT_FALSE(first.get(kDomain, kNow + 2).entry);
  EXPECT_FALSE(first.erase(kDomain));
}

TYPED_TEST(StsCacheStoreTest, ConcurrentWritersAndReaders) {
  MtaStsCache& cache = this->cache;
  ASSERT_TRUE(cache.put(kDomain, "id0", kEnforce, kNow));
  constexpr int kRounds = 20;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w)
    threads.emplace_back([&, w] {
      for (int i = 0; i < kRounds; ++i)
        if (!cache.put(kDomain, "id" + std::to_string(w), w ? kTesting : kEnforce, kNow)) ++bad;
    });
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i)
        if (!cache.get(kDomain, kNow).entry) ++bad;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad, 0);
}

// ------------------------------------------------------- the directory

TEST(StsDirectoryCacheTest, OneFilePerDomainAndNoTemporaryFileLeft) {
  TempDir tmp("tlsp-sts-cache-test");
  MtaStsCache cache(tmp.path() + "/cache");
  EXPECT_EQ(cache.location(), tmp.path() + "/cache");
  ASSERT_TRUE(cache.put("Example.TEST.", "id1", kTesting, kNow));
  EXPECT_EQ(cache.path_for(kDomain), tmp.path() + "/cache/example.test.sts");
  EXPECT_EQ(tlsp::testing_support::directory_names(cache.directory()), std::vector<std::string>{"example.test.sts"});
  EXPECT_EQ((fs::status(cache.path_for(kDomain)).permissions() & fs::perms::all), fs::perms::owner_read | fs::perms::owner_write);
  // Strangers in the directory are not entries.
  tmp.write("cache/notes.txt", "hello");
  tmp.write("cache/Upper.test.sts", "x");
  tmp.write("cache/.hidden.sts", "x");
  EXPECT_EQ(cache.list().size(), 1u);
}

// The cache writes as tlsp/base/atomic_file.h does: a put() that fails
// half-way (the file size limit, which holds for root too) reports why,
// keeps the policy cached before whole and leaves no temporary file; a
// put() into a directory that went away says so.
TEST(StsDirectoryCacheTest, AFailedPutKeepsThePolicyCachedBefore) {
  TempDir tmp("tlsp-sts-cache-test");
  MtaStsCache cache(tmp.path() + "/cache");
  ASSERT_TRUE(cache.put(kDomain, "id1", kEnforce, kNow));
  std::string error;
  {
    const tlsp::testing_support::FileSizeLimit limit(0);
    EXPECT_FALSE(cache.put(kDomain, "id2", kTesting, kNow + 10, &error));
  }
  EXPECT_EQ(error, "cannot write `" + cache.path_for(kDomain) + "`: " + std::strerror(EFBIG));
  StsCacheLookup r = cache.get(kDomain, kNow + 10);
  ASSERT_TRUE(r.entry) << r.detail;
  EXPECT_EQ(r.entry->id, "id1");
  EXPECT_EQ(r.entry->body, kEnforce);
  EXPECT_EQ(tlsp::testing_support::directory_names(cache.directory()), std::vector<std::string>{"example.test.sts"});
  fs::remove_all(cache.directory());
  EXPECT_FALSE(cache.put(kDomain, "id3", kEnforce, kNow, &error));
  EXPECT_EQ(error, "cannot create a temporary file for `" + cache.path_for(kDomain) + "`: " + std::strerror(ENOENT));
}

TEST(StsDirectoryCacheTest, ADirectoryThatCannotBeUsedIsRefused) {
  TempDir tmp("tlsp-sts-cache-test");
  const std::string file = tmp.write("file", "x");
  EXPECT_THROW(MtaStsCache{file}, std::runtime_error);
  EXPECT_THROW(MtaStsCache{tmp.path() + "/no/parent"}, std::runtime_error);
  EXPECT_THROW(MtaStsCache{""}, std::runtime_error);
}

// ------------------------------------------------------------- Redis

using tlsp::testing_support::RedisServer;

// A client of the test's own, to look at what the cache stored.
redis::RedisClient raw_client(const std::string& url) { return redis::RedisClient(*redis::parse_redis_url(url).url); }

int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

TEST(StsRedisCacheTest, OneKeyPerDomainWithTheEntryAndAnExpiryAtExpiresAt) {
  RedisServer server;
  MtaStsCache cache(server.url(2));
  redis::RedisClient raw = raw_client(server.url(2));
  const int64_t now = std::time(nullptr);
  ASSERT_TRUE(cache.put("Example.TEST.", "id1", kTesting, now));  // max_age 3600
  EXPECT_EQ(cache.path_for(kDomain), "tlsp:mta-sts:example.test");
  redis::Result got = raw.command({"GET", "tlsp:mta-sts:example.test"});
  ASSERT_TRUE(got.ok()) << got.error;
  EXPECT_EQ(got.reply.str, encode_sts_cache_entry(kDomain, "id1", kTesting, now, now + 3600));
  redis::Result ttl = raw.command({"TTL", "tlsp:mta-sts:example.test"});
  ASSERT_TRUE(ttl.ok()) << ttl.error;
  EXPECT_GT(ttl.reply.integer, 3590);
  EXPECT_LE(ttl.reply.integer, 3600);
  // In the URL's database only.
  redis::RedisClient db0 = raw_client(server.url(0));
  EXPECT_EQ(db0.command({"EXISTS", "tlsp:mta-sts:example.test"}).reply.integer, 0);
  // A policy that expires at once (max_age 0) is not kept, and replaces
  // nothing that would outlive it.
  ASSERT_TRUE(cache.put(kDomain, "id2", "version: STSv1\nmode: none\nmax_age: 0\n", now));
  EXPECT_EQ(raw.command({"EXISTS", "tlsp:mta-sts:example.test"}).reply.integer, 0);
  EXPECT_FALSE(cache.get(kDomain, now).entry);
}

TEST(StsRedisCacheTest, ValuesThatAreNotOursAreIgnoredOrSkipped) {
  RedisServer server;
  MtaStsCache cache(server.url(0));
  redis::RedisClient raw = raw_client(server.url(0));
  // A key of another type: the server's error, as a corrupt entry.
  ASSERT_TRUE(raw.command({"HSET", "tlsp:mta-sts:example.test", "f", "v"}).ok());
  StsCacheLookup r = cache.get(kDomain, kNow);
  EXPECT_FALSE(r.entry);
  EXPECT_TRUE(r.corrupt);
  EXPECT_FALSE(r.unavailable);
  EXPECT_NE(r.detail.find("WRONGTYPE"), std::string::npos) << r.detail;
  // Keys under the prefix that are not a domain in normal form, and other
  // keys, are not entries.
  for (const char* k : {"tlsp:mta-sts:", "tlsp:mta-sts:Upper.test", "tlsp:mta-sts:a..b", "tlsp:mta-sts:x/y",
                        "tlsp:tlsrpt:example.test", "example.test"})
    ASSERT_TRUE(raw.command({"SET", k, "x"}).ok()) << k;
  std::vector<StsCacheListing> l = cache.list();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].domain, kDomain);
  EXPECT_FALSE(l[0].entry);
  EXPECT_EQ(l[0].problem, r.detail);
  EXPECT_TRUE(cache.erase(kDomain));
  EXPECT_TRUE(cache.list().empty());
  EXPECT_EQ(raw.command({"DBSIZE"}).reply.integer, 6);
}

TEST(StsRedisCacheTest, ListingWalksEveryKeyWithScan) {
  RedisServer server;
  MtaStsCache cache(server.url(0));
  constexpr int kDomains = 2500;  // more than one SCAN step
  for (int i = 0; i < kDomains; ++i) ASSERT_TRUE(cache.put("d" + std::to_string(i) + ".test", "id", kEnforce, kNow));
  std::vector<StsCacheListing> l = cache.list();
  ASSERT_EQ(l.size(), static_cast<size_t>(kDomains));
  for (size_t i = 1; i < l.size(); ++i) EXPECT_LT(l[i - 1].domain, l[i].domain);
  for (const StsCacheListing& e : l) EXPECT_TRUE(e.entry) << e.domain;
}

// Down: nothing cached for a lookup, a failed put, a listing and an erase
// that say so; the next call after it is back connects again.
TEST(StsRedisCacheTest, ARedisThatIsDownIsNothingCachedAndThenBackAgain) {
  RedisServer server;
  RedisStsCacheOptions asks_again;
  asks_again.retry_after = 0ms;
  MtaStsCache cache(open_redis_sts_cache_store(server.url(0), asks_again));
  MtaStsCache resting(server.url(0));  // the relay's: kStsCacheRedisRetryAfter
  ASSERT_TRUE(cache.put(kDomain, "id1", kEnforce, kNow));
  ASSERT_TRUE(resting.get(kDomain, kNow).entry);
  server.kill();
  for (MtaStsCache* c : {&cache, &resting}) {
    const auto t0 = Clock::now();
    StsCacheLookup r = c->get(kDomain, kNow);
    EXPECT_LT(ms_since(t0), kStsCacheRedisTimeout.count() + 500);
    EXPECT_FALSE(r.entry);
    EXPECT_TRUE(r.unavailable);
    EXPECT_FALSE(r.corrupt);
    EXPECT_NE(r.detail.find("is unavailable"), std::string::npos) << r.detail;
    EXPECT_NE(r.detail.find(server.url(0)), std::string::npos) << r.detail;
    std::string error;
    EXPECT_FALSE(c->put(kDomain, "id2", kTesting, kNow, &error));
    EXPECT_NE(error.find(server.url(0)), std::string::npos) << error;
    EXPECT_THROW(c->list(), std::runtime_error);
    EXPECT_THROW(c->erase(kDomain), std::runtime_error);
  }
  server.start();  // the same port, empty
  ASSERT_TRUE(cache.put(kDomain, "id3", kTesting, kNow));
  StsCacheLookup back = cache.get(kDomain, kNow);
  ASSERT_TRUE(back.entry) << back.detail;
  EXPECT_EQ(back.entry->id, "id3");
  // The relay's cache does not ask again until its rest is over.
  StsCacheLookup r = resting.get(kDomain, kNow);
  EXPECT_TRUE(r.unavailable);
  EXPECT_NE(r.detail.find("did not answer"), std::string::npos) << r.detail;
  // Listing and erasing always ask.
  EXPECT_EQ(resting.list().size(), 1u);
  EXPECT_TRUE(resting.erase(kDomain));
}

// Hung (SIGSTOP: connections are accepted, nothing is answered): a lookup
// waits the timeout once, then the cache rests and answers at once.
TEST(StsRedisCacheTest, AHungRedisCostsOneTimeoutThenNone) {
  RedisServer server;
  RedisStsCacheOptions o;
  o.timeout = 300ms;
  MtaStsCache cache(open_redis_sts_cache_store(server.url(0), o));
  ASSERT_TRUE(cache.put(kDomain, "id1", kEnforce, kNow));
  server.pause();
  auto t0 = Clock::now();
  StsCacheLookup r = cache.get(kDomain, kNow);
  const int64_t first = ms_since(t0);
  EXPECT_TRUE(r.unavailable) << r.detail;
  EXPECT_GE(first, 300);
  EXPECT_LT(first, 300 + 700);
  t0 = Clock::now();
  std::string error;
  EXPECT_FALSE(cache.put(kDomain, "id2", kTesting, kNow, &error));
  EXPECT_NE(error.find("did not answer"), std::string::npos) << error;
  EXPECT_TRUE(cache.get(kDomain, kNow).unavailable);
  const int64_t then = ms_since(t0);
  EXPECT_LT(then, 100);
  std::cout << "hung Redis: the first lookup " << first << " ms, a put and a lookup after it " << then << " ms\n";
  server.resume();
}

TEST(StsRedisCacheTest, AMalformedUrlIsRefused) {
  for (const char* bad : {"redis://", "redis://127.0.0.1:6379", "redis://127.0.0.1:6379/", "redis://h:0/0",
                          "redis://h:6379/x", "redis://h:6379/0?x=1", "Redis://h/0"}) {
    EXPECT_THROW(MtaStsCache{bad}, std::invalid_argument) << bad;
    try {
      MtaStsCache c(bad);
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("mta-sts-cache: "), std::string::npos) << e.what();
    }
  }
  // Not a connection: a server that is not there is found at the first use.
  EXPECT_NO_THROW(MtaStsCache{"redis://127.0.0.1:1/0"});
}

}  // namespace
