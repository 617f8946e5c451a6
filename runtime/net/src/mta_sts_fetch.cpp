// mta_sts_fetch.cpp — MTA-STS discovery and the HTTPS policy fetch
// (tlsp/mta_sts_fetch.h); the policy cache is mta_sts_cache.cpp's.
//
// The fetch uses libcurl through the relay's one HTTPS setup
// (curl_https.h, shared with the TLSRPT report POST): every option that
// could let the network choose where or how we connect is pinned there (the
// addresses come from the relay's own resolver, https only, no redirects,
// no proxy from the environment). A policy host is not trusted to be
// well-behaved, so the body is bounded while it arrives, not after.
#include "tlsp/mta_sts_fetch.h"

#include "curl_https.h"

#include "tlsp/base/address.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/base/quote.h"

#include <arpa/inet.h>
#include <curl/curl.h>

#include <memory>
#include <mutex>
#include <stdexcept>

namespace tlsp {
namespace {

using base::ticked;

constexpr std::string_view kPolicyPath = "/.well-known/mta-sts.txt";
constexpr std::string_view kPolicyHostPrefix = "mta-sts.";
constexpr std::string_view kTxtPrefix = "_mta-sts.";

bool is_ip_literal(const std::string& a, bool& v6) {
  const auto parsed = base::parse_ip_address(a);
  if (parsed) v6 = parsed->v6;
  return parsed.has_value();
}

// ------------------------------------------------------------------ fetch

struct Transfer {
  CURL* curl = nullptr;
  size_t max_body = 0;
  std::string body;
  long status = 0;
  bool too_big = false;
  bool wrong_status = false;
};

// Stops the transfer as soon as the body cannot be a policy we would use:
// past the size limit, or under a status other than 200 (no point reading
// a body that will be thrown away).
size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->status == 0) curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->status);
  if (t->status != 200) {
    t->wrong_status = true;
    return CURL_WRITEFUNC_ERROR;
  }
  if (t->body.size() + n > t->max_body) {
    t->too_big = true;
    return CURL_WRITEFUNC_ERROR;
  }
  t->body.append(data, n);
  return n;
}

StsFetch classify_curl_error(CURLcode rc) {
  switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
      return StsFetch::bad_cert;
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP_RETURNED_ERROR:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return StsFetch::http_error;
    default:
      // Connection refused or reset, time exceeded, a handshake failure
      // (no common version or cipher), nothing received: the host could
      // not be reached properly.
      return StsFetch::timeout;
  }
}

StsFetchResult failed(StsFetch status, std::string detail) {
  StsFetchResult r;
  r.status = status;
  r.detail = std::move(detail);
  return r;
}

}  // namespace

std::string mta_sts_policy_host(std::string_view domain) { return std::string(kPolicyHostPrefix) + std::string(domain); }

std::optional<std::string> normalize_policy_domain(std::string_view domain) {
  NameCheck c = check_host_name(domain);
  if (!c.ok()) return std::nullopt;
  return std::move(c.name);
}

StsFetchResult fetch_mta_sts_policy(std::string_view domain_in, const std::vector<std::string>& addresses,
                                    const StsFetchConfig& config) {
  auto domain = normalize_policy_domain(domain_in);
  if (!domain) return failed(StsFetch::timeout, ticked(domain_in) + " is not a valid policy domain");
  const std::string host = mta_sts_policy_host(*domain);
  if (host.size() > kMaxDomainNameLength) return failed(StsFetch::timeout, ticked(host) + " is too long for a host name");
  if (addresses.empty()) return failed(StsFetch::timeout, "no address to fetch the policy from " + ticked(host));

  for (const std::string& a : addresses) {
    bool v6 = false;
    if (!is_ip_literal(a, v6)) return failed(StsFetch::timeout, ticked(a) + " is not an IP address");
  }
  const std::string url = curl_https::https_url(host, config.https_port, std::string(kPolicyPath));

  curl_https::init_once();
  curl_https::Easy curl(curl_easy_init());
  if (!curl) return failed(StsFetch::timeout, "libcurl could not make a transfer handle");
  std::string pin_error;
  curl_https::List resolve = curl_https::pin_list(host, config.https_port, addresses, &pin_error);
  if (!resolve) return failed(StsFetch::timeout, pin_error);

  Transfer t;
  t.curl = curl.get();
  t.max_body = config.max_body;
  char error[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_https::HttpsSettings settings;
  settings.url = url;
  settings.resolve = resolve.get();
  settings.ca_file = config.ca_file;
  settings.timeout = config.timeout;
  settings.user_agent = "tlsp-mta-sts";
  curl_https::set_pinned_https(c, settings, error);
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(config.max_body));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);

  const CURLcode rc = curl_easy_perform(c);
  const std::string what = "policy fetch from " + ticked(url);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  char* location = nullptr;
  curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location);
  if (t.too_big || rc == CURLE_FILESIZE_EXCEEDED)
    return failed(StsFetch::http_error,
                  what + ": the body is larger than " + std::to_string(config.max_body) + " bytes");
  if (rc != CURLE_OK && !t.wrong_status) {
    std::string why = error[0] ? std::string(error) : std::string(curl_easy_strerror(rc));
    return failed(classify_curl_error(rc), what + " failed: " + ticked(why));
  }
  if (status >= 300 && status < 400)
    return failed(StsFetch::http_error, what + ": redirect (status " + std::to_string(status) + ")" +
                                            (location ? " to " + ticked(location) : std::string()) +
                                            " is not followed");
  if (status != 200) return failed(StsFetch::http_error, what + ": status " + std::to_string(status));
  char* type = nullptr;
  curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
  if (!type) return failed(StsFetch::http_error, what + ": no Content-Type");
  if (!is_text_plain_content_type(type))
    return failed(StsFetch::http_error, what + ": Content-Type " + ticked(type) + " is not `text/plain`");

  auto parsed = parse_mta_sts_policy(t.body);
  if (!parsed) return failed(StsFetch::invalid, what + ": invalid policy: " + parsed.problem);
  StsFetchResult r;
  r.status = StsFetch::ok;
  r.policy = std::move(*parsed.value);
  r.body = std::move(t.body);
  return r;
}

