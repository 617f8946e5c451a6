// tlsrpt_store_test.cpp — the Store contract (tlsrpt_store.h), the same
// cases on both stores: a SQLite file in a temporary directory and a real
// redis-server on loopback (tests/support/redis_server.h). Counts add up
// over many records, policies and details; a session id counts once; two
// Store objects on one file or one Redis (two relays) add up and one claim
// wins; threads; days apart; a child recording in a loop killed with
// SIGKILL at random points counts every reported session exactly once.
// Then what only one store has: a foreign or corrupt SQLite file refused,
// pruning, Redis down and back. Throughput is printed (records/s).
#include "tlsp/tlsrpt_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <thread>
#include <tuple>

#include "redis_server.h"
#include "test_support.h"

namespace tlsp::tlsrpt {
namespace {

using testing_support::RedisServer;
using testing_support::TempDir;
using Clock = std::chrono::steady_clock;

constexpr int64_t kDay1 = 1796601600;  // 2026-12-07T00:00:00Z
constexpr int64_t kDay2 = kDay1 + 86400;

// The record of session i: three domains, two policies each (an MTA-STS
// policy and a TLSA set), one in four fails with one of six details.
SessionRecord make_record(const std::string& id, int i, int64_t time) {
  SessionRecord r;
  r.session_id = id;
  r.time = time + i % 3600;
  r.policy.domain = "d" + std::to_string(i % 3) + ".example";
  if (i % 2 == 0) {
    r.policy.type = PolicyType::sts;
    r.policy.strings = {"version: STSv1", "mode: enforce", "mx: mx.d" + std::to_string(i % 3) + ".example",
                        "max_age: 86400"};
    r.policy.mx_host = {"mx.d" + std::to_string(i % 3) + ".example", "*.backup.example"};
  } else {
    r.policy.type = PolicyType::tlsa;
    r.policy.strings = {"3 1 1 0123456789abcdef", "2 0 1 fedcba9876543210"};
  }
  r.success = i % 4 != 1;
  if (!r.success) {
    static const char* types[] = {"starttls-not-supported", "certificate-host-mismatch", "validation-failure"};
    r.failure.result_type = types[(i / 4) % 3];
    r.failure.sending_mta_ip = "192.0.2.1";
    r.failure.receiving_ip = "198.51.100." + std::to_string((i / 12) % 2);
    r.failure.receiving_mx_hostname = "mx.d" + std::to_string(i % 3) + ".example";
    if ((i / 4) % 3 == 2) r.failure.failure_reason_code = "tlsp: tls-version-too-low";
  }
  return r;
}

std::string text_of(const Policy& p) {
  std::string s = std::string(to_string(p.type)) + "|" + p.domain;
  for (const std::string& x : p.strings) s += "|s=" + x;
  for (const std::string& x : p.mx_host) s += "|mx=" + x;
  return s;
}
std::string text_of(const FailureDetail& d) {
  return d.result_type + "|" + d.sending_mta_ip + "|" + d.receiving_mx_hostname + "|" + d.receiving_mx_helo + "|" +
         d.receiving_ip + "|" + d.additional_information + "|" + d.failure_reason_code;
}

// domain -> policy -> (successful, failed, detail -> count).
using Tally = std::map<std::string, std::map<std::string, std::tuple<uint64_t, uint64_t, std::map<std::string, uint64_t>>>>;

void add(Tally& t, const SessionRecord& r) {
  auto& [ok, failed, details] = t[r.policy.domain][text_of(r.policy)];
  if (r.success) {
    ++ok;
  } else {
    ++failed;
    ++details[text_of(r.failure)];
  }
}

Tally read_back(Store& store, std::string_view day) {
  Tally t;
  std::string error;
  const std::vector<std::string> domains = store.domains(day, &error);
  EXPECT_TRUE(error.empty()) << error;
  for (const std::string& d : domains) {
    const std::vector<PolicySummary> sums = store.summaries(day, d, &error);
    EXPECT_TRUE(error.empty()) << error;
    for (const PolicySummary& s : sums) {
      EXPECT_EQ(s.policy.domain, d);
      auto& [ok, failed, details] = t[d][text_of(s.policy)];
      EXPECT_EQ(ok + failed, 0u) << "a policy twice in one summary";
      ok = s.successful;
      failed = s.failed;
      uint64_t sum = 0;
      for (const auto& [detail, n] : s.failures) {
        details[text_of(detail)] = n;
        sum += n;
      }
      EXPECT_EQ(sum, s.failed);
    }
  }
  return t;
}

enum class Kind { sqlite, redis };

class StoreContract : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::redis)
      server_ = std::make_unique<RedisServer>();
    else
      dir_ = std::make_unique<TempDir>("tlsp-tlsrpt");
  }
  std::string spec() const { return server_ ? server_->url() : dir_->file("tlsrpt.db"); }
  std::unique_ptr<Store> open() const {
    std::string error;
    std::unique_ptr<Store> s = open_store(spec(), &error);
    EXPECT_NE(s, nullptr) << error;
    return s;
  }
  bool record(Store& s, const SessionRecord& r) const {
    std::string error;
    const bool ok = s.record(r, &error);
    EXPECT_TRUE(ok) << error;
    return ok;
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<TempDir> dir_;
};

