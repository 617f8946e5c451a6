// queue_cli_test.cpp — `tlsp queue` and `tlsp mta-sts-cache` as a user
// types them: help, usage errors (exit 2, naming what is wrong), a spool or
// cache that is not there (exit 2), an empty queue and cache. What the
// commands do to a queue is tests/relay/queue_test.cpp's, against a real
// relay.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "command.h"
#include "test_support.h"

using tlsp::testing_support::CommandRun;
using tlsp::testing_support::run_tlsp;

namespace {
bool has(const CommandRun& r, const std::string& text) {
  return r.out.find(text) != std::string::npos;
}
}  // namespace

TEST(QueueCli, HelpNamesEveryOperation) {
  CommandRun top = run_tlsp("--help");
  EXPECT_TRUE(has(top, "queue ") && has(top, "mta-sts-cache")) << top.out;
  CommandRun help = run_tlsp("help queue");
  EXPECT_EQ(help.code, 0) << help.out;
  for (const char* op : {"list", "show ID", "flush", "hold ID", "release ID", "delete ID", "delete --all --domain D"})
    EXPECT_TRUE(has(help, op)) << op << "\n" << help.out;
  CommandRun del = run_tlsp("queue delete --help");
  EXPECT_EQ(del.code, 0);
  EXPECT_TRUE(has(del, "WITHOUT a bounce")) << del.out;
  CommandRun cache = run_tlsp("help mta-sts-cache");
  EXPECT_EQ(cache.code, 0);
  EXPECT_TRUE(has(cache, "purge [DOMAIN]")) << cache.out;
}

TEST(QueueCli, UsageErrorsSayWhatIsWrong) {
  tlsp::testing_support::TempDir d("tlsp-queue-cli");
  const std::string spool = " --spool " + d.path();
  struct Case {
    std::string args, says;
  };
  for (const Case& c :
       {Case{"queue", "no operation given"}, Case{"queue frobnicate", "unknown operation `frobnicate`"},
        Case{"queue list --config " + d.file("absent.conf"), "cannot read config file"},
        Case{"queue list --spool a --config b", "not both"}, Case{"queue hold" + spool, "no queue id given"},
        Case{"queue hold not-an-id" + spool, "is not a queue id"}, Case{"queue delete" + spool, "--all --domain D"},
        Case{"queue delete --all" + spool, "--all --domain D"},
        Case{"queue delete 18c1-1-1.0 --all --domain a.example" + spool, "not both"},
        Case{"queue flush 18c1-1-1.0 --domain a.example" + spool, "not both"},
        Case{"queue flush --domain bad..name" + spool, "is not a domain name"},
        Case{"queue list --frobnicate" + spool, "unknown option `--frobnicate`"},
        Case{"mta-sts-cache", "no operation given"}, Case{"mta-sts-cache list --spool a --cache b", "not both"}}) {
    CommandRun r = run_tlsp(c.args);
    EXPECT_EQ(r.code, 2) << c.args << "\n" << r.out;
    EXPECT_TRUE(has(r, c.says)) << c.args << "\n" << r.out;
  }
}

TEST(QueueCli, AMissingSpoolOrCacheIsExitTwoAndAnEmptyOneIsSaidSo) {
  tlsp::testing_support::TempDir d("tlsp-queue-cli");
  CommandRun none = run_tlsp("queue list --spool " + d.file("missing"));
  EXPECT_EQ(none.code, 2) << none.out;
  EXPECT_TRUE(has(none, "there is no spool directory")) << none.out;
  EXPECT_FALSE(std::filesystem::exists(d.file("missing")));  // nothing was created
  CommandRun cache = run_tlsp("mta-sts-cache list --spool " + d.file("missing"));
  EXPECT_EQ(cache.code, 2) << cache.out;
  EXPECT_TRUE(has(cache, "there is no policy cache")) << cache.out;

  std::filesystem::create_directories(d.file("spool/mta-sts"));
  CommandRun empty = run_tlsp("queue list --spool " + d.file("spool"));
  EXPECT_EQ(empty.code, 0) << empty.out;
  EXPECT_EQ(empty.out, "the queue is empty\n");
  CommandRun json = run_tlsp("queue list --json --spool " + d.file("spool"));
  EXPECT_EQ(json.code, 0) << json.out;
  EXPECT_TRUE(has(json, "\"entries\": []")) << json.out;
  CommandRun no_entry = run_tlsp("queue hold 18c1f2a3b4c5d-1a2b-3.0 --spool " + d.file("spool"));
  EXPECT_EQ(no_entry.code, 1) << no_entry.out;
  EXPECT_TRUE(has(no_entry, "no queued entry `18c1f2a3b4c5d-1a2b-3.0`")) << no_entry.out;
  CommandRun empty_cache = run_tlsp("mta-sts-cache list --spool " + d.file("spool"));
  EXPECT_EQ(empty_cache.code, 0) << empty_cache.out;
  EXPECT_EQ(empty_cache.out, "the policy cache is empty\n");

  // --config: the spool and the cache the relay's configuration names,
  // read as `tlsp relay` reads it; a configuration with a mistake is
  // refused with the relay's own words.
  std::filesystem::create_directories(d.file("cache"));
  {
    std::ofstream(d.file("relay.conf")) << "table = " << d.file("t.tlsp") << "\nspool = " << d.file("spool")
                                        << "\nmta-sts-cache = " << d.file("cache") << "\n";
    std::ofstream(d.file("bad.conf")) << "spool = " << d.file("spool") << "\nmax-errors = many\n";
  }
  CommandRun by_config = run_tlsp("queue list --config " + d.file("relay.conf"));
  EXPECT_EQ(by_config.code, 0) << by_config.out;
  EXPECT_EQ(by_config.out, "the queue is empty\n");
  CommandRun cache_by_config = run_tlsp("mta-sts-cache list --config " + d.file("relay.conf"));
  EXPECT_EQ(cache_by_config.code, 0) << cache_by_config.out;
  EXPECT_EQ(cache_by_config.out, "the policy cache is empty\n");
  std::filesystem::remove_all(d.file("cache"));
  CommandRun cache_gone = run_tlsp("mta-sts-cache list --config " + d.file("relay.conf"));
  EXPECT_TRUE(has(cache_gone, "there is no policy cache `" + d.file("cache") + "`")) << cache_gone.out;
  CommandRun bad = run_tlsp("queue list --config " + d.file("bad.conf"));
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_TRUE(has(bad, "bad.conf:2: max-errors: `many` is not a whole number")) << bad.out;
}
