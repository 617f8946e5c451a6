// cmd_manpage.cpp — `tlsp manpage TEMPLATE [-o FILE]` (hidden): a man page
// in troff (man(7) macros) made from a hand-written template under
// docs/man/ and the tables the program itself uses, so that the pages
// cannot drift from what tlsp does. The build runs it for every page
// (cli/CMakeLists.txt); tests/cli/manpage_test.cpp compares the pages with
// `--help`.
//
// A template is troff. These lines are replaced, each by what it names:
//   @COMMANDS@        every command (cli/main.cpp's list): its synopsis,
//                     what it does, its options (tlsp(1))
//   @RELAY_OPTIONS@   the options of `tlsp relay` that are not settings
//   @SETTINGS@        every relay setting by section: value, help, default
//                     (relay_settings.h; tlsp.conf(5))
// and `@VERSION@` anywhere is the version.
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli_common.h"
#include "commands.h"
#include "relay_settings.h"
#include "tlsp/base/atomic_file.h"

#ifndef TLSP_VERSION
#error "TLSP_VERSION is set by cli/CMakeLists.txt"
#endif

namespace tlsp::cli {
namespace {

// Text as troff shows it as it is: a backslash is `\e`, a minus `\-` (a
// plain `-` may become a hyphen, which cannot be copied into a command),
// and a line that would begin with a control character starts with `\&`.
std::string roff(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\')
      out += "\\e";
    else if (c == '-')
      out += "\\-";
    else
      out += c;
  }
  return out;
}

// Text lines: each line of `text` as a troff text line.
std::string roff_lines(std::string_view text) {
  std::string out;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && line.front() == ' ') line.erase(0, 1);
    if (line.empty()) continue;
    const std::string r = roff(line);
    out += (r.front() == '.' || r.front() == '\'' ? "\\&" : "") + r + "\n";
  }
  return out;
}

// A macro argument in double quotes.
std::string roff_arg(std::string_view text) {
  std::string out;
  for (char c : roff(text)) {
    if (c == '"')
      out += "\\(dq";
    else
      out += c;
  }
  return "\"" + out + "\"";
}

std::string option_tag(const OptionInfo& o) {
  std::string tag;
  if (!o.short_name.empty()) tag += "\\fB\\-" + roff(o.short_name) + "\\fR, ";
  tag += "\\fB\\-\\-" + roff(o.long_name) + "\\fR";
  if (o.takes_value) tag += " \\fI" + roff(o.value_name == "arg" ? "VALUE" : o.value_name) + "\\fR";
  return tag + "\n";
}

std::string options_list(const std::vector<OptionInfo>& options) {
  std::string out;
  for (const OptionInfo& o : options) out += ".TP\n" + option_tag(o) + roff_lines(o.help);
  return out;
}

std::vector<OptionInfo> relay_own_options(const CommandInfo& relay) {
  std::vector<OptionInfo> own;
  for (const OptionInfo& o : relay.options)
    if (!find_relay_setting(o.long_name)) own.push_back(o);
  return own;
}

std::string commands_section(const std::vector<Command>& commands) {
  std::string out;
  for (const Command& c : commands) {
    if (!c.summary) continue;
    out += ".SS \"tlsp " + roff(c.name) + " \\(em " + roff(c.summary) + "\"\n";
    if (c.verbs) {
      // A command of operations: each operation as a command of its own.
      for (const Command& v : c.verbs()) {
        const CommandInfo info = describe_command(v);
        out += ".PP\n.B tlsp " + roff(info.name) + "\n" + roff_lines(info.synopsis) + ".PP\n" + roff_lines(info.about);
        out += options_list(info.options);
      }
      continue;
    }
    const CommandInfo info = describe_command(c);
    out += ".B tlsp " + roff(c.name) + "\n" + roff_lines(info.synopsis) + ".PP\n" + roff_lines(info.about);
    if (c.name == std::string("relay")) {
      out += options_list(relay_own_options(info));
      out += ".PP\nEvery setting of\n.BR tlsp.conf (5)\nis also an option:\n\\fB\\-\\-\\fR\\fINAME VALUE\\fR\n"
             "(flags win over the configuration file).\n";
    } else {
      out += options_list(info.options);
    }
  }
  return out;
}

std::string settings_section() {
  std::string out;
  for (SettingSection section : kSettingSections) {
    out += ".SS " + roff_arg(section_title(section)) + "\n";
    for (const RelaySetting& s : relay_settings()) {
      if (s.section != section) continue;
      out += ".TP\n\\fB" + roff(s.name) + "\\fR = \\fI" + roff(setting_placeholder(s)) + "\\fR\n";
      out += roff_lines(setting_help(s));
    }
  }
  return out;
}

std::string render(const std::string& template_text, const std::vector<Command>& commands) {
  std::string out;
  std::istringstream in(template_text);
  for (std::string line; std::getline(in, line);) {
    if (line == "@COMMANDS@") {
      out += commands_section(commands);
    } else if (line == "@RELAY_OPTIONS@") {
      for (const Command& c : commands)
        if (c.name == std::string("relay")) out += options_list(relay_own_options(describe_command(c)));
    } else if (line == "@SETTINGS@") {
      out += settings_section();
    } else {
      for (size_t at; (at = line.find("@VERSION@")) != std::string::npos;) line.replace(at, 9, TLSP_VERSION);
      out += line + "\n";
    }
  }
  return out;
}

}  // namespace

int cmd_manpage(const Args& args, const std::vector<Command>& commands) {
  po::options_description opts("options");
  std::string template_path, output;
  opts.add_options()("template", po::value(&template_path)->required()->value_name("FILE"),
                     "the page's template (docs/man/*.in)")(
      "output,o", po::value(&output)->value_name("FILE"), "write the page to FILE instead of standard output");
  po::positional_options_description pos;
  pos.add("template", 1);
  po::variables_map vm;
  if (!parse_options("manpage", "TEMPLATE [-o FILE]",
                     "Makes a man page from its template and tlsp's own tables (run by the build).", opts, &pos,
                     args, vm, {{"template", "template file"}}))
    return kExitOk;
  std::ifstream in(template_path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    std::cerr << "tlsp manpage: error: cannot read `" << template_path << "`\n";
    return kExitUsage;
  }
  const std::string page = render(text.str(), commands);
  if (output.empty() || output == "-")
    std::cout << page;
  else
    base::write_file_atomically(output, page, 0644);
  return kExitOk;
}

}  // namespace tlsp::cli
