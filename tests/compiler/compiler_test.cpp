// compiler_test.cpp — the policy compiler through its public interface:
// parsing, every diagnostic code, inheritance, disabled entries, includes,
// precedence as seen through a compiled table, determinism, and robustness
// against mangled input and hostile files (special files, huge files and
// patterns, control characters, files that are not policies).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "test_support.h"
#include "tlsp/compiler.h"
#include "tlsp/decision_table.h"

namespace fs = std::filesystem;
using namespace tlsp;

namespace {

// Each TempDir here is named tlsp-compiler-XXXXXX; path() as an fs::path.
class TempDir : public tlsp::testing_support::TempDir {
 public:
  TempDir() : tlsp::testing_support::TempDir("tlsp-compiler") {}
  fs::path path() const { return tlsp::testing_support::TempDir::path(); }
};

CompileResult compile_text(const std::string& text, unsigned threads = 2) {
  TempDir dir;
  CompileOptions o;
  o.inputs = {dir.write("main.tlsp", text)};
  o.threads = threads;
  return compile(o);
}

std::multiset<std::string> codes(const CompileResult& r) {
  std::multiset<std::string> out;
  for (const auto& d : r.diagnostics) out.insert(d.code);
  return out;
}

const char* kHeader = "policy \"t\" version \"1\";\n";
const char* kDefault =
    "default domain { outbound { default peer { level opportunistic; } } inbound { default peer { level "
    "opportunistic; } } }\n";

std::string policy(const std::string& body) { return std::string(kHeader) + kDefault + body; }

// ------------------------------------------------------------- parsing

TEST(Compiler, ExampleCompilesCleanly) {
  CompileOptions o;
  o.inputs = {TLSP_SOURCE_DIR "/policies/example.tlsp"};
  CompileResult r = compile(o);
  ASSERT_TRUE(r.table.has_value()) << render_diagnostics(r);
  EXPECT_EQ(r.error_count, 0u);
  EXPECT_EQ(r.warning_count, 0u) << render_diagnostics(r);
  EXPECT_EQ(r.table->policy_name, "acme-gateway");
  EXPECT_EQ(r.table->policy_version, "2026.11.28-1");
  ASSERT_EQ(r.table->sources.size(), 2u);
  EXPECT_EQ(r.table->sources[0].path, "example.tlsp");
  EXPECT_EQ(r.table->sources[1].path, "tenants/globex.tlsp");
  std::set<std::string> names;
  for (const auto& d : r.table->domains) names.insert(d.name);
  EXPECT_EQ(names, (std::set<std::string>{"acme.example", "acme-mail.example", "globex.example"}));
}

TEST(Compiler, CommentsAndEmptyBlocks) {
  auto r = compile_text(policy("/* block\n comment */ // line\n# hash\ndomain \"a.example\" { outbound { } }\n"));
  ASSERT_TRUE(r.table) << render_diagnostics(r);
  EXPECT_EQ(r.table->domains.size(), 1u);
}

TEST(Compiler, EveryDiagnosticCode) {
  struct Case {
    std::string body;
    std::string code;
  };
  const std::vector<Case> cases = {
      {"domain \"a.example\" { outbound { default peer { level mandatory } } }", "E0101"},
      {"domain \"a.example\" { outbond { } }", "E0100"},
      {"domain \"a.example { }", "E0102"},
      {"domain \"a.example\" { outbound { peer \"b.example\" { level = mandatory; } } }", "E0100"},
      {"domain \"a.example\" { } domain \"A.example.\" { }", "E0201"},
      {"domain \"a.example\" { outbound { peer \"b.example\" { } peer \"B.example\" { } } }", "E0202"},
      {"domain \"a.example\" { outbound { default peer { } default peer { } } }", "E0203"},
      {"domain \"a.example\" { outbound { } outbound { } }", "E0204"},
      {"default domain { }", "E0205"},
      {"domain \"a_b.example\" { }", "E0206"},
      {"domain \"a.example\" { inbound { peer \"300.1.1.1\" { } } }", "E0207"},
      {"domain \"a.example\" { inbound { peer \"10.1.0.0/8\" { } } }", "E0208"},
      {"domain \"a.example\" { outbound { peer \"10.0.0.0/8\" { } } }", "E0209"},
      {"domain \"a.example\" { inbound { peer \"b.example\" { level dane; } } }", "E0210"},
      {"domain \"*.a.example\" { }", "E0211"},
      {"domain \"a.example\" { outbound { peer \"b.example\" { lvl dane; } } }", "E0212"},
      {"domain \"a.example\" { outbound { peer \"b.example\" { level strict; } } }", "E0213"},
      {"domain \"a.example\" { outbound { peer \"b.example\" { min_tls tls1.0; } } }", "E0214"},
      {"domain \"a.example\" { outbound { peer \"b.example\" { level dane; level dane; } } }", "E0215"},
      {"policy \"x\" version \"2\";", "E0216"},
      {"include \"nothing-*.tlsp\";", "E0301"},
  };
  for (const auto& c : cases) {
    auto r = compile_text(policy(c.body + "\n"));
    EXPECT_FALSE(r.table) << c.body;
    EXPECT_EQ(codes(r).count(c.code), 1u) << c.body << "\n" << render_diagnostics(r);
    for (const auto& d : r.diagnostics) {
      EXPECT_TRUE(d.where.valid()) << c.body;
      EXPECT_EQ(d.where.line, 3u) << c.body << "\n" << render_diagnostics(r);
    }
  }
}

// IDNA (libidn2): an `xn--` label must be a valid A-label; a U-label name
// is refused with its A-label form as the advice, wildcard kept.
TEST(Compiler, IdnaNames) {
  for (const char* bad : {"xn--a.example", "xn--ab-9.example", "xn--ls8h.example"}) {
    auto r = compile_text(policy(std::string("domain \"") + bad + "\" { }\n"));
    EXPECT_FALSE(r.table) << bad;
    ASSERT_EQ(r.diagnostics.size(), 1u) << bad << "\n" << render_diagnostics(r);
    EXPECT_EQ(r.diagnostics[0].code, "E0206");
    EXPECT_NE(r.diagnostics[0].message.find("is not a valid IDNA A-label"), std::string::npos)
        << r.diagnostics[0].message;
  }
  auto ulabel = compile_text(policy("domain \"b\xc3\xbc" "cher.example\" { outbound {\n"
                                    "  peer \"*.\xc3\xb1" "aca.example\" { level mandatory; } } }\n"));
  ASSERT_EQ(ulabel.diagnostics.size(), 2u) << render_diagnostics(ulabel);
  EXPECT_EQ(ulabel.diagnostics[0].help, "did you mean `xn--bcher-kva.example`?");
  EXPECT_EQ(ulabel.diagnostics[1].help, "did you mean `*.xn--aca-6ma.example`?");
  auto alabel = compile_text(policy("domain \"XN--BCHER-KVA.example\" { }\n"));
  ASSERT_TRUE(alabel.table) << render_diagnostics(alabel);
  ASSERT_EQ(alabel.table->domains.size(), 1u);
  EXPECT_EQ(alabel.table->domains[0].name, "xn--bcher-kva.example");
}

TEST(Compiler, EmptyPolicyNameIsAnError) {
  auto r = compile_text(std::string("policy \"\" version \"\";\n") + kDefault);
  EXPECT_EQ(codes(r).count("E0217"), 2u);
}

TEST(Compiler, WarningsDoNotFailUnlessWerror) {
  const std::string text = std::string(kHeader) +
                           "domain \"a.example\" { outbound { default peer { level mandatory; }\n"
                           "  peer \"same.example\" { level mandatory; } } }\n"
                           "domain \"old.example\" disabled { outbound { peer \"p.example\" { level dane; } } }\n";
  auto r = compile_text(text);
  ASSERT_TRUE(r.table) << render_diagnostics(r);
  EXPECT_EQ(codes(r), (std::multiset<std::string>{"W0401", "W0402", "W0403"}));
  TempDir dir;
  CompileOptions o;
  o.inputs = {dir.write("w.tlsp", text)};
  o.werror = true;
  auto strict = compile(o);
  EXPECT_FALSE(strict.table);
  EXPECT_EQ(strict.error_count, 3u);
}

TEST(Compiler, MissingHeaderWarnsAndNamesTableAfterFile) {
  auto r = compile_text(kDefault);
  ASSERT_TRUE(r.table);
  EXPECT_EQ(codes(r).count("W0404"), 1u);
  EXPECT_EQ(r.table->policy_name, "main");
}

TEST(Compiler, ManyErrorsInOneRunAreAllReported) {
  std::string body;
  for (int i = 0; i < 30; ++i) body += "domain \"bad_" + std::to_string(i) + ".example\" { }\n";
  auto r = compile_text(policy(body));
  EXPECT_EQ(r.error_count, 30u);
  EXPECT_FALSE(r.truncated);
  std::string many;
  for (int i = 0; i < 150; ++i) many += "domain \"bad_" + std::to_string(i) + ".example\" { }\n";
  auto capped = compile_text(policy(many));
  EXPECT_EQ(capped.error_count, 100u);
  EXPECT_TRUE(capped.truncated);
}

TEST(Compiler, UnreadableInputIsAnInputError) {
  CompileOptions o;
  o.inputs = {"/nonexistent/policy.tlsp"};
  auto r = compile(o);
  EXPECT_TRUE(r.input_error);
  EXPECT_FALSE(r.table);
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].code, "E0303");
}

