// redis_client_test.cpp — tlsp/redis_client.h: the redis:// URL reader (a
// table of accepted and refused URLs) and RedisClient against a real
// redis-server on loopback (tests/support/redis_server.h): replies, errors,
// databases, AUTH, a server that is down or hung (an error within the
// timeout, then a reconnect), Lua scripts across SCRIPT FLUSH, threads.
#include "tlsp/redis_client.h"

#include <gtest/gtest.h>

#include <thread>

#include "redis_server.h"

namespace tlsp::redis {
namespace {

using testing_support::RedisServer;
using Clock = std::chrono::steady_clock;

struct GoodUrl {
  const char* text;
  const char* host;
  bool v6;
  uint16_t port;
  int64_t db;
  const char* user;
  const char* password;  // nullptr: none
  const char* redacted;
};

TEST(RedisUrl, AcceptsTheStrictForm) {
  const GoodUrl cases[] = {
      {"redis://127.0.0.1:6379/0", "127.0.0.1", false, 6379, 0, "", nullptr, "redis://127.0.0.1:6379/0"},
      {"REDIS://Redis.Example.:6380/15", "redis.example", false, 6380, 15, "", nullptr, "redis://redis.example:6380/15"},
      {"redis://localhost:1/1000000", "localhost", false, 1, 1000000, "", nullptr, "redis://localhost:1/1000000"},
      {"redis://[::1]:65535/3", "::1", true, 65535, 3, "", nullptr, "redis://[::1]:65535/3"},
      {"redis://[2001:DB8::0:1]:6379/0", "2001:db8::1", true, 6379, 0, "", nullptr, "redis://[2001:db8::1]:6379/0"},
      {"redis://:s3cret@10.0.0.1:6379/2", "10.0.0.1", false, 6379, 2, "", "s3cret", "redis://:***@10.0.0.1:6379/2"},
      {"redis://tlsp:p%40ss%2F%3A@h.example:6379/0", "h.example", false, 6379, 0, "tlsp", "p@ss/:",
       "redis://tlsp:***@h.example:6379/0"},
  };
  for (const GoodUrl& c : cases) {
    SCOPED_TRACE(c.text);
    const RedisUrlParse p = parse_redis_url(c.text);
    ASSERT_TRUE(p.url.has_value()) << p.problem;
    EXPECT_EQ(p.url->host, c.host);
    EXPECT_EQ(p.url->host_is_ipv6, c.v6);
    EXPECT_EQ(p.url->port, c.port);
    EXPECT_EQ(p.url->db, c.db);
    EXPECT_EQ(p.url->user, c.user);
    EXPECT_EQ(p.url->has_password, c.password != nullptr);
    if (c.password != nullptr) {
      EXPECT_EQ(p.url->password, c.password);
    }
    EXPECT_EQ(redacted_url(*p.url), c.redacted);
    // The redacted form without a password reads back to the same URL.
    if (c.password == nullptr) {
      EXPECT_EQ(parse_redis_url(redacted_url(*p.url)).url, p.url);
    }
    EXPECT_TRUE(looks_like_redis_url(c.text));
  }
}

TEST(RedisUrl, RefusesEverythingElseWithAReason) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "not a redis URL"},
      {"/var/lib/tlsp/tlsrpt.db", "not a redis URL"},
      {"rediss://h:6379/0", "not a redis URL"},
      {"redis://h:6379", "database number is missing"},
      {"redis://h:6379/", "the database ``"},
      {"redis://h:6379/00", "the database `00`"},
      {"redis://h:6379/1000001", "the database `1000001`"},
      {"redis://h:6379/-1", "the database `-1`"},
      {"redis://h:6379/0/1", "the database `0/1`"},
      {"redis://h:6379/0?timeout=1", "no query or fragment"},
      {"redis://h:6379/0#x", "no query or fragment"},
      {"redis://h/0", "the port is missing"},
      {"redis://h:/0", "the port ``"},
      {"redis://h:0/0", "the port `0`"},
      {"redis://h:65536/0", "the port `65536`"},
      {"redis://h:06379/0", "the port `06379`"},
      {"redis://h:+6379/0", "the port `+6379`"},
      {"redis://:6379/0", "the host is missing"},
      {"redis://::1:6379/0", "in brackets"},
      {"redis://[::1/0", "without `]`"},
      {"redis://[::1]/0", "the port is missing"},
      {"redis://[127.0.0.1]:6379/0", "is not an IPv6 address"},
      {"redis://[fe80::1%eth0]:6379/0", "is not an IPv6 address"},
      {"redis://bad_host:6379/0", "host `bad_host`"},
      {"redis://-h.example:6379/0", "host `-h.example`"},
      {"redis://1.2.3.999:6379/0", "host `1.2.3.999`"},
      {"redis://secret@h:6379/0", "`:PASSWORD` or `USER:PASSWORD`"},
      {"redis://:@h:6379/0", "the password is empty"},
      {"redis://:a b@h:6379/0", "must be written as %XX"},
      {"redis://:a%4@h:6379/0", "two hex digits"},
      {"redis://:a%00@h:6379/0", "two hex digits"},
      {"redis://u%zz:p@h:6379/0", "two hex digits"},
  };
  for (const auto& [text, why] : cases) {
    SCOPED_TRACE(text);
    const RedisUrlParse p = parse_redis_url(text);
    EXPECT_FALSE(p.url.has_value());
    EXPECT_NE(p.problem.find(why), std::string::npos) << p.problem;
  }
  EXPECT_NE(parse_redis_url("redis://" + std::string(kMaxRedisUrlLength, 'a')).problem.find("at most"),
            std::string::npos);
}

