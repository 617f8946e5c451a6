// cmd_decide.cpp — `tlsp decide`: the enforcement engine as a machine
// interface. One JSON object per input line (a delivery attempt to one MX
// host, or one inbound session), one JSON object per output line, in order.
// docs/engine.md is the schema. A line that is not valid (not JSON, an
// unknown key or value, a wrong type, a number out of range, too long, too
// deeply nested) gives {"error": "..."} on its output line, the same message
// on stderr, and exit code 1 at the end; the other lines are still answered.
// No input line can end the run: a line is read only up to
// kMaxDecideLineBytes (the rest is skipped unread into memory), the JSON
// parser stops at kMaxDecideJsonDepth, and every exception a line can cause
// becomes that line's error.
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "outcome_json.h"
#include "tlsp/base/quote.h"
#include "tlsp/engine.h"

namespace tlsp::cli {
namespace {

using nlohmann::json;

// A request is a few hundred bytes and three levels deep (object > tlsa >
// records); these leave room for any real one and bound a hostile one.
constexpr size_t kMaxDecideLineBytes = 64 * 1024;
constexpr int kMaxDecideJsonDepth = 8;

struct LineError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// User text in a message, in backticks, as every tlsp message quotes it
// (tlsp/base/quote.h): escaped, cut after 80 characters, so a message stays
// one short printable line.
std::string in_backticks(std::string_view s) { return tlsp::base::ticked(s, 80); }

template <typename T>
T enum_value(const json& j, const std::string& key, std::optional<T> (*parse)(std::string_view)) {
  if (!j.is_string()) throw LineError("key `" + key + "` must be a string");
  auto v = parse(j.get<std::string>());
  if (!v) throw LineError("unknown value " + in_backticks(j.get<std::string>()) + " for key `" + key + "`");
  return *v;
}

bool bool_value(const json& j, const std::string& key) {
  if (!j.is_boolean()) throw LineError("key `" + key + "` must be true or false");
  return j.get<bool>();
}

void only_keys(const json& obj, std::initializer_list<std::string_view> known, const std::string& where) {
  if (!obj.is_object())
    throw LineError(where.empty() ? "a line must be a JSON object" : "`" + where + "` must be an object");
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (std::find(known.begin(), known.end(), it.key()) == known.end())
      throw LineError("unknown key " + in_backticks((where.empty() ? "" : where + ".") + it.key()));
}

struct Request {
  Direction direction = Direction::outbound;
  RuleInput rule;
  PeerFacts facts;
};

Request parse_request(const json& j) {
  only_keys(j, {"direction", "level", "min_tls", "starttls", "peer_tls", "cert", "mx_dnssec", "addr_dnssec", "tlsa", "sts"},
            "");
  Request r;
  r.facts.peer_tls = kAllTlsVersions;
  if (j.contains("direction")) r.direction = enum_value<Direction>(j["direction"], "direction", parse_direction);
  if (j.contains("level")) r.rule.level = enum_value<Level>(j["level"], "level", parse_level);
  if (j.contains("min_tls")) r.rule.min_tls = enum_value<MinTls>(j["min_tls"], "min_tls", parse_min_tls);
  if (j.contains("starttls")) r.facts.starttls = bool_value(j["starttls"], "starttls");
  if (j.contains("peer_tls")) {
    const json& list = j["peer_tls"];
    if (!list.is_array()) throw LineError("key `peer_tls` must be a list of versions");
    r.facts.peer_tls = 0;
    for (const auto& v : list) {
      TlsVersion version = enum_value<TlsVersion>(v, "peer_tls", parse_tls_version);
      if (version == TlsVersion::none) throw LineError("unknown value `none` for key `peer_tls`");
      r.facts.peer_tls |= version_bit(version);
    }
  }
  if (j.contains("cert")) r.facts.cert = enum_value<CertStatus>(j["cert"], "cert", parse_cert_status);
  auto lookup_status = [](const json& v, const std::string& key) {
    DnsStatus s = enum_value<DnsStatus>(v, key, parse_dns_status);
    if (s == DnsStatus::nxdomain) throw LineError("unknown value `nxdomain` for key `" + key + "`");
    return s;
  };
  if (j.contains("mx_dnssec")) r.facts.mx_dnssec = lookup_status(j["mx_dnssec"], "mx_dnssec");
  if (j.contains("addr_dnssec")) r.facts.addr_dnssec = lookup_status(j["addr_dnssec"], "addr_dnssec");
  if (j.contains("tlsa")) {
    const json& t = j["tlsa"];
    only_keys(t, {"dnssec", "records"}, "tlsa");
    if (t.contains("records")) {
      if (!t["records"].is_array()) throw LineError("key `tlsa.records` must be a list");
      for (const auto& rec : t["records"])
        r.facts.tlsa |= tlsa_bit(enum_value<TlsaKind>(rec, "tlsa.records", parse_tlsa_kind));
      r.facts.tlsa_dnssec = DnsStatus::secure;  // records given: a secure answer unless said otherwise
    }
    if (t.contains("dnssec")) r.facts.tlsa_dnssec = enum_value<DnsStatus>(t["dnssec"], "tlsa.dnssec", parse_dns_status);
  }
  if (j.contains("sts")) {
    const json& s = j["sts"];
    only_keys(s, {"txt", "fetch", "mode", "mx_match", "cached"}, "sts");
    MtaStsFacts& sts = r.facts.sts;
    sts.fetch = StsFetch::ok;
    sts.mx_match = true;
    if (s.contains("txt")) sts.txt = bool_value(s["txt"], "sts.txt");
    if (s.contains("fetch")) sts.fetch = enum_value<StsFetch>(s["fetch"], "sts.fetch", parse_sts_fetch);
    if (s.contains("mode")) sts.mode = enum_value<StsMode>(s["mode"], "sts.mode", parse_sts_mode);
    if (s.contains("mx_match")) sts.mx_match = bool_value(s["mx_match"], "sts.mx_match");
    if (s.contains("cached") && !s["cached"].is_null())
      sts.cached = enum_value<StsMode>(s["cached"], "sts.cached", parse_sts_mode);
  }
  if (r.direction == Direction::inbound && is_outbound_only(r.rule.level))
    throw LineError("level `" + std::string(to_string(r.rule.level)) + "` is outbound only");
  return r;
}

// One line of `in` into `line`, without its '\n'; false at the end of the
// input. A line longer than kMaxDecideLineBytes is kept only up to the limit
// and `too_long` is set; the rest of it is read and dropped.
bool read_line(std::istream& in, std::string& line, bool& too_long) {
  line.clear();
  too_long = false;
  std::streambuf* buf = in.rdbuf();
  bool any = false;
  for (int c; (c = buf->sbumpc()) != std::char_traits<char>::eof();) {
    any = true;
    if (c == '\n') return true;
    if (line.size() < kMaxDecideLineBytes)
      line += static_cast<char>(c);
    else
      too_long = true;
  }
  return any;
}

// The line as JSON, or a LineError saying why not. Every exception the JSON
// library can throw for a line (a syntax error, a number beyond a double,
// too deep) is this line's error.
json parse_line(const std::string& line) {
  // The JSON library takes a NUL byte for the end of the input, so
  // `{...}<NUL>junk` would pass; JSON text never holds a raw NUL.
  if (line.find('\0') != std::string::npos) throw LineError("not valid JSON: a NUL byte");
  try {
    // The callback sees each value's depth before it is built.
    return json::parse(line, [](int depth, json::parse_event_t event, json&) {
      if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
          depth >= kMaxDecideJsonDepth)
        throw LineError("nested deeper than " + std::to_string(kMaxDecideJsonDepth) + " levels");
      return true;
    });
  } catch (const json::out_of_range&) {
    throw LineError("not valid JSON: a number is out of range");
  } catch (const json::exception&) {
    throw LineError("not valid JSON");
  }
}

}  // namespace

