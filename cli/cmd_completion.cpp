// cmd_completion.cpp — `tlsp completion bash`: a bash completion script for
// tlsp, made from the command list (cli/main.cpp) and each command's own
// options_description (describe_command(), commands.h), and for the relay's
// values from its settings table (relay_settings.h): there is no second
// list of options to keep up to date.
//
// What it completes: the command after `tlsp` (and after `tlsp help`); a
// command's options after `-`; an option's value: file names where the
// value is a file, directory names where it is a directory, the fixed set
// where there is one (`--format binary|json`), nothing where it is free
// text (a duration, a number); file names for the positional arguments.
#include <iostream>

#include "cli_common.h"
#include "commands.h"
#include "relay_settings.h"
#include "tlsp/base/atomic_file.h"

namespace tlsp::cli {

CommandInfo describe_command(const Command& command) {
  CommandInfo info;
  struct Describing {
    explicit Describing(CommandInfo* info) { g_describing = info; }
    ~Describing() { g_describing = nullptr; }
  } describing(&info);
  try {
    command.run({});
  } catch (const std::exception&) {
    // A command that refuses to run without arguments before it declares
    // its options (a command with subcommands of its own) is described by
    // its name alone, rather than failing the page or the completion.
  }
  if (info.name.empty()) info.name = command.name;
  return info;
}

namespace {

// How the value of an option is completed.
enum class ValueCompletion { files, directories, words, nothing };

struct OptionValue {
  ValueCompletion how = ValueCompletion::files;
  std::string words;  // ValueCompletion::words: the values, space separated
};

OptionValue value_completion(const std::string& command, const OptionInfo& o) {
  if (command == "relay")
    if (const RelaySetting* s = find_relay_setting(o.long_name)) {
      switch (s->kind) {
        case ValueKind::file: return {ValueCompletion::files, ""};
        case ValueKind::directory: return {ValueCompletion::directories, ""};
        case ValueKind::choice: {
          std::string words;
          for (const std::string& w : s->choices) words += (words.empty() ? "" : " ") + w;
          return {ValueCompletion::words, words};
        }
        default: return {ValueCompletion::nothing, ""};
      }
    }
  const std::string& v = o.value_name;
  // A value name in lower case is the set of values (`binary|json`); in
  // upper case a placeholder; Boost's `arg` when none was declared.
  const bool lower = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '|';
  });
  if (lower && v != "arg") {
    std::string words = v;
    std::replace(words.begin(), words.end(), '|', ' ');
    return {ValueCompletion::words, words};
  }
  if (v == "DIR") return {ValueCompletion::directories, ""};
  if (v == "arg" || v == "FILE" || v == "TABLE" || v == "POLICY") return {ValueCompletion::files, ""};
  return {ValueCompletion::nothing, ""};
}

std::string flag_words(const OptionInfo& o) {
  std::string out = "--" + o.long_name;
  if (!o.short_name.empty()) out += " -" + o.short_name;
  return out;
}

std::string case_labels(const OptionInfo& o) {
  std::string out = "--" + o.long_name;
  if (!o.short_name.empty()) out += "|-" + o.short_name;
  return out;
}

// The body of one command's (or operation's) case in the script: its
// options, how each option's value is completed, what its positional
// arguments are. `indent` is the case's own indentation.
std::string option_cases(const std::string& command, const CommandInfo& info, const std::string& indent) {
  std::string words, files, directories, nothing, fixed;
  for (const OptionInfo& o : info.options) {
    words += (words.empty() ? "" : " ") + flag_words(o);
    if (!o.takes_value) continue;
    const OptionValue v = value_completion(command, o);
    switch (v.how) {
      case ValueCompletion::files: files += (files.empty() ? "" : "|") + case_labels(o); break;
      case ValueCompletion::directories: directories += (directories.empty() ? "" : "|") + case_labels(o); break;
      case ValueCompletion::nothing: nothing += (nothing.empty() ? "" : "|") + case_labels(o); break;
      case ValueCompletion::words:
        fixed += indent + "  " + case_labels(o) + ") COMPREPLY=($(compgen -W '" + v.words + "' -- \"$cur\")); return ;;\n";
        break;
    }
  }
  std::string out = indent + "options='" + words + "'\n";
  out += indent + "case $prev in\n";
  if (!files.empty()) out += indent + "  " + files + ") _tlsp_files; return ;;\n";
  if (!directories.empty()) out += indent + "  " + directories + ") _tlsp_files -d; return ;;\n";
  if (!nothing.empty()) out += indent + "  " + nothing + ") return ;;\n";
  out += fixed;
  out += indent + "esac\n";
  // The positional arguments are files (policies, tables, scenarios), or
  // for `completion` the shell; an operation's (a queue id, a domain) are
  // not completed.
  const bool operation = info.name.find(' ') != std::string::npos;
  out += indent + (info.positionals.empty() || operation ? "local positional=none\n"
                   : command == "completion"            ? "local positional=shell\n"
                                                        : "local positional=files\n");
  return out;
}

