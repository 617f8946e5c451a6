// decide_test.cpp — `tlsp decide`, the engine's JSON Lines interface, run as
// the real binary: one output line per input line, in order, the schema of
// docs/engine.md, errors naming the line and the key, and hostile lines
// (huge, deep, out-of-range numbers, NUL bytes) each answered with an error
// while the stream goes on.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "command.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace {

struct DecideRun {
  std::vector<std::string> lines;
  std::string err;
  int code = -1;
};

// Runs `tlsp decide` on `input` under a time limit and (except under ASan,
// which reserves terabytes of address space) a 1 GiB address-space limit,
// so a runaway line fails the test instead of taking the machine down.
DecideRun decide(const std::string& input) {
  tlsp::testing_support::TempDir tmp("tlsp-decide");
  const fs::path dir = tmp.path();
  std::ofstream(dir / "in.jsonl", std::ios::binary) << input;
#if TLSP_TEST_UNDER_ASAN
  const std::string limits = "";
#else
  const std::string limits = "ulimit -v 1048576; ";
#endif
  const std::string cmd = "(" + limits + "exec timeout 60 '" TLSP_BINARY "' decide < '" + (dir / "in.jsonl").string() +
                          "' 2>'" + (dir / "err").string() + "')";
  const tlsp::testing_support::CommandRun run = tlsp::testing_support::run_shell(cmd);
  DecideRun r;
  r.code = run.code;
  std::istringstream ss(run.out);
  for (std::string line; std::getline(ss, line);) r.lines.push_back(line);
  std::ifstream e(dir / "err");
  r.err.assign(std::istreambuf_iterator<char>(e), std::istreambuf_iterator<char>());
  return r;
}

TEST(Decide, AnswersEachLineInOrder) {
  DecideRun r = decide(
      R"({"direction":"outbound","level":"dane","min_tls":"tls1.2","starttls":true,"peer_tls":["tls1.0","tls1.1","tls1.2","tls1.3"],"cert":"valid","mx_dnssec":"secure","tlsa":{"dnssec":"secure","records":["dane-ee-match"]}})"
      "\n"
      R"({"level":"mandatory","starttls":false})"
      "\n\n"
      R"({"direction":"inbound","level":"mandatory","min_tls":"tls1.2","starttls":true,"peer_tls":["tls1.1"]})"
      "\n"
      R"({"level":"mta-sts","starttls":true,"peer_tls":["tls1.3"],"cert":"valid","sts":{"txt":true,"fetch":"timeout","mode":"none","mx_match":true,"cached":null}})"
      "\n");
  EXPECT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(r.lines.size(), 4u);
  EXPECT_EQ(r.lines[0],
            R"({"outcome":"deliver","channel":"authenticated","applied":"dane","tls":"tls1.3","reason":"ok","last_resort":false})");
  EXPECT_EQ(r.lines[1],
            R"({"outcome":"refuse","channel":"none","applied":"mandatory","tls":"none","reason":"starttls-not-supported","last_resort":false})");
  EXPECT_EQ(r.lines[2],
            R"({"outcome":"refuse","channel":"none","applied":"mandatory","tls":"none","reason":"tls-version-too-low","last_resort":false})");
  auto j = nlohmann::json::parse(r.lines[3]);
  EXPECT_EQ(j["outcome"], "downgrade");
  EXPECT_EQ(j["applied"], "opportunistic");
  EXPECT_EQ(j["reason"], "sts-policy-fetch-error");
}

// Issue 10: `tlsp decide` left `last_resort` out (simulate had it): an
// opportunistic host whose handshake fails gives plaintext that may be used
// only when no other MX host delivers (SPEC §4), and a caller of the
// machine interface must be told so.
TEST(Decide, ThePlaintextRetryOfABrokenHandshakeIsMarkedLastResort) {
  DecideRun r = decide(R"({"level":"opportunistic","starttls":true,"peer_tls":[]})"
                        "\n"
                        R"({"level":"opportunistic","starttls":false})"
                        "\n");
  EXPECT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(r.lines.size(), 2u);
  EXPECT_EQ(r.lines[0],
            R"({"outcome":"deliver","channel":"plaintext","applied":"opportunistic","tls":"none","reason":"tls-handshake-failure","last_resort":true})");
  EXPECT_EQ(r.lines[1],
            R"({"outcome":"deliver","channel":"plaintext","applied":"opportunistic","tls":"none","reason":"starttls-not-supported","last_resort":false})");
}