// --------------------------------------------------------- inheritance

TEST(Compiler, InheritanceChainAndProvenance) {
  const std::string text =
      "policy \"t\" version \"1\";\n"                                               // 1
      "default domain {\n"                                                          // 2
      "  outbound { default peer { level mandatory; min_tls tls1.2; } }\n"          // 3
      "}\n"                                                                         // 4
      "domain \"a.example\" {\n"                                                    // 5
      "  outbound {\n"                                                              // 6
      "    default peer { level dane; }\n"                                          // 7
      "    peer \"p.example\" { level dane-only; }\n"                              // 8
      "    peer \"q.example\" { min_tls tls1.3; }\n"                               // 9
      "  }\n"                                                                       // 10
      "}\n"                                                                         // 11
      "domain \"b.example\" { }\n";                                                 // 12
  auto r = compile_text(text);
  ASSERT_TRUE(r.table) << render_diagnostics(r);
  canonicalize(*r.table);
  const auto& dd = r.table->default_domain.dir(Direction::outbound).default_peer;
  EXPECT_EQ(dd.level, Level::mandatory);
  EXPECT_EQ(dd.min_tls, MinTls::tls1_2);
  EXPECT_EQ(dd.origin.line, 3u);
  // Inbound has no block anywhere: built-in defaults.
  const auto& in = r.table->default_domain.dir(Direction::inbound).default_peer;
  EXPECT_EQ(in.level, Level::opportunistic);
  EXPECT_EQ(in.min_tls, MinTls::any);
  EXPECT_TRUE(in.origin.builtin());
  EXPECT_TRUE(in.level_from.builtin());

  const DomainRules* a = nullptr;
  const DomainRules* b = nullptr;
  for (const auto& d : r.table->domains) (d.name == "a.example" ? a : b) = &d;
  ASSERT_TRUE(a && b);
  const auto& adef = a->dir(Direction::outbound).default_peer;
  EXPECT_EQ(adef.level, Level::dane);
  EXPECT_EQ(adef.level_from.line, 7u);
  EXPECT_EQ(adef.min_tls, MinTls::tls1_2);  // from the default domain
  EXPECT_EQ(adef.min_tls_from.line, 3u);
  ASSERT_EQ(a->dir(Direction::outbound).peers.size(), 2u);
  for (const auto& p : a->dir(Direction::outbound).peers) {
    if (p.name == "p.example") {
      EXPECT_EQ(p.rule.level, Level::dane_only);
      EXPECT_EQ(p.rule.min_tls, MinTls::tls1_2);
      EXPECT_EQ(p.rule.origin.line, 8u);
      EXPECT_EQ(p.rule.min_tls_from.line, 3u);
    } else {
      EXPECT_EQ(p.name, "q.example");
      EXPECT_EQ(p.rule.level, Level::dane);  // from the list's default peer
      EXPECT_EQ(p.rule.level_from.line, 7u);
      EXPECT_EQ(p.rule.min_tls, MinTls::tls1_3);
    }
  }
  // b.example has no blocks: the default domain's default peer, per direction.
  EXPECT_EQ(b->dir(Direction::outbound).default_peer, dd);
  EXPECT_EQ(b->dir(Direction::inbound).default_peer, in);
}

