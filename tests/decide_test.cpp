// decide_test.cpp — `tlsp decide`, the engine's JSON Lines interface, run as
// the real binary: one output line per input line, in order, the schema of
// docs/engine.md, errors naming the line and the key.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace fs = std::filesystem;

namespace {

struct CommandRun {
  std::vector<std::string> lines;
  std::string err;
  int code = -1;
};

CommandRun decide(const std::string& input) {
  fs::path dir = fs::temp_directory_path() / ("tlsp-decide-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "in.jsonl") << input;
  std::string cmd = "'" TLSP_BINARY "' decide < '" + (dir / "in.jsonl").string() + "' 2>'" + (dir / "err").string() + "'";
  CommandRun r;
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::istringstream ss(out);
  for (std::string line; std::getline(ss, line);) r.lines.push_back(line);
  std::ifstream e(dir / "err");
  r.err.assign(std::istreambuf_iterator<char>(e), std::istreambuf_iterator<char>());
  fs::remove_all(dir);
  return r;
}

TEST(Decide, AnswersEachLineInOrder) {
  CommandRun r = decide(
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
            R"({"outcome":"deliver","channel":"authenticated","applied":"dane","tls":"tls1.3","reason":"ok"})");
  EXPECT_EQ(r.lines[1],
            R"({"outcome":"refuse","channel":"none","applied":"mandatory","tls":"none","reason":"starttls-not-supported"})");
  EXPECT_EQ(r.lines[2],
            R"({"outcome":"refuse","channel":"none","applied":"mandatory","tls":"none","reason":"tls-version-too-low"})");
  auto j = nlohmann::json::parse(r.lines[3]);
  EXPECT_EQ(j["outcome"], "downgrade");
  EXPECT_EQ(j["applied"], "opportunistic");
  EXPECT_EQ(j["reason"], "sts-policy-fetch-error");
}

TEST(Decide, BadLinesNameTheLineAndKey) {
  CommandRun r = decide(R"({"level":"mandatory","starttls":true})"
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

}  // namespace