TEST(RedisUrl, APasswordNeverAppearsInAProblem) {
  const RedisUrlParse p = parse_redis_url("redis://:hunter2@h:0/0");
  EXPECT_FALSE(p.url.has_value());
  EXPECT_EQ(p.problem.find("hunter2"), std::string::npos) << p.problem;
}

ClientOptions quick() { return ClientOptions{std::chrono::milliseconds(500), std::chrono::milliseconds(500)}; }

RedisUrl url_of(const std::string& text) {
  RedisUrlParse p = parse_redis_url(text);
  if (!p.url) throw std::runtime_error(p.problem);
  return *p.url;
}

TEST(RedisClient, RunsCommandsAndReturnsEveryReplyKind) {
  RedisServer server;
  RedisClient client(url_of(server.url()), quick());
  const std::string binary("a\0b\r\nc", 6);
  Result r = client.command({"SET", "k", binary});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.reply.type, Reply::Type::status);
  EXPECT_EQ(r.reply.str, "OK");
  r = client.command({"GET", "k"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.reply.type, Reply::Type::string);
  EXPECT_EQ(r.reply.str, binary);
  r = client.command({"GET", "missing"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.reply.type, Reply::Type::nil);
  r = client.command({"INCRBY", "n", "41"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.reply.type, Reply::Type::integer);
  EXPECT_EQ(r.reply.integer, 41);
  ASSERT_TRUE(client.command({"RPUSH", "l", "x", "y"}).ok());
  r = client.command({"LRANGE", "l", "0", "-1"});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.reply.type, Reply::Type::array);
  ASSERT_EQ(r.reply.elements.size(), 2u);
  EXPECT_EQ(r.reply.elements[1].str, "y");
  // An error reply is a server error, and the connection stays usable.
  r = client.command({"INCR", "k"});
  EXPECT_EQ(r.status, Result::Status::server_error);
  EXPECT_NE(r.error.find("not an integer"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find(client.describe()), std::string::npos) << r.error;
  r = client.command({"NOSUCHCOMMAND"});
  EXPECT_EQ(r.status, Result::Status::server_error);
  EXPECT_TRUE(client.ping().ok());
}

TEST(RedisClient, SelectsTheDatabaseOfTheUrl) {
  RedisServer server;
  RedisClient db0(url_of(server.url(0)), quick());
  RedisClient db1(url_of(server.url(1)), quick());
  ASSERT_TRUE(db1.command({"SET", "only-in-1", "x"}).ok());
  EXPECT_EQ(db0.command({"GET", "only-in-1"}).reply.type, Reply::Type::nil);
  EXPECT_EQ(db1.command({"GET", "only-in-1"}).reply.str, "x");
  // A database the server does not have: refused when connecting.
  RedisClient db99(url_of(server.url(99)), quick());
  const Result r = db99.ping();
  EXPECT_EQ(r.status, Result::Status::connection_error);
  EXPECT_NE(r.error.find("database 99 refused"), std::string::npos) << r.error;
}

TEST(RedisClient, AuthenticatesWithThePassword) {
  RedisServer server(RedisServer::Options{"pw-for-test"});
  RedisClient good(url_of(server.url()), quick());
  EXPECT_TRUE(good.ping().ok()) << good.ping().error;
  RedisClient wrong(url_of("redis://:not-it@127.0.0.1:" + std::to_string(server.port()) + "/0"), quick());
  Result r = wrong.ping();
  EXPECT_EQ(r.status, Result::Status::connection_error);
  EXPECT_NE(r.error.find("authentication refused"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("not-it"), std::string::npos) << r.error;
  RedisClient none(url_of("redis://127.0.0.1:" + std::to_string(server.port()) + "/0"), quick());
  r = none.ping();
  EXPECT_EQ(r.status, Result::Status::server_error);
  EXPECT_NE(r.error.find("NOAUTH"), std::string::npos) << r.error;
}

TEST(RedisClient, AServerThatIsDownIsAnErrorAtOnceAndTheNextCallReconnects) {
  RedisServer server;
  RedisClient client(url_of(server.url()), quick());
  ASSERT_TRUE(client.command({"SET", "k", "v"}).ok());
  server.kill();
  for (int i = 0; i < 3; ++i) {
    const auto start = Clock::now();
    const Result r = client.command({"GET", "k"});
    EXPECT_EQ(r.status, Result::Status::connection_error);
    EXPECT_FALSE(r.error.empty());
    EXPECT_NE(r.error.find("127.0.0.1:" + std::to_string(server.port())), std::string::npos) << r.error;
    EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(500) + std::chrono::milliseconds(250));
  }
  server.start();  // empty again (no persistence)
  const Result r = client.command({"GET", "k"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.reply.type, Reply::Type::nil);
}

TEST(RedisClient, AHungServerTimesOutAndTheNextCallReconnects) {
  RedisServer server;
  ClientOptions o{std::chrono::milliseconds(300), std::chrono::milliseconds(300)};
  RedisClient client(url_of(server.url()), o);
  ASSERT_TRUE(client.ping().ok());
  server.pause();
  auto start = Clock::now();
  Result r = client.command({"SET", "k", "v"});
  auto took = Clock::now() - start;
  EXPECT_EQ(r.status, Result::Status::connection_error);
  EXPECT_NE(r.error.find("no reply within 300 ms"), std::string::npos) << r.error;
  EXPECT_GE(took, std::chrono::milliseconds(250));
  EXPECT_LT(took, std::chrono::milliseconds(300 + 400));
  // A new connection: the kernel accepts it, the stopped server never
  // answers the first command.
  start = Clock::now();
  r = client.command({"GET", "k"});
  took = Clock::now() - start;
  EXPECT_EQ(r.status, Result::Status::connection_error);
  EXPECT_LT(took, std::chrono::milliseconds(300 + 300 + 400));
  server.resume();
  r = client.command({"GET", "k"});
  EXPECT_TRUE(r.ok()) << r.error;
}

TEST(RedisClient, RunsAScriptOnceAlsoAfterTheServerForgotIt) {
  RedisServer server;
  RedisClient client(url_of(server.url()), quick());
  const std::string script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
  Result r = client.eval(script, {"counter"}, {"5"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.reply.integer, 5);
  ASSERT_TRUE(client.command({"SCRIPT", "FLUSH"}).ok());
  r = client.eval(script, {"counter"}, {"5"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.reply.integer, 10);  // once, not twice
  // A script error is the server's.
  r = client.eval("return redis.call('NOSUCH')", {}, {});
  EXPECT_EQ(r.status, Result::Status::server_error);
  // After a restart the server has no scripts: loaded again.
  server.kill();
  EXPECT_EQ(client.eval(script, {"counter"}, {"1"}).status, Result::Status::connection_error);
  server.start();
  r = client.eval(script, {"counter"}, {"1"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.reply.integer, 1);
}

TEST(RedisClient, ServesSeveralThreadsOnOneConnection) {
  RedisServer server;
  RedisClient client(url_of(server.url()), quick());
  constexpr int kThreads = 4;
  constexpr int kEach = 500;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string key = "t" + std::to_string(t);
        const Result r = client.command({"INCR", key});
        if (!r.ok() || r.reply.integer != i + 1) ++failures;  // each reply is this thread's own
      }
    });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t)
    EXPECT_EQ(client.command({"GET", "t" + std::to_string(t)}).reply.str, std::to_string(kEach));
}

}  // namespace
}  // namespace tlsp::redis