TEST_P(StoreContract, CountsAddUpOverPoliciesAndDetails) {
  std::unique_ptr<Store> store = open();
  ASSERT_NE(store, nullptr);
  Tally expected;
  for (int i = 0; i < 600; ++i) {
    const SessionRecord r = make_record("s" + std::to_string(i), i, kDay1);
    ASSERT_TRUE(record(*store, r));
    add(expected, r);
  }
  EXPECT_EQ(read_back(*store, "2026-12-07"), expected);
  EXPECT_EQ(expected.size(), 3u);
  EXPECT_EQ(expected["d0.example"].size(), 2u);
  // The strings come back as recorded, in their order.
  std::string error;
  for (const PolicySummary& s : store->summaries("2026-12-07", "d1.example", &error)) {
    if (s.policy.type == PolicyType::sts) {
      EXPECT_EQ(s.policy.strings, make_record("x", 4, kDay1).policy.strings);
    }
  }
  EXPECT_TRUE(store->summaries("2026-12-07", "nobody.example", &error).empty());
  EXPECT_TRUE(error.empty()) << error;
}

TEST_P(StoreContract, ARepeatedSessionIdCountsOnce) {
  std::unique_ptr<Store> store = open();
  ASSERT_NE(store, nullptr);
  const SessionRecord failed = make_record("same", 1, kDay1);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(record(*store, failed));
  // The same id with other content (a bug elsewhere) counts nothing either.
  ASSERT_TRUE(record(*store, make_record("same", 2, kDay1)));
  Tally expected;
  add(expected, failed);
  EXPECT_EQ(read_back(*store, "2026-12-07"), expected);
}

TEST_P(StoreContract, TwoRelaysAddUpIntoOneSummaryAndOneClaimWins) {
  std::unique_ptr<Store> a = open();
  std::unique_ptr<Store> b = open();
  ASSERT_TRUE(a && b);
  Tally expected;
  for (int i = 0; i < 200; ++i) {
    const SessionRecord r = make_record("s" + std::to_string(i), i, kDay1);
    ASSERT_TRUE(record(i % 2 ? *a : *b, r));
    if (i % 10 == 0) {
      ASSERT_TRUE(record(i % 2 ? *b : *a, r));  // the other relay retries it
    }
    add(expected, r);
  }
  EXPECT_EQ(read_back(*a, "2026-12-07"), expected);
  EXPECT_EQ(read_back(*b, "2026-12-07"), expected);
  std::string error;
  const ReportClaim first = b->claim_report("2026-12-07", "d0.example", "id-from-b", &error);
  ASSERT_TRUE(error.empty()) << error;
  EXPECT_TRUE(first.claimed);
  EXPECT_EQ(first.report_id, "id-from-b");
  const ReportClaim second = a->claim_report("2026-12-07", "d0.example", "id-from-a", &error);
  EXPECT_FALSE(second.claimed);
  EXPECT_EQ(second.report_id, "id-from-b");
  EXPECT_FALSE(b->claim_report("2026-12-07", "d0.example", "again", &error).claimed);
  // Another domain or another day is another report.
  EXPECT_TRUE(a->claim_report("2026-12-07", "d1.example", "id-from-a", &error).claimed);
  EXPECT_TRUE(a->claim_report("2026-12-08", "d0.example", "id-from-a", &error).claimed);
}

