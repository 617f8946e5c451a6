// cmd_tlsrpt_send.cpp — `tlsp tlsrpt send`: one TLSRPT report file sent by
// hand to its policy domain's collectors (the `rua` URIs of its
// `_smtp._tls` TXT record, or `--to URI`). https: is POSTed now, and a
// failed POST goes to the relay's outbox (`<spool>/tlsrpt-outbox`), which
// the relay retries (tlsp/tlsrpt_send.h); mailto: is queued in the relay's
// spool as a report mail (QueueEntry::tlsrpt_report), which only works
// while no relay holds the spool (a running relay sends its own reports).
//
// The `tlsrpt` command's dispatcher and its operations list live here too
// until the report and summarize operations join them.
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "relay_settings.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/base/quote.h"
#include "tlsp/dns.h"
#include "tlsp/spool.h"
#include "tlsp/tlsrpt_delivery.h"
#include "tlsp/tlsrpt_send.h"

namespace tlsp::cli {
namespace {

using base::display_text;

std::string system_hostname() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

// The report file: JSON, or gzipped JSON; bounded.
std::optional<std::string> read_report(const std::string& path, std::string& problem) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    problem = "cannot read `" + path + "`";
    return std::nullopt;
  }
  std::string bytes;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    bytes.append(buf, static_cast<size_t>(in.gcount()));
    if (bytes.size() > tlsrpt::kMaxReportJsonBytes) {
      problem = "`" + path + "` is larger than " + std::to_string(tlsrpt::kMaxReportJsonBytes) + " bytes";
      return std::nullopt;
    }
  }
  if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f && static_cast<unsigned char>(bytes[1]) == 0x8b) {
    auto json = tlsrpt::gunzip_report(bytes);
    if (!json) {
      problem = "`" + path + "` is not a whole gzip stream";
      return std::nullopt;
    }
    return json;
  }
  return bytes;
}

int64_t iso_time(const std::string& s) {
  std::tm tm{};
  if (!strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm)) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