TEST(Compiler, DisabledEntriesAreAsIfUnlisted) {
  auto r = compile_text(policy(
      "domain \"off.example\" disabled { outbound { default peer { level mandatory; } } }\n"
      "domain \"on.example\" { outbound { peer \"x.example\" disabled { level mandatory; }\n"
      "                                   peer \"y.example\" enabled { level mandatory; } } }\n"));
  ASSERT_TRUE(r.table) << render_diagnostics(r);
  ASSERT_EQ(r.table->domains.size(), 1u);
  EXPECT_EQ(r.table->domains[0].name, "on.example");
  ASSERT_EQ(r.table->domains[0].dir(Direction::outbound).peers.size(), 1u);
  EXPECT_EQ(r.table->domains[0].dir(Direction::outbound).peers[0].name, "y.example");
}

TEST(Compiler, SeveralNamesShareOneBlock) {
  auto r = compile_text(policy(
      "domain \"a.example\", \"B.Example.\" { outbound { peer \"p.example\", \"*.q.example\" { level dane; } } }\n"));
  ASSERT_TRUE(r.table) << render_diagnostics(r);
  ASSERT_EQ(r.table->domains.size(), 2u);
  for (const auto& d : r.table->domains) EXPECT_EQ(d.dir(Direction::outbound).peers.size(), 2u);
}