TEST_P(StoreContract, ConcurrentClaimsHaveOneWinner) {
  constexpr int kThreads = 4;
  std::vector<std::unique_ptr<Store>> stores;
  for (int t = 0; t < kThreads; ++t) stores.push_back(open());
  std::atomic<int> winners{0};
  std::vector<std::string> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::string error;
      const ReportClaim c = stores[t]->claim_report("2026-12-07", "race.example", "r" + std::to_string(t), &error);
      if (c.claimed) ++winners;
      ids[t] = c.report_id;
    });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
  for (const std::string& id : ids) EXPECT_EQ(id, ids[0]);
}

TEST_P(StoreContract, SeveralThreadsRecordAtOnce) {
  std::unique_ptr<Store> shared = open();
  std::unique_ptr<Store> other = open();
  ASSERT_TRUE(shared && other);
  constexpr int kThreads = 4;
  constexpr int kEach = 150;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      Store& s = t == 3 ? *other : *shared;  // three threads share one Store, one has its own
      for (int i = 0; i < kEach; ++i) {
        const int n = t * kEach + i;
        std::string error;
        if (!s.record(make_record("s" + std::to_string(n), n, kDay1), &error)) ++failures;
        // and each thread also retries one of the previous thread's sessions
        const int m = ((t + kThreads - 1) % kThreads) * kEach + i;
        if (!s.record(make_record("s" + std::to_string(m), m, kDay1), &error)) ++failures;
      }
    });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  Tally expected;
  for (int n = 0; n < kThreads * kEach; ++n) add(expected, make_record("s" + std::to_string(n), n, kDay1));
  EXPECT_EQ(read_back(*shared, "2026-12-07"), expected);
}

TEST_P(StoreContract, DaysAreCountedApart) {
  std::unique_ptr<Store> store = open();
  ASSERT_NE(store, nullptr);
  Tally day1;
  Tally day2;
  for (int i = 0; i < 60; ++i) {
    const SessionRecord r = make_record("s" + std::to_string(i), i, i % 3 == 0 ? kDay2 : kDay1);
    ASSERT_TRUE(record(*store, r));
    add(i % 3 == 0 ? day2 : day1, r);
  }
  // The last second of a day is that day.
  SessionRecord last = make_record("last", 1, kDay1);
  last.time = kDay2 - 1;
  ASSERT_TRUE(record(*store, last));
  add(day1, last);
  EXPECT_EQ(read_back(*store, "2026-12-07"), day1);
  EXPECT_EQ(read_back(*store, "2026-12-08"), day2);
  EXPECT_TRUE(read_back(*store, "2026-12-09").empty());
  std::string error;
  EXPECT_EQ(store->domains("2026-12-08", &error), (std::vector<std::string>{"d0.example"}));
}

// A child records sessions 0..kCrashSessions-1 in a loop, writing each id
// to a pipe once record() returned true; it is killed with SIGKILL at a
// random point, and started again from a little before the last id it
// reported (as a relay restarted retries), until it gets to the end.
TEST_P(StoreContract, AChildKilledAtRandomPointsCountsEverySessionOnce) {
  constexpr int kCrashSessions = 600;
  std::mt19937 random(12);  // a fixed seed: the same kill points every run
  int next = 0;             // first id not reported yet
  int kills = 0;
  while (next < kCrashSessions) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const int start = std::max(0, next - 5);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      std::string error;
      std::unique_ptr<Store> s = open_store(spec(), &error);
      if (!s) ::_exit(2);
      for (int i = start; i < kCrashSessions; ++i) {
        if (!s->record(make_record("s" + std::to_string(i), i, kDay1), &error)) ::_exit(3);
        const std::string line = std::to_string(i) + "\n";
        if (::write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) ::_exit(4);
      }
      ::_exit(0);
    }
    ::close(fds[1]);
    const int kill_after = std::uniform_int_distribution<int>(1, 120)(random);
    FILE* in = ::fdopen(fds[0], "r");
    char line[32];
    int seen = 0;
    bool killed = false;
    while (std::fgets(line, sizeof line, in) != nullptr) {
      const int id = std::atoi(line);
      EXPECT_GE(id, start);
      next = std::max(next, id + 1);
      if (++seen == kill_after) {
        ::kill(pid, SIGKILL);
        killed = true;
      }
    }
    std::fclose(in);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    if (killed) {
      ++kills;
    } else {
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child failed: " << status;
    }
  }
  Tally expected;
  for (int i = 0; i < kCrashSessions; ++i) add(expected, make_record("s" + std::to_string(i), i, kDay1));
  std::unique_ptr<Store> store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(read_back(*store, "2026-12-07"), expected);
  EXPECT_GE(kills, 3);
}

