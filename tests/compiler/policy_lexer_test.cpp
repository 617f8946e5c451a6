// policy_lexer_test.cpp — the hand-written lexer that feeds the parser must
// produce exactly the tokens of the lexer ANTLR generates from
// grammar/TlsPolicy.g4 (type, code-point start/stop, line, column), on every
// shipped policy and on many mangled and random inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "parse.h"
#include "policy_lexer.h"

namespace fs = std::filesystem;
using namespace tlsp;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void expect_same_tokens(const std::string& text, const std::string& what) {
  if (find_invalid_utf8(text) != std::string_view::npos) return;  // never lexed
  auto reference = lex_with_generated_lexer(text);
  auto fast = lex_with_policy_lexer(text);
  ASSERT_EQ(fast.size(), reference.size()) << what;
  for (size_t i = 0; i < fast.size(); ++i) ASSERT_EQ(fast[i], reference[i]) << what << " token " << i;
}

std::vector<fs::path> shipped_policies() {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(TLSP_SOURCE_DIR "/policies"))
    if (e.is_regular_file() && e.path().extension() == ".tlsp") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(PolicyLexer, SameTokensOnShippedPolicies) {
  auto files = shipped_policies();
  ASSERT_GE(files.size(), 10u);
  for (const auto& f : files) expect_same_tokens(slurp(f), f.string());
}

TEST(PolicyLexer, SameTokensOnEdgeCases) {
  const std::vector<std::string> cases = {
      "",
      "policy policyx policy.x default-peer _x x_ a.b-c.d",
      "\"unterminated\n\"ok\" \"\" \"a\rb\"",
      "/* block */ /* never closed",
      "/*/ */ //x\r\n# y\n/ * /",
      "\t\f\r\n  {};,",
      "ü \"bücher\" é€𝄞 @ = ! \\",
      "version include enabled disabled outbound inbound peer domain",
      "peer\"x\"{level mandatory;}",
      "9abc -x .y",
  };
  for (const auto& c : cases) expect_same_tokens(c, c);
}

TEST(PolicyLexer, SameTokensOnMangledPolicies) {
  std::string base = slurp(TLSP_SOURCE_DIR "/policies/example.tlsp");
  const std::string alphabet = "{};,\"*./#\\ \n\r\t\fabzAZ_019-üé@";
  std::mt19937 rng(2026);
  for (int i = 0; i < 400; ++i) {
    std::string t = base;
    for (int e = 0; e < 6; ++e) {
      size_t pos = rng() % (t.size() + 1);
      size_t len = 1 + rng() % 3;
      t.insert(pos, alphabet.substr(rng() % (alphabet.size() - len), len));
    }
    expect_same_tokens(t, "mangled #" + std::to_string(i));
  }
}

}  // namespace