// ------------------------------------------------------------ includes

TEST(Compiler, IncludesGlobEachFileOnceInStableOrder) {
  TempDir dir;
  dir.write("t/b.tlsp", "domain \"b.example\" { }\n");
  dir.write("t/a.tlsp", "include \"*.tlsp\";\ndomain \"a.example\" { }\n");  // a glob skips its own file
  dir.write("t/c.txt", "not a policy");
  std::string root = dir.write("root.tlsp", policy("include \"t/*.tlsp\";\ninclude \"t/b.tlsp\";\n"));
  CompileOptions o;
  o.inputs = {root};
  auto r = compile(o);
  ASSERT_TRUE(r.table) << render_diagnostics(r);
  ASSERT_EQ(r.table->sources.size(), 3u);
  EXPECT_EQ(r.table->sources[1].path, "t/a.tlsp");
  EXPECT_EQ(r.table->sources[2].path, "t/b.tlsp");
  EXPECT_EQ(r.table->domains.size(), 2u);
}

TEST(Compiler, IncludeCycleIsAnError) {
  TempDir dir;
  dir.write("x.tlsp", "include \"y.tlsp\";\n");
  dir.write("y.tlsp", "include \"x.tlsp\";\n");
  std::string root = dir.write("root.tlsp", policy("include \"x.tlsp\";\n"));
  CompileOptions o;
  o.inputs = {root};
  auto r = compile(o);
  EXPECT_FALSE(r.table);
  EXPECT_EQ(codes(r).count("E0302"), 1u) << render_diagnostics(r);
}

TEST(Compiler, SelfIncludeIsACycle) {
  auto r = compile_text(policy("include \"main.tlsp\";\n"));
  EXPECT_EQ(codes(r).count("E0302"), 1u) << render_diagnostics(r);
}

TEST(Compiler, DiagnosticsGoThroughIncludes) {
  TempDir dir;
  dir.write("t/bad.tlsp", "domain \"x.example\" { outbound { peer \"10.0.0.0/8\" { } } }\n");
  std::string root = dir.write("root.tlsp", policy("include \"t/bad.tlsp\";\n"));
  CompileOptions o;
  o.inputs = {root};
  auto r = compile(o);
  ASSERT_EQ(r.diagnostics.size(), 1u) << render_diagnostics(r);
  EXPECT_EQ(r.sources[r.diagnostics[0].where.file].display_path, (dir.path() / "t/bad.tlsp").string());
  EXPECT_EQ(r.diagnostics[0].where.line, 1u);
  EXPECT_EQ(r.diagnostics[0].where.column, 38u);
}

// ----------------------------------------------- precedence via a table

