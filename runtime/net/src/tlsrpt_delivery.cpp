// tlsrpt_delivery.cpp — TLSRPT record discovery and the https report POST
// (tlsp/tlsrpt_delivery.h).
#include "tlsp/tlsrpt_delivery.h"

#include "curl_https.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/base/quote.h"

namespace tlsp {
namespace {

using base::ticked;

constexpr std::string_view kTxtPrefix = "_smtp._tls.";

struct Response {
  std::string body;  // the first kMaxTlsrptResponseBytes
};

// Keeps the head of the answer and stops the transfer past the limit: the
// status is all that matters, and a collector cannot make us read more.
size_t on_response(char* data, size_t size, size_t count, void* user) {
  auto* r = static_cast<Response*>(user);
  const size_t n = size * count;
  if (r->body.size() + n > kMaxTlsrptResponseBytes) return CURL_WRITEFUNC_ERROR;
  r->body.append(data, n);
  return n;
}

// libcurl calls it about once a second and at every transfer step: a
// non-zero return aborts the transfer (CURLE_ABORTED_BY_CALLBACK).
int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancel = static_cast<const std::atomic<bool>*>(user);
  return cancel->load() ? 1 : 0;
}

TlsrptPostResult failed(std::string detail, long status = 0) {
  TlsrptPostResult r;
  r.status = status;
  r.detail = std::move(detail);
  return r;
}

}  // namespace

std::string tlsrpt_txt_name(std::string_view domain) { return std::string(kTxtPrefix) + std::string(domain); }

TlsrptDiscovery discover_tlsrpt(std::string_view domain_in, const dns::Resolver& resolver) {
  TlsrptDiscovery d;
  NameCheck domain = check_host_name(domain_in);
  if (!domain.ok()) {
    d.detail = ticked(domain_in) + " is not a valid policy domain: " + domain.problem;
    return d;
  }
  const std::string name = tlsrpt_txt_name(domain.name);
  dns::Lookup<std::string> txt = resolver.txt(name);
  if (!txt.found()) {
    d.detail = "TXT " + ticked(name) + ": " + std::string(to_string(txt.status)) +
               (txt.detail.empty() ? std::string() : " (" + txt.detail + ")");
    return d;
  }
  TlsrptParse parsed = select_tlsrpt_record(txt.records);
  if (!parsed) {
    d.detail = "TXT " + ticked(name) + ": " + parsed.problem;
    return d;
  }
  d.detail = "TXT " + ticked(name) + ": " + std::to_string(parsed.value->rua.size()) + " report URI(s)";
  if (!parsed.value->ignored.empty())
    d.detail += ", " + std::to_string(parsed.value->ignored.size()) + " of another scheme ignored";
  d.record = std::move(parsed.value);
  return d;
}

TlsrptPostResult post_tlsrpt_report(const TlsrptUri& uri, std::string_view body,
                                    const std::vector<std::string>& addresses, const TlsrptPostConfig& config) {
  if (uri.scheme != TlsrptScheme::https) return failed(ticked(uri.uri) + " is not an https: URI");
  const std::string url = curl_https::https_url(uri.host, uri.port, uri.path);
  const std::string what = "report POST to " + ticked(url);
  std::string pin_error;
  curl_https::List resolve = curl_https::pin_list(uri.host, uri.port, addresses, &pin_error);
  if (!resolve) return failed(what + ": " + pin_error);

  curl_https::init_once();
  curl_https::Easy curl(curl_easy_init());
  if (!curl) return failed(what + ": libcurl could not make a transfer handle");
  curl_https::List headers(curl_slist_append(nullptr, "Content-Type: application/tlsrpt+gzip"));
  if (!headers) return failed(what + ": out of memory");
  // No `Expect: 100-continue` round trip: the body is small and sent at once.
  curl_slist_append(headers.get(), "Expect:");

  Response response;
  char error[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_https::HttpsSettings settings;
  settings.url = url;
  settings.resolve = resolve.get();
  settings.ca_file = config.ca_file;
  settings.timeout = config.timeout;
  settings.user_agent = "tlsp-tlsrpt";
  curl_https::set_pinned_https(c, settings, error);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_response);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response);
  if (config.cancel) {
    if (config.cancel->load()) return failed(what + ": not tried: cancelled (the relay is stopping)");
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(config.cancel));
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  }

  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  // A write error after the status line is our own limit on the answer's
  // body: the status stands.
  if (rc == CURLE_ABORTED_BY_CALLBACK) return failed(what + ": cancelled (the relay is stopping)", status);
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && status != 0)) {
    std::string why = error[0] ? std::string(error) : std::string(curl_easy_strerror(rc));
    return failed(what + " failed: " + ticked(why), status);
  }
  if (status >= 300 && status < 400) {
    char* location = nullptr;
    curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location);
    return failed(what + ": redirect (status " + std::to_string(status) + ")" +
                      (location ? " to " + ticked(location) : std::string()) + " is not followed",
                  status);
  }
  if (status < 200 || status > 299) return failed(what + ": status " + std::to_string(status), status);
  TlsrptPostResult r;
  r.delivered = true;
  r.status = status;
  r.detail = what + ": status " + std::to_string(status);
  return r;
}

TlsrptPostResult post_tlsrpt_report(const TlsrptUri& uri, std::string_view body, const dns::Resolver& resolver,
                                    const TlsrptPostConfig& config) {
  if (uri.scheme != TlsrptScheme::https) return failed(ticked(uri.uri) + " is not an https: URI");
  dns::Lookup<std::string> addrs = resolver.addresses(uri.host);
  if (!addrs.found())
    return failed("report POST to " + ticked(uri.uri) + ": no address for " + ticked(uri.host) + ": " +
                  std::string(to_string(addrs.status)) + (addrs.detail.empty() ? "" : " (" + addrs.detail + ")"));
  return post_tlsrpt_report(uri, body, addrs.records, config);
}

}  // namespace tlsp
