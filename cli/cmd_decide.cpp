// cmd_decide.cpp — `tlsp decide`: the enforcement engine as a machine
// interface. One JSON object per input line (a delivery attempt to one MX
// host, or one inbound session), one JSON object per output line, in order.
// docs/decide.md is the schema. A line that is not valid (unknown key or
// value, wrong type) gives {"error": "..."} on its output line, the same
// message on stderr, and exit code 1 at the end; the other lines are still
// answered.
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "tlsp/engine.h"

namespace tlsp::cli {
namespace {

using nlohmann::json;

struct LineError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename T>
T enum_value(const json& j, const std::string& key, std::optional<T> (*parse)(std::string_view)) {
  if (!j.is_string()) throw LineError("key `" + key + "` must be a string");
  auto v = parse(j.get<std::string>());
  if (!v) throw LineError("unknown value `" + j.get<std::string>() + "` for key `" + key + "`");
  return *v;
}

bool bool_value(const json& j, const std::string& key) {
  if (!j.is_boolean()) throw LineError("key `" + key + "` must be true or false");
  return j.get<bool>();
}

void only_keys(const json& obj, std::initializer_list<std::string_view> known, const std::string& where) {
  if (!obj.is_object()) throw LineError("`" + where + "` must be an object");
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (std::find(known.begin(), known.end(), it.key()) == known.end())
      throw LineError("unknown key `" + (where.empty() ? "" : where + ".") + it.key() + "`");
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

nlohmann::ordered_json outcome_json(const Outcome& o) {
  nlohmann::ordered_json out;
  out["outcome"] = to_string(o.kind);
  out["channel"] = to_string(o.channel);
  out["applied"] = to_string(o.applied);
  out["tls"] = to_string(o.tls);
  out["reason"] = to_string(o.reason);
  return out;
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
                     "(docs/decide.md).",
                     opts, &pos, args, vm))
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
  for (size_t n = 1; std::getline(*in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      json j;
      try {
        j = json::parse(line);
      } catch (const json::parse_error& e) {
        throw LineError("not valid JSON");
      }
      Request r = parse_request(j);
      std::cout << outcome_json(decide(r.direction, r.rule, r.facts)).dump() << "\n";
    } catch (const LineError& e) {
      failed = true;
      std::string msg = name + ":" + std::to_string(n) + ": error: " + e.what();
      std::cerr << msg << "\n";
      std::cout << json{{"error", msg}}.dump() << "\n";
    }
  }
  return failed ? kExitErrors : kExitOk;
}

}  // namespace tlsp::cli
