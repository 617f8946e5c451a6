// cmd_queue.cpp — `tlsp queue ...` and `tlsp mta-sts-cache ...`, the
// operator's tools for what a relay holds. The queue commands never touch
// spool files themselves: tlsp/queue_control.h asks the running relay over
// its control socket, or, when none runs, takes the spool's lock and makes
// the change through the spool's own functions. The MTA-STS cache is
// MtaStsCache's (tlsp/mta_sts_cache.h), a directory or a Redis server that
// the relay reads afresh at every use, so a purge reaches a running relay
// (every relay sharing the Redis cache) at once.
#include <unistd.h>

#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "tlsp/base/quote.h"
#include "tlsp/mta_sts_cache.h"
#include "tlsp/mta_sts_fetch.h"
#include "relay_settings.h"
#include "tlsp/queue_control.h"
#include "tlsp/relay.h"

namespace tlsp::cli {

namespace {

using base::display_text;

// Where the spool is: `--spool DIR`, else the relay's configuration file
// (`--config FILE`, default /etc/tlsp/relay.conf), read exactly as `tlsp
// relay` reads it (load_relay_config), for its `spool` and `mta-sts-cache`
// settings. One place for every queue and cache command.
struct SpoolWhere {
  std::string spool;
  std::string config;
};
void add_spool_option(po::options_description& opts, SpoolWhere& where) {
  opts.add_options()("spool", po::value(&where.spool), "the relay's spool directory (its `spool` setting)")(
      "config", po::value(&where.config),
      "the relay's configuration file, for its spool (default /etc/tlsp/relay.conf when --spool is not given)");
}
RelayConfig relay_config_of(const SpoolWhere& where) {
  if (!where.spool.empty() && !where.config.empty()) throw UsageError("give --spool or --config, not both");
  RelayConfig c;
  if (!where.spool.empty()) {
    c.spool_dir = where.spool;
    return c;
  }
  const std::string path = where.config.empty() ? std::string(kDefaultRelayConfigPath) : where.config;
  if (where.config.empty() && ::access(path.c_str(), F_OK) != 0)
    throw UsageError("no spool given: --spool DIR, or --config FILE (the relay's configuration; " + path +
                     " does not exist)");
  std::vector<std::string> errors;
  std::optional<RelayConfig> loaded = load_relay_config(path, errors);
  if (!loaded) {
    std::string all;
    for (const std::string& e : errors) all += (all.empty() ? "" : "\n") + e;
    throw UsageError(all);
  }
  return *loaded;
}
std::string spool_dir_of(const SpoolWhere& where) { return relay_config_of(where).spool_dir; }

std::string utc_time(int64_t t) {
  char buf[32];
  std::tm tm{};
  time_t tt = static_cast<time_t>(t);
  gmtime_r(&tt, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// 2d3h, 4h13m, 5m7s, 9s.
std::string duration_text(int64_t s) {
  if (s < 0) s = 0;
  auto two = [](int64_t a, const char* ua, int64_t b, const char* ub) {
    return std::to_string(a) + ua + (b ? std::to_string(b) + ub : "");
  };
  if (s >= 86400) return two(s / 86400, "d", (s % 86400) / 3600, "h");
  if (s >= 3600) return two(s / 3600, "h", (s % 3600) / 60, "m");
  if (s >= 60) return two(s / 60, "m", s % 60, "s");
  return std::to_string(s) + "s";
}

std::string state_of(const QueueEntryStatus& s) {
  if (s.delivering) return "delivering";
  if (s.entry.held) return "held";
  return s.entry.attempts ? "deferred" : "queued";
}

std::string next_text(const QueueEntryStatus& s, int64_t now) {
  if (s.entry.held) return "never (held)";
  if (s.delivering) return "now (being delivered)";
  return s.entry.next_attempt <= now ? "now" : "in " + duration_text(s.entry.next_attempt - now);
}

nlohmann::json entry_json(const QueueEntryStatus& s, int64_t now) {
  const QueueEntry& e = s.entry;
  nlohmann::json failed = nlohmann::json::array();
  for (const auto& [a, r] : e.failed_recipients) failed.push_back({{"recipient", a}, {"reply", r}});
  return {{"id", e.id},
          {"sender", e.mail_from},
          {"recipients", e.recipients},
          {"direction", to_string(e.direction)},
          {"managed_domain", e.managed_domain},
          {"destination", e.destination},
          {"size", e.size},
          {"arrival", utc_time(e.arrival)},
          {"age_seconds", std::max<int64_t>(0, now - e.arrival)},
          {"attempts", e.attempts},
          {"next_attempt", e.held ? nlohmann::json(nullptr) : nlohmann::json(utc_time(e.next_attempt))},
          {"last_reason", e.last_error},
          {"failed_recipients", failed},
          {"held", e.held},
          {"delivering", s.delivering},
          {"state", state_of(s)}};
}

// JSON strings must be UTF-8; a sender's bytes need not be.
std::string json_text(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

QueueRequest request_of(QueueOp op, const std::string& argument) {
  std::string problem;
  auto r = make_queue_request(op, argument, problem);
  if (!r) throw UsageError(problem);
  return *r;
}

// Runs the request; the notes go to standard error, an error reply is
// exit 1, a spool or relay that cannot be reached exit 2.
int run(const std::string& spool, const QueueRequest& request, QueueReply& reply) {
  try {
    reply = run_queue_request(spool, request);
  } catch (const SpoolError& e) {
    std::cerr << "tlsp queue: error: " << e.what() << "\n";
    return kExitUsage;
  }
  for (const std::string& n : reply.notes) std::cerr << "tlsp queue: note: " << display_text(n, 1000) << "\n";
  if (!reply.ok) {
    std::cerr << "tlsp queue: error: " << display_text(reply.error, 1000) << "\n";
    return kExitErrors;
  }
  return kExitOk;
}

int queue_list(const Args& args) {
  po::options_description opts("options");
  SpoolWhere spool;
  add_spool_option(opts, spool);
  opts.add_options()("json", "one JSON object: {\"entries\": [...], \"problems\": [...]}");
  po::variables_map vm;
  if (!parse_options("queue list", "[--json] [--spool DIR | --config FILE]",
                     "Lists every queued entry, oldest first: id, size, age, attempts, next attempt, state\n"
                     "(queued, deferred, held, delivering), sender, recipients and the last reason.",
                     opts, nullptr, args, vm))
    return kExitOk;
  QueueReply reply;
  const bool json = vm.count("json") > 0;
  QueueRequest request = request_of(QueueOp::list, "");
  const std::string dir = spool_dir_of(spool);
  if (json) {
    // Problems go into the object, not to standard error.
    try {
      reply = run_queue_request(dir, request);
    } catch (const SpoolError& e) {
      std::cerr << "tlsp queue: error: " << e.what() << "\n";
      return kExitUsage;
    }
    if (!reply.ok) {
      std::cerr << "tlsp queue: error: " << display_text(reply.error, 1000) << "\n";
      return kExitErrors;
    }
  } else if (int rc = run(dir, request, reply); rc != kExitOk) {
    return rc;
  }
  const int64_t now = std::time(nullptr);
  if (json) {
    nlohmann::json entries = nlohmann::json::array();
    for (const QueueEntryStatus& s : reply.entries) entries.push_back(entry_json(s, now));
    std::cout << json_text({{"entries", entries}, {"problems", reply.notes}}) << "\n";
    return kExitOk;
  }
  if (reply.entries.empty()) {
    std::cout << "the queue is empty\n";
    return kExitOk;
  }
  uint64_t bytes = 0;
  for (const QueueEntryStatus& s : reply.entries) {
    const QueueEntry& e = s.entry;
    bytes += e.size;
    std::cout << e.id << "  " << e.size << " bytes  age " << duration_text(now - e.arrival) << "  attempts "
              << e.attempts << "  next " << next_text(s, now) << "  " << state_of(s) << "\n";
    std::cout << "  from <" << display_text(e.mail_from) << ">\n";
    for (const std::string& r : e.recipients) std::cout << "  to   <" << display_text(r) << ">\n";
    if (!e.last_error.empty()) std::cout << "  last " << display_text(e.last_error, 1000) << "\n";
  }
  std::cout << "-- " << reply.entries.size() << (reply.entries.size() == 1 ? " entry, " : " entries, ") << bytes
            << " bytes\n";
  return kExitOk;
}

int queue_show(const Args& args) {
  po::options_description opts("options");
  SpoolWhere spool;
  std::string id;
  add_spool_option(opts, spool);
  opts.add_options()("id", po::value(&id)->required(), "the entry (positional)")(
      "json", "one JSON object: the entry as `list --json` gives it, with `headers`, `headers_cut`, `body_bytes`");
  po::positional_options_description pos;
  pos.add("id", 1);
  po::variables_map vm;
  if (!parse_options("queue show", "ID [--json] [--spool DIR | --config FILE]",
                     "Shows one entry's envelope and its message's header section (at most 64 KiB of it);\n"
                     "the body is never shown, only its size.",
                     opts, &pos, args, vm, {{"id", "queue id"}}))
    return kExitOk;
  QueueReply reply;
  if (int rc = run(spool_dir_of(spool), request_of(QueueOp::show, id), reply); rc != kExitOk) return rc;
  if (reply.entries.size() != 1) {
    std::cerr << "tlsp queue: error: the reply holds no entry\n";
    return kExitErrors;
  }
  const int64_t now = std::time(nullptr);
  const QueueEntryStatus& s = reply.entries.front();
  const QueueEntry& e = s.entry;
  if (vm.count("json")) {
    nlohmann::json j = entry_json(s, now);
    j["client_address"] = e.client_address;
    j["client_helo"] = e.client_helo;
    j["headers"] = reply.headers;
    j["headers_cut"] = reply.headers_cut;
    j["body_bytes"] = reply.body_bytes;
    std::cout << json_text(j) << "\n";
    return kExitOk;
  }
  auto row = [](const char* k, const std::string& v) {
    std::cout << k << std::string(14 - std::strlen(k), ' ') << v << "\n";
  };
  row("id", e.id);
  row("state", state_of(s));
  row("sender", "<" + display_text(e.mail_from) + ">");
  for (const std::string& r : e.recipients) row("recipient", "<" + display_text(r) + ">");
  for (const auto& [a, r] : e.failed_recipients) row("failed", "<" + display_text(a) + "> " + display_text(r, 1000));
  row("direction", std::string(to_string(e.direction)) + " to " + display_text(e.destination) + " (managed domain " +
                       display_text(e.managed_domain) + ")");
  row("client", display_text(e.client_address) + " (helo " + display_text(e.client_helo) + ")");
  row("size", std::to_string(e.size) + " bytes");
  row("arrival", utc_time(e.arrival) + " (age " + duration_text(now - e.arrival) + ")");
  row("attempts", std::to_string(e.attempts));
  row("next attempt", next_text(s, now));
  row("last reason", e.last_error.empty() ? "-" : display_text(e.last_error, 1000));
  std::cout << "\nheader section" << (reply.headers_cut ? " (cut at 64 KiB)" : "") << "; the body (" << reply.body_bytes
            << " bytes) is not shown:\n";
  for (const std::string& h : reply.headers) std::cout << "  " << display_text(h, 1000) << "\n";
  return kExitOk;
}

// flush / hold / release / delete: one change, a one-line summary.
int queue_change(const std::string& verb, const Args& args) {
  po::options_description opts("options");
  SpoolWhere spool;
  std::string id, domain;
  add_spool_option(opts, spool);
  opts.add_options()("id", po::value(&id), "the entry (positional)");
  const bool by_domain = verb == "flush" || verb == "delete";
  if (by_domain) opts.add_options()("domain", po::value(&domain), "every entry with a recipient in this domain");
  if (verb == "delete") opts.add_options()("all", "with --domain: every entry of that domain");
  po::positional_options_description pos;
  pos.add("id", 1);
  po::variables_map vm;
  static const std::map<std::string, std::pair<std::string, std::string>> kAbout = {
      {"flush",
       {"[ID | --domain D] [--spool DIR | --config FILE]",
        "Makes queued entries due now: the running relay tries them at once (held entries are\n"
        "skipped: release them first). With no relay running there is nothing to do: the relay\n"
        "tries every entry that is not held when it starts."}},
      {"hold",
       {"ID [--spool DIR | --config FILE]",
        "Puts an entry on hold: it is never delivered until released, and its queue\n"
        "lifetime is not checked meanwhile."}},
      {"release",
       {"ID [--spool DIR | --config FILE]",
        "Releases a held entry: it is due now. Past its queue lifetime it gets one\n"
        "attempt and bounces if that is deferred."}},
      {"delete",
       {"ID | --all --domain D [--spool DIR | --config FILE]",
        "Deletes entries from the queue WITHOUT a bounce to the sender (as Postfix's postsuper -d)."}},
  };
  const auto& about = kAbout.at(verb);
  if (!parse_options("queue " + verb, about.first, about.second, opts, &pos, args, vm)) return kExitOk;
  QueueOp op{};
  std::string argument;
  if (verb == "flush") {
    if (!id.empty() && !domain.empty()) throw UsageError("give an ID or --domain, not both");
    op = domain.empty() ? QueueOp::flush : QueueOp::flush_domain;
    argument = domain.empty() ? id : domain;
  } else if (verb == "delete") {
    if (!id.empty() && (vm.count("all") || !domain.empty()))
      throw UsageError("give an ID or --all --domain D, not both");
    if (id.empty() && !(vm.count("all") && !domain.empty()))
      throw UsageError("give an ID, or --all --domain D to delete every entry of a domain");
    op = id.empty() ? QueueOp::remove_domain : QueueOp::remove;
    argument = id.empty() ? domain : id;
  } else {
    if (id.empty()) throw UsageError("no queue id given");
    op = verb == "hold" ? QueueOp::hold : QueueOp::release;
    argument = id;
  }
  QueueReply reply;
  int rc = run(spool_dir_of(spool), request_of(op, argument), reply);
  if (rc == kExitUsage || (rc != kExitOk && reply.changed == 0)) return rc;
  static const std::map<std::string, std::string> kDone = {
      {"flush", "made due now"}, {"hold", "held"}, {"release", "released"}, {"delete", "deleted (no bounce sent)"}};
  std::cout << reply.changed << (reply.changed == 1 ? " entry " : " entries ") << kDone.at(verb) << "\n";
  return rc;
}

// ------------------------------------------------------------ MTA-STS cache

int cache_command(const std::string& verb, const Args& rest) {
  po::options_description opts("options");
  SpoolWhere spool;
  std::string cache, domain;
  add_spool_option(opts, spool);
  opts.add_options()("cache", po::value(&cache),
                     "the cache: a directory or redis://HOST:PORT/DB (the relay's `mta-sts-cache`; default SPOOL/mta-sts)");
  po::positional_options_description pos;
  if (verb == "list") {
    opts.add_options()("json", "one JSON array");
  } else {
    opts.add_options()("domain", po::value(&domain), "the policy domain (positional); none: every entry");
    pos.add("domain", 1);
  }
  po::variables_map vm;
  if (!parse_options("mta-sts-cache " + verb,
                     verb == "list" ? "[--json] [--spool DIR | --config FILE | --cache DIR|URL]" : "[DOMAIN] [--spool DIR | --config FILE | --cache DIR|URL]",
                     verb == "list" ? "Lists the cached MTA-STS policies: domain, id, mode, max_age, fetched, expires."
                                    : "Removes the cached policy of DOMAIN, or every cached policy.",
                     opts, &pos, rest, vm))
    return kExitOk;
  if (!cache.empty() && (!spool.spool.empty() || !spool.config.empty()))
    throw UsageError("give --cache or --spool/--config, not both");
  if (cache.empty()) cache = mta_sts_cache_dir(relay_config_of(spool));
  // A directory that is not there is not created by looking at it; a
  // Redis cache is reached (or not) by the first command.
  struct stat st {};
  if (!is_redis_sts_cache_location(cache) && (::stat(cache.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
    std::cerr << "tlsp mta-sts-cache: error: there is no policy cache `" << display_text(cache) << "`\n";
    return kExitUsage;
  }
  try {
    MtaStsCache c(cache);
    const int64_t now = std::time(nullptr);
    if (verb == "purge") {
      size_t n = 0;
      if (!domain.empty()) {
        auto d = normalize_policy_domain(domain);
        if (!d) throw UsageError(base::ticked(domain) + " is not a valid policy domain");
        n = c.erase(*d) ? 1 : 0;
        if (!n) std::cerr << "tlsp mta-sts-cache: note: no cached policy for " << base::ticked(*d) << "\n";
      } else {
        for (const StsCacheListing& l : c.list()) n += c.erase(l.domain) ? 1 : 0;
      }
      std::cout << n << (n == 1 ? " cached policy" : " cached policies") << " removed\n";
      return kExitOk;
    }
    std::vector<StsCacheListing> all = c.list();
    if (vm.count("json")) {
      nlohmann::json out = nlohmann::json::array();
      for (const StsCacheListing& l : all) {
        nlohmann::json j = {{"domain", l.domain}, {"path", l.path}};
        if (l.entry) {
          j["id"] = l.entry->id;
          j["mode"] = std::string(to_string(l.entry->policy.mode));
          j["max_age"] = l.entry->policy.max_age;
          j["mx"] = l.entry->policy.mx;
          j["fetched_at"] = utc_time(l.entry->fetched_at);
          j["expires_at"] = utc_time(l.entry->expires_at);
          j["expired"] = l.entry->expires_at <= now;
        } else {
          j["problem"] = l.problem;
        }
        out.push_back(j);
      }
      std::cout << json_text(out) << "\n";
      return kExitOk;
    }
    if (all.empty()) std::cout << "the policy cache is empty\n";
    for (const StsCacheListing& l : all) {
      if (!l.entry) {
        std::cout << l.domain << "  corrupt (ignored by the relay): " << display_text(l.problem, 1000) << "\n";
        continue;
      }
      const CachedStsPolicy& p = *l.entry;
      std::cout << l.domain << "  id " << display_text(p.id) << "  mode " << to_string(p.policy.mode) << "  max_age "
                << p.policy.max_age << "  fetched " << utc_time(p.fetched_at) << "  "
                << (p.expires_at <= now ? "expired " : "expires ") << utc_time(p.expires_at) << "\n";
      for (const std::string& mx : p.policy.mx) std::cout << "  mx " << display_text(mx) << "\n";
    }
    return kExitOk;
  } catch (const std::invalid_argument& e) {  // a malformed redis:// URL
    std::cerr << "tlsp mta-sts-cache: error: " << e.what() << "\n";
    return kExitUsage;
  } catch (const std::runtime_error& e) {
    if (dynamic_cast<const UsageError*>(&e)) throw;
    std::cerr << "tlsp mta-sts-cache: error: " << e.what() << "\n";
    return kExitUsage;
  }
}

}  // namespace

int cmd_queue(const Args& args) {
  static const char* kUsage =
      "usage: tlsp queue list [--json] | show ID | flush [ID | --domain D] | hold ID | release ID |\n"
      "                  delete ID | delete --all --domain D       (each with --spool DIR or --config FILE)";
  if (args.empty()) throw UsageError(std::string("tlsp queue: no operation given\n") + kUsage);
  const std::string verb = args.front();
  const Args rest(args.begin() + 1, args.end());
  if (verb == "--help" || verb == "-h") {
    std::cout << kUsage
              << "\n\nOperates the relay's queue: while a relay runs on the spool it makes the change\n"
                 "itself (over its control socket); otherwise the command takes the spool's lock.\n"
                 "`tlsp queue OPERATION --help` describes each.\n";
    return kExitOk;
  }
  for (const Command& v : queue_verbs())
    if (verb == v.name) return v.run(rest);
  throw UsageError("tlsp queue: unknown operation `" + display_text(verb) + "`\n" + kUsage);
}

// ------------------------------------------------------------ MTA-STS cache

int cmd_mta_sts_cache(const Args& args) {
  static const char* kUsage =
      "usage: tlsp mta-sts-cache list [--json] | purge [DOMAIN]   (each with --spool DIR, --config FILE or --cache DIR|URL)";
  if (args.empty()) throw UsageError(std::string("tlsp mta-sts-cache: no operation given\n") + kUsage);
  const std::string verb = args.front();
  const Args rest(args.begin() + 1, args.end());
  if (verb == "--help" || verb == "-h") {
    std::cout << kUsage
              << "\n\nLists or removes the relay's cached MTA-STS policies, in a directory or in Redis\n"
                 "(redis://HOST:PORT/DB, shared by a fleet). The relay reads the cache afresh at\n"
                 "every delivery, so a purge takes effect at once, also while it runs.\n";
    return kExitOk;
  }
  for (const Command& v : mta_sts_cache_verbs())
    if (verb == v.name) return v.run(rest);
  throw UsageError("tlsp mta-sts-cache: unknown operation `" + display_text(verb) + "`\n" + kUsage);
}

const std::vector<Command>& queue_verbs() {
  static const std::vector<Command> verbs = {
      {"list", "every queued entry, oldest first", queue_list},
      {"show", "one entry's envelope and header section", queue_show},
      {"flush", "retry now", [](const Args& a) { return queue_change("flush", a); }},
      {"hold", "never deliver until released", [](const Args& a) { return queue_change("hold", a); }},
      {"release", "deliver a held entry again", [](const Args& a) { return queue_change("release", a); }},
      {"delete", "remove entries without a bounce", [](const Args& a) { return queue_change("delete", a); }},
  };
  return verbs;
}

const std::vector<Command>& mta_sts_cache_verbs() {
  static const std::vector<Command> verbs = {
      {"list", "the cached policies", [](const Args& a) { return cache_command("list", a); }},
      {"purge", "remove one cached policy or all", [](const Args& a) { return cache_command("purge", a); }},
  };
  return verbs;
}

}  // namespace tlsp::cli