TEST(Compiler, PrecedenceThroughCompiledTable) {
  auto r = compile_text(policy(
      "domain \"m.example\" {\n"
      "  outbound { default peer { level mandatory; }\n"
      "    peer \"a.b.example\" { level dane-only; }\n"
      "    peer \"*.b.example\" { level dane; }\n"
      "    peer \"*.example\" { level mta-sts; } }\n"
      "  inbound { peer \"10.0.0.0/8\" { level mandatory; }\n"
      "    peer \"10.1.0.0/16\" { level mandatory; min_tls tls1.3; }\n"
      "    peer \"sender.example\" { level mandatory; min_tls tls1.2; } }\n"
      "}\n"));
  ASSERT_TRUE(r.table) << render_diagnostics(r);
  auto t = DecisionTable::from_bytes(encode_table(*r.table));
  EXPECT_EQ(t.lookup(Direction::outbound, "m.example", "a.b.example").level, Level::dane_only);
  EXPECT_EQ(t.lookup(Direction::outbound, "M.EXAMPLE.", "x.a.b.example").level, Level::dane);
  EXPECT_EQ(t.lookup(Direction::outbound, "m.example", "b.example").level, Level::mta_sts);
  EXPECT_EQ(t.lookup(Direction::outbound, "m.example", "other.org").level, Level::mandatory);
  EXPECT_EQ(t.lookup(Direction::outbound, "m.example", "other.org").match, MatchKind::default_peer);
  EXPECT_EQ(t.lookup(Direction::outbound, "n.example", "a.b.example").match, MatchKind::default_domain);
  EXPECT_EQ(t.lookup(Direction::inbound, "m.example", "10.1.2.3").min_tls, MinTls::tls1_3);
  EXPECT_EQ(t.lookup(Direction::inbound, "m.example", "10.2.2.3").min_tls, MinTls::any);
  EXPECT_EQ(t.lookup(Direction::inbound, "m.example", "10.2.2.3").match, MatchKind::cidr);
  EXPECT_EQ(t.lookup(Direction::inbound, "m.example", "Sender.Example").min_tls, MinTls::tls1_2);
}

// ---------------------------------------------------------- determinism

TEST(Compiler, SameSourcesGiveByteIdenticalTables) {
  TempDir dir;
  std::string body;
  for (int f = 0; f < 8; ++f) {
    std::string t;
    for (int d = 0; d < 50; ++d) {
      t += "domain \"d" + std::to_string(f * 100 + d) + ".example\" { outbound {\n";
      for (int p = 0; p < 5; ++p)
        t += "  peer \"p" + std::to_string(p) + ".example\" { level mandatory; min_tls tls1." +
             std::to_string(2 + p % 2) + "; }\n";
      t += "} }\n";
    }
    dir.write("inc/f" + std::to_string(f) + ".tlsp", t);
  }
  std::string root = dir.write("root.tlsp", policy("include \"inc/*.tlsp\";\n"));
  std::string first;
  for (unsigned threads : {1u, 2u, 4u, 2u}) {
    CompileOptions o;
    o.inputs = {root};
    o.threads = threads;
    auto r = compile(o);
    ASSERT_TRUE(r.table) << render_diagnostics(r);
    std::string bytes = encode_table(*r.table);
    if (first.empty()) first = bytes;
    EXPECT_EQ(bytes, first) << "threads=" << threads;
  }
}

// ------------------------------------------------------------ robustness

// Mangled versions of the example (bytes deleted, duplicated, replaced)
// must give diagnostics, never a crash or a hang.
TEST(Compiler, MangledInputNeverCrashes) {
  std::ifstream in(TLSP_SOURCE_DIR "/policies/example.tlsp", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::mt19937 rng(12345);
  const std::string alphabet = "{};,\"*./# \n\tabz019-_\x80\xff";
  for (int i = 0; i < 300; ++i) {
    std::string t = text;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !t.empty(); ++e) {
      size_t pos = rng() % t.size();
      switch (rng() % 3) {
        case 0: t.erase(pos, 1 + rng() % 8); break;
        case 1: t.insert(pos, t.substr(pos, 1 + rng() % 16)); break;
        default: t[pos] = alphabet[rng() % alphabet.size()]; break;
      }
    }
    auto r = compile_text(t, 1);  // its include matches nothing here: one more error
    if (!r.table) {
      EXPECT_GT(r.error_count, 0u);
    }
    for (const auto& d : r.diagnostics) {
      (void)render_diagnostic(d, r.sources);
      if (d.severity == Severity::error) {
        EXPECT_FALSE(d.message.empty());
      }
    }
  }
}

// ------------------------------------------------------- hostile files
// Each of these hung, crashed, or echoed raw bytes before issue 9.

std::string rendered(const CompileResult& r) {
  return render_diagnostics(r);
}