std::string bash_script(const std::vector<Command>& commands) {
  std::string names;
  for (const Command& c : commands)
    if (c.summary) names += (names.empty() ? "" : " ") + std::string(c.name);
  std::string out =
      "# bash completion for tlsp, made by `tlsp completion bash` from each command's own options.\n"
      "# Installed as share/bash-completion/completions/tlsp; or: source <(tlsp completion bash)\n"
      "\n"
      "_tlsp_files() {\n"
      "  if declare -F _filedir >/dev/null; then _filedir \"$@\"; return; fi\n"
      "  compopt -o filenames 2>/dev/null\n"
      "  if [[ $1 == -d ]]; then COMPREPLY=($(compgen -d -- \"$cur\")); else COMPREPLY=($(compgen -f -- \"$cur\")); fi\n"
      "}\n"
      "\n"
      "_tlsp() {\n"
      "  local cur=${COMP_WORDS[COMP_CWORD]} prev=\n"
      "  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
      "  # `--name=value`: bash splits it at the `=` (COMP_WORDBREAKS).\n"
      "  if [[ $cur == = ]]; then\n"
      "    cur=\n"
      "  elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then\n"
      "    prev=${COMP_WORDS[COMP_CWORD-2]}\n"
      "  fi\n"
      "  COMPREPLY=()\n"
      "  local commands='" + names + "'\n"
      "  if ((COMP_CWORD == 1)); then\n"
      "    COMPREPLY=($(compgen -W \"$commands --help --version\" -- \"$cur\"))\n"
      "    return\n"
      "  fi\n"
      "  local command=${COMP_WORDS[1]} options=\n"
      "  if [[ $command == help ]]; then\n"
      "    ((COMP_CWORD == 2)) && COMPREPLY=($(compgen -W \"$commands\" -- \"$cur\"))\n"
      "    return\n"
      "  fi\n"
      "  case $command in\n";
  for (const Command& c : commands) {
    if (!c.summary) continue;
    out += "    " + std::string(c.name) + ")\n";
    if (c.verbs) {
      // A command of operations (`tlsp queue list`): the operation first,
      // then that operation's own options.
      std::string verbs;
      for (const Command& v : c.verbs()) verbs += (verbs.empty() ? "" : " ") + std::string(v.name);
      out += "      if ((COMP_CWORD == 2)); then\n";
      out += "        COMPREPLY=($(compgen -W '" + verbs + " --help' -- \"$cur\"))\n";
      out += "        return\n";
      out += "      fi\n";
      out += "      case ${COMP_WORDS[2]} in\n";
      for (const Command& v : c.verbs())
        out += "        " + std::string(v.name) + ")\n" + option_cases(c.name, describe_command(v), "          ") +
               "          ;;\n";
      out += "        *) return ;;\n";
      out += "      esac\n";
    } else {
      out += option_cases(c.name, describe_command(c), "      ");
    }
    out += "      ;;\n";
  }
  out +=
      "    *) return ;;\n"
      "  esac\n"
      "  if [[ $cur == -* ]]; then\n"
      "    COMPREPLY=($(compgen -W \"$options\" -- \"$cur\"))\n"
      "  elif [[ $positional == files ]]; then\n"
      "    _tlsp_files\n"
      "  elif [[ $positional == shell ]]; then\n"
      "    COMPREPLY=($(compgen -W 'bash' -- \"$cur\"))\n"
      "  fi\n"
      "}\n"
      "complete -F _tlsp tlsp\n";
  return out;
}

}  // namespace

int cmd_completion(const Args& args, const std::vector<Command>& commands) {
  po::options_description opts("options");
  std::string shell, output;
  opts.add_options()("shell", po::value(&shell)->required()->value_name("bash"), "the shell to complete for: bash (positional)")(
      "output,o", po::value(&output)->value_name("FILE"), "write the script to FILE instead of standard output");
  po::positional_options_description pos;
  pos.add("shell", 1);
  po::variables_map vm;
  if (!parse_options("completion", "bash [-o FILE]",
                     "Prints a bash completion script for tlsp: its commands, each command's options, file names\n"
                     "where a value is a file, the values where they are a fixed set. Installed as\n"
                     "share/bash-completion/completions/tlsp; or: source <(tlsp completion bash)",
                     opts, &pos, args, vm, {{"shell", "shell"}}))
    return kExitOk;
  if (shell != "bash") throw UsageError("unknown shell `" + shell + "` (bash)");
  const std::string script = bash_script(commands);
  if (output.empty() || output == "-")
    std::cout << script;
  else
    base::write_file_atomically(output, script, 0644);
  return kExitOk;
}

}  // namespace tlsp::cli