TEST_P(StoreContract, ThroughputWithOneAndTwoThreads) {
  constexpr int kRecords = 400;
  for (int threads : {1, 2}) {
    std::unique_ptr<Store> store = open();
    ASSERT_NE(store, nullptr);
    std::atomic<int> failures{0};
    const auto begin = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        for (int i = t; i < kRecords; i += threads) {
          std::string error;
          if (!store->record(make_record("t" + std::to_string(threads) + "-" + std::to_string(i), i, kDay2), &error))
            ++failures;
        }
      });
    for (std::thread& t : pool) t.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
    EXPECT_EQ(failures.load(), 0);
    std::printf("[ figures  ] %s: %d records, %d thread(s): %.0f records/s\n", store->describe().c_str(), kRecords,
                threads, kRecords / seconds);
  }
  uint64_t total = 0;
  std::unique_ptr<Store> store = open();
  for (const auto& [domain, policies] : read_back(*store, "2026-12-08"))
    for (const auto& [policy, counts] : policies) total += std::get<0>(counts) + std::get<1>(counts);
  EXPECT_EQ(total, 2u * kRecords);
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContract, ::testing::Values(Kind::sqlite, Kind::redis),
                         [](const auto& info) { return info.param == Kind::sqlite ? "Sqlite" : "Redis"; });

// ------------------------------------------------------ SQLite only

