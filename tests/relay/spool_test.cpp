// spool_test.cpp — the relay's crash-safe spool (tlsp/spool.h), the bounce
// builder (tlsp/dsn.h) and the retry schedule (tlsp/retry.h).
//
// What it proves: a stored transaction comes back complete after a restart;
// a crash (a forked child killed at every named step of store, update,
// remove and move_to_failed) loses no committed entry and never yields a
// half entry; damaged files are detected and set aside, never delivered;
// the envelope format refuses header injection; bounces are well-formed
// RFC 3464/6522 messages whatever the input. Each test uses a fresh
// directory under /tmp and removes it. A killed process keeps its page
// cache, so the fork tests check the protocol's ordering, not the disk's;
// the fsync counter checks that the syncs are made.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "test_support.h"
#include "tlsp/dsn.h"
#include "tlsp/retry.h"
#include "tlsp/spool.h"

namespace fs = std::filesystem;
using namespace tlsp;
using namespace std::chrono_literals;

namespace {

// Each TempDir here is named tlsp-spool-test-XXXXXX.
struct TempDir : tlsp::testing_support::TempDir {
  TempDir() : tlsp::testing_support::TempDir("tlsp-spool-test") {}
};

QueueEntry make_entry(std::string destination, std::vector<std::string> rcpts) {
  QueueEntry e;
  e.mail_from = "alice@example.org";
  e.recipients = std::move(rcpts);
  e.direction = Direction::outbound;
  e.managed_domain = "example.org";
  e.destination = std::move(destination);
  e.client_address = "127.0.0.1";
  e.client_helo = "client.example.org";
  e.sender_peer = "127.0.0.1:40000";
  e.arrival = 1700000000;
  e.next_attempt = 1700000000;
  return e;
}

std::vector<QueueEntry> three_entries() {
  return {make_entry("a.example", {"x@a.example", "y@a.example"}), make_entry("b.example", {"z@b.example"}),
          make_entry("c.example", {"w@c.example"})};
}

const std::string kData = "From: alice@example.org\r\nSubject: hi\r\n\r\nbody line\r\n";

void expect_same(const QueueEntry& a, const QueueEntry& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.mail_from, b.mail_from);
  EXPECT_EQ(a.recipients, b.recipients);
  EXPECT_EQ(a.direction, b.direction);
  EXPECT_EQ(a.managed_domain, b.managed_domain);
  EXPECT_EQ(a.destination, b.destination);
  EXPECT_EQ(a.client_address, b.client_address);
  EXPECT_EQ(a.client_helo, b.client_helo);
  EXPECT_EQ(a.sender_peer, b.sender_peer);
  EXPECT_EQ(a.body_8bit, b.body_8bit);
  EXPECT_EQ(a.arrival, b.arrival);
  EXPECT_EQ(a.attempts, b.attempts);
  EXPECT_EQ(a.next_attempt, b.next_attempt);
  EXPECT_EQ(a.last_error, b.last_error);
  EXPECT_EQ(a.failed_recipients, b.failed_recipients);
  ASSERT_EQ(a.orcpts.size(), b.orcpts.size());
  for (size_t i = 0; i < a.orcpts.size(); ++i) {
    EXPECT_EQ(a.orcpts[i].address, b.orcpts[i].address);
    EXPECT_EQ(a.orcpts[i].orcpt, b.orcpts[i].orcpt);
  }
}

size_t count_files(const std::string& dir) {
  size_t n = 0;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it)
    if (it->is_regular_file()) ++n;
  return n;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void spit(const std::string& path, std::string_view content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
}

std::string batch_path(const Spool& s, const std::string& id) {
  return s.directory() + "/queue/" + id.substr(0, id.rfind('.'));
}
std::string env_path(const Spool& s, const std::string& id) {
  return batch_path(s, id) + "/" + id.substr(id.rfind('.') + 1) + ".env";
}

// Re-signs an envelope body (everything but the checksum line) so strict
// parsing, not the checksum, is what a test exercises.
std::string signed_envelope(std::string body) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(XXH3_64bits(body.data(), body.size())));
  return body + "checksum: " + buf + "\n";
}

std::string strip_checksum(const std::string& env) { return env.substr(0, env.rfind("checksum: ")); }

}  // namespace

// ================================================================ envelopes

TEST(Envelope, RoundTripKeepsEveryByte) {
  QueueEntry e = make_entry("b.example", {"x y@b.example", "100%@b.example", "\xC3\xA9t\xC3\xA9@b.example"});
  e.id = "18c1f2a3b4c5d-1a2b-3.0";
  e.mail_from = "";
  e.direction = Direction::inbound;
  e.body_8bit = true;
  e.attempts = 7;
  e.last_error = "451-4.7.5 first line\r\n451 4.7.5 second: line with %41 and \t tab";
  e.failed_recipients = {{"gone@b.example", "550 5.1.1 no such user\r\n"}};
  e.orcpts = {{"x y@b.example", "rfc822;x+20y@b.example"}};
  std::string text = serialize_envelope(e, 42, 0x0123456789abcdefULL);
  for (char c : text) EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7F)) << "raw byte in the envelope";
  ParsedEnvelope p;
  std::string problem;
  ASSERT_TRUE(parse_envelope(text, p, problem)) << problem;
  expect_same(p.entry, e);
  EXPECT_EQ(p.data_bytes, 42u);
  EXPECT_EQ(p.data_checksum, 0x0123456789abcdefULL);
  EXPECT_EQ(p.entry.orcpt_of("x y@b.example"), "rfc822;x+20y@b.example");
  EXPECT_EQ(p.entry.orcpt_of("nobody@b.example"), "");
}

TEST(Envelope, AddressesWithLineBreaksCannotBeWritten) {
  for (std::string bad : {std::string("a\r\nb@x"), std::string("a\nb@x"), std::string("a\rb@x"),
                          std::string("a\0b@x", 5)}) {
    QueueEntry e = make_entry("x", {"ok@x"});
    e.id = "1-1-1.0";
    QueueEntry f = e;
    f.mail_from = bad;
    EXPECT_THROW(serialize_envelope(f, 0, 0), SpoolError);
    f = e;
    f.recipients.push_back(bad);
    EXPECT_THROW(serialize_envelope(f, 0, 0), SpoolError);
    f = e;
    f.failed_recipients = {{bad, "550 no"}};
    EXPECT_THROW(serialize_envelope(f, 0, 0), SpoolError);
    f = e;
    f.orcpts = {{"ok@x", "rfc822;" + bad}};
    EXPECT_THROW(serialize_envelope(f, 0, 0), SpoolError);
    f = e;
    f.client_helo = bad;
    EXPECT_THROW(serialize_envelope(f, 0, 0), SpoolError);
  }
  QueueEntry e = make_entry("x", {std::string(kMaxSpoolAddressBytes + 1, 'a')});
  e.id = "1-1-1.0";
  EXPECT_THROW(serialize_envelope(e, 0, 0), SpoolError);
  // Reply text is free text: it is escaped (and cut), not refused.
  e = make_entry("x", {"ok@x"});
  e.id = "1-1-1.0";
  e.last_error = std::string(kMaxSpoolTextBytes * 2, 'e');
  ParsedEnvelope p;
  std::string problem;
  ASSERT_TRUE(parse_envelope(serialize_envelope(e, 0, 0), p, problem)) << problem;
  EXPECT_EQ(p.entry.last_error.size(), kMaxSpoolTextBytes);
}