TEST(HostileFiles, GlobMatchingASymlinkToDevZeroIsRefused) {
  TempDir dir;
  std::string root = dir.write("main.tlsp", policy("include \"inc/*.tlsp\";\n"));
  fs::create_directories(dir.path() / "inc");
  fs::create_symlink("/dev/zero", dir.path() / "inc" / "zero.tlsp");
  CompileOptions o;
  o.inputs = {root};
  auto r = compile(o);
  EXPECT_TRUE(r.input_error);
  EXPECT_EQ(codes(r).count("E0305"), 1u) << rendered(r);
  EXPECT_NE(rendered(r).find("it is a character device, not a regular file"), std::string::npos) << rendered(r);
  EXPECT_NE(rendered(r).find("main.tlsp:3:1: note: included here"), std::string::npos) << rendered(r);
}

TEST(HostileFiles, IncludeOfAFifoIsRefusedWithoutBlocking) {
  TempDir dir;
  std::string root = dir.write("main.tlsp", policy("include \"pipe.tlsp\";\n"));
  ASSERT_EQ(mkfifo((dir.path() / "pipe.tlsp").c_str(), 0600), 0);
  CompileOptions o;
  o.inputs = {root};
  auto r = compile(o);
  EXPECT_TRUE(r.input_error);
  EXPECT_EQ(codes(r).count("E0305"), 1u) << rendered(r);
  // A FIFO given as a root is refused the same way.
  o.inputs = {(dir.path() / "pipe.tlsp").string()};
  EXPECT_EQ(codes(compile(o)).count("E0305"), 1u);
}

TEST(HostileFiles, IncludeOfASocketIsRefused) {
  TempDir dir;
  std::string root = dir.write("main.tlsp", policy("include \"sock.tlsp\";\n"));
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = (dir.path() / "sock.tlsp").string();
  ASSERT_LT(path.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  CompileOptions o;
  o.inputs = {root};
  auto r = compile(o);
  close(s);
  EXPECT_EQ(codes(r).count("E0305"), 1u) << rendered(r);
  EXPECT_NE(rendered(r).find("it is a socket, not a regular file"), std::string::npos) << rendered(r);
}

TEST(HostileFiles, FileLargerThanTheLimitIsRefused) {
  TempDir dir;
  std::string big = policy("") + "#" + std::string(8u << 20, 'x') + "\n";
  CompileOptions o;
  o.inputs = {dir.write("big.tlsp", big)};
  auto r = compile(o);
  EXPECT_TRUE(r.input_error);
  EXPECT_EQ(codes(r), (std::multiset<std::string>{"E0306"})) << rendered(r);
  EXPECT_NE(rendered(r).find("larger than the limit of 8 MiB"), std::string::npos) << rendered(r);
}

TEST(HostileFiles, TooManyFilesIsOneDiagnostic) {
  TempDir dir;
  std::string root = dir.write("main.tlsp", policy("include \"inc/*.tlsp\";\n"));
  fs::create_directories(dir.path() / "inc");
  for (int i = 0; i < 10000; ++i)  // with the root: one more than kMaxPolicyFiles
    std::ofstream(dir.path() / "inc" / ("f" + std::to_string(i) + ".tlsp")) << "# empty\n";
  CompileOptions o;
  o.inputs = {root};
  o.threads = 2;
  auto r = compile(o);
  EXPECT_FALSE(r.table);
  EXPECT_EQ(codes(r), (std::multiset<std::string>{"E0308"})) << rendered(r);
}

TEST(HostileFiles, IncludePatternsAreBounded) {
  // ~3,000 `*/` overflowed glob(3)'s recursion (SIGSEGV).
  std::string deep;
  for (int i = 0; i < 3000; ++i) deep += "*/";
  auto r = compile_text(policy("include \"" + deep + "x.tlsp\";\n"));
  EXPECT_EQ(codes(r).count("E0307"), 1u) << rendered(r);
  // Under the length limit, many components are walked without recursion.
  std::string many;
  for (int i = 0; i < 500; ++i) many += "*/";
  auto m = compile_text(policy("include \"" + many + "x.tlsp\";\n"));
  EXPECT_EQ(codes(m).count("E0301"), 1u) << rendered(m);
}

TEST(HostileFiles, LeadingByteOrderMarkIsAccepted) {
  auto r = compile_text("\xEF\xBB\xBF" + policy("domain \"a.example\" { }\n"));
  EXPECT_TRUE(r.table) << rendered(r);
  EXPECT_EQ(r.error_count, 0u);
  // Columns on line 1 count from after it.
  auto e = compile_text("\xEF\xBB\xBF}");
  ASSERT_FALSE(e.diagnostics.empty());
  EXPECT_EQ(e.diagnostics[0].where.column, 1u) << rendered(e);
}

TEST(HostileFiles, ControlCharactersAreEscapedInDiagnostics) {
  auto r = compile_text(policy("domain \"a\x1b[2Jb.example\" { " + std::string(1, '\0') + " }\n" +
                               "domain \"c\xe2\x80\xae.example\" { }\n"));
  const std::string out = rendered(r);
  for (unsigned char c : out) EXPECT_TRUE(c >= 0x20 || c == '\n' || c == '\t') << "raw byte " << int(c) << "\n" << out;
  EXPECT_NE(out.find("\\x00"), std::string::npos) << out;
  EXPECT_NE(out.find("\\x1b[2J"), std::string::npos) << out;
  EXPECT_EQ(out.find("\xe2\x80\xae"), std::string::npos) << out;
  // Escapes are wider than the character: the caret still points at it.
  EXPECT_NE(out.find("{ \\x00 }\n     | " + std::string(29, ' ') + "^~~~\n"), std::string::npos) << out;
}

TEST(HostileFiles, QuotedTextAndExcerptsAreCapped) {
  std::string body = "domain \"a.example\" { outbound { peer \"b.example\" { ";
  for (int i = 0; i < 100000; ++i) body += "level mandatory; ";
  body += "level " + std::string(100000, 'x') + " } } }\n";
  auto r = compile_text(policy(body));
  ASSERT_EQ(r.error_count, 1u) << rendered(r).substr(0, 2000);
  const std::string out = rendered(r);
  EXPECT_LT(out.size(), 2000u) << out.substr(0, 2000);
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) EXPECT_LT(line.size(), 400u) << line.substr(0, 400);
}