TEST(SqliteStore, RefusesAFileThatIsNotAStore) {
  TempDir dir("tlsp-tlsrpt");
  std::string error;
  const std::string garbage = dir.write("garbage.db", std::string(8192, 'x'));
  EXPECT_EQ(open_store(garbage, &error), nullptr);
  EXPECT_NE(error.find("not a tlsp TLSRPT store"), std::string::npos) << error;
  EXPECT_NE(error.find(garbage), std::string::npos) << error;

  // Another program's database: refused and left as it was.
  const std::string foreign = dir.file("foreign.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(foreign.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t (x); INSERT INTO t VALUES (1)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  error.clear();
  EXPECT_EQ(open_store(foreign, &error), nullptr);
  EXPECT_NE(error.find("another program"), std::string::npos) << error;

  // A store of a later schema version.
  const std::string later = dir.file("later.db");
  { ASSERT_NE(open_store(later, &error), nullptr) << error; }
  ASSERT_EQ(sqlite3_open(later.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 2", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  error.clear();
  EXPECT_EQ(open_store(later, &error), nullptr);
  EXPECT_NE(error.find("schema version 2"), std::string::npos) << error;

  // A directory that does not exist.
  error.clear();
  EXPECT_EQ(open_store(dir.file("no/such/dir/tlsrpt.db"), &error), nullptr);
  EXPECT_FALSE(error.empty());
}

TEST(SqliteStore, UsesWalAndKeepsWhatWasRecordedAcrossReopening) {
  TempDir dir("tlsp-tlsrpt");
  const std::string path = dir.file("tlsrpt.db");
  std::string error;
  Tally expected;
  {
    std::unique_ptr<Store> s = open_store(path, &error);
    ASSERT_NE(s, nullptr) << error;
    EXPECT_EQ(s->describe(), "sqlite:" + path);
    for (int i = 0; i < 20; ++i) {
      const SessionRecord r = make_record("s" + std::to_string(i), i, kDay1);
      ASSERT_TRUE(s->record(r, &error)) << error;
      add(expected, r);
    }
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
  std::unique_ptr<Store> again = open_store(path, &error);
  ASSERT_NE(again, nullptr) << error;
  EXPECT_EQ(read_back(*again, "2026-12-07"), expected);
}

TEST(SqliteStore, PrunesTheDaysBefore) {
  TempDir dir("tlsp-tlsrpt");
  std::string error;
  std::unique_ptr<Store> s = open_store(dir.file("tlsrpt.db"), &error);
  ASSERT_NE(s, nullptr) << error;
  Tally day2;
  for (int i = 0; i < 40; ++i) {
    const SessionRecord r = make_record("s" + std::to_string(i), i, i % 2 ? kDay1 : kDay2);
    ASSERT_TRUE(s->record(r, &error)) << error;
    if (i % 2 == 0) add(day2, r);
  }
  ASSERT_TRUE(s->claim_report("2026-12-07", "d0.example", "old", &error).claimed);
  ASSERT_TRUE(s->prune("2026-12-08", &error)) << error;
  EXPECT_TRUE(read_back(*s, "2026-12-07").empty());
  EXPECT_EQ(read_back(*s, "2026-12-08"), day2);
  EXPECT_TRUE(s->claim_report("2026-12-07", "d0.example", "new", &error).claimed);
  // A pruned day's session ids are forgotten too (they are older than any retry).
  ASSERT_TRUE(s->record(make_record("s1", 1, kDay1), &error)) << error;
  EXPECT_EQ(read_back(*s, "2026-12-07").size(), 1u);
}

// ------------------------------------------------------- Redis only

TEST(RedisStore, ADownServerIsAnErrorWithinTheTimeoutAndTheStoreComesBack) {
  RedisServer server;
  std::string error;
  std::unique_ptr<Store> s = open_store(server.url(), &error);
  ASSERT_NE(s, nullptr) << error;
  EXPECT_EQ(s->describe(), server.url());
  ASSERT_TRUE(s->record(make_record("a", 0, kDay1), &error)) << error;
  server.kill();
  const auto start = Clock::now();
  error.clear();
  EXPECT_FALSE(s->record(make_record("b", 0, kDay1), &error));
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(1500));
  EXPECT_NE(error.find(server.url()), std::string::npos) << error;
  error.clear();
  EXPECT_TRUE(s->domains("2026-12-07", &error).empty());
  EXPECT_FALSE(error.empty());
  error.clear();
  EXPECT_FALSE(s->claim_report("2026-12-07", "d0.example", "x", &error).claimed);
  EXPECT_FALSE(error.empty());
  server.start();
  error.clear();
  EXPECT_TRUE(s->record(make_record("c", 0, kDay1), &error)) << error;
}

TEST(RedisStore, AHungServerIsAnErrorWithinTheTimeout) {
  RedisServer server;
  std::string error;
  std::unique_ptr<Store> s = open_store(server.url(), &error);
  ASSERT_NE(s, nullptr) << error;
  ASSERT_TRUE(s->record(make_record("a", 0, kDay1), &error)) << error;
  server.pause();
  const auto start = Clock::now();
  EXPECT_FALSE(s->record(make_record("b", 0, kDay1), &error));
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(2500));
  server.resume();
  EXPECT_TRUE(s->record(make_record("b", 0, kDay1), &error)) << error;
}

TEST(RedisStore, KeysAreNamespacedAndExpire) {
  RedisServer server;
  std::string error;
  std::unique_ptr<Store> s = open_store(server.url(), &error);
  ASSERT_NE(s, nullptr) << error;
  ASSERT_TRUE(s->record(make_record("a", 1, kDay1), &error)) << error;
  ASSERT_TRUE(s->claim_report("2026-12-07", "d1.example", "r", &error).claimed);
  // Look with a client of our own.
  const std::string cli = "redis-cli -p " + std::to_string(server.port()) + " ";
  FILE* p = ::popen((cli + "--scan").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[512];
  std::vector<std::string> keys;
  while (std::fgets(line, sizeof line, p) != nullptr) keys.emplace_back(line, std::strcspn(line, "\n"));
  ::pclose(p);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"tlsp:tlsrpt:2026-12-07:d1.example:claim",
                                            "tlsp:tlsrpt:2026-12-07:d1.example:counts",
                                            "tlsp:tlsrpt:2026-12-07:domains", "tlsp:tlsrpt:session:a"}));
  for (const std::string& k : keys) {
    p = ::popen((cli + "TTL " + k).c_str(), "r");
    ASSERT_NE(p, nullptr);
    ASSERT_NE(std::fgets(line, sizeof line, p), nullptr);
    ::pclose(p);
    const long ttl = std::atol(line);
    EXPECT_GT(ttl, int64_t{kRedisKeepDays} * 86400 - 60) << k;
    EXPECT_LE(ttl, int64_t{kRedisKeepDays} * 86400) << k;
  }
}

TEST(OpenStore, RefusesABadRedisUrlWithTheParsersReason) {
  std::string error;
  EXPECT_EQ(open_store("redis://127.0.0.1:6379", &error), nullptr);
  EXPECT_NE(error.find("database number is missing"), std::string::npos) << error;
  EXPECT_EQ(open_store("", &error), nullptr);
  EXPECT_FALSE(error.empty());
}

}  // namespace
}  // namespace tlsp::tlsrpt