TEST(Envelope, EveryTornOrFlippedEnvelopeIsDetected) {
  QueueEntry e = make_entry("b.example", {"x@b.example"});
  e.id = "1-1-1.0";
  std::string text = serialize_envelope(e, 10, 20);
  ParsedEnvelope p;
  std::string problem;
  for (size_t len = 0; len < text.size(); ++len)
    EXPECT_FALSE(parse_envelope(text.substr(0, len), p, problem)) << "torn at " << len;
  for (size_t i = 0; i < text.size(); ++i) {
    for (unsigned char bit : {0x01, 0x20, 0x80}) {
      std::string bad = text;
      bad[i] = static_cast<char>(bad[i] ^ bit);
      EXPECT_FALSE(parse_envelope(bad, p, problem)) << "flip at " << i;
    }
  }
  EXPECT_FALSE(parse_envelope(text + text, p, problem));
  EXPECT_FALSE(parse_envelope(std::string(100, '\0'), p, problem));
}

TEST(Envelope, ParsingIsStrict) {
  QueueEntry e = make_entry("b.example", {"x@b.example"});
  e.id = "1-1-1.0";
  std::string body = strip_checksum(serialize_envelope(e, 10, 20));
  ParsedEnvelope p;
  std::string problem;
  ASSERT_TRUE(parse_envelope(signed_envelope(body), p, problem)) << problem;

  auto replace = [&](std::string from, std::string to) {
    std::string b = body;
    size_t at = b.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return b.replace(at, from.size(), to);
  };
  const std::vector<std::pair<std::string, std::string>> broken = {
      {"tlsp-spool-envelope: 1\n", "tlsp-spool-envelope: 2\n"},       // a future version
      {"tlsp-spool-envelope: 1\n", ""},                               // no magic
      {"attempts: 0\n", "attempts: 0\nattempts: 1\n"},                // twice
      {"attempts: 0\n", ""},                                          // missing
      {"attempts: 0\n", "attempts: -1\n"},                            // a sign
      {"attempts: 0\n", "attempts: 01\n"},                            // a leading zero
      {"arrival: 1700000000\n", "arrival: 99999999999999999999\n"},  // overflow
      {"direction: outbound\n", "direction: sideways\n"},
      {"body-8bit: 0\n", "body-8bit: yes\n"},
      {"attempts: 0\n", "attempts: 0\ncolour: blue\n"},               // unknown key
      {"attempts: 0\n", "attempts:0\n"},                              // no space
      {"recipient: x@b.example\n", "recipient: x%40b.example\n"},     // needless escape
      {"recipient: x@b.example\n", "recipient: x%0ab.example\n"},     // lower-case hex
      {"recipient: x@b.example\n", "recipient: x%0\n"},               // short escape
      {"recipient: x@b.example\n", "recipient: x b.example\n"},       // raw space
      {"recipient: x@b.example\n", "recipient: x%0D%0Ab.example\n"},  // CRLF in an address
      {"recipient: x@b.example\n", "recipient: \n"},                  // empty address
      {"id: 1-1-1.0\n", "id: ../../etc.0\n"},                         // a path
      {"data-xxh3: 0000000000000014\n", "data-xxh3: 14\n"},
  };
  for (const auto& [from, to] : broken) {
    EXPECT_FALSE(parse_envelope(signed_envelope(replace(from, to)), p, problem)) << to;
    EXPECT_FALSE(problem.empty());
  }
  // Bounded: a huge file is refused before it is looked at.
  EXPECT_FALSE(parse_envelope(std::string(kMaxSpoolEnvelopeBytes + 1, 'a'), p, problem));
}

// ================================================================ spool

