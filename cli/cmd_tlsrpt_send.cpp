// cmd_tlsrpt_send.cpp — `tlsp tlsrpt send`, by hand:
//  * `send REPORT`: one TLSRPT report file to its policy domain's
//    collectors (the `rua` URIs of its `_smtp._tls` TXT record, or `--to
//    URI`). https: is POSTed now, a failed POST left in the relay's outbox
//    (`<spool>/tlsrpt-outbox`), which the relay retries; mailto: goes to
//    the relay's spool as a report mail: handed to the running relay over
//    its control socket (tlsrpt-mail: the relay builds and queues it), or,
//    with no relay running, stored under the spool's lock for its start.
//  * `send --day DAY [--domain D] [--force]`: the day's reports from the
//    relay's store, as the daily run sends them (claims respected): asked
//    of the running relay (tlsrpt-send), or done here under the spool's
//    lock when none runs.
// What is sent, and how, is tlsp/tlsrpt_dispatch.h's; this file reads the
// options and prints the steps.
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>

#include "commands.h"
#include "relay_settings.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/base/quote.h"
#include "tlsp/dns.h"
#include "tlsp/queue_control.h"
#include "tlsp/spool.h"
#include "tlsp/tlsrpt_delivery.h"
#include "tlsp/tlsrpt_dispatch.h"
#include "tlsp/tlsrpt_report.h"
#include "tlsp/tlsrpt_send.h"
#include "tlsp/tlsrpt_store.h"

