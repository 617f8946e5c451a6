// parse.h — policy text to AST. The only module that uses ANTLR.
//
// Contract: parse_policy() never throws for any input. Syntax errors are
// reported to the sink in words (never grammar rule or token names), each
// with the offending text's location, and the function returns false. On
// success the AST is complete; on failure it still holds the file's include
// directives (so the includes are loaded and checked in the same run) but
// nothing else. Parsing is linear in the input: the grammar has no
// recursion (a policy nests four levels, fixed by the grammar), so no
// depth limit is needed; the loader bounds the file size.
//
// Syntax errors per file are capped: a file that looks like no policy (its
// first kNotAPolicyErrors errors come before any statement parsed cleanly)
// stops there, any other after kMaxSyntaxErrorsPerFile; the last error
// reported carries a note saying so.
#pragma once

#include "ast.h"
#include "diagnostics.h"
#include "source_text.h"

namespace tlsp {

inline constexpr size_t kNotAPolicyErrors = 3;
inline constexpr size_t kMaxSyntaxErrorsPerFile = 20;

bool parse_policy(const LoadedSource& source, uint32_t file_index, ast::File& out,
                  DiagnosticSink& sink);

}  // namespace tlsp
