// queue_control_test.cpp — the queue tools' pieces without a relay
// (tlsp/queue_control.h, tlsp/spool.h): held entries in the envelope
// (version 2, written only when held), the spool's lock, the control
// protocol in both directions and its strictness, and the operations on a
// spool no relay holds, also when the process is killed at every step the
// spool names (a forked child per step, as spool_test.cpp does for the
// spool itself): every entry is afterwards in its old or its new state.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "test_support.h"
#include "tlsp/queue_control.h"
#include "tlsp/spool.h"

using namespace tlsp;

namespace {

struct TempDir : tlsp::testing_support::TempDir {
  TempDir() : tlsp::testing_support::TempDir("tlsp-queue-test") {}
};

QueueEntry make_entry(std::string domain, std::vector<std::string> rcpts) {
  QueueEntry e;
  e.mail_from = "alice@example.org";
  e.recipients = std::move(rcpts);
  e.managed_domain = "example.org";
  e.destination = std::move(domain);
  e.client_address = "127.0.0.1";
  e.client_helo = "client.example.org";
  e.sender_peer = "127.0.0.1:40000";
  e.arrival = 1700000000;
  e.next_attempt = 1700000360;
  e.attempts = 2;
  e.last_error = "451 4.3.0 try again later";
  return e;
}

const std::string kData = "From: alice@example.org\r\nSubject: hi\r\n\r\nbody line\r\n";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string env_path(const std::string& dir, const std::string& id) {
  size_t dot = id.rfind('.');
  return dir + "/queue/" + id.substr(0, dot) + "/" + id.substr(dot + 1) + ".env";
}

QueueRequest request(QueueOp op, const std::string& arg = "") {
  std::string problem;
  auto r = make_queue_request(op, arg, problem);
  EXPECT_TRUE(r) << problem;
  return r.value_or(QueueRequest{});
}

}  // namespace

// ------------------------------------------------------------ held entries

TEST(HeldEnvelope, OnlyAHeldEntryIsWrittenInVersionTwoAndUpdateKeepsTheFlag) {
  TempDir d;
  Spool spool(d.path());
  auto stored = spool.store({make_entry("a.example", {"x@a.example"})}, kData);
  const std::string id = stored[0].id;
  EXPECT_EQ(stored[0].size, kData.size());
  EXPECT_TRUE(slurp(env_path(d.path(), id)).starts_with("tlsp-spool-envelope: 1\n"));

  QueueEntry e = *spool.read_entry(id);
  EXPECT_FALSE(e.held);
  e.held = true;
  spool.update(e);
  std::string text = slurp(env_path(d.path(), id));
  EXPECT_TRUE(text.starts_with("tlsp-spool-envelope: 2\n")) << text;
  EXPECT_NE(text.find("\nheld: 1\n"), std::string::npos) << text;
  std::vector<QueueEntry> back = spool.recover();
  ASSERT_EQ(back.size(), 1u);
  EXPECT_TRUE(back[0].held);
  EXPECT_EQ(back[0].size, kData.size());

  // A worker's update (recipients, attempts) carries the flag it was given:
  // update() owns `held` like the other mutable fields.
  back[0].held = false;
  back[0].attempts = 3;
  spool.update(back[0]);
  EXPECT_TRUE(slurp(env_path(d.path(), id)).starts_with("tlsp-spool-envelope: 1\n"));
  EXPECT_FALSE(spool.read_entry(id)->held);
}

TEST(HeldEnvelope, TheParserRefusesHeldInVersionOneAndAnythingButOne) {
  QueueEntry e = make_entry("a.example", {"x@a.example"});
  e.id = "18c1f2a3b4c5d-1a2b-3.0";
  e.held = true;
  const std::string held = serialize_envelope(e, 10, 7);
  ParsedEnvelope p;
  std::string problem;
  ASSERT_TRUE(parse_envelope(held, p, problem)) << problem;
  EXPECT_TRUE(p.entry.held);
  // Rewritten and resealed (the checksum is right, the content is not),
  // so that the parser's own rules are what refuses them.
  auto reseal = [](std::string t) {
    t.resize(t.rfind("checksum: "));
    char sum[17];
    std::snprintf(sum, sizeof sum, "%016llx", static_cast<unsigned long long>(XXH3_64bits(t.data(), t.size())));
    return t + "checksum: " + sum + "\n";
  };
  ASSERT_TRUE(parse_envelope(reseal(held), p, problem)) << problem;
  struct Case {
    std::string from, to;
  };
  for (const Case& c : {Case{"tlsp-spool-envelope: 2\n", "tlsp-spool-envelope: 1\n"},
                        Case{"\nheld: 1\n", "\nheld: 0\n"}, Case{"\nheld: 1\n", "\n"}}) {
    std::string t = held;
    t.replace(t.find(c.from), c.from.size(), c.to);
    ParsedEnvelope q;
    EXPECT_FALSE(parse_envelope(reseal(t), q, problem)) << c.to;
    EXPECT_EQ(problem.find("checksum"), std::string::npos) << problem;
  }
}

