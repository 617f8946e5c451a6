// policy_parser_fuzz.cpp — libFuzzer target for the policy parse module
// (the hand lexer, the ANTLR parser, the error path) and the file-local
// checks: any bytes must give an AST or diagnostics, never a crash.
//   cmake -DTLSP_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ ... && ./policy_parser_fuzz
#include <cstddef>
#include <cstdint>
#include <string>

#include "lower.h"
#include "parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tlsp::LoadedSource src;
  src.display_path = "fuzz.tlsp";
  src.text.assign(reinterpret_cast<const char*>(data), size);
  src.line_starts.push_back(0);
  for (size_t i = 0; i < size; ++i)
    if (src.text[i] == '\n') src.line_starts.push_back(static_cast<uint32_t>(i + 1));
  tlsp::DiagnosticSink sink;
  tlsp::ast::File file;
  if (tlsp::parse_policy(src, 0, file, sink)) (void)tlsp::lower_file(file, sink);
  std::vector<tlsp::LoadedSource> sources{src};
  for (const auto& d : sink.items()) (void)tlsp::render_diagnostic(d, sources);
  return 0;
}
