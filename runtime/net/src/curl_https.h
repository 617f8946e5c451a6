// curl_https.h — the one libcurl setup the relay uses for HTTPS: the
// MTA-STS policy fetch (mta_sts_fetch.cpp) and the TLSRPT report POST
// (tlsrpt_delivery.cpp) share it, so both connect the same way. Not a
// public header.
//
// Contract of set_pinned_https(): the transfer goes to `url` over https
// only, to the given addresses only (CURLOPT_RESOLVE pins host:port to
// them: libcurl never resolves), TLS 1.2 or later, the certificate
// verified against ca_file (libcurl's default bundle when empty) and the
// host name, no redirects followed, HTTP/1.1, no proxy from the
// environment, no signals, `timeout` for the whole transfer and the
// connect. pin_list() builds the CURLOPT_RESOLVE entry; nothing, with
// `error` set, when an address is not an IP literal or there is none.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tlsp::curl_https {

void init_once();  // curl_global_init(), once per process; throws on failure

struct EasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct ListDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using Easy = std::unique_ptr<CURL, EasyDeleter>;
using List = std::unique_ptr<curl_slist, ListDeleter>;

// "HOST:PORT:ADDR[,ADDR...]" as a curl list.
List pin_list(const std::string& host, uint16_t port, const std::vector<std::string>& addresses, std::string* error);

struct HttpsSettings {
  std::string url;
  curl_slist* resolve = nullptr;  // from pin_list(), kept alive by the caller
  std::string ca_file;
  std::chrono::milliseconds timeout{10000};
  const char* user_agent = "tlsp";
};

// `error_buffer` must be CURL_ERROR_SIZE bytes and outlive the transfer.
void set_pinned_https(CURL* c, const HttpsSettings& s, char* error_buffer);

// The URL of host:port/path, the port written only when it is not 443.
std::string https_url(const std::string& host, uint16_t port, const std::string& path);

}  // namespace tlsp::curl_https