// ------------------------------------------------------------ the lock

TEST(SpoolLockTest, OneHolderAtATimeAndFreeAgainAfterwards) {
  TempDir d;
  {
    std::optional<SpoolLock> first = SpoolLock::try_acquire(d.path());
    ASSERT_TRUE(first);
    // Another open file description (as another process has) is refused,
    // also when it waits a little.
    EXPECT_FALSE(SpoolLock::try_acquire(d.path()));
    EXPECT_FALSE(SpoolLock::acquire(d.path(), std::chrono::milliseconds(100)));
    // A child process is refused too.
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(SpoolLock::try_acquire(d.path()) ? 1 : 0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_TRUE(SpoolLock::try_acquire(d.path()));
  // A holder killed by SIGKILL leaves the lock free (the kernel drops it).
  pid_t pid = ::fork();
  if (pid == 0) {
    auto l = SpoolLock::try_acquire(d.path());
    ::raise(SIGKILL);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(SpoolLock::try_acquire(d.path()));
  EXPECT_THROW(SpoolLock::try_acquire(d.file("missing")), SpoolError);
}

// ------------------------------------------------------------ the protocol

TEST(ControlProtocol, EveryRequestRoundTripsInItsNormalForm) {
  const std::string id = "18c1f2a3b4c5d-1a2b-3.0";
  for (auto [op, arg] : std::vector<std::pair<QueueOp, std::string>>{{QueueOp::list, ""},
                                                                     {QueueOp::show, id},
                                                                     {QueueOp::flush, ""},
                                                                     {QueueOp::flush, id},
                                                                     {QueueOp::flush_domain, "partner.example"},
                                                                     {QueueOp::hold, id},
                                                                     {QueueOp::release, id},
                                                                     {QueueOp::remove, id},
                                                                     {QueueOp::remove_domain, "partner.example"}}) {
    QueueRequest r = request(op, arg);
    std::string line = format_queue_request(r), problem;
    auto back = parse_queue_request(line, problem);
    ASSERT_TRUE(back) << line << ": " << problem;
    EXPECT_EQ(back->op, op);
    EXPECT_EQ(back->argument, arg);
  }
  // A domain is put in its normal form by the command, and only that form
  // is accepted on the wire.
  EXPECT_EQ(request(QueueOp::flush_domain, "Partner.Example.").argument, "partner.example");
}

TEST(ControlProtocol, BadRequestsAreRefusedWithAReason) {
  for (std::string bad :
       std::vector<std::string>{"", "\n", "list\n", "tlsp-queue/1\n", "tlsp-queue/1 list now\n", "tlsp-queue/2 list\n",
                                "tlsp-queue/1 frobnicate\n", "tlsp-queue/1 hold\n", "tlsp-queue/1 hold ../../etc\n",
                                "tlsp-queue/1 hold 18c-1-3.0 \n", "tlsp-queue/1 flush-domain Partner.example\n",
                                "tlsp-queue/1 delete-domain -bad-\n", "tlsp-queue/1 list\r\n",
                                std::string("tlsp-queue/1 show 18c-1-3.0\0\n", 30), "tlsp-queue/1  list\n",
                                "tlsp-queue/1 list " + std::string(2000, 'a') + "\n"}) {
    std::string problem;
    EXPECT_FALSE(parse_queue_request(bad, problem)) << bad;
    EXPECT_FALSE(problem.empty());
  }
  std::string problem;
  EXPECT_FALSE(make_queue_request(QueueOp::hold, "", problem));
  EXPECT_FALSE(make_queue_request(QueueOp::list, "x", problem));
  EXPECT_FALSE(make_queue_request(QueueOp::remove, "not an id", problem));
}

TEST(ControlProtocol, RepliesRoundTripWhateverTheEntriesHold) {
  QueueReply r;
  r.changed = 2;
  QueueEntry e = make_entry("a.example", {"x@a.example", "odd name@a.example"});
  e.id = "18c1f2a3b4c5d-1a2b-3.0";
  e.mail_from = "";  // the null sender
  e.last_error = "451 4.3.0 spaces, = signs, % and \xff bytes";
  e.failed_recipients = {{"gone@a.example", "550 5.1.1 no such user"}};
  e.held = true;
  e.size = 4711;
  r.entries.push_back({e, false});
  e.id = "18c1f2a3b4c5d-1a2b-3.1";
  e.held = false;
  r.entries.push_back({e, true});
  r.headers = {"Subject: hi", "X-Odd: a\tb"};
  r.headers_cut = true;
  r.body_bytes = 12;
  r.notes = {"entry `x` is held: release it first"};
  std::string text = format_queue_reply(r), problem;
  QueueReply back;
  ASSERT_TRUE(parse_queue_reply(text, back, problem)) << problem << "\n" << text;
  EXPECT_TRUE(back.ok);
  EXPECT_EQ(back.changed, 2u);
  ASSERT_EQ(back.entries.size(), 2u);
  EXPECT_EQ(back.entries[0].entry.recipients, r.entries[0].entry.recipients);
  EXPECT_EQ(back.entries[0].entry.mail_from, "");
  EXPECT_EQ(back.entries[0].entry.last_error, r.entries[0].entry.last_error);
  EXPECT_EQ(back.entries[0].entry.failed_recipients, r.entries[0].entry.failed_recipients);
  EXPECT_TRUE(back.entries[0].entry.held);
  EXPECT_FALSE(back.entries[0].delivering);
  EXPECT_TRUE(back.entries[1].delivering);
  EXPECT_EQ(back.entries[1].entry.size, 4711u);
  EXPECT_EQ(back.entries[1].entry.next_attempt, 1700000360);
  EXPECT_EQ(back.headers, r.headers);
  EXPECT_TRUE(back.headers_cut);
  EXPECT_EQ(back.body_bytes, 12u);
  EXPECT_EQ(back.notes, r.notes);

  QueueReply err;
  err.ok = false;
  err.error = "entry `x` is being delivered right now";
  ASSERT_TRUE(parse_queue_reply(format_queue_reply(err), back, problem)) << problem;
  EXPECT_FALSE(back.ok);
  EXPECT_EQ(back.error, err.error);
}

TEST(ControlProtocol, AReplyThatBreaksARuleIsRefusedWhole) {
  const std::string good = "ok\nchanged 0\nend\n";
  QueueReply out;
  std::string problem;
  ASSERT_TRUE(parse_queue_reply(good, out, problem)) << problem;
  for (std::string bad : std::vector<std::string>{
           "", "ok\n", "ok\nchanged 0\n", "ok\nend\nend\n", "ok\nend", "ok \nend\n", "fine\nend\n",
           "ok\nchanged 01\nend\n", "ok\nchanged 1\nchanged 1\nend\n", "ok\nentry id=x\nend\n", "ok\nheader a b\nend\n",
           "ok\nbogus\nend\n", "error\nend\n", "ok\nentry \nend\n", "ok\nnote %zz\nend\n"}) {
    EXPECT_FALSE(parse_queue_reply(bad, out, problem)) << bad;
  }
}

TEST(ControlProtocol, ShowGivesTheHeaderSectionBoundedAndTheBodySize) {
  QueueReply r;
  show_message_headers("Subject: hi\r\nFrom: a@b\r\n\r\nbody\r\n", r);
  EXPECT_EQ(r.headers, (std::vector<std::string>{"Subject: hi", "From: a@b"}));
  EXPECT_FALSE(r.headers_cut);
  EXPECT_EQ(r.body_bytes, 6u);
  QueueReply big;
  std::string huge;
  while (huge.size() < kMaxShownHeaderBytes * 2) huge += "X-Fill: " + std::string(100, 'f') + "\r\n";
  show_message_headers(huge + "\r\nbody", big);
  EXPECT_TRUE(big.headers_cut);
  size_t shown = 0;
  for (const auto& h : big.headers) shown += h.size() + 2;
  EXPECT_LE(shown, kMaxShownHeaderBytes + 2);
  EXPECT_EQ(big.body_bytes, 4u);
}

// ------------------------------------------------------------ offline

TEST(OfflineQueue, ListShowHoldReleaseDeleteThroughTheSpool) {
  TempDir d;
  std::vector<QueueEntry> stored;
  {
    Spool spool(d.path());
    stored = spool.store({make_entry("a.example", {"x@a.example"}), make_entry("b.example", {"y@b.example"}),
                          make_entry("b.example", {"z@B.example"})},
                         kData);
  }
  QueueReply r = run_queue_request(d.path(), request(QueueOp::list));
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_EQ(r.entries.size(), 3u);
  EXPECT_EQ(r.entries[0].entry.last_error, "451 4.3.0 try again later");
  EXPECT_EQ(r.entries[0].entry.size, kData.size());

  r = run_queue_request(d.path(), request(QueueOp::show, stored[0].id));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.headers, (std::vector<std::string>{"From: alice@example.org", "Subject: hi"}));

  r = run_queue_request(d.path(), request(QueueOp::hold, stored[0].id));
  EXPECT_TRUE(r.ok && r.changed == 1) << r.error;
  r = run_queue_request(d.path(), request(QueueOp::hold, stored[0].id));
  EXPECT_TRUE(r.ok && r.changed == 0 && r.notes.size() == 1);  // already held
  {
    Spool spool(d.path());
    EXPECT_TRUE(spool.read_entry(stored[0].id)->held);
  }
  r = run_queue_request(d.path(), request(QueueOp::release, stored[0].id));
  EXPECT_TRUE(r.ok && r.changed == 1) << r.error;
  {
    Spool spool(d.path());
    QueueEntry e = *spool.read_entry(stored[0].id);
    EXPECT_FALSE(e.held);
    EXPECT_LE(e.next_attempt, std::time(nullptr));  // released: due now
  }
  // Flush with no relay: nothing to do, nothing written, said so.
  r = run_queue_request(d.path(), request(QueueOp::flush));
  EXPECT_TRUE(r.ok && r.changed == 0 && !r.notes.empty());

  r = run_queue_request(d.path(), request(QueueOp::remove_domain, "b.example"));
  EXPECT_TRUE(r.ok && r.changed == 2) << r.error;
  r = run_queue_request(d.path(), request(QueueOp::remove, stored[1].id));
  EXPECT_FALSE(r.ok);  // gone already
  r = run_queue_request(d.path(), request(QueueOp::remove, stored[0].id));
  EXPECT_TRUE(r.ok && r.changed == 1);
  r = run_queue_request(d.path(), request(QueueOp::list));
  EXPECT_TRUE(r.ok && r.entries.empty());
  EXPECT_TRUE(std::filesystem::is_empty(d.file("queue")));
  // No bounce was made: nothing new in the queue, nothing in failed/.
  EXPECT_TRUE(std::filesystem::is_empty(d.file("failed")));
}

TEST(OfflineQueue, WhileTheLockIsHeldAndNobodyAnswersTheCommandSaysSo) {
  TempDir d;
  { Spool spool(d.path()); }
  auto lock = SpoolLock::try_acquire(d.path());
  ASSERT_TRUE(lock);
  auto start = std::chrono::steady_clock::now();
  try {
    run_queue_request(d.path(), request(QueueOp::list));
    ADD_FAILURE() << "no error";
  } catch (const SpoolError& e) {
    EXPECT_NE(std::string(e.what()).find("nobody answers"), std::string::npos) << e.what();
  }
  EXPECT_GE(std::chrono::steady_clock::now() - start, kControlConnectWait);
}

// Killed at every step an operation's spool calls name: afterwards the
// spool recovers, and every entry is in its old state or its new one.
TEST(OfflineQueueCrash, EveryEntryEndsInItsOldOrNewStateAtEveryStep) {
  struct Point {
    QueueOp op;
    const char* step;
  };
  const Point points[] = {
      {QueueOp::hold, "update:temp-synced"},   {QueueOp::hold, "update:renamed"},
      {QueueOp::hold, "update:committed"},     {QueueOp::release, "update:temp-synced"},
      {QueueOp::release, "update:renamed"},    {QueueOp::remove, "remove:envelope-removed"},
      {QueueOp::remove, "remove:done"},        {QueueOp::remove_domain, "remove:envelope-removed"},
      {QueueOp::remove_domain, "remove:done"},
  };
  for (const Point& p : points) {
    for (bool kill : {false, true}) {
      SCOPED_TRACE(std::string(queue_op_name(p.op)) + " at " + p.step + (kill ? " (SIGKILL)" : " (_exit)"));
      TempDir d;
      std::vector<QueueEntry> stored;
      {
        Spool spool(d.path());
        std::vector<QueueEntry> in = {make_entry("b.example", {"y@b.example"}),
                                      make_entry("b.example", {"z@b.example"}),
                                      make_entry("a.example", {"x@a.example"})};
        if (p.op == QueueOp::release) in[0].held = in[1].held = true;
        stored = spool.store(in, kData);
      }
      const std::string arg = p.op == QueueOp::remove_domain ? "b.example" : stored[0].id;
      QueueRequest req = request(p.op, arg);
      pid_t pid = ::fork();
      if (pid == 0) {
        auto lock = SpoolLock::try_acquire(d.path());
        if (!lock) ::_exit(3);
        Spool spool(d.path());
        int seen = 0;
        spool.set_step_hook([&](std::string_view step) {
          // The second removal of delete-domain: one entry changed, one not.
          if (step == p.step && ++seen == (p.op == QueueOp::remove_domain ? 2 : 1)) {
            if (kill) ::raise(SIGKILL);
            ::_exit(42);
          }
        });
        apply_queue_request(spool, req, std::time(nullptr));
        ::_exit(0);
      }
      int status = 0;
      ::waitpid(pid, &status, 0);
      ASSERT_TRUE(kill ? (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
                       : (WIFEXITED(status) && WEXITSTATUS(status) == 42))
          << status;
      // The lock went with the process; a relay's start-up recovery finds:
      auto lock = SpoolLock::try_acquire(d.path());
      ASSERT_TRUE(lock);
      Spool spool(d.path());
      std::vector<std::string> problems;
      std::vector<QueueEntry> back = spool.recover(&problems);
      EXPECT_TRUE(problems.empty()) << problems.front();
      std::set<std::string> ids;
      for (const QueueEntry& e : back) {
        EXPECT_TRUE(ids.insert(e.id).second) << "duplicate " << e.id;
        EXPECT_EQ(spool.read_data(e.id), kData);  // never an entry without its data
      }
      // Untouched entries are as stored.
      const QueueEntry* a = nullptr;
      for (const QueueEntry& e : back)
        if (e.id == stored[2].id) a = &e;
      ASSERT_NE(a, nullptr);
      EXPECT_EQ(a->held, false);
      switch (p.op) {
        case QueueOp::hold:
        case QueueOp::release:
          // Still queued, in the old state or the new one: the only
          // difference is the flag.
          ASSERT_EQ(back.size(), 3u);
          for (const QueueEntry& e : back) {
            EXPECT_EQ(e.recipients, (e.id == stored[0].id   ? stored[0].recipients
                                     : e.id == stored[1].id ? stored[1].recipients
                                                            : stored[2].recipients));
            if (e.id == stored[1].id) {
              EXPECT_EQ(e.held, p.op == QueueOp::release);
            }
            // Before the rename the old envelope stands, after it the new.
            if (e.id == stored[0].id) {
              const bool changed = std::string_view(p.step) != "update:temp-synced";
              EXPECT_EQ(e.held, p.op == QueueOp::hold ? changed : !changed);
            }
          }
          break;
        case QueueOp::remove:
          // After the envelope's unlink the entry is gone; never half.
          EXPECT_EQ(back.size(), 2u);
          EXPECT_FALSE(ids.count(stored[0].id));
          break;
        case QueueOp::remove_domain:
          // The first removal finished, the second was interrupted after
          // its unlink: both gone, the other domain untouched.
          EXPECT_EQ(back.size(), 1u);
          EXPECT_TRUE(ids.count(stored[2].id));
          break;
        default:
          break;
      }
      // And the queue tools read it.
      lock.reset();
      QueueReply r = run_queue_request(d.path(), request(QueueOp::list));
      EXPECT_TRUE(r.ok);
      EXPECT_EQ(r.entries.size(), back.size());
    }
  }
}