int cmd_decide(const Args& args) {
  po::options_description opts("options");
  std::string input = "-";
  opts.add_options()("input", po::value(&input), "JSON Lines file (positional; `-` or absent: standard input)");
  po::positional_options_description pos;
  pos.add("input", 1);
  po::variables_map vm;
  if (!parse_options("decide", "[FILE]",
                     "Reads delivery facts as JSON Lines and writes the engine's outcome for each line "
                     "(docs/engine.md).",
                     opts, &pos, args, vm, {{"input", "input file"}}))
    return 0;
  std::ifstream file;
  std::istream* in = &std::cin;
  if (input != "-") {
    file.open(input);
    if (!file) {
      std::cerr << "tlsp: error: cannot read `" << input << "`\n";
      return kExitUsage;
    }
    in = &file;
  }
  const std::string name = input == "-" ? "<stdin>" : input;
  bool failed = false;
  std::string line;
  bool too_long = false;
  for (size_t n = 1; read_line(*in, line, too_long); ++n) {
    if (!too_long && line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      if (too_long) throw LineError("the line is longer than " + std::to_string(kMaxDecideLineBytes) + " bytes");
      Request r = parse_request(parse_line(line));
      std::cout << outcome_json(decide(r.direction, r.rule, r.facts)).dump() << "\n";
    } catch (const LineError& e) {
      failed = true;
      std::string msg = name + ":" + std::to_string(n) + ": error: " + e.what();
      std::cerr << msg << "\n";
      // `replace`: the message never holds invalid UTF-8 (the parser refuses
      // it and in_backticks() cuts on a boundary), but an answer must never throw.
      std::cout << json{{"error", msg}}.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    } catch (const json::exception& e) {
      // A type the checks above missed: still this line's error, never the run's.
      failed = true;
      std::string msg = name + ":" + std::to_string(n) + ": error: not a valid request";
      std::cerr << msg << "\n";
      std::cout << json{{"error", msg}}.dump() << "\n";
    }
  }
  return failed ? kExitErrors : kExitOk;
}

}  // namespace tlsp::cli
