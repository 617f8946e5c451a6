// The relay's SMTP server through its public seam (tlsp/smtp_server.h), the
// one the SMTP fuzz target drives: a session over a socket pair spools the
// message and hands it on; a mandatory-TLS sender is refused without TLS.
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tables.h"
#include "test_support.h"
#include "tlsp/decision_table.h"
#include "tlsp/smtp_server.h"
#include "tlsp/stream.h"

namespace {

using namespace tlsp;
using namespace std::chrono_literals;

std::shared_ptr<const DecisionTable> table() { return testing_support::acme_inbound_mandatory_table("seam"); }

// Sends each command, returns the first line of each reply (the greeting first).
std::vector<std::string> dialogue(SmtpServer& server, const std::vector<std::string>& commands) {
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  std::thread session([&server, fd = fds[0]] { server.serve(fd); });
  auto client = std::make_unique<Stream>(fds[1]);
  client->set_timeout(10s);
  std::vector<std::string> replies;
  auto reply = [&] {
    std::string line, first;
    do {
      if (client->read_line(line, 4096) != IoStatus::ok) return std::string("(closed)");
      if (first.empty()) first = line;
    } while (line.size() > 3 && line[3] == '-');
    return first;
  };
  replies.push_back(reply());
  for (const std::string& c : commands) {
    client->write_all(c + "\r\n");
    replies.push_back(reply());
  }
  client.reset();  // the client leaves after the 221
  session.join();
  return replies;
}

TEST(SmtpServerSeam, ASessionSpoolsAndHandsOnTheMessage) {
  tlsp::testing_support::TempDir dir;
  RelayConfig config;
  config.hostname = "seam.test";
  config.spool_dir = dir.path() + "/spool";
  config.log_file = dir.path() + "/relay.log";
  config.next_hops.push_back({"acme.example", "127.0.0.1", 2525, ""});
  std::mutex mu;
  std::vector<QueueEntry> spooled;
  SmtpServer server(config, table(), [&](std::vector<QueueEntry> e) {
    std::lock_guard lock(mu);
    for (auto& x : e) spooled.push_back(std::move(x));
  });
  auto r = dialogue(server, {"EHLO client.example", "MAIL FROM:<bob@other.example>", "RCPT TO:<alice@acme.example>",
                             "DATA", "Subject: hi\r\n\r\nhello\r\n.", "QUIT"});
  ASSERT_EQ(r.size(), 7u);
  EXPECT_EQ(r[0].substr(0, 3), "220") << r[0];
  EXPECT_NE(r[0].find("seam.test"), std::string::npos) << r[0];
  EXPECT_EQ(r[3].substr(0, 3), "250") << r[3];
  EXPECT_EQ(r[4].substr(0, 3), "354") << r[4];
  EXPECT_EQ(r[5].substr(0, 3), "250") << r[5];
  EXPECT_EQ(r[6].substr(0, 3), "221") << r[6];
  std::lock_guard lock(mu);
  ASSERT_EQ(spooled.size(), 1u);
  EXPECT_EQ(spooled[0].mail_from, "bob@other.example");
  EXPECT_EQ(spooled[0].recipients, std::vector<std::string>{"alice@acme.example"});
  EXPECT_EQ(spooled[0].direction, Direction::inbound);
}

TEST(SmtpServerSeam, AMandatoryTlsSenderIsRefusedWithoutTls) {
  tlsp::testing_support::TempDir dir;
  RelayConfig config;
  config.spool_dir = dir.path() + "/spool";
  config.log_file = dir.path() + "/relay.log";
  config.next_hops.push_back({"acme.example", "127.0.0.1", 2525, ""});
  size_t spooled = 0;
  SmtpServer server(config, table(), [&](std::vector<QueueEntry> e) { spooled += e.size(); });
  auto r = dialogue(server, {"EHLO client.example", "MAIL FROM:<bob@partner.example>", "RCPT TO:<alice@acme.example>",
                             "QUIT"});
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[3][0], '5') << r[3];  // the recipient is refused: partner.example must use TLS
  EXPECT_EQ(spooled, 0u);
}

TEST(SmtpServerSeam, ABadConfigurationIsRefused) {
  RelayConfig config;  // no spool
  EXPECT_THROW(SmtpServer(config, table()), std::invalid_argument);
  config.spool_dir = "/nonexistent/spool";
  EXPECT_THROW(SmtpServer(config, nullptr), std::invalid_argument);
}

}  // namespace
