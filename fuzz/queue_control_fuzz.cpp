// queue_control_fuzz.cpp — libFuzzer target for the queue tools' control
// protocol (tlsp/queue_control.h): the relay parses the request a client
// sends, the command parses the relay's reply. Whatever the bytes, each
// parser gives a value or a problem; a request or reply that parses is
// written again to text that parses to the same thing, byte for byte.
// The tlsrpt-mail payload (a report's mailto: URIs and its gzip) too.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tlsp/queue_control.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string problem;
  if (auto r = tlsp::parse_queue_request(in, problem)) {
    std::string text = tlsp::format_queue_request(*r);
    auto again = tlsp::parse_queue_request(text, problem);
    if (!again || again->op != r->op || again->argument != r->argument) std::abort();
  }
  tlsp::QueueReply reply;
  if (tlsp::parse_queue_reply(in, reply, problem)) {
    std::string text = tlsp::format_queue_reply(reply);
    tlsp::QueueReply again;
    if (!tlsp::parse_queue_reply(text, again, problem)) std::abort();
    if (tlsp::format_queue_reply(again) != text) std::abort();
  }
  tlsp::TlsrptMailPayload payload;
  if (tlsp::parse_tlsrpt_mail_payload(in, payload, problem)) {
    std::string text = tlsp::format_tlsrpt_mail_payload(payload);
    tlsp::TlsrptMailPayload again;
    if (!tlsp::parse_tlsrpt_mail_payload(text, again, problem) || tlsp::format_tlsrpt_mail_payload(again) != text)
      std::abort();
  }
  return 0;
}