// -------------------------------------------------------------- discovery

namespace {

// RFC 8461 §3.1: records that do not begin with `v=STSv1;` are discarded.
// The ABNF allows spaces before the `;`, so the version token must merely
// end there (`v=STSv12` is another version, not ours).
bool starts_with_sts_version(std::string_view record) {
  constexpr std::string_view kVersion = "v=STSv1";
  if (record.substr(0, kVersion.size()) != kVersion) return false;
  if (record.size() == kVersion.size()) return true;
  char next = record[kVersion.size()];
  return next == ';' || next == ' ' || next == '\t';
}

}  // namespace

StsDiscovery discover_mta_sts(std::string_view domain_in, const dns::Resolver& resolver,
                              const StsFetchConfig& config, MtaStsCache* cache, int64_t now) {
  StsDiscovery d;
  auto domain = normalize_policy_domain(domain_in);
  if (!domain) {
    d.detail = ticked(domain_in) + " is not a valid policy domain: no MTA-STS";
    return d;
  }
  std::string notes;
  auto note = [&](const std::string& s) {
    if (s.empty()) return;
    if (!notes.empty()) notes += "; ";
    notes += s;
  };

  std::optional<CachedStsPolicy> cached;
  if (cache) {
    StsCacheLookup lookup = cache->get(*domain, now);
    if (lookup.entry) {
      cached = std::move(lookup.entry);
      d.cached = cached->policy;
    } else if (lookup.corrupt || lookup.unavailable) {
      // An ignored entry, or a cache that does not answer: nothing cached.
      note(lookup.detail);
    }
  }

  const std::string txt_name = std::string(kTxtPrefix) + *domain;
  dns::Lookup<std::string> txt = resolver.txt(txt_name);
  if (!txt.found()) {
    note("TXT " + ticked(txt_name) + ": " + std::string(to_string(txt.status)) +
         (txt.detail.empty() ? std::string() : " (" + txt.detail + ")"));
    d.detail = notes;
    return d;
  }
  std::vector<std::string_view> candidates;
  for (const auto& r : txt.records)
    if (starts_with_sts_version(r)) candidates.push_back(r);
  if (candidates.size() != 1) {
    note("TXT " + ticked(txt_name) + ": " + std::to_string(candidates.size()) +
         " records start with `v=STSv1` (exactly one is needed)");
    d.detail = notes;
    return d;
  }
  auto record = parse_mta_sts_txt(candidates.front());
  if (!record) {
    note("TXT " + ticked(txt_name) + ": " + record.problem);
    d.detail = notes;
    return d;
  }
  d.txt = true;
  d.id = record.value->id;

  if (cached && cached->id == d.id) {
    d.from_cache = true;
    d.fetch = StsFetch::ok;
    note("policy id " + ticked(d.id) + " is cached until " + std::to_string(cached->expires_at));
    d.detail = notes;
    return d;
  }

  const std::string host = mta_sts_policy_host(*domain);
  dns::Lookup<std::string> addrs = resolver.addresses(host);
  if (!addrs.found()) {
    d.fetch = StsFetch::timeout;
    note("no address for " + ticked(host) + ": " + std::string(to_string(addrs.status)) +
         (addrs.detail.empty() ? std::string() : " (" + addrs.detail + ")"));
    d.detail = notes;
    return d;
  }
  StsFetchResult fetched = fetch_mta_sts_policy(*domain, addrs.records, config);
  d.fetch = fetched.status;
  if (fetched.status != StsFetch::ok) {
    note(fetched.detail);
    d.detail = notes;
    return d;
  }
  d.fetched = fetched.policy;
  note("fetched policy id " + ticked(d.id));
  if (cache) {
    std::string error;
    if (!cache->put(*domain, d.id, fetched.body, now, &error)) note("not cached: " + error);
  }
  d.detail = notes;
  return d;
}

namespace {
MtaStsFacts discovery_facts(const StsDiscovery& d) {
  MtaStsFacts f;
  f.txt = d.txt;
  f.fetch = d.fetch;
  if (d.cached) f.cached = d.cached->mode;
  return f;
}
}  // namespace

const MtaStsPolicy* sts_policy_used(const StsDiscovery& d) {
  // The policy in force (the engine's choice): the current one, which is
  // the cached one when the TXT id names it, else the cache.
  switch (sts_policy_in_force(discovery_facts(d))) {
    case StsPolicySource::fresh: return d.fetched ? &*d.fetched : d.cached ? &*d.cached : nullptr;
    case StsPolicySource::cached: return &*d.cached;
    case StsPolicySource::none: break;
  }
  return nullptr;
}

MtaStsFacts sts_facts_for_mx(const StsDiscovery& d, std::string_view mx_host) {
  MtaStsFacts f = discovery_facts(d);
  const MtaStsPolicy* in_force = sts_policy_used(d);
  if (in_force && sts_policy_in_force(f) == StsPolicySource::fresh) f.mode = in_force->mode;
  f.mx_match = in_force && mta_sts_mx_matches(mx_host, in_force->mx);
  return f;
}

}  // namespace tlsp
