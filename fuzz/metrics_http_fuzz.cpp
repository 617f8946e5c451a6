// metrics_http_fuzz.cpp — libFuzzer target for the relay's metrics
// endpoint: the HTTP request head parser and the response to it
// (runtime/relay/src/metrics_server.h), which any local process can reach.
//
//  * The input as what a connection sent: incomplete, complete or
//    refused, reading no more than kMaxHttpRequestHeadBytes. A complete
//    head is a GET-like request line with an absolute path and is complete
//    again on its own bytes, with the same method and path, whatever
//    follows it; a refusal has a 4xx/5xx status and says why.
//  * A complete head cut before its empty line is incomplete or refused,
//    never complete (the head is read as a whole).
//  * The response is one status line, `Connection: close`, and a body of
//    the length its Content-Length says.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "metrics_server.h"

namespace {

using namespace tlsp::relay;

void check_response(const HttpRequestHead& h) {
  const std::string r = metrics_http_response(h, [] { return std::string("tlsp_fuzz 1\n"); });
  if (!r.starts_with("HTTP/1.1 ") || r.find("\r\nConnection: close\r\n") == std::string::npos) std::abort();
  const size_t end = r.find("\r\n\r\n");
  const size_t cl = r.find("\r\nContent-Length: ");
  if (end == std::string::npos || cl == std::string::npos || cl > end) std::abort();
  const size_t length = std::stoul(r.substr(cl + 18, end - cl - 18));
  const size_t body = r.size() - end - 4;
  if (body != length && !(h.method == "HEAD" && body == 0)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const HttpRequestHead h = parse_http_request_head(in);
  switch (h.state) {
    case HttpRequestHead::State::incomplete:
      if (in.size() >= kMaxHttpRequestHeadBytes) std::abort();  // a full window decides
      break;
    case HttpRequestHead::State::refused:
      if (h.status < 400 || h.status > 599 || h.problem.empty()) std::abort();
      break;
    case HttpRequestHead::State::complete: {
      if (h.length < 4 || h.length > in.size() || h.length > kMaxHttpRequestHeadBytes) std::abort();
      if (h.method.empty() || h.path.empty() || h.path.front() != '/') std::abort();
      const HttpRequestHead again = parse_http_request_head(in.substr(0, h.length));
      if (again.state != HttpRequestHead::State::complete || again.method != h.method || again.path != h.path ||
          again.length != h.length)
        std::abort();
      // Cut before the empty line: not yet a head.
      const HttpRequestHead cut = parse_http_request_head(in.substr(0, h.length - 2));
      if (cut.state == HttpRequestHead::State::complete) std::abort();
      break;
    }
  }
  check_response(h);
  return 0;
}
