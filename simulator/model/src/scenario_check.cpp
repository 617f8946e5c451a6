// scenario_check.cpp — parse_scenarios(): the syntax tree of a scenario file
// checked word by word and turned into complete Scenarios.
//
// The grammar only fixes the file's shape, so everything a person can get
// wrong inside a statement is caught here, where the message can name the
// fact, list the values it takes and suggest the closest spelling. Each
// scenario is checked on its own: one broken scenario does not hide the
// others' results. Defaults that depend on other facts (DNSSEC status
// flowing from the MX answer to the host and its TLSA answer, MTA-STS
// discovery) are resolved when the scenario runs (run.cpp); this file only
// records what was written.
#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <map>

#include "tlsp/base/address.h"
#include "scenario_parse.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/mta_sts.h"
#include "tlsp/simulator.h"

namespace tlsp::sim {
namespace {

// ------------------------------------------------------------ vocabulary

const std::vector<std::string_view> kScenarioSettings = {"direction", "from", "to", "mx", "client", "mta-sts", "expect", "live"};
const std::vector<std::string_view> kHostFacts = {"starttls", "tls", "handshake", "cert", "tlsa"};
const std::vector<std::string_view> kClientFacts = {"starttls", "tls", "handshake"};
const std::vector<std::string_view> kTlsaRecords = {"dane-ee", "dane-ta", "pkix-ee",   "pkix-ta",
                                                    "bad-selector", "bad-mtype", "bad-length", "record"};
const std::vector<std::string_view> kStsFacts = {"txt", "policy", "fetch", "cached"};
const std::vector<std::string_view> kExpectFields = {"channel", "applied", "tls", "reason", "via"};

// The engine's and the policy's own spellings (engine.h, policy_model.h).
const std::vector<std::string_view> kDnsStatuses(kDnsStatusNames.begin(), kDnsStatusNames.end());
const std::vector<std::string_view> kVersions(kTlsVersionNames.begin() + 1, kTlsVersionNames.end());  // not `none`
const std::vector<std::string_view> kCerts(kCertStatusNames.begin(), kCertStatusNames.end());
const std::vector<std::string_view> kFetchFailures(kStsFetchNames.begin() + 1, kStsFetchNames.end());  // not `ok`
const std::vector<std::string_view> kModes(kStsModeNames.begin(), kStsModeNames.end());
const std::vector<std::string_view> kOutcomes(kOutcomeNames.begin(), kOutcomeNames.end());
const std::vector<std::string_view> kChannels(kChannelNames.begin(), kChannelNames.end());
const std::vector<std::string_view> kLevels(kLevelNames.begin(), kLevelNames.end());

std::string list_words(const std::vector<std::string_view>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += (i + 1 == words.size()) ? " or " : ", ";
    out += ticked(words[i]);
  }
  return out;
}

// A host or domain name (check_host_name): its normal form, or "".
std::string normal_domain(std::string_view name) {
  NameCheck c = check_host_name(name);
  return c.ok() ? std::move(c.name) : std::string();
}

bool is_ip_address(const std::string& s) { return base::parse_ip_address(s).has_value(); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// ---------------------------------------------------------------- checker

class Checker {
 public:
  explicit Checker(ScenarioSink& sink) : sink_(sink) {}

  // Returns the scenario, or nothing when it has errors (reported).
  std::optional<Scenario> scenario(const ast::Scenario& s) {
    const size_t before = sink_.count();
    Scenario out;
    out.name = s.name.text;
    out.where = s.where;
    if (s.name.text.empty()) error("S0206", s.name.where, "a scenario needs a name");

    settings(s, out);
    const bool outbound = out.direction == Direction::outbound;
    if (outbound) {
      for (const auto& c : s.clients)
        error("S0204", c.where, "`client` describes the sender of an inbound scenario; this one is outbound")
            .help = "outbound scenarios describe the recipient's MX hosts in an `mx` block";
      mx(s, out);
      if (s.sts.size() > 1) twice(s.sts[1].where, "`mta-sts`", s.sts[0].where);
      if (!s.sts.empty()) mta_sts(s.sts[0], out.sts);
    } else {
      for (const auto& m : s.mx)
        error("S0204", m.where, "`mx` describes the recipient's MX hosts of an outbound scenario; this one is inbound")
            .help = "inbound scenarios describe the connecting sender in a `client` block";
      for (const auto& m : s.sts)
        error("S0204", m.where, "`mta-sts` is the recipient domain's policy for outbound mail; this scenario is inbound");
      if (s.clients.empty()) {
        error("S0203", s.name.where, "the inbound scenario " + ticked(out.name) + " has no `client`")
            .help = "add `client \"203.0.113.9\" { starttls; tls tls1.2 tls1.3; }`";
      } else {
        if (s.clients.size() > 1) twice(s.clients[1].where, "`client`", s.clients[0].where);
        client(s.clients[0], out.client);
      }
    }

    if (s.expects.empty()) {
      error("S0203", s.name.where, "the scenario " + ticked(out.name) + " has no `expect`")
          .help = "say what must happen, e.g. `expect deliver channel encrypted applied mandatory;`";
    } else {
      if (s.expects.size() > 1) twice(s.expects[1].where, "`expect`", s.expects[0].where);
      expectation(s.expects[0], out);
    }
    if (sink_.count() != before) return std::nullopt;
    return out;
  }

 private:
  Diagnostic& error(std::string code, SourceLocation where, std::string message) {
    return sink_.error(std::move(code), where, std::move(message));
  }

  void twice(SourceLocation second, const std::string& what, SourceLocation first) {
    Diagnostic& d = error("S0202", second, what + " given twice");
    d.notes.push_back({first, "first given here"});
  }

  void unknown_key(const ast::Word& key, std::string_view what, const std::vector<std::string_view>& known) {
    Diagnostic& d = error("S0200", key.where, "unknown " + std::string(what) + " " + ticked(key.text));
    d.help = did_you_mean(key.text, known);
    if (d.help.empty()) d.help = "expected " + list_words(known);
  }

  // One value from a closed list, e.g. a DNSSEC status.
  template <typename T>
  std::optional<T> value(const ast::Word& w, std::optional<T> (*parse)(std::string_view), std::string_view what,
                         const std::vector<std::string_view>& allowed) {
    std::optional<T> v;
    if (w.kind == ast::Word::ident && std::find(allowed.begin(), allowed.end(), w.text) != allowed.end())
      v = parse(w.text);
    if (!v) {
      Diagnostic& d = error("S0201", w.where, "unknown " + std::string(what) + " " + ticked(w.text));
      d.help = did_you_mean(w.text, allowed);
      if (d.help.empty()) d.help = "expected " + list_words(allowed);
    }
    return v;
  }

  // Checks a statement's argument count; `help` shows the right form.
  bool arity(const ast::Statement& st, size_t min, size_t max, std::string_view form) {
    if (st.args.size() >= min && st.args.size() <= max) return true;
    SourceLocation at = st.args.size() > max ? st.args[max].where : st.key.where;
    Diagnostic& d = error("S0208", at,
                          st.args.size() > max ? "too many words after " + ticked(st.key.text)
                                               : ticked(st.key.text) + " needs a value");
    d.help = "write " + ticked(form);
    // `tls tls1.3 cert valid;` is usually a `;` missing before a fact.
    if (st.args.size() > max && st.args[max].kind == ast::Word::ident)
      d.help += " (is a `;` missing before " + ticked(st.args[max].text) + "?)";
    return false;
  }

  bool not_negated(const ast::Statement& st) {
    if (!st.negated) return true;
    error("S0204", st.where, "`no` only applies to `starttls` and `txt`");
    return false;
  }

  std::optional<std::string> string_arg(const ast::Statement& st, std::string_view form) {
    if (!not_negated(st) || !arity(st, 1, 1, form)) return std::nullopt;
    if (st.args[0].kind != ast::Word::string) {
      error("S0208", st.args[0].where, ticked(st.key.text) + " takes a quoted string").help = "write " + ticked(form);
      return std::nullopt;
    }
    return st.args[0].text;
  }

  // Each key at most once per block.
  template <typename Map>
  bool first_time(Map& seen, const std::string& key, SourceLocation where) {
    auto [it, inserted] = seen.emplace(key, where);
    if (!inserted) twice(where, ticked(key), it->second);
    return inserted;
  }

  // ------------------------------------------------------------ settings

  void settings(const ast::Scenario& s, Scenario& out) {
    std::map<std::string, SourceLocation> seen;
    for (const auto& st : s.settings) {
      const std::string& key = st.key.text;
      if (key != "direction" && key != "from" && key != "to" && key != "live") {
        unknown_key(st.key, "setting", kScenarioSettings);
        continue;
      }
      if (!first_time(seen, key, st.key.where) || !not_negated(st)) continue;
      if (key == "live") {
        // `live skip "reason";`: `tlsp simulate --live` does not replay this
        // scenario on the wire, and says why (docs/scenarios.md).
        const char* form = "live skip \"why it cannot run live\";";
        if (!arity(st, 2, 2, form)) continue;
        if (st.args[0].kind != ast::Word::ident || st.args[0].text != "skip") {
          error("S0201", st.args[0].where, "unknown value " + ticked(st.args[0].text) + " for `live`").help =
              std::string("write `") + form + "`";
          continue;
        }
        if (st.args[1].kind != ast::Word::string || st.args[1].text.empty()) {
          error("S0208", st.args[1].where, "`live skip` takes the reason as a non-empty quoted string").help =
              std::string("write `") + form + "`";
          continue;
        }
        out.live_skip = st.args[1].text;
      } else if (key == "direction") {
        if (!arity(st, 1, 1, "direction outbound;")) continue;
        if (auto d = value<Direction>(st.args[0], parse_direction, "direction", {"outbound", "inbound"}))
          out.direction = *d;
      } else {
        auto addr = string_arg(st, key + " \"alice@acme.example\";");
        if (!addr) continue;
        if (domain_of_address(*addr).empty()) {
          error("S0206", st.args[0].where, "invalid envelope address " + ticked(*addr))
              .help = "write an address such as `alice@acme.example`";
          continue;
        }
        (key == "from" ? out.from : out.to) = *addr;
      }
    }
    // One message for all that is missing: an empty scenario is one mistake.
    std::vector<std::string_view> missing;
    for (std::string_view key : {"direction", "from", "to"})
      if (!seen.count(std::string(key))) missing.push_back(key);
    if (!missing.empty()) {
      Diagnostic& d = error("S0203", s.name.where, "the scenario " + ticked(s.name.text) + " has no " + list_words(missing));
      d.help = "add " + std::string(missing[0] == "direction" ? "`direction outbound;` (or `inbound`)"
                                                              : "`" + std::string(missing[0]) + " \"someone@example.com\";`");
      if (missing.size() > 1) d.help = "a scenario needs `direction`, `from` and `to`";
    }
  }

  // ------------------------------------------------------------ outbound

  void mx(const ast::Scenario& s, Scenario& out) {
    const std::string recipient_domain = domain_of_address(out.to);
    if (s.mx.empty()) {
      if (!recipient_domain.empty())
        error("S0203", s.name.where, "no `mx` block for the recipient's domain " + ticked(recipient_domain))
            .help = "add `mx \"" + recipient_domain + "\" dnssec secure { host \"mx1." + recipient_domain +
                    "\" pref 10 { starttls; } }`";
      return;
    }
    if (s.mx.size() > 1) twice(s.mx[1].where, "`mx`", s.mx[0].where);
    const ast::Mx& m = s.mx[0];
    out.mx_domain = normal_domain(m.domain.text);
    if (out.mx_domain.empty()) {
      error("S0206", m.domain.where, "invalid domain name " + ticked(m.domain.text));
    } else if (!recipient_domain.empty() && out.mx_domain != recipient_domain) {
      Diagnostic& d = error("S0205", m.domain.where,
                            "unknown domain " + ticked(m.domain.text) + ": the recipient's domain is " +
                                ticked(recipient_domain));
      d.help = "the `mx` block describes the recipient's domain; write `mx \"" + recipient_domain + "\"`";
    }
    std::map<std::string, SourceLocation> seen;
    for (const auto& a : m.attrs) {
      if (a.key.text != "dnssec") {
        unknown_key(a.key, "`mx` attribute", {"dnssec"});
        continue;
      }
      if (!first_time(seen, a.key.text, a.key.where)) continue;
      if (auto v = value<DnsStatus>(a.value, parse_dns_status, "DNSSEC status", kDnsStatuses)) out.mx_dnssec = *v;
    }
    std::map<std::string, SourceLocation> hosts;
    for (const auto& h : m.hosts) {
      HostScript host;
      mx_host(h, host);
      if (host.name.empty()) continue;
      if (!first_time(hosts, host.name, h.name.where)) continue;
      out.hosts.push_back(std::move(host));
    }
  }

  void mx_host(const ast::Host& h, HostScript& out) {
    out.where = h.where;
    out.name = normal_domain(h.name.text);
    if (out.name.empty()) error("S0206", h.name.where, "invalid host name " + ticked(h.name.text));
    std::map<std::string, SourceLocation> seen;
    for (const auto& a : h.attrs) {
      const std::string& key = a.key.text;
      if (key != "pref" && key != "addr-dnssec") {
        unknown_key(a.key, "`host` attribute", {"pref", "addr-dnssec"});
        continue;
      }
      if (!first_time(seen, key, a.key.where)) continue;
      if (key == "pref") {
        uint32_t n = 0;
        auto [ptr, ec] = std::from_chars(a.value.text.data(), a.value.text.data() + a.value.text.size(), n);
        if (a.value.kind != ast::Word::number || ec != std::errc() || n > 65535)
          error("S0201", a.value.where, "the MX preference must be a number from 0 to 65535, not " + ticked(a.value.text));
        else
          out.pref = n;
      } else if (auto v = value<DnsStatus>(a.value, parse_dns_status, "DNSSEC status", kDnsStatuses)) {
        out.addr_dnssec = *v;
      }
    }
    facts(h, out, /*client=*/false);
  }

  // ---------------------------------------------------------------- hosts

  void client(const ast::Host& h, HostScript& out) {
    out.where = h.where;
    out.name = h.name.text;
    if (!is_ip_address(out.name))
      error("S0206", h.name.where, "invalid client address " + ticked(h.name.text))
          .help = "write an IPv4 or IPv6 address such as `203.0.113.9` or `2001:db8::25`";
    facts(h, out, /*client=*/true);
  }

  void facts(const ast::Host& h, HostScript& out, bool is_client) {
    std::map<std::string, SourceLocation> seen;
    std::optional<SourceLocation> versions_at;  // `tls` or `handshake`: both say which versions work
    for (const auto& st : h.facts) {
      const std::string& key = st.key.text;
      const bool known = std::find(kHostFacts.begin(), kHostFacts.end(), key) != kHostFacts.end() && key != "tlsa";
      if (!known || (is_client && key == "cert")) {
        if (is_client && key == "cert")
          error("S0204", st.key.where, "`cert` is a fact of an MX host; an inbound client's certificate is not checked");
        else
          unknown_key(st.key, is_client ? "client fact" : "host fact", is_client ? kClientFacts : kHostFacts);
        continue;
      }
      if (!first_time(seen, key, st.key.where)) continue;
      if (key == "starttls") {
        if (st.negated) {
          if (arity(st, 0, 0, "no starttls;")) out.starttls = false;
        } else if (arity(st, 0, 1, "starttls stripped;")) {
          // `stripped`: an attacker removed STARTTLS from the EHLO reply;
          // the sender sees exactly a peer without STARTTLS.
          if (st.args.empty()) out.starttls = true;
          else if (st.args[0].kind == ast::Word::ident && st.args[0].text == "stripped") out.starttls = false;
          else error("S0201", st.args[0].where, "unknown word " + ticked(st.args[0].text) + " after `starttls`")
                   .help = "write `starttls;`, `no starttls;` or `starttls stripped;`";
        }
        continue;
      }
      if (!not_negated(st)) continue;
      if (key == "tls" || key == "handshake") {
        if (versions_at) {
          Diagnostic& d = error("S0209", st.key.where, "`tls` and `handshake fails` both say which TLS versions work");
          d.notes.push_back({*versions_at, "the other one is here"});
          continue;
        }
        versions_at = st.key.where;
      }
      if (key == "tls") {
        if (!arity(st, 1, 4, "tls tls1.2 tls1.3;")) continue;
        TlsVersionSet set = 0;
        for (const auto& w : st.args) {
          if (w.kind == ast::Word::ident && std::find(kHostFacts.begin(), kHostFacts.end(), w.text) != kHostFacts.end()) {
            error("S0201", w.where, "expected a TLS version, found " + ticked(w.text))
                .help = "is a `;` missing before " + ticked(w.text) + "?";
            break;
          }
          if (auto v = value<TlsVersion>(w, parse_tls_version, "TLS version", kVersions)) set |= version_bit(*v);
        }
        out.tls = set;
      } else if (key == "handshake") {
        if (!arity(st, 1, 1, "handshake fails;")) continue;
        if (st.args[0].text != "fails") {
          error("S0201", st.args[0].where, "unknown word " + ticked(st.args[0].text) + " after `handshake`")
              .help = "write `handshake fails;` (the peer's TLS fails whatever the version)";
          continue;
        }
        out.tls = 0;
      } else if (key == "cert") {
        if (!arity(st, 1, 1, "cert valid;")) continue;
        if (auto v = value<CertStatus>(st.args[0], parse_cert_status, "certificate status", kCerts)) out.cert = *v;
      }
    }
    if (h.tlsa.size() > 1) twice(h.tlsa[1].where, "`tlsa`", h.tlsa[0].where);
    if (!h.tlsa.empty()) {
      if (is_client)
        error("S0204", h.tlsa[0].where, "`tlsa` is a fact of an MX host; inbound clients are not authenticated");
      else
        tlsa(h.tlsa[0], out);
    }
  }

  // ----------------------------------------------------------------- TLSA

  void tlsa(const ast::Tlsa& t, HostScript& host) {
    TlsaScript out;
    std::map<std::string, SourceLocation> seen;
    for (const auto& a : t.attrs) {
      if (a.key.text != "dnssec") {
        unknown_key(a.key, "`tlsa` attribute", {"dnssec"});
        continue;
      }
      if (!first_time(seen, a.key.text, a.key.where)) continue;
      out.dnssec = value<DnsStatus>(a.value, parse_dns_status, "DNSSEC status", kDnsStatuses);
    }
    for (const auto& st : t.records) {
      if (!not_negated(st)) continue;
      if (auto r = tlsa_record(st)) out.records.push_back(std::move(*r));
    }
    if (out.dnssec && !out.records.empty()) {
      DnsStatus s = *out.dnssec;
      if (s == DnsStatus::nxdomain || s == DnsStatus::servfail || s == DnsStatus::timeout)
        error("S0209", t.records.front().where,
              "a TLSA answer with status " + ticked(to_string(s)) + " has no records")
            .help = "remove the records, or give the answer's status as `secure`, `insecure` or `bogus`";
    }
    host.tlsa = std::move(out);
  }

  std::optional<TlsaRecordScript> tlsa_record(const ast::Statement& st) {
    const std::string& key = st.key.text;
    TlsaRecordScript r;
    r.where = st.where;
    if (key == "dane-ee" || key == "dane-ta") {
      if (!arity(st, 1, 1, key + " match;")) return std::nullopt;
      const std::string& m = st.args[0].text;
      if (m != "match" && m != "mismatch") {
        error("S0201", st.args[0].where, "expected `match` or `mismatch` after " + ticked(key) + ", found " + ticked(m));
        return std::nullopt;
      }
      r.kind = parse_tlsa_kind(key + "-" + m);
      return r;
    }
    if (key == "pkix-ee" || key == "pkix-ta" || key == "bad-selector" || key == "bad-mtype" || key == "bad-length") {
      if (!arity(st, 0, 0, key + ";")) return std::nullopt;
      r.kind = parse_tlsa_kind(key);
      return r;
    }
    if (key != "record") {
      unknown_key(st.key, "TLSA record", kTlsaRecords);
      return std::nullopt;
    }
    auto text = string_arg(st, "record \"3 1 1 <hex>\";");
    if (!text) return std::nullopt;
    return literal_tlsa(*text, st.args[0].where, r) ? std::optional(r) : std::nullopt;
  }

  // The presentation form `usage selector mtype hex...` (RFC 6698 §2.2);
  // the hex may be split by spaces, as in zone files.
  bool literal_tlsa(const std::string& text, SourceLocation where, TlsaRecordScript& r) {
    r.text = text;
    std::vector<std::string> fields;
    size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
      size_t j = i;
      while (j < text.size() && text[j] != ' ' && text[j] != '\t') ++j;
      if (j > i) fields.push_back(text.substr(i, j - i));
      i = j;
    }
    auto bad = [&](const std::string& why) {
      error("S0207", where, "invalid TLSA record " + ticked(text) + ": " + why)
          .help = "write `record \"USAGE SELECTOR MTYPE HEX\"`, e.g. `record \"3 1 1 " + std::string(64, '0') + "\"`";
      return false;
    };
    if (fields.size() < 3) return bad("expected three numbers and the hex data");
    uint8_t* parts[3] = {&r.usage, &r.selector, &r.mtype};
    for (int k = 0; k < 3; ++k) {
      unsigned n = 256;
      auto [ptr, ec] = std::from_chars(fields[k].data(), fields[k].data() + fields[k].size(), n);
      if (ec != std::errc() || ptr != fields[k].data() + fields[k].size() || n > 255)
        return bad(ticked(fields[k]) + " is not a number from 0 to 255");
      *parts[k] = static_cast<uint8_t>(n);
    }
    std::string hex;
    for (size_t k = 3; k < fields.size(); ++k) hex += fields[k];
    if (hex.size() % 2 != 0) return bad("the hex data has an odd number of digits");
    for (size_t k = 0; k < hex.size(); k += 2) {
      int hi = hex_value(hex[k]), lo = hex_value(hex[k + 1]);
      if (hi < 0 || lo < 0) return bad("the data is not hexadecimal");
      r.data += static_cast<char>(hi * 16 + lo);
    }
    return true;
  }

  // -------------------------------------------------------------- MTA-STS

  void mta_sts(const ast::MtaSts& m, MtaStsScript& out) {
    std::map<std::string, SourceLocation> seen;
    for (const auto& st : m.facts) {
      const std::string& key = st.key.text;
      if (std::find(kStsFacts.begin(), kStsFacts.end(), key) == kStsFacts.end()) {
        unknown_key(st.key, "MTA-STS fact", kStsFacts);
        continue;
      }
      if (!first_time(seen, key, st.key.where)) continue;
      if (key == "txt") {
        if (st.negated) {
          arity(st, 0, 0, "no txt;");
        } else if (auto t = string_arg(st, "txt \"v=STSv1; id=20260101\";")) {
          out.txt = *t;
        }
      } else if (key == "policy") {
        if (auto p = string_arg(st, "policy \"version: STSv1\\nmode: enforce\\nmx: *.example.com\\nmax_age: 86400\";"))
          out.policy = *p;
      } else if (key == "fetch") {
        if (!not_negated(st) || !arity(st, 1, 1, "fetch timeout;")) continue;
        if (st.args[0].text == "ok") {
          error("S0211", st.args[0].where, "a successful fetch needs the policy it returns")
              .help = "write the body instead: `policy \"version: STSv1\\nmode: enforce\\n...\";`";
          continue;
        }
        out.fetch = value<StsFetch>(st.args[0], parse_sts_fetch, "fetch result", kFetchFailures);
      } else if (key == "cached") {
        if (!not_negated(st) || !arity(st, 1, 64, "cached enforce mx \"*.example.com\";")) continue;
        out.cached = value<StsMode>(st.args[0], parse_sts_mode, "MTA-STS mode", kModes);
        if (st.args.size() == 1) continue;
        if (st.args[1].kind != ast::Word::ident || st.args[1].text != "mx" || st.args.size() < 3) {
          error("S0208", st.args[1].where, "expected `mx` and the cached policy's patterns after the mode")
              .help = "write `cached enforce;` or `cached enforce mx \"*.example.com\" \"mx.example.net\";`";
          continue;
        }
        std::vector<std::string> patterns;
        for (size_t k = 2; k < st.args.size(); ++k) {
          if (st.args[k].kind != ast::Word::string) {
            error("S0208", st.args[k].where, "an `mx` pattern is a quoted string");
            continue;
          }
          patterns.push_back(st.args[k].text);
        }
        out.cached_mx = std::move(patterns);
      }
    }
    if (out.policy && out.fetch) {
      Diagnostic& d = error("S0209", seen["fetch"], "`fetch` and `policy` both say what the policy fetch returns");
      d.notes.push_back({seen["policy"], "`policy` is here"});
    }
    // A valid TXT record makes the sender fetch the policy; the scenario
    // must say what that fetch gives rather than leave it to a default.
    if (out.txt && parse_mta_sts_txt(*out.txt) && !out.policy && !out.fetch)
      error("S0211", seen["txt"], "the TXT record announces a policy, but the scenario does not say what fetching it gives")
          .help = "add `policy \"...\";` (the body served) or `fetch http-error;` / `timeout` / `bad-cert` / `invalid`";
  }

  // ------------------------------------------------------------ expectation

  void expectation(const ast::Expect& e, Scenario& s) {
    Expectation& out = s.expect;
    out.where = e.where;
    std::optional<OutcomeKind> outcome = value<OutcomeKind>(e.outcome, parse_outcome, "outcome", kOutcomes);
    if (outcome) out.outcome = *outcome;
    std::map<std::string, SourceLocation> seen;
    for (const auto& f : e.fields) {
      const std::string& key = f.key.text;
      if (std::find(kExpectFields.begin(), kExpectFields.end(), key) == kExpectFields.end()) {
        unknown_key(f.key, "`expect` field", kExpectFields);
        continue;
      }
      if (!first_time(seen, key, f.key.where)) continue;
      if (key == "channel") {
        out.channel = value<Channel>(f.value, parse_channel, "channel", kChannels);
      } else if (key == "applied") {
        if (auto l = value<Level>(f.value, parse_level, "level", kLevels)) out.applied = *l;
      } else if (key == "tls") {
        std::vector<std::string_view> versions = kVersions;
        versions.push_back("none");
        out.tls = value<TlsVersion>(f.value, parse_tls_version, "TLS version", versions);
      } else if (key == "reason") {
        std::vector<std::string_view> reasons;
        for (int r = 0; r < kReasonCount; ++r) reasons.push_back(to_string(static_cast<Reason>(r)));
        out.reason = value<Reason>(f.value, parse_reason, "reason", reasons);
      } else if (key == "via") {
        if (f.value.kind != ast::Word::string) {
          error("S0208", f.value.where, "`via` takes the MX host's name as a quoted string");
          continue;
        }
        if (s.direction == Direction::inbound) {
          error("S0204", f.key.where, "`via` names the MX host that took the message; inbound scenarios have none");
          continue;
        }
        std::string host = normal_domain(f.value.text);
        bool known = !host.empty() && (s.hosts.empty() ? host == s.mx_domain
                                                       : std::any_of(s.hosts.begin(), s.hosts.end(),
                                                                     [&](const HostScript& h) { return h.name == host; }));
        if (!known) {
          error("S0205", f.value.where, "unknown MX host " + ticked(f.value.text))
              .help = "`via` names one of the hosts in the `mx` block";
          continue;
        }
        out.via = host;
      }
    }
    if (!seen.count("applied"))
      error("S0203", e.outcome.where, "the expectation has no `applied` level")
          .help = "add the level actually applied, e.g. `applied mandatory`";
    if (outcome && *outcome != OutcomeKind::refuse && !seen.count("channel"))
      error("S0203", e.outcome.where, "the expectation has no `channel`")
          .help = "add `channel plaintext`, `channel encrypted` or `channel authenticated`";
    if (outcome && *outcome == OutcomeKind::refuse) {
      if (out.channel && *out.channel != Channel::none)
        error("S0209", seen["channel"], "a refusal sends nothing: its channel is `none`");
      out.channel = Channel::none;
    }
  }

  ScenarioSink& sink_;
};

LoadedSource make_source(std::string display_path, std::string text) {
  LoadedSource src;
  src.display_path = display_path;
  src.table_path = std::move(display_path);
  src.text = std::move(text);
  src.line_starts.push_back(0);
  for (size_t i = 0; i < src.text.size(); ++i)
    if (src.text[i] == '\n') src.line_starts.push_back(static_cast<uint32_t>(i + 1));
  return src;
}

}  // namespace

