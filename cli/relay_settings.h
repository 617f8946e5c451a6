// relay_settings.h — every `tlsp relay` setting, once: its name, the kind
// of value it takes, its help text, its section, and how it is read into
// and shown from a RelayConfig (tlsp/relay.h). `tlsp relay --help`, the
// configuration file reader, `--print-config`, the tlsp.conf(5) man page
// and the bash completion are all derived from this one table, so they
// cannot drift apart.
//
// Contract:
//  * A default is never written by hand: it is what showing a
//    default-constructed RelayConfig{} through the table gives
//    (setting_default()), so it is the member initialiser in relay.h.
//  * Reading is checked value by value; a value that is not valid is one
//    message (what is wrong, the text quoted with display_text) and leaves
//    the RelayConfig as it was. Whether the settings make a relay that can
//    run is relay_config_problems()'s decision, not this table's.
//  * show() is the inverse of read(): read(show(c)) gives the same setting.
//    A value that could not be written back (a `#`, a control character,
//    blanks at an end, a duration the syntax cannot say) is refused by
//    format_relay_config(), never printed wrong.
//  * Adding a setting is one entry in relay_settings.cpp: the field in
//    RelayConfig, its entry (name, kind, section, help), and its check in
//    relay_config_problems() when it has one.
#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/relay.h"

namespace tlsp::cli {

// The kind of value a setting takes: what the help and the man page call
// it, how the completion completes it, and how it is read and shown.
enum class ValueKind {
  text,              // any text (a host name)
  file,              // a file name
  directory,         // a directory name
  host_port,         // address:port, [v6]:port
  network,           // an address or CIDR
  next_hop,          // domain=host:port
  duration,          // 30s, 5m, 2h, 5d (seconds when no unit)
  ms_duration,       // a duration, also in milliseconds (500ms)
  duration_or_zero,  // a duration, or 0 for off
  duration_list,     // durations separated by commas (the retry schedule)
  number,            // a whole number from 0 to a maximum
  port,              // a whole number from 0 to 65535
};

// The placeholder for a value of this kind in --help and the man pages
// (FILE, DURATION, ...).
std::string_view value_placeholder(ValueKind kind);

// The sections of tlsp.conf(5) and of `tlsp relay --help`, in order.
enum class SettingSection { service, tls, table, queue, routing, outbound, limits, stress, tlsrpt, logging };
inline constexpr SettingSection kSettingSections[] = {
    SettingSection::service, SettingSection::tls,    SettingSection::table,
    SettingSection::queue,   SettingSection::routing, SettingSection::outbound,
    SettingSection::limits,  SettingSection::stress,  SettingSection::tlsrpt,
    SettingSection::logging};
std::string_view section_title(SettingSection section);  // "service", "TLS", ...

// Reports that `value` of the setting being read is not valid: `text` says
// why, with the value quoted (e.g. "`soon` is not a duration (...)").
using SettingProblem = std::function<void(const std::string& value, const std::string& text)>;

struct RelaySetting {
  std::string name;  // the flag without `--`, the name in the file
  ValueKind kind;
  SettingSection section;
  std::string help;        // what it is, without its default
  std::string when_empty;  // what an empty value (text) or no value (list) means, e.g. "the system's"
  bool repeatable = false; // given several times, each adds a value
  uint64_t max = 0;        // ValueKind::number: the largest value
  // Reads the setting's values (one, or each value of a repeatable one)
  // into the configuration; a bad value is reported and not applied.
  std::function<void(RelayConfig&, const std::vector<std::string>&, const SettingProblem&)> read;
  // The setting's value(s) in the syntax read() takes; std::nullopt when
  // the value cannot be written in it (a duration beyond kMaxDuration).
  std::function<std::optional<std::vector<std::string>>(const RelayConfig&)> show;
};

// Every setting, grouped by section in kSettingSections' order.
const std::vector<RelaySetting>& relay_settings();
const RelaySetting* find_relay_setting(std::string_view name);

// The default as --help and tlsp.conf(5) say it: "5m", "127.0.0.0/8 and
// ::1/128", or ": the system's" (when_empty); empty when there is none.
std::string setting_default(const RelaySetting& setting);
// The help text with the default: "read one whole ... (default 5m)".
std::string setting_help(const RelaySetting& setting);

// The options of `tlsp relay` beyond the settings (--config, --check-config,
// --print-config, --print-config-all) and the settings, one group per
// section, as Boost reads and shows them.
boost::program_options::options_description relay_options();

// The result of reading a relay configuration: the configuration, every
// mistake (each `FILE:LINE: name: ...` or `--name: ...`, in the file's
// order then the flags'), and which settings were given.
struct RelayConfigRead {
  RelayConfig config;
  std::vector<std::string> errors;  // empty: every setting was read
  std::set<std::string> given;      // settings given in the file or by a flag
  // Where a setting came from: "FILE:LINE: name" or "--name".
  std::function<std::string(const std::string& name)> origin;
};

// Reads `config_path` (empty: none) under the flags already parsed into
// `vm` (flags win over the file), checks every line and every value, and
// adds relay_config_problems() to the errors unless `check_problems` is
// false. Throws nothing for a bad file: an unreadable file is one error.
RelayConfigRead read_relay_config(const boost::program_options::options_description& opts,
                                  boost::program_options::variables_map& vm, const std::string& config_path,
                                  bool check_problems = true);

// The configuration another subcommand uses (`tlsp queue --config FILE`):
// the file read and checked exactly as `tlsp relay --config FILE` reads it,
// without flags. std::nullopt when anything is wrong, with every mistake in
// `errors` (as `tlsp relay` words them, without its prefix).
std::optional<RelayConfig> load_relay_config(const std::string& path, std::vector<std::string>& errors);

// Where an installed relay's configuration is (the package installs one).
inline constexpr std::string_view kDefaultRelayConfigPath = "/etc/tlsp/relay.conf";

// `config` in the configuration file syntax: one `name = value` line per
// value of every setting in `names` (all settings when `all`), in the
// table's order; with `all`, a `# section` comment before each section, and
// a setting with no value where none is its default is a comment saying
// what that means (`# hostname = (the system's)`). A value that cannot be written so
// that reading it back gives the same setting is not printed: it is an
// error in `errors` instead (and the text is then incomplete).
std::string format_relay_config(const RelayConfig& config, const std::set<std::string>& names, bool all,
                                std::vector<std::string>& errors);

}  // namespace tlsp::cli