int tlsrpt_send(const Args& args) {
  po::options_description opts("options");
  std::string report_file, domain, submitter, from, spool, config, resolver, ca_file;
  std::vector<std::string> to;
  opts.add_options()("report", po::value(&report_file)->required(), "the report (positional)")(
      "to", po::value(&to)->composing(), "send to this mailto: or https: URI instead of the discovered ones (repeatable)")(
      "domain", po::value(&domain), "the policy domain (default: the report's first policy-domain)")(
      "submitter", po::value(&submitter), "TLS-Report-Submitter (default: the domain of the sender)")(
      "from", po::value(&from), "the report mail's sender (default: the relay's tlsrpt-from)")(
      "spool", po::value(&spool), "the relay's spool directory (mailto: queue, https: outbox)")(
      "config", po::value(&config), "the relay's configuration file (default /etc/tlsp/relay.conf when it exists)")(
      "resolver", po::value(&resolver), "DNS resolver address:port (default: the relay's resolver)")(
      "ca-file", po::value(&ca_file), "CA bundle for the https: collectors (default: the relay's ca-file)");
  po::positional_options_description pos;
  pos.add("report", 1);
  po::variables_map vm;
  if (!parse_options("tlsrpt send", "REPORT [--to URI]... [--domain D] [--spool DIR | --config FILE]",
                     "Sends one TLSRPT report (RFC 8460 JSON, or gzipped) to the policy domain's collectors:\n"
                     "the `rua` URIs of its _smtp._tls TXT record, or --to URI. https: is POSTed now; a\n"
                     "failed POST is left in the relay's outbox, which the relay retries for 24 hours.\n"
                     "mailto: is queued in the relay's spool as a report mail; only while no relay runs.",
                     opts, &pos, args, vm, {{"report", "file"}}))
    return kExitOk;

  if (!spool.empty() && !config.empty()) throw UsageError("tlsp tlsrpt send: give --spool or --config, not both");
  RelayConfig relay;
  const std::string config_path = config.empty() ? std::string(kDefaultRelayConfigPath) : config;
  if (!config.empty() || (spool.empty() && ::access(config_path.c_str(), F_OK) == 0)) {
    std::vector<std::string> errors;
    auto loaded = load_relay_config(config_path, errors);
    if (!loaded) {
      for (const std::string& e : errors) std::cerr << e << "\n";
      return kExitUsage;
    }
    relay = *loaded;
  }
  if (!spool.empty()) relay.spool_dir = spool;
  if (!resolver.empty()) relay.resolver = resolver;
  if (!ca_file.empty()) relay.ca_file = ca_file;
  if (!from.empty()) relay.tlsrpt_from = from;
  const std::string hostname = relay.hostname.empty() ? system_hostname() : relay.hostname;
  if (relay.tlsrpt_from.empty()) relay.tlsrpt_from = "tlsrpt@" + hostname;

  std::string problem;
  auto json_text = read_report(report_file, problem);
  if (!json_text) {
    std::cerr << "tlsp tlsrpt send: error: " << problem << "\n";
    return kExitUsage;
  }
  nlohmann::json report = nlohmann::json::parse(*json_text, nullptr, false);
  if (report.is_discarded() || !report.is_object() || !report.contains("report-id") ||
      !report["report-id"].is_string()) {
    std::cerr << "tlsp tlsrpt send: error: `" << display_text(report_file)
              << "` is not an RFC 8460 report (a JSON object with a `report-id`)\n";
    return kExitErrors;
  }
  const std::string report_id = report["report-id"].get<std::string>();
  int64_t begin = 0, end = 0;
  if (report.contains("date-range") && report["date-range"].is_object()) {
    const auto& r = report["date-range"];
    if (r.contains("start-datetime") && r["start-datetime"].is_string()) begin = iso_time(r["start-datetime"]);
    if (r.contains("end-datetime") && r["end-datetime"].is_string()) end = iso_time(r["end-datetime"]);
  }
  if (domain.empty() && report.contains("policies") && report["policies"].is_array() && !report["policies"].empty()) {
    const auto& p = report["policies"][0];
    if (p.is_object() && p.contains("policy") && p["policy"].is_object() && p["policy"].contains("policy-domain") &&
        p["policy"]["policy-domain"].is_string())
      domain = p["policy"]["policy-domain"].get<std::string>();
  }
  NameCheck d = check_host_name(domain);
  if (!d.ok()) throw UsageError("tlsp tlsrpt send: no valid policy domain (--domain D): " + d.problem);
  if (submitter.empty()) submitter = domain_of_address(relay.tlsrpt_from);

  // Where to: the URIs given, else the domain's record.
  std::vector<TlsrptUri> uris;
  if (!to.empty()) {
    for (const std::string& u : to) {
      auto parsed = parse_tlsrpt_uri(u, &problem);
      if (!parsed) throw UsageError("tlsp tlsrpt send: --to: " + problem);
      uris.push_back(*parsed);
    }
  }
  std::unique_ptr<dns::Resolver> dns_resolver;
  try {
    dns::ResolverConfig rc;
    rc.server = relay.resolver;
    rc.timeout = relay.limits.dns_timeout;
    dns_resolver = std::make_unique<dns::Resolver>(rc);
  } catch (const std::exception& e) {
    throw UsageError(std::string("tlsp tlsrpt send: --resolver: ") + e.what());
  }
  if (uris.empty()) {
    TlsrptDiscovery found = discover_tlsrpt(d.name, *dns_resolver);
    if (!found.record) {
      std::cerr << "tlsp tlsrpt send: " << display_text(d.name) << " asks for no reports: " << display_text(found.detail)
                << "\n";
      return kExitErrors;
    }
    uris = found.record->rua;
  }

  const int64_t now = std::time(nullptr);
  const std::string gz = tlsrpt::gzip_report(*json_text);
  TlsrptPostConfig post;
  post.ca_file = relay.ca_file;
  int failures = 0;
  for (const TlsrptUri& u : uris) {
    const std::string shown = display_text(u.uri);
    if (u.scheme == TlsrptScheme::https) {
      TlsrptPostResult r = post_tlsrpt_report(u, gz, *dns_resolver, post);
      if (r.delivered) {
        std::cout << shown << ": delivered (" << r.status << ")\n";
        continue;
      }
      if (relay.spool_dir.empty()) {
        std::cerr << "tlsp tlsrpt send: " << shown << ": " << display_text(r.detail) << " (no spool: not retried)\n";
        ++failures;
        continue;
      }
      try {
        tlsrpt::Outbox outbox(relay.spool_dir + "/tlsrpt-outbox");
        std::string error;
        if (!outbox.add(report_id, u, gz, now, &error)) throw std::runtime_error(error);
        std::cout << shown << ": " << display_text(r.detail) << "; left in the relay's outbox for retries\n";
      } catch (const std::exception& e) {
        std::cerr << "tlsp tlsrpt send: " << shown << ": " << display_text(r.detail) << "; not retried: " << e.what()
                  << "\n";
        ++failures;
      }
      continue;
    }
    // mailto: a report mail in the relay's spool.
    try {
      if (relay.spool_dir.empty()) throw std::runtime_error("no spool to queue it in (--spool DIR or --config FILE)");
      auto lock = SpoolLock::try_acquire(relay.spool_dir);
      if (!lock)
        throw std::runtime_error("a relay runs on `" + relay.spool_dir +
                                 "`: it queues its own report mails; send by hand only while no relay runs");
      tlsrpt::ReportMailInput in;
      in.from = relay.tlsrpt_from;
      in.to = u.address;
      in.policy_domain = d.name;
      in.submitter = submitter;
      in.report_id = report_id;
      in.begin = begin;
      in.end = end;
      in.now = now;
      in.report_json = *json_text;
      tlsrpt::ReportMail mail = tlsrpt::make_tlsrpt_mail(in);
      QueueEntry e;
      e.mail_from = mail.mail_from;
      e.recipients = mail.recipients;
      e.direction = Direction::outbound;
      e.managed_domain = domain_of_address(mail.mail_from);
      e.destination = domain_of_address(u.address);
      e.client_address = "127.0.0.1";
      e.client_helo = hostname;
      e.arrival = now;
      e.next_attempt = now;
      e.tlsrpt_report = true;
      Spool queue(relay.spool_dir);
      auto stored = queue.store({e}, mail.data);
      std::cout << shown << ": queued as " << stored.front().id << " (sent when the relay starts)\n";
    } catch (const std::exception& e) {
      std::cerr << "tlsp tlsrpt send: " << shown << ": not queued: " << display_text(e.what()) << "\n";
      ++failures;
    }
  }
  return failures ? kExitErrors : kExitOk;
}

}  // namespace tlsp::cli