ScenarioFile parse_scenarios(std::string display_path, std::string text) {
  ScenarioFile file;
  file.source = make_source(std::move(display_path), std::move(text));
  ScenarioSink sink;
  ast::File tree;
  if (!parse_scenario_syntax(file.source, tree, sink)) {
    file.syntax_error = true;
  } else {
    Checker checker(sink);
    std::map<std::string, SourceLocation> names;
    for (const auto& s : tree.scenarios) {
      const size_t before = sink.count();
      auto [it, inserted] = names.emplace(s.name.text, s.name.where);
      if (!inserted) {
        Diagnostic& d = sink.error("S0210", s.name.where, "a second scenario named " + ticked(s.name.text));
        d.notes.push_back({it->second, "the first one is here"});
        d.help = "scenario names identify results and must be unique in a file";
      }
      std::optional<Scenario> sc = checker.scenario(s);
      if (sc && sink.count() == before)
        file.scenarios.push_back(std::move(*sc));
      else
        file.broken.push_back({s.name.text, s.where});
    }
  }
  file.diagnostics = std::move(sink.items());
  std::stable_sort(file.diagnostics.begin(), file.diagnostics.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.where.line, a.where.column) < std::tie(b.where.line, b.where.column);
  });
  // Last, whatever its position: it is about the list, not a place.
  if (auto at = sink.first_dropped()) {
    Diagnostic d{Severity::error,
                 "S0106",
                 *at,
                 "too many errors; stopped after " + std::to_string(kMaxScenarioDiagnostics),
                 {},
                 {}};
    d.help = "fix the first errors and run again";
    file.diagnostics.push_back(std::move(d));
  }
  return file;
}