TEST(Decide, BadLinesNameTheLineAndKey) {
  DecideRun r = decide(R"({"level":"mandatory","starttls":true})"
                 "\n"
                 R"({"level":"mandatory","colour":"blue"})"
                 "\n"
                 R"({"level":"mandatory","cert":"dodgy"})"
                 "\n"
                 R"({"level":"dane","sts":{"txt":true,"fetched":"ok"}})"
                 "\n"
                 "not json\n"
                 R"({"direction":"inbound","level":"dane"})"
                 "\n");
  EXPECT_EQ(r.code, 1);
  ASSERT_EQ(r.lines.size(), 6u);
  EXPECT_NE(r.lines[0].find("\"outcome\""), std::string::npos);
  EXPECT_NE(r.lines[1].find("<stdin>:2: error: unknown key `colour`"), std::string::npos) << r.lines[1];
  EXPECT_NE(r.lines[2].find("<stdin>:3: error: unknown value `dodgy` for key `cert`"), std::string::npos) << r.lines[2];
  EXPECT_NE(r.lines[3].find("unknown key `sts.fetched`"), std::string::npos) << r.lines[3];
  EXPECT_NE(r.lines[4].find("<stdin>:5: error: not valid JSON"), std::string::npos) << r.lines[4];
  EXPECT_NE(r.lines[5].find("outbound only"), std::string::npos) << r.lines[5];
  EXPECT_NE(r.err.find("<stdin>:2: error: unknown key `colour`"), std::string::npos);
}

// Every hostile line below is followed by a good one, which must still be
// answered: a bad line is that line's error, never the run's.
const std::string kGoodLine = R"({"level":"mandatory","starttls":true})";
const std::string kGoodAnswer =
    R"({"outcome":"deliver","channel":"encrypted","applied":"mandatory","tls":"tls1.3","reason":"ok","last_resort":false})";

// The error answer of each of `bad` lines, each followed by kGoodLine.
std::vector<std::string> errors_of(const std::vector<std::string>& bad) {
  std::string input;
  for (const auto& b : bad) input += b + "\n" + kGoodLine + "\n";
  DecideRun r = decide(input);
  EXPECT_EQ(r.code, 1) << r.err.substr(0, 2000);
  EXPECT_EQ(r.lines.size(), 2 * bad.size()) << r.err.substr(0, 2000);
  std::vector<std::string> out;
  for (size_t i = 0; i + 1 < r.lines.size(); i += 2) {
    EXPECT_EQ(r.lines[i + 1], kGoodAnswer) << "after line " << i + 1;
    auto j = nlohmann::json::parse(r.lines[i], nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("error")) << r.lines[i].substr(0, 300);
    out.push_back(j.is_object() && j.contains("error") ? j["error"].get<std::string>() : r.lines[i]);
  }
  return out;
}

TEST(Decide, NumbersOutOfRangeAreThatLinesError) {
  auto e = errors_of({R"({"level":"mandatory","starttls":1e99999})", R"({"level":"mandatory","starttls":-1e99999})",
                      R"({"level":"mandatory","starttls":123456789012345678901234567890})",
                      R"({"level":"mandatory","peer_tls":[1e400]})"});
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0], "<stdin>:1: error: not valid JSON: a number is out of range");
  EXPECT_EQ(e[1], "<stdin>:3: error: not valid JSON: a number is out of range");
  EXPECT_EQ(e[2], "<stdin>:5: error: key `starttls` must be true or false");
  EXPECT_EQ(e[3], "<stdin>:7: error: not valid JSON: a number is out of range");
}

TEST(Decide, AHugeLineIsCutAtTheLimit) {
  // 8 MiB without a line break: read and dropped past 64 KiB, not held.
  const std::string huge = R"({"level":")" + std::string(8u << 20, 'a') + R"("})";
  auto e = errors_of({huge, std::string(70000, ' ') + "{}"});
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0], "<stdin>:1: error: the line is longer than 65536 bytes");
  EXPECT_EQ(e[1], "<stdin>:3: error: the line is longer than 65536 bytes");
}

TEST(Decide, DeepNestingStopsAtTheDepthLimit) {
  std::string deep_objects;
  for (int i = 0; i < 20; ++i) deep_objects += R"({"tlsa":)";
  deep_objects += "1" + std::string(20, '}');
  auto e = errors_of({std::string(30000, '[') + std::string(30000, ']'), std::string(60000, '['), deep_objects,
                      R"({"tlsa":{"records":[["dane-ee-match"]]}})"});
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0], "<stdin>:1: error: nested deeper than 8 levels");
  EXPECT_EQ(e[1], "<stdin>:3: error: nested deeper than 8 levels");
  EXPECT_EQ(e[2], "<stdin>:5: error: nested deeper than 8 levels");
  EXPECT_EQ(e[3], "<stdin>:7: error: key `tlsa.records` must be a string");
}

TEST(Decide, NulBytesAndInvalidUtf8) {
  auto e = errors_of({std::string(R"({"level":"mandatory"})") + '\0' + "junk", std::string("{\"level\":\"\xff\"}"),
                      R"({"level":"mandatory","x\u0000y":1})", "\x01\x02", "7",
                      R"({"cert":")" + std::string(1000, 'b') + R"("})"});
  ASSERT_EQ(e.size(), 6u);
  EXPECT_EQ(e[0], "<stdin>:1: error: not valid JSON: a NUL byte");
  EXPECT_EQ(e[1], "<stdin>:3: error: not valid JSON");
  EXPECT_EQ(e[2], "<stdin>:5: error: unknown key `x\\x00y`");
  EXPECT_EQ(e[3], "<stdin>:7: error: not valid JSON");
  EXPECT_EQ(e[4], "<stdin>:9: error: a line must be a JSON object");
  EXPECT_EQ(e[5], "<stdin>:11: error: unknown value `" + std::string(80, 'b') + "...` for key `cert`");
}

}  // namespace