TEST(HostileFiles, NonPolicyFileStopsAfterAFewErrors) {
  TempDir dir;
  std::string root = dir.write("main.tlsp", policy("include \"other.conf\";\n"));
  std::string conf;
  for (int i = 0; i < 50; ++i) conf += "domain: d" + std::to_string(i) + ".example\ndefault: mandatory\n";
  dir.write("other.conf", conf);
  CompileOptions o;
  o.inputs = {root};
  auto r = compile(o);
  EXPECT_EQ(r.error_count, 3u) << rendered(r);
  EXPECT_NE(rendered(r).find("note: this does not look like a tlsp policy file"), std::string::npos) << rendered(r);
}

TEST(HostileFiles, PolicyWithManySyntaxErrorsIsCappedPerFile) {
  std::string body;
  for (int i = 0; i < 50; ++i) body += "domain \"d" + std::to_string(i) + ".example\" { outbound { peer x { } } }\n";
  auto r = compile_text(policy(body));
  EXPECT_EQ(r.error_count, 20u) << rendered(r);
  EXPECT_NE(rendered(r).find("further syntax errors in this file are not reported"), std::string::npos);
  // An error in the first statement does not make a file "not a policy".
  auto t = compile_text("policy \"x\" versoin \"1\";\ndomain \"a.example\" { }\n" + body.substr(0, 400));
  EXPECT_GT(t.error_count, 3u) << rendered(t);
  EXPECT_EQ(rendered(t).find("does not look like"), std::string::npos) << rendered(t);
}

// The parser is linear: inputs that were quadratic (unclosed `/*`, each
// scanned to the end of the file) or deep take well under the bound.
TEST(HostileFiles, ParsingIsLinear) {
  auto took = [](const std::string& text) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = compile_text(text, 1);
    EXPECT_GT(r.error_count + r.warning_count, 0u);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::string comments, also_error, quotes(400001, '"'), braces(400000, '{');
  for (int i = 0; i < 40000; ++i) comments += "/* ";
  for (int i = 0; i < 40000; ++i) also_error += "} /* ";
  EXPECT_LT(took(policy(comments)), 20.0);
  EXPECT_LT(took(policy(also_error)), 20.0);
  EXPECT_LT(took(policy(quotes)), 20.0);
  EXPECT_LT(took(policy(braces)), 20.0);
}

}  // namespace
