// parse.h — policy text to AST. The only module that uses ANTLR.
//
// Contract: parse_policy() never throws for any input. Syntax errors are
// reported to the sink in words (never grammar rule or token names), each
// with the offending text's location, and the function returns false. On
// success the AST is complete; on failure it still holds the file's include
// directives (so the includes are loaded and checked in the same run) but
// nothing else.
#pragma once

#include "ast.h"
#include "diagnostics.h"

namespace tlsp {

bool parse_policy(const LoadedSource& source, uint32_t file_index, ast::File& out,
                  DiagnosticSink& sink);

// The byte offset of the first invalid UTF-8 sequence, or npos.
size_t find_invalid_utf8(std::string_view text);

}  // namespace tlsp