namespace tlsp::cli {
namespace {

using base::display_text;

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

// One step, as the command shows it: what it concerns, the result, then
// what happened. Failures go to standard error.
void print_event(const TlsrptSendEvent& e) {
  std::string line;
  if (!e.day.empty()) line += e.day + " ";
  line += e.uri.empty() ? e.domain : e.uri;
  line += ": " + e.result;
  if (!e.queue_id_report.empty()) line += " as " + e.queue_id_report;
  if (!e.report_id.empty() && e.uri.empty()) line += " " + e.report_id;
  if (!e.detail.empty()) line += ": " + e.detail;
  if (!e.error.empty()) line += ": " + e.error;
  if (e.failed)
    std::cerr << "tlsp tlsrpt send: " << display_text(line, 2000) << "\n";
  else
    std::cout << display_text(line, 2000) << "\n";
}

int print_events(const std::vector<TlsrptSendEvent>& events) {
  bool failed = false;
  for (const TlsrptSendEvent& e : events) {
    print_event(e);
    failed = failed || e.failed;
  }
  return failed ? kExitErrors : kExitOk;
}

std::unique_ptr<dns::Resolver> make_resolver(const RelayConfig& relay) {
  try {
    dns::ResolverConfig rc;
    rc.server = relay.resolver;
    rc.timeout = relay.limits.dns_timeout;
    return std::make_unique<dns::Resolver>(rc);
  } catch (const std::exception& e) {
    throw UsageError(std::string("tlsp tlsrpt send: --resolver: ") + e.what());
  }
}

// The outbox of the relay's spool; null (said on standard error) when it
// cannot be used.
std::unique_ptr<tlsrpt::Outbox> open_outbox(const std::string& spool) {
  if (spool.empty()) return nullptr;
  try {
    return std::make_unique<tlsrpt::Outbox>(spool + "/tlsrpt-outbox");
  } catch (const std::exception& e) {
    std::cerr << "tlsp tlsrpt send: warning: " << display_text(e.what()) << " (a failed POST is not retried)\n";
    return nullptr;
  }
}

// `send --day`: the running relay does it, else this process under the lock.
int send_day(const RelayConfig& relay, const std::string& hostname, TlsrptDayRequest day) {
  if (relay.spool_dir.empty()) throw UsageError("tlsp tlsrpt send: --day needs the relay's spool (--config FILE or --spool DIR)");
  std::string problem;
  const QueueOp op = day.force ? QueueOp::tlsrpt_resend : QueueOp::tlsrpt_send;
  std::optional<QueueRequest> request =
      make_queue_request(op, day.domain.empty() ? day.day : day.day + " " + day.domain, problem);
  if (!request) throw UsageError("tlsp tlsrpt send: " + problem);
  std::optional<SpoolLock> lock;
  std::optional<QueueReply> reply;
  try {
    reply = ask_relay_or_lock(relay.spool_dir, *request, lock);
  } catch (const SpoolError& e) {
    std::cerr << "tlsp tlsrpt send: error: " << display_text(e.what()) << "\n";
    return kExitErrors;
  }
  if (reply) {
    if (!reply->ok) {
      std::cerr << "tlsp tlsrpt send: the relay refused: " << display_text(reply->error) << "\n";
      return kExitErrors;
    }
    return print_events(reply->tlsrpt);
  }
  // No relay runs: the same, here, while holding the spool's lock.
  std::string error;
  std::unique_ptr<tlsrpt::Store> store = tlsrpt::open_store(tlsrpt_store_spec(relay), &error);
  if (!store) {
    std::cerr << "tlsp tlsrpt send: error: " << display_text(error, 1000) << "\n";
    return kExitErrors;
  }
  std::unique_ptr<dns::Resolver> resolver = make_resolver(relay);
  std::unique_ptr<tlsrpt::Outbox> outbox = open_outbox(relay.spool_dir);
  Spool spool(relay.spool_dir);
  TlsrptSender sender;
  sender.from = relay.tlsrpt_from;
  sender.hostname = hostname;
  sender.resolver = resolver.get();
  sender.post.ca_file = relay.ca_file;
  sender.outbox = outbox.get();
  sender.spool = &spool;
  bool failed = false;
  send_tlsrpt_day(*store, day, tlsrpt_identity(relay), sender, std::time(nullptr), [&](const TlsrptSendEvent& e) {
    print_event(e);
    failed = failed || e.failed;
  });
  return failed ? kExitErrors : kExitOk;
}

}  // namespace

int tlsrpt_send(const Args& args) {
  po::options_description opts("options");
  std::string report_file, day, domain, submitter, from, spool, config, resolver, ca_file;
  std::vector<std::string> to;
  opts.add_options()("report", po::value(&report_file), "the report (positional)")(
      "day", po::value(&day)->value_name("YYYY-MM-DD"),
      "instead of a report file: the reports of this UTC day from the relay's store, as the daily run sends them")(
      "force", "with --day: send again a report already claimed (by this relay or another sharing the store), with its id")(
      "to", po::value(&to)->composing(), "send to this mailto: or https: URI instead of the discovered ones (repeatable)")(
      "domain", po::value(&domain), "the policy domain (default: the report's first policy-domain; with --day: every domain of the day)")(
      "submitter", po::value(&submitter), "TLS-Report-Submitter (default: the domain of the sender)")(
      "from", po::value(&from), "the report mail's sender (default: the relay's tlsrpt-from)")(
      "spool", po::value(&spool), "the relay's spool directory (mailto: queue, https: outbox)")(
      "config", po::value(&config), "the relay's configuration file (default /etc/tlsp/relay.conf when it exists)")(
      "resolver", po::value(&resolver), "DNS resolver address:port (default: the relay's resolver)")(
      "ca-file", po::value(&ca_file), "CA bundle for the https: collectors (default: the relay's ca-file)");
  po::positional_options_description pos;
  pos.add("report", 1);
  po::variables_map vm;
  if (!parse_options("tlsrpt send",
                     "REPORT [--to URI]... [--domain D] [--spool DIR | --config FILE] | --day YYYY-MM-DD [--domain D] "
                     "[--force] [--config FILE]",
                     "Sends one TLSRPT report (RFC 8460 JSON, or gzipped) to the policy domain's collectors:\n"
                     "the `rua` URIs of its _smtp._tls TXT record, or --to URI. https: is POSTed now; a\n"
                     "failed POST is left in the relay's outbox, which the relay retries for 24 hours.\n"
                     "mailto: is queued in the relay's spool as a report mail: by the running relay, or,\n"
                     "when none runs, for its start.\n"
                     "With --day instead of REPORT: the day's reports from the relay's TLSRPT store, sent as\n"
                     "the daily run sends them (one per policy domain, claimed in the store first: a report\n"
                     "claimed before is not sent again without --force); by the running relay, or here.",
                     opts, &pos, args, vm, {{"report", "file"}}))
    return kExitOk;

  if (report_file.empty() == day.empty())
    throw UsageError("tlsp tlsrpt send: give a REPORT file or --day YYYY-MM-DD (one of them)");
  if (!day.empty() && !to.empty()) throw UsageError("tlsp tlsrpt send: --day sends to the discovered URIs: no --to");
  if (day.empty() && vm.count("force")) throw UsageError("tlsp tlsrpt send: --force goes with --day");
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
  const std::string hostname = relay::relay_hostname(relay);
  relay.tlsrpt_from = tlsrpt_identity(relay).from;

  if (!day.empty()) {
    std::optional<int64_t> t = tlsrpt::parse_utc_day(day);
    if (!t || tlsrpt::utc_day(*t) != day)
      throw UsageError("tlsp tlsrpt send: --day `" + display_text(day) + "` is not a day (YYYY-MM-DD)");
    TlsrptDayRequest request{day, "", vm.count("force") > 0};
    if (!domain.empty()) {
      NameCheck n = check_host_name(domain);
      if (!n.ok()) throw UsageError("tlsp tlsrpt send: --domain `" + display_text(domain) + "`: " + n.problem);
      request.domain = n.name;
    }
    return send_day(relay, hostname, request);
  }

  std::string problem;
  auto json_text = read_report(report_file, problem);
  if (!json_text) {
    std::cerr << "tlsp tlsrpt send: error: " << problem << "\n";
    return kExitUsage;
  }
  if (submitter.empty()) submitter = domain_of_address(relay.tlsrpt_from);
  std::optional<TlsrptOutgoing> report = tlsrpt_outgoing_from_json(*json_text, domain, submitter, problem);
  if (!report) {
    std::cerr << "tlsp tlsrpt send: error: `" << display_text(report_file) << "` " << display_text(problem) << "\n";
    return kExitErrors;
  }

  // Where to: the URIs given, else the domain's record.
  std::vector<TlsrptUri> uris;
  for (const std::string& u : to) {
    auto parsed = parse_tlsrpt_uri(u, &problem);
    if (!parsed) throw UsageError("tlsp tlsrpt send: --to: " + problem);
    uris.push_back(*parsed);
  }
  std::unique_ptr<dns::Resolver> dns_resolver = make_resolver(relay);
  if (uris.empty()) {
    TlsrptDiscovery found = discover_tlsrpt(report->policy_domain, *dns_resolver);
    if (!found.record) {
      std::cerr << "tlsp tlsrpt send: " << display_text(report->policy_domain)
                << " asks for no reports: " << display_text(found.detail) << "\n";
      return kExitErrors;
    }
    uris = found.record->rua;
  }
  std::vector<TlsrptUri> https, mailto;
  for (const TlsrptUri& u : uris) (u.scheme == TlsrptScheme::https ? https : mailto).push_back(u);

  // What this process writes into the spool (the outbox, a queued mail)
  // must stay the relay's: run as root, it becomes the spool's owner first.
  if (!relay.spool_dir.empty()) {
    try {
      act_as_spool_owner(relay.spool_dir);
    } catch (const SpoolError& e) {
      std::cerr << "tlsp tlsrpt send: error: " << display_text(e.what()) << "\n";
      return kExitErrors;
    }
  }
  const int64_t now = std::time(nullptr);
  std::unique_ptr<tlsrpt::Outbox> outbox = open_outbox(relay.spool_dir);
  TlsrptSender sender;
  sender.from = relay.tlsrpt_from;
  sender.hostname = hostname;
  sender.resolver = dns_resolver.get();
  sender.post.ca_file = relay.ca_file;
  sender.outbox = outbox.get();
  int rc = print_events(send_tlsrpt_report(*report, https, sender, now));
  if (mailto.empty()) return rc;

  // mailto: the running relay queues the mail itself; with none, it is
  // stored here under the spool's lock, for the relay's start.
  auto mail_failed = [&](const std::string& why) {
    for (const TlsrptUri& u : mailto)
      std::cerr << "tlsp tlsrpt send: " << display_text(u.uri) << ": not queued: " << display_text(why) << "\n";
    return kExitErrors;
  };
  if (relay.spool_dir.empty()) return mail_failed("no spool to queue it in (--spool DIR or --config FILE)");
  TlsrptMailPayload payload;
  payload.domain = report->policy_domain;
  payload.submitter = report->submitter;
  payload.to = mailto;
  payload.gzip = tlsrpt::gzip_report(report->json);
  if (payload.gzip.size() + 4096 > kMaxControlPayloadBytes)
    return mail_failed("the gzipped report is larger than the control socket takes (" +
                       std::to_string(kMaxControlPayloadBytes) + " bytes)");
  std::optional<SpoolLock> lock;
  std::optional<QueueReply> reply;
  try {
    reply = ask_relay_or_lock(relay.spool_dir, make_tlsrpt_mail_request(payload), lock);
  } catch (const SpoolError& e) {
    return mail_failed(e.what());
  }
  if (reply) {
    if (!reply->ok) return mail_failed("the relay refused: " + reply->error);
    return std::max(rc, print_events(reply->tlsrpt));
  }
  Spool queue(relay.spool_dir);
  sender.spool = &queue;
  return std::max(rc, print_events(send_tlsrpt_report(*report, mailto, sender, now)));
}

}  // namespace tlsp::cli