std::string render_diagnostics(const ScenarioFile& file) {
  std::vector<LoadedSource> sources{file.source};
  std::string out;
  for (const auto& d : file.diagnostics) out += render_diagnostic(d, sources);
  return out;
}

std::vector<std::string> render_broken_diagnostics(const ScenarioFile& file) {
  // Every scenario's start, with the index of the broken one it is (or
  // npos), in file order; a diagnostic belongs to the last start before it.
  auto key = [](const SourceLocation& w) { return std::pair(w.line, w.column); };
  std::vector<std::pair<std::pair<uint32_t, uint32_t>, size_t>> starts;
  for (const auto& s : file.scenarios) starts.push_back({key(s.where), std::string::npos});
  for (size_t i = 0; i < file.broken.size(); ++i) starts.push_back({key(file.broken[i].where), i});
  std::sort(starts.begin(), starts.end());
  std::vector<std::string> out(file.broken.size());
  if (file.broken.empty()) return out;
  std::vector<LoadedSource> sources{file.source};  // one copy of the text for all
  for (const auto& d : file.diagnostics) {
    auto it = std::upper_bound(starts.begin(), starts.end(), std::pair(key(d.where), std::string::npos));
    if (it == starts.begin() || std::prev(it)->second == std::string::npos) continue;
    out[std::prev(it)->second] += render_diagnostic(d, sources);
  }
  return out;
}

}  // namespace tlsp::sim