TEST(Spool, StoreAndRecoverSeveralEntriesSharingData) {
  TempDir dir;
  std::vector<QueueEntry> stored;
  {
    Spool spool(dir.path());
    auto entries = three_entries();
    entries[1].orcpts = {{"z@b.example", "rfc822;z@b.example"}};
    entries[2].body_8bit = true;
    stored = spool.store(entries, kData);
    ASSERT_EQ(stored.size(), 3u);
    std::set<std::string> ids;
    for (const auto& e : stored) {
      ids.insert(e.id);
      for (char c : e.id) EXPECT_TRUE(std::isxdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.') << e.id;
    }
    EXPECT_EQ(ids.size(), 3u);
    EXPECT_EQ(spool.queued_count(), 3u);
    // The data is stored once for the transaction.
    EXPECT_EQ(count_files(dir.path() + "/queue"), 4u);
    EXPECT_EQ(count_files(dir.path() + "/tmp"), 0u);
  }
  Spool again(dir.path());  // a restart
  std::vector<std::string> problems;
  auto recovered = again.recover(&problems);
  EXPECT_TRUE(problems.empty());
  ASSERT_EQ(recovered.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    expect_same(recovered[i], stored[i]);
    EXPECT_EQ(again.read_data(recovered[i].id), kData);
  }
}

TEST(Spool, StoreRefusesBadEntriesAndWritesNothing) {
  TempDir dir;
  Spool spool(dir.path());
  auto entries = three_entries();
  entries[2].recipients.push_back("evil@c.example\r\nRCPT TO:<x@y>");
  EXPECT_THROW(spool.store(entries, kData), SpoolError);
  EXPECT_THROW(spool.store({}, kData), SpoolError);
  EXPECT_THROW(spool.store({make_entry("a.example", {})}, kData), SpoolError);
  std::vector<QueueEntry> too_many(kMaxSpoolEntriesPerStore + 1, make_entry("a.example", {"x@a.example"}));
  EXPECT_THROW(spool.store(too_many, kData), SpoolError);
  EXPECT_EQ(count_files(dir.path()), 0u);
  EXPECT_TRUE(spool.recover().empty());
  EXPECT_THROW(spool.read_data("no-such-id"), SpoolError);
  EXPECT_THROW(spool.read_data("1-1-1.0"), SpoolError);
}

TEST(Spool, StoreSyncsEveryFileAndDirectoryBeforeReturning) {
  TempDir dir;
  Spool spool(dir.path());
  uint64_t before = spool.fsync_calls();
  std::string big(3 * 1024 * 1024 + 17, 'x');
  auto stored = spool.store(three_entries(), big);
  // data + 3 envelopes + the batch directory + queue/.
  EXPECT_EQ(spool.fsync_calls() - before, 6u);
  // Complete on disk when store returns, read through the file system.
  EXPECT_EQ(slurp(batch_path(spool, stored[0].id) + "/data"), big);
  for (const auto& e : stored) {
    ParsedEnvelope p;
    std::string problem;
    ASSERT_TRUE(parse_envelope(slurp(env_path(spool, e.id)), p, problem)) << problem;
    EXPECT_EQ(p.data_bytes, big.size());
  }
  before = spool.fsync_calls();
  QueueEntry u = stored[0];
  u.attempts = 1;
  spool.update(u);
  EXPECT_EQ(spool.fsync_calls() - before, 2u);  // the new envelope + its directory
  before = spool.fsync_calls();
  spool.remove(stored[0].id);
  EXPECT_EQ(spool.fsync_calls() - before, 1u);  // the batch directory
}

TEST(Spool, UpdateRewritesOnlyTheMutableFields) {
  TempDir dir;
  Spool spool(dir.path());
  auto stored = spool.store(three_entries(), kData);
  QueueEntry u = stored[0];
  u.recipients = {"y@a.example"};
  u.attempts = 3;
  u.next_attempt = 1700000900;
  u.last_error = "451 4.7.5 tlsa lookup failed\r\nsecond line";
  u.failed_recipients = {{"x@a.example", "550 5.1.1 no such user"}};
  u.mail_from = "mallory@example.net";  // not mutable: ignored
  u.destination = "evil.example";      // not mutable: ignored
  spool.update(u);
  auto recovered = Spool(dir.path()).recover();
  ASSERT_EQ(recovered.size(), 3u);
  QueueEntry want = u;
  want.mail_from = stored[0].mail_from;
  want.destination = stored[0].destination;
  expect_same(recovered[0], want);
  expect_same(recovered[1], stored[1]);
  EXPECT_EQ(spool.read_data(u.id), kData);

  QueueEntry ghost = u;
  ghost.id = "1-1-1.0";
  EXPECT_THROW(spool.update(ghost), SpoolError);
  ghost.id = "../x.0";
  EXPECT_THROW(spool.update(ghost), SpoolError);
  u.recipients = {"bad\n@a.example"};
  EXPECT_THROW(spool.update(u), SpoolError);
}

TEST(Spool, RemoveAndMoveToFailed) {
  TempDir dir;
  Spool spool(dir.path());
  auto stored = spool.store(three_entries(), kData);
  const std::string batch = batch_path(spool, stored[0].id);

  spool.remove(stored[0].id);
  EXPECT_NO_THROW(spool.remove(stored[0].id));  // idempotent
  EXPECT_THROW(spool.read_data(stored[0].id), SpoolError);
  EXPECT_EQ(spool.read_data(stored[1].id), kData);
  EXPECT_EQ(spool.queued_count(), 2u);

  spool.move_to_failed(stored[1].id, "no sender to bounce to:\nnull sender");
  const std::string failed = dir.path() + "/failed/" + stored[1].id;
  EXPECT_EQ(slurp(failed + ".dat"), kData);
  EXPECT_EQ(slurp(failed + ".reason"), "no sender to bounce to: null sender\n");
  ParsedEnvelope p;
  std::string problem;
  ASSERT_TRUE(parse_envelope(slurp(failed + ".env"), p, problem)) << problem;
  EXPECT_EQ(p.entry.id, stored[1].id);
  EXPECT_THROW(spool.move_to_failed(stored[1].id, "again"), SpoolError);
  EXPECT_EQ(spool.queued_count(), 1u);
  EXPECT_TRUE(fs::exists(batch));

  spool.remove(stored[2].id);  // the last one: the batch goes
  EXPECT_FALSE(fs::exists(batch));
  EXPECT_EQ(spool.queued_count(), 0u);
  EXPECT_EQ(count_files(dir.path() + "/queue"), 0u);
  EXPECT_TRUE(Spool(dir.path()).recover().empty());
  EXPECT_EQ(slurp(failed + ".dat"), kData);  // kept after the batch went
}

TEST(Spool, RecoveryCleansLeftoversAndSetsAsideDamage) {
  TempDir dir;
  std::vector<QueueEntry> good, no_data, torn, garbage, short_data, orphan;
  {
    Spool spool(dir.path());
    good = spool.store(three_entries(), kData);
    no_data = spool.store({make_entry("d.example", {"d@d.example"})}, kData);
    torn = spool.store({make_entry("t.example", {"t@t.example"}), make_entry("u.example", {"u@u.example"})}, kData);
    garbage = spool.store({make_entry("g.example", {"g@g.example"})}, kData);
    short_data = spool.store({make_entry("s.example", {"s@s.example"})}, kData);
    orphan = spool.store({make_entry("o.example", {"o@o.example"})}, kData);
  }
  Spool probe(dir.path());
  // An unfinished store (crash before the commit): a work directory in tmp/.
  fs::create_directories(dir.path() + "/tmp/18c0000000000-1-0");
  spit(dir.path() + "/tmp/18c0000000000-1-0/data", "half a mess");
  spit(dir.path() + "/tmp/18c0000000000-1-0/0.env", "tlsp-spool-env");
  // An unfinished update: the temp envelope is dropped, the old one stands.
  spit(env_path(probe, good[0].id) + ".tmp", "tlsp-spool-envelope: 1\nid: ");
  // An envelope without data, a torn envelope (with a healthy sibling),
  // garbage, data of the wrong size, a batch whose entries had all left.
  fs::remove(batch_path(probe, no_data[0].id) + "/data");
  std::string t = slurp(env_path(probe, torn[0].id));
  spit(env_path(probe, torn[0].id), t.substr(0, t.size() / 2));
  spit(env_path(probe, garbage[0].id), "\x01\x02 not an envelope at all\n");
  spit(batch_path(probe, short_data[0].id) + "/data", "short");
  fs::remove(env_path(probe, orphan[0].id));
  // Something that is not ours.
  spit(dir.path() + "/queue/README", "operator's note");

  std::vector<std::string> problems;
  auto recovered = Spool(dir.path()).recover(&problems);
  std::set<std::string> ids;
  for (const auto& e : recovered) ids.insert(e.id);
  EXPECT_EQ(ids, (std::set<std::string>{good[0].id, good[1].id, good[2].id, torn[1].id}));
  expect_same(recovered[0], good[0]);
  for (const auto& e : recovered) EXPECT_EQ(probe.read_data(e.id), kData);

  EXPECT_EQ(count_files(dir.path() + "/tmp"), 0u);
  EXPECT_FALSE(fs::exists(env_path(probe, good[0].id) + ".tmp"));
  EXPECT_FALSE(fs::exists(batch_path(probe, orphan[0].id)));
  EXPECT_TRUE(fs::exists(dir.path() + "/queue/README"));
  for (const auto* set : {&no_data, &garbage, &short_data}) {
    EXPECT_TRUE(fs::exists(dir.path() + "/failed/" + (*set)[0].id + ".env"));
    EXPECT_TRUE(fs::exists(dir.path() + "/failed/" + (*set)[0].id + ".reason"));
    EXPECT_FALSE(fs::exists(batch_path(probe, (*set)[0].id)));
  }
  EXPECT_TRUE(fs::exists(dir.path() + "/failed/" + torn[0].id + ".dat"));
  EXPECT_TRUE(fs::exists(batch_path(probe, torn[1].id) + "/data"));  // the sibling still needs it
  std::string reasons;
  for (const auto& p : problems) reasons += p + "\n";
  EXPECT_EQ(problems.size(), 5u) << reasons;
  EXPECT_NE(reasons.find("data file is missing"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("truncated"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("no checksum line"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("README"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("bytes, the envelope says"), std::string::npos) << reasons;

  // A second recovery finds the same, and nothing more to do.
  problems.clear();
  EXPECT_EQ(Spool(dir.path()).recover(&problems).size(), 4u);
  EXPECT_EQ(problems.size(), 1u);  // the README, still left alone
}

TEST(Spool, ReadDataDetectsCorruptData) {
  TempDir dir;
  Spool spool(dir.path());
  auto stored = spool.store(three_entries(), kData);
  std::string d = kData;
  d[5] ^= 1;
  spit(batch_path(spool, stored[0].id) + "/data", d);
  EXPECT_THROW(spool.read_data(stored[0].id), SpoolError);
  spit(batch_path(spool, stored[0].id) + "/data", kData + "x");
  EXPECT_THROW(spool.read_data(stored[0].id), SpoolError);
}

TEST(Spool, ConcurrentStoresAndRemoves) {
  TempDir dir;
  Spool spool(dir.path());
  constexpr int kThreads = 4, kStores = 25;
  std::vector<std::vector<QueueEntry>> by_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kStores; ++i) {
        std::string data = "thread " + std::to_string(t) + " message " + std::to_string(i) + "\r\n";
        for (auto& e : spool.store(three_entries(), data)) by_thread[t].push_back(e);
      }
    });
  for (auto& th : threads) th.join();
  auto recovered = Spool(dir.path()).recover();
  ASSERT_EQ(recovered.size(), static_cast<size_t>(kThreads * kStores * 3));
  std::set<std::string> ids;
  for (const auto& e : recovered) ids.insert(e.id);
  EXPECT_EQ(ids.size(), recovered.size());
  for (int t = 0; t < kThreads; ++t)
    for (size_t i = 0; i < by_thread[t].size(); ++i)
      EXPECT_EQ(spool.read_data(by_thread[t][i].id),
                "thread " + std::to_string(t) + " message " + std::to_string(i / 3) + "\r\n");

  // Entries of one batch removed by different threads at once: every batch
  // goes, exactly once, whoever is last.
  threads.clear();
  for (int k = 0; k < 3; ++k)
    threads.emplace_back([&, k] {
      for (int t = 0; t < kThreads; ++t)
        for (size_t i = k; i < by_thread[t].size(); i += 3) spool.remove(by_thread[t][i].id);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(spool.queued_count(), 0u);
  EXPECT_TRUE(fs::is_empty(dir.path() + "/queue"));
}

// ---------------------------------------------------------------- crashes

namespace {

// Runs `work` in a forked child whose step hook ends the process at the
// `nth` (from 1) occurrence of `crash_at` (by _exit, or SIGKILL when
// `kill`). Returns true when the child died at that step.
bool run_and_crash(const std::string& dir, const std::string& crash_at, int nth, bool kill,
                   const std::function<void(Spool&)>& work) {
  pid_t pid = ::fork();
  if (pid == 0) {
    try {
      Spool spool(dir);
      int seen = 0;
      spool.set_step_hook([&](std::string_view step) {
        if (step == crash_at && ++seen == nth) {
          if (kill) ::raise(SIGKILL);
          ::_exit(42);
        }
      });
      work(spool);
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return kill ? (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) : (WIFEXITED(status) && WEXITSTATUS(status) == 42);
}

}  // namespace

TEST(SpoolCrash, StoreIsAllOrNothingAtEveryStep) {
  struct Point {
    std::string step;
    int nth;
    bool committed;
  };
  const std::vector<Point> points = {
      {"store:data-synced", 1, false},     {"store:envelope-synced", 1, false}, {"store:envelope-synced", 2, false},
      {"store:envelope-synced", 3, false}, {"store:batch-synced", 1, false},    {"store:renamed", 1, true},
      {"store:committed", 1, true},
  };
  for (bool kill : {false, true}) {
    for (const auto& p : points) {
      SCOPED_TRACE(p.step + " #" + std::to_string(p.nth) + (kill ? " SIGKILL" : " _exit"));
      TempDir dir;
      // One transaction committed before the crash must survive it.
      std::vector<QueueEntry> earlier = Spool(dir.path()).store({make_entry("e.example", {"e@e.example"})}, "earlier");
      ASSERT_TRUE(run_and_crash(dir.path(), p.step, p.nth, kill,
                                [](Spool& s) { s.store(three_entries(), kData); }));
      Spool spool(dir.path());
      std::vector<std::string> problems;
      auto recovered = spool.recover(&problems);
      EXPECT_TRUE(problems.empty());
      ASSERT_EQ(recovered.size(), p.committed ? 4u : 1u);
      EXPECT_EQ(spool.read_data(earlier[0].id), "earlier");
      for (const auto& e : recovered)
        if (e.id != earlier[0].id) { EXPECT_EQ(spool.read_data(e.id), kData); }
      EXPECT_EQ(count_files(dir.path() + "/tmp"), 0u);
    }
  }
}

TEST(SpoolCrash, UpdateRemoveAndMoveToFailedAtEveryStep) {
  struct Point {
    std::string step;
    std::function<void(Spool&, const std::vector<QueueEntry>&)> work;
    // What recovery must show for entry 0: -1 gone, 0 old, 1 updated.
    int state;
    bool in_failed;
  };
  auto update = [](Spool& s, const std::vector<QueueEntry>& st) {
    QueueEntry u = st[0];
    u.attempts = 5;
    s.update(u);
  };
  auto remove = [](Spool& s, const std::vector<QueueEntry>& st) { s.remove(st[0].id); };
  auto fail = [](Spool& s, const std::vector<QueueEntry>& st) { s.move_to_failed(st[0].id, "test"); };
  const std::vector<Point> points = {
      {"update:temp-synced", update, 0, false},     {"update:renamed", update, 1, false},
      {"update:committed", update, 1, false},       {"remove:envelope-removed", remove, -1, false},
      {"remove:done", remove, -1, false},           {"failed:data-linked", fail, 0, false},
      {"failed:reason-written", fail, 0, false},    {"failed:envelope-moved", fail, -1, true},
      {"failed:committed", fail, -1, true},
  };
  for (const auto& p : points) {
    for (bool last_of_batch : {false, true}) {
      SCOPED_TRACE(p.step + (last_of_batch ? " (last of its batch)" : ""));
      TempDir dir;
      std::vector<QueueEntry> stored;
      {
        Spool s(dir.path());
        stored = last_of_batch ? s.store({make_entry("a.example", {"x@a.example"})}, kData)
                               : s.store(three_entries(), kData);
      }
      ASSERT_TRUE(run_and_crash(dir.path(), p.step, 1, true, [&](Spool& s) { p.work(s, stored); }));
      Spool spool(dir.path());
      std::vector<std::string> problems;
      auto recovered = spool.recover(&problems);
      EXPECT_TRUE(problems.empty());
      const QueueEntry* first = nullptr;
      for (const auto& e : recovered)
        if (e.id == stored[0].id) first = &e;
      EXPECT_EQ(recovered.size(), stored.size() - (p.state < 0 ? 1 : 0));
      if (p.state < 0) {
        EXPECT_EQ(first, nullptr);
      } else {
        ASSERT_NE(first, nullptr);
        EXPECT_EQ(first->attempts, p.state == 1 ? 5 : 0);
        EXPECT_EQ(spool.read_data(first->id), kData);
      }
      if (p.in_failed) { EXPECT_EQ(slurp(dir.path() + "/failed/" + stored[0].id + ".dat"), kData); }
      for (const auto& e : recovered) EXPECT_EQ(spool.read_data(e.id), kData);
      if (recovered.empty()) { EXPECT_TRUE(fs::is_empty(dir.path() + "/queue")); }
      // What is left can still be finished.
      for (const auto& e : recovered) spool.remove(e.id);
      EXPECT_TRUE(fs::is_empty(dir.path() + "/queue"));
    }
  }
}

// ================================================================ DSN

namespace {

struct ParsedMessage {
  std::map<std::string, std::string> headers;  // unfolded, by name
  std::vector<std::string> header_order;
  std::string body;
};

// A strict reader: CRLF only, lines within the limit, folding undone.
ParsedMessage parse_message(const std::string& m) {
  ParsedMessage out;
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\n') { EXPECT_TRUE(i > 0 && m[i - 1] == '\r') << "bare LF at " << i; }
    if (m[i] == '\r') { EXPECT_TRUE(i + 1 < m.size() && m[i + 1] == '\n') << "bare CR at " << i; }
  }
  size_t pos = 0, line_no = 0;
  while (pos < m.size()) {
    size_t end = m.find("\r\n", pos);
    if (end == std::string::npos) end = m.size();
    EXPECT_LE(end - pos, kDsnMaxLineBytes) << "line " << line_no;
    pos = end + 2;
    ++line_no;
  }
  size_t split = m.find("\r\n\r\n");
  EXPECT_NE(split, std::string::npos);
  std::string head = m.substr(0, split + 2);
  out.body = m.substr(split + 4);
  std::string name;
  pos = 0;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    std::string ln = head.substr(pos, end - pos);
    pos = end + 2;
    if (!ln.empty() && (ln[0] == ' ' || ln[0] == '\t')) {
      EXPECT_FALSE(name.empty());
      out.headers[name] += ln;
      continue;
    }
    size_t colon = ln.find(':');
    EXPECT_NE(colon, std::string::npos) << ln;
    name = ln.substr(0, colon);
    std::string value = ln.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    out.header_order.push_back(name);
    out.headers[name] = value;
  }
  return out;
}

struct Bounce {
  ParsedMessage top;
  std::string boundary;
  std::vector<ParsedMessage> parts;  // each part: its headers, its body
  std::vector<std::vector<std::map<std::string, std::string>>> groups;  // delivery-status field groups
};

Bounce parse_bounce(const std::string& m) {
  Bounce b;
  b.top = parse_message(m);
  const std::string& ct = b.top.headers["Content-Type"];
  EXPECT_EQ(ct.rfind("multipart/report;", 0), 0u) << ct;
  EXPECT_NE(ct.find("report-type=delivery-status"), std::string::npos);
  size_t at = ct.find("boundary=\"");
  EXPECT_NE(at, std::string::npos);
  b.boundary = ct.substr(at + 10, ct.find('"', at + 10) - at - 10);
  const std::string delim = "\r\n--" + b.boundary;
  std::string body = "\r\n" + b.top.body;
  // The boundary appears only as delimiter lines.
  std::vector<size_t> cuts;
  for (size_t p = body.find(b.boundary); p != std::string::npos; p = body.find(b.boundary, p + 1)) {
    EXPECT_EQ(body.compare(p - 4, 4, "\r\n--"), 0) << "boundary inside content";
    cuts.push_back(p - 4);
  }
  EXPECT_EQ(cuts.size(), 4u);
  if (cuts.size() != 4) return b;
  EXPECT_EQ(body.substr(cuts[3]), delim + "--\r\n");
  for (int i = 0; i < 3; ++i) {
    size_t start = cuts[i] + delim.size() + 2;
    // The CRLF before a delimiter belongs to the delimiter: a body's last
    // line comes without it.
    b.parts.push_back(parse_message(body.substr(start, cuts[i + 1] - start)));
  }
  // message/delivery-status: groups of fields separated by blank lines.
  std::string ds = b.parts[1].body + "\r\n";
  std::vector<std::map<std::string, std::string>> groups(1);
  size_t pos = 0;
  std::string name;
  while (pos < ds.size()) {
    size_t end = ds.find("\r\n", pos);
    std::string ln = ds.substr(pos, end - pos);
    pos = end + 2;
    if (ln.empty()) {
      groups.emplace_back();
      continue;
    }
    if (ln[0] == ' ') {
      groups.back()[name] += ln;
      continue;
    }
    size_t colon = ln.find(": ");
    EXPECT_NE(colon, std::string::npos) << ln;
    name = ln.substr(0, colon);
    EXPECT_EQ(groups.back().count(name), 0u) << "field twice: " << name;
    groups.back()[name] = ln.substr(colon + 2);
  }
  while (!groups.empty() && groups.back().empty()) groups.pop_back();
  b.groups.push_back(groups);
  return b;
}

BounceInput sample_bounce() {
  BounceInput in;
  in.reporting_host = "relay.example.org";
  in.original_sender = "alice@example.org";
  in.arrival = 1699000000;
  in.now = 1699360496;
  in.message_id = "bounce.1@relay.example.org";
  BounceRecipient a;
  a.address = "x@a.example";
  a.reply = "550-5.1.1 the email account that you tried to reach does not exist\r\n550 5.1.1 please check";
  a.remote_mta = "mx1.a.example";
  a.last_attempt = 1699300000;
  BounceRecipient b;
  b.address = "y@b.example";
  b.orcpt = "rfc822;Y@b.example";
  b.reply = "451 4.7.5 tlsa lookup failed";
  b.permanent = false;
  b.policy_rule = "policies/example.tlsp:12";
  b.reason_code = "dane-required";
  BounceRecipient c;
  c.address = "z@c.example";
  c.reply = "connect to mx.c.example: connection refused";
  c.permanent = false;
  in.recipients = {a, b, c};
  in.original_message = kData;
  return in;
}

}  // namespace

TEST(Dsn, IsAWellFormedMultipartReport) {
  BounceInput in = sample_bounce();
  std::string m = make_bounce(in);
  Bounce b = parse_bounce(m);
  auto& h = b.top.headers;
  EXPECT_EQ(h["From"], "Mail Delivery System <MAILER-DAEMON@relay.example.org>");
  EXPECT_EQ(h["To"], "<alice@example.org>");
  EXPECT_EQ(h["Subject"], "Undelivered Mail Returned to Sender");
  EXPECT_EQ(h["Date"], "Tue, 07 Nov 2023 12:34:56 +0000");
  EXPECT_EQ(h["Message-ID"], "<bounce.1@relay.example.org>");
  EXPECT_EQ(h["Auto-Submitted"], "auto-replied");
  EXPECT_EQ(h["MIME-Version"], "1.0");
  ASSERT_EQ(b.parts.size(), 3u);
  EXPECT_EQ(b.parts[0].headers["Content-Type"], "text/plain; charset=us-ascii");
  EXPECT_EQ(b.parts[1].headers["Content-Type"], "message/delivery-status");
  EXPECT_EQ(b.parts[2].headers["Content-Type"], "text/rfc822-headers");
  for (unsigned char c : m) EXPECT_LT(c, 0x80);

  const auto& g = b.groups[0];
  ASSERT_EQ(g.size(), 4u);  // per-message + three recipients
  EXPECT_EQ(g[0].at("Reporting-MTA"), "dns; relay.example.org");
  EXPECT_EQ(g[0].at("Arrival-Date"), rfc5322_date(in.arrival));
  EXPECT_EQ(g[1].at("Final-Recipient"), "rfc822; x@a.example");
  EXPECT_EQ(g[1].at("Action"), "failed");
  EXPECT_EQ(g[1].at("Status"), "5.1.1");
  EXPECT_EQ(g[1].at("Remote-MTA"), "dns; mx1.a.example");
  EXPECT_EQ(g[1].at("Last-Attempt-Date"), rfc5322_date(1699300000));
  EXPECT_EQ(g[1].at("Diagnostic-Code").rfind("smtp; 550-5.1.1 the email account", 0), 0u);
  EXPECT_EQ(g[1].count("Original-Recipient"), 0u);
  EXPECT_EQ(g[2].at("Original-Recipient"), "rfc822;Y@b.example");
  EXPECT_EQ(g[2].at("Status"), "4.7.5");
  EXPECT_EQ(g[2].at("X-Tlsp-Policy-Rule"), "policies/example.tlsp:12");
  EXPECT_EQ(g[2].at("X-Tlsp-Reason"), "dane-required");
  EXPECT_EQ(g[3].at("Status"), "4.4.7");
  EXPECT_EQ(g[3].at("Diagnostic-Code"), "X-tlsp; connect to mx.c.example: connection refused");
  EXPECT_EQ(g[3].count("Remote-MTA"), 0u);

  const std::string& text = b.parts[0].body;
  EXPECT_NE(text.find("<x@a.example>: delivery failed permanently"), std::string::npos) << text;
  EXPECT_NE(text.find("policy rule: policies/example.tlsp:12"), std::string::npos) << text;
  EXPECT_NE(text.find("reason: dane-required"), std::string::npos) << text;
  EXPECT_EQ(b.parts[2].body, "From: alice@example.org\r\nSubject: hi");

  // Deterministic with a given id; a fresh random id otherwise.
  EXPECT_EQ(make_bounce(in), m);
  in.message_id.clear();
  std::string r1 = parse_message(make_bounce(in)).headers["Message-ID"];
  std::string r2 = parse_message(make_bounce(in)).headers["Message-ID"];
  EXPECT_NE(r1, r2);
  EXPECT_NE(r1.find("@relay.example.org>"), std::string::npos);
}

TEST(Dsn, BoundaryNeverOccursInTheContent) {
  BounceInput in = sample_bounce();
  std::string first = parse_bounce(make_bounce(in)).boundary;
  in.recipients[0].reply = "550 5.1.1 " + first + " " + first;
  in.recipients[1].policy_rule = "--" + first + "--";
  Bounce b = parse_bounce(make_bounce(in));
  EXPECT_NE(b.boundary, first);
  EXPECT_EQ(b.parts.size(), 3u);
}

TEST(Dsn, HeaderSectionIsCutAtAFieldBoundary) {
  std::string msg;
  for (int i = 0; i < 100; ++i)
    msg += "X-Field-" + std::to_string(i) + ": " + std::string(80, 'a' + i % 26) + "\r\n\t continued\r\n";
  msg += "\r\nBody: not a header\r\n";
  BounceInput in = sample_bounce();
  in.original_message = msg;
  in.header_limit = 1000;
  Bounce b = parse_bounce(make_bounce(in));
  ASSERT_EQ(b.parts.size(), 3u);
  std::string kept = b.parts[2].body + "\r\n";  // the delimiter took the last CRLF
  EXPECT_LE(kept.size(), 1000u);
  EXPECT_GT(kept.size(), 800u);
  EXPECT_EQ(msg.compare(0, kept.size(), kept), 0);  // a prefix ending on a whole field
  EXPECT_EQ(msg.compare(kept.size(), 8, "X-Field-"), 0);
  EXPECT_EQ(kept.find("Body:"), std::string::npos);
  EXPECT_NE(b.parts[0].body.find("cut at 1000 bytes"), std::string::npos);

  in.header_limit = kDsnDefaultHeaderLimit;
  EXPECT_EQ(parse_bounce(make_bounce(in)).parts[2].body + "\r\n", msg.substr(0, msg.find("\r\n\r\n") + 2));
  in.original_message = "";
  EXPECT_EQ(parse_bounce(make_bounce(in)).parts[2].body, "");
}

TEST(Dsn, HostileInputStaysInsideItsLines) {
  BounceInput in = sample_bounce();
  in.original_sender = "alice@example.org>\r\nBcc: victim@example.net";
  in.recipients[0].address = "x@a.example\r\nX-Injected: yes";
  in.recipients[0].reply = "550 " + std::string(5000, 'r') + "\r\n550 " + std::string(3000, 's');
  in.recipients[1].policy_rule = std::string(2000, 'p') + "\n\r\0" + "end";
  std::string msg = "Subject: " + std::string(3000, 'q') + "\r\nX-Bin: \x01\x1b[31m\xC3\xA9\r\n\r\nbody";
  in.original_message = msg;
  std::string m = make_bounce(in);
  Bounce b = parse_bounce(m);  // checks CRLF and the line limit on the way
  EXPECT_EQ(m.find("\r\nBcc:"), std::string::npos);
  EXPECT_EQ(m.find("\r\nX-Injected:"), std::string::npos);
  for (unsigned char c : m) EXPECT_TRUE(c == '\r' || c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7F));
  ASSERT_EQ(b.parts.size(), 3u);
  EXPECT_NE(b.parts[2].body.find("X-Bin: ??[31m??"), std::string::npos) << b.parts[2].body;

  // 8-bit headers are kept when the caller can send them.
  in.allow_8bit = true;
  Bounce eight = parse_bounce(make_bounce(in));
  ASSERT_EQ(eight.parts.size(), 3u);
  EXPECT_EQ(eight.top.headers["Content-Transfer-Encoding"], "8bit");
  EXPECT_EQ(eight.parts[2].headers["Content-Transfer-Encoding"], "8bit");
  EXPECT_NE(eight.parts[2].body.find("\xC3\xA9"), std::string::npos);
}

TEST(Dsn, RefusesToBounceToNobody) {
  BounceInput in = sample_bounce();
  in.original_sender = "";
  EXPECT_THROW(make_bounce(in), std::invalid_argument);
  in = sample_bounce();
  in.recipients.clear();
  EXPECT_THROW(make_bounce(in), std::invalid_argument);
  in = sample_bounce();
  in.reporting_host = "";
  EXPECT_THROW(make_bounce(in), std::invalid_argument);
}

TEST(Dsn, StatusCodeOfReplies) {
  struct Case {
    std::string reply;
    bool permanent;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"550 5.1.1 user unknown", true, "5.1.1"},
      {"550-5.7.1 first\r\n550 5.7.1 last", true, "5.7.1"},
      {"451 4.7.5 tlsa lookup failed", false, "4.7.5"},
      {"451 4.7.5 tlsa lookup failed", true, "4.7.5"},
      {"554 5.7.10", true, "5.7.10"},
      {"550 5.100.200 wide", true, "5.100.200"},
      {"550 user unknown", true, "5.0.0"},
      {"550 user unknown", false, "4.4.7"},
      {"", true, "5.0.0"},
      {"", false, "4.4.7"},
      {"550 4.1.1 class disagrees", true, "5.0.0"},
      {"250 2.0.0 ok", true, "5.0.0"},
      {"5.7.1 no reply code", true, "5.7.1"},
      {"550 5.1234.1 too wide", true, "5.0.0"},
      {"550 5.1.1x glued", true, "5.0.0"},
      {"550 5..1", true, "5.0.0"},
      {"55 5.1.1", true, "5.0.0"},
      {"connection refused", false, "4.4.7"},
  };
  for (const auto& c : cases) EXPECT_EQ(status_code_of(c.reply, c.permanent), c.want) << c.reply;
}

TEST(Dsn, DatesAreRfc5322InUtc) {
  EXPECT_EQ(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
  EXPECT_EQ(rfc5322_date(1699360496), "Tue, 07 Nov 2023 12:34:56 +0000");
  EXPECT_EQ(rfc5322_date(951782400), "Tue, 29 Feb 2000 00:00:00 +0000");
}

// ================================================================ retry

TEST(Retry, Durations) {
  const std::vector<std::pair<std::string, std::optional<int64_t>>> cases = {
      {"90s", 90},        {"5m", 300},        {"2h", 7200},       {"5d", 432000}, {"300", 300},  {"0", 0},
      {"400d", 400 * 86400LL},
      {"401d", std::nullopt},                 {"99999999999999999999999", std::nullopt},
      {"", std::nullopt}, {"s", std::nullopt}, {"-5m", std::nullopt}, {"+5m", std::nullopt}, {"5 m", std::nullopt},
      {" 5m", std::nullopt}, {"1.5h", std::nullopt}, {"1h30m", std::nullopt}, {"5w", std::nullopt},
      {"5M", std::nullopt},
  };
  for (const auto& [text, want] : cases) {
    auto got = parse_duration(text);
    EXPECT_EQ(got.has_value(), want.has_value()) << text;
    if (got && want) { EXPECT_EQ(got->count(), *want) << text; }
  }
  EXPECT_EQ(format_duration(90s), "90s");
  EXPECT_EQ(format_duration(3600s), "1h");
  EXPECT_EQ(format_duration(432000s), "5d");
}

TEST(Retry, ScheduleStepsAndTheLastRepeats) {
  std::string problem;
  auto s = RetrySchedule::parse("1m, 5m,15m,30m,1h,2h,4h", &problem);
  ASSERT_TRUE(s) << problem;
  EXPECT_EQ(s->to_string(), "1m,5m,15m,30m,1h,2h,4h");
  EXPECT_EQ(RetrySchedule().to_string(), std::string(kDefaultRetrySchedule));
  const int64_t now = 1700000000;
  EXPECT_EQ(s->next_attempt(0, now), now);
  const std::vector<int64_t> want = {60, 300, 900, 1800, 3600, 7200, 14400, 14400, 14400};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(s->next_attempt(static_cast<int>(i + 1), now), now + want[i]);
  EXPECT_EQ(s->next_attempt(1000000, now), now + 14400);
  EXPECT_EQ(s->next_attempt(1, std::numeric_limits<int64_t>::max() - 5), std::numeric_limits<int64_t>::max());

  for (std::string bad : {"", " ", "1m,", ",1m", "1m,,5m", "1m;5m", "0s", "5x"}) {
    problem.clear();
    EXPECT_FALSE(RetrySchedule::parse(bad, &problem)) << bad;
    EXPECT_FALSE(problem.empty()) << bad;
  }
  std::string many;
  for (size_t i = 0; i <= kMaxRetrySteps; ++i) many += (i ? ",1m" : "1m");
  EXPECT_FALSE(RetrySchedule::parse(many));
  EXPECT_THROW(RetrySchedule(std::vector<std::chrono::seconds>{}), std::invalid_argument);
  EXPECT_THROW(RetrySchedule({0s}), std::invalid_argument);
}

TEST(Retry, JitterIsBoundedAndDeterministic) {
  RetrySchedule s = *RetrySchedule::parse("10m,1h");
  EXPECT_EQ(s.delay(1, "a"), 600s);  // off by default
  s.set_jitter(0.2, 7);
  std::set<int64_t> seen;
  for (int k = 0; k < 200; ++k) {
    std::string key = "entry-" + std::to_string(k);
    for (int attempts : {1, 2, 3}) {
      auto d = s.delay(attempts, key);
      auto base = attempts == 1 ? 600s : 3600s;
      EXPECT_GE(d, base);
      EXPECT_LE(d.count(), base.count() + base.count() / 5);
      EXPECT_EQ(d, s.delay(attempts, key));  // a pure function
      if (attempts == 1) seen.insert(d.count());
    }
  }
  EXPECT_GT(seen.size(), 50u);  // entries spread out
  RetrySchedule other = s;
  other.set_jitter(0.2, 8);
  int differ = 0;
  for (int k = 0; k < 50; ++k) differ += s.delay(1, std::to_string(k)) != other.delay(1, std::to_string(k));
  EXPECT_GT(differ, 0);
  EXPECT_THROW(s.set_jitter(0.6), std::invalid_argument);
  EXPECT_THROW(s.set_jitter(-0.1), std::invalid_argument);
  EXPECT_THROW(s.set_jitter(std::numeric_limits<double>::quiet_NaN()), std::invalid_argument);
}

TEST(Retry, Expiry) {
  const int64_t arrival = 1700000000;
  EXPECT_FALSE(expired(arrival, arrival, kDefaultQueueLifetime));
  EXPECT_FALSE(expired(arrival, arrival + kDefaultQueueLifetime.count() - 1, kDefaultQueueLifetime));
  EXPECT_TRUE(expired(arrival, arrival + kDefaultQueueLifetime.count(), kDefaultQueueLifetime));
  EXPECT_FALSE(expired(arrival, arrival - 100, kDefaultQueueLifetime));  // the clock went back
  EXPECT_TRUE(expired(arrival, arrival, 0s));
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min(), kMax = std::numeric_limits<int64_t>::max();
  EXPECT_TRUE(expired(kMin, kMax, kDefaultQueueLifetime));
  EXPECT_FALSE(expired(kMax, kMin, kDefaultQueueLifetime));
}

// ------------------------------------------------- TLSRPT report entries

TEST(ReportEnvelope, AReportIsVersionThreeAndKeepsTheFlagThroughStoreUpdateAndRecovery) {
  TempDir d;
  Spool spool(d.path());
  QueueEntry report = make_entry("example.net", {"reports@example.net"});
  report.tlsrpt_report = true;
  auto stored = spool.store({report, make_entry("example.org", {"x@example.org"})}, "report mail\r\n");
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_TRUE(slurp(env_path(spool, stored[0].id)).starts_with("tlsp-spool-envelope: 3\n"));
  EXPECT_NE(slurp(env_path(spool, stored[0].id)).find("\ntlsrpt-report: 1\n"), std::string::npos);
  EXPECT_TRUE(slurp(env_path(spool, stored[1].id)).starts_with("tlsp-spool-envelope: 1\n"));

  // update() does not change it, whatever the entry given says; held goes with it.
  QueueEntry e = *spool.read_entry(stored[0].id);
  EXPECT_TRUE(e.tlsrpt_report);
  e.tlsrpt_report = false;
  e.held = true;
  e.attempts = 2;
  spool.update(e);
  const std::string text = slurp(env_path(spool, stored[0].id));
  EXPECT_TRUE(text.starts_with("tlsp-spool-envelope: 3\n")) << text;
  EXPECT_NE(text.find("\nheld: 1\n"), std::string::npos) << text;
  std::vector<QueueEntry> back = spool.recover();
  ASSERT_EQ(back.size(), 2u);
  for (const QueueEntry& q : back) {
    EXPECT_EQ(q.tlsrpt_report, q.id == stored[0].id) << q.id;
    EXPECT_EQ(q.held, q.id == stored[0].id) << q.id;
  }
}

TEST(ReportEnvelope, TheParserRefusesTheFlagOutsideVersionThreeAndAnythingButOne) {
  QueueEntry e = make_entry("example.net", {"reports@example.net"});
  e.id = "18c1f2a3b4c5d-1a2b-3.0";
  e.tlsrpt_report = true;
  const std::string report = serialize_envelope(e, 10, 7);
  ParsedEnvelope p;
  std::string problem;
  ASSERT_TRUE(parse_envelope(report, p, problem)) << problem;
  EXPECT_TRUE(p.entry.tlsrpt_report);
  struct Case {
    std::string from, to;
  };
  for (const Case& c : {Case{"tlsp-spool-envelope: 3\n", "tlsp-spool-envelope: 1\n"},
                        Case{"tlsp-spool-envelope: 3\n", "tlsp-spool-envelope: 2\nheld: 1\n"},
                        Case{"\ntlsrpt-report: 1\n", "\ntlsrpt-report: 0\n"},
                        Case{"\ntlsrpt-report: 1\n", "\n"}, Case{"tlsp-spool-envelope: 3\n", "tlsp-spool-envelope: 4\n"}}) {
    std::string t = report;
    t.replace(t.find(c.from), c.from.size(), c.to);
    ParsedEnvelope q;
    EXPECT_FALSE(parse_envelope(signed_envelope(strip_checksum(t)), q, problem)) << c.to;
    EXPECT_EQ(problem.find("checksum"), std::string::npos) << problem;
  }
}
