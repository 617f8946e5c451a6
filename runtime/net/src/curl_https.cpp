// curl_https.cpp — the shared libcurl HTTPS setup (curl_https.h).
//
// Every option that could let the network choose where or how we connect
// is pinned: the addresses come from the relay's own resolver
// (CURLOPT_RESOLVE), the only protocol is https, redirects are not
// followed, proxies from the environment are switched off.
#include "curl_https.h"

#include "tlsp/base/address.h"
#include "tlsp/base/quote.h"

#include <mutex>
#include <stdexcept>

namespace tlsp::curl_https {

void init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("libcurl initialisation failed");
  });
}

List pin_list(const std::string& host, uint16_t port, const std::vector<std::string>& addresses, std::string* error) {
  if (addresses.empty()) {
    if (error) *error = "no address for " + base::ticked(host);
    return nullptr;
  }
  std::string pin = host + ":" + std::to_string(port) + ":";
  for (size_t i = 0; i < addresses.size(); ++i) {
    const auto ip = base::parse_ip_address(addresses[i]);
    if (!ip) {
      if (error) *error = base::ticked(addresses[i]) + " is not an IP address";
      return nullptr;
    }
    if (i) pin += ",";
    pin += ip->v6 ? "[" + addresses[i] + "]" : addresses[i];
  }
  List list(curl_slist_append(nullptr, pin.c_str()));
  if (!list && error) *error = "out of memory";
  return list;
}

std::string https_url(const std::string& host, uint16_t port, const std::string& path) {
  std::string url = "https://" + host;
  if (port != 443) url += ":" + std::to_string(port);
  return url + path;
}

void set_pinned_https(CURL* c, const HttpsSettings& s, char* error_buffer) {
  const long timeout_ms = static_cast<long>(s.timeout.count());
  curl_easy_setopt(c, CURLOPT_URL, s.url.c_str());
  curl_easy_setopt(c, CURLOPT_RESOLVE, s.resolve);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(c, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!s.ca_file.empty()) {
    curl_easy_setopt(c, CURLOPT_CAINFO, s.ca_file.c_str());
    curl_easy_setopt(c, CURLOPT_CAPATH, static_cast<char*>(nullptr));  // the given anchors only
  }
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_PROXY, "");  // "" overrides http(s)_proxy from the environment
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // thread-safe timeouts
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(c, CURLOPT_USERAGENT, s.user_agent);
}

}  // namespace tlsp::curl_https
