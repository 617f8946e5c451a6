// relay_settings_test.cpp — the one table of relay settings
// (cli/relay_settings.h): defaults shown from RelayConfig{} and nowhere
// typed, `--print-config` output that reads back as the same configuration
// (and refuses what would not), and load_relay_config() reading a file as
// `tlsp relay --config` does.
#include "relay_settings.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "command.h"
#include "test_support.h"
#include "tlsp/retry.h"

using tlsp::RelayConfig;
using tlsp::cli::RelaySetting;
using tlsp::testing_support::CommandRun;
using tlsp::testing_support::TempDir;

namespace {

// Every setting's value(s) as the table shows them: two configurations
// with the same picture have the same settings.
std::vector<std::string> picture(const RelayConfig& c) {
  std::vector<std::string> out;
  for (const RelaySetting& s : tlsp::cli::relay_settings()) {
    auto shown = s.show(c);
    EXPECT_TRUE(shown) << s.name;
    for (const std::string& v : shown.value_or(std::vector<std::string>{})) out.push_back(s.name + " = " + v);
    if (shown && shown->empty()) out.push_back(s.name + " (none)");
  }
  return out;
}

std::string write(const TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir.path() + "/" + name;
  std::ofstream(path, std::ios::trunc) << text;
  return path;
}

std::string print_all(const RelayConfig& c) {
  std::vector<std::string> errors;
  std::string text = tlsp::cli::format_relay_config(c, {}, true, errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
  return text;
}

}  // namespace

// The defaults are RelayConfig{}'s member initialisers, shown through the
// table: what --help says is what the relay does.
TEST(RelaySettings, DefaultsAreTheRelayConfigInitialisers) {
  const RelayConfig d;
  std::set<std::string> names;
  for (const RelaySetting& s : tlsp::cli::relay_settings()) {
    EXPECT_TRUE(names.insert(s.name).second) << s.name << " twice";
    EXPECT_FALSE(s.help.empty()) << s.name;
    EXPECT_EQ(s.help.find("default"), std::string::npos) << s.name << ": a default typed by hand in " << s.help;
  }
  auto dflt = [](const char* name) { return tlsp::cli::setting_default(*tlsp::cli::find_relay_setting(name)); };
  EXPECT_EQ(dflt("idle-timeout"), " 5m");
  EXPECT_EQ(dflt("queue-lifetime"), " 5d");
  EXPECT_EQ(dflt("dns-timeout"), " 10s");
  EXPECT_EQ(dflt("table-check-interval"), " 2s");
  EXPECT_EQ(dflt("admission-wait"), " 10s");
  EXPECT_EQ(dflt("max-message-size"), " " + std::to_string(d.limits.max_message_size));
  EXPECT_EQ(dflt("listen"), " 127.0.0.1:2525");
  EXPECT_EQ(dflt("submit-network"), " 127.0.0.0/8 and ::1/128");
  EXPECT_EQ(dflt("retry-schedule"), " " + d.retry_schedule);
  EXPECT_EQ(dflt("hostname"), ": the system's");
  EXPECT_EQ(dflt("next-hop"), "");
  EXPECT_EQ(tlsp::cli::setting_help(*tlsp::cli::find_relay_setting("listen")),
            "address:port to accept SMTP on (repeatable; default 127.0.0.1:2525)");
  // --help says the same, from the same table.
  const CommandRun help = tlsp::testing_support::run_tlsp("relay --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("--idle-timeout DURATION"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("(default 5m)"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("settings: inbound limits:"), std::string::npos) << help.out;
}

// A configuration with every setting away from its default, printed and
// read back, is the same configuration; and printing it again gives the
// same text.
TEST(RelaySettings, PrintedConfigurationReadsBackTheSame) {
  RelayConfig c;
  c.listen = {"127.0.0.1:25", "[::1]:2525"};
  c.hostname = "mx.acme.example";
  c.tls_cert = "/etc/tlsp/cert.pem";
  c.tls_key = "/etc/tlsp/key.pem";
  c.table = "/var/lib/tlsp/acme.tlspdt";
  c.spool_dir = "/var/spool/tlsp";
  c.resolver = "127.0.0.1:53";
  c.smtp_port = 2526;
  c.ca_file = "/etc/ssl/ca.pem";
  c.mta_sts_port = 8443;
  c.mta_sts_cache = "/var/cache/tlsp/sts";
  c.submit_networks = {"10.0.0.0/8", "2001:db8::/32"};
  c.next_hops = {{"acme.example", "10.0.0.25", 25, ""}, {"globex.example", "2001:db8::25", 2525, ""}};
  c.queue_lifetime = std::chrono::seconds(3 * 3600);
  c.retry_schedule = "30s,2m,1h";
  c.delivery_workers = 3;
  c.table_check_interval = std::chrono::milliseconds(7000);
  c.log_file = "/var/log/tlsp.log";
  c.log = {"stderr", "syslog:/dev/log"};
  c.log_format = "json";
  c.user = "nobody";  // must exist: relay_config_problems() looks it up
  c.metrics_listen = "127.0.0.1:9125";
  c.tlsrpt_organization = "Acme Mail";
  c.tlsrpt_contact = "mailto:tlsrpt@acme.example";
  c.tlsrpt_submitter = "mx.acme.example";
  c.tlsrpt_send_time = "23:59";
  c.tlsrpt_from = "reports@acme.example";
  c.tlsrpt_store = "redis://127.0.0.1:6379/2";
  auto& l = c.limits;
  l.max_connections = 7;
  l.max_connections_per_client = 3;
  l.max_line_length = 2048;
  l.max_data_line_length = 4096;
  l.max_commands = 50;
  l.max_errors = 4;
  l.max_recipients = 9;
  l.max_message_size = 123456;
  l.idle_timeout = std::chrono::seconds(90);
  l.session_timeout = std::chrono::seconds(7200);
  l.data_phase_timeout = std::chrono::seconds(61);
  l.stress_threshold_percent = 0;
  l.stress_idle_timeout = std::chrono::seconds(3);
  l.stress_max_errors = 2;
  l.admission_wait = std::chrono::seconds(0);
  l.evict_stalled_after = std::chrono::seconds(86400);
  l.max_connection_rate_per_client = 0;
  l.connection_rate_time_unit = std::chrono::seconds(120);
  l.connect_timeout = std::chrono::seconds(11);
  l.command_timeout = std::chrono::seconds(12);
  l.data_timeout = std::chrono::seconds(13);
  l.dns_timeout = std::chrono::milliseconds(250);
  l.sts_fetch_timeout = std::chrono::milliseconds(1500);
  l.shutdown_grace = std::chrono::seconds(1);
  l.connection_cache_time = std::chrono::seconds(0);
  l.connection_reuse_limit = 1;
  // Every setting differs from its default, so that none is lost unseen.
  const std::vector<std::string> mine = picture(c), defaults = picture(RelayConfig{});
  for (const RelaySetting& s : tlsp::cli::relay_settings())
    EXPECT_NE(s.show(c), s.show(RelayConfig{})) << s.name << " is left at its default in this test";

  TempDir dir("tlsp-relay-settings");
  const std::string text = print_all(c);
  std::vector<std::string> errors;
  const auto back = tlsp::cli::load_relay_config(write(dir, "relay.conf", text), errors);
  ASSERT_TRUE(back) << (errors.empty() ? "" : errors.front()) << "\n" << text;
  EXPECT_EQ(picture(*back), mine) << text;
  EXPECT_EQ(print_all(*back), text);
  // The fields themselves, for those the picture could make alike.
  EXPECT_EQ(back->limits.dns_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(back->limits.sts_fetch_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(back->table_check_interval, std::chrono::milliseconds(7000));
  ASSERT_EQ(back->next_hops.size(), 2u);
  EXPECT_EQ(back->next_hops[1].host, "2001:db8::25");
  EXPECT_EQ(back->next_hops[1].port, 2525);
  EXPECT_EQ(back->limits.evict_stalled_after, std::chrono::seconds(86400));

  // The defaults round-trip too (the hostname, the table: empty).
  const std::string defaults_text = print_all(RelayConfig{});
  errors.clear();
  tlsp::cli::RelayConfigRead read;
  {
    namespace po = boost::program_options;
    const po::options_description opts = tlsp::cli::relay_options();
    po::variables_map vm;
    read = tlsp::cli::read_relay_config(opts, vm, write(dir, "defaults.conf", defaults_text), false);
  }
  EXPECT_TRUE(read.errors.empty()) << read.errors.front();
  EXPECT_EQ(picture(read.config), defaults);
}

// A value that could not be written so that it reads back the same is
// refused, never printed wrong: a `#` would start a comment, a control
// character is not shown as itself, blanks at the ends are trimmed, and a
// duration may be beyond what the syntax says.
TEST(RelaySettings, AValueThatCannotReadBackIsRefused) {
  struct Case {
    std::function<void(RelayConfig&)> set;
    std::string says;
  };
  for (const Case& k : std::vector<Case>{
           {[](RelayConfig& c) { c.hostname = "mx#1.example"; }, "hostname: `mx#1.example` cannot be written"},
           {[](RelayConfig& c) { c.hostname = "mx\x01.example"; }, "hostname: `mx\\x01.example` cannot be written"},
           {[](RelayConfig& c) { c.table = " /lead"; }, "table: ` /lead` cannot be written"},
           {[](RelayConfig& c) { c.listen = {"127.0.0.1:25", "a\nb:1"}; }, "listen: `127.0.0.1:25` `a\\x0ab:1`"},
           {[](RelayConfig& c) { c.queue_lifetime = tlsp::kMaxDuration + std::chrono::seconds(1); },
            "queue-lifetime: its value cannot be written"},
           {[](RelayConfig& c) { c.limits.dns_timeout = std::chrono::milliseconds(12345678901); },
            "dns-timeout: its value cannot be written"},
           {[](RelayConfig& c) { c.table_check_interval = std::chrono::milliseconds(1500); },
            "table-check-interval: its value cannot be written"}}) {
    RelayConfig c;
    k.set(c);
    std::vector<std::string> errors;
    const std::string text = tlsp::cli::format_relay_config(c, {}, true, errors);
    ASSERT_EQ(errors.size(), 1u) << k.says;
    EXPECT_NE(errors[0].find(k.says), std::string::npos) << errors[0];
    const std::string name = k.says.substr(0, k.says.find(':'));
    EXPECT_EQ(text.find("\n" + name + " ="), std::string::npos) << text;
  }
}

// `tlsp relay --print-config`: the settings given, in the file or by a
// flag (the flag winning), as `postconf -n`; `--print-config-all` every
// setting. A value that cannot be printed is an error, exit 2.
TEST(RelaySettings, PrintConfigShowsWhatWasGiven) {
  TempDir dir("tlsp-print-config");
  const std::string conf =
      write(dir, "relay.conf", "# a relay\nlisten = 127.0.0.1:2600\nidle-timeout = 300\nmax-recipients = 7\n");
  CommandRun r = tlsp::testing_support::run_tlsp("relay --config '" + conf + "' --max-recipients 8 --print-config");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "listen = 127.0.0.1:2600\nmax-recipients = 8\nidle-timeout = 5m\n");

  r = tlsp::testing_support::run_tlsp("relay --config '" + conf + "' --print-config-all");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\nlisten = 127.0.0.1:2600\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nmax-connections = 100\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("# inbound limits\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("# next-hop = (none)\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n# hostname = (the system's)\n"), std::string::npos) << r.out;
  // Fed back, the whole output gives the same output.
  const std::string again = write(dir, "again.conf", r.out);
  CommandRun r2 = tlsp::testing_support::run_tlsp("relay --config '" + again + "' --print-config-all");
  EXPECT_EQ(r2.code, 0) << r2.out;
  EXPECT_EQ(r2.out, r.out);

  // Mistakes are reported as any run reports them; an unprintable value is refused.
  r = tlsp::testing_support::run_tlsp("relay --config '" + conf + "' --idle-timeout soon --print-config");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("tlsp relay: error: --idle-timeout: `soon` is not a duration"), std::string::npos) << r.out;
  r = tlsp::testing_support::run_tlsp("relay --hostname \"$(printf 'a\\033[2Jb')\" --print-config");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("tlsp relay: error: hostname: `a\\x1b[2Jb` cannot be written"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  r = tlsp::testing_support::run_tlsp("relay --print-config --check-config");
  EXPECT_EQ(r.code, 2) << r.out;
}

// Another command reads the same configuration with load_relay_config():
// the same checks and the same messages as `tlsp relay --config FILE`.
TEST(RelaySettings, LoadRelayConfigReadsTheFileAsTheRelayDoes) {
  TempDir dir("tlsp-load-config");
  std::vector<std::string> errors;
  const std::string good = write(dir, "good.conf", "table = /t.tlspdt\nspool = /var/spool/x\nnext-hop = Acme.Example=[::1]:25\n");
  auto c = tlsp::cli::load_relay_config(good, errors);
  ASSERT_TRUE(c) << errors.front();
  EXPECT_EQ(c->spool_dir, "/var/spool/x");
  ASSERT_EQ(c->next_hops.size(), 1u);
  EXPECT_EQ(c->next_hops[0].domain, "acme.example");
  EXPECT_EQ(c->next_hops[0].host, "::1");

  const std::string bad = write(dir, "bad.conf", "spool = /s\nidle-timeout = soon\nwhat = 1\n");
  EXPECT_FALSE(tlsp::cli::load_relay_config(bad, errors));
  const std::vector<std::string> expected = {bad + ":2: idle-timeout: `soon` is not a duration (e.g. 30s, 5m, 2h, 5d)",
                                             bad + ":3: unknown setting `what`",
                                             "--table: a decision table is required (tlsp compile)"};
  EXPECT_EQ(errors, expected);
  // The relay says the same, with its prefix.
  const CommandRun r = tlsp::testing_support::run_tlsp("relay --config '" + bad + "' --check-config");
  for (const std::string& e : expected) EXPECT_NE(r.out.find("tlsp relay: error: " + e + "\n"), std::string::npos) << r.out;

  errors.clear();
  EXPECT_FALSE(tlsp::cli::load_relay_config(dir.path() + "/missing.conf", errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("cannot read config file"), std::string::npos) << errors[0];
}

// docs/relay.conf.example says its limits are the defaults: they are.
TEST(RelaySettings, TheExampleConfigurationsDefaultsAreTheDefaults) {
  std::ifstream in(std::string(TLSP_SOURCE_DIR) + "/docs/relay.conf.example");
  ASSERT_TRUE(in);
  bool defaults = false;
  size_t checked = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find("(these are the defaults)") != std::string::npos) defaults = true;
    const size_t eq = line.find(" = ");
    if (!defaults || line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    const RelaySetting* s = tlsp::cli::find_relay_setting(line.substr(0, eq));
    ASSERT_NE(s, nullptr) << line;
    RelayConfig read;
    s->read(read, {line.substr(eq + 3)}, [&](const std::string&, const std::string& why) { ADD_FAILURE() << why; });
    EXPECT_EQ(s->show(read), s->show(RelayConfig{})) << line;
    ++checked;
  }
  EXPECT_GE(checked, 10u);
}

// Values in odd but valid forms are printed in their plain form, which
// reads back as the same setting (the property relay_config_fuzz checks on
// any file): the example, the fuzz seeds, and these lines.
TEST(RelaySettings, OddButValidValuesPrintAsWhatReadsBackTheSame) {
  TempDir dir("tlsp-odd-config");
  namespace po = boost::program_options;
  const po::options_description opts = tlsp::cli::relay_options();
  const auto read = [&](const std::string& path) {
    po::variables_map vm;
    return tlsp::cli::read_relay_config(opts, vm, path, false);
  };
  std::vector<std::string> files = {std::string(TLSP_SOURCE_DIR) + "/docs/relay.conf.example"};
  for (const auto& e : std::filesystem::recursive_directory_iterator(std::string(TLSP_SOURCE_DIR) +
                                                                     "/fuzz/seeds/relay_config_fuzz"))
    if (e.is_regular_file()) files.push_back(e.path().string());
  for (const std::string line :
       {"idle-timeout = 0300", "dns-timeout = 0500ms", "dns-timeout = 1000ms", "sts-fetch-timeout = 400d",
        "queue-lifetime = 0", "admission-wait = 0s", "max-recipients = 007", "hostname = a b",
        "retry-schedule = 1m , 5m", "next-hop = X.Example.=[::1]:25", "next-hop = a.example=a:b:25",
        "next-hop = a.example=[[a:b]]:25", "next-hop = a.example=[]:25", "next-hop = a.example=:25",
        "listen = [::1]:0\nlisten = 127.0.0.1:1", "hostname =", "table-check-interval = 1d"})
    files.push_back(write(dir, "line" + std::to_string(files.size()) + ".conf", std::string(line) + "\n"));
  size_t printed = 0;
  for (const std::string& file : files) {
    const tlsp::cli::RelayConfigRead first = read(file);
    if (!first.errors.empty()) continue;
    std::vector<std::string> refused;
    const std::string text = tlsp::cli::format_relay_config(first.config, {}, true, refused);
    EXPECT_TRUE(refused.empty()) << file << ": " << refused.front();
    const tlsp::cli::RelayConfigRead second = read(write(dir, "printed.conf", text));
    EXPECT_TRUE(second.errors.empty()) << file << ": " << second.errors.front() << "\n" << text;
    EXPECT_EQ(picture(second.config), picture(first.config)) << file << "\n" << text;
    ++printed;
  }
  EXPECT_GE(printed, 18u);
}

// The TLSRPT settings: what relay_config_problems() refuses, and the
// defaults tlsrpt_identity() gives.
TEST(RelaySettings, TlsrptIdentity) {
  const auto problems = [](RelayConfig c) {
    c.table = "t";
    c.spool_dir = "s";
    std::string all;
    for (const auto& p : tlsp::relay_config_problems(c)) all += p.setting + ": " + p.text + "\n";
    return all;
  };
  RelayConfig c;
  c.hostname = "MX.Acme.Example";
  EXPECT_EQ(problems(c), "");
  tlsp::TlsrptIdentity id = tlsp::tlsrpt_identity(c);
  EXPECT_EQ(id.submitter, "mx.acme.example");
  EXPECT_EQ(id.organization, "mx.acme.example");
  EXPECT_EQ(id.contact, "mailto:postmaster@mx.acme.example");
  c.tlsrpt_submitter = "reports.acme.example";
  c.tlsrpt_organization = "Acme Mail";
  for (const char* good : {"tlsrpt@acme.example", "mailto:tlsrpt@acme.example", "https://acme.example/tlsrpt"}) {
    c.tlsrpt_contact = good;
    EXPECT_EQ(problems(c), "") << good;
  }
  id = tlsp::tlsrpt_identity(c);
  EXPECT_EQ(id.submitter, "reports.acme.example");
  EXPECT_EQ(id.organization, "Acme Mail");
  EXPECT_EQ(id.contact, "https://acme.example/tlsrpt");
  for (const char* bad : {"nobody", "mailto:", "a b@acme.example", "x@-bad-.example", "https://"}) {
    c.tlsrpt_contact = bad;
    EXPECT_NE(problems(c).find("tlsrpt-contact: "), std::string::npos) << bad;
  }
  c.tlsrpt_contact.clear();
  c.tlsrpt_submitter = "Reports.acme.example";
  EXPECT_NE(problems(c).find("tlsrpt-submitter: write it as `reports.acme.example`"), std::string::npos);
  c.tlsrpt_submitter = "not a domain";
  EXPECT_NE(problems(c).find("tlsrpt-submitter: "), std::string::npos);
  c.tlsrpt_submitter.clear();
  c.tlsrpt_organization = "Acme\nMail";
  EXPECT_NE(problems(c).find("tlsrpt-organization: "), std::string::npos);
  c.tlsrpt_organization.clear();
  c.tlsrpt_store = "redis://127.0.0.1/2";
  EXPECT_NE(problems(c).find("tlsrpt-store: "), std::string::npos);
  c.tlsrpt_store = "/var/lib/tlsp/tlsrpt.db";
  EXPECT_EQ(problems(c), "");
  EXPECT_EQ(tlsp::tlsrpt_store_spec(c), "/var/lib/tlsp/tlsrpt.db");
  c.tlsrpt_store.clear();
  c.spool_dir = "/var/spool/tlsp";
  EXPECT_EQ(tlsp::tlsrpt_store_spec(c), "/var/spool/tlsp/tlsrpt.db");
}

// tlsrpt-send-time and tlsrpt-from: what relay_config_problems() accepts
// and refuses, each refusal naming the setting.
TEST(RelaySettings, TlsrptSettingsAreChecked) {
  auto problems = [](auto change) {
    RelayConfig c;
    c.table = "/t";
    c.spool_dir = "/s";
    change(c);
    std::vector<std::string> out;
    for (const tlsp::ConfigProblem& p : tlsp::relay_config_problems(c)) out.push_back(p.setting + ": " + p.text);
    return out;
  };
  for (const char* ok : {"00:00", "01:00", "23:59", ""})
    EXPECT_TRUE(problems([&](RelayConfig& c) { c.tlsrpt_send_time = ok; }).empty()) << ok;
  for (const char* bad : {"24:00", "1:00", "01:60", "01-00", "01:00 ", "noon"}) {
    auto p = problems([&](RelayConfig& c) { c.tlsrpt_send_time = bad; });
    ASSERT_EQ(p.size(), 1u) << bad;
    EXPECT_EQ(p[0].find("tlsrpt-send-time: "), 0u) << p[0];
  }
  EXPECT_EQ(tlsp::parse_time_of_day("13:37"), 13 * 60 + 37);
  EXPECT_FALSE(tlsp::parse_time_of_day("13:3"));
  for (const char* ok : {"tlsrpt@mx.acme.example", "a+b@acme.example", ""})
    EXPECT_TRUE(problems([&](RelayConfig& c) { c.tlsrpt_from = ok; }).empty()) << ok;
  for (const char* bad : {"tlsrpt", "@acme.example", "a b@acme.example", "<a@acme.example>", "a@[192.0.2.1]",
                          "a@acme.example\r\nBcc: x@y.example", "a@bad..example"}) {
    auto p = problems([&](RelayConfig& c) { c.tlsrpt_from = bad; });
    ASSERT_EQ(p.size(), 1u) << bad;
    EXPECT_EQ(p[0].find("tlsrpt-from: "), 0u) << p[0];
  }
}
